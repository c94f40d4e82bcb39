//! Limits on what anonymous callers can make the proxy do. Rates are kept by `governor`
//! (GCRA, keyed); over a limit the answer is 429 with `Retry-After`.
//!
//! The model (the README's "Limits" section says which attack each limit answers):
//! - Keys are client addresses, with IPv6 addresses grouped by their /64 (configurable):
//!   one host commonly holds a whole /64, and keying the full address would give it
//!   unlimited budgets.
//! - Nothing is ever counted against a client alone. A public client's id (a metadata
//!   document's URL above all) is known to everyone, and hosted MCP clients (claude.ai,
//!   ChatGPT) call from a few egress addresses for all their users: a limit keyed by the
//!   client, or one that refused grants use up, would let anyone lock real users out.
//! - Only failed *client authentications* (a wrong secret for a confidential client) are
//!   counted, per address and per (client, address). They are enforced before the next
//!   attempt that presents a secret, so a guess cannot be tried, right or wrong, while it
//!   waits; requests without a secret (public clients) are never held by them.
//! - Refused grants (a stale, revoked or replayed refresh token, a used code) are not
//!   limited: each costs one indexed read, the same as a good one, and tokens of 256
//!   random bits cannot be guessed. The connection limits bound their rate like any
//!   other request's.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::services::metrics::Metrics;
use crate::settings::LimitSettings;

/// Keys beyond this and the limiters forget the keys whose allowance is full again.
const MAX_KEYS: usize = 100_000;

/// Over a limit: come back in `retry_after` seconds (answered as 429, see `error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    pub retry_after: u64,
}

pub struct Limits {
    metrics: Arc<Metrics>,
    ipv6_prefix_len: u8,
    registrations: Rate<IpAddr>,
    authorizations: Rate<IpAddr>,
    auth_failures_by_address: Failures<IpAddr>,
    auth_failures_by_client: Failures<(String, IpAddr)>,
}

impl Limits {
    pub fn new(settings: &LimitSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ipv6_prefix_len: settings.ipv6_prefix_len,
            registrations: Rate::per_minute(settings.registrations_per_minute),
            authorizations: Rate::per_minute(settings.authorizations_per_minute),
            // One address may try several clients (an office's confidential clients) before
            // it is held as a whole; one client from one address, the configured number.
            auth_failures_by_address: Failures::per_minute(settings.failures_per_minute.saturating_mul(4)),
            auth_failures_by_client: Failures::per_minute(settings.failures_per_minute),
        }
    }

    /// The key an address is limited by: IPv4 (also when mapped into IPv6) as it is, IPv6
    /// by its network of the configured prefix length.
    pub fn key(&self, address: IpAddr) -> IpAddr {
        address_key(address, self.ipv6_prefix_len)
    }

    /// One more dynamic registration from `address`.
    pub fn registration(&self, address: IpAddr) -> Result<(), RateLimited> {
        let key = self.key(address);
        self.registrations.take(key).inspect_err(|_| self.metrics.rate_limited("registrations"))
    }

    /// One more authorization request from `address`.
    pub fn authorization(&self, address: IpAddr) -> Result<(), RateLimited> {
        let key = self.key(address);
        self.authorizations.take(key).inspect_err(|_| self.metrics.rate_limited("authorizations"))
    }

    /// Before a client authentication with a secret: refused while `address`, or
    /// `client_id` from `address`, has used up its failed authentications.
    pub fn check_client_auth(&self, address: IpAddr, client_id: &str) -> Result<(), RateLimited> {
        let key = self.key(address);
        self.auth_failures_by_address
            .check(&key)
            .and_then(|()| self.auth_failures_by_client.check(&(client_id.to_owned(), key)))
            .inspect_err(|_| self.metrics.rate_limited("failures"))
    }

    /// Counts a failed client authentication (a wrong secret) from `address`.
    pub fn failed_client_auth(&self, address: IpAddr, client_id: &str) {
        let key = self.key(address);
        self.auth_failures_by_address.count(key);
        self.auth_failures_by_client.count((client_id.to_owned(), key));
    }
}

/// IPv4 addresses (also IPv4-mapped IPv6 ones) stand for themselves; IPv6 addresses for
/// their network of `prefix_len` bits.
pub fn address_key(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

/// A keyed rate that every event uses up.
struct Rate<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Rate<K> {
    fn per_minute(n: u32) -> Self {
        Self { limiter: RateLimiter::keyed(quota(n)) }
    }

    fn take(&self, key: K) -> Result<(), RateLimited> {
        let result = self.limiter.check_key(&key);
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        result.map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            RateLimited { retry_after: wait.as_secs() + 1 }
        })
    }
}

/// A keyed rate that only failures use up, refusing a key until its allowance returns.
struct Failures<K: Hash + Eq + Clone> {
    rate: Rate<K>,
    blocked: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn per_minute(n: u32) -> Self {
        Self { rate: Rate::per_minute(n), blocked: Mutex::default() }
    }

    fn check(&self, key: &K) -> Result<(), RateLimited> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(key) {
            Some(until) if *until > Instant::now() => {
                let retry_after = until.saturating_duration_since(Instant::now()).as_secs() + 1;
                Err(RateLimited { retry_after })
            }
            Some(_) => {
                blocked.remove(key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn count(&self, key: K) {
        if let Err(RateLimited { retry_after }) = self.rate.take(key.clone()) {
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            if blocked.len() > MAX_KEYS {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(key, Instant::now() + Duration::from_secs(retry_after));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: u32) -> Limits {
        let settings = LimitSettings {
            registrations_per_minute: n,
            authorizations_per_minute: n,
            failures_per_minute: n,
            ..LimitSettings::default()
        };
        Limits::new(&settings, Arc::default())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let l = limits(3);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..3 {
            assert!(l.registration(a).is_ok());
        }
        assert!(matches!(l.registration(a), Err(RateLimited { retry_after }) if retry_after >= 1));
        assert!(l.registration(b).is_ok(), "another address is not affected");
    }

    #[test]
    fn an_ipv6_network_is_one_address() {
        let l = limits(2);
        assert!(l.registration(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.registration(ip("2001:db8:1:2:ffff::9")).is_ok());
        assert!(l.registration(ip("2001:db8:1:2:abcd::7")).is_err(), "the same /64");
        assert!(l.registration(ip("2001:db8:1:3::1")).is_ok(), "the next /64 is another");
        assert_eq!(address_key(ip("::ffff:192.0.2.7"), 64), ip("192.0.2.7"));
        assert_eq!(address_key(ip("2001:db8::1"), 48), ip("2001:db8::"));
        assert_eq!(address_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
    }

    #[test]
    fn failed_authentications_hold_the_address_and_the_pair_never_the_client() {
        let l = limits(2);
        let (a, other) = (ip("192.0.2.1"), ip("192.0.2.9"));
        for _ in 0..100 {
            assert!(l.check_client_auth(a, "c").is_ok(), "checks alone never count");
        }
        for _ in 0..3 {
            l.failed_client_auth(a, "c");
        }
        assert!(l.check_client_auth(a, "c").is_err(), "the client from that address is held");
        assert!(l.check_client_auth(a, "d").is_ok(), "another client from there is not, yet");
        assert!(l.check_client_auth(other, "c").is_ok(), "nor the client from elsewhere");
        for _ in 0..6 {
            l.failed_client_auth(a, "e");
        }
        assert!(l.check_client_auth(a, "d").is_err(), "past four times the budget the address is held");
        assert!(l.check_client_auth(other, "d").is_ok());
    }
}
