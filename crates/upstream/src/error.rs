//! What can go wrong with the provider, in the three kinds the callers act on.

/// A failed exchange with the provider. The kind decides what happens to the user's grant:
/// only [`UpstreamError::Rejected`] ends it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    /// The provider said no, for good: `invalid_grant`, `invalid_client`, a denied login.
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected { error: String, description: Option<String> },
    /// The provider could not be reached or failed (network, timeout, 5xx, 408, 429):
    /// the same request may work later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something that is not OAuth (a misconfiguration, or a bug
    /// on its side). Treated as temporary: it is no reason to end a user's grant.
    #[error("the provider's answer was not understood: {0}")]
    Protocol(String),
}

impl UpstreamError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}
