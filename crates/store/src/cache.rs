//! An in-process cache of access-token lookups, a part of the SQLite store.
//!
//! The MCP path checks a token on every request. A SQLite database belongs to one proxy
//! process (replicas use PostgreSQL), so every write that can change what a lookup returns
//! is one of this process's store's own (which forget what they change, see
//! `sqlite::SqliteStore`), or another process's (the admin command line), which counts
//! itself in `mop_changes` and is seen by `SqliteStore::watch_changes` within a second. So the
//! cache can be exact: it is invalidated by those writes, never by a timer. PostgreSQL
//! has no such cache: another replica's revocation must be seen at once.
//!
//! A lookup that races an invalidation must not re-insert what it read before the write;
//! a generation counter, bumped by every invalidation, tells it not to.

use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use mcp_oauth_core::token::TokenHash;

use crate::StoreError;
use crate::model::AccessTokenInfo;

/// More entries than this and the cache starts over (simple, and rare: one entry per
/// live access token).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub(crate) struct TokenCache {
    tokens: RwLock<HashMap<TokenHash, AccessTokenInfo>>,
    generation: AtomicU64,
}

impl TokenCache {
    /// The cached lookup of `hash`, or else `lookup`'s, which is cached unless an
    /// invalidation ran meanwhile.
    pub(crate) async fn find(
        &self,
        hash: &TokenHash,
        lookup: impl Future<Output = Result<Option<AccessTokenInfo>, StoreError>>,
    ) -> Result<Option<AccessTokenInfo>, StoreError> {
        if let Some(hit) = self.tokens.read().unwrap_or_else(|p| p.into_inner()).get(hash) {
            return Ok(Some(hit.clone()));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = lookup.await?;
        if let Some(info) = &found {
            let mut map = self.tokens.write().unwrap_or_else(|p| p.into_inner());
            if self.generation.load(Ordering::SeqCst) == generation {
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
                map.insert(*hash, info.clone());
            }
        }
        Ok(found)
    }

    /// Forgets entries matching `pred`; lookups in flight will not cache their result.
    pub(crate) fn forget(&self, pred: impl Fn(&TokenHash, &AccessTokenInfo) -> bool) {
        let mut map = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        map.retain(|h, info| !pred(h, info));
    }

    pub(crate) fn forget_family(&self, family_id: &str) {
        self.forget(|_, info| info.upstream.family_id == family_id);
    }

    pub(crate) fn forget_all(&self) {
        self.forget(|_, _| true);
    }
}
