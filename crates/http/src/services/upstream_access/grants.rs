//! What this process keeps per grant for the MCP path: its provider access token already
//! opened, with the sealed credential it came from; whether the grant has been used here
//! before (so that a login attempt's last step, its grant's first MCP call, is logged
//! with the attempt's trace id); and when its use was last noted for the account page
//! (see `last_uses`). One entry, read under one lock per request.
//!
//! Every MCP request needs the user's provider token, and it is stored sealed: opening it
//! (XChaCha20-Poly1305 and JSON) was a few percent of the proxy's CPU per request. A
//! sealed value never changes; a refresh or a re-seal stores a new one (a fresh nonce),
//! so a token is used only while the sealed text it was opened from is the one presented,
//! and no invalidation is needed. The tokens are no more exposed than before: the process
//! holds the key that opens them all.
//!
//! The entries are split in shards by grant (`sharded_lru`), so that requests on different
//! serving threads rarely wait for the same lock; the grants kept are the ones in use.

use std::sync::Arc;

use crate::services::last_uses::NOTE_EVERY_SECS;
use crate::services::sharded_lru::ShardedLru;

/// Grants kept in all: the ones in use; others are opened again.
const CAPACITY: usize = 16_384;

pub struct GrantCache(ShardedLru<Entry>);

struct Entry {
    opened: Option<Opened>,
    /// When this grant's use was last noted (see `last_uses`).
    noted_at: i64,
}

struct Opened {
    sealed: String,
    access_token: Arc<str>,
}

/// What a request finds for its grant.
pub struct Seen {
    /// The access token opened from exactly the sealed value presented, if kept.
    pub access_token: Option<Arc<str>>,
    /// Whether this is the first time this process sees the grant (as far as it
    /// remembers: a grant not used for long may count as first again).
    pub first: bool,
    /// Whether this use is to be noted: the last note is `NOTE_EVERY_SECS` old.
    pub note_use: bool,
}

impl Default for GrantCache {
    fn default() -> Self {
        Self(ShardedLru::new(CAPACITY))
    }
}

impl GrantCache {
    /// Looks `family_id` up for a request presenting `sealed` at `now`, and marks the
    /// grant seen (and its use noted, when that is due).
    pub fn see(&self, family_id: &str, sealed: &str, now: i64) -> Seen {
        let mut shard = self.0.lock(family_id);
        match shard.get_mut(family_id) {
            Some(entry) => {
                let note_use = now >= entry.noted_at + NOTE_EVERY_SECS;
                if note_use {
                    entry.noted_at = now;
                }
                let access_token =
                    entry.opened.as_ref().filter(|o| o.sealed == sealed).map(|o| Arc::clone(&o.access_token));
                Seen { access_token, first: false, note_use }
            }
            None => {
                shard.put(family_id.to_owned(), Entry { opened: None, noted_at: now });
                Seen { access_token: None, first: true, note_use: true }
            }
        }
    }

    /// Keeps `access_token`, opened from `sealed`, for `family_id`.
    pub fn keep(&self, family_id: &str, sealed: &str, access_token: Arc<str>) {
        let opened = Some(Opened { sealed: sealed.to_owned(), access_token });
        let mut shard = self.0.lock(family_id);
        match shard.get_mut(family_id) {
            Some(entry) => entry.opened = opened,
            None => {
                // Not seen before (a refresh made by another path): its use is not noted.
                shard.put(family_id.to_owned(), Entry { opened, noted_at: i64::MIN / 2 });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(cache: &GrantCache, family_id: &str, sealed: &str) -> Option<String> {
        cache.see(family_id, sealed, 0).access_token.map(|t| t.to_string())
    }

    #[test]
    fn a_token_is_given_only_for_the_sealed_value_it_came_from() {
        let cache = GrantCache::default();
        cache.keep("f1", "sealed-1", "token-1".into());
        assert_eq!(token(&cache, "f1", "sealed-1").as_deref(), Some("token-1"));
        assert_eq!(token(&cache, "f1", "sealed-2"), None, "a refreshed credential is opened anew");
        assert_eq!(token(&cache, "f2", "sealed-1"), None);
        cache.keep("f1", "sealed-2", "token-2".into());
        assert_eq!(token(&cache, "f1", "sealed-1"), None);
        assert_eq!(token(&cache, "f1", "sealed-2").as_deref(), Some("token-2"));
    }

    #[test]
    fn a_grant_is_first_once_whether_or_not_its_token_was_kept() {
        let cache = GrantCache::default();
        assert!(cache.see("f1", "s", 0).first);
        assert!(!cache.see("f1", "s", 0).first);
        cache.keep("f2", "s", "t".into());
        assert!(!cache.see("f2", "s", 0).first, "kept by a request that saw it first");
    }

    #[test]
    fn a_use_is_noted_at_first_sight_then_at_most_every_five_minutes() {
        let cache = GrantCache::default();
        let noted = |now| cache.see("f1", "s", now).note_use;
        assert!(noted(1000), "the first use");
        assert!(!noted(1001));
        assert!(!noted(1000 + NOTE_EVERY_SECS - 1));
        assert!(noted(1000 + NOTE_EVERY_SECS));
        assert!(!noted(1000 + NOTE_EVERY_SECS + 1));
    }
}
