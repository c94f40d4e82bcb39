//! Which redirect URIs a client may register, and when a requested one matches.
//!
//! The rules (OAuth 2.1 §2.3, RFC 8252 §7, RFC 9700 §4.1):
//! - https anywhere; http only to a loopback host (native apps' local listeners);
//!   private-use schemes such as `cursor://` or `vscode://` for apps that own them;
//! - never script-carrying schemes (`javascript:`, `data:`, …), fragments, user info or
//!   wildcards;
//! - matching is exact string comparison, except that the port of a loopback URI may
//!   differ, because native apps bind whatever port is free at login time.

use url::{Host, Url};

use crate::OAuthError;

/// Schemes that can run script, read files or otherwise never name a client callback.
const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "about",
    "blob",
    "filesystem",
    "ws",
    "wss",
    "ftp",
    "mailto",
    "tel",
    "view-source",
];

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        // RFC 8252 §8.3 prefers IP literals, but `localhost` is what several MCP clients
        // register; it resolves to loopback on every platform they run on.
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Validates a redirect URI offered at registration.
pub fn validate_for_registration(raw: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| OAuthError::invalid_redirect_uri(format!("redirect URI {raw:?}: {why}"));
    if raw.is_empty() {
        return Err(bad("is empty"));
    }
    if raw.contains('*') {
        return Err(bad("wildcards are not allowed"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    if raw.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    let url = Url::parse(raw).map_err(|_| bad("is not an absolute URI"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    let scheme = url.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(bad("this scheme is not allowed"));
    }
    match scheme {
        "https" if url.host().is_none() => return Err(bad("https redirect URIs need a host")),
        "http" if !is_loopback(&url) => {
            return Err(bad("http is allowed only for loopback hosts (127.0.0.1, [::1], localhost)"));
        }
        // https with a host, loopback http, or a private-use scheme (RFC 8252 §7.1):
        // `cursor://`, `vscode://`, `com.example.app:/callback`, whose syntax the url
        // crate has already checked.
        _ => {}
    }
    Ok(())
}

/// Whether a web application may use `uri`: https to a host that is not this machine (a
/// loopback or private-use-scheme URI belongs to a native application).
pub fn is_for_the_web(uri: &str) -> bool {
    Url::parse(uri).is_ok_and(|u| u.scheme() == "https" && u.host().is_some() && !is_loopback(&u))
}

/// Does `requested` (from an authorization or token request) match `registered`?
pub fn matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    // Only loopback URIs get the port exception; everything else is byte-equal or not.
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    reg.scheme() == "http"
        && req.scheme() == "http"
        && is_loopback(&reg)
        && reg.host() == req.host()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && req.fragment().is_none()
        && req.username().is_empty()
        && req.password().is_none()
}

/// Finds the registered URI a request names. With no `redirect_uri` parameter, a client
/// with exactly one registered URI uses it (RFC 6749 §3.1.2.3).
pub fn resolve<'a>(registered: &'a [String], requested: Option<&'a str>) -> Option<&'a str> {
    match requested {
        Some(req) => registered.iter().any(|r| matches(r, req)).then_some(req),
        None if registered.len() == 1 => Some(registered[0].as_str()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_at_registration() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://chatgpt.com/connector_platform_oauth_redirect",
            "http://127.0.0.1:33418/callback",
            "http://localhost:6274/oauth/callback",
            "http://[::1]/cb",
            "cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback",
            "vscode://vscode.github-authentication/did-authenticate",
            "com.example.app:/oauth2redirect",
        ] {
            validate_for_registration(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn refused_at_registration() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "http://example.com/cb",
            "http://127.0.0.1.evil.com/cb",
            "https://example.com/cb#frag",
            "https://*.example.com/cb",
            "https://user:pw@example.com/cb",
            "/relative/path",
            "",
            "https://example.com/c b",
            "file:///etc/passwd",
        ] {
            let e = validate_for_registration(bad).expect_err(bad);
            assert_eq!(e.code, crate::OAuthErrorCode::InvalidRedirectUri, "{bad}");
        }
    }

    #[test]
    fn exact_match_except_loopback_port() {
        assert!(matches("https://a.example/cb", "https://a.example/cb"));
        assert!(!matches("https://a.example/cb", "https://a.example/cb/"));
        assert!(!matches("https://a.example/cb", "https://a.example:8443/cb"));
        assert!(!matches("https://a.example/cb", "https://A.example/cb"));
        assert!(matches("http://127.0.0.1:1000/cb", "http://127.0.0.1:2000/cb"));
        assert!(matches("http://127.0.0.1/cb", "http://127.0.0.1:2000/cb"));
        assert!(matches("http://localhost:1/cb", "http://localhost:2/cb"));
        assert!(!matches("http://127.0.0.1:1000/cb", "http://127.0.0.1:2000/other"));
        assert!(!matches("http://127.0.0.1:1000/cb", "http://localhost:1000/cb"));
        assert!(!matches("http://127.0.0.1:1000/cb", "http://127.0.0.1:1000/cb?x=1"));
        assert!(!matches("cursor://a/cb", "cursor://a/cb2"));
    }

    #[test]
    fn resolve_defaults_only_for_a_single_uri() {
        let one = vec!["https://a.example/cb".to_owned()];
        assert_eq!(resolve(&one, None), Some("https://a.example/cb"));
        let two = vec!["https://a.example/1".to_owned(), "https://a.example/2".to_owned()];
        assert_eq!(resolve(&two, None), None);
        assert_eq!(resolve(&two, Some("https://a.example/2")), Some("https://a.example/2"));
        assert_eq!(resolve(&two, Some("https://a.example/3")), None);
    }
}
