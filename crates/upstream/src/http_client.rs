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
