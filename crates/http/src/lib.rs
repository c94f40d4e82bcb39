//! The HTTP edge of mcp-oauth-proxy: thin axum handlers over the protocol core
//! (`mcp_oauth_core`), the store and the identity-provider client.
//!
//! Three files explain every handler:
//! - `error`: `HttpError`, the one error type; every error response and every error
//!   status is made there;
//! - `extract`: what handlers would otherwise open with: the server named by the route,
//!   the strict OAuth form, the checked bearer token, the caller's address;
//! - `state`: [`App`], the settings and the services handlers use, and the sub-states
//!   (`FromRef`) a handler asks for when it uses one service.
//!
//! The rooms:
//! - `services/`: what `App` holds: the client directory, the identity providers, the
//!   brokers (brokered OAuth: OAuth-protected MCP upstreams' own authorization servers),
//!   upstream access, identities (assertions and identity headers), the MCP client,
//!   limits, audit, metrics, revocations, tool pins;
//! - `oauth/`: the routes of the authorization server, one file per endpoint, and what
//!   they share (the checked request, the login and the brokered upstream's login, the
//!   grants, client authentication);
//! - `mcp/`: the reverse proxy's route and the tool rules it applies;
//! - `account`: the page where users see and revoke the applications connected to
//!   their account; `admin`: the operators' console;
//! - `health`: liveness and readiness; `pages`: HTML; `responses`: successful answers;
//! - [`serve`]: connections: admission, request bodies in time, the access log;
//! - around them: [`settings`], `client_address` (who is calling), `trace` (login
//!   attempts' trace ids), `cookies`, `provider_login` (a provider's answer to a login,
//!   redeemed: shared by the OAuth flow and the people's pages).
//!
//! Words: the *provider* is the identity provider users log in at (its tokens are the
//! "upstream" credential the proxy keeps sealed); the *MCP upstream* is the MCP server
//! behind the proxy; a *server* is one protected MCP server, named by its slug; a
//! *brokered* server's MCP upstream has its own authorization server, whose tokens the
//! grant then keeps instead of the provider's.

mod account;
mod admin;
mod client_address;
mod cookies;
mod error;
mod extract;
mod health;
mod mcp;
mod oauth;
mod pages;
mod provider_login;
mod responses;
pub mod serve;
mod services;
pub mod settings;
mod state;
mod trace;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware;
use axum::routing::{any, get, post};
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

use crate::serve::access_log;
use crate::serve::body_deadline::BodyDeadlineLayer;
use crate::services::metrics::Metrics;

pub use services::audit::Audit;
pub use services::brokers::Brokers;
pub use services::history::SAMPLE_EVERY as HISTORY_SAMPLE;
pub use services::last_uses::FLUSH_EVERY as LAST_USES_FLUSH;
pub use services::mcp_client::McpClient;
pub use services::providers::Providers;
pub use services::revocations::POLL as REVOCATIONS_POLL;
pub use state::{App, AppState};

/// Request bodies of the OAuth endpoints are small; anything larger is refused early.
const OAUTH_BODY_LIMIT: usize = 64 * 1024;

/// The metrics endpoint, for a listener of its own (never the public one).
pub fn metrics_router(app: AppState) -> Router {
    let metrics = |State(metrics): State<Arc<Metrics>>| async move {
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        ([(axum::http::header::CONTENT_TYPE, content_type)], metrics.render())
    };
    Router::new().route("/metrics", get(metrics)).with_state(app)
}

pub fn router(app: AppState) -> Router {
    let prefix = app.settings.path_prefix().to_owned();
    let oauth = |p: &str| format!("{prefix}/oauth/{{slug}}{p}");
    let well_known = |kind: &str, path: &str| format!("/.well-known/{kind}{prefix}/{path}/{{slug}}");

    // Endpoints that browser-based MCP clients call from their own origin. None of them
    // uses cookies, so allowing any origin grants nothing a non-browser client lacks.
    // Headers are mirrored rather than `*`, which does not cover `Authorization`.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers(Any);

    let machine = Router::new()
        .route(&well_known("oauth-protected-resource", "mcp"), get(oauth::metadata::protected_resource))
        .route(&well_known("oauth-authorization-server", "oauth"), get(oauth::metadata::authorization_server))
        .route(&well_known("openid-configuration", "oauth"), get(oauth::metadata::authorization_server))
        .route(&oauth("/.well-known/openid-configuration"), get(oauth::metadata::authorization_server))
        .route(&oauth("/.well-known/oauth-authorization-server"), get(oauth::metadata::authorization_server))
        .route(&format!("{prefix}/.well-known/jwks.json"), get(oauth::metadata::jwks))
        .route(&format!("{prefix}/oauth/upstream-client.json"), get(oauth::metadata::upstream_client))
        .route(
            &oauth("/register"),
            post(oauth::register::register).layer(DefaultBodyLimit::max(oauth::register::MAX_BODY_BYTES)),
        )
        .route(&oauth("/token"), post(oauth::token::token).fallback(oauth::token::method_not_allowed))
        .route(&oauth("/revoke"), post(oauth::revoke::revoke).fallback(oauth::token::method_not_allowed))
        .layer(cors.clone());

    let browser = Router::new()
        .route(&oauth("/authorize"), get(oauth::authorize::get).post(oauth::authorize::post))
        .route(&format!("{prefix}/oauth/callback"), get(oauth::callback::callback))
        .route(&format!("{prefix}/oauth/upstream-callback"), get(oauth::callback::upstream_callback))
        .route(&format!("{prefix}/account"), get(account::page))
        .route(&format!("{prefix}/account/login"), get(account::start_login))
        .route(&format!("{prefix}/account/revoke"), post(account::revoke))
        .route(&format!("{prefix}/account/logout"), post(account::logout))
        .route(&format!("{prefix}/admin"), get(admin::overview))
        .route(&format!("{prefix}/admin/login"), get(admin::login))
        .route(&format!("{prefix}/admin/grants"), get(admin::grants))
        .route(&format!("{prefix}/admin/grants/revoke"), post(admin::revoke_grants))
        .route(&format!("{prefix}/admin/clients"), get(admin::clients))
        .route(&format!("{prefix}/admin/clients/delete"), post(admin::delete_client))
        .route(&format!("{prefix}/admin/audit"), get(admin::audit))
        .route(&format!("{prefix}/admin/logout"), post(admin::logout));

    // The MCP endpoint reads its body itself, up to each server's own limit.
    let mcp = Router::new()
        .route(&format!("{prefix}/mcp/{{slug}}"), any(mcp::handle))
        .layer(DefaultBodyLimit::disable())
        .layer(cors);

    let health = Router::new()
        .route(&format!("{prefix}/healthz"), get(health::alive))
        .route(&format!("{prefix}/readyz"), get(health::ready));

    // A body that trickles in holds a connection, a task and its buffer: the whole of it
    // must arrive in time, on every route.
    let body_timeout = BodyDeadlineLayer::new(app.settings.connections.body_read_timeout);
    Router::new()
        .merge(health)
        .merge(machine.layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT)))
        .merge(browser.layer(DefaultBodyLimit::max(OAUTH_BODY_LIMIT)))
        .merge(mcp)
        .layer(body_timeout)
        .layer(middleware::from_fn_with_state(app.clone(), access_log::log))
        .with_state(app)
}
