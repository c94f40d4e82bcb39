//! Real proxy processes on one PostgreSQL database, for the tests that need replicas to be
//! separate programs (a crash, a cross-replica grant).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_oauth_core::ManualClock;
use mcp_oauth_devsupport::idp::{DevIdp, IdpOptions};
use mcp_oauth_devsupport::mcp_server::{self, Observed};

use crate::harness::KEY;

pub const REDIRECT: &str = "http://127.0.0.1:7/cb";
pub const TRUSTED_CLIENT: &str = "replica-test";

const BIN: &str = env!("CARGO_BIN_EXE_mcp-oauth-proxy");

pub struct Replica {
    pub child: tokio::process::Child,
    pub base: String,
}

pub async fn spawn_replica(config: &std::path::Path, port: u16) -> Replica {
    let child = tokio::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("MCP_OAUTH_PROXY_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "replica on {port} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Replica { child, base }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// What a pair of replicas shares: a config file (public URL = replica A's port, with a
/// trusted public client) naming the identity provider and MCP server started here, and
/// the two ports. Both servers run for the rest of the test process.
pub struct ReplicaSetup {
    pub config: PathBuf,
    pub port_a: u16,
    pub port_b: u16,
    dir: PathBuf,
}

impl Drop for ReplicaSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn replica_setup(db: &str) -> ReplicaSetup {
    let clock = ManualClock::starting_now();
    let idp = DevIdp::new(IdpOptions::default(), Arc::new(clock));
    let issuer = idp.spawn().await.unwrap();
    let upstream = mcp_server::spawn(idp.token_check(), Observed::default()).await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("mop-replicas-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("proxy.toml");
    let public_url = format!("http://127.0.0.1:{port_a}");
    let toml = mcp_oauth_devsupport::DevProxyConfig {
        public_url: &public_url,
        storage_url: db,
        encryption_key: KEY,
        issuer: &issuer,
        upstream_url: &upstream,
        more_tables: &format!(
            "[[clients]]\nclient_id = \"{TRUSTED_CLIENT}\"\nredirect_uris = [\"{REDIRECT}\"]\ntrusted = true\n"
        ),
    }
    .toml();
    std::fs::write(&config, toml).unwrap();
    ReplicaSetup { config, port_a, port_b, dir }
}
