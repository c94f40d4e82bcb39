//! The one error type of the OAuth endpoints.
//!
//! Each variant is an error code from the RFCs (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
//! RFC 7009 §2.2.1, RFC 7591 §3.2.2, RFC 8707 §2), and `Display` prints exactly that code.
//! The HTTP status for each is decided here, in [`OAuthError::http_status`], and nowhere else.

use std::fmt;

/// The registered OAuth error codes this server can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    ServerError,
    TemporarilyUnavailable,
    InvalidTarget,
    InvalidToken,
    UnsupportedTokenType,
    InvalidRedirectUri,
    InvalidClientMetadata,
}

impl OAuthErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
        }
    }
}

impl fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error with a human-readable description.
///
/// The description is sent to the client as `error_description`, so it must never
/// contain a secret (a token, a code, a verifier): it is written for the developer of
/// the client, and it ends up in their logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    pub description: String,
    /// `Retry-After` seconds for `temporarily_unavailable`.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into(), retry_after: None }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidClient, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::UnauthorizedClient, d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::UnsupportedGrantType, d)
    }
    pub fn unsupported_response_type(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::UnsupportedResponseType, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidScope, d)
    }
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::AccessDenied, d)
    }
    pub fn server_error(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::ServerError, d)
    }
    pub fn temporarily_unavailable(d: impl Into<String>, retry_after: u64) -> Self {
        let mut e = Self::new(OAuthErrorCode::TemporarilyUnavailable, d);
        e.retry_after = Some(retry_after);
        e
    }
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidTarget, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidToken, d)
    }
    pub fn unsupported_token_type(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::UnsupportedTokenType, d)
    }
    pub fn invalid_redirect_uri(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRedirectUri, d)
    }
    pub fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidClientMetadata, d)
    }

    /// The one place an OAuth error becomes an HTTP status.
    pub fn http_status(&self) -> u16 {
        match self.code {
            // RFC 6749 §5.2 requires 401 + `WWW-Authenticate` when the client used
            // Basic and allows it otherwise; one answer for every client is simpler for
            // them to handle, so every `invalid_client` is a 401 with the challenge.
            OAuthErrorCode::InvalidClient => 401,
            OAuthErrorCode::InvalidToken => 401,
            OAuthErrorCode::AccessDenied => 403,
            OAuthErrorCode::ServerError => 500,
            OAuthErrorCode::TemporarilyUnavailable => 503,
            OAuthErrorCode::InvalidRequest
            | OAuthErrorCode::InvalidGrant
            | OAuthErrorCode::UnauthorizedClient
            | OAuthErrorCode::UnsupportedGrantType
            | OAuthErrorCode::UnsupportedResponseType
            | OAuthErrorCode::InvalidScope
            | OAuthErrorCode::InvalidTarget
            | OAuthErrorCode::UnsupportedTokenType
            | OAuthErrorCode::InvalidRedirectUri
            | OAuthErrorCode::InvalidClientMetadata => 400,
        }
    }

    /// The JSON body of RFC 6749 §5.2.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self.code.as_str() });
        if !self.description.is_empty() {
            body["error_description"] = self.description.clone().into();
        }
        body
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.description.is_empty() {
            write!(f, ": {}", self.description)?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_rfc_code() {
        assert_eq!(OAuthErrorCode::InvalidGrant.to_string(), "invalid_grant");
        assert_eq!(OAuthError::invalid_request("missing code").to_string(), "invalid_request: missing code");
    }

    #[test]
    fn statuses_follow_the_rfcs() {
        assert_eq!(OAuthError::invalid_grant("x").http_status(), 400);
        assert_eq!(OAuthError::invalid_client("x").http_status(), 401);
        assert_eq!(OAuthError::invalid_token("x").http_status(), 401);
        assert_eq!(OAuthError::temporarily_unavailable("x", 5).http_status(), 503);
    }

    #[test]
    fn json_body_has_error_and_description() {
        let j = OAuthError::invalid_scope("too wide").to_json();
        assert_eq!(j["error"], "invalid_scope");
        assert_eq!(j["error_description"], "too wide");
        let j = OAuthError::invalid_scope("").to_json();
        assert!(j.get("error_description").is_none());
    }
}
