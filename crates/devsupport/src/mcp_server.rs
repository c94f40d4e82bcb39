//! A sample MCP server (the official Rust SDK, streamable HTTP) that accepts only tokens
//! of the development identity provider, for `demo` and the tests.
//!
//! Tools: `whoami` (who the upstream token belongs to), `add`, `echo`, and `count_slowly`,
//! which streams progress notifications before its result.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, RequestMetaObject};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};

/// Answers who a bearer token belongs to, or `None` if it is not valid.
pub type TokenCheck = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What the server saw, for tests: every Authorization header, in order.
#[derive(Clone, Default)]
pub struct Observed(Arc<Mutex<Vec<String>>>);

impl Observed {
    pub fn authorization_headers(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct AddRequest {
    pub a: i64,
    pub b: i64,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoRequest {
    pub text: String,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct CountRequest {
    /// How many progress steps to send.
    pub steps: u32,
    /// Milliseconds between steps.
    pub delay_ms: u64,
}

#[derive(Clone)]
pub struct SampleServer {
    check: TokenCheck,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl SampleServer {
    pub fn new(check: TokenCheck) -> Self {
        Self { check, tool_router: Self::tool_router() }
    }

    #[tool(description = "Tells who the caller is, as the identity provider knows them")]
    async fn whoami(
        &self,
        rmcp::handler::server::tool::Extension(parts): rmcp::handler::server::tool::Extension<http::request::Parts>,
    ) -> String {
        let token = bearer(&parts.headers).unwrap_or_default();
        (self.check)(&token).unwrap_or_else(|| "unknown".into())
    }

    #[tool(description = "Adds two integers")]
    async fn add(&self, Parameters(AddRequest { a, b }): Parameters<AddRequest>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Echoes its text")]
    async fn echo(&self, Parameters(EchoRequest { text }): Parameters<EchoRequest>) -> String {
        text
    }

    #[tool(description = "Counts to `steps`, sending a progress notification at each step")]
    async fn count_slowly(
        &self,
        Parameters(CountRequest { steps, delay_ms }): Parameters<CountRequest>,
        meta: RequestMetaObject,
        client: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let token = meta.get_progress_token();
        for step in 1..=steps {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if let Some(token) = &token {
                let progress = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step} of {steps}"));
                let _ = client.notify_progress(progress).await;
            }
        }
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("counted to {steps}"))]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SampleServer {}

fn bearer(headers: &http::HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
}

#[derive(Clone)]
struct Gate {
    check: TokenCheck,
    observed: Observed,
}

/// Only the identity provider's valid tokens get in; everything else is a 401, as a real
/// protected MCP server would answer.
async fn require_token(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    gate.observed.0.lock().unwrap().push(auth);
    match bearer(req.headers()).and_then(|t| (gate.check)(&t)) {
        Some(_) => next.run(req).await,
        None => {
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")]).into_response()
        }
    }
}

/// The MCP server as a router serving `/mcp`, with sessions (`Mcp-Session-Id`).
pub fn router(check: TokenCheck, observed: Observed) -> Router {
    router_with(check, observed, false)
}

/// `stateless`: no sessions, every POST answered with plain JSON (the benchmark's
/// upstream: one request, one response, nothing held between them).
pub fn router_with(check: TokenCheck, observed: Observed, stateless: bool) -> Router {
    let service_check = check.clone();
    let mut config = StreamableHttpServerConfig::default().with_sse_keep_alive(Some(Duration::from_secs(15)));
    if stateless {
        config = config.with_legacy_session_mode(false).with_json_response(true);
    }
    let service: StreamableHttpService<SampleServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(SampleServer::new(service_check.clone())), Default::default(), config);
    Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(Gate { check, observed }, require_token))
}

/// Serves the sample MCP server on a loopback port; returns its MCP URL.
pub async fn spawn(check: TokenCheck, observed: Observed) -> std::io::Result<String> {
    let (base, _) = crate::serve_on_loopback(router(check, observed)).await?;
    Ok(format!("{base}/mcp"))
}

/// How an OAuth-protected MCP server (RFC 9728) behaves, as brokered OAuth meets them:
/// its protected-resource metadata names an authorization server (which a test may
/// change, as when a server moves), its 401 challenge names that metadata and its scopes,
/// and a tool may need a scope its token lacks (403 `insufficient_scope`).
#[derive(Clone)]
pub struct Protection {
    pub authorization_server: Arc<Mutex<String>>,
    /// The scopes its challenge and metadata name.
    pub scopes: Vec<String>,
    /// (tool, scope): calls of the tool need the scope.
    pub tool_scope: Option<(String, String)>,
    /// The scopes a valid token carries (a [`TokenCheck`] that answers them).
    pub scopes_of: TokenCheck,
    /// How many times its protected-resource metadata was fetched.
    pub metadata_fetches: Arc<std::sync::atomic::AtomicUsize>,
    /// How long its protected-resource metadata takes to answer, in milliseconds (none by
    /// default): a slow upstream, for what waits behind a discovery.
    pub metadata_delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
struct Guard {
    gate: Gate,
    protection: Protection,
    base: String,
}

async fn require_token_and_scope(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    g.gate.observed.0.lock().unwrap().push(auth);
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", g.base);
    let token = bearer(req.headers());
    if token.as_deref().and_then(|t| (g.gate.check)(t)).is_none() {
        let challenge = format!("Bearer resource_metadata=\"{metadata}\", scope=\"{}\"", g.protection.scopes.join(" "));
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
    }
    let Some((tool, scope)) = g.protection.tool_scope.clone() else { return next.run(req).await };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let calls_tool = serde_json::from_slice::<serde_json::Value>(&bytes)
        .is_ok_and(|v| v["method"] == "tools/call" && v["params"]["name"] == tool.as_str());
    let granted = token.as_deref().and_then(|t| (g.protection.scopes_of)(t)).unwrap_or_default();
    if calls_tool && !granted.split(' ').any(|s| s == scope) {
        let needed = format!("{granted} {scope}");
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{metadata}\"",
            needed.trim()
        );
        return (StatusCode::FORBIDDEN, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Serves the sample MCP server as an OAuth-protected one on a loopback port; returns its
/// MCP URL.
pub async fn spawn_protected(check: TokenCheck, observed: Observed, protection: Protection) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let service_check = check.clone();
    let config = StreamableHttpServerConfig::default().with_sse_keep_alive(Some(Duration::from_secs(15)));
    let service: StreamableHttpService<SampleServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(SampleServer::new(service_check.clone())), Default::default(), config);
    let guard = Guard { gate: Gate { check, observed }, protection: protection.clone(), base: base.clone() };
    let resource = format!("{base}/mcp");
    let metadata = move || {
        let p = protection.clone();
        let resource = resource.clone();
        async move {
            p.metadata_fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let delay = p.metadata_delay_ms.load(std::sync::atomic::Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let server = p.authorization_server.lock().unwrap().clone();
            axum::Json(serde_json::json!({
                "resource": resource,
                "authorization_servers": [server],
                "scopes_supported": p.scopes,
                "bearer_methods_supported": ["header"],
            }))
        }
    };
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(guard, require_token_and_scope))
        .route("/.well-known/oauth-protected-resource/mcp", axum::routing::get(metadata));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("{base}/mcp"))
}
