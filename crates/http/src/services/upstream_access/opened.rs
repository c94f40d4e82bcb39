//! Provider access tokens already opened, by grant, each with the sealed credential it
//! came from.
//!
//! Every MCP request needs the user's provider token, and it is stored sealed: opening it
//! (ChaCha20-Poly1305 and JSON) was a few percent of the proxy's CPU per request. A sealed
//! value never changes; a refresh or a re-seal stores a new one (a fresh nonce), so an
//! entry is used only while the sealed text it was opened from is the one presented, and
//! no invalidation is needed. The tokens are no more exposed than before: the process
//! holds the key that opens them all.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// Grants whose tokens are kept opened: the ones in use; others are opened again.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(16_384).expect("not zero");

pub struct Opened(Mutex<LruCache<String, Entry>>);

struct Entry {
    sealed: String,
    access_token: String,
}

impl Default for Opened {
    fn default() -> Self {
        Self(Mutex::new(LruCache::new(CAPACITY)))
    }
}

impl Opened {
    /// The access token opened from exactly `sealed` for `family_id`, if kept.
    pub fn get(&self, family_id: &str, sealed: &str) -> Option<String> {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(family_id).filter(|e| e.sealed == sealed).map(|e| e.access_token.clone())
    }

    pub fn put(&self, family_id: &str, sealed: &str, access_token: &str) {
        let entry = Entry { sealed: sealed.to_owned(), access_token: access_token.to_owned() };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).put(family_id.to_owned(), entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_given_only_for_the_sealed_value_it_came_from() {
        let opened = Opened::default();
        opened.put("f1", "sealed-1", "token-1");
        assert_eq!(opened.get("f1", "sealed-1").as_deref(), Some("token-1"));
        assert_eq!(opened.get("f1", "sealed-2"), None, "a refreshed credential is opened anew");
        assert_eq!(opened.get("f2", "sealed-1"), None);
        opened.put("f1", "sealed-2", "token-2");
        assert_eq!(opened.get("f1", "sealed-1"), None);
        assert_eq!(opened.get("f1", "sealed-2").as_deref(), Some("token-2"));
    }
}
