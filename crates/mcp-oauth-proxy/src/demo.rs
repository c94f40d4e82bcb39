//! `mcp-oauth-proxy demo`: the whole product on loopback, offline, in one command.
//!
//! It starts the development identity provider (one demo user, access tokens that live
//! two minutes so upstream refreshes can be watched in the log), a sample MCP server
//! that only accepts that provider's tokens, and the proxy in front of it, with a fresh
//! SQLite database and encryption key in a temporary folder.

use std::path::PathBuf;
use std::sync::Arc;

use mcp_oauth_core::SystemClock;
use mcp_oauth_devsupport::idp::{DevIdp, IdpOptions};
use mcp_oauth_devsupport::mcp_server::{self, Observed};

use crate::config::Config;
use crate::runtime;

pub struct Demo {
    pub public_url: String,
    pub mcp_url: String,
    pub issuer: String,
    pub data_dir: PathBuf,
    pub app: mcp_oauth_http::AppState,
    pub listener: tokio::net::TcpListener,
}

/// Starts the identity provider and the MCP server, and prepares the proxy on
/// `127.0.0.1:port` (0 picks a free port). Serve it with [`Demo::serve`].
pub async fn start(port: u16, data_dir: Option<PathBuf>) -> Result<Demo, Box<dyn std::error::Error + Send + Sync>> {
    let clock = Arc::new(SystemClock);
    let idp = DevIdp::new(IdpOptions { access_ttl_secs: Some(120), ..Default::default() }, clock.clone());
    let issuer = idp.spawn().await?;
    let upstream = mcp_server::spawn(idp.token_check(), Observed::default()).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e} (choose another with --port)"))?;
    let public_url = format!("http://{}", listener.local_addr()?);
    let data_dir = data_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("mcp-oauth-proxy-demo-{}", mcp_oauth_core::token::random_id()))
    });
    let db = format!("sqlite://{}", data_dir.join("proxy.db").display());
    let toml = mcp_oauth_devsupport::DevProxyConfig {
        public_url: &public_url,
        storage_url: &db,
        encryption_key: &mcp_oauth_core::seal::generate_key(),
        issuer: &issuer,
        upstream_url: &upstream,
        more_tables: "",
    }
    .toml();
    let config = Config::from_parts(&toml, std::iter::empty(), &|_| None)?;
    let app = runtime::build(config, clock).await?;
    let mcp_url = app.settings.resource("demo");
    Ok(Demo { public_url, mcp_url, issuer, data_dir, app, listener })
}

impl Demo {
    pub fn banner(&self) -> String {
        format!(
            "\nmcp-oauth-proxy demo is running (everything on loopback, nothing leaves this machine)\n\n\
             MCP URL:            {mcp}\n\
             identity provider:  {issuer}  (log in as the demo user with one click)\n\
             data:               {data}\n\n\
             Connect an MCP client to the MCP URL, for example:\n  \
             npx @modelcontextprotocol/inspector   then choose \"Streamable HTTP\", enter {mcp}, and Connect\n\n\
             The client discovers the proxy's authorization server, registers, shows you the consent\n\
             page and the provider's login, and then calls the sample tools (whoami, add, echo,\n\
             count_slowly). Upstream tokens live two minutes: watch the log refresh them.\n\
             Press Ctrl-C to stop.\n",
            mcp = self.mcp_url,
            issuer = self.issuer,
            data = self.data_dir.display(),
        )
    }

    pub async fn serve(self) -> std::io::Result<()> {
        runtime::serve(self.app, self.listener, None).await
    }
}
