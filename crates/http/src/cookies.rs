//! The two cookies the proxy sets, both HttpOnly and SameSite=Lax (Lax, because the
//! upstream provider sends the browser back to the callback with a top-level GET from
//! another site, and the binding cookie must come along):
//!
//! - the browser cookie: a random id naming this browser, to which the upstream `state`
//!   and the consent form's CSRF token are bound;
//! - one consent cookie per approved client: a signature over (server, client, browser)
//!   and its expiry;
//! - the account page's login and session cookies (see `account::session`).

use axum::http::{HeaderMap, HeaderValue, header};
use mcp_oauth_core::token::random_b64;

pub const BROWSER_MAX_AGE: i64 = 30 * 24 * 3600;

/// Reads a cookie by name from the request.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// Cookie names, with the `__Host-` prefix when served over https (the browser then
/// guarantees the cookie was set by this host, over TLS, for the whole site).
pub struct CookieNames {
    secure: bool,
}

impl CookieNames {
    pub fn new(secure: bool) -> Self {
        Self { secure }
    }

    fn name(&self, base: &str) -> String {
        if self.secure { format!("__Host-{base}") } else { base.to_owned() }
    }

    pub fn browser(&self) -> String {
        self.name("mop_browser")
    }

    /// Short and distinct per (server, client), without putting the client id itself
    /// into a cookie name (client ids may contain characters cookie names cannot).
    pub fn consent(&self, server: &str, client_id: &str) -> String {
        let h = mcp_oauth_core::token::TokenHash::of(&format!("{server}\0{client_id}"));
        let short: String = h.as_bytes()[..6].iter().map(|b| format!("{b:02x}")).collect();
        self.name(&format!("mop_consent_{short}"))
    }

    pub fn account_login(&self) -> String {
        self.name("mop_account_login")
    }

    pub fn account_session(&self) -> String {
        self.name("mop_account")
    }

    pub fn operator_session(&self) -> String {
        self.name("mop_admin")
    }

    /// A `Set-Cookie` value that removes cookie `name`.
    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", 0)
    }

    pub fn set(&self, name: &str, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"))
            .expect("cookie values are base64url and names are ASCII")
    }
}

/// The browser id from the request, or a new one to set.
pub fn browser_id(headers: &HeaderMap, names: &CookieNames) -> (String, bool) {
    match get(headers, &names.browser()) {
        Some(id) if id.len() >= 32 && id.len() <= 64 => (id.to_owned(), false),
        _ => (random_b64(32), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cookies_among_many() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; mop_browser=xyz; b=2"));
        assert_eq!(get(&h, "mop_browser"), Some("xyz"));
        assert_eq!(get(&h, "c"), None);
    }

    #[test]
    fn secure_names_use_the_host_prefix() {
        assert_eq!(CookieNames::new(true).browser(), "__Host-mop_browser");
        let v = CookieNames::new(true).set("n", "v", 10);
        assert!(v.to_str().unwrap().contains("Secure"));
        assert_ne!(CookieNames::new(false).consent("s", "a"), CookieNames::new(false).consent("s", "b"));
    }
}
