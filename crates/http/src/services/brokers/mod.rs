//! Brokered OAuth (`upstream_auth = "oauth"`): for each such server, the proxy as the
//! client of the MCP upstream's own authorization server.
//!
//! A [`Broker`] is what the proxy knows of one upstream: the discovered metadata (see
//! `mcp_oauth_upstream::brokered`), the proxy's registration there, and, built from both,
//! an ordinary [`Provider`]. That is the design's one idea: once discovered and
//! registered, the upstream's authorization server *is* a provider, so the login URL, the
//! code exchange, the refresh (single-flight, across replicas, with the lease) and the
//! failure classification (`UpstreamError::kind`) are the ones provider tokens have, and
//! `UpstreamAccess` refreshes brokered grants unchanged.
//!
//! Registration, in order (the first that applies):
//! 1. `[servers.upstream_oauth] client_id` (and `client_secret_env`): pre-registered;
//! 2. a Client ID Metadata Document the proxy serves at one stable URL under `public_url`
//!    (`Settings::upstream_client_metadata_url`), when the authorization server says
//!    `client_id_metadata_document_supported`: nothing to store, the URL is the id;
//! 3. RFC 7591 dynamic registration, stored per server and issuer (its secret sealed) with
//!    a conditional insert, so that it survives restarts and two replicas registering at
//!    once both end up with the first one stored.
//!
//! Discovery happens at the first use and again after `DISCOVERY_TTL_SECS`, one at a time
//! per server (a lock), never per request: every request in between is served from
//! memory, and a failure is not retried for `RETRY_AFTER_FAILURE_SECS`. If the upstream
//! names another issuer when discovered again, the broker is rebuilt for it (and registers
//! there); grants sealed with the old issuer then need a new login (`UpstreamAccess`
//! compares the issuer sealed with a grant's tokens).
//!
//! An upstream that moves to another authorization server says so first with a 401 to
//! the tokens of the former one (SEP-2352): the MCP path then has the upstream discovered
//! again at once ([`Brokers::rediscover`]), not at the end of the TTL, at most once
//! per `REDISCOVER_ON_REFUSAL_SECS` per server however many requests are refused, so that
//! the grants of the former server end with the 401 challenge their clients re-authorize
//! on, instead of being refreshed at a server the upstream no longer trusts.

mod registration;
mod revocation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_store::Store;
use mcp_oauth_upstream::brokered::{self, Discovered, RegistrationMethod, UrlPolicy};
use mcp_oauth_upstream::{Provider, UpstreamError};
use serde_json::json;

use crate::services::audit::{Audit, Event};
use crate::settings::{ServerSettings, UpstreamOAuthSettings};

/// How long (seconds, on the proxy's clock) what discovery found is used before the
/// upstream is asked again.
const DISCOVERY_TTL_SECS: i64 = 600;
/// How long a broker may go on being used when discovering it again fails (the upstream's
/// metadata is down, its authorization server may not be).
const STALE_FOR_SECS: i64 = 24 * 3600;
/// After discovery or registration failed, how long logins (and token refreshes) are
/// answered with that failure (or served what was found before) without trying again:
/// anyone can start logins, and each would otherwise cost the upstream a discovery.
const RETRY_AFTER_FAILURE_SECS: i64 = 30;
/// How old what discovery found may be when a login starts (see `Brokers::for_login`):
/// logins are what bind new grants to an authorization server.
const LOGIN_FRESH_SECS: i64 = 60;
/// How often (at most, per server) an MCP upstream's 401 has the upstream discovered
/// again: an upstream refusing every token costs it one discovery per interval, not one
/// per request. Logins' own discoveries do not count.
const REDISCOVER_ON_REFUSAL_SECS: i64 = 30;
/// Discovery and registration requests: each bounded well below a login's patience,
/// since a discovery tries several places one after the other.
const DISCOVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One brokered upstream, discovered and registered.
pub struct Broker {
    pub provider: Arc<Provider>,
    pub discovered: Discovered,
    pub method: RegistrationMethod,
}

impl Broker {
    pub fn issuer(&self) -> &str {
        &self.discovered.server.issuer
    }

