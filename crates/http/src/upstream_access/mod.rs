//! The upstream-access service: a usable provider access token for a grant, refreshed
//! once when it needs to be. It owns what that takes: the key ring that seals provider
//! credentials at rest, the single-flight locks, and the store's refresh lease.
//!
//! The fast path opens the sealed credential read together with the client's token
//! (once per sealed value: see `opened`) and returns it. The slow path (expiring soon, or the MCP upstream just answered 401) is
//! single-flight at two levels:
//! - in this process, one async lock per grant: concurrent requests queue behind the
//!   first, then re-read the credential it stored (without the re-read, each would redeem
//!   the provider's single-use refresh token again and lose the grant);
//! - across replicas, a lease row in the database: a replica that cannot take it waits
//!   for the holder's result instead of redeeming the same refresh token twice.

mod flight;
mod opened;
pub(crate) mod secret;

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::seal::{KeyRing, key_id_of};
use mcp_oauth_store::{Lease, SealedKind, SealedValue, Store, StoreError, UpstreamCredential};
use mcp_oauth_upstream::{Provider, UpstreamError, UpstreamTokens};

use flight::FlightLocks;
use opened::Opened;

use crate::audit::{Audit, Event};
use crate::metrics::{Metrics, ProviderLabels, ProviderOutcome};
pub use secret::UpstreamSecret;

/// How long one replica may hold the right to refresh before others may take over:
/// longer than a provider call may take (30 s), so a live holder never loses it.
const LEASE_SECS: i64 = 45;
const LEASE_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The provider grant is gone for good: the user must log in again.
    #[error("the upstream grant needs a new login")]
    NeedsLogin,
    /// The provider or the database is unavailable right now; the grant is kept.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AccessError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(d) => Self::Unavailable(d),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Why the slow path is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The credential expires within the provider's margin (or has expired).
    Expiring,
    /// The MCP upstream refused the token we sent (the credential sealed as given).
    Rejected,
}

/// A provider access token and the sealed credential it was opened from (to recognise,
/// after the MCP upstream refuses it, whether someone has refreshed since).
#[derive(Debug, Clone)]
pub struct ProviderToken {
    pub token: String,
    pub sealed: String,
}

pub fn needs_refresh(expires_at: Option<i64>, now: i64, margin: i64) -> bool {
    expires_at.is_some_and(|e| now >= e - margin)
}

pub struct UpstreamAccess {
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    clock: SharedClock,
    flights: FlightLocks,
    opened: Opened,
    metrics: Arc<Metrics>,
    audit: Arc<Audit>,
}

