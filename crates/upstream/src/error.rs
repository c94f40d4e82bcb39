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

/// Who a failure is about, which is what callers act on: the three ways a failure is
/// logged, counted and answered (the `outcome` label of `upstream_refreshes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The provider refused the user's grant: it ends, and the user logs in again.
    Permanent,
    /// The provider refused the proxy: the operator must act; users keep their grants.
    Misconfigured,
    /// The provider could not be reached or was not understood: the same request may work
    /// later.
    Transient,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Misconfigured => "misconfigured",
            Self::Transient => "transient",
        }
    }
}

impl UpstreamError {
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Rejected { .. } => FailureKind::Permanent,
            Self::Misconfigured(_) => FailureKind::Misconfigured,
            Self::Unavailable(_) | Self::Protocol(_) => FailureKind::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FailureKind, UpstreamError};

    #[test]
    fn only_a_refusal_of_the_users_grant_is_permanent() {
        let rejected = UpstreamError::Rejected { error: "invalid_grant".into(), description: None };
        assert_eq!(rejected.kind(), FailureKind::Permanent);
        assert_eq!(UpstreamError::Misconfigured("401".into()).kind(), FailureKind::Misconfigured);
        assert_eq!(UpstreamError::Unavailable("down".into()).kind(), FailureKind::Transient);
        assert_eq!(UpstreamError::Protocol("html".into()).kind(), FailureKind::Transient);
        let labels =
            [FailureKind::Permanent, FailureKind::Misconfigured, FailureKind::Transient].map(FailureKind::label);
        assert_eq!(labels, ["permanent", "misconfigured", "transient"], "the metric's outcome labels");
    }
}
