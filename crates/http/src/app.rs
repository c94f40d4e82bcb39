//! The state every handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::client_metadata_document::{is_document_url, metadata_from_document};
use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_core::sign::Signer;
use mcp_oauth_store::{Store, StoreError};
use mcp_oauth_upstream::Provider;
use mcp_oauth_upstream::client_metadata_fetch::{FetchPolicy, fetch_document};

use crate::cookies::CookieNames;
use crate::settings::{ServerSettings, Settings};

pub struct App {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub keys: KeyRing,
    pub signer: Signer,
    pub clock: SharedClock,
    /// By provider name; every server's provider is present (the config loader checks).
    pub providers: HashMap<String, Arc<Provider>>,
    pub cookies: CookieNames,
    /// One lock per family whose upstream credential is being refreshed.
    pub flight_locks: crate::upstream_access::FlightLocks,
    /// Pooled connections to the upstream MCP servers.
    pub mcp_client: reqwest::Client,
    /// Client metadata documents fetched recently: URL → (client, fetched at).
    metadata_documents: std::sync::Mutex<HashMap<String, (Client, i64)>>,
}

/// How long a fetched client metadata document is trusted before it is fetched again.
const METADATA_DOCUMENT_TTL_SECS: i64 = 300;

pub type AppState = Arc<App>;

impl App {
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        keys: KeyRing,
        clock: SharedClock,
        providers: HashMap<String, Arc<Provider>>,
        mcp_client: reqwest::Client,
    ) -> Self {
        let signer = Signer::from_key_ring(&keys);
        let cookies = CookieNames::new(settings.secure_cookies());
        Self {
            settings,
            store,
            keys,
            signer,
            clock,
            providers,
            cookies,
            flight_locks: Default::default(),
            mcp_client,
            metadata_documents: Default::default(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn server(&self, slug: &str) -> Option<&ServerSettings> {
        self.settings.server(slug)
    }

    pub fn provider(&self, server: &ServerSettings) -> &Provider {
        &self.providers[&server.provider]
    }

    /// Operator-configured clients first, then a client metadata document when the id is
    /// its URL, then those registered at this server.
    pub async fn find_client(&self, server: &str, client_id: &str) -> Result<Option<Client>, OAuthError> {
        if let Some(c) = self.settings.static_clients.iter().find(|c| c.client_id == client_id) {
            return Ok(Some(c.clone()));
        }
        let documents = self.settings.metadata_documents;
        if documents.enabled && is_document_url(client_id, documents.allow_loopback) {
            return self.metadata_document_client(client_id).await.map(Some);
        }
        self.store.find_client(server, client_id).await.map_err(store_error)
    }

    /// The client a metadata document describes, fetched (with SSRF guards) or cached.
    async fn metadata_document_client(&self, url: &str) -> Result<Client, OAuthError> {
        let now = self.now();
        if let Some((client, fetched_at)) = self.metadata_documents.lock().unwrap().get(url)
            && now - fetched_at < METADATA_DOCUMENT_TTL_SECS
        {
            return Ok(client.clone());
        }
        let policy = FetchPolicy {
            allow_loopback: self.settings.metadata_documents.allow_loopback,
            timeout: std::time::Duration::from_secs(5),
        };
        let doc = fetch_document(url, policy).await.map_err(|why| {
            tracing::info!(client_id = url, why, "client metadata document refused");
            OAuthError::invalid_client(format!("the client metadata document cannot be used: {why}"))
        })?;
        let metadata = metadata_from_document(url, &doc)?;
        let client = Client { client_id: url.to_owned(), secret_hash: None, metadata, trusted: false, created_at: now };
        let mut cache = self.metadata_documents.lock().unwrap();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(url.to_owned(), (client.clone(), now));
        Ok(client)
    }
}

/// A storage failure as an OAuth error: temporary when the database is unreachable
/// (the client should retry), a server error otherwise. Details go to the log only.
pub fn store_error(e: StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(detail) => {
            tracing::warn!(%detail, "database unavailable");
            OAuthError::temporarily_unavailable("the database is unavailable; retry shortly", 1)
        }
        other => {
            tracing::error!(error = %other, "storage error");
            OAuthError::server_error("internal storage error")
        }
    }
}
