//! The last step of a login attempt: its grant's first MCP call.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

/// Grants whose first MCP call this process has seen (the most recent ones), so that the
/// last step of a login attempt, its first call, is logged with the attempt's trace id.
pub struct FirstCalls(Mutex<LruCache<String, ()>>);

impl Default for FirstCalls {
    fn default() -> Self {
        Self(Mutex::new(LruCache::new(NonZeroUsize::new(10_000).expect("not zero"))))
    }
}

impl FirstCalls {
    pub fn is_first(&self, grant_id: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.put(grant_id.to_owned(), ()).is_none()
    }
}
