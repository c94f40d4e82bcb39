//! Several replicas on one PostgreSQL database, and the races that break other proxies.
//! The races run on both backends: on SQLite against one instance, on PostgreSQL spread
//! over two replicas.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Browser, Harness, REDIRECT, Start, VERIFIER};

/// A new, empty database on the PostgreSQL test server, if this run has one (CI always
/// does), so that tests on PostgreSQL share nothing but the server.
pub async fn postgres_url() -> Option<String> {
    use sqlx::Connection;
    let url = postgres_server()?;
    let name = format!("mop_it_{}", mcp_oauth_core::token::random_id());
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("the PostgreSQL test server answers");
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// The PostgreSQL test server's URL, if this run has one; CI sets `MOP_REQUIRE_POSTGRES`
/// so that its absence fails rather than skips.
pub fn postgres_server() -> Option<String> {
    match std::env::var("MOP_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("MOP_REQUIRE_POSTGRES").is_ok() => {
            panic!("MOP_REQUIRE_POSTGRES is set but MOP_TEST_POSTGRES_URL is not")
        }
        _ => None,
    }
}

/// Two replicas on one PostgreSQL database, behind one public URL (A's).
async fn two_replicas() -> Option<(Harness, Harness)> {
    two_replicas_with("").await
}

/// [`two_replicas`], both with `extra_toml` in their configuration.
pub(crate) async fn two_replicas_with(extra_toml: &str) -> Option<(Harness, Harness)> {
    let url = postgres_url().await?;
    let a = Harness::start_with(Start {
        storage_url: Some(url.clone()),
        extra_toml: extra_toml.to_owned(),
        ..Default::default()
    })
    .await;
    let b = Harness::start_with(Start {
        storage_url: Some(url),
        extra_toml: extra_toml.to_owned(),
        public_url: Some(a.base.clone()),
        idp: Some((a.idp.clone(), a.idp_issuer())),
        clock: Some(a.clock.clone()),
        upstream_url: Some(a.upstream_url.clone()),
        ..Default::default()
    })
    .await;
    Some((a, b))
}

/// The deployments every race runs on: one SQLite instance (twice in the pair), and two
/// PostgreSQL replicas when available.
async fn deployments() -> Vec<(Harness, Option<Harness>)> {
    let mut out = vec![(Harness::start().await, None)];
    if let Some((a, b)) = two_replicas().await {
        out.push((a, Some(b)));
    }
    out
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned()
}

/// Two separate proxy processes on one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_made_at_one_replica_works_at_the_other_and_revocation_holds_at_once() {
    use crate::harness::mcp_initialize;
    use crate::processes::{REDIRECT, replica_setup, spawn_replica};
    let Some(db) = postgres_url().await else { return };
    let setup = replica_setup(&db).await;
    let a = spawn_replica(&setup.config, setup.port_a).await;
    let b = spawn_replica(&setup.config, setup.port_b).await;
    let http = crate::harness::client();

    // A client registers and its user logs in at replica A…
    let reg: Value = http
        .post(format!("{}/oauth/demo/register", a.base))
        .json(&serde_json::json!({
            "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = s(&reg, "client_id");
    let tokens = mcp_oauth_devsupport::browser::log_in(&a.base, "demo", &client_id, REDIRECT).await;

    // …then refreshes and calls through replica B.
    let r = http
        .post(format!("{}/oauth/demo/token", b.base))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", s(&tokens, "refresh_token").as_str()),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let fresh: Value = r.json().await.unwrap();
    let token = s(&fresh, "access_token");
    assert_eq!(mcp_initialize(&http, &b.base, &token).await.unwrap(), StatusCode::OK);
    assert_eq!(mcp_initialize(&http, &a.base, &token).await.unwrap(), StatusCode::OK);

    // A revocation at A holds at B at once.
    let r = http
        .post(format!("{}/oauth/demo/revoke", a.base))
        .form(&[("token", s(&fresh, "refresh_token").as_str()), ("client_id", &client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(mcp_initialize(&http, &b.base, &token).await.unwrap(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fifty_concurrent_refreshes_of_one_token_fork_nothing_and_a_late_replay_revokes_all() {
    for (a, b) in deployments().await {
        let b = b.as_ref().unwrap_or(&a);
        let (client_id, tokens) = a.logged_in().await;
        let rt = s(&tokens, "refresh_token");
        let burst: Vec<_> = (0..50)
            .map(|i| {
                let (h, client_id, rt) = (if i % 2 == 0 { &a } else { b }, client_id.clone(), rt.clone());
                async move { h.refresh(&client_id, &rt).await }
            })
            .collect();
        let results = futures_util::future::join_all(burst).await;
        let mut pairs = Vec::new();
        for (status, body) in results {
            assert!(!status.is_server_error(), "{status}: {body}");
            if status == StatusCode::OK {
                pairs.push(body);
            }
        }
        assert_eq!(pairs.len(), 50, "within the grace window every racer gets a pair");
        let successor = s(&pairs[0], "refresh_token");
        assert!(pairs.iter().all(|p| s(p, "refresh_token") == successor), "one successor, on both replicas");
        for pair in &pairs {
            assert_eq!(a.mcp_status(&s(pair, "access_token")).await, StatusCode::OK);
            assert_eq!(b.mcp_status(&s(pair, "access_token")).await, StatusCode::OK);
        }
        a.clock.advance(31);
        let (status, err) = b.refresh(&client_id, &rt).await;
        assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
        for pair in &pairs {
            assert_eq!(a.mcp_status(&s(pair, "access_token")).await, StatusCode::UNAUTHORIZED);
            assert_eq!(b.mcp_status(&s(pair, "access_token")).await, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(a.refresh(&client_id, &s(&pairs[0], "refresh_token")).await.0, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn fifty_concurrent_calls_after_upstream_expiry_refresh_upstream_once() {
    for (a, b) in deployments().await {
        let b = b.as_ref().unwrap_or(&a);
        let (_, tokens) = a.logged_in().await;
        let token = s(&tokens, "access_token");
        a.clock.advance(301);
        let calls: Vec<_> = (0..50).map(|i| (if i % 2 == 0 { &a } else { b }).mcp_status(&token)).collect();
        for status in futures_util::future::join_all(calls).await {
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(a.idp.refresh_count(), 1, "one upstream refresh for fifty calls on two replicas");
    }
}

#[tokio::test]
async fn concurrent_code_redemption_has_exactly_one_winner() {
    for (a, b) in deployments().await {
        let b = b.as_ref().unwrap_or(&a);
        let client_id = a.register_public().await;
        let code = a.authorize(&mut Browser::new(), &client_id).await;
        let attempts: Vec<_> = (0..10)
            .map(|i| {
                let h = if i % 2 == 0 { &a } else { b };
                let form = [
                    ("grant_type", "authorization_code".to_owned()),
                    ("code", code.clone()),
                    ("redirect_uri", REDIRECT.to_owned()),
                    ("code_verifier", VERIFIER.to_owned()),
                    ("client_id", client_id.clone()),
                ];
                async move { h.http.post(h.url("/oauth/demo/token")).form(&form).send().await.unwrap().status() }
            })
            .collect();
        let statuses = futures_util::future::join_all(attempts).await;
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
    }
}
