//! An in-process cache of access-token lookups, for the embedded SQLite backend.
//!
//! The MCP path checks a token on every request. With SQLite, sqlx hands each query to a
//! per-connection worker thread; under load those hand-offs cost more than the proxying
//! itself. A SQLite database belongs to one proxy process (replicas use PostgreSQL), so
//! every write that can change what a lookup returns passes through this very object,
//! and the cache can be exact: it is invalidated by those writes, never by a timer.
//!
//! A lookup that races an invalidation must not re-insert what it read before the write;
//! a generation counter, bumped by every invalidation, tells it not to.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;

use crate::model::*;
use crate::{Backend, Retention, Rotation, Store, StoreError};

/// More entries than this and the cache starts over (simple, and rare: one entry per
/// live access token).
const MAX_ENTRIES: usize = 100_000;

pub struct CachedStore<S> {
    inner: S,
    tokens: RwLock<HashMap<TokenHash, AccessTokenInfo>>,
    generation: AtomicU64,
}

impl<S: Store> CachedStore<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, tokens: RwLock::default(), generation: AtomicU64::new(0) }
    }

    /// Forgets entries matching `pred`; lookups in flight will not cache their result.
    fn invalidate(&self, pred: impl Fn(&TokenHash, &AccessTokenInfo) -> bool) {
        let mut map = self.tokens.write().unwrap();
        self.generation.fetch_add(1, Ordering::SeqCst);
        map.retain(|h, info| !pred(h, info));
    }

    fn forget_family(&self, family_id: &str) {
        self.invalidate(|_, info| info.family_id == family_id);
    }

    /// Forgets everything when another process (the admin command line) has changed grants
    /// since the last look. Checked every `every` while the store lives, so such a change
    /// is seen within that time; a failed check is retried at the next.
    pub async fn watch_changes(self: &std::sync::Arc<Self>, every: std::time::Duration) {
        // Read now, not at the first tick: a change made before then must count as one.
        let mut seen = self.inner.changes().await.ok();
        let weak = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(store) = weak.upgrade() else { return };
                match store.inner.changes().await {
                    Ok(now) if seen.is_some_and(|s| s != now) => {
                        store.invalidate(|_, _| true);
                        seen = Some(now);
                    }
                    Ok(now) => seen = Some(now),
                    Err(e) => tracing::debug!(error = %e, "checking for outside changes failed; will retry"),
                }
            }
        });
    }
}

#[async_trait]
impl<S: Store> Store for CachedStore<S> {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn find_access_token(&self, hash: &TokenHash) -> Result<Option<AccessTokenInfo>, StoreError> {
        if let Some(hit) = self.tokens.read().unwrap().get(hash) {
            return Ok(Some(hit.clone()));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = self.inner.find_access_token(hash).await?;
        if let Some(info) = &found {
            let mut map = self.tokens.write().unwrap();
            if self.generation.load(Ordering::SeqCst) == generation {
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
                map.insert(*hash, info.clone());
            }
        }
        Ok(found)
    }

    async fn revoke_access_token(&self, hash: &TokenHash, now: i64) -> Result<bool, StoreError> {
        let result = self.inner.revoke_access_token(hash, now).await;
        self.invalidate(|h, _| h == hash);
        result
    }

    async fn end_family(&self, family_id: &str, status: FamilyStatus, now: i64) -> Result<bool, StoreError> {
        let result = self.inner.end_family(family_id, status, now).await;
        self.forget_family(family_id);
        result
    }

    async fn store_upstream_credential(
        &self,
        lease: &Lease,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let result = self.inner.store_upstream_credential(lease, sealed, expires_at).await;
        self.forget_family(&lease.family_id);
        result
    }

    async fn purge_expired(&self, now: i64, retention: Retention) -> Result<Purged, StoreError> {
        let result = self.inner.purge_expired(now, retention).await;
        self.invalidate(|_, info| info.expires_at <= now);
        result
    }

