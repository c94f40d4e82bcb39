//! What an MCP upstream's 401 means for a grant.
//!
//! An MCP upstream's 401 is not the provider's word. A token stored since the refused one
//! was read is replayed; otherwise the provider is asked about the grant at most once a
//! minute (`REFUSAL_CHECK_INTERVAL_SECS`), across replicas: the time of the last check is
//! sealed into the credential (`UpstreamSecret::refusal_checked_at`), read and written
//! under the same lease. Asking is a refresh when there is a refresh token, else a look at
//! the provider's userinfo endpoint with the token. Only the provider refusing (a refresh
//! answered `invalid_grant`, userinfo answering 401), or a token that has expired with
//! nothing to refresh it with, ends the grant; otherwise the refusal is the MCP server's
//! own ([`AccessError::UpstreamRefused`]) and the grant is kept. Without the bound, an MCP
//! server refusing every token made a refresh per request (rotating refresh tokens and
//! spending the provider's quota), and one 401 ended the grant of every user of a
//! provider that issues no refresh tokens (GitHub OAuth apps).

use mcp_oauth_core::sealed::UpstreamSecret;
use mcp_oauth_store::{Lease, UpstreamCredential};
use mcp_oauth_upstream::{FailureKind, Provider, TokenStatus};

use super::{AccessError, ProviderToken, Trigger, UpstreamAccess};
use crate::services::audit::Event;
use crate::services::metrics::ProviderOutcome;
use crate::settings::ServerSettings;

/// After the provider was asked about a grant because an MCP upstream refused its token,
/// how long before an MCP upstream's 401 may have it asked again. Replicas' clocks may
/// differ by a few seconds, which is of no consequence at this scale.
const REFUSAL_CHECK_INTERVAL_SECS: i64 = 60;

/// What an MCP upstream's 401 led to: the `outcome` label of
/// `mcp_upstream_credential_refusals_total`, and the reason in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Refreshed at the provider (how that went: `upstream_refreshes_total`).
    Refreshed,
    /// Nothing to refresh the token with, and it has expired: a new login.
    Expired,
    /// The provider was asked within the last minute, and is not asked again.
    AskedRecently,
    /// The provider refused the token too: the grant ended.
    ProviderRefused,
    /// The provider still accepts the token: the MCP server's refusal is its own.
    ProviderAccepts,
    /// The provider could not be asked (no userinfo endpoint, or it failed to answer).
    ProviderUnknown,
    /// The token replayed after the refusal (newer than the refused one) was refused too.
    RefusedAgain,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Self::Refreshed => "refreshed",
            Self::Expired => "expired",
            Self::AskedRecently => "asked_recently",
            Self::ProviderRefused => "provider_refused",
            Self::ProviderAccepts => "provider_accepts",
            Self::ProviderUnknown => "provider_unknown",
            Self::RefusedAgain => "refused_again",
        }
    }
}

/// What to do about an MCP upstream's refusal of the stored token, when no newer token is
/// stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnRefusal {
    /// Expired, with nothing to refresh it with: a new login, as when it expires unused.
    Expired,
    /// The provider was asked within the interval: it is not asked again yet.
    AskedRecently,
    Refresh,
    /// Nothing to refresh with: ask the provider whether it still accepts the token.
    AskProvider,
}

fn on_refusal(has_refresh_token: bool, expires_at: Option<i64>, checked_at: Option<i64>, now: i64) -> OnRefusal {
    if !has_refresh_token && expires_at.is_some_and(|e| now >= e) {
        return OnRefusal::Expired;
    }
    // On either side of now: a replica whose clock runs a little ahead holds the next
    // check off a little longer, and a time far off (a clock set wrong) holds nothing off
    // beyond one check, which stamps the time anew.
    if checked_at.is_some_and(|t| now.abs_diff(t) < REFUSAL_CHECK_INTERVAL_SECS as u64) {
        return OnRefusal::AskedRecently;
    }
    if has_refresh_token { OnRefusal::Refresh } else { OnRefusal::AskProvider }
}

