//! The access log: one line per request, and the request metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::services::metrics::{Metrics, RouteClass};

/// Method, path, status, time. Never the query string, which carries codes and state,
/// and never a header.
pub async fn log(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // Shares the request's bytes: no copy of the path per request.
    let uri = req.uri().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    let route = RouteClass::of(uri.path());
    metrics.observe_http(route, resp.status().as_u16(), started.elapsed());
    if route == RouteClass::Health {
        return resp; // probes every few seconds would drown the log
    }
    tracing::info!(
        target: "mcp_oauth_proxy::access",
        %method,
        path = uri.path(),
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
    );
    resp
}
