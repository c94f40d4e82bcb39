//! What can go wrong with the provider, in the three kinds the callers act on.

/// A failed exchange with the provider. The kind decides what happens to the user's grant:
/// only [`UpstreamError::Rejected`] ends it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    /// The provider said no, for good: `invalid_grant`, `invalid_client`, a denied login.
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected { error: String, description: Option<String> },
    /// The provider could not be reached or failed (network, timeout, 5xx, 429):
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

/// A failed request to the provider, described by its kind and innermost cause. reqwest's own
/// message (and its `without_url()`) leads with the URL and hides the cause behind it; the
/// URLs carry nothing secret (secrets go in bodies and headers), but the cause is what an
/// operator needs.
pub(crate) fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut src = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}