impl UpstreamAccess {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        audit: Arc<Audit>,
    ) -> Self {
        Self { store, keys, clock, flights: FlightLocks::default(), opened: Opened::default(), metrics, audit }
    }

    /// Grants whose credential is being refreshed in this process right now.
    pub fn refreshes_in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The provider's tokens sealed for storage in grant `family_id`.
    pub fn seal(&self, family_id: &str, tokens: &UpstreamTokens) -> String {
        UpstreamSecret::from_tokens(tokens).seal(&self.keys, family_id)
    }

    /// The provider access token to send for `family_id`, given the credential as read
    /// with the client's token. `trigger` forces the slow path.
    pub async fn token(
        &self,
        provider: &Provider,
        family_id: &str,
        sealed: &str,
        expires_at: Option<i64>,
        trigger: Option<Trigger>,
    ) -> Result<ProviderToken, AccessError> {
        let margin = provider.settings().refresh_margin_secs;
        if trigger.is_none() && !needs_refresh(expires_at, self.clock.now(), margin) {
            return self.opened(family_id, sealed);
        }
        let trigger = trigger.unwrap_or(Trigger::Expiring);
        // The flight is left (and the lock forgotten when nobody else needs it) when this
        // future ends or is dropped, as it is when the client goes away mid-wait.
        let flight = self.flights.join(family_id);
        let _turn = flight.lock().await;
        self.refresh(provider, family_id, sealed, trigger).await
    }

    /// The token in `sealed`, which is current. A credential sealed with a previous key
    /// is sealed again with the current one as it is used, so that a key rotation
    /// completes by itself for every grant in use.
    fn opened(&self, family_id: &str, sealed: &str) -> Result<ProviderToken, AccessError> {
        let current_key = key_id_of(sealed) == Some(self.keys.current_key_id());
        if current_key && let Some(token) = self.opened.get(family_id, sealed) {
            return Ok(ProviderToken { token, sealed: sealed.to_owned() });
        }
        let secret = self.open(family_id, sealed)?;
        if current_key {
            self.opened.put(family_id, sealed, &secret.access_token);
        } else {
            let value = SealedValue {
                kind: SealedKind::ProviderCredential { family_id: family_id.to_owned() },
                sealed: sealed.into(),
            };
            let resealed = secret.seal(&self.keys, family_id);
            let store = Arc::clone(&self.store);
            // Off the request's path: a failure only means it is done on the next use.
            tokio::spawn(async move {
                if let Err(e) = store.reseal(&value, &resealed).await {
                    tracing::debug!(error = %e, "re-sealing a credential with the current key failed; will retry on use");
                }
            });
        }
        Ok(ProviderToken { token: secret.access_token, sealed: sealed.to_owned() })
    }

    fn open(&self, family_id: &str, sealed: &str) -> Result<UpstreamSecret, AccessError> {
        UpstreamSecret::open(&self.keys, family_id, sealed).map_err(|e| {
            tracing::error!(family = family_id, error = %e, "cannot open the sealed upstream credential");
            AccessError::Internal("cannot open the upstream credential".into())
        })
    }

    async fn refresh(
        &self,
        provider: &Provider,
        family_id: &str,
        seen_sealed: &str,
        trigger: Trigger,
    ) -> Result<ProviderToken, AccessError> {
        let margin = provider.settings().refresh_margin_secs;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(LEASE_SECS as u64 + 5);
        let is_fresh = |c: &UpstreamCredential| match trigger {
            Trigger::Expiring => !needs_refresh(c.expires_at, self.clock.now(), margin),
            Trigger::Rejected => c.sealed != seen_sealed,
        };
        loop {
            // Someone (a request before us, or another replica) may have refreshed already.
            let current = self.current_credential(family_id).await?;
            if is_fresh(&current) {
                return self.opened(family_id, &current.sealed);
            }
            if let Some(lease) = self.store.take_refresh_lease(family_id, LEASE_SECS).await? {
                // Read again under the lease: another replica may have stored a fresh
                // credential (and released its lease) between our read and our take, and
                // refreshing with the refresh token we read before would redeem a token
                // the provider has already rotated away.
                let current = self.current_credential(family_id).await?;
                if is_fresh(&current) {
                    self.store.release_refresh_lease(&lease).await?;
                    return self.opened(family_id, &current.sealed);
                }
                return self.refresh_with_lease(provider, &lease, &current).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AccessError::Unavailable("another replica is refreshing this grant".into()));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    /// The stored credential of an active grant.
    async fn current_credential(&self, family_id: &str) -> Result<UpstreamCredential, AccessError> {
        match self.store.upstream_credential(family_id).await? {
            Some(c) if c.family_status == FamilyStatus::Active => Ok(c),
            _ => Err(AccessError::NeedsLogin),
        }
    }

    /// We hold the lease: call the provider, store the result, and release.
    async fn refresh_with_lease(
        &self,
        provider: &Provider,
        lease: &Lease,
        current: &UpstreamCredential,
    ) -> Result<ProviderToken, AccessError> {
        let family_id = current.family_id.as_str();
        let secret = self.open(family_id, &current.sealed)?;
        let Some(refresh_token) = secret.refresh_token else {
            // Nothing to refresh with. A token that has not expired yet is still worth
            // using; one that has (or that the MCP upstream refused) means a new login.
            self.store.release_refresh_lease(lease).await?;
            if current.expires_at.is_some_and(|e| self.clock.now() < e) {
                return Ok(ProviderToken { token: secret.access_token, sealed: current.sealed.clone() });
            }
            return self.needs_login(family_id, "the upstream credential expired and has no refresh token").await;
        };
        let started = std::time::Instant::now();
        let result = provider.refresh(&refresh_token).await;
        let labels = ProviderLabels { provider: provider.name().to_owned() };
        self.metrics.upstream_refresh_seconds.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(_) => "ok",
            Err(UpstreamError::Rejected { .. }) => "permanent",
            Err(UpstreamError::Misconfigured(_)) => "misconfigured",
            Err(_) => "transient",
        };
        let labels = ProviderOutcome { provider: provider.name().to_owned(), outcome };
        self.metrics.upstream_refreshes.get_or_create(&labels).inc();
        if let Err(e) = &result {
            let event = Event::new("upstream.refresh_failed", self.clock.now()).grant(family_id);
            self.audit.record(event.reason(format!("{outcome}: {e}")));
        }
        match result {
            Ok(tokens) => {
                let renewed = UpstreamSecret {
                    access_token: tokens.access_token,
                    // Providers that do not rotate send no new refresh token: keep ours.
                    refresh_token: tokens.refresh_token.or(Some(refresh_token)),
                };
                let expires_at = tokens.expires_in.map(|s| self.clock.now() + s);
                let sealed = renewed.seal(&self.keys, family_id);
                match self.store.store_upstream_credential(lease, &sealed, expires_at).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Our lease ran out (the provider took longer than the lease) and
                        // another holder took over: its credential stands, not ours.
                        tracing::error!(family = family_id, "the refresh lease ran out before the result was stored");
                        return Err(AccessError::Unavailable("the refresh took longer than its lease".into()));
                    }
                    Err(e) => {
                        // The provider may have rotated its refresh token, which we now
                        // failed to keep; nothing better can be done than to say so loudly.
                        tracing::error!(family = family_id, error = %e, "refreshed upstream credential could not be stored");
                        return Err(e.into());
                    }
                }
                tracing::info!(provider = provider.name(), family = family_id, "upstream credential refreshed");
                Ok(ProviderToken { token: renewed.access_token, sealed })
            }
            Err(e @ UpstreamError::Rejected { .. }) => {
                tracing::warn!(provider = provider.name(), family = family_id, error = %e, "upstream refresh refused");
                self.needs_login(family_id, "the upstream provider refused to refresh").await
            }
            Err(e @ UpstreamError::Misconfigured(_)) => {
                // About the proxy, not the user: every grant that needs a refresh would
                // end for an operator's mistake (an expired client secret, a firewall).
                // Keep the grant; the same token works again once the provider answers.
                tracing::error!(
                    provider = provider.name(),
                    family = family_id,
                    error = %e,
                    "the provider refused the proxy's refresh request: check the provider's client_id, \
                     client secret and token endpoint; users keep their grants meanwhile"
                );
                let _ = self.store.release_refresh_lease(lease).await;
                Err(AccessError::Unavailable(e.to_string()))
            }
            Err(e) => {
                tracing::warn!(provider = provider.name(), family = family_id, error = %e, "upstream refresh failed; will retry");
                let _ = self.store.release_refresh_lease(lease).await;
                Err(AccessError::Unavailable(e.to_string()))
            }
        }
    }

    async fn needs_login(&self, family_id: &str, why: &str) -> Result<ProviderToken, AccessError> {
        if self.store.end_family(family_id, FamilyStatus::NeedsLogin, self.clock.now()).await? {
            self.metrics.grant_revoked("upstream_refusal");
            let event = Event::new("grant.revoked", self.clock.now()).grant(family_id);
            self.audit.record(event.reason("upstream_refusal"));
        }
        tracing::info!(family = family_id, why, "grant needs a new login");
        Err(AccessError::NeedsLogin)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn refresh_is_due_within_the_margin_and_never_without_expiry() {
        use super::needs_refresh;
        assert!(!needs_refresh(None, 1_000_000, 60));
        assert!(!needs_refresh(Some(1000), 939, 60));
        assert!(needs_refresh(Some(1000), 940, 60));
        assert!(needs_refresh(Some(1000), 2000, 60));
    }
}
