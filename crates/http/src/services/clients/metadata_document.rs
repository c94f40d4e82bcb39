//! Fetching a Client ID Metadata Document, guarded against server-side request forgery
//! and abuse.
//!
//! Anyone can name any https URL as a client id, before any login, so everything here is
//! bounded: fetches per host by a rate, fetches in flight by [`FetchSlots`] (in all and per
//! host), each fetch by time and size.
//!
//! The SSRF guard: the fetching client resolves names only through [`GuardedResolver`],
//! which refuses a host if any of its addresses is not globally reachable (loopback,
//! private, link-local, metadata-service, an IPv6 form that embeds IPv4, …); it connects
//! only to the addresses that resolver returned, so a second DNS answer cannot swap in an
//! internal one; a host written as an address is checked the same way before the request;
//! no proxy from the environment is used (the checked address must be the one connected
//! to); redirects are not followed.
//!
//! A failure is one of two kinds: the document is unusable (not found, invalid, too
//! large, on a forbidden address): `invalid_client`; or it cannot be fetched now (no
//! slot, the host's rate used up, the host slow, unreachable or failing): come back later.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::client_metadata_document::{is_forbidden_address, metadata_from_document};
use reqwest::StatusCode;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::fetch_slots::FetchSlots;
use crate::services::metrics::{Metrics, OutcomeLabels};
use crate::settings::MetadataDocumentSettings;

/// Documents larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// A fetch (resolution, connection and body together) may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Fetches in flight at once, whatever their hosts: each holds up to a document's size.
const MAX_CONCURRENT_FETCHES: usize = 64;
/// Fetches in flight at once from one host: an honest host needs one per client it
/// publishes (concurrent requests for one document share its fetch).
const MAX_CONCURRENT_FETCHES_PER_HOST: usize = 4;
/// How long a fetch waits for a slot before its caller is told to come back.
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// When to come back after a host was slow, unreachable or failing.
const HOST_UNAVAILABLE_RETRY_SECS: u64 = 10;

/// Why a document's client cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentError {
    /// The document is not usable (the reason is in the log).
    Refused,
    /// The document cannot be fetched now; try again in this many seconds.
    Unavailable { retry_after: u64 },
}

impl From<DocumentError> for OAuthError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::Refused => OAuthError::invalid_client("the client metadata document could not be used"),
            DocumentError::Unavailable { retry_after } => OAuthError::temporarily_unavailable(
                format!("the client metadata document cannot be fetched now; try again in {retry_after} seconds"),
                retry_after,
            ),
        }
    }
}

