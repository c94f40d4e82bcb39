//! What operators count: Prometheus metrics (OpenMetrics text) for the HTTP edge, the
//! token endpoint, provider refreshes, the MCP path, limits and the database. Labels
//! carry a route, a server slug, an outcome: never a user, a client or a token, which
//! would be both a leak and an unbounded number of series.
//!
//! One registry per application (no process-wide recorder), so that tests and embeddings
//! each see their own counts; served on its own listener by the binary, never on the
//! public one.
//!
//! What every request counts (its route class and status; on the MCP path, its server's
//! upstream status, time and open streams) is resolved from the families once, into
//! [`RouteMetrics`] and [`ServerMetrics`]: a request then builds no labels (a copy of the
//! slug each) and takes no family's lock, which every serving thread would share.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub slug: String,
    pub grant_type: &'static str,
    /// `issued`, or the OAuth error code of the refusal.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlugLabels {
    pub slug: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevokedLabels {
    /// `refresh_reuse`, `code_replay`, `client`, `upstream_refusal`.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderOutcome {
    pub provider: String,
    /// Refreshes: `ok`, `permanent` (the grant ended), `transient`, `misconfigured`; for
    /// refusals by the MCP upstream, see `upstream_access::refusal::Refusal`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpLabels {
    pub slug: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `registrations`, `authorizations`, `failures`, `pending_logins`.
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

fn seconds() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Counters of one family by HTTP status, the rest of the labels fixed: each status's
/// counter is looked up in the family on its first use only.
#[derive(Clone)]
pub struct ByStatus {
    counters: Arc<[OnceLock<Counter>]>,
    resolve: Arc<dyn Fn(u16) -> Counter + Send + Sync>,
}

impl ByStatus {
    const FIRST: u16 = 100;

    fn new(resolve: impl Fn(u16) -> Counter + Send + Sync + 'static) -> Self {
        Self { counters: (Self::FIRST..600).map(|_| OnceLock::new()).collect(), resolve: Arc::new(resolve) }
    }

    /// Every count so far by status, of the statuses counted here (100 to 599).
    pub fn by_status(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        let statuses = Self::FIRST..;
        self.counters.iter().zip(statuses).filter_map(|(slot, status)| slot.get().map(|c| (status, c.get())))
    }

    pub fn inc(&self, status: u16) {
        match self.counters.get(usize::from(status.wrapping_sub(Self::FIRST))) {
            Some(slot) => slot.get_or_init(|| (self.resolve)(status)).inc(),
            None => (self.resolve)(status).inc(),
        };
    }
}

/// A route class's request count (by status) and time.
pub struct RouteMetrics {
    pub requests: ByStatus,
    pub seconds: Histogram,
}

/// One MCP server's upstream metrics.
#[derive(Clone)]
pub struct ServerMetrics {
    /// The MCP upstream's answers by status.
    pub responses: ByStatus,
    /// Time to the MCP upstream's response head.
    pub first_byte: Histogram,
    pub open_streams: Gauge<i64, AtomicI64>,
}

pub struct Metrics {
    registry: Registry,
    routes: Vec<(RouteClass, RouteMetrics)>,
    servers: HashMap<String, ServerMetrics>,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_seconds: Family<RouteOnly, Histogram>,
    pub token_grants: Family<GrantLabels, Counter>,
    pub refresh_reuse: Family<SlugLabels, Counter>,
    pub grants_revoked: Family<RevokedLabels, Counter>,
    pub upstream_refreshes: Family<ProviderOutcome, Counter>,
    pub upstream_refresh_seconds: Family<ProviderLabels, Histogram>,
    /// What an MCP upstream's 401 led to (see `upstream_access::refusal::Refusal`).
    pub upstream_credential_refusals: Family<ProviderOutcome, Counter>,
    pub mcp_responses: Family<McpLabels, Counter>,
    pub mcp_first_byte_seconds: Family<SlugLabels, Histogram>,
    pub open_streams: Family<SlugLabels, Gauge<i64, AtomicI64>>,
    pub rate_limited: Family<LimitLabels, Counter>,
    pub metadata_document_fetches: Family<OutcomeLabels, Counter>,
    pub tool_changes: Family<SlugLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(std::iter::empty::<&str>())
    }
}

