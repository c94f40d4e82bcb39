//! The HTTP layer of mcp-oauth-proxy: thin axum handlers over the protocol core and the
//! store. [`router`] builds the whole application; tests drive it directly.

pub mod app;
pub mod cookies;
pub mod mcp;
pub mod oauth;
pub mod purge;
pub mod responses;
pub mod settings;
pub mod upstream_access;

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

pub use app::{App, AppState};

/// Request bodies of the OAuth endpoints are small; anything larger is refused early.
const OAUTH_BODY_LIMIT: usize = 64 * 1024;

pub fn router(app: AppState) -> Router {
    let prefix = app.settings.path_prefix().to_owned();
    let oauth = |p: &str| format!("{prefix}/oauth/{{slug}}{p}");

    // Endpoints that browser-based MCP clients call from their own origin. None of them
    // uses cookies, so allowing any origin grants nothing a non-browser client lacks.
    // Headers are mirrored rather than `*`, which does not cover `Authorization`.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(Any);

    let machine = Router::new()
        .route(
            &format!("/.well-known/oauth-protected-resource{prefix}/mcp/{{slug}}"),
            get(oauth::metadata::protected_resource),
        )
        .route(
            &format!("/.well-known/oauth-authorization-server{prefix}/oauth/{{slug}}"),
            get(oauth::metadata::authorization_server),
        )
        .route(
            &format!("/.well-known/openid-configuration{prefix}/oauth/{{slug}}"),
            get(oauth::metadata::authorization_server),
        )
        .route(&oauth("/.well-known/openid-configuration"), get(oauth::metadata::authorization_server))
        .route(&oauth("/.well-known/oauth-authorization-server"), get(oauth::metadata::authorization_server))
        .route(&oauth("/register"), post(oauth::register::register))
        .route(&oauth("/token"), post(oauth::token::token).fallback(oauth::token::method_not_allowed))
        .route(&oauth("/revoke"), post(oauth::revoke::revoke).fallback(oauth::token::method_not_allowed))
        .layer(cors.clone());

    let browser = Router::new()
        .route(&oauth("/authorize"), get(oauth::authorize::get).post(oauth::authorize::post))
        .route(&format!("{prefix}/oauth/callback"), get(oauth::callback::callback));

    // The MCP endpoint reads its body itself, up to each server's own limit.
    let mcp = Router::new()
        .route(&format!("{prefix}/mcp/{{slug}}"), axum::routing::any(mcp::handle))
        .layer(DefaultBodyLimit::disable())
        .layer(cors);

    // For load balancers and orchestrators: alive, and ready (the database answers).
    let health = Router::new()
        .route(&format!("{prefix}/healthz"), get(|| async { "ok" }))
        .route(&format!("{prefix}/readyz"), get(ready));

    Router::new()
        .merge(health)
        .merge(machine.layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT)))
        .merge(browser.layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT)))
        .merge(mcp)
        .layer(middleware::from_fn(access_log))
        .with_state(app)
}

async fn ready(axum::extract::State(app): axum::extract::State<AppState>) -> Response {
    use axum::response::IntoResponse;
    match app.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "the database does not answer").into_response()
        }
    }
}

/// One line per request: method, path, status, time. Never the query string, which
/// carries codes and state, and never a header.
async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    if path.ends_with("/healthz") || path.ends_with("/readyz") {
        return resp; // probes every few seconds would drown the log
    }
    tracing::info!(
        target: "mcp_oauth_proxy::access",
        %method,
        path,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
    );
    resp
}
