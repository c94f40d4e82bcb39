//! What can go wrong with the provider, in the kinds the callers act on. The kinds say who
//! a failure is about: only a refusal of the user's grant ends it; a refusal of the proxy
//! (its credentials, its configuration, the path to the provider) says nothing about the
//! user, and ending grants for it would log everyone out for an operator's mistake.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    /// The provider refused the user's grant for good: `invalid_grant` (a used, expired or
    /// revoked refresh token or code), or the userinfo endpoint refusing the access token.
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected { error: String, description: Option<String> },
    /// The provider refused the proxy, not the user: `invalid_client`,
    /// `unauthorized_client`, `invalid_request` or any other OAuth error, or a non-OAuth
    /// 3xx/4xx (a firewall, a CDN, a wrong path). The operator must fix the configuration;
    /// the same request works again once they have.
    #[error("the provider refused the proxy's request (check its configuration): {0}")]
    Misconfigured(String),
    /// The provider could not be reached or failed (network, timeout, 5xx, 408, 429):
    /// the same request may work later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something that is not OAuth (a misconfiguration, or a bug
    /// on its side). Treated as temporary: it is no reason to end a user's grant.
    #[error("the provider's answer was not understood: {0}")]
    Protocol(String),
}
