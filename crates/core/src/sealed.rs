//! The formats of what the proxy keeps sealed at rest (see [`seal`](crate::seal)): each
//! value, and the additional data that binds it to its row, so that a sealed value copied
//! into another row does not open. Here rather than beside their users because two sides
//! need them: the HTTP edge seals and opens them, key rotation (the binary's `rotate-key`)
//! re-seals them without knowing what they hold.

use serde::{Deserialize, Serialize};

use crate::seal::KeyRing;
use crate::token::TokenHash;

/// The user's provider credential (access and refresh token) as sealed into a grant row.
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
    /// Who the user is beyond the grant's subject, as the provider said at the login, for
    /// identity assertions and identity headers. Sealed here because it is personal data
    /// and this value is already sealed per grant, opened on the MCP path and carried
    /// over by every refresh; a column of its own would need a migration and sealing of
    /// its own. Credentials sealed before the field existed have none (the subject alone
    /// is then known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<UserIdentity>,
    /// Brokered OAuth: the issuer of the upstream authorization server these tokens came
    /// from. A grant whose upstream has since moved to another authorization server (or
    /// whose registration went with it) cannot be refreshed there: it needs a new login,
    /// not a refresh that fails forever. `None` for a provider's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// What the provider said about the user at the login, beyond the subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserIdentity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the provider said it verified `email`: an address a user can set at will
    /// is never asserted.
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl UserIdentity {
    /// The email address, if the provider verified it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified)
    }
}

/// The additional data that binds the sealed client secret of the proxy's dynamic
/// registration at a brokered MCP upstream's authorization server to its row.
pub fn upstream_registration_aad(server: &str, issuer: &str) -> String {
    format!("upstream-registration:{server}:{issuer}")
}

impl std::fmt::Debug for UpstreamSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamSecret(..)")
    }
}

impl UpstreamSecret {
    /// The additional data that binds a sealed credential to its family row.
    pub fn aad(family_id: &str) -> String {
        format!("family:{family_id}:upstream")
    }

    pub fn seal(&self, keys: &KeyRing, family_id: &str) -> String {
        let json = serde_json::to_vec(self).expect("serialising two strings cannot fail");
        keys.seal(&json, &Self::aad(family_id))
    }

    pub fn open(keys: &KeyRing, family_id: &str, sealed: &str) -> Result<Self, String> {
        let bytes = keys.open(sealed, &Self::aad(family_id)).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| format!("sealed upstream credential: {e}"))
    }
}

/// The refresh token a rotation issued, kept sealed with the token it replaced for the
/// grace window, bound to that token's hash, so that a replay within the window gets the
/// same answer as the first use.
#[derive(Serialize, Deserialize)]
pub struct RefreshSuccessor {
    pub refresh_token: String,
    pub scope: String,
}

impl std::fmt::Debug for RefreshSuccessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshSuccessor").field("scope", &self.scope).finish_non_exhaustive()
    }
}

impl RefreshSuccessor {
    /// The additional data that binds a successor to the hash of the token it replaced.
    pub fn aad(replaced: &TokenHash) -> String {
        let hex: String = replaced.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("refresh-successor:{hex}")
    }

    pub fn seal(&self, keys: &KeyRing, replaced: &TokenHash) -> String {
        let json = serde_json::to_vec(self).expect("a string and scopes serialise");
        keys.seal(&json, &Self::aad(replaced))
    }

    pub fn open(keys: &KeyRing, replaced: &TokenHash, sealed: &str) -> Result<Self, String> {
        let json = keys.open(sealed, &Self::aad(replaced)).map_err(|e| e.to_string())?;
        serde_json::from_slice(&json).map_err(|e| format!("sealed refresh-token successor: {e}"))
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
        let old = keys.seal(br#"{"access_token":"at","refresh_token":"rt"}"#, &UpstreamSecret::aad("f"));
        let opened = UpstreamSecret::open(&keys, "f", &old).unwrap();
        assert_eq!((opened.access_token.as_str(), opened.refusal_checked_at), ("at", None));
        let stamped = UpstreamSecret { refusal_checked_at: Some(1_700_000_000), ..opened };
        let again = UpstreamSecret::open(&keys, "f", &stamped.seal(&keys, "f")).unwrap();
        assert_eq!(again.refusal_checked_at, Some(1_700_000_000));
        assert_eq!(again.refresh_token.as_deref(), Some("rt"));
        assert_eq!(again.identity, None);
    }

    #[test]
    fn the_identity_round_trips_with_the_credential() {
        let keys = keys();
        let identity = UserIdentity {
            email: Some("ada@example.com".into()),
            email_verified: true,
            name: Some("Ada".into()),
            groups: vec!["staff".into()],
        };
        let secret = UpstreamSecret {
            access_token: "at".into(),
            refresh_token: None,
            refusal_checked_at: None,
            identity: Some(identity.clone()),
            issuer: None,
        };
        let opened = UpstreamSecret::open(&keys, "f", &secret.seal(&keys, "f")).unwrap();
        assert_eq!(opened.identity, Some(identity));
        let unverified = UserIdentity { email_verified: false, ..Default::default() };
        assert_eq!(unverified.verified_email(), None);
    }

    #[test]
    fn sealed_values_open_only_for_their_own_row() {
        let keys = keys();
        let secret = UpstreamSecret {
            access_token: "at".into(),
            refresh_token: None,
            refusal_checked_at: None,
            identity: None,
            issuer: None,
        };
        let sealed = secret.seal(&keys, "f");
        assert!(UpstreamSecret::open(&keys, "g", &sealed).is_err());
        let (a, b) = (TokenHash::of("a"), TokenHash::of("b"));
        let successor = RefreshSuccessor { refresh_token: "rt".into(), scope: "mcp".into() }.seal(&keys, &a);
        assert_eq!(RefreshSuccessor::open(&keys, &a, &successor).unwrap().refresh_token, "rt");
        assert!(RefreshSuccessor::open(&keys, &b, &successor).is_err());
    }
}
