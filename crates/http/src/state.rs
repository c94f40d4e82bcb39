//! The state every handler shares: the settings and a few small services, each owning
//! what its job needs. A handler that uses one of them asks for that one alone
//! (`State<Arc<Settings>>`, `State<Arc<dyn Store>>`, `State<Arc<Metrics>>`, through the
//! `FromRef` impls below); one that needs several takes the whole [`AppState`].

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_core::sign::Signer;
use mcp_oauth_store::Store;

use crate::cookies::CookieNames;
use crate::services::audit::{Audit, Event};
use crate::services::brokers::Brokers;
use crate::services::clients::ClientDirectory;
use crate::services::enterprise_idps::EnterpriseIdps;
use crate::services::history::History;
use crate::services::identities::Identities;
use crate::services::last_uses::LastUses;
use crate::services::limits::Limits;
use crate::services::metrics::Metrics;
use crate::services::providers::Providers;
use crate::services::revocations::Revocations;
use crate::services::tool_pins::ToolPins;
use crate::services::upstream_access::{self, UpstreamAccess};
use crate::settings::Settings;

pub struct App {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    /// Who a `client_id` is.
    pub clients: ClientDirectory,
    /// Limits on anonymous work.
    pub limits: Limits,
    pub providers: Arc<Providers>,
    /// Brokered OAuth: the OAuth-protected MCP upstreams' own authorization servers.
    pub brokers: Arc<Brokers>,
    /// Provider tokens for the MCP path, refreshed once when due.
    pub upstream: UpstreamAccess,
    /// Seals what is kept at rest (provider credentials, refresh-token successors).
    pub keys: Arc<KeyRing>,
    /// Signs what the proxy hands to browsers (consent cookies, CSRF tokens).
    pub signer: Signer,
    /// Who a grant's user is, for MCP upstreams: identity assertions and headers.
    pub identities: Arc<Identities>,
    pub cookies: CookieNames,
    /// Pooled connections to the MCP upstreams.
    pub mcp_client: crate::services::mcp_client::McpClient,
    pub metrics: Arc<Metrics>,
    /// The security events' trail.
    pub audit: Arc<Audit>,
    /// Open event streams, ended when their grant or access token is revoked (the look
    /// for revocations is started by `Revocations::watch`).
    pub revocations: Arc<Revocations>,
    /// Grants' uses on the MCP path, noted coarsely and written in batches (started by
    /// `LastUses::record_every`).
    pub last_uses: Arc<LastUses>,
    /// Each server's last hour, for the console (started by `History::sample_every`).
    pub history: Arc<History>,
    /// The tool definitions each server's tools were first seen with.
    pub tool_pins: Arc<ToolPins>,
    /// The enterprise IdPs whose ID-JAGs servers accept, with their keys.
    pub enterprise_idps: Arc<EnterpriseIdps>,
}

/// [`App`] as the router holds it: one `Arc`, cloned for each request.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    pub fn new(app: App) -> Self {
        Self(Arc::new(app))
    }
}

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(app: &AppState) -> Self {
        Arc::clone(&app.settings)
    }
}

impl FromRef<AppState> for Arc<dyn Store> {
    fn from_ref(app: &AppState) -> Self {
        Arc::clone(&app.store)
    }
}

impl FromRef<AppState> for Arc<Identities> {
    fn from_ref(app: &AppState) -> Self {
        Arc::clone(&app.identities)
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(app: &AppState) -> Self {
        Arc::clone(&app.metrics)
    }
}

impl App {
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        keys: KeyRing,
        clock: SharedClock,
        providers: Providers,
        mcp_client: crate::services::mcp_client::McpClient,
        audit: Audit,
    ) -> Self {
        let audit = Arc::new(audit);
        let signer = Signer::from_key_ring(&keys);
        let metrics = Arc::new(Metrics::new(settings.servers.iter().map(|s| s.slug.as_str())));
        let cookies = CookieNames::new(settings.secure_cookies());
        let clients = ClientDirectory::new(
            settings.static_clients.clone(),
            settings.metadata_documents.clone(),
            Arc::clone(&store),
            Arc::clone(&clock),
            Arc::clone(&metrics),
        );
        let keys = Arc::new(keys);
        let identities = Arc::new(Identities::new(Arc::clone(&keys), settings.public_url.clone(), Arc::clone(&clock)));
        let providers = Arc::new(providers);
        let brokers = Arc::new(Brokers::new(
            Arc::clone(&store),
            Arc::clone(&keys),
            Arc::clone(&clock),
            Arc::clone(&audit),
            &settings,
        ));
        let last_uses = Arc::new(LastUses::default());
        let servers = settings.servers.iter().map(|s| (s.slug.clone(), s.provider.clone())).collect();
        let history = Arc::new(History::new(Arc::clone(&metrics), Arc::clone(&clock), servers));
        let upstream = UpstreamAccess::new(upstream_access::Parts {
            store: Arc::clone(&store),
            keys: Arc::clone(&keys),
            clock: Arc::clone(&clock),
            providers: Arc::clone(&providers),
            brokers: Arc::clone(&brokers),
            uses: Arc::clone(&last_uses),
            metrics: Arc::clone(&metrics),
            audit: Arc::clone(&audit),
        });
        let limits = Limits::new(&settings.limits, Arc::clone(&metrics));
        // A request waits at most the idle timeout for each of its (at most two) sends to
        // the MCP upstream, after a provider refresh and its body's arrival: a stream
        // registering later than this after its token check cannot exist.
        let tool_pins =
            Arc::new(ToolPins::new(Arc::clone(&store), Arc::clone(&clock), Arc::clone(&metrics), Arc::clone(&audit)));
        let enterprise_idps = Arc::new(EnterpriseIdps::new(&settings.enterprise_idps));
        let revocations = Revocations::new(2 * mcp_client.idle + Duration::from_secs(120));
        Self {
            settings: Arc::new(settings),
            store,
            clock,
            clients,
            limits,
            providers,
            brokers,
            upstream,
            keys,
            signer,
            identities,
            cookies,
            mcp_client,
            metrics,
            audit,
            revocations,
            last_uses,
            history,
            tool_pins,
            enterprise_idps,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A new audit event stamped with the current time; [`Audit::record`] it.
    pub fn event(&self, name: &'static str) -> Event {
        Event::new(name, self.now())
    }
}
