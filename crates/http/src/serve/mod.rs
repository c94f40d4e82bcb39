//! Accepting connections and serving them, with the bounds a server on the open
//! internet needs: request headers must arrive in time (a client that trickles them
//! would otherwise hold a connection for ever), connections open at once are capped (in
//! all, and per address: see `admission`), and a shutdown lets requests in flight finish
//! but does not wait for ever on streams.
//!
//! Written over hyper rather than `axum::serve`, which sets neither bound.
//!
//! What wraps every request on its way in: `admission` (connections let in or refused),
//! `body_deadline` (a request body arrives in time), `access_log` (one line per request).

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

pub(crate) mod access_log;
pub(crate) mod admission;
pub(crate) mod body_deadline;

pub use admission::Admission;

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets
/// requests in flight finish, and after `grace` closes what is still open (MCP event
/// streams never end by themselves; their clients reconnect with `Last-Event-ID`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    admission: Admission,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(admission.settings.max_connections));
    accept_loop(listener, router, Arc::new(admission), permits, shutdown, grace).await
}

/// [`serve`] on `threads` threads, each running a single-threaded runtime that accepts
/// from the same listening socket and serves the connections it accepted to the end, as
/// nginx's worker processes do. A request, its forwarding to the MCP upstream (whose
/// pooled connections are per thread, see `mcp::client`) and the answer then all happen
/// on one thread: tokio's multi-threaded scheduler, by contrast, woke a second thread
/// for almost every request (two futex calls per request at one client, some 13% of the
/// proxy's CPU in a profile). `max_connections` and `max_connections_per_address` hold
/// across threads.
/// The listener's own runtime keeps the background work (database pools, timers).
pub async fn serve_on_threads(
    listener: TcpListener,
    threads: usize,
    router: Router,
    admission: Admission,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let permits = Arc::new(Semaphore::new(admission.settings.max_connections));
    let admission = Arc::new(admission);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (ended, mut endings) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<()>>();
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        let (listener, router, permits) = (listener.try_clone()?, router.clone(), Arc::clone(&permits));
        let admission = Arc::clone(&admission);
        let (mut stopped, ended) = (stopped.clone(), ended.clone());
        let worker = std::thread::Builder::new().name(format!("serve-{i}")).spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread().enable_all().build().and_then(|runtime| {
                runtime.block_on(async move {
                    let stop = async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    };
                    let listener = TcpListener::from_std(listener)?;
                    accept_loop(listener, router, admission, permits, stop, grace).await
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
    admission: Arc<Admission>,
    permits: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let limits = admission.settings;
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
        // Over its address's cap: closed now, unanswered; its permit is free again.
        let Some(admitted) = admission.admit(peer.ip()) else { continue };
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
            drop((admitted, permit));
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::settings::ConnectionSettings;

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
        let admission = Admission::new(ConnectionSettings::default());
        let serving =
            tokio::spawn(serve_on_threads(listener, 2, thread_naming_router(), admission, shutdown, Duration::ZERO));

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

    /// A connection kept open after its first answer, and the thread that served it;
    /// an error when the proxy closed it unanswered.
    async fn held(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpStream, String)> {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await?;
        let mut answer = Vec::new();
        let mut buf = [0; 1024];
        while !String::from_utf8_lossy(&answer).contains("serve-") {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
            if n == 0 {
                return Err(std::io::Error::other("closed unanswered"));
            }
            answer.extend_from_slice(&buf[..n]);
        }
        let thread = String::from_utf8_lossy(&answer).rsplit("\r\n\r\n").next().unwrap_or_default().to_owned();
        Ok((stream, thread))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cap_per_address_holds_across_serving_threads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = ConnectionSettings { max_connections_per_address: 2, ..ConnectionSettings::default() };
        let shutdown = std::future::pending();
        let serving =
            serve_on_threads(listener, 2, thread_naming_router(), Admission::new(settings), shutdown, Duration::ZERO);
        let serving = tokio::spawn(serving);

        // One connection held on each thread: were the count kept per thread, each
        // would let a second one in.
        let (_first, first_thread) = held(addr).await.unwrap();
        let mut second = None;
        for _ in 0..100 {
            let (stream, thread) = held(addr).await.unwrap();
            if thread != first_thread {
                second = Some(stream);
                break;
            }
            drop(stream);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _second = second.expect("a connection served by the other thread");
        for _ in 0..10 {
            assert!(held(addr).await.is_err(), "a third connection from the address is closed");
        }
        serving.abort();
    }
}
