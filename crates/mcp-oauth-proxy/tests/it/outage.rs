//! The database goes away and comes back: requests fail with 503 meanwhile, nothing is
//! lost, and service resumes by itself. Runs against a PostgreSQL cluster of its own, so
//! that stopping it disturbs no other test.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{Harness, Start};
use crate::replicas::postgres_server;

struct Cluster {
    dir: PathBuf,
    port: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres.sh")
}

impl Cluster {
    fn run(&self, action: &str) -> String {
        let out = Command::new("bash")
            .arg(script())
            .arg(action)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .output()
            .expect("scripts/postgres.sh runs");
        assert!(out.status.success(), "postgres.sh {action}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned()
    }

    fn start() -> (Self, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("mop-pg-outage-{}", mcp_oauth_core::token::random_id()));
        let cluster = Self { dir, port };
        let url = cluster.run("start");
        (cluster, url)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_meanwhile_and_heals_by_itself() {
    if postgres_server().is_none() {
        return;
    }
    let (cluster, url) = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let h = Harness::start_with(Start { storage_url: Some(url), ..Default::default() }).await;
    let (client_id, tokens) = h.logged_in().await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(h.mcp_status(&access).await, StatusCode::OK);

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.run("stop");
        cluster
    })
    .await
    .unwrap();
    let started = Instant::now();
    let r = h
        .http
        .post(h.url("/mcp/demo"))
        .bearer_auth(&access)
        .header("content-type", "application/json")
        .body(crate::harness::INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"), "the MCP path says when to retry");
    let (status, err) = h.refresh(&client_id, &refresh).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
    let ready = h.http.get(h.url("/readyz")).send().await.unwrap().status();
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "not ready without a database");
    assert_eq!(h.http.get(h.url("/healthz")).send().await.unwrap().status(), StatusCode::OK, "but alive");
    assert!(started.elapsed() < Duration::from_secs(30), "failing is bounded in time");

    let _cluster = tokio::task::spawn_blocking(move || {
        cluster.run("resume");
        cluster
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = h.mcp_status(&access).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "service did not resume: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = h.refresh(&client_id, &refresh).await;
    assert_eq!(status, StatusCode::OK, "the refresh token survived the outage: {body}");
    assert_eq!(h.http.get(h.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
}
