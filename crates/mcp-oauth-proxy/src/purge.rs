//! The background task that deletes expired rows.

use std::time::Duration;

use mcp_oauth_store::Retention;
use tokio::task::JoinHandle;

use mcp_oauth_http::AppState;

/// The running purge task; dropping it stops the task (so a test or an embedding that
/// drops its app does not leave it running).
pub struct PurgeTask(JoinHandle<()>);

impl Drop for PurgeTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Purges every `every`, until the returned handle is dropped. Errors are logged and
/// retried at the next tick.
pub fn spawn(app: AppState, every: Duration) -> PurgeTask {
    PurgeTask(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let retention =
                Retention { refresh_grace_secs: app.settings.tokens.refresh_grace_secs, ..Retention::default() };
            match app.store.purge_expired(app.now(), retention).await {
                Ok(p) if p.total() > 0 => tracing::info!(?p, "purged expired rows"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge failed; will retry"),
            }
        }
    }))
}
