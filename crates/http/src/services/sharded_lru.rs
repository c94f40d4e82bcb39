//! A map of recently used entries by key, split in shards, each an LRU behind its own lock:
//! what the MCP path keeps per grant (`upstream_access::grants`, `identities`). Every
//! serving thread reads it on every request; one lock for all would make them queue on
//! the same word, where 16 rarely meet.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

const SHARDS: usize = 16;

pub struct ShardedLru<V> {
    shards: [Mutex<LruCache<String, V>>; SHARDS],
    hasher: RandomState,
}

impl<V> ShardedLru<V> {
    /// Keeps about `capacity` entries in all (the most recently used of each shard).
    pub fn new(capacity: usize) -> Self {
        let per_shard = NonZeroUsize::new(capacity.div_ceil(SHARDS)).unwrap_or(NonZeroUsize::MIN);
        Self { shards: std::array::from_fn(|_| Mutex::new(LruCache::new(per_shard))), hasher: RandomState::new() }
    }

    /// The shard that holds `key`, locked.
    pub fn lock(&self, key: &str) -> MutexGuard<'_, LruCache<String, V>> {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }
}
