//! The enterprise IdPs whose ID-JAGs (SEP-990) servers accept, with their signing keys:
//! inline, or fetched from `jwks_url` when first needed and again when an assertion names
//! a key not in the set (after the IdP rotated its keys), at most once per
//! [`REFETCH_EVERY`] per IdP, so that a stream of made-up `kid`s is not a stream of
//! fetches. The checks themselves are `mcp_oauth_core::jwt_grant`'s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use mcp_oauth_core::jwt_grant::{Expected, IdJag, JwtGrantError, verify_id_jag};
use tokio::sync::Mutex;

use crate::settings::{EnterpriseIdp, IdpKeys, ServerSettings};

/// How soon an unknown `kid` may fetch an IdP's key set again.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// A key set larger than this is refused (a real one is a few kilobytes).
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why an assertion was not accepted: for the log only.
#[derive(Debug, thiserror::Error)]
pub enum IdpRefusal {
    #[error(transparent)]
    Assertion(#[from] JwtGrantError),
    #[error("the IdP's key set could not be fetched: {0}")]
    Keys(String),
}

pub struct Idp {
    pub settings: Arc<EnterpriseIdp>,
    /// The fetched key set and when it was fetched; `None` until first needed.
    fetched: Mutex<Option<(JwkSet, Instant)>>,
}

pub struct EnterpriseIdps {
    idps: Vec<Idp>,
    http: reqwest::Client,
    fetches: AtomicU64,
}

impl EnterpriseIdps {
    pub fn new(settings: &[Arc<EnterpriseIdp>]) -> Self {
        let idps = settings.iter().map(|s| Idp { settings: Arc::clone(s), fetched: Mutex::new(None) }).collect();
        Self { idps, http: mcp_oauth_upstream::http_client::for_provider_calls(), fetches: AtomicU64::new(0) }
    }

    /// The IdP `server` accepts assertions from whose issuer is `iss`.
    pub fn for_server(&self, server: &ServerSettings, iss: &str) -> Option<&Idp> {
        self.idps.iter().find(|i| i.settings.issuer == iss && server.enterprise_idps.contains(&i.settings.name))
    }

    /// How many key sets were fetched (for tests of the refetch limit).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Checks an ID-JAG against `idp`'s keys, fetching them when first needed and again,
    /// within the limit, when no key of the set matches.
    pub async fn verify(&self, idp: &Idp, jwt: &str, expected: &Expected<'_>) -> Result<IdJag, IdpRefusal> {
        let url = match &idp.settings.keys {
            IdpKeys::Inline(set) => return Ok(verify_id_jag(jwt, set, expected)?),
            IdpKeys::Url(url) => url,
        };
        let mut cache = idp.fetched.lock().await;
        let (set, at) = match cache.take() {
            Some(fetched) => fetched,
            None => (self.fetch(url).await?, Instant::now()),
        };
        let (set, at) = cache.insert((set, at));
        match verify_id_jag(jwt, set, expected) {
            Err(JwtGrantError::UnknownKey) if at.elapsed() >= REFETCH_EVERY => {
                let fresh = self.fetch(url).await?;
                let (set, _) = cache.insert((fresh, Instant::now()));
                Ok(verify_id_jag(jwt, set, expected)?)
            }
            other => Ok(other?),
        }
    }

    /// The keys of the set at `url` that the library can read (a key of another kind is
    /// left out rather than failing the set), bounded in size and time.
    async fn fetch(&self, url: &url::Url) -> Result<JwkSet, IdpRefusal> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let failed = |e: &dyn std::fmt::Display| IdpRefusal::Keys(e.to_string());
        let mut resp = self.http.get(url.clone()).send().await.map_err(|e| failed(&e))?;
        if !resp.status().is_success() {
            return Err(IdpRefusal::Keys(format!("{url} answered {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| failed(&e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(IdpRefusal::Keys(format!("{url} sent more than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| failed(&e))?;
        let Some(published) = doc["keys"].as_array() else {
            return Err(IdpRefusal::Keys(format!("{url} has no keys array")));
        };
        let keys = published.iter().filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok()).collect();
        Ok(JwkSet { keys })
    }
}
