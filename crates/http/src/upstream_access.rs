//! A usable upstream access token for a family, refreshed once when it needs to be.
//!
//! The fast path opens the sealed credential read together with the client's token and
//! returns it. The slow path (expiring soon, or the upstream MCP server just answered
//! 401) is single-flight at two levels:
//! - in this process, one async mutex per family: concurrent requests queue behind the
//!   first, then re-read the credential it stored (field lesson 3: re-read after the lock);
//! - across replicas, a lease row in the database: a replica that cannot take it waits
//!   for the holder's result instead of redeeming the same upstream refresh token twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_upstream::{Provider, UpstreamError};

use crate::app::App;
use crate::oauth::upstream_credential::UpstreamSecret;

/// How long one replica may hold the right to refresh before others may take over:
/// longer than a provider call may take (30 s), so a live holder never loses it.
const LEASE_SECS: i64 = 45;
const LEASE_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The upstream grant is gone for good: the user must log in again.
    #[error("the upstream grant needs a new login")]
    NeedsLogin,
    /// The provider or the database is unavailable right now; the grant is kept.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why the slow path is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The credential expires within the provider's margin (or has expired).
    Expiring,
    /// The upstream MCP server refused the credential we sent (sealed as given).
    Rejected,
}

/// An upstream access token and the sealed credential it was opened from (to recognise,
/// after the upstream refuses it, whether someone has refreshed since).
#[derive(Debug, Clone)]
pub struct UpstreamAccess {
    pub token: String,
    pub sealed: String,
}

#[derive(Default)]
pub struct FlightLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl FlightLocks {
    fn get(&self, family_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().unwrap().entry(family_id.to_owned()).or_default().clone()
    }

    /// Forgets the lock when nobody else holds or waits for it.
    fn done(&self, family_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.0.lock().unwrap();
        if Arc::strong_count(&lock) == 2 {
            map.remove(family_id);
        }
    }
}

pub fn needs_refresh(expires_at: Option<i64>, now: i64, margin: i64) -> bool {
    expires_at.is_some_and(|e| now >= e - margin)
}

fn open(app: &App, family_id: &str, sealed: &str) -> Result<UpstreamSecret, AccessError> {
    UpstreamSecret::open(&app.keys, family_id, sealed).map_err(|e| {
        tracing::error!(family = family_id, error = %e, "cannot open the sealed upstream credential");
        AccessError::Internal("cannot open the upstream credential".into())
    })
}

fn store_err(e: mcp_oauth_store::StoreError) -> AccessError {
    match e {
        mcp_oauth_store::StoreError::Unavailable(d) => AccessError::Unavailable(d),
        other => AccessError::Internal(other.to_string()),
    }
}

impl App {
    /// The upstream access token to send for `family_id`, given the credential as read
    /// with the client's token.
    pub async fn upstream_access_token(
        &self,
        provider: &Provider,
        family_id: &str,
        sealed: &str,
        expires_at: Option<i64>,
        trigger: Option<Trigger>,
    ) -> Result<UpstreamAccess, AccessError> {
        let margin = provider.settings().refresh_margin_secs;
        if trigger.is_none() && !needs_refresh(expires_at, self.now(), margin) {
            let token = open(self, family_id, sealed)?.access_token;
            return Ok(UpstreamAccess { token, sealed: sealed.to_owned() });
        }
        let trigger = trigger.unwrap_or(Trigger::Expiring);
        let lock = self.flight_locks.get(family_id);
        let result = {
            let _turn = lock.lock().await;
            self.refresh_upstream(provider, family_id, sealed, trigger).await
        };
        self.flight_locks.done(family_id, lock);
        result
    }

