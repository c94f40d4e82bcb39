//! Limits on anonymous work: registrations, authorization requests, failures at the token
//! endpoint, logins in progress per browser, slow and numerous connections.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Browser, Harness, REDIRECT, Start};

/// Behind a trusted proxy (loopback), each test picks its client's address with
/// `X-Forwarded-For`.
fn behind_a_trusted_proxy(limits: &str) -> Start {
    Start {
        top_toml: "trusted_proxies = [\"127.0.0.1\"]".into(),
        extra_toml: format!("[limits]\n{limits}\n"),
        ..Default::default()
    }
}

async fn register_from(h: &Harness, address: &str, body: &Value) -> reqwest::Response {
    h.http.post(h.url("/oauth/demo/register")).header("x-forwarded-for", address).json(body).send().await.unwrap()
}

fn registration() -> Value {
    json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})
}

#[tokio::test]
async fn registrations_are_limited_per_client_address() {
    let h = Harness::start_with(behind_a_trusted_proxy("registrations_per_minute = 3")).await;
    for _ in 0..3 {
        assert_eq!(register_from(&h, "203.0.113.1", &registration()).await.status(), StatusCode::CREATED);
    }
    let r = register_from(&h, "203.0.113.1", &registration()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=61).contains(&wait), "{wait}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "temporarily_unavailable");
    // Another client behind the same proxy is not affected; a spoofed hop is not believed
    // from an untrusted peer, but here the peer is the trusted proxy.
    assert_eq!(register_from(&h, "203.0.113.2", &registration()).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_oversized_registration_is_invalid_client_metadata() {
    let h = Harness::start().await;
    let body = json!({"redirect_uris": [REDIRECT], "client_name": "n", "padding": "x".repeat(16 * 1024)});
    let (status, err) = h.register(body).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_client_metadata")));
}

#[tokio::test]
async fn authorization_requests_are_limited_per_client_address() {
    let h = Harness::start_with(behind_a_trusted_proxy("authorizations_per_minute = 2")).await;
    let client_id = h.register_public().await;
    let get = || h.http.get(h.authorize_url(&client_id, &[])).header("x-forwarded-for", "198.51.100.7").send();
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);
    let r = get().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "a page for the person");
}

/// Review finding: a hosted client refreshing stale tokens of *other* users from its one
/// egress address got its valid refreshes and new logins refused with 429. Refused grants
/// are not counted: the address's good requests always go through.
#[tokio::test]
async fn refused_grants_never_hold_an_address_or_a_client() {
    let h = Harness::start_with(behind_a_trusted_proxy("failures_per_minute = 3")).await;
    let (client_id, tokens) = h.logged_in().await;
    let token = |address: &'static str, form: Vec<(&'static str, String)>| {
        h.http.post(h.url("/oauth/demo/token")).header("x-forwarded-for", address).form(&form).send()
    };
    let mut rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    for round in 0..3 {
        // Far more refused grants than the failure allowance, from the hosted client's address…
        for i in 0..20 {
            let form = vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", format!("mop_rt_stale{round}_{i}")),
                ("client_id", client_id.clone()),
            ];
            assert_eq!(token("192.0.2.66", form).await.unwrap().status(), StatusCode::BAD_REQUEST);
        }
        // …and its valid refresh from the same address still works.
        let form = vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", rt.clone()),
            ("client_id", client_id.clone()),
        ];
        let r = token("192.0.2.66", form).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "round {round}");
        rt = r.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    }
}

/// Review finding: sending any `client_secret` with a public client's id counted as a
/// failed authentication against that client, so 31 requests from anywhere locked out its
/// users everywhere. A public client with a secret is refused, uncounted.
#[tokio::test]
async fn a_public_client_s_users_cannot_be_locked_out_by_sending_secrets() {
    let h = Harness::start_with(behind_a_trusted_proxy("failures_per_minute = 2")).await;
    let (client_id, tokens) = h.logged_in().await;
    for i in 0..10 {
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", "x".into()),
            ("client_id", client_id.clone()),
            ("client_secret", format!("junk{i}")),
        ];
        let r = h.http.post(h.url("/oauth/demo/token")).header("x-forwarded-for", "198.51.100.7").form(&form);
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    }
    let form = [
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap().to_owned()),
        ("client_id", client_id.clone()),
    ];
    let r = h.http.post(h.url("/oauth/demo/token")).header("x-forwarded-for", "192.0.2.10").form(&form);
    assert_eq!(r.send().await.unwrap().status(), StatusCode::OK, "the user elsewhere refreshes");
}

