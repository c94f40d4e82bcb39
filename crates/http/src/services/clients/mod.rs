//! The client directory: who a `client_id` is. Three sources, in this order: clients the
//! operator configured, Client ID Metadata Documents (the id is the document's https
//! URL), and clients registered dynamically at a server (the store). `keys`: the public
//! keys `private_key_jwt` clients sign their assertions with.

mod document_cache;
mod documents;
mod fetch_slots;
mod keys;
mod metadata_document;

use std::sync::Arc;

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::client_metadata_document::is_document_url;
use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_store::{Store, StoreError};

use crate::services::metrics::Metrics;
use crate::settings::MetadataDocumentSettings;
use document_cache::DocumentCache;
use documents::Documents;
pub use keys::{ClientKeys, KeyRefusal};
pub use metadata_document::DocumentError;
use metadata_document::Fetcher;

pub struct ClientDirectory {
    configured: Vec<Client>,
    documents: MetadataDocumentSettings,
    document_clients: Documents,
    store: Arc<dyn Store>,
    /// The keys of `private_key_jwt` clients.
    pub keys: ClientKeys,
}

/// Why a `client_id` could not be looked up: refused as the OAuth error the client is
/// told (an unusable metadata document), or the store failing.
#[derive(Debug)]
pub enum LookupError {
    Refused(OAuthError),
    Store(StoreError),
}

impl ClientDirectory {
    pub fn new(
        configured: Vec<Client>,
        documents: MetadataDocumentSettings,
        store: Arc<dyn Store>,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Self {
        let cache = DocumentCache::new(documents.cache_bytes);
        let keys = ClientKeys::new(Fetcher::new(&documents, Arc::clone(&metrics)));
        let document_clients = Documents::new(cache, Fetcher::new(&documents, metrics), clock);
        Self { configured, documents, document_clients, store, keys }
    }

    /// The client `client_id` names at `server`, if any. A metadata document that cannot
    /// be used is an `invalid_client` error rather than `None`: the id is well-formed,
    /// and its owner needs to know why it does not work. One that cannot be fetched now
    /// is `temporarily_unavailable` (503, `Retry-After`): nothing is wrong with the client.
    pub async fn find(&self, server: &str, client_id: &str) -> Result<Option<Client>, LookupError> {
        if let Some(c) = self.configured.iter().find(|c| c.client_id == client_id) {
            return Ok(Some(c.clone()));
        }
        if self.documents.enabled && is_document_url(client_id, self.documents.allow_loopback) {
            let host = document_host(client_id);
            if !self.documents.allows(&host) {
                tracing::info!(client_id, host, "client metadata document from a host not in allowed_hosts");
                let e = OAuthError::invalid_client(format!("this server does not accept clients from {host}"));
                return Err(LookupError::Refused(e));
            }
            let client = self.document_clients.client(client_id).await.map_err(|e| LookupError::Refused(e.into()))?;
            return Ok(Some(client));
        }
        self.store.find_client(server, client_id).await.map_err(LookupError::Store)
    }

    /// The host the operator vouches for, if `client` is a metadata-document client from
    /// one of `verified_hosts`.
    pub fn verified_host(&self, client: &Client) -> Option<String> {
        let is_document = self.documents.enabled && is_document_url(&client.client_id, self.documents.allow_loopback);
        let host = document_host(&client.client_id);
        (is_document && self.documents.verifies(&host)).then_some(host)
    }

    /// The metadata-document cache's own accounting: entries and bytes held.
    pub fn document_cache_usage(&self) -> (usize, usize) {
        self.document_clients.cache_usage()
    }

    /// Registers a client dynamically (RFC 7591) at `server`.
    pub async fn register(&self, server: &str, client: &Client) -> Result<(), StoreError> {
        self.store.insert_client(server, client).await
    }
}

/// The host of a metadata document's URL (the client id).
fn document_host(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default()
}