impl Metrics {
    /// The metrics of an application serving the servers `slugs`.
    pub fn new<S: AsRef<str>>(slugs: impl IntoIterator<Item = S>) -> Self {
        let mut registry = Registry::with_prefix("mcp_oauth_proxy");
        let m = Self {
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(seconds),
            token_grants: Family::default(),
            refresh_reuse: Family::default(),
            grants_revoked: Family::default(),
            upstream_refreshes: Family::default(),
            upstream_refresh_seconds: Family::new_with_constructor(seconds),
            upstream_credential_refusals: Family::default(),
            mcp_responses: Family::default(),
            mcp_first_byte_seconds: Family::new_with_constructor(seconds),
            open_streams: Family::default(),
            rate_limited: Family::default(),
            metadata_document_fetches: Family::default(),
            tool_changes: Family::default(),
            registry: Registry::default(),
            routes: Vec::new(),
            servers: HashMap::new(),
        };
        registry.register("http_requests", "HTTP requests by route class and status", m.http_requests.clone());
        registry.register("http_request_seconds", "Time to the response head, by route class", m.http_seconds.clone());
        registry.register("token_grants", "Token endpoint requests by grant type and outcome", m.token_grants.clone());
        registry.register(
            "refresh_token_reuse",
            "Superseded refresh tokens presented after the grace window",
            m.refresh_reuse.clone(),
        );
        registry.register("grants_revoked", "Grants ended, by reason", m.grants_revoked.clone());
        registry.register("upstream_refreshes", "Provider token refreshes by outcome", m.upstream_refreshes.clone());
        registry.register(
            "upstream_refresh_seconds",
            "Time a provider refresh took",
            m.upstream_refresh_seconds.clone(),
        );
        registry.register(
            "mcp_upstream_credential_refusals",
            "MCP upstream 401s for a user's provider token, by what the proxy did about them",
            m.upstream_credential_refusals.clone(),
        );
        registry.register("mcp_upstream_responses", "MCP upstream responses by status", m.mcp_responses.clone());
        registry.register(
            "mcp_upstream_first_byte_seconds",
            "Time to the MCP upstream's response head",
            m.mcp_first_byte_seconds.clone(),
        );
        registry.register("open_event_streams", "Event streams open through the proxy", m.open_streams.clone());
        registry.register("rate_limited", "Requests refused by a limit on anonymous work", m.rate_limited.clone());
        registry.register(
            "metadata_document_fetches",
            "Client ID Metadata Document fetches by outcome",
            m.metadata_document_fetches.clone(),
        );
        registry.register(
            "tool_definition_changes",
            "Tool definitions seen changed from their pinned definition",
            m.tool_changes.clone(),
        );
        let (unavailable, internal) = (DatabaseErrors("unavailable"), DatabaseErrors("internal"));
        registry.register_collector(Box::new(DatabaseErrorCollector { unavailable, internal }));
        let routes = RouteClass::ALL.iter().map(|&route| (route, m.route_metrics(route))).collect();
        let servers = slugs.into_iter().map(|s| (s.as_ref().to_owned(), m.server_metrics(s.as_ref()))).collect();
        Self { registry, routes, servers, ..m }
    }

    fn route_metrics(&self, route: RouteClass) -> RouteMetrics {
        let family = self.http_requests.clone();
        let route = route.label();
        RouteMetrics {
            requests: ByStatus::new(move |status| family.get_or_create(&RouteLabels { route, status }).clone()),
            seconds: self.http_seconds.get_or_create(&RouteOnly { route }).clone(),
        }
    }

    fn server_metrics(&self, slug: &str) -> ServerMetrics {
        let (family, owned) = (self.mcp_responses.clone(), slug.to_owned());
        let slug = SlugLabels { slug: slug.to_owned() };
        ServerMetrics {
            responses: ByStatus::new(move |status| {
                family.get_or_create(&McpLabels { slug: owned.clone(), status }).clone()
            }),
            first_byte: self.mcp_first_byte_seconds.get_or_create(&slug).clone(),
            open_streams: self.open_streams.get_or_create(&slug).clone(),
        }
    }

    /// The MCP metrics of server `slug`. Every configured server's are resolved when the
    /// application is built; any other's are resolved now (the same series, more slowly).
    pub fn server(&self, slug: &str) -> std::borrow::Cow<'_, ServerMetrics> {
        match self.servers.get(slug) {
            Some(resolved) => std::borrow::Cow::Borrowed(resolved),
            None => std::borrow::Cow::Owned(self.server_metrics(slug)),
        }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn observe_http(&self, route: RouteClass, status: u16, took: Duration) {
        // `ALL` lists every class: the search always finds it, in at most nine steps.
        if let Some((_, m)) = self.routes.iter().find(|(r, _)| *r == route) {
            m.requests.inc(status);
            m.seconds.observe(took.as_secs_f64());
        }
    }

