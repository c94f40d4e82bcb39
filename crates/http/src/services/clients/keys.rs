//! The public keys of clients that authenticate with `private_key_jwt`: registered inline
//! (`jwks`), or at a `jwks_uri`, fetched through the same guarded, bounded fetcher as
//! metadata documents (no internal addresses, per-host rate, size and time caps, no
//! redirects), kept for a while, and fetched again when an assertion names a key not in
//! the set, at most once per [`REFETCH_EVERY`] per URL.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use lru::LruCache;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::jwt_grant::{ClientAssertion, ClientExpected, JwtGrantError, verify_client_assertion};

use super::metadata_document::{DocumentError, Fetcher};

/// How soon an unknown `kid` may fetch a client's key set again.
const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// How long a fetched key set is used before it is fetched again anyway.
const KEEP_FOR: Duration = Duration::from_secs(3600);
/// How many clients' key sets are kept.
const KEPT: NonZeroUsize = NonZeroUsize::new(1000).unwrap();

/// Why a client assertion was not accepted: for the log, and whether to say "later".
#[derive(Debug, thiserror::Error)]
pub enum KeyRefusal {
    #[error(transparent)]
    Assertion(#[from] JwtGrantError),
    #[error("the client has no keys")]
    NoKeys,
    #[error("the client's jwks_uri could not be used")]
    Keys(DocumentError),
}

pub struct ClientKeys {
    fetcher: Fetcher,
    fetched: Mutex<LruCache<String, (JwkSet, Instant)>>,
}

impl ClientKeys {
    pub fn new(fetcher: Fetcher) -> Self {
        Self { fetcher, fetched: Mutex::new(LruCache::new(KEPT)) }
    }

    /// Checks `client`'s assertion against its keys.
    pub async fn verify(
        &self,
        client: &Client,
        jwt: &str,
        expected: &ClientExpected<'_>,
    ) -> Result<ClientAssertion, KeyRefusal> {
        if let Some(set) = &client.metadata.jwks {
            return Ok(verify_client_assertion(jwt, set, expected)?);
        }
        let Some(url) = client.metadata.jwks_uri.as_deref() else { return Err(KeyRefusal::NoKeys) };
        let kept = self.lock().get(url).filter(|(_, at)| at.elapsed() < KEEP_FOR).cloned();
        let (set, at) = match kept {
            Some(kept) => kept,
            None => self.fetch(url).await?,
        };
        match verify_client_assertion(jwt, &set, expected) {
            Err(JwtGrantError::UnknownKey) if at.elapsed() >= REFETCH_EVERY => {
                let (set, _) = self.fetch(url).await?;
                Ok(verify_client_assertion(jwt, &set, expected)?)
            }
            other => Ok(other?),
        }
    }

    async fn fetch(&self, url: &str) -> Result<(JwkSet, Instant), KeyRefusal> {
        let doc = self.fetcher.json(url, "client jwks_uri").await.map_err(KeyRefusal::Keys)?;
        let published = doc["keys"].as_array().ok_or(KeyRefusal::Keys(DocumentError::Refused))?;
        let keys = published.iter().filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok()).collect();
        let fetched = (JwkSet { keys }, Instant::now());
        self.lock().put(url.to_owned(), fetched.clone());
        Ok(fetched)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, (JwkSet, Instant)>> {
        self.fetched.lock().unwrap_or_else(|p| p.into_inner())
    }
}
