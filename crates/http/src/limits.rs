//! Limits on what anonymous callers can make the proxy do, per client address (and per
//! client for probing). Rates are kept by `governor` (GCRA, keyed); over a limit the
//! answer is 429 with `Retry-After`.
//!
//! Failures at the token and revocation endpoints are counted after the fact (only
//! failures count: successful traffic is never limited), but enforced before: once an
//! address or a client has used up its failures, it is refused until its allowance
//! returns, so a guess cannot be tried, right or wrong, while it waits.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::HttpError;
use crate::metrics::Metrics;
use crate::settings::LimitSettings;

/// Keys beyond this and the limiters forget the keys whose allowance is full again.
const MAX_KEYS: usize = 100_000;

pub struct Limits {
    metrics: Arc<Metrics>,
    registrations: Rate<IpAddr>,
    authorizations: Rate<IpAddr>,
    failures_by_address: Failures<IpAddr>,
    failures_by_client: Failures<String>,
}

impl Limits {
    pub fn new(settings: &LimitSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            registrations: Rate::per_minute(settings.registrations_per_minute),
            authorizations: Rate::per_minute(settings.authorizations_per_minute),
            failures_by_address: Failures::per_minute(settings.failures_per_minute),
            failures_by_client: Failures::per_minute(settings.failures_per_minute),
        }
    }

    /// One more dynamic registration from `address`.
    pub fn registration(&self, address: IpAddr) -> Result<(), HttpError> {
        self.registrations.take(address).inspect_err(|_| self.metrics.rate_limited("registrations"))
    }

    /// One more authorization request from `address`.
    pub fn authorization(&self, address: IpAddr) -> Result<(), HttpError> {
        self.authorizations.take(address).inspect_err(|_| self.metrics.rate_limited("authorizations"))
    }

    /// Refuses an address or client that has used up its failures.
    pub fn check_failures(&self, address: IpAddr, client_id: Option<&str>) -> Result<(), HttpError> {
        let by_client = |id: &str| self.failures_by_client.check(&id.to_owned());
        self.failures_by_address
            .check(&address)
            .and_then(|()| client_id.map_or(Ok(()), by_client))
            .inspect_err(|_| self.metrics.rate_limited("failures"))
    }

    /// Counts a failed client authentication or a refused grant.
    pub fn failed(&self, address: IpAddr, client_id: Option<&str>) {
        self.failures_by_address.count(address);
        if let Some(id) = client_id {
            self.failures_by_client.count(id.to_owned());
        }
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

    fn take(&self, key: K) -> Result<(), HttpError> {
        let result = self.limiter.check_key(&key);
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        result.map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            HttpError::RateLimited { retry_after: wait.as_secs() + 1, page: false }
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

    fn check(&self, key: &K) -> Result<(), HttpError> {
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(key) {
            Some(until) if *until > Instant::now() => {
                let retry_after = until.saturating_duration_since(Instant::now()).as_secs() + 1;
                Err(HttpError::RateLimited { retry_after, page: false })
            }
            Some(_) => {
                blocked.remove(key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn count(&self, key: K) {
        if let Err(HttpError::RateLimited { retry_after, .. }) = self.rate.take(key.clone()) {
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
            pending_per_browser: 1,
        };
        Limits::new(&settings, Arc::default())
    }

    #[test]
    fn registrations_are_limited_per_address() {
        let l = limits(3);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(l.registration(a).is_ok());
        }
        assert!(matches!(l.registration(a), Err(HttpError::RateLimited { retry_after, .. }) if retry_after >= 1));
        assert!(l.registration(b).is_ok(), "another address is not affected");
    }

    #[test]
    fn only_failures_count_and_they_block_address_and_client() {
        let l = limits(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..100 {
            assert!(l.check_failures(a, Some("c")).is_ok(), "checks alone never count");
        }
        for _ in 0..3 {
            l.failed(a, Some("c"));
        }
        assert!(l.check_failures(a, None).is_err(), "the address is blocked");
        assert!(l.check_failures(other, Some("c")).is_err(), "so is the client, from anywhere");
        assert!(l.check_failures(other, Some("d")).is_ok());
    }
}