    /// The scopes to ask the upstream for when a client asked the proxy for `requested`:
    /// the configured override, else what the upstream's challenge or metadata named and
    /// `offline_access` when the authorization server lists it (several issue refresh
    /// tokens only for it, and a grant without one ends when its first token expires);
    /// and (so that a step-up the upstream asked for can be satisfied) every requested
    /// scope the upstream knows: its metadata lists it, or the server's `scopes` (`listed`)
    /// do. Proxy scopes map to upstream scopes by name: list the upstream's scopes under
    /// the server's `scopes` to let clients ask for them (an upstream's step-up may name a
    /// scope its metadata does not list, as the conformance suite's `auth/scope-step-up`
    /// upstream does).
    pub fn scopes_for(&self, settings: &UpstreamOAuthSettings, listed: &Scopes, requested: &str) -> Vec<String> {
        const OFFLINE_ACCESS: &str = crate::settings::OFFLINE_ACCESS;
        let mut scopes = settings.scopes.clone().unwrap_or_else(|| {
            let mut named = self.discovered.scopes.clone();
            let listed = self.discovered.server.scopes_supported.iter().any(|s| s == OFFLINE_ACCESS);
            if listed && !named.iter().any(|s| s == OFFLINE_ACCESS) {
                named.push(OFFLINE_ACCESS.to_owned());
            }
            named
        });
        let known = |s: &str| {
            self.discovered.scopes.iter().any(|k| k == s)
                || self.discovered.server.scopes_supported.iter().any(|k| k == s)
                // `mcp` is what the configuration grants when a server lists no scopes: the
                // proxy's own, never the upstream's unless its metadata names it.
                || (s != "mcp" && listed.iter().any(|k| k == s))
        };
        for s in requested.split_whitespace() {
            if known(s) && !scopes.iter().any(|k| k == s) {
                scopes.push(s.to_owned());
            }
        }
        scopes
    }
}

struct Entry {
    broker: Arc<Broker>,
    /// When it was discovered (the proxy's clock).
    at: i64,
}

pub struct Brokers {
    /// Token, revocation and identity requests (the providers' client).
    http: reqwest::Client,
    /// Discovery and registration: shorter timeouts (see `DISCOVERY_TIMEOUT`).
    discovery: reqwest::Client,
    store: Arc<dyn Store>,
    keys: Arc<KeyRing>,
    clock: SharedClock,
    audit: Arc<Audit>,
    callback_url: String,
    metadata_url: String,
    public_url: String,
    entries: Mutex<HashMap<String, Entry>>,
    /// The last failure to discover or register, per server: (when, what).
    failures: Mutex<HashMap<String, (i64, UpstreamError)>>,
    /// When an MCP upstream's 401 last had it discovered again, per server.
    rediscovered: Mutex<HashMap<String, i64>>,
    /// Discovery and registration one at a time per server (they are rare, and each costs
    /// the upstream several requests), so that a slow upstream holds up its own logins
    /// only. One entry per configured server.
    resolving: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Brokers {
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeyRing>,
        clock: SharedClock,
        audit: Arc<Audit>,
        settings: &crate::settings::Settings,
    ) -> Self {
        Self {
            http: mcp_oauth_upstream::http_client::for_provider_calls(),
            discovery: reqwest::Client::builder()
                .connect_timeout(DISCOVERY_TIMEOUT)
                .timeout(DISCOVERY_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("mcp-oauth-proxy/", env!("CARGO_PKG_VERSION")))
                .build()
                .expect("the HTTP client configuration is static and valid"),
            store,
            keys,
            clock,
            audit,
            callback_url: settings.upstream_callback_url(),
            metadata_url: settings.upstream_client_metadata_url(),
            public_url: settings.public_url.clone(),
            entries: Mutex::default(),
            failures: Mutex::default(),
            rediscovered: Mutex::default(),
            resolving: Mutex::default(),
        }
    }

