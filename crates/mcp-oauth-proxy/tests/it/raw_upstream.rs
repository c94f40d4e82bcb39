//! The proxy in front of a bare HTTP upstream, for what an MCP SDK hides: exactly which
//! headers cross, and what happens to an upstream stream when the client goes away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::harness::{Harness, Start};

/// Sets its flag when dropped: the upstream noticed the stream was abandoned.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn spawn_raw(dropped: Arc<AtomicBool>) -> String {
    let handler = move |headers: HeaderMap| {
        let dropped = dropped.clone();
        async move {
            if headers.get("x-mode").is_some_and(|v| v == "silent") {
                // One event, then nothing, for ever.
                let first = futures_util::stream::once(async { Ok::<_, std::io::Error>("data: 0\n\n".to_owned()) });
                let body = Body::from_stream(first.chain(futures_util::stream::pending()));
                return ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
            }
            if headers.get("x-mode").is_some_and(|v| v == "mute") {
                // No answer at all.
                std::future::pending::<()>().await;
            }
            if headers.get("x-mode").is_some_and(|v| v == "stream") {
                let guard = DropFlag(dropped);
                let events = futures_util::stream::unfold((0u64, guard), |(n, guard)| async move {
                    if n > 0 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Some((Ok::<_, std::io::Error>(format!("data: {n}\n\n")), (n + 1, guard)))
                });
                return ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(events)).into_response();
            }
            let seen: Map<String, Value> = headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned())))
                .collect();
            let mut resp: Response = axum::Json(Value::Object(seen)).into_response();
            let h = resp.headers_mut();
            h.insert("set-cookie", "upstream=1".parse().unwrap());
            h.insert("server", "upstream-mcp/1.0".parse().unwrap());
            h.insert("strict-transport-security", "max-age=63072000; includeSubDomains".parse().unwrap());
            h.insert("www-authenticate", "Bearer resource_metadata=\"https://upstream.example/prm\"".parse().unwrap());
            h.insert("mcp-session-id", "session-1".parse().unwrap());
            h.insert("x-upstream-private", "secret-hop".parse().unwrap());
            h.insert("connection", "x-upstream-private".parse().unwrap());
            resp
        }
    };
    let router = axum::Router::new().route("/mcp", axum::routing::any(handler));
    let (base, _) = mcp_oauth_devsupport::serve_on_loopback(router).await.unwrap();
    format!("{base}/mcp")
}

#[tokio::test]
async fn credentials_and_hop_by_hop_headers_do_not_cross() {
    let dropped = Arc::new(AtomicBool::new(false));
    let h = Harness::start_with(Start { upstream_url: Some(spawn_raw(dropped).await), ..Default::default() }).await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap();
    let r = h
        .http
        .post(h.url("/mcp/demo"))
        .bearer_auth(token)
        .header("cookie", "mop_browser=abc")
        .header("connection", "x-hop")
        .header("x-hop", "per-connection")
        .header("mcp-session-id", "session-1")
        .header("mcp-protocol-version", "2025-06-18")
        .header("last-event-id", "7")
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6;host=evil.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("set-cookie").is_none(), "upstream cookies are not set on our origin");
    assert!(r.headers().get("x-upstream-private").is_none(), "hop-by-hop response header");
    // Review finding: these reached clients as if the proxy had sent them (a client may
    // follow the upstream's challenge instead of ours).
    for origin_header in ["server", "strict-transport-security", "www-authenticate"] {
        assert!(r.headers().get(origin_header).is_none(), "{origin_header} is the proxy's to send");
    }
    assert_eq!(r.headers()["mcp-session-id"], "session-1");
    let seen: Value = r.json().await.unwrap();
    let upstream_token = seen["authorization"].as_str().unwrap();
    assert!(upstream_token.starts_with("Bearer idp_at_"), "{upstream_token}");
    assert!(!seen.to_string().contains(token), "our token never goes upstream");
    assert!(seen.get("cookie").is_none());
    assert!(seen.get("x-hop").is_none());
    assert_eq!(seen["mcp-session-id"], "session-1");
    assert_eq!(seen["mcp-protocol-version"], "2025-06-18");
    assert_eq!(seen["last-event-id"], "7");
    assert_eq!(seen["content-type"], "application/json");
    assert!(seen["host"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_ne!(seen["host"].as_str().unwrap(), h.base.trim_start_matches("http://"));
    // What the client claimed about where it came from is replaced by what this hop saw.
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], h.base.trim_start_matches("http://"));
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert!(seen.get("forwarded").is_none());
}

#[tokio::test]
async fn a_trusted_proxy_s_forwarding_headers_are_extended() {
    let dropped = Arc::new(AtomicBool::new(false));
    let h = Harness::start_with(Start {
        upstream_url: Some(spawn_raw(dropped).await),
        top_toml: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
        ..Default::default()
    })
    .await;
    let (_, tokens) = h.logged_in().await;
    let r = h
        .http
        .post(h.url("/mcp/demo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .header("x-forwarded-for", "203.0.113.5")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "mcp.example.com")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["x-forwarded-for"], "203.0.113.5, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-forwarded-host"], "mcp.example.com");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let dropped = Arc::new(AtomicBool::new(false));
    let h =
        Harness::start_with(Start { upstream_url: Some(spawn_raw(dropped.clone()).await), ..Default::default() }).await;
    let (_, tokens) = h.logged_in().await;
    let r = h
        .http
        .get(h.url("/mcp/demo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .header("accept", "text/event-stream")
        .header("x-mode", "stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data: 0"));
    assert!(!dropped.load(Ordering::SeqCst), "the stream is live");
    drop(body);
    for _ in 0..50 {
        if dropped.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the upstream stream was not cancelled after the client left");
}

#[tokio::test]
async fn an_upstream_silent_past_the_idle_timeout_is_let_go() {
    let upstream = spawn_raw(Arc::new(AtomicBool::new(false))).await;
    let start =
        Start { upstream_url: Some(upstream), top_toml: "idle_timeout_secs = 5\n".into(), ..Default::default() };
    let h = Harness::start_with(start).await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap();
    let request = |mode: &'static str| {
        h.http.get(h.url("/mcp/demo")).bearer_auth(token).header("accept", "text/event-stream").header("x-mode", mode)
    };

    // A stream that goes quiet is ended after the idle timeout (the client reconnects).
    let started = std::time::Instant::now();
    let r = request("silent").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    assert!(String::from_utf8_lossy(&body.next().await.unwrap().unwrap()).contains("data: 0"));
    let end = tokio::time::timeout(Duration::from_secs(20), body.next()).await.expect("the stream ends");
    assert!(!matches!(end, Some(Ok(_))), "no further data, then the end: {end:?}");
    assert!(started.elapsed() >= Duration::from_secs(5), "not before the idle timeout");

    // An upstream that never answers gets a 504 after the same time.
    let r = tokio::time::timeout(Duration::from_secs(20), request("mute").send()).await.expect("an answer").unwrap();
    assert_eq!(r.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upstream_timeout");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let upstream = format!("http://127.0.0.1:{port}/mcp");
    let h = Harness::start_with(Start { upstream_url: Some(upstream), ..Default::default() }).await;
    let (_, tokens) = h.logged_in().await;
    let r = h.http.post(h.url("/mcp/demo")).bearer_auth(tokens["access_token"].as_str().unwrap()).body("{}").send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unreachable");
}
