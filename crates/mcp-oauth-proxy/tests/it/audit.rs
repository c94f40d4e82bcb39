//! The audit trail: a scripted flow produces the expected events, and no secret.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Browser, Harness, Start};

pub(crate) async fn read_events(path: &std::path::Path, at_least: usize) -> Vec<Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if events.len() >= at_least {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the audit trail has fewer than {at_least} events:\n{}", std::fs::read_to_string(path).unwrap_or_default());
}

#[tokio::test]
async fn a_flow_leaves_its_events_and_no_secret() {
    let dir = std::env::temp_dir().join(format!("mop-audit-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.log");
    let h = Harness::start_with(Start {
        extra_toml: format!("[audit]\npath = \"{}\"\n", path.display()),
        ..Default::default()
    })
    .await;
    let client_id = h.register_public().await;
    let mut browser = Browser::new();
    let code = h.authorize(&mut browser, &client_id).await;
    let tokens = h.exchange(&client_id, &code).await;
    let first_rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = h.refresh(&client_id, &first_rt).await;
    assert_eq!(status, StatusCode::OK);
    let revoke = [("token", refreshed["access_token"].as_str().unwrap()), ("client_id", &client_id)];
    assert_eq!(h.http.post(h.url("/oauth/demo/revoke")).form(&revoke).send().await.unwrap().status(), StatusCode::OK);
    h.clock.advance(60);
    assert_eq!(h.refresh(&client_id, &first_rt).await.0, StatusCode::BAD_REQUEST, "reuse");

    let events = read_events(&path, 8).await;
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "client.registered",
            "consent.approved",
            "login.completed",
            "token.issued",
            "token.refreshed",
            "token.revoked",
            "refresh.reuse_detected",
            "grant.revoked",
        ]
    );
    let grant = events[2]["grant_id"].as_str().unwrap();
    for e in &events {
        assert!(e["time"].as_i64().unwrap() > 0);
        assert_eq!(e["slug"].as_str().unwrap_or("demo"), "demo");
        if e["event"] != "client.registered" && e["event"] != "consent.approved" {
            assert_eq!(e["grant_id"], grant, "{e}");
        }
        assert_eq!(e["client_address"], "127.0.0.1", "{e}");
    }
    assert_eq!(events[1]["client_id"], client_id.as_str());
    assert_eq!(events[2]["subject"], "demo-user");
    assert_eq!(events[3]["grant_type"], "authorization_code");
    assert_eq!(events[7]["reason"], "refresh_reuse");

    let text = std::fs::read_to_string(&path).unwrap();
    let mut secrets = vec![code, first_rt, crate::harness::VERIFIER.to_owned()];
    for t in [&tokens, &refreshed] {
        secrets.push(t["access_token"].as_str().unwrap().to_owned());
        secrets.push(t["refresh_token"].as_str().unwrap().to_owned());
    }
    secrets.extend(h.idp.issued_access_tokens());
    for s in secrets {
        assert!(!text.contains(&s), "a secret is in the audit trail: {}…", &s[..8]);
    }
    for prefix in ["mop_at_", "mop_rt_", "mop_ac_", "idp_", "mop_browser"] {
        assert!(!text.contains(prefix), "{prefix} in the audit trail");
    }
}
