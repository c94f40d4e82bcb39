//! Which accepted connections are served: at most `max_connections_per_address` open at
//! once from one socket peer address, so that one address cannot take every one of
//! `max_connections` (whose waiting is `serve`'s). A connection over the cap is closed at
//! once, unanswered: it is the caller's own connections that hold the places.
//!
//! The socket peer, not `X-Forwarded-For`: a connection is counted before any request
//! on it is read. Peers that are `trusted_proxies` are not capped (a load balancer
//! carries everyone's connections; the bound then belongs on the balancer). IPv6 peers
//! are grouped by their first `ipv6_prefix_len` bits, as one host usually has a /64.
//!
//! One [`Admission`] is shared by every serving thread, so the cap holds across them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::services::metrics::Metrics;
use crate::settings::ConnectionSettings;
use crate::state::App;

/// Over-cap warnings are logged at most this often: a flood would otherwise flood the log.
const WARNING_EVERY: Duration = Duration::from_secs(10);

pub struct Admission {
    pub settings: ConnectionSettings,
    trusted: Vec<ipnet::IpNet>,
    metrics: Option<Arc<Metrics>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Connections open per address group; a group leaves when its last one closes.
    open: HashMap<IpAddr, usize>,
    last_warning: Option<Instant>,
}

impl Admission {
    /// `settings`' caps, with no trusted proxies and nothing counted in metrics.
    pub fn new(settings: ConnectionSettings) -> Self {
        Self { settings, trusted: Vec::new(), metrics: None, state: Mutex::default() }
    }

    /// The application's connection settings and trusted proxies; refusals counted in
    /// `rate_limited_total{limit="connections_per_address"}`.
    pub fn for_app(app: &App) -> Self {
        Self {
            trusted: app.settings.trusted_proxies.clone(),
            metrics: Some(Arc::clone(&app.metrics)),
            ..Self::new(app.settings.connections)
        }
    }

    /// A place for a connection from `peer`, held until the `Admitted` is dropped; `None`
    /// when `peer`'s address already has `max_connections_per_address` open.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let peer = peer.to_canonical();
        if self.trusted.iter().any(|net| net.contains(&peer)) {
            return Some(Admitted { place: None });
        }
        let group = self.group(peer);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open = state.open.entry(group).or_default();
        if *open < self.settings.max_connections_per_address {
            *open += 1;
            return Some(Admitted { place: Some((Arc::clone(self), group)) });
        }
        let warn = state.last_warning.is_none_or(|at| at.elapsed() >= WARNING_EVERY);
        if warn {
            state.last_warning = Some(Instant::now());
        }
        drop(state);
        if warn {
            tracing::warn!(
                address = %group,
                max_connections_per_address = self.settings.max_connections_per_address,
                "connections from one address over the cap are closed"
            );
        }
        if let Some(metrics) = &self.metrics {
            metrics.rate_limited("connections_per_address");
        }
        None
    }

    /// The address that stands for `peer`'s group: itself, or its IPv6 prefix.
    fn group(&self, peer: IpAddr) -> IpAddr {
        match peer {
            IpAddr::V4(_) => peer,
            IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, self.settings.ipv6_prefix_len)
                .map_or(peer, |net| IpAddr::V6(net.trunc().addr())),
        }
    }

    fn release(&self, group: IpAddr) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = state.open.get_mut(&group) {
            *open -= 1;
            if *open == 0 {
                state.open.remove(&group);
            }
        }
    }
}

/// One connection's place; it is given back when this is dropped (the connection ended).
pub struct Admitted {
    /// `None` for a trusted proxy, which takes no place.
    place: Option<(Arc<Admission>, IpAddr)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((admission, group)) = self.place.take() {
            admission.release(group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(n: usize, trusted: &[&str]) -> Arc<Admission> {
        let settings = ConnectionSettings { max_connections_per_address: n, ..ConnectionSettings::default() };
        let trusted = trusted.iter().map(|t| t.parse().unwrap()).collect();
        Arc::new(Admission { trusted, ..Admission::new(settings) })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_cap_and_its_places_back_as_connections_close() {
        let admission = capped(2, &[]);
        let first = admission.admit(ip("192.0.2.1")).expect("first");
        let _second = admission.admit(ip("192.0.2.1")).expect("second");
        assert!(admission.admit(ip("192.0.2.1")).is_none(), "third refused");
        assert!(admission.admit(ip("192.0.2.2")).is_some(), "another address is not held back");
        drop(first);
        assert!(admission.admit(ip("192.0.2.1")).is_some(), "a closed connection's place is free again");
    }

    #[test]
    fn ipv6_addresses_of_one_prefix_share_a_cap_and_mapped_ipv4_is_ipv4() {
        let admission = capped(1, &[]);
        let _held = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(admission.admit(ip("2001:db8:1:2:ffff::9")).is_none(), "same /64");
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_some(), "another /64");
        let _v4 = admission.admit(ip("192.0.2.1")).unwrap();
        assert!(
            admission.admit(ip("::ffff:192.0.2.1")).is_none(),
            "the same IPv4 address, as a dual-stack socket sees it"
        );
    }

    #[test]
    fn trusted_proxies_are_not_capped_and_take_no_place() {
        let admission = capped(1, &["10.0.0.0/8"]);
        let held: Vec<_> = (0..5).map(|_| admission.admit(ip("10.0.0.2")).expect("a balancer")).collect();
        assert!(admission.state.lock().unwrap().open.is_empty());
        drop(held);
        assert!(admission.admit(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn refusals_are_counted() {
        let metrics = Arc::new(Metrics::default());
        let settings = ConnectionSettings { max_connections_per_address: 1, ..ConnectionSettings::default() };
        let admission = Arc::new(Admission { metrics: Some(Arc::clone(&metrics)), ..Admission::new(settings) });
        let _held = admission.admit(ip("192.0.2.1")).unwrap();
        assert!(admission.admit(ip("192.0.2.1")).is_none());
        let text = metrics.render();
        assert!(text.contains("mcp_oauth_proxy_rate_limited_total{limit=\"connections_per_address\"} 1"), "{text}");
    }
}
