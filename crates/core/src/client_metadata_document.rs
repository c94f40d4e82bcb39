//! Client ID Metadata Documents (MCP authorization, 2025-11-25; draft-ietf-oauth-client-id-metadata-document):
//! a client whose `client_id` is an https URL publishes its metadata at that URL, and no
//! registration is needed.
//!
//! This module holds the rules (which URLs qualify, which addresses may be fetched, what a
//! document must say); fetching is the HTTP layer's job (its client directory).

use std::net::IpAddr;

use serde_json::Value;

use crate::OAuthError;
use crate::client::{AuthMethod, ClientMetadata};

/// Whether `client_id` names a metadata document: an https URL with a path, and nothing
/// that makes its identity ambiguous (user info, fragment, dot segments).
pub fn is_document_url(client_id: &str, allow_http: bool) -> bool {
    let Ok(url) = url::Url::parse(client_id) else { return false };
    let scheme_ok = url.scheme() == "https" || (allow_http && url.scheme() == "http");
    scheme_ok
        && url.host().is_some()
        && url.path() != "/"
        && !url.path().is_empty()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && !client_id.contains("/./")
        && !client_id.contains("/../")
        // The parsed form must be the given form: no normalisation games.
        && url.as_str() == client_id
}

/// Addresses a metadata document may never be fetched from: everything that is not
/// globally reachable (the IANA IPv4 and IPv6 Special-Purpose Address Registries), so
/// that a client id cannot make the proxy probe its own network (SSRF): loopback, private
/// ranges, link-local, cloud metadata endpoints, and the forms that lead to them.
pub fn is_forbidden_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || (o[0] == 192 && o[1] == 88 && o[2] == 99) // deprecated 6to4 relay anycast
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            // An allow-list, so that a block the list below forgets (or IANA adds) is
            // refused rather than fetched: only global unicast (2000::/3) is routed on the
            // internet. Outside it lie loopback and unspecified, the forms that carry an
            // IPv4 address (mapped ::ffff:0:0/96, translated ::ffff:0:0:0/96, compatible
            // ::/96, NAT64 64:ff9b::/96 and 64:ff9b:1::/48), discard-only 100::/64, SRv6
            // SIDs 5f00::/16, unique local fc00::/7, link-local fe80::/10, site-local
            // fec0::/10 and multicast ff00::/8. (std's `Ipv6Addr::is_global` would say
            // this, but is unstable.)
            let s = v6.segments();
            let global_unicast = (s[0] & 0xe000) == 0x2000;
            !global_unicast
                // IETF protocol assignments (Teredo, which embeds IPv4; benchmarking;
                // ORCHID; AMT; anycast services): none hosts a web server.
                || (s[0] == 0x2001 && s[1] < 0x0200)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0] == 0x2002 // 6to4, which embeds IPv4
                || (s[0] == 0x3fff && s[1] < 0x1000) // documentation 3fff::/20
        }
    }
}

