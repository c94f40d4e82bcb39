//! The connection pool to MCP upstreams: hyper's client, without reqwest on top.
//!
//! Forwarding needs none of what reqwest adds (URL parsing per request, redirect and
//! decompression layers, a body stream adaptor per response): profiles of the MCP path put
//! those among the per-request costs, and each held event stream kept reqwest's
//! per-connection state alive besides hyper's. Here a request is a `http::Request` with
//! the already parsed URI, and the answer's body goes to the client frame by frame as
//! hyper hands it over.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_platform_verifier::ConfigVerifierExt;
use thread_local::ThreadLocal;

/// Reads from an upstream connection are at most this large: an event stream held open
/// keeps its read buffer for as long as it lives (hyper's default grows from 8 KiB), and
/// MCP messages are small; a large answer takes a few more reads.
const READ_BUFFER: usize = 4096;

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct McpClient {
    /// One pool per thread: a pooled connection is served by a task on the thread that
    /// opened it, and a request from another thread would wake that one for every
    /// message (see `serve::serve_on_threads`, which keeps a connection on one thread).
    pools: ThreadLocal<Pool>,
    connector: HttpsConnector<HttpConnector>,
    /// How long an answer may stay silent (its head, or between two body frames): no
    /// total timeout, which would cut long event streams.
    pub idle: Duration,
}

/// Why a request did not reach the MCP upstream or got no answer in time.
#[derive(Debug)]
pub enum SendError {
    Timeout,
    Unreachable(hyper_util::client::legacy::Error),
}

impl McpClient {
    /// Pooled keep-alive connections over plain TCP or TLS (verified against the
    /// platform's roots), a 10 s connect timeout, `TCP_NODELAY`, no proxy from the
    /// environment, never following redirects (hyper does not).
    pub fn new(idle: Duration) -> Result<Self, String> {
        mcp_oauth_upstream::http_client::install_crypto_provider();
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(Duration::from_secs(10)));
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| format!("cannot set up TLS for MCP upstreams with the system's certificates: {e}"))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Self { pools: ThreadLocal::new(), connector, idle })
    }

    fn pool(&self) -> &Pool {
        self.pools.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(1024)
                .http1_read_buf_exact_size(READ_BUFFER)
                .build(self.connector.clone())
        })
    }

    /// Sends `request`; the answer's head, or why there is none.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, SendError> {
        match tokio::time::timeout(self.idle, self.pool().request(request)).await {
            Err(_) => Err(SendError::Timeout),
            Ok(Err(e)) if is_timeout(&e) => Err(SendError::Timeout),
            Ok(Err(e)) => Err(SendError::Unreachable(e)),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// A connect timeout is reported as an I/O error of kind `TimedOut` down the chain.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        source = s.source();
    }
    false
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer in time"),
            Self::Unreachable(e) => {
                // hyper's top-level message is generic; the cause says what happened.
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
        }
    }
}
