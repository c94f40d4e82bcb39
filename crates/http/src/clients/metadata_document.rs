//! Client ID Metadata Documents: fetching one, guarded against server-side request
//! forgery and abuse, and a cache of what was fetched that is bounded in bytes.
//!
//! Anyone can name any https URL as a client id, before any login, so everything here is
//! bounded: the cache by a byte budget (least recently used documents leave first, and
//! only the fields the proxy uses are kept), fetches per host by a rate, fetches in
//! flight by a count, each fetch by time and size.
//!
//! The SSRF guard: the fetching client resolves names only through [`GuardedResolver`],
//! which refuses a host if any of its addresses is internal (loopback, private,
//! link-local, metadata-service, an IPv6 form that embeds IPv4); it connects only to the
//! addresses that resolver returned, so a second DNS answer cannot swap in an internal
//! one; a host written as an address is checked the same way before the request; no
//! proxy from the environment is used (the checked address must be the one connected
//! to); redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use lru::LruCache;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::{Client, ClientMetadata};
use mcp_oauth_core::client_metadata_document::{is_forbidden_address, metadata_from_document};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::Semaphore;

use crate::metrics::{Metrics, OutcomeLabels};
use crate::settings::MetadataDocumentSettings;

/// Documents larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// A fetch (resolution, connection and body together) may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is trusted before it is fetched again.
const TTL_SECS: i64 = 300;
/// Fetches in flight at once, whatever their hosts: each holds up to a document's size.
const MAX_CONCURRENT_FETCHES: usize = 32;
/// What an entry costs beyond its strings (the map slot, the list links, the struct).
const ENTRY_OVERHEAD: usize = 256;

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

    pub fn get(&self, url: &str, now: i64) -> Option<Client> {
        let mut lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = lru.entries.get(url).filter(|e| now - e.fetched_at < TTL_SECS).map(|e| e.client.clone());
        if fresh.is_none()
            && let Some(stale) = lru.entries.pop(url)
        {
            lru.bytes -= stale.bytes;
        }
        fresh
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
        let mut lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = lru.entries.put(url.to_owned(), Entry { client, fetched_at: now, bytes }) {
            lru.bytes -= old.bytes;
        }
        lru.bytes += bytes;
        while lru.bytes > self.budget {
            let Some((_, evicted)) = lru.entries.pop_lru() else { break };
            lru.bytes -= evicted.bytes;
        }
    }

    /// The cache's own accounting: entries and bytes held.
    pub fn usage(&self) -> (usize, usize) {
        let lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (lru.entries.len(), lru.bytes)
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

/// Fetches documents within the per-host rate and the global count of fetches in flight.
pub struct Fetcher {
    allow_loopback: bool,
    per_host: DefaultKeyedRateLimiter<String>,
    in_flight: Semaphore,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Fetcher {
    pub fn new(settings: &MetadataDocumentSettings, metrics: Arc<Metrics>) -> Self {
        let per_minute = NonZeroU32::new(settings.fetches_per_host_per_minute).unwrap_or(NonZeroU32::MIN);
        mcp_oauth_upstream::http_client::install_crypto_provider();
        let resolver = GuardedResolver { allow_loopback: settings.allow_loopback };
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(FETCH_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("mcp-oauth-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is static and valid");
        Self {
            allow_loopback: settings.allow_loopback,
            per_host: RateLimiter::keyed(Quota::per_minute(per_minute)),
            in_flight: Semaphore::new(MAX_CONCURRENT_FETCHES),
            http,
            metrics,
        }
    }

    /// The public client a document describes. The caller learns only that the document
    /// could not be used; why (DNS, connection, TLS, size, validation) goes to the log.
    pub async fn client(&self, url: &str, now: i64) -> Result<Client, OAuthError> {
        let result = self.fetch_client(url, now).await;
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        self.metrics.metadata_document_fetches.get_or_create(&OutcomeLabels { outcome }).inc();
        result
    }

    async fn fetch_client(&self, url: &str, now: i64) -> Result<Client, OAuthError> {
        let refused = |why: &str| {
            tracing::info!(client_id = url, why, "client metadata document refused");
            OAuthError::invalid_client("the client metadata document could not be used")
        };
        let parsed = url::Url::parse(url).map_err(|e| refused(&format!("not a URL: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        if self.per_host.check_key(&host).is_err() {
            return Err(refused("too many fetches from this host; try again in a minute"));
        }
        // Forget hosts whose allowance is full again, so that naming many hosts does not
        // grow the limiter without bound.
        if self.per_host.len() > 10_000 {
            self.per_host.retain_recent();
        }
        let Ok(_permit) = self.in_flight.try_acquire() else {
            return Err(refused("too many documents are being fetched at once"));
        };
        // Names go through the guarded resolver; an address in the URL is checked here.
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| forbidden(ip, self.allow_loopback)) {
            return Err(refused("the host is an internal address"));
        }
        let doc = self.fetch(parsed).await.map_err(|why| refused(&why))?;
        let metadata = metadata_from_document(url, &doc).map_err(|e| refused(&e.description))?;
        Ok(Client { client_id: url.to_owned(), secret_hash: None, metadata, trusted: false, created_at: now })
    }

    async fn fetch(&self, url: url::Url) -> Result<serde_json::Value, String> {
        let describe = |e: reqwest::Error| {
            let mut detail = String::from(if e.is_timeout() { "timed out" } else { "request failed" });
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                detail = format!("{detail}: {s}");
                source = s.source();
            }
            detail
        };
        let request = self.http.get(url).header("accept", "application/json");
        let mut resp = request.send().await.map_err(|e| format!("fetching failed: {}", describe(e)))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("the document answered HTTP {}", resp.status()));
        }
        if resp.content_length().is_some_and(|len| len as usize > MAX_DOCUMENT_BYTES) {
            return Err("the document is too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading failed: {}", describe(e)))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err("the document is too large".into());
            }
        }
        serde_json::from_slice(&body).map_err(|_| "the document is not JSON".into())
    }
}

