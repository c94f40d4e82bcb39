//! Probes for load balancers and orchestrators: alive (the process answers), and ready
//! (the database answers too).

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn alive() -> &'static str {
    "ok"
}

pub async fn ready(State(app): State<AppState>) -> (StatusCode, &'static str) {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "the database does not answer")
        }
    }
}
