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

/// The parts of a proxy configuration in front of the development identity provider and
/// one MCP server (slug `demo`), as `demo`, the tests and the benchmark all need it.
pub struct DevProxyConfig<'a> {
    pub public_url: &'a str,
    pub storage_url: &'a str,
    pub encryption_key: &'a str,
    /// The development identity provider's issuer URL.
    pub issuer: &'a str,
    pub upstream_url: &'a str,
    /// Further tables (`[[servers]]`, `[[clients]]`), appended as they are.
    pub more_tables: &'a str,
}

impl DevProxyConfig<'_> {
    /// The configuration as TOML.
    pub fn toml(&self) -> String {
        let idp = idp::IdpOptions::default();
        format!(
            r#"public_url = "{public_url}"

[storage]
url = "{storage_url}"

[encryption]
key = "{key}"

[providers.dev]
issuer = "{issuer}"
client_id = "{client_id}"
client_secret = "{client_secret}"
scopes = ["openid"]

[[servers]]
slug = "demo"
upstream_url = "{upstream_url}"
provider = "dev"

{more}
"#,
            public_url = self.public_url,
            storage_url = self.storage_url,
            key = self.encryption_key,
            issuer = self.issuer,
            client_id = idp.client_id,
            client_secret = idp.client_secret,
            upstream_url = self.upstream_url,
            more = self.more_tables,
        )
    }
}