    /// Refreshes at `provider` so far: (all, failed).
    pub fn provider_refreshes(&self, provider: &str) -> (u64, u64) {
        let count = |outcome| {
            self.upstream_refreshes.get_or_create(&ProviderOutcome { provider: provider.to_owned(), outcome }).get()
        };
        let failed: u64 = ["permanent", "transient", "misconfigured"].into_iter().map(count).sum();
        (count("ok") + failed, failed)
    }

    pub fn grant_revoked(&self, reason: &'static str) {
        self.grants_revoked.get_or_create(&RevokedLabels { reason }).inc();
    }

    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited.get_or_create(&LimitLabels { limit }).inc();
    }
}

/// Database errors, counted where they arise (the store, process-wide) and read at scrape.
#[derive(Debug)]
struct DatabaseErrors(&'static str);

#[derive(Debug)]
struct DatabaseErrorCollector {
    unavailable: DatabaseErrors,
    internal: DatabaseErrors,
}

impl prometheus_client::collector::Collector for DatabaseErrorCollector {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let (unavailable, internal) = mcp_oauth_store::error_counts();
        let metric_encoder = encoder.encode_descriptor(
            "database_errors",
            "Database errors by kind (unavailable: the database did not answer)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        let mut metric_encoder = metric_encoder;
        for (kind, n) in [(self.unavailable.0, unavailable), (self.internal.0, internal)] {
            let labels = [("kind", kind)];
            ConstCounter::new(n).encode(metric_encoder.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The route class of a request: a metrics label must not be unbounded, so it is not the
/// path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    Metadata,
    Mcp,
    Callback,
    Token,
    Revoke,
    Register,
    Authorize,
    Health,
    Other,
}

impl RouteClass {
    pub const ALL: [RouteClass; 9] = [
        Self::Metadata,
        Self::Mcp,
        Self::Callback,
        Self::Token,
        Self::Revoke,
        Self::Register,
        Self::Authorize,
        Self::Health,
        Self::Other,
    ];

    pub fn of(path: &str) -> Self {
        let last = path.rsplit('/').next().unwrap_or_default();
        if path.contains("/.well-known/") {
            Self::Metadata
        } else if path.contains("/mcp/") {
            Self::Mcp
        } else if path.ends_with("/oauth/callback") {
            Self::Callback
        } else if path.contains("/oauth/") {
            match last {
                "token" => Self::Token,
                "revoke" => Self::Revoke,
                "register" => Self::Register,
                "authorize" => Self::Authorize,
                _ => Self::Other,
            }
        } else if last == "healthz" || last == "readyz" {
            Self::Health
        } else {
            Self::Other
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Mcp => "mcp",
            Self::Callback => "callback",
            Self::Token => "token",
            Self::Revoke => "revoke",
            Self::Register => "register",
            Self::Authorize => "authorize",
            Self::Health => "health",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classed_without_their_slugs() {
        assert_eq!(RouteClass::of("/oauth/demo/token"), RouteClass::Token);
        assert_eq!(RouteClass::of("/p/mcp/demo"), RouteClass::Mcp);
        assert_eq!(RouteClass::of("/.well-known/oauth-protected-resource/mcp/demo"), RouteClass::Metadata);
        assert_eq!(RouteClass::of("/oauth/callback"), RouteClass::Callback);
        assert_eq!(RouteClass::of("/favicon.ico"), RouteClass::Other);
    }

    #[test]
    fn counters_render_with_their_labels() {
        let m = Metrics::new(["demo"]);
        m.observe_http(RouteClass::Token, 200, Duration::from_millis(3));
        m.observe_http(RouteClass::Token, 200, Duration::from_millis(3));
        m.observe_http(RouteClass::Token, 999, Duration::from_millis(3));
        m.rate_limited("registrations");
        let demo = m.server("demo");
        demo.responses.inc(202);
        m.server("unlisted").responses.inc(202);
        let text = m.render();
        assert!(text.contains("mcp_oauth_proxy_http_requests_total{route=\"token\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("mcp_oauth_proxy_http_requests_total{route=\"token\",status=\"999\"} 1"), "{text}");
        assert!(text.contains("mcp_upstream_responses_total{slug=\"demo\",status=\"202\"} 1"), "{text}");
        assert!(text.contains("mcp_upstream_responses_total{slug=\"unlisted\",status=\"202\"} 1"), "{text}");
        assert!(text.contains("mcp_oauth_proxy_rate_limited_total{limit=\"registrations\"} 1"), "{text}");
        assert!(text.contains("mcp_oauth_proxy_database_errors_total{kind=\"unavailable\"}"), "{text}");
    }
}
