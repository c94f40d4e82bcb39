//! The access log: one line per request.

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Method, path, status, time. Never the query string, which carries codes and state,
/// and never a header.
pub async fn log(req: Request, next: Next) -> Response {
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
