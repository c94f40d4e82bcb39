//! The background task that deletes expired rows.

use std::time::Duration;

use mcp_oauth_store::Retention;

use crate::AppState;

/// Purges every `every`, forever. Errors are logged and retried at the next tick.
pub async fn run(app: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match app.store.purge_expired(app.now(), Retention::default()).await {
            Ok(p) if p.total() > 0 => tracing::info!(?p, "purged expired rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purge failed; will retry"),
        }
    }
}
