//! Probes for load balancers and orchestrators: alive (the process answers), and ready
//! (the database answers too).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use mcp_oauth_store::Store;

pub async fn alive() -> &'static str {
    "ok"
}

pub async fn ready(State(store): State<Arc<dyn Store>>) -> (StatusCode, &'static str) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer")
        }
    }
}
