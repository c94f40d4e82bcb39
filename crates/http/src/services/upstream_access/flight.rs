//! One async lock per grant whose provider credential is being refreshed in this
//! process, held in a map only while someone uses it.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

type Lock = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub struct FlightLocks(Mutex<HashMap<String, Lock>>);

/// A place in one grant's flight: holds the grant's lock (to wait for, then hold) and
/// leaves the flight when dropped, whether the caller finished or was cancelled.
pub struct Flight<'a> {
    locks: &'a FlightLocks,
    family_id: String,
    lock: Option<Lock>,
}

impl FlightLocks {
    /// Joins the flight for `family_id`: everyone who joins while it is in use shares one
    /// lock.
    pub fn join(&self, family_id: &str) -> Flight<'_> {
        let lock = self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(family_id.to_owned()).or_default().clone();
        Flight { locks: self, family_id: family_id.to_owned(), lock: Some(lock) }
    }

    /// How many grants have a flight in this process (for tests and metrics).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Deref for Flight<'_> {
    type Target = tokio::sync::Mutex<()>;

    fn deref(&self) -> &Self::Target {
        self.lock.as_ref().expect("present until dropped")
    }
}

impl Drop for Flight<'_> {
    /// Forgets the lock when nobody else holds or waits for it. The map's reference and
    /// ours make two; anyone else in the flight holds a third (counted under the map's
    /// lock, so nobody can join meanwhile).
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lock) = self.lock.take()
            && Arc::strong_count(&lock) == 2
        {
            map.remove(&self.family_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_are_forgotten_when_the_last_holder_or_waiter_leaves_even_cancelled() {
        let locks = FlightLocks::default();
        let first = locks.join("f");
        let guard = first.lock().await;
        // A waiter that gives up (its future is dropped, as when a client goes away).
        let waiter = async {
            let second = locks.join("f");
            let _turn = second.lock().await;
        };
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), waiter).await.is_err());
        assert_eq!(locks.len(), 1, "the holder is still in flight");
        drop(guard);
        drop(first);
        assert_eq!(locks.len(), 0, "nobody left: forgotten");
    }
}
