//! One async lock per grant whose provider credential is being refreshed in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct FlightLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl FlightLocks {
    /// The lock for `family_id`, shared by everyone who asks while it is in use.
    pub fn get(&self, family_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(family_id.to_owned()).or_default().clone()
    }

    /// Forgets the lock when nobody else holds or waits for it, so the map holds only
    /// grants being refreshed right now. The map's own reference and the caller's make
    /// two; anyone else still using it holds a third (checked under the map's lock, so
    /// nobody can take a new reference meanwhile).
    pub fn done(&self, family_id: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&lock) == 2 {
            map.remove(family_id);
        }
    }
}
