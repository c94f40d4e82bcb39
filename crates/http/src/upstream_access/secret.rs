//! The user's provider credential (access and refresh token) as sealed into a grant row.

use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_upstream::UpstreamTokens;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct UpstreamSecret {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
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
        Self { access_token: t.access_token.clone(), refresh_token: t.refresh_token.clone() }
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
