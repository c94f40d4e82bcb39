//! The cache of fetched Client ID Metadata Documents: bounded in bytes (least recently
//! used documents leave first, and only the fields the proxy uses are kept), and aged.
//!
//! A document is fresh for [`FRESH_SECS`]; after that it is stale: still used while it is
//! fetched again, so that a host that is slow or down for a while does not log its users
//! out. Past [`MAX_AGE_SECS`] it is dropped and must be fetched before its client is
//! accepted again: a host cannot keep a client alive forever by never answering.

use std::sync::Mutex;

use lru::LruCache;
use mcp_oauth_core::client::{Client, ClientMetadata};

/// How long a fetched document is used without fetching it again.
pub const FRESH_SECS: i64 = 300;
/// How long a fetched document may serve its client while it cannot be fetched again.
pub const MAX_AGE_SECS: i64 = 24 * 3600;
/// What an entry costs beyond its strings (the map slot, the list links, the struct).
const ENTRY_OVERHEAD: usize = 256;

/// A cached document, by its age.
#[derive(Debug)]
pub enum Cached {
    Fresh(Client),
    /// Past its freshness: use it, and fetch it again.
    Stale(Client),
}

/// Fetched documents by URL, least recently used first out, within a byte budget.
pub struct DocumentCache {
    inner: Mutex<Lru>,
    budget: usize,
}

struct Lru {
    entries: LruCache<String, Entry>,
    bytes: usize,
}

struct Entry {
    client: Client,
    fetched_at: i64,
    bytes: usize,
}

impl DocumentCache {
    pub fn new(budget: usize) -> Self {
        Self { inner: Mutex::new(Lru { entries: LruCache::unbounded(), bytes: 0 }), budget }
    }

    /// The document of `url`, unless it was never fetched or is past its maximum age (it
    /// is then dropped).
    pub fn get(&self, url: &str, now: i64) -> Option<Cached> {
        let mut lru = self.lock();
        let age = now - lru.entries.get(url)?.fetched_at;
        if age >= MAX_AGE_SECS {
            lru.remove(url);
            return None;
        }
        let client = lru.entries.get(url)?.client.clone();
        Some(if age < FRESH_SECS { Cached::Fresh(client) } else { Cached::Stale(client) })
    }

    /// Keeps `client` (only the fields the proxy uses), evicting the least recently used
    /// documents until the cache is within its budget. A document larger than the whole
    /// budget is not kept.
    pub fn insert(&self, url: &str, client: &Client, now: i64) {
        let client = slim(client);
        let bytes = footprint(url, &client);
        if bytes > self.budget {
            return;
        }
        let mut lru = self.lock();
        if let Some(old) = lru.entries.put(url.to_owned(), Entry { client, fetched_at: now, bytes }) {
            lru.bytes -= old.bytes;
        }
        lru.bytes += bytes;
        while lru.bytes > self.budget {
            let Some((_, evicted)) = lru.entries.pop_lru() else { break };
            lru.bytes -= evicted.bytes;
        }
    }

    /// Forgets the document of `url`: its host no longer serves a usable one.
    pub fn remove(&self, url: &str) {
        self.lock().remove(url);
    }

    /// The cache's own accounting: entries and bytes held.
    pub fn usage(&self) -> (usize, usize) {
        let lru = self.lock();
        (lru.entries.len(), lru.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Lru {
    fn remove(&mut self, url: &str) {
        if let Some(gone) = self.entries.pop(url) {
            self.bytes -= gone.bytes;
        }
    }
}

/// The client without what the proxy never reads (contacts, logos, policy links).
fn slim(client: &Client) -> Client {
    let m = &client.metadata;
    Client {
        metadata: ClientMetadata {
            redirect_uris: m.redirect_uris.clone(),
            token_endpoint_auth_method: m.token_endpoint_auth_method,
            grant_types: m.grant_types.clone(),
            response_types: m.response_types.clone(),
            client_name: m.client_name.clone(),
            scope: m.scope.clone(),
            client_uri: None,
            logo_uri: None,
            contacts: None,
            tos_uri: None,
            policy_uri: None,
            software_id: None,
            software_version: None,
            application_type: m.application_type,
            jwks: m.jwks.clone(),
            jwks_uri: m.jwks_uri.clone(),
        },
        ..client.clone()
    }
}

/// What an entry costs: its strings, twice for the URL (key and client id), and overhead.
fn footprint(url: &str, client: &Client) -> usize {
    let m = &client.metadata;
    let strings = |v: &[String]| v.iter().map(|s| s.len() + 24).sum::<usize>();
    ENTRY_OVERHEAD
        + 2 * url.len()
        + strings(&m.redirect_uris)
        + strings(&m.grant_types)
        + strings(&m.response_types)
        + m.client_name.as_ref().map_or(0, String::len)
        + m.scope.as_ref().map_or(0, String::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: usize) -> Client {
        let redirect_uris: Vec<String> = (0..uris).map(|i| format!("https://a.example/{i:0>2000}")).collect();
        let metadata = ClientMetadata::from_registration(&serde_json::json!({
            "redirect_uris": redirect_uris, "token_endpoint_auth_method": "none",
            "contacts": ["a@a.example"], "logo_uri": "https://a.example/logo.png",
        }))
        .unwrap();
        Client { client_id: "x".into(), secret_hash: None, metadata, trusted: false, created_at: 0 }
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_evicts_the_least_recently_used() {
        let cache = DocumentCache::new(200_000);
        for i in 0..100 {
            cache.insert(&format!("https://h{i}.example/c"), &client(20), 0);
            assert!(cache.usage().1 <= 200_000);
        }
        let (entries, bytes) = cache.usage();
        assert!(entries >= 3 && bytes > 100_000, "{entries} entries, {bytes} bytes");
        assert!(cache.get("https://h99.example/c", 1).is_some(), "the newest stays");
        assert!(cache.get("https://h0.example/c", 1).is_none(), "the oldest went first");
        let Some(Cached::Fresh(kept)) = cache.get("https://h99.example/c", 1) else { panic!("fresh") };
        assert!(kept.metadata.contacts.is_none() && kept.metadata.logo_uri.is_none(), "unused fields dropped");
    }

    #[test]
    fn entries_go_stale_then_expire_and_their_bytes_are_returned() {
        let cache = DocumentCache::new(1 << 20);
        cache.insert("https://a.example/c", &client(1), 0);
        assert!(matches!(cache.get("https://a.example/c", FRESH_SECS - 1), Some(Cached::Fresh(_))));
        assert!(matches!(cache.get("https://a.example/c", FRESH_SECS), Some(Cached::Stale(_))));
        assert!(matches!(cache.get("https://a.example/c", MAX_AGE_SECS - 1), Some(Cached::Stale(_))));
        assert!(cache.get("https://a.example/c", MAX_AGE_SECS).is_none());
        assert_eq!(cache.usage(), (0, 0));
        cache.insert("https://a.example/c", &client(1), 0);
        cache.insert("https://a.example/c", &client(2), MAX_AGE_SECS);
        assert!(matches!(cache.get("https://a.example/c", MAX_AGE_SECS), Some(Cached::Fresh(_))), "fetched again");
        cache.remove("https://a.example/c");
        assert_eq!(cache.usage(), (0, 0));
    }
}
