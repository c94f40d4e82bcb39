//! `kill -9` a replica in the middle of a burst of refreshes and MCP calls, then start it
//! again: every pair a client received is usable or properly superseded, no grant is
//! lost, and the restarted replica needs no repair. Real processes on one PostgreSQL.

use std::time::{Duration, Instant};

use mcp_oauth_devsupport::browser::{client, log_in};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::mcp_initialize;
use crate::processes::{REDIRECT, TRUSTED_CLIENT, replica_setup, spawn_replica};
use crate::replicas::postgres_url;

async fn refresh(http: &reqwest::Client, base: &str, rt: &str) -> Result<(StatusCode, Value), reqwest::Error> {
    let r = http
        .post(format!("{base}/oauth/demo/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", TRUSTED_CLIENT)])
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = r.status();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_burst_loses_nothing() {
    let Some(db) = postgres_url().await else { return };
    let setup = replica_setup(&db).await;
    let (config, port_a, port_b) = (setup.config.clone(), setup.port_a, setup.port_b);
    let a = spawn_replica(&config, port_a).await;
    let mut b = spawn_replica(&config, port_b).await;

    // Five users log in through replica A.
    let http = client();
    let mut sessions = Vec::new();
    for _ in 0..5 {
        sessions.push(log_in(&a.base, "demo", TRUSTED_CLIENT, REDIRECT).await);
    }

    // Each user's client refreshes and calls in a loop, alternating replicas, keeping
    // the newest pair it received; a failed request is retried with what it has.
    let stop_at = Instant::now() + Duration::from_millis(2500);
    let bases = [a.base.clone(), b.base.clone()];
    let loops: Vec<_> = sessions
        .into_iter()
        .map(|mut pair| {
            let (http, bases) = (http.clone(), bases.clone());
            tokio::spawn(async move {
                let mut received = vec![pair.clone()];
                let mut i = 0usize;
                while Instant::now() < stop_at {
                    let base = &bases[i % 2];
                    i += 1;
                    let rt = pair["refresh_token"].as_str().unwrap().to_owned();
                    if let Ok((status, body)) = refresh(&http, base, &rt).await {
                        assert!(!status.is_server_error(), "{status}: {body}");
                        if status == StatusCode::OK {
                            pair = body;
                            received.push(pair.clone());
                        }
                    }
                    let _ = mcp_initialize(&http, base, pair["access_token"].as_str().unwrap()).await;
                }
                received
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.child.start_kill().unwrap(); // SIGKILL
    b.child.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = spawn_replica(&config, port_b).await;

    for l in loops {
        let received = l.await.unwrap();
        assert!(received.len() > 1, "the loop made progress");
        let newest = received.last().unwrap();
        // The newest pair works on both replicas; every earlier access token is either
        // still valid (not expired) or was issued in a family that is still alive.
        for base in [&a.base, &b.base] {
            assert_eq!(
                mcp_initialize(&http, base, newest["access_token"].as_str().unwrap()).await.unwrap(),
                StatusCode::OK
            );
        }
        for pair in &received {
            assert_eq!(
                mcp_initialize(&http, &a.base, pair["access_token"].as_str().unwrap()).await.unwrap(),
                StatusCode::OK
            );
        }
        let (status, body) = refresh(&http, &b.base, newest["refresh_token"].as_str().unwrap()).await.unwrap();
        assert_eq!(status, StatusCode::OK, "the grant survived: {body}");
    }
    drop(a);
}