    async fn refresh_upstream(
        &self,
        provider: &Provider,
        family_id: &str,
        seen_sealed: &str,
        trigger: Trigger,
    ) -> Result<UpstreamAccess, AccessError> {
        let margin = provider.settings().refresh_margin_secs;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(LEASE_SECS as u64 + 5);
        let is_fresh = |sealed: &str, expires_at: Option<i64>| match trigger {
            Trigger::Expiring => !needs_refresh(expires_at, self.now(), margin),
            Trigger::Rejected => sealed != seen_sealed,
        };
        loop {
            // Someone (a request before us, or another replica) may have refreshed already.
            let current = self.current_credential(family_id).await?;
            if is_fresh(&current.sealed, current.expires_at) {
                let token = open(self, family_id, &current.sealed)?.access_token;
                return Ok(UpstreamAccess { token, sealed: current.sealed });
            }
            if self.store.take_refresh_lease(family_id, self.now(), LEASE_SECS).await.map_err(store_err)? {
                // Read again under the lease: another replica may have stored a fresh
                // credential (and released its lease) between our read and our take, and
                // refreshing with the refresh token we read before would redeem a token
                // the provider has already rotated away.
                let current = self.current_credential(family_id).await?;
                if is_fresh(&current.sealed, current.expires_at) {
                    self.store.release_refresh_lease(family_id).await.map_err(store_err)?;
                    let token = open(self, family_id, &current.sealed)?.access_token;
                    return Ok(UpstreamAccess { token, sealed: current.sealed });
                }
                let secret = open(self, family_id, &current.sealed)?;
                return self.refresh_with_lease(provider, family_id, secret, &current.sealed, current.expires_at).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AccessError::Unavailable("another replica is refreshing this grant".into()));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
    }

    /// The stored credential of an active family.
    async fn current_credential(&self, family_id: &str) -> Result<mcp_oauth_store::UpstreamCredential, AccessError> {
        match self.store.upstream_credential(family_id).await.map_err(store_err)? {
            Some(c) if c.family_status == FamilyStatus::Active => Ok(c),
            _ => Err(AccessError::NeedsLogin),
        }
    }

    /// We hold the lease: call the provider, store the result, and release.
    async fn refresh_with_lease(
        &self,
        provider: &Provider,
        family_id: &str,
        secret: UpstreamSecret,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<UpstreamAccess, AccessError> {
        let Some(refresh_token) = secret.refresh_token.clone() else {
            // Nothing to refresh with. A token that has not expired yet is still worth
            // using; one that has (or that upstream refused) means a new login.
            let still_valid = expires_at.is_some_and(|e| self.now() < e);
            self.store.release_refresh_lease(family_id).await.map_err(store_err)?;
            if still_valid {
                return Ok(UpstreamAccess { token: secret.access_token, sealed: sealed.to_owned() });
            }
            return self.needs_login(family_id, "the upstream credential expired and has no refresh token").await;
        };
        match provider.refresh(&refresh_token).await {
            Ok(tokens) => {
                let renewed = UpstreamSecret {
                    access_token: tokens.access_token.clone(),
                    // Providers that do not rotate send no new refresh token: keep ours.
                    refresh_token: tokens.refresh_token.clone().or(Some(refresh_token)),
                };
                let new_expiry = tokens.expires_in.map(|s| self.now() + s);
                let sealed = renewed.seal(&self.keys, family_id);
                if let Err(e) = self.store.store_upstream_credential(family_id, &sealed, new_expiry).await {
                    // The provider may have rotated its refresh token, which we now failed
                    // to keep; nothing better can be done than to say so loudly.
                    tracing::error!(family = family_id, error = %e, "refreshed upstream credential could not be stored");
                    return Err(store_err(e));
                }
                tracing::info!(provider = provider.name(), family = family_id, "upstream credential refreshed");
                Ok(UpstreamAccess { token: renewed.access_token, sealed })
            }
            Err(e @ UpstreamError::Rejected { .. }) => {
                tracing::warn!(provider = provider.name(), family = family_id, error = %e, "upstream refresh refused");
                self.needs_login(family_id, "the upstream provider refused to refresh").await
            }
            Err(e) => {
                tracing::warn!(provider = provider.name(), family = family_id, error = %e, "upstream refresh failed; will retry");
                let _ = self.store.release_refresh_lease(family_id).await;
                Err(AccessError::Unavailable(e.to_string()))
            }
        }
    }

    async fn needs_login(&self, family_id: &str, why: &str) -> Result<UpstreamAccess, AccessError> {
        self.store.end_family(family_id, FamilyStatus::NeedsLogin, self.now()).await.map_err(store_err)?;
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