    // Everything else cannot change a cached lookup and goes straight through.

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn insert_client(&self, server: &str, client: &Client) -> Result<(), StoreError> {
        self.inner.insert_client(server, client).await
    }
    async fn find_client(&self, server: &str, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.inner.find_client(server, client_id).await
    }
    async fn insert_pending(
        &self,
        pending: &PendingAuthorization,
        now: i64,
        caps: PendingCaps,
    ) -> Result<bool, StoreError> {
        self.inner.insert_pending(pending, now, caps).await
    }
    async fn take_pending(
        &self,
        state_hash: &TokenHash,
        browser_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        self.inner.take_pending(state_hash, browser_hash, now).await
    }
    async fn create_family(&self, family: &NewFamily, code: &NewCode) -> Result<(), StoreError> {
        self.inner.create_family(family, code).await
    }
    async fn find_code(&self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        self.inner.find_code(hash).await
    }
    async fn redeem_code(&self, hash: &TokenHash, now: i64, pair: &NewTokenPair) -> Result<bool, StoreError> {
        self.inner.redeem_code(hash, now, pair).await
    }
    async fn find_refresh_token(&self, hash: &TokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        self.inner.find_refresh_token(hash).await
    }
    async fn rotate_refresh_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: i64,
        grace_secs: i64,
        pair: &NewTokenPair,
        successor_sealed: &str,
    ) -> Result<Rotation, StoreError> {
        self.inner.rotate_refresh_token(hash, client_id, now, grace_secs, pair, successor_sealed).await
    }
    async fn upstream_credential(&self, family_id: &str) -> Result<Option<UpstreamCredential>, StoreError> {
        self.inner.upstream_credential(family_id).await
    }
    async fn take_refresh_lease(&self, family_id: &str, lease_secs: i64) -> Result<Option<Lease>, StoreError> {
        self.inner.take_refresh_lease(family_id, lease_secs).await
    }

    async fn release_refresh_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.inner.release_refresh_lease(lease).await
    }

    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        self.inner.list_clients().await
    }

    async fn delete_client(&self, client_id: &str, now: i64) -> Result<u64, StoreError> {
        let result = self.inner.delete_client(client_id, now).await;
        self.invalidate(|_, info| info.client_id == client_id);
        result
    }

    async fn list_grants(&self, filter: &GrantFilter, limit: i64) -> Result<Vec<GrantSummary>, StoreError> {
        self.inner.list_grants(filter, limit).await
    }

    async fn revoke_grants(&self, filter: &GrantFilter, now: i64) -> Result<u64, StoreError> {
        let result = self.inner.revoke_grants(filter, now).await;
        self.invalidate(|_, _| true);
        result
    }

    async fn revocations_since(&self, since: i64) -> Result<RevokedSince, StoreError> {
        self.inner.revocations_since(since).await
    }

    async fn changes(&self) -> Result<i64, StoreError> {
        self.inner.changes().await
    }

    async fn sealed_key_usage(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.sealed_key_usage().await
    }

    async fn sealed_with_other_keys(&self, current_key_id: &str, limit: i64) -> Result<Vec<SealedValue>, StoreError> {
        self.inner.sealed_with_other_keys(current_key_id, limit).await
    }

    async fn pin_tools(&self, server: &str, seen: &[SeenTool], now: i64) -> Result<Vec<String>, StoreError> {
        self.inner.pin_tools(server, seen, now).await
    }

    async fn tool_pins(&self, server: Option<&str>) -> Result<Vec<ToolPin>, StoreError> {
        self.inner.tool_pins(server).await
    }

    async fn changed_tools(&self, server: &str) -> Result<Vec<String>, StoreError> {
        self.inner.changed_tools(server).await
    }

    async fn accept_tool_change(
        &self,
        server: &str,
        tool: &str,
        expected_digest: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.inner.accept_tool_change(server, tool, expected_digest, now).await
    }

    async fn reseal(&self, value: &SealedValue, resealed: &str) -> Result<bool, StoreError> {
        let result = self.inner.reseal(value, resealed).await;
        // Cached lookups carry the provider credential as it was sealed before.
        if let SealedKind::ProviderCredential { family_id } = &value.kind {
            self.forget_family(family_id);
        }
        result
    }
}