    /// The proxy's Client ID Metadata Document (served at its own URL).
    pub fn client_metadata_document(&self) -> serde_json::Value {
        json!({
            "client_id": self.metadata_url,
            "client_name": format!("mcp-oauth-proxy at {}", self.public_url),
            "client_uri": self.public_url,
            "redirect_uris": [self.callback_url],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            // SEP-837: a client says what kind it is when it registers. The proxy is a web
            // application: its redirect URI is its own public URL, not a native app's.
            "application_type": "web",
        })
    }

    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }

    /// For the operators' console: the authorization server this replica knows for a
    /// brokered server, and how the proxy is registered there, without asking the
    /// upstream. `None` for other servers.
    pub fn describe(&self, server: &ServerSettings) -> Option<String> {
        server.upstream_auth.brokered()?;
        Some(match self.cached(&server.slug, STALE_FOR_SECS) {
            Some(b) => format!("tokens of {} (the proxy's registration: {})", b.issuer(), b.method.label()),
            None => "tokens of its authorization server (not discovered by this replica yet)".to_owned(),
        })
    }

    /// The broker of a server with `upstream_auth = "oauth"`, discovered and registered
    /// at its first use (and again after the TTL). `Err` for any other server.
    pub async fn broker(&self, server: &ServerSettings) -> Result<Arc<Broker>, UpstreamError> {
        self.within(server, DISCOVERY_TTL_SECS).await
    }

    /// [`Self::broker`] for a login about to start: discovered again first when what is
    /// known is older than `LOGIN_FRESH_SECS`, so that a new grant begins at the
    /// authorization server the upstream names now (a replica that has had no 401 to
    /// tell it of a move would otherwise send users on to the former one for up to the
    /// TTL, and their grants would end at their first call).
    pub async fn for_login(&self, server: &ServerSettings) -> Result<Arc<Broker>, UpstreamError> {
        self.within(server, LOGIN_FRESH_SECS).await
    }

    /// The broker, if it was discovered within `max_age_secs`; else discovered again
    /// (once at a time per server; after a failure see [`Self::known`]).
    async fn within(&self, server: &ServerSettings, max_age_secs: i64) -> Result<Arc<Broker>, UpstreamError> {
        if let Some(known) = self.known(&server.slug, max_age_secs) {
            return known;
        }
        let turn = self.turn(&server.slug);
        let _turn = turn.lock().await;
        // Someone may have resolved it (or failed to) while we waited.
        if let Some(known) = self.known(&server.slug, max_age_secs) {
            return known;
        }
        self.resolve_and_keep(server).await
    }

    /// Something says the upstream may have moved to another authorization server (see
    /// the module's comment): its 401 to a grant's token, or a login that began at
    /// another issuer than this replica knows. It is discovered again now unless that
    /// was done for such a reason within `REDISCOVER_ON_REFUSAL_SECS`. What is found
    /// replaces what was known (a new issuer: a new broker, registered there); a failure
    /// keeps it.
    pub async fn rediscover(&self, server: &ServerSettings) {
        let due = |at: Option<&i64>| at.is_none_or(|at| self.clock.now() - at >= REDISCOVER_ON_REFUSAL_SECS);
        if !due(self.rediscovered().get(&server.slug)) {
            return;
        }
        let turn = self.turn(&server.slug);
        let _turn = turn.lock().await;
        // Requests refused together wait here for the first one's discovery, then go on
        // with what it found.
        if !due(self.rediscovered().get(&server.slug)) {
            return;
        }
        self.rediscovered().insert(server.slug.clone(), self.clock.now());
        // A failure keeps what was known (and is logged there).
        let _ = self.resolve_and_keep(server).await;
    }

    /// Discovers and registers (the caller holds the server's `turn`), and keeps the
    /// result, or the failure (see [`Self::known`]).
    async fn resolve_and_keep(&self, server: &ServerSettings) -> Result<Arc<Broker>, UpstreamError> {
        match self.resolve(server).await {
            Ok(broker) => {
                let broker = Arc::new(broker);
                if let Some(former) =
                    self.cached(&server.slug, STALE_FOR_SECS).filter(|b| b.issuer() != broker.issuer())
                {
                    self.moved(server, former.issuer(), broker.issuer());
                }
                let entry = Entry { broker: Arc::clone(&broker), at: self.clock.now() };
                self.lock().insert(server.slug.clone(), entry);
                self.failures().remove(&server.slug);
                Ok(broker)
            }
            Err(e) => {
                self.failures().insert(server.slug.clone(), (self.clock.now(), e.clone()));
                self.stale_or(server, e)
            }
        }
    }

    /// The upstream names another authorization server than before: said in the log and
    /// the audit trail (`upstream.moved`, by each replica that notices), since whoever
    /// controls that metadata decides where users log in.
    fn moved(&self, server: &ServerSettings, former: &str, issuer: &str) {
        tracing::warn!(
            server = %server.slug,
            former,
            issuer,
            "the MCP upstream names another authorization server; its former grants need a new authorization"
        );
        let event = Event::new("upstream.moved", self.clock.now()).slug(&server.slug);
        self.audit.record(event.reason(format!("from {former} to {issuer}")));
    }

    /// The lock that makes `slug`'s discoveries one at a time.
    fn turn(&self, slug: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.resolving.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(locks.entry(slug.to_owned()).or_default())
    }

    fn rediscovered(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.rediscovered.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a failure: what was found before, if it is not too old, else the failure.
    fn stale_or(&self, server: &ServerSettings, e: UpstreamError) -> Result<Arc<Broker>, UpstreamError> {
        match self.cached(&server.slug, STALE_FOR_SECS) {
            Some(stale) => {
                tracing::warn!(server = %server.slug, error = %e, "discovering the MCP upstream again failed; using what was found before");
                Ok(stale)
            }
            None => {
                tracing::warn!(server = %server.slug, error = %e, "the MCP upstream's authorization server could not be discovered or registered at");
                Err(e)
            }
        }
    }

    /// What is known without asking the upstream: a broker discovered within
    /// `max_age_secs`; or, within `RETRY_AFTER_FAILURE_SECS` of a failure, the broker
    /// found before (if any) or that failure. `None`: ask.
    fn known(&self, slug: &str, max_age_secs: i64) -> Option<Result<Arc<Broker>, UpstreamError>> {
        if let Some(fresh) = self.cached(slug, max_age_secs) {
            return Some(Ok(fresh));
        }
        let now = self.clock.now();
        let failed = self.failures().get(slug).filter(|(at, _)| now - at < RETRY_AFTER_FAILURE_SECS).cloned();
        failed.map(|(_, e)| self.cached(slug, STALE_FOR_SECS).ok_or(e))
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, UpstreamError)>> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, slug: &str, within_secs: i64) -> Option<Arc<Broker>> {
        let now = self.clock.now();
        self.lock().get(slug).filter(|e| now - e.at < within_secs).map(|e| Arc::clone(&e.broker))
    }

    async fn resolve(&self, server: &ServerSettings) -> Result<Broker, UpstreamError> {
        let settings = server
            .upstream_auth
            .brokered()
            .ok_or_else(|| UpstreamError::Misconfigured(format!("{} is not brokered", server.slug)))?;
        let policy = UrlPolicy { allow_http_loopback: settings.allow_http_loopback };
        let mcp_url = url::Url::parse(&server.mcp_upstream.to_string())
            .map_err(|e| UpstreamError::Misconfigured(format!("upstream_url: {e}")))?;
        let discovered = brokered::discover(&self.discovery, &mcp_url, policy).await?;
        let (registration, method) = self.registration(server, settings, &discovered).await?;
        tracing::info!(
            server = %server.slug,
            issuer = %discovered.server.issuer,
            client_id = %registration.client_id,
            method = method.label(),
            "brokered OAuth: the MCP upstream's authorization server"
        );
        let name = format!("upstream:{}", server.slug);
        let scopes = settings.scopes.clone().unwrap_or_else(|| discovered.scopes.clone());
        let provider_settings = brokered::provider(
            &name,
            &discovered.resource,
            &discovered.server,
            &registration,
            scopes,
            settings.refresh_margin_secs,
        );
        let provider = Arc::new(Provider::new(provider_settings, self.http.clone()));
        Ok(Broker { provider, discovered, method })
    }
}
