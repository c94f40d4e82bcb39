//! Fetching a Client ID Metadata Document, guarded against server-side request forgery:
//! the host is resolved first and every address checked (no loopback, private, link-local
//! or metadata-service targets), the connection is pinned to a checked address (so a
//! second DNS answer cannot swap in an internal one), redirects are not followed, and
//! time and size are capped.

use std::net::SocketAddr;
use std::time::Duration;

use mcp_oauth_core::client_metadata_document::is_forbidden_address;

/// Documents larger than this are refused.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct FetchPolicy {
    /// Permit loopback addresses (and plain http): for development and tests only.
    pub allow_loopback: bool,
    pub timeout: Duration,
}

pub async fn fetch_document(url: &str, policy: FetchPolicy) -> Result<serde_json::Value, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?.to_owned();
    let port = parsed.port_or_known_default().ok_or("the URL has no port")?;
    let lookup_host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(policy.timeout, tokio::net::lookup_host((lookup_host.as_str(), port)))
            .await
            .map_err(|_| "resolving the host timed out".to_owned())?
            .map_err(|e| format!("cannot resolve the host: {e}"))?
            .collect();
    let first = *addrs.first().ok_or("the host has no address")?;
    for addr in &addrs {
        let ip = addr.ip();
        if is_forbidden_address(ip) && !(policy.allow_loopback && ip.is_loopback()) {
            return Err("the host resolves to an internal address".into());
        }
    }
    crate::http_client::install_crypto_provider();
    let client = reqwest::Client::builder()
        .resolve(&lookup_host, first)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(policy.timeout)
        .timeout(policy.timeout)
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
