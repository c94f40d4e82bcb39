//! The user's provider credential (access and refresh token) as sealed into a grant row.

use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_upstream::UpstreamTokens;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct UpstreamSecret {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When (epoch seconds, the proxy's clock) an MCP upstream's 401 last made the proxy ask
    /// the provider about this grant: a refresh, or asking whether it still accepts the
    /// token. Sealed with the credential rather than kept in the process, so that every
    /// replica sees it (no schema change), and so that the answer to "not again within a
    /// minute" survives restarts; carried over by every later refresh. Older proxies
    /// ignore the field, and a credential sealed by them has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal_checked_at: Option<i64>,
}

impl std::fmt::Debug for UpstreamSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamSecret(..)")
    }
}

/// The additional data that binds a sealed credential to its family row.
pub(crate) fn aad(family_id: &str) -> String {
    format!("family:{family_id}:upstream")
}

impl UpstreamSecret {
    pub fn from_tokens(t: &UpstreamTokens) -> Self {
        Self { access_token: t.access_token.clone(), refresh_token: t.refresh_token.clone(), refusal_checked_at: None }
    }

    pub fn seal(&self, keys: &KeyRing, family_id: &str) -> String {
        let json = serde_json::to_vec(self).expect("serialising two strings cannot fail");
        keys.seal(&json, &aad(family_id))
    }

    pub fn open(keys: &KeyRing, family_id: &str, sealed: &str) -> Result<Self, String> {
        let bytes = keys.open(sealed, &aad(family_id)).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("sealed upstream credential: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> KeyRing {
        KeyRing::new([7u8; 32], &[])
    }

    #[test]
    fn a_credential_sealed_without_the_check_time_opens_and_round_trips_with_it() {
        let keys = keys();
        // As sealed before the field existed (and by an older replica during a deploy).
        let old = keys.seal(br#"{"access_token":"at","refresh_token":"rt"}"#, &aad("f"));
        let opened = UpstreamSecret::open(&keys, "f", &old).unwrap();
        assert_eq!((opened.access_token.as_str(), opened.refusal_checked_at), ("at", None));
        let stamped = UpstreamSecret { refusal_checked_at: Some(1_700_000_000), ..opened };
        let again = UpstreamSecret::open(&keys, "f", &stamped.seal(&keys, "f")).unwrap();
        assert_eq!(again.refusal_checked_at, Some(1_700_000_000));
        assert_eq!(again.refresh_token.as_deref(), Some("rt"));
    }
}
