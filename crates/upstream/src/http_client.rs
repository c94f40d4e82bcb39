//! Outgoing HTTP clients.
//!
//! reqwest is built without a bundled TLS crypto provider (the default one pulls in a
//! large C build); we install rustls' `ring` provider once per process instead.

use std::sync::Once;
use std::time::Duration;

static PROVIDER: Once = Once::new();

pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        // Fails only if another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client for short request/response exchanges with the provider (token, userinfo,
/// discovery): bounded in total time, never following redirects (a token endpoint that
/// redirects is misconfigured, and following it could leak credentials).
pub fn for_provider_calls() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mcp-oauth-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client configuration is static and valid")
}

/// The client for forwarding MCP traffic. No total timeout: it would cut long SSE
/// streams. Instead a connect timeout, and an idle limit: a response that stays silent
/// this long is ended (the client reconnects, resuming with `Last-Event-ID`).
/// Connections are pooled and reused across requests and users.
pub fn for_mcp_upstream(idle: Duration) -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(idle)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTP client configuration is static and valid")
}
