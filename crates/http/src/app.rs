//! The state every handler shares.

use std::collections::HashMap;
use std::sync::Arc;

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_core::sign::Signer;
use mcp_oauth_store::{Store, StoreError};
use mcp_oauth_upstream::Provider;

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
}

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
        Self { settings, store, keys, signer, clock, providers, cookies, flight_locks: Default::default(), mcp_client }
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

    /// Operator-configured clients first, then those registered at this server.
    pub async fn find_client(&self, server: &str, client_id: &str) -> Result<Option<Client>, OAuthError> {
        if let Some(c) = self.settings.static_clients.iter().find(|c| c.client_id == client_id) {
            return Ok(Some(c.clone()));
        }
        self.store.find_client(server, client_id).await.map_err(store_error)
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