impl UpstreamAccess {
    pub(super) fn on_refusal(&self, current: &UpstreamCredential) -> Result<OnRefusal, AccessError> {
        let secret = self.open(&current.family_id, &current.sealed)?;
        Ok(on_refusal(secret.refresh_token.is_some(), current.expires_at, secret.refusal_checked_at, self.clock.now()))
    }

    /// The MCP upstream refused the stored token, and nobody has stored another: we hold
    /// the lease, and decide whether to ask the provider.
    pub(super) async fn refused_with_lease(
        &self,
        provider: &Provider,
        lease: &Lease,
        current: &UpstreamCredential,
        secret: UpstreamSecret,
    ) -> Result<ProviderToken<'static>, AccessError> {
        let family_id = current.family_id.as_str();
        let now = self.clock.now();
        match on_refusal(secret.refresh_token.is_some(), current.expires_at, secret.refusal_checked_at, now) {
            OnRefusal::AskedRecently => {
                self.store.release_refresh_lease(lease).await?;
                Err(self.refusal_stands(provider, family_id))
            }
            OnRefusal::Expired => {
                self.store.release_refresh_lease(lease).await?;
                self.record_refusal(provider, family_id, Refusal::Expired, "no refresh token");
                self.needs_login(family_id, "the upstream credential expired and has no refresh token").await
            }
            OnRefusal::Refresh => {
                self.record_refusal(provider, family_id, Refusal::Refreshed, "refreshing");
                let secret = UpstreamSecret { refusal_checked_at: Some(now), ..secret };
                self.refresh_with_lease(provider, lease, current, secret, Trigger::Rejected).await
            }
            OnRefusal::AskProvider => self.ask_provider(provider, lease, current, secret).await,
        }
    }

    /// Nothing to refresh with: whether the provider refuses the token too decides whose
    /// refusal it is.
    async fn ask_provider(
        &self,
        provider: &Provider,
        lease: &Lease,
        current: &UpstreamCredential,
        secret: UpstreamSecret,
    ) -> Result<ProviderToken<'static>, AccessError> {
        let family_id = current.family_id.as_str();
        let (refusal, detail) = match provider.check_access_token(&secret.access_token).await {
            Ok(TokenStatus::Accepted) => (Refusal::ProviderAccepts, "the provider still accepts the token".to_owned()),
            Ok(TokenStatus::Unknown) => (Refusal::ProviderUnknown, "the provider has no userinfo endpoint".to_owned()),
            Err(e) if e.kind() == FailureKind::Permanent => (Refusal::ProviderRefused, e.to_string()),
            // A provider that is down or refuses the proxy says nothing about the user's
            // token: the MCP server's refusal stands as its own, and is not asked about
            // again within the minute either.
            Err(e) => (Refusal::ProviderUnknown, e.to_string()),
        };
        self.record_refusal(provider, family_id, refusal, &detail);
        if refusal == Refusal::ProviderRefused {
            let _ = self.store.release_refresh_lease(lease).await;
            return self.needs_login(family_id, "the provider refused the token the MCP server refused").await;
        }
        let stamped = UpstreamSecret { refusal_checked_at: Some(self.clock.now()), ..secret };
        self.store_check_time(lease, current, &stamped).await;
        Err(AccessError::UpstreamRefused)
    }

    /// Stores the credential as it was, with the time the provider was asked about it,
    /// and gives the lease back. Failing only means the provider may be asked again
    /// sooner, which is no reason to fail the request.
    pub(super) async fn store_check_time(&self, lease: &Lease, current: &UpstreamCredential, stamped: &UpstreamSecret) {
        let family_id = current.family_id.as_str();
        let sealed = stamped.seal(&self.keys, family_id);
        match self.store.store_upstream_credential(lease, &sealed, current.expires_at).await {
            Ok(true) => {}
            Ok(false) => tracing::debug!(family = family_id, "the lease ran out before the check time was stored"),
            Err(e) => {
                tracing::warn!(family = family_id, error = %e, "the time of a provider check could not be stored");
                let _ = self.store.release_refresh_lease(lease).await;
            }
        }
    }

    /// The refusal of a token the provider was asked about within the minute.
    pub(super) fn refusal_stands(&self, provider: &Provider, family_id: &str) -> AccessError {
        let labels = ProviderOutcome { provider: provider.name().to_owned(), outcome: Refusal::AskedRecently.label() };
        self.metrics.upstream_credential_refusals.get_or_create(&labels).inc();
        tracing::debug!(
            family = family_id,
            "the MCP server refused the token again; the provider was asked within the minute"
        );
        AccessError::UpstreamRefused
    }

    /// The MCP upstream refused the token replayed after its first refusal, newer than the
    /// one refused: the provider has just issued it, so the refusal is the MCP server's.
    pub fn refused_again(&self, server: &ServerSettings, family_id: &str) -> AccessError {
        let name = self.provider_name(server);
        let labels = ProviderOutcome { provider: name.clone(), outcome: Refusal::RefusedAgain.label() };
        self.metrics.upstream_credential_refusals.get_or_create(&labels).inc();
        tracing::warn!(
            provider = name,
            family = family_id,
            "the MCP server refused a token the provider has just issued; the grant is kept"
        );
        AccessError::UpstreamRefused
    }

    /// Counts, logs and audits a decision that asks the provider (at most once a minute
    /// per grant, so the audit trail is not flooded by an MCP server refusing everything).
    fn record_refusal(&self, provider: &Provider, family_id: &str, refusal: Refusal, detail: &str) {
        let labels = ProviderOutcome { provider: provider.name().to_owned(), outcome: refusal.label() };
        self.metrics.upstream_credential_refusals.get_or_create(&labels).inc();
        tracing::info!(
            provider = provider.name(),
            family = family_id,
            outcome = refusal.label(),
            detail,
            "the MCP server refused the user's provider token"
        );
        let event = Event::new("upstream.credential_refused", self.clock.now()).grant(family_id);
        self.audit.record(event.reason(format!("{}: {detail}", refusal.label())));
    }
}

