//! Accepting connections and serving them, with the bounds a server on the open
//! internet needs: request headers must arrive in time (a client that trickles them
//! would otherwise hold a connection for ever), connections open at once are capped, and
//! a shutdown lets requests in flight finish but does not wait for ever on streams.
//!
//! Written over hyper rather than `axum::serve`, which sets neither bound.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::settings::ConnectionSettings;

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets
/// requests in flight finish, and after `grace` closes what is still open (MCP event
/// streams never end by themselves; their clients reconnect with `Last-Event-ID`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait until others close"
                    );
                    last_warning = Some(Instant::now());
                }
                tokio::select! {
                    p = Arc::clone(&permits).acquire_owned() => p.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // No Nagle delay: MCP messages are small and latency is what clients feel.
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::info!(grace_secs = grace.as_secs(), "open streams cut after the shutdown grace period");
        }
    }
    Ok(())
}
