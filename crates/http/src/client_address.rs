//! Who is calling: the client's address, for limits and for the forwarding headers.
//!
//! The socket peer is the client, unless the peer is one of `trusted_proxies`; then the
//! client is the right-most address in `X-Forwarded-For` that is not a trusted proxy
//! (each trusted hop appends the address it received from; anything left of the first
//! untrusted hop was written by the client itself and proves nothing).
//!
//! A hop is read as `ip`, `ip:port`, `[ipv6]` or `[ipv6]:port`, with surrounding
//! whitespace and double quotes ignored: balancers that append the port they received
//! from are common, and skipping such a hop would take the client's own claim left of it
//! instead. A hop that cannot be read at all (`unknown`, an empty entry, garbage) ends
//! the walk: it is treated as untrusted, so nothing left of it is believed, and since it
//! names no address the client is the last address a trusted proxy vouched for (the
//! trusted hop right of it, or the peer). Such a client shares its address with others
//! behind that proxy in the limits, which errs on the side of not being spoofed.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    /// The address the connection came from.
    pub peer: IpAddr,
    /// Whether `peer` is a trusted proxy (its forwarding headers are then believed).
    pub peer_is_trusted: bool,
    /// The client's address, as far as it can be known.
    pub client: IpAddr,
}

impl ClientAddress {
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> Self {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        let peer_is_trusted = is_trusted(&peer);
        let mut client = peer;
        if peer_is_trusted {
            // A header value that is not text is as unreadable as a hop that is not an
            // address: it ends the walk.
            let values: Vec<Option<&str>> =
                headers.get_all("x-forwarded-for").iter().map(|v| v.to_str().ok()).collect();
            let hops = values.iter().rev().flat_map(|v| match v {
                Some(v) => v.rsplit(',').map(parse_hop).collect::<Vec<_>>(),
                None => vec![None],
            });
            for hop in hops {
                let Some(hop) = hop else { break };
                client = hop;
                if !is_trusted(&hop) {
                    break;
                }
            }
        }
        Self { peer, peer_is_trusted, client }
    }
}

/// One `X-Forwarded-For` entry: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port`, maybe quoted.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text).trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(with_port) = text.parse::<SocketAddr>() {
        return Some(with_port.ip());
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let spoofed = headers("1.2.3.4, 5.6.7.8");
        let direct = ClientAddress::of("9.9.9.9".parse().unwrap(), &spoofed, &trusted);
        assert_eq!(direct.client, "9.9.9.9".parse::<IpAddr>().unwrap());
        assert!(!direct.peer_is_trusted);
        // Through our balancer (10.0.0.2) and an inner proxy (10.0.0.3): the right-most
        // untrusted hop is the client; what it wrote before that is ignored.
        let via = ClientAddress::of("10.0.0.2".parse().unwrap(), &headers("1.2.3.4, 5.6.7.8, 10.0.0.3"), &trusted);
        assert_eq!(via.client, "5.6.7.8".parse::<IpAddr>().unwrap());
        let all_trusted = ClientAddress::of("10.0.0.2".parse().unwrap(), &headers("10.0.0.9"), &trusted);
        assert_eq!(all_trusted.client, "10.0.0.9".parse::<IpAddr>().unwrap());
    }

    fn client_via_balancer(xff: &str) -> IpAddr {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        ClientAddress::of("10.0.0.2".parse().unwrap(), &headers(xff), &trusted).client
    }

    #[test]
    fn hops_written_with_a_port_brackets_or_quotes_are_the_client() {
        // Some balancers append the address with the port it came from; the entry left
        // of it is the client's own claim and must not be taken instead.
        for (xff, client) in [
            ("1.2.3.4, 203.0.113.5:51234", "203.0.113.5"),
            ("1.2.3.4, [2001:db8::1]:443", "2001:db8::1"),
            ("1.2.3.4, [2001:db8::1]", "2001:db8::1"),
            ("1.2.3.4,\"[2001:db8::1]:443\"", "2001:db8::1"),
            ("1.2.3.4, \" 203.0.113.5 \" ", "203.0.113.5"),
            ("1.2.3.4, 2001:db8::1", "2001:db8::1"),
            ("1.2.3.4, 203.0.113.5:51234, 10.0.0.3:80", "203.0.113.5"),
        ] {
            assert_eq!(client_via_balancer(xff), client.parse::<IpAddr>().unwrap(), "{xff}");
        }
    }

    #[test]
    fn an_unreadable_hop_ends_the_walk_at_the_last_trusted_one() {
        // Nothing left of a hop that cannot be read is believed: the client is the
        // nearest address a trusted proxy vouched for.
        assert_eq!(client_via_balancer("1.2.3.4, unknown, 10.0.0.3"), "10.0.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(client_via_balancer("1.2.3.4, 203.0.113.5:x"), "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(client_via_balancer("1.2.3.4, , 10.0.0.3"), "10.0.0.3".parse::<IpAddr>().unwrap());
    }
}