/// Validates a fetched document for `url`: it must name itself, list redirect URIs that
/// obey the usual rules, and be a public client (no shared secret can exist for it) or
/// one that signs client assertions with the keys it publishes (`private_key_jwt`, as
/// enterprise-managed clients do).
pub fn metadata_from_document(url: &str, doc: &Value) -> Result<ClientMetadata, OAuthError> {
    if doc.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err(OAuthError::invalid_client("the client metadata document does not name its own URL as client_id"));
    }
    if doc.get("client_secret").is_some() || doc.get("client_secret_expires_at").is_some() {
        return Err(OAuthError::invalid_client("a client metadata document must not carry a client secret"));
    }
    let mut body = doc.clone();
    match body.get("token_endpoint_auth_method").and_then(Value::as_str) {
        None | Some("none") => body["token_endpoint_auth_method"] = "none".into(),
        // Its keys are in the document (`jwks` or `jwks_uri`; registration's rules require one).
        Some("private_key_jwt") => {}
        Some(other) => {
            return Err(OAuthError::invalid_client(format!(
                "token_endpoint_auth_method {other:?} is not supported for metadata-document clients; \
                 use none or private_key_jwt"
            )));
        }
    }
    if body.get("grant_types").is_none() {
        body["grant_types"] = serde_json::json!(["authorization_code", "refresh_token"]);
    }
    let metadata = ClientMetadata::from_registration(&body)
        .map_err(|e| OAuthError::invalid_client(format!("client metadata document: {}", e.description)))?;
    debug_assert!(matches!(metadata.token_endpoint_auth_method, AuthMethod::None | AuthMethod::PrivateKeyJwt));
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_may_publish_keys_for_private_key_jwt() {
        let url = "https://app.example/client.json";
        let doc = json!({"client_id": url, "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example/jwks.json"});
        let m = metadata_from_document(url, &doc).unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
        assert_eq!(m.jwks_uri.as_deref(), Some("https://app.example/jwks.json"));
        let keyless = json!({"client_id": url, "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt"});
        assert!(metadata_from_document(url, &keyless).is_err(), "no keys, no private_key_jwt");
    }

    #[test]
    fn document_urls() {
        assert!(is_document_url("https://app.example/oauth/client.json", false));
        assert!(!is_document_url("https://app.example/", false));
        assert!(!is_document_url("https://app.example", false));
        assert!(!is_document_url("http://app.example/client.json", false));
        assert!(is_document_url("http://127.0.0.1:8/client.json", true));
        assert!(!is_document_url("https://u:p@app.example/c", false));
        assert!(!is_document_url("https://app.example/c#f", false));
        assert!(!is_document_url("https://app.example/a/../c", false));
        assert!(!is_document_url("mop_client_abc", false));
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:93.184.216.34",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::5db8:d822",
            "64:ff9b:1::a00:1",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "1.1.1.1"] {
            assert!(!is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
    }

    /// Every block of the IANA IPv6 Special-Purpose Address Registry that is not globally
    /// reachable, and everything outside global unicast (2000::/3), is refused.
    #[test]
    fn ipv6_blocks_that_are_not_globally_reachable_are_forbidden() {
        for (ip, block) in [
            ("::", "unspecified ::/128"),
            ("::1", "loopback ::1/128"),
            ("::ffff:a00:1", "IPv4-mapped ::ffff:0:0/96"),
            ("::ffff:0:a00:1", "IPv4-translated ::ffff:0:0:0/96 (RFC 2765)"),
            ("::ffff:0:5db8:d822", "IPv4-translated, of a public IPv4 address"),
            ("::a00:1", "IPv4-compatible ::/96"),
            ("64:ff9b::a00:1", "NAT64 64:ff9b::/96"),
            ("64:ff9b:1::1", "local-use NAT64 64:ff9b:1::/48"),
            ("100::1", "discard-only 100::/64"),
            ("100:0:0:1::1", "dummy prefix 100:0:0:1::/64"),
            ("2001::1", "Teredo 2001::/32"),
            ("2001:1::1", "IETF protocol assignments 2001::/23 (PCP anycast)"),
            ("2001:2::1", "benchmarking 2001:2::/48"),
            ("2001:3::1", "AMT 2001:3::/32"),
            ("2001:10::1", "deprecated ORCHID 2001:10::/28"),
            ("2001:20::1", "ORCHIDv2 2001:20::/28"),
            ("2001:30::1", "drone remote ID 2001:30::/28"),
            ("2001:1ff::1", "the end of 2001::/23"),
            ("2001:db8::1", "documentation 2001:db8::/32"),
            ("2002:5db8:d822::1", "6to4 2002::/16"),
            ("3fff::1", "documentation 3fff::/20"),
            ("3fff:fff:ffff::1", "the end of 3fff::/20"),
            ("5f00::1", "SRv6 SIDs 5f00::/16"),
            ("fc00::1", "unique local fc00::/7"),
            ("fd12:3456::1", "unique local fc00::/7"),
            ("fe80::1", "link-local fe80::/10"),
            ("fec0::1", "deprecated site-local fec0::/10"),
            ("ff02::1", "multicast ff00::/8"),
            ("ff0e::1", "global-scope multicast ff00::/8"),
            ("4000::1", "not allocated for unicast"),
            ("e000::1", "not allocated for unicast"),
        ] {
            assert!(is_forbidden_address(ip.parse().unwrap()), "{ip}: {block}");
        }
        for ip in ["2606:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001:830::200e", "2001:200::1", "3fff:1000::1"]
        {
            assert!(!is_forbidden_address(ip.parse().unwrap()), "{ip} is global unicast");
        }
    }

    #[test]
    fn ipv4_blocks_that_are_not_globally_reachable_are_forbidden() {
        for ip in [
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.0.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "93.184.216.34", "100.63.255.255", "100.128.0.1", "172.32.0.1"] {
            assert!(!is_forbidden_address(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn documents_must_name_themselves_and_be_public() {
        let url = "https://app.example/client.json";
        let ok = json!({"client_id": url, "client_name": "App", "redirect_uris": ["https://app.example/cb"]});
        let m = metadata_from_document(url, &ok).unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
        assert!(m.allows_grant("refresh_token"));
        let mut other = ok.clone();
        other["client_id"] = "https://evil.example/client.json".into();
        assert!(metadata_from_document(url, &other).is_err());
        let mut secret = ok.clone();
        secret["token_endpoint_auth_method"] = "client_secret_basic".into();
        assert!(metadata_from_document(url, &secret).is_err());
        let mut bad_redirect = ok.clone();
        bad_redirect["redirect_uris"] = json!(["javascript:alert(1)"]);
        assert!(metadata_from_document(url, &bad_redirect).is_err());
    }
}
