//! A rotated refresh token's successor, kept sealed beside the token it replaced for the
//! grace window, so that a replay gets the same answer as the first use (see `grants`).

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_core::token::TokenHash;

use crate::error::HttpError;

/// The refresh token a rotation issued, kept sealed with the token it replaced for the
/// grace window, bound to that token's hash.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Successor {
    pub refresh_token: String,
    pub scope: String,
}

impl Successor {
    pub(crate) fn aad(replaced: &TokenHash) -> String {
        let hex: String = replaced.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        format!("refresh-successor:{hex}")
    }

    pub(crate) fn seal(&self, keys: &KeyRing, replaced: &TokenHash) -> String {
        let json = serde_json::to_vec(self).expect("a string and scopes serialise");
        keys.seal(&json, &Self::aad(replaced))
    }

    pub(crate) fn open(keys: &KeyRing, replaced: &TokenHash, sealed: &str) -> Result<Self, HttpError> {
        let json = keys.open(sealed, &Self::aad(replaced)).map_err(|e| {
            tracing::error!(error = %e, "cannot open a sealed refresh-token successor");
            OAuthError::server_error("internal error")
        })?;
        serde_json::from_slice(&json).map_err(|_| OAuthError::server_error("internal error").into())
    }
}