#[cfg(test)]
mod tests {
    use super::{OnRefusal, on_refusal};

    #[test]
    fn a_refusal_asks_the_provider_at_most_once_a_minute_and_ends_only_an_expired_unrefreshable_grant() {
        let now = 1_000_000;
        let cases: &[(bool, Option<i64>, Option<i64>, OnRefusal)] = &[
            // Never asked: refresh if we can, else ask whether the token is still good.
            (true, None, None, OnRefusal::Refresh),
            (true, Some(now + 300), None, OnRefusal::Refresh),
            (false, None, None, OnRefusal::AskProvider),
            (false, Some(now + 1), None, OnRefusal::AskProvider),
            // Expired with nothing to refresh it with: a new login, asked recently or not.
            (false, Some(now), None, OnRefusal::Expired),
            (false, Some(now - 10), Some(now - 5), OnRefusal::Expired),
            // An expired token with a refresh token is refreshed (once a minute).
            (true, Some(now - 10), None, OnRefusal::Refresh),
            // Asked within the minute (either side of now, for clocks a little apart).
            (true, None, Some(now), OnRefusal::AskedRecently),
            (true, None, Some(now - 59), OnRefusal::AskedRecently),
            (false, None, Some(now - 59), OnRefusal::AskedRecently),
            (true, None, Some(now + 59), OnRefusal::AskedRecently),
            // A minute or more: asked again.
            (true, None, Some(now - 60), OnRefusal::Refresh),
            (false, None, Some(now - 3600), OnRefusal::AskProvider),
            // A time far in the future (a clock set wrong) holds nothing off.
            (true, None, Some(now + 3600), OnRefusal::Refresh),
        ];
        for &(refreshable, expires_at, checked_at, expected) in cases {
            assert_eq!(
                on_refusal(refreshable, expires_at, checked_at, now),
                expected,
                "{refreshable} {expires_at:?} {checked_at:?}"
            );
        }
    }
}
