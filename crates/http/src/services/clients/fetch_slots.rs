//! Slots for fetching metadata documents: a bound on fetches in flight in all (each holds
//! up to a document's size) and a smaller one per host, so that hosts which stall (a few
//! attackers, or one host that is down) cannot hold every slot and lock out the clients
//! of other hosts. A fetch waits a little for a slot rather than failing at once.
//!
//! Hand-written over tokio's semaphores (which are fair: first come, first served), as
//! keyed semaphores are a few lines here and no well-kept crate offers them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hosts remembered before those nobody holds or waits for are swept out.
const SWEEP_ABOVE_HOSTS: usize = 10_000;

type Hosts = Arc<Mutex<HashMap<String, Arc<Semaphore>>>>;

pub struct FetchSlots {
    global: Arc<Semaphore>,
    per_host: usize,
    hosts: Hosts,
    wait: Duration,
}

/// The right to fetch one document from a host, until dropped.
pub struct Slot {
    _global: OwnedSemaphorePermit,
    _host: HostPermit,
}

struct HostPermit {
    permit: Option<OwnedSemaphorePermit>,
    host: String,
    hosts: Hosts,
}

impl FetchSlots {
    /// `global` fetches at once, at most `per_host` of them from one host; a fetch waits up
    /// to `wait` for its slot.
    pub fn new(global: usize, per_host: usize, wait: Duration) -> Self {
        Self { global: Arc::new(Semaphore::new(global)), per_host, hosts: Hosts::default(), wait }
    }

    /// A slot to fetch from `host`, or `None` if none came free in time.
    pub async fn acquire(&self, host: &str) -> Option<Slot> {
        let for_host = {
            let mut hosts = lock(&self.hosts);
            if hosts.len() > SWEEP_ABOVE_HOSTS {
                hosts.retain(|_, s| Arc::strong_count(s) > 1);
            }
            hosts.entry(host.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per_host))).clone()
        };
        let take = async {
            // The host's slot first: a host's own queue never holds global slots.
            let permit = for_host.acquire_owned().await.ok()?;
            let host = HostPermit { permit: Some(permit), host: host.to_owned(), hosts: self.hosts.clone() };
            let global = self.global.clone().acquire_owned().await.ok()?;
            Some(Slot { _global: global, _host: host })
        };
        tokio::time::timeout(self.wait, take).await.ok().flatten()
    }

    /// Hosts remembered (holding or waiting for a slot), for tests of the bookkeeping.
    #[cfg(test)]
    fn hosts(&self) -> usize {
        lock(&self.hosts).len()
    }
}

impl Drop for HostPermit {
    /// Forgets the host when nobody else holds or waits for its slots, so that naming many
    /// hosts does not grow the map; under the lock, as clones are only made under it.
    fn drop(&mut self) {
        let mut hosts = lock(&self.hosts);
        drop(self.permit.take());
        if hosts.get(&self.host).is_some_and(|s| Arc::strong_count(s) == 1) {
            hosts.remove(&self.host);
        }
    }
}

fn lock(hosts: &Hosts) -> MutexGuard<'_, HashMap<String, Arc<Semaphore>>> {
    hosts.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn one_host_cannot_take_every_slot() {
        let slots = FetchSlots::new(3, 2, WAIT);
        let a1 = slots.acquire("a.example").await.expect("a first slot");
        let _a2 = slots.acquire("a.example").await.expect("a second slot");
        assert!(slots.acquire("a.example").await.is_none(), "a third from one host waits, then gives up");
        let b = slots.acquire("b.example").await.expect("another host still gets one");
        assert!(slots.acquire("c.example").await.is_none(), "every slot taken");
        drop(b);
        let _c = slots.acquire("c.example").await.expect("a freed slot goes to the next host");
        drop(a1);
        assert!(slots.acquire("a.example").await.is_some(), "and a host's own freed slot to that host");
    }

    #[tokio::test]
    async fn a_waiting_fetch_gets_the_slot_freed_while_it_waits() {
        let slots = FetchSlots::new(1, 1, Duration::from_secs(5));
        let held = slots.acquire("a.example").await.unwrap();
        let release = async {
            tokio::time::sleep(WAIT).await;
            drop(held);
        };
        let (slot, ()) = tokio::join!(slots.acquire("b.example"), release);
        assert!(slot.is_some());
    }

    #[tokio::test]
    async fn hosts_are_forgotten_once_their_slots_are_free() {
        let slots = FetchSlots::new(4, 1, WAIT);
        let a = slots.acquire("a.example").await.unwrap();
        assert!(slots.acquire("a.example").await.is_none());
        let b = slots.acquire("b.example").await.unwrap();
        assert_eq!(slots.hosts(), 2);
        drop((a, b));
        assert_eq!(slots.hosts(), 0);
    }
}