/// Guessing a confidential client's secret is held per (client, address) and per
/// address, never for the client everywhere.
#[tokio::test]
async fn guessing_a_confidential_client_s_secret_holds_the_guesser_not_the_client() {
    let h = Harness::start_with(behind_a_trusted_proxy("failures_per_minute = 2")).await;
    let (status, body) =
        h.register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = body["client_id"].as_str().unwrap().to_owned();
    let attempt = |address: &'static str, secret: String| {
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", "x".into()),
            ("client_id", id.clone()),
            ("client_secret", secret),
        ];
        h.http.post(h.url("/oauth/demo/token")).header("x-forwarded-for", address).form(&form).send()
    };
    for i in 0..3 {
        assert_eq!(attempt("192.0.2.1", format!("guess{i}")).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let held = attempt("192.0.2.1", "guess-more".into()).await.unwrap();
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(held.headers().contains_key("retry-after"));
    // The right secret from the client's own address is judged, not held: it gets past
    // client authentication (this client registered no refresh grant: unauthorized_client).
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let own = attempt("192.0.2.4", secret).await.unwrap();
    assert_eq!(own.status(), StatusCode::BAD_REQUEST);
    assert_eq!(own.json::<Value>().await.unwrap()["error"], "unauthorized_client");
}

#[tokio::test]
async fn logins_in_progress_per_browser_are_capped() {
    let h =
        Harness::start_with(Start { extra_toml: "[limits]\npending_per_browser = 2\n".into(), ..Default::default() })
            .await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let consent = b.get(&h.authorize_url(&client_id, &[])).await;
    for _ in 0..2 {
        let page = b.submit(&consent, &h.base, &[("decision", "approve")]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
    }
    let page = b.submit(&consent, &h.base, &[("decision", "approve")]).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    // Ten minutes later the unfinished logins have expired.
    h.clock.advance(601);
    let consent = b.get(&h.authorize_url(&client_id, &[])).await;
    assert_eq!(consent.status, StatusCode::FOUND, "approved before: straight to the provider");
}

#[tokio::test]
async fn a_connection_that_trickles_its_headers_is_closed() {
    let h = Harness::start_with(Start {
        extra_toml: "[limits]\nheader_read_timeout_secs = 1\n".into(),
        ..Default::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(h.base.trim_start_matches("http://")).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "closed by the proxy, not left open");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_one_to_close() {
    let h =
        Harness::start_with(Start { extra_toml: "[limits]\nmax_connections = 2\n".into(), ..Default::default() }).await;
    let addr = h.base.trim_start_matches("http://").to_owned();
    let first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = reqwest::Client::new().get(h.url("/healthz")).timeout(Duration::from_millis(500)).send().await;
    assert!(third.is_err(), "the third connection waits");
    drop(first);
    let fourth = reqwest::Client::new().get(h.url("/healthz")).timeout(Duration::from_secs(5)).send().await.unwrap();
    assert_eq!(fourth.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_trickles_in_is_refused_in_time() {
    let h = Harness::start_with(Start {
        extra_toml: "[limits]\nbody_read_timeout_secs = 1\n".into(),
        ..Default::default()
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(h.base.trim_start_matches("http://")).await.unwrap();
    let head = "POST /oauth/demo/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                Content-Length: 100\r\n\r\ngrant_type=";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("answered in time").unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// Review finding: the pending-login cap was keyed by a cookie the client chooses, so 25
/// fresh cookies made 25 pending rows against a cap of 20. It holds per address too.
#[tokio::test]
async fn logins_in_progress_per_address_are_capped_whatever_the_cookies() {
    let start = Start {
        extra_toml: "[limits]\npending_per_browser = 5\npending_per_address = 2\n".into(),
        ..Default::default()
    };
    let h = Harness::start_with(start).await;
    let client_id = h.register_public().await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let mut fresh = Browser::new();
        let consent = fresh.get(&h.authorize_url(&client_id, &[])).await;
        statuses.push(fresh.submit(&consent, &h.base, &[("decision", "approve")]).await.status);
    }
    assert_eq!(statuses, [StatusCode::SEE_OTHER, StatusCode::SEE_OTHER, StatusCode::TOO_MANY_REQUESTS]);
}
