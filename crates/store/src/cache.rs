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
//!
//! Every MCP request reads it, from every serving thread: the map is split in shards
//! (by the token hash's first byte, which is uniform) so that readers on different
//! threads rarely touch the same lock word, and an entry is shared (`Arc`), so that a
//! hit copies no strings.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use mcp_oauth_core::token::TokenHash;

use crate::StoreError;
use crate::model::AccessTokenInfo;

/// More entries than this in a shard and the shard starts over (simple, and rare: one
/// entry per live access token, 100,000 in all).
const MAX_ENTRIES_PER_SHARD: usize = 100_000 / SHARDS;
const SHARDS: usize = 16;

type Shard = RwLock<HashMap<TokenHash, Arc<AccessTokenInfo>>>;

#[derive(Default)]
pub(crate) struct TokenCache {
    shards: [Shard; SHARDS],
    generation: AtomicU64,
}

impl TokenCache {
    /// The cached lookup of `hash`, or else `lookup`'s, which is cached unless an
    /// invalidation ran meanwhile.
    pub(crate) async fn find(
        &self,
        hash: &TokenHash,
        lookup: impl Future<Output = Result<Option<AccessTokenInfo>, StoreError>>,
    ) -> Result<Option<Arc<AccessTokenInfo>>, StoreError> {
        let shard = self.shard(hash);
        if let Some(hit) = shard.read().unwrap_or_else(|p| p.into_inner()).get(hash) {
            return Ok(Some(Arc::clone(hit)));
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let Some(info) = lookup.await?.map(Arc::new) else { return Ok(None) };
        let mut map = shard.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            if map.len() >= MAX_ENTRIES_PER_SHARD {
                map.clear();
            }
            map.insert(*hash, Arc::clone(&info));
        }
        Ok(Some(info))
    }

    fn shard(&self, hash: &TokenHash) -> &Shard {
        &self.shards[usize::from(hash.as_bytes()[0]) % SHARDS]
    }

    /// Forgets entries matching `pred`; lookups in flight will not cache their result.
    pub(crate) fn forget(&self, pred: impl Fn(&TokenHash, &AccessTokenInfo) -> bool) {
        // The counter moves first: a lookup that read it before (and may hold a row read
        // before the write) either inserts before its shard is cleaned below, or finds the
        // counter moved when it comes to insert.
        self.generation.fetch_add(1, Ordering::SeqCst);
        for shard in &self.shards {
            shard.write().unwrap_or_else(|p| p.into_inner()).retain(|h, info| !pred(h, info));
        }
    }

    pub(crate) fn forget_family(&self, family_id: &str) {
        self.forget(|_, info| info.upstream.family_id == family_id);
    }

    pub(crate) fn forget_all(&self) {
        self.forget(|_, _| true);
    }
}
