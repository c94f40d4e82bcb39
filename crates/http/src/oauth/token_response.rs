//! The token endpoint's successful answer (RFC 6749 §5.1), typed: built once by a grant
//! and serialised once.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer` (RFC 6750).
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    /// Only for clients registered for the refresh grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub fn bearer(access_token: String, expires_in: i64, scope: String, refresh_token: Option<String>) -> Self {
        Self { access_token, token_type: "Bearer", expires_in, scope, refresh_token }
    }
}

#[cfg(test)]
mod tests {
    use super::TokenResponse;

    #[test]
    fn a_refresh_token_appears_only_when_issued() {
        let with = TokenResponse::bearer("a".into(), 60, "mcp".into(), Some("r".into()));
        let json = serde_json::to_value(&with).unwrap();
        let expected = serde_json::json!({
            "access_token": "a", "token_type": "Bearer", "expires_in": 60, "scope": "mcp", "refresh_token": "r"
        });
        assert_eq!(json, expected);
        let without = serde_json::to_value(TokenResponse::bearer("a".into(), 60, "mcp".into(), None)).unwrap();
        assert!(without.get("refresh_token").is_none(), "{without}");
    }
}
