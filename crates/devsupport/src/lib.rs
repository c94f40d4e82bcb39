//! Development support shared by `mcp-oauth-proxy demo` and the tests: an identity
//! provider that behaves like a real one (login page, codes with PKCE, expiring access
//! tokens, rotating refresh tokens, OpenID discovery, userinfo) and that tests can
//! inspect and make misbehave.

pub mod browser;
pub mod idp;
pub mod mcp_server;

/// Binds `router` to an ephemeral loopback port and serves it in the background.
/// Returns the base URL (`http://127.0.0.1:PORT`).
pub async fn serve_on_loopback(router: axum::Router) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((format!("http://{addr}"), handle))
}
