//! The clients of Client ID Metadata Documents: from the cache while it is fresh, fetched
//! once per URL however many requests want it (single-flight), and, once stale, served
//! from the cache while it is fetched again in the background (stale-while-revalidate),
//! up to the cache's maximum age.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use mcp_oauth_core::client::Client;
use mcp_oauth_core::clock::SharedClock;

use super::document_cache::{Cached, DocumentCache};
use super::metadata_document::{DocumentError, Fetcher};

/// A fetch under way, which every request for its URL awaits.
type Flight = Shared<BoxFuture<'static, Result<Client, DocumentError>>>;

pub struct Documents {
    inner: Arc<Inner>,
}

struct Inner {
    cache: DocumentCache,
    fetcher: Fetcher,
    flights: Mutex<HashMap<String, Flight>>,
    clock: SharedClock,
}

impl Documents {
    pub fn new(cache: DocumentCache, fetcher: Fetcher, clock: SharedClock) -> Self {
        Self { inner: Arc::new(Inner { cache, fetcher, flights: Mutex::default(), clock }) }
    }

    /// The client the document at `url` describes.
    pub async fn client(&self, url: &str) -> Result<Client, DocumentError> {
        let flight = {
            // The cache is read under the flights' lock: a fetch stores its document
            // before it leaves the flights, so a request sees one or the other.
            let mut flights = self.inner.lock_flights();
            match self.inner.cache.get(url, self.inner.clock.now()) {
                Some(Cached::Fresh(client)) => return Ok(client),
                Some(Cached::Stale(client)) => {
                    if !flights.contains_key(url) {
                        flights.insert(url.to_owned(), self.inner.start(url));
                    }
                    return Ok(client);
                }
                None => flights.entry(url.to_owned()).or_insert_with(|| self.inner.start(url)).clone(),
            }
        };
        flight.await
    }

    /// The cache's own accounting: entries and bytes held.
    pub fn cache_usage(&self) -> (usize, usize) {
        self.inner.cache.usage()
    }
}

impl Inner {
    /// Fetches `url` in a task of its own, so that it completes (and fills the cache) even
    /// when no request waits for it any more, or none ever did (a stale document's).
    fn start(self: &Arc<Self>, url: &str) -> Flight {
        let inner = self.clone();
        let url = url.to_owned();
        let task = tokio::spawn(async move {
            let _leave = Leave { inner: &inner, url: &url };
            let result = inner.fetcher.client(&url, inner.clock.now()).await;
            match &result {
                Ok(client) => inner.cache.insert(&url, client, inner.clock.now()),
                // The host now serves nothing usable: its client is no longer served
                // from a stale copy either.
                Err(DocumentError::Refused) => inner.cache.remove(&url),
                Err(DocumentError::Unavailable { .. }) => {}
            }
            result
        });
        task.map(|joined| joined.unwrap_or(Err(DocumentError::Unavailable { retry_after: 1 }))).boxed().shared()
    }

    fn lock_flights(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flight>> {
        self.flights.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes a fetch out of the flights when it ends, after it stored its document, however
/// it ends (a panic included): the next request for its URL then starts another.
struct Leave<'a> {
    inner: &'a Inner,
    url: &'a str,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.inner.lock_flights().remove(self.url);
    }
}
