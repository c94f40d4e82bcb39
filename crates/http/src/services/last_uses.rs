//! When each grant was last used on the MCP path, for the account page: recorded coarsely
//! so that the MCP path makes no write of its own. A request notes its grant's use at
//! most once every [`NOTE_EVERY_SECS`] per process (the per-grant entry of
//! `upstream_access` says when it is due, under the lock the request takes anyway); the
//! notes are written in one batch every [`FLUSH_EVERY`], off the request path. A time
//! read from the store is therefore at most about five and a half minutes behind the last
//! use. A process that stops writes what it noted since the last batch (`runtime::serve`);
//! one that is killed loses it, at most [`FLUSH_EVERY`]'s worth.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth_store::Store;

/// A grant's use is noted at most this often per process.
pub const NOTE_EVERY_SECS: i64 = 300;
/// Notes are written this often.
pub const FLUSH_EVERY: Duration = Duration::from_secs(30);
/// Notes kept between two writes at most (one per grant in use every five minutes, so
/// this is reached only under a flood of grants); more are dropped until the next write.
const MAX_PENDING: usize = 100_000;

#[derive(Default)]
pub struct LastUses {
    pending: Mutex<Vec<(String, i64)>>,
}

impl LastUses {
    pub fn note(&self, family_id: &str, at: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() < MAX_PENDING {
            pending.push((family_id.to_owned(), at));
        }
    }

    fn take(&self) -> Vec<(String, i64)> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes what was noted now; a failed write keeps nothing (the next use notes again).
    pub async fn flush(&self, store: &dyn Store) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.record_uses(&batch).await {
            tracing::debug!(error = %e, grants = batch.len(), "recording grants' last use failed");
        }
    }

    /// Writes the notes every `every` until this is dropped.
    pub fn record_every(self: &Arc<Self>, store: Arc<dyn Store>, every: Duration) {
        super::every(self, every, move |this| {
            let store = Arc::clone(&store);
            async move { this.flush(store.as_ref()).await }
        });
    }
}
