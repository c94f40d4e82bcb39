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
    accept_loop(listener, router, limits, permits, shutdown, grace).await
}

/// [`serve`] on `threads` threads, each running a single-threaded runtime that accepts
/// from the same listening socket and serves the connections it accepted to the end, as
/// nginx's worker processes do. A request, its forwarding to the MCP upstream (whose
/// pooled connections are per thread, see `mcp::client`) and the answer then all happen
/// on one thread: tokio's multi-threaded scheduler, by contrast, woke a second thread
/// for almost every request (two futex calls per request at one client, some 13% of the
/// proxy's CPU in a profile). `max_connections` holds across threads.
/// The listener's own runtime keeps the background work (database pools, timers).
pub async fn serve_on_threads(
    listener: TcpListener,
    threads: usize,
    router: Router,
    limits: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (ended, mut endings) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<()>>();
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        let (listener, router, permits) = (listener.try_clone()?, router.clone(), Arc::clone(&permits));
        let (mut stopped, ended) = (stopped.clone(), ended.clone());
        let worker = std::thread::Builder::new().name(format!("serve-{i}")).spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread().enable_all().build().and_then(|runtime| {
                runtime.block_on(async move {
                    let stop = async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    let listener = TcpListener::from_std(listener)?;
                    accept_loop(listener, router, limits, permits, stop, grace).await
                })
            });
            let _ = ended.send(served);
        })?;
        workers.push(worker);
    }
    drop((listener, ended));
    // Until the shutdown signal, or until a thread fails (then the others stop too).
    let mut result = tokio::select! {
        () = shutdown => Ok(()),
        Some(served) = endings.recv() => served,
    };
    let _ = stop.send(true);
    while let Some(served) = endings.recv().await {
        result = result.and(served);
    }
    tokio::task::spawn_blocking(move || workers.into_iter().for_each(|w| drop(w.join()))).await?;
    result
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: ConnectionSettings,
    permits: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use axum::routing::get;

    use super::*;

    /// Answers with the name of the thread that served the request, after holding that
    /// thread for a moment (blocking it on purpose), so that the next connections must be
    /// taken by another.
    fn thread_naming_router() -> Router {
        Router::new().route(
            "/",
            get(|| async {
                std::thread::sleep(Duration::from_millis(20));
                std::thread::current().name().unwrap_or("?").to_owned()
            }),
        )
    }

    async fn get_text(addr: SocketAddr) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok(answer.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_serving_thread_takes_connections_and_all_stop_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let limits = ConnectionSettings::default();
        let serving =
            tokio::spawn(serve_on_threads(listener, 2, thread_naming_router(), limits, shutdown, Duration::ZERO));

        // Connections arriving together are taken by whichever thread is free: while one
        // is held, the other serves.
        let mut threads = HashSet::new();
        for _ in 0..20 {
            let answers: Vec<_> = (0..16).map(|_| tokio::spawn(get_text(addr))).collect();
            for answer in answers {
                threads.insert(answer.await.unwrap().unwrap());
            }
            if threads.len() == 2 {
                break;
            }
        }
        assert_eq!(threads, HashSet::from(["serve-0".to_owned(), "serve-1".to_owned()]));

        stop.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), serving).await.expect("serving ends on shutdown");
        ended.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the socket is closed");
    }
}
