//! The process: building the application from a configuration, and serving it.

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_http::Audit;
use mcp_oauth_http::Providers;
use mcp_oauth_http::serve::Admission;
use mcp_oauth_http::{App, AppState};
use mcp_oauth_upstream::{Provider, http_client};

use crate::config::Config;

/// Opens the store (creating and migrating it) and wires everything together.
pub async fn build(config: Config, clock: SharedClock) -> Result<AppState, Box<dyn std::error::Error + Send + Sync>> {
    let store = mcp_oauth_store::open(&config.storage_url).await?;
    // Refuse to start rather than answer 500 for every grant sealed with a key we lack.
    if let Some(missing) = crate::rekey::missing_keys(store.as_ref(), &config.keys).await? {
        return Err(missing.to_string().into());
    }
    let http = http_client::for_provider_calls();
    let providers = Providers::new(config.providers.into_iter().map(|p| Provider::new(p, http.clone())));
    let mcp_client = mcp_oauth_http::McpClient::new(Duration::from_secs(config.idle_timeout_secs))?;
    let audit = match config.audit_path.as_deref() {
        None => Audit::off(),
        Some("-") => Audit::to_writer(Box::new(std::io::stdout())),
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            // Who logged in from where is for the operator alone; a file that exists
            // keeps the mode it has.
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(path).map_err(|e| format!("audit.path: cannot open {path}: {e}"))?;
            Audit::to_writer(Box::new(file))
        }
    };
    let app = AppState::new(App::new(config.settings, store, config.keys, clock, providers, mcp_client, audit));
    app.revocations.watch(Arc::clone(&app.store), mcp_oauth_http::REVOCATIONS_POLL);
    app.last_uses.record_every(Arc::clone(&app.store), mcp_oauth_http::LAST_USES_FLUSH);
    app.history.sample_every(mcp_oauth_http::HISTORY_SAMPLE);
    Ok(app)
}

/// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn serve(
    app: AppState,
    listener: tokio::net::TcpListener,
    metrics_listen: Option<std::net::SocketAddr>,
) -> std::io::Result<()> {
    for provider in app.providers.iter() {
        let provider = Arc::clone(provider);
        // Discovery problems are worth knowing at start, but a provider that is down
        // right now must not keep the proxy from starting: requests retry discovery.
        tokio::spawn(async move {
            if let Err(e) = provider.warm_up().await {
                tracing::warn!(provider = provider.name(), error = %e, "provider discovery failed; will retry on use");
            }
        });
    }
    let _purge = crate::purge::spawn(app.clone(), Duration::from_secs(300));
    tracing::info!(
        address = %listener.local_addr()?,
        public_url = %app.settings.public_url,
        storage = app.store.backend().as_str(),
        "mcp-oauth-proxy is serving"
    );
    // On SIGTERM/SIGINT stop accepting, let requests in flight finish, but do not wait
    // forever: MCP event streams never end by themselves, and a deploy must not hang on
    // them. Their clients reconnect (to another replica) with Last-Event-ID.
    if let Some(address) = metrics_listen {
        let metrics = tokio::net::TcpListener::bind(address).await?;
        tracing::info!(%address, "metrics are served at /metrics");
        tokio::spawn(serve_metrics(app.clone(), metrics));
    }
    let admission = Admission::for_app(&app);
    let router = mcp_oauth_http::router(app.clone());
    // One serving thread per core the process may use.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let served = mcp_oauth_http::serve::serve_on_threads(
        listener,
        threads,
        router,
        admission,
        shutdown_signal(),
        SHUTDOWN_GRACE,
    )
    .await;
    // The grants' uses noted since the last batch, written before the process ends, so
    // that a deploy (every replica restarted in turn) loses none of them.
    app.last_uses.flush(app.store.as_ref()).await;
    served
}

/// Serves `/metrics` on `listener` for as long as the process runs, with the public
/// listener's bounds on connections: a client that trickles its headers here would
/// otherwise hold a connection for ever (`axum::serve` sets no header timeout).
pub async fn serve_metrics(app: AppState, listener: tokio::net::TcpListener) {
    let admission = Admission::for_app(&app);
    let router = mcp_oauth_http::metrics_router(app);
    let forever = std::future::pending();
    if let Err(e) = mcp_oauth_http::serve::serve(listener, router, admission, forever, Duration::ZERO).await {
        tracing::error!(error = %e, "the metrics listener stopped");
    }
}

/// How long requests in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
