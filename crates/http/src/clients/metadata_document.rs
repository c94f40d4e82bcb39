//! Client ID Metadata Documents: fetching one, guarded against server-side request
//! forgery, and a short-lived cache of what was fetched.
//!
//! The guard: the host is resolved first and every address checked (no loopback,
//! private, link-local or metadata-service targets), the connection is pinned to a
//! checked address (so a second DNS answer cannot swap in an internal one), redirects are
//! not followed, and time and size are capped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::client_metadata_document::{is_forbidden_address, metadata_from_document};

/// Documents larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// A fetch (resolution, connection and body together) may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched document is trusted before it is fetched again.
const TTL_SECS: i64 = 300;
/// More entries than this and the cache starts over.
const MAX_ENTRIES: usize = 10_000;

/// Fetched documents by URL, with the time they were fetched.
#[derive(Default)]
pub struct DocumentCache(Mutex<HashMap<String, (Client, i64)>>);

impl DocumentCache {
    pub fn get(&self, url: &str, now: i64) -> Option<Client> {
        let cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(url).filter(|(_, fetched_at)| now - fetched_at < TTL_SECS).map(|(c, _)| c.clone())
    }

    pub fn insert(&self, url: &str, client: &Client, now: i64) {
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(url.to_owned(), (client.clone(), now));
    }
}

/// The public client a document describes. The caller sees a generic refusal; the reason
/// goes to the log.
pub async fn fetch_client(url: &str, allow_loopback: bool, now: i64) -> Result<Client, OAuthError> {
    let doc = fetch(url, allow_loopback).await.map_err(|why| {
        tracing::info!(client_id = url, why, "client metadata document refused");
        OAuthError::invalid_client(format!("the client metadata document cannot be used: {why}"))
    })?;
    let metadata = metadata_from_document(url, &doc)?;
    Ok(Client { client_id: url.to_owned(), secret_hash: None, metadata, trusted: false, created_at: now })
}

async fn fetch(url: &str, allow_loopback: bool) -> Result<serde_json::Value, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?.to_owned();
    let port = parsed.port_or_known_default().ok_or("the URL has no port")?;
    let lookup_host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(FETCH_TIMEOUT, tokio::net::lookup_host((lookup_host.as_str(), port)))
            .await
            .map_err(|_| "resolving the host timed out".to_owned())?
            .map_err(|e| format!("cannot resolve the host: {e}"))?
            .collect();
    let first = *addrs.first().ok_or("the host has no address")?;
    for addr in &addrs {
        let ip = addr.ip();
        if is_forbidden_address(ip) && !(allow_loopback && ip.is_loopback()) {
            return Err("the host resolves to an internal address".into());
        }
    }
    mcp_oauth_upstream::http_client::install_crypto_provider();
    let client = reqwest::Client::builder()
        .resolve(&lookup_host, first)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(FETCH_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("mcp-oauth-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let mut resp = client
        .get(parsed)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching failed: {}", e.without_url()))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("the document answered HTTP {}", resp.status()));
    }
    if resp.content_length().is_some_and(|len| len as usize > MAX_DOCUMENT_BYTES) {
        return Err("the document is too large".into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading failed: {}", e.without_url()))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err("the document is too large".into());
        }
    }
    serde_json::from_slice(&body).map_err(|_| "the document is not JSON".into())
}
