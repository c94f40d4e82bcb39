//! The operator's command line beside a serving proxy, on SQLite and on PostgreSQL.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Start};
use crate::replicas::postgres_url;

pub async fn deployments() -> Vec<Harness> {
    let mut out = vec![Harness::start().await];
    if let Some(url) = postgres_url().await {
        out.push(Harness::start_with(Start { storage_url: Some(url), ..Default::default() }).await);
    }
    out
}

pub fn stdout(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn list_and_revoke_through_the_binary_while_serving() {
    for h in deployments().await {
        let (client_id, tokens) = h.logged_in().await;
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(h.mcp_status(access).await, StatusCode::OK);

        let clients = stdout(&h.cli(&["clients", "list"], &[]).await);
        assert!(clients.contains(&client_id), "{clients}");
        let shown: Value = serde_json::from_str(&stdout(&h.cli(&["clients", "show", &client_id], &[]).await)).unwrap();
        assert_eq!(shown["grants"], 1);

        let grants: Value =
            serde_json::from_str(&stdout(&h.cli(&["grants", "list", "--subject", "demo-user", "--json"], &[]).await))
                .unwrap();
        let grants = grants.as_array().unwrap();
        assert_eq!(grants.len(), 1, "{grants:?}");
        assert_eq!(
            (grants[0]["client_id"].as_str(), grants[0]["status"].as_str()),
            (Some(client_id.as_str()), Some("active"))
        );
        assert!(grants[0]["last_issued_at"].as_i64().is_some());
        let none = stdout(&h.cli(&["grants", "list", "--subject", "someone-else"], &[]).await);
        assert!(none.contains("0 grant(s)"), "{none}");

        let revoked = stdout(&h.cli(&["grants", "revoke", "--subject", "demo-user"], &[]).await);
        assert!(revoked.contains("revoked 1"), "{revoked}");
        // The serving proxy refuses the token within two seconds.
        let started = Instant::now();
        loop {
            if h.mcp_status(access).await == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(2), "still accepted after two seconds");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, _) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let deleted = stdout(&h.cli(&["clients", "delete", &client_id], &[]).await);
        assert!(deleted.contains("deleted"), "{deleted}");
        let missing = h.cli(&["clients", "show", &client_id], &[]).await;
        assert!(!missing.status.success());
        assert!(!h.cli(&["grants", "revoke"], &[]).await.status.success(), "naming no grant is refused");
    }
}