/// Fetches documents within the per-host rate and the slots for fetches in flight.
pub struct Fetcher {
    allow_loopback: bool,
    per_host: DefaultKeyedRateLimiter<String>,
    slots: FetchSlots,
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
            slots: FetchSlots::new(MAX_CONCURRENT_FETCHES, MAX_CONCURRENT_FETCHES_PER_HOST, SLOT_WAIT),
            http,
            metrics,
        }
    }

    /// The public client a document describes. The caller learns only whether the
    /// document could not be used or cannot be fetched now; why (DNS, connection, TLS,
    /// size, validation) goes to the log.
    pub async fn client(&self, url: &str, now: i64) -> Result<Client, DocumentError> {
        let result = self.fetch_client(url, now).await;
        let outcome = match result {
            Ok(_) => "ok",
            Err(DocumentError::Refused) => "refused",
            Err(DocumentError::Unavailable { .. }) => "unavailable",
        };
        self.metrics.metadata_document_fetches.get_or_create(&OutcomeLabels { outcome }).inc();
        result
    }

    async fn fetch_client(&self, url: &str, now: i64) -> Result<Client, DocumentError> {
        let doc = self.json(url, "client metadata document").await?;
        let metadata = metadata_from_document(url, &doc).map_err(|e| {
            tracing::info!(client_id = url, why = %e.description, "client metadata document refused");
            DocumentError::Refused
        })?;
        Ok(Client { client_id: url.to_owned(), secret_hash: None, metadata, trusted: false, created_at: now })
    }

    /// The JSON document at `url` (a `what`, for the log), fetched with every guard: no
    /// internal address, the per-host rate, a fetch slot, bounded in size and time, no
    /// redirects. Also how a client's `jwks_uri` is read.
    pub async fn json(&self, url: &str, what: &'static str) -> Result<serde_json::Value, DocumentError> {
        let refused = |why: &str| {
            tracing::info!(url, why, "{what} refused");
            DocumentError::Refused
        };
        let unavailable = |why: &str, retry_after: u64| {
            tracing::info!(url, why, "{what} cannot be fetched now");
            DocumentError::Unavailable { retry_after }
        };
        let parsed = url::Url::parse(url).map_err(|e| refused(&format!("not a URL: {e}")))?;
        // Names go through the guarded resolver; an address in the URL is checked here.
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| forbidden(ip, self.allow_loopback)) {
            return Err(refused("the host is an internal address"));
        }
        let host = parsed.host_str().unwrap_or_default().to_owned();
        if let Err(not_until) = self.per_host.check_key(&host) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(unavailable("too many fetches from this host", wait.as_secs() + 1));
        }
        // Forget hosts whose allowance is full again, so that naming many hosts does not
        // grow the limiter without bound.
        if self.per_host.len() > 10_000 {
            self.per_host.retain_recent();
        }
        let Some(_slot) = self.slots.acquire(&host).await else {
            return Err(unavailable("no fetch slot came free", FETCH_TIMEOUT.as_secs()));
        };
        self.fetch(parsed).await.map_err(|failure| match failure {
            Failure::Unusable(why) => refused(&why),
            Failure::Unreachable(why) => unavailable(&why, HOST_UNAVAILABLE_RETRY_SECS),
        })
    }

    async fn fetch(&self, url: url::Url) -> Result<serde_json::Value, Failure> {
        let request = self.http.get(url).header("accept", "application/json");
        let mut resp = request.send().await.map_err(|e| Failure::of("fetching failed", &e))?;
        let status = resp.status();
        if status.is_server_error() || matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT) {
            return Err(Failure::Unreachable(format!("the document answered HTTP {status}")));
        }
        if status != StatusCode::OK {
            return Err(Failure::Unusable(format!("the document answered HTTP {status}")));
        }
        if resp.content_length().is_some_and(|len| len as usize > MAX_DOCUMENT_BYTES) {
            return Err(Failure::Unusable("the document is too large".into()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| Failure::of("reading failed", &e))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(Failure::Unusable("the document is too large".into()));
            }
        }
        serde_json::from_slice(&body).map_err(|_| Failure::Unusable("the document is not JSON".into()))
    }
}

/// Why a fetch failed, for the log, by whose fault.
enum Failure {
    /// The document, as its host serves it, cannot be used.
    Unusable(String),
    /// The host did not deliver it (timed out, unreachable, failing): maybe later.
    Unreachable(String),
}

impl Failure {
    /// A request that failed: unusable when the guarded resolver refused the host,
    /// unreachable otherwise.
    fn of(doing: &str, e: &reqwest::Error) -> Self {
        let mut detail = format!("{doing}: {}", if e.is_timeout() { "timed out" } else { "request failed" });
        let mut forbidden = false;
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            forbidden |= s.is::<ForbiddenHost>();
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        if forbidden { Self::Unusable(detail) } else { Self::Unreachable(detail) }
    }
}

fn forbidden(ip: IpAddr, allow_loopback: bool) -> bool {
    is_forbidden_address(ip) && !(allow_loopback && ip.is_loopback())
}

/// The guarded resolver's refusal, told apart from a failure to resolve.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to an internal address")]
struct ForbiddenHost;

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
                return Err(ForbiddenHost.into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
