//! The client directory: who a `client_id` is. Three sources, in this order: clients the
//! operator configured, Client ID Metadata Documents (the id is the document's https
//! URL), and clients registered dynamically at a server (the store).

mod metadata_document;

use std::sync::Arc;

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::client_metadata_document::is_document_url;
use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_store::Store;

use crate::error::HttpError;
use crate::metrics::Metrics;
use crate::settings::MetadataDocumentSettings;
use metadata_document::{DocumentCache, Fetcher};

pub struct ClientDirectory {
    configured: Vec<Client>,
    documents: MetadataDocumentSettings,
    document_cache: DocumentCache,
    fetcher: Fetcher,
    store: Arc<dyn Store>,
    clock: SharedClock,
}

impl ClientDirectory {
    pub fn new(
        configured: Vec<Client>,
        documents: MetadataDocumentSettings,
        store: Arc<dyn Store>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            configured,
            document_cache: DocumentCache::new(documents.cache_bytes),
            fetcher: Fetcher::new(&documents, metrics),
            documents,
            store,
            clock,
        }
    }

    /// The client `client_id` names at `server`, if any. A metadata document that cannot
    /// be used is an `invalid_client` error rather than `None`: the id is well-formed,
    /// and its owner needs to know why it does not work.
    pub async fn find(&self, server: &str, client_id: &str) -> Result<Option<Client>, HttpError> {
        if let Some(c) = self.configured.iter().find(|c| c.client_id == client_id) {
            return Ok(Some(c.clone()));
        }
        if self.documents.enabled && is_document_url(client_id, self.documents.allow_loopback) {
            return self.document_client(client_id).await.map(Some).map_err(HttpError::from);
        }
        Ok(self.store.find_client(server, client_id).await?)
    }

    /// The metadata-document cache's own accounting: entries and bytes held.
    pub fn document_cache_usage(&self) -> (usize, usize) {
        self.document_cache.usage()
    }

    /// Registers a client dynamically (RFC 7591) at `server`.
    pub async fn register(&self, server: &str, client: &Client) -> Result<(), HttpError> {
        Ok(self.store.insert_client(server, client).await?)
    }

    async fn document_client(&self, url: &str) -> Result<Client, OAuthError> {
        let now = self.clock.now();
        if let Some(client) = self.document_cache.get(url, now) {
            return Ok(client);
        }
        let client = self.fetcher.client(url, now).await?;
        self.document_cache.insert(url, &client, now);
        Ok(client)
    }
}
