//! Who is calling: the client's address, for limits and for the forwarding headers.
//!
//! The socket peer is the client, unless the peer is one of `trusted_proxies`; then the
//! client is the right-most address in `X-Forwarded-For` that is not a trusted proxy
//! (each trusted hop appends the address it received from; anything left of the first
//! untrusted hop was written by the client itself and proves nothing).

use std::net::IpAddr;

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
            let hops: Vec<IpAddr> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|hop| hop.trim().parse().ok())
                .collect();
            for hop in hops.into_iter().rev() {
                client = hop;
                if !is_trusted(&hop) {
                    break;
                }
            }
        }
        Self { peer, peer_is_trusted, client }
    }
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
}
