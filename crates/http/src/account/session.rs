//! The two cookies of the account page, both sealed (the key ring's AEAD, bound by its
//! additional data to its purpose): what they carry is personal (the user's subject) or
//! secret (the PKCE verifier), and the browser needs to read neither.
//!
//! - the login cookie: the `state`, PKCE verifier and nonce of one login at a provider
//!   started from the account page. The provider's callback is the one every login shares
//!   (`P/oauth/callback`, the redirect URI registered there), so the state lives in the
//!   browser that started the login rather than in the store's pending authorizations,
//!   which belong to MCP clients' requests. It is single-use in effect: the provider's
//!   code is, and the callback clears the cookie.
//! - the session cookies: who logged in (provider and subject), until when, and a random
//!   id the forms' CSRF tokens are bound to. The account page's lasts an hour; the
//!   operators' console's (sealed for another purpose, so that one is never taken for
//!   the other) ends after 15 idle minutes, each request extending it, and after eight
//!   hours in any case.

use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_core::token::random_b64;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// How long a login at the provider may take.
pub const LOGIN_TTL_SECS: i64 = 600;
/// How long an account session lasts: an hour, after which the page asks to log in
/// again (a login at the provider is usually a redirect and back).
pub const SESSION_TTL_SECS: i64 = 3600;

/// An operator's session ends after this long without a request...
pub const OPERATOR_IDLE_SECS: i64 = 15 * 60;
/// ...and after this long in any case.
pub const OPERATOR_MAX_SECS: i64 = 8 * 3600;

const LOGIN_PURPOSE: &str = "mcp-oauth-proxy account login v1";
const SESSION_PURPOSE: &str = "mcp-oauth-proxy account session v1";
const OPERATOR_PURPOSE: &str = "mcp-oauth-proxy operator session v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    pub provider: String,
    pub state: String,
    pub verifier: String,
    pub nonce: Option<String>,
    pub expires_at: i64,
    /// Started from the operators' console rather than the account page.
    #[serde(default)]
    pub for_console: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Random: what the CSRF tokens of this session's forms are bound to.
    pub id: String,
    pub provider: String,
    pub subject: String,
    pub expires_at: i64,
    pub started_at: i64,
}

impl Session {
    pub fn new(provider: &str, subject: &str, now: i64) -> Self {
        Self {
            id: random_b64(16),
            provider: provider.to_owned(),
            subject: subject.to_owned(),
            expires_at: now + SESSION_TTL_SECS,
            started_at: now,
        }
    }

    /// An operator's session, started now.
    pub fn operator(provider: &str, subject: &str, now: i64) -> Self {
        Self { expires_at: now + OPERATOR_IDLE_SECS, ..Self::new(provider, subject, now) }
    }

    /// This operator's session extended by a request at `now`.
    pub fn extended(&self, now: i64) -> Self {
        let expires_at = (now + OPERATOR_IDLE_SECS).min(self.started_at + OPERATOR_MAX_SECS);
        Self { expires_at, ..self.clone() }
    }

    pub fn seal_operator(&self, keys: &KeyRing) -> String {
        seal(keys, OPERATOR_PURPOSE, self)
    }

    pub fn open_operator(keys: &KeyRing, value: &str, now: i64) -> Option<Self> {
        open::<Self>(keys, OPERATOR_PURPOSE, value).filter(|s| now < s.expires_at)
    }

    pub fn seal(&self, keys: &KeyRing) -> String {
        seal(keys, SESSION_PURPOSE, self)
    }

    /// The session in a cookie's value, if it is one this proxy sealed and it has not
    /// expired.
    pub fn open(keys: &KeyRing, value: &str, now: i64) -> Option<Self> {
        open::<Self>(keys, SESSION_PURPOSE, value).filter(|s| now < s.expires_at)
    }
}

impl Login {
    pub fn seal(&self, keys: &KeyRing) -> String {
        seal(keys, LOGIN_PURPOSE, self)
    }

    /// The login in a cookie's value, if this proxy sealed it, it has not expired, and
    /// the provider's answer carries its `state`.
    pub fn open(keys: &KeyRing, value: &str, state: &str, now: i64) -> Option<Self> {
        use subtle::ConstantTimeEq;
        open::<Self>(keys, LOGIN_PURPOSE, value)
            .filter(|l| now < l.expires_at && bool::from(l.state.as_bytes().ct_eq(state.as_bytes())))
    }
}

fn seal(keys: &KeyRing, purpose: &str, value: &impl Serialize) -> String {
    keys.seal(&serde_json::to_vec(value).expect("plain structs serialise"), purpose)
}

fn open<T: DeserializeOwned>(keys: &KeyRing, purpose: &str, value: &str) -> Option<T> {
    serde_json::from_slice(&keys.open(value, purpose).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(k: u8) -> KeyRing {
        KeyRing::new([k; 32], &[])
    }

    #[test]
    fn a_session_opens_only_with_the_key_for_its_purpose_and_until_it_expires() {
        let keys = ring(1);
        let session = Session::new("github", "123", 1000);
        let sealed = session.seal(&keys);
        assert_eq!(Session::open(&keys, &sealed, 1000), Some(session.clone()));
        assert_eq!(Session::open(&keys, &sealed, 1000 + SESSION_TTL_SECS), None, "expired");
        assert_eq!(Session::open(&ring(2), &sealed, 1000), None, "another proxy's key");
        let login = Login {
            provider: "github".into(),
            state: "s".into(),
            verifier: "v".into(),
            nonce: None,
            expires_at: 2000,
            for_console: false,
        };
        assert_eq!(Session::open(&keys, &login.seal(&keys), 1000), None, "a login cookie is no session");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(Session::open(&keys, &tampered, 1000), None);
    }

    #[test]
    fn a_login_opens_only_for_its_state() {
        let keys = ring(1);
        let login = Login {
            provider: "p".into(),
            state: "state-1".into(),
            verifier: "v".into(),
            nonce: Some("n".into()),
            expires_at: 2000,
            for_console: false,
        };
        let sealed = login.seal(&keys);
        assert_eq!(Login::open(&keys, &sealed, "state-1", 1999), Some(login));
        assert_eq!(Login::open(&keys, &sealed, "state-2", 1999), None);
        assert_eq!(Login::open(&keys, &sealed, "state-1", 2000), None, "expired");
        let session = Session::new("p", "s", 0);
        assert_eq!(Login::open(&keys, &session.seal(&keys), "state-1", 1), None);
    }

    #[test]
    fn an_operator_session_is_not_an_account_session_and_ends_when_idle_or_old() {
        let keys = ring(1);
        let account = Session::new("p", "s", 0);
        assert_eq!(Session::open_operator(&keys, &account.seal(&keys), 1), None);
        let operator = Session::operator("p", "s", 0);
        assert_eq!(Session::open(&keys, &operator.seal_operator(&keys), 1), None);
        assert!(Session::open_operator(&keys, &operator.seal_operator(&keys), OPERATOR_IDLE_SECS - 1).is_some());
        assert_eq!(Session::open_operator(&keys, &operator.seal_operator(&keys), OPERATOR_IDLE_SECS), None, "idle");
        let mut s = operator;
        for now in (600..OPERATOR_MAX_SECS + 600).step_by(600) {
            s = s.extended(now);
        }
        assert_eq!(s.expires_at, OPERATOR_MAX_SECS, "extended at most to eight hours after the login");
    }
}