fn forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    is_forbidden_address(ip) && !(allow_loopback && ip.is_loopback())
}

/// Resolves a document's host and refuses it if any address is internal: a name that
/// answers with one public and one internal address may be connected to either.
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let lookup = tokio::net::lookup_host((name.as_str(), 0));
            let addrs: Vec<SocketAddr> = tokio::time::timeout(FETCH_TIMEOUT, lookup)
                .await
                .map_err(|_| "resolving the host timed out")??
                .collect();
            if addrs.is_empty() {
                return Err("the host has no address".into());
            }
            if addrs.iter().any(|a| forbidden(a.ip(), allow_loopback)) {
                return Err("the host resolves to an internal address".into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str, uris: usize) -> Client {
        let redirect_uris: Vec<String> = (0..uris).map(|i| format!("https://a.example/{i:0>2000}")).collect();
        let metadata = ClientMetadata::from_registration(&serde_json::json!({
            "redirect_uris": redirect_uris, "token_endpoint_auth_method": "none",
            "contacts": ["a@a.example"], "logo_uri": "https://a.example/logo.png",
        }))
        .unwrap();
        Client { client_id: url.to_owned(), secret_hash: None, metadata, trusted: false, created_at: 0 }
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_evicts_the_least_recently_used() {
        let cache = DocumentCache::new(200_000);
        for i in 0..100 {
            cache.insert(&format!("https://h{i}.example/c"), &client("x", 20), 0);
            assert!(cache.usage().1 <= 200_000);
        }
        let (entries, bytes) = cache.usage();
        assert!(entries >= 3 && bytes > 100_000, "{entries} entries, {bytes} bytes");
        assert!(cache.get("https://h99.example/c", 1).is_some(), "the newest stays");
        assert!(cache.get("https://h0.example/c", 1).is_none(), "the oldest went first");
        let kept = cache.get("https://h99.example/c", 1).unwrap();
        assert!(kept.metadata.contacts.is_none() && kept.metadata.logo_uri.is_none(), "unused fields dropped");
    }

    #[test]
    fn entries_expire_and_their_bytes_are_returned() {
        let cache = DocumentCache::new(1 << 20);
        cache.insert("https://a.example/c", &client("x", 1), 0);
        assert!(cache.get("https://a.example/c", TTL_SECS - 1).is_some());
        assert!(cache.get("https://a.example/c", TTL_SECS).is_none());
        assert_eq!(cache.usage(), (0, 0));
    }
}
