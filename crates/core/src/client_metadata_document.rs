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

/// Addresses a metadata document may never be fetched from: the proxy's own network
/// (loopback, private ranges, link-local, cloud metadata endpoints), so that a client id
/// cannot make the proxy probe inside its network (SSRF).
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
                || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // Forms that carry an IPv4 address inside, which a translator or tunnel on
            // the path may deliver to that IPv4 address: refused whatever it is, since
            // each form has its own way of placing it. IPv4-mapped (::ffff:0:0/96),
            // IPv4-compatible (::/96), NAT64 (64:ff9b::/96 and 64:ff9b:1::/48), 6to4
            // (2002::/16) and Teredo (2001::/32).
            let embeds_ipv4 = (s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0))
                || (s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1))
                || s[0] == 0x2002
                || (s[0] == 0x2001 && s[1] == 0);
            embeds_ipv4
                || v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

/// Validates a fetched document for `url`: it must name itself, list redirect URIs that
/// obey the usual rules, and be a public client (no shared secret can exist for it).
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
        Some(other) => {
            return Err(OAuthError::invalid_client(format!(
                "token_endpoint_auth_method {other:?} is not supported for metadata-document clients; use none"
            )));
        }
    }
    if body.get("grant_types").is_none() {
        body["grant_types"] = serde_json::json!(["authorization_code", "refresh_token"]);
    }
    let metadata = ClientMetadata::from_registration(&body)
        .map_err(|e| OAuthError::invalid_client(format!("client metadata document: {}", e.description)))?;
    debug_assert_eq!(metadata.token_endpoint_auth_method, AuthMethod::None);
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
