//! The proxy under measurement: the real `mcp-oauth-proxy serve` binary, as a process of
//! its own, in front of the development identity provider and the benchmark's server.

use std::path::Path;
use std::time::Duration;

pub const REDIRECT: &str = "http://127.0.0.1:1/callback";

pub struct Proxy {
    /// Killed when this is dropped.
    _child: tokio::process::Child,
    pub pid: u32,
    pub public_url: String,
}

impl Proxy {
    /// Starts `bin` with its own configuration in `dir`, storing in `storage_url`, and
    /// waits until it accepts connections.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        storage_url: &str,
        issuer: &str,
        upstream: &str,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port();
        let public_url = format!("http://127.0.0.1:{port}");
        let config = dir.join(format!("proxy-{port}.toml"));
        let toml = mcp_oauth_devsupport::DevProxyConfig {
            public_url: &public_url,
            storage_url,
            encryption_key: &mcp_oauth_core::seal::generate_key(),
            issuer,
            upstream_url: upstream,
            more_tables: &format!(
                "[[clients]]\nclient_id = \"bench\"\nredirect_uris = [\"{REDIRECT}\"]\ntrusted = true\n"
            ),
        }
        .toml();
        // Room for the open-stream measurement beyond the default of 20,000 connections,
        // all from one address (the default per address is 256).
        let limits = "[limits]\nmax_connections = 100000\nmax_connections_per_address = 100000\n";
        std::fs::write(&config, format!("listen = \"127.0.0.1:{port}\"\n{toml}\n{limits}"))?;
        // Logging as deployed: the default level, with its access log line per request,
        // to a file (as to a journal or a container's log).
        let log = std::fs::File::create(dir.join(format!("proxy-{port}.log")))?;
        let child = tokio::process::Command::new(bin)
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the proxy exited at once")?;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(Self { _child: child, pid, public_url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("the proxy did not listen on port {port}").into())
    }

    /// Logs in as a user would (consent and login pages); the token response.
    pub async fn log_in(&self) -> serde_json::Value {
        mcp_oauth_devsupport::browser::log_in(&self.public_url, "demo", "bench", REDIRECT).await
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp/demo", self.public_url)
    }

    pub fn token_url(&self) -> String {
        format!("{}/oauth/demo/token", self.public_url)
    }
}
