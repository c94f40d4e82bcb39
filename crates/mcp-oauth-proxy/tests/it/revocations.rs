//! Revocation reaches event streams already open: the answers of a revoked grant (or of a
//! revoked access token) end within seconds, on every replica, while other grants'
//! streams go on.

use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::IntoResponse;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Start};

/// An MCP upstream whose every answer is an event stream that never ends: an event at
/// once, then one every 200 ms.
async fn endless_streams() -> String {
    let handler = || async {
        let events = futures_util::stream::unfold(0u64, |n| async move {
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some((Ok::<_, std::io::Error>(format!("data: {n}\n\n")), n + 1))
        });
        ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(events)).into_response()
    };
    let router = axum::Router::new().route("/mcp", axum::routing::any(handler));
    let (base, _) = mcp_oauth_devsupport::serve_on_loopback(router).await.unwrap();
    format!("{base}/mcp")
}

/// An answer's body, event by event.
type Events = Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// An event stream opened through `base` with `token`, its first event read.
async fn open_stream(http: &reqwest::Client, base: &str, token: &str) -> Events {
    let r = http
        .get(format!("{base}/mcp/demo"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body: Events = Box::pin(r.bytes_stream());
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("data: 0"));
    body
}

/// How long `stream` went on before it ended (gave no more data, or an error), reading
/// for at most `limit`; `None` if it was still streaming then.
async fn ends_within(stream: &mut Events, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Some(started.elapsed()),
        }
    }
}

async fn revoke(http: &reqwest::Client, base: &str, client_id: &str, token: &str, hint: &str) {
    let r = http
        .post(format!("{base}/oauth/demo/revoke"))
        .form(&[("token", token), ("client_id", client_id), ("token_type_hint", hint)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned()
}

/// The limit the streams of a revoked grant must end within.
const LIMIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn an_open_stream_ends_when_its_grant_is_revoked() {
    let h = Harness::start_with(Start { upstream_url: Some(endless_streams().await), ..Default::default() }).await;
    let (client_id, tokens) = h.logged_in().await;
    let (_, other) = h.logged_in().await;
    let mut revoked = open_stream(&h.http, &h.base, &s(&tokens, "access_token")).await;
    let mut kept = open_stream(&h.http, &h.base, &s(&other, "access_token")).await;
    revoke(&h.http, &h.base, &client_id, &s(&tokens, "refresh_token"), "refresh_token").await;
    let ended = ends_within(&mut revoked, LIMIT).await;
    assert!(ended.is_some(), "the revoked grant's stream still streamed {LIMIT:?} later");
    assert_eq!(ends_within(&mut kept, Duration::from_secs(1)).await, None, "another grant's stream goes on");
}

#[tokio::test]
async fn an_open_stream_ends_when_its_access_token_is_revoked() {
    let h = Harness::start_with(Start { upstream_url: Some(endless_streams().await), ..Default::default() }).await;
    let (client_id, tokens) = h.logged_in().await;
    let (status, refreshed) = h.refresh(&client_id, &s(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK);
    let mut revoked = open_stream(&h.http, &h.base, &s(&tokens, "access_token")).await;
    let mut kept = open_stream(&h.http, &h.base, &s(&refreshed, "access_token")).await;
    revoke(&h.http, &h.base, &client_id, &s(&tokens, "access_token"), "access_token").await;
    assert!(ends_within(&mut revoked, LIMIT).await.is_some(), "the revoked token's stream still streamed");
    assert_eq!(
        ends_within(&mut kept, Duration::from_secs(1)).await,
        None,
        "the grant's other access token keeps its stream"
    );
}

/// Two replicas on PostgreSQL: the grant is revoked at one, its stream is open at the
/// other.
#[tokio::test]
async fn a_revocation_at_one_replica_ends_the_stream_open_at_another() {
    let Some(url) = crate::replicas::postgres_url().await else { return };
    let upstream = endless_streams().await;
    let a = Harness::start_with(Start {
        storage_url: Some(url.clone()),
        upstream_url: Some(upstream.clone()),
        ..Default::default()
    })
    .await;
    let b = Harness::start_with(Start {
        storage_url: Some(url),
        public_url: Some(a.base.clone()),
        idp: Some((a.idp.clone(), a.idp_issuer())),
        clock: Some(a.clock.clone()),
        upstream_url: Some(upstream),
        ..Default::default()
    })
    .await;
    let (client_id, tokens) = a.logged_in().await;
    let (_, other) = a.logged_in().await;
    let mut revoked = open_stream(&b.http, &b.base, &s(&tokens, "access_token")).await;
    let mut kept = open_stream(&b.http, &b.base, &s(&other, "access_token")).await;
    revoke(&a.http, &a.base, &client_id, &s(&tokens, "refresh_token"), "refresh_token").await;
    assert!(ends_within(&mut revoked, LIMIT).await.is_some(), "the stream at the other replica still streamed");
    assert_eq!(ends_within(&mut kept, Duration::from_secs(1)).await, None, "another grant's stream goes on");
}
