//! Metrics: each counter moves with what it counts, on a listener of its own.

use std::time::Duration;

use mcp_oauth_devsupport::idp::Fault;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Harness, Start};

/// The value of the sample whose name and labels are `series`, if present.
fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

async fn scrape(metrics_base: &str) -> String {
    let r = reqwest::get(format!("{metrics_base}/metrics")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().contains("openmetrics-text"));
    r.text().await.unwrap()
}

#[tokio::test]
async fn counters_follow_flows_refreshes_calls_failures_and_reuse() {
    let h = Harness::start().await;
    let (metrics_base, _) =
        mcp_oauth_devsupport::serve_on_loopback(mcp_oauth_http::metrics_router(h.app.clone())).await.unwrap();
    assert_eq!(h.http.get(h.url("/metrics")).send().await.unwrap().status(), StatusCode::NOT_FOUND, "not public");

    let (client_id, tokens) = h.logged_in().await;
    let rt = tokens["refresh_token"].as_str().unwrap();
    let (status, _) = h.refresh(&client_id, rt).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.mcp_status(tokens["access_token"].as_str().unwrap()).await, StatusCode::OK);
    // A transient provider failure on an expired credential.
    h.clock.advance(301);
    h.idp.inject_fault(Fault::Unavailable);
    assert_eq!(h.mcp_status(tokens["access_token"].as_str().unwrap()).await, StatusCode::SERVICE_UNAVAILABLE);
    // The first refresh token replayed long after its rotation: reuse, the grant revoked.
    h.clock.advance(60);
    let (status, _) = h.refresh(&client_id, rt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A metadata document that cannot be used, and registrations over their limit.
    let _ = crate::harness::Browser::new().get(&h.authorize_url("https://127.0.0.1/client.json", &[])).await;
    for _ in 0..31 {
        h.http.post(h.url("/oauth/demo/register")).json(&serde_json::json!({})).send().await.unwrap();
    }

    let text = scrape(&metrics_base).await;
    let at_least_one = [
        "mcp_oauth_proxy_metadata_document_fetches_total{outcome=\"refused\"}",
        "mcp_oauth_proxy_rate_limited_total{limit=\"registrations\"}",
        "mcp_oauth_proxy_http_requests_total{route=\"token\",status=\"200\"}",
        "mcp_oauth_proxy_http_requests_total{route=\"authorize\",status=\"200\"}",
        "mcp_oauth_proxy_http_requests_total{route=\"mcp\",status=\"503\"}",
        "mcp_oauth_proxy_token_grants_total{slug=\"demo\",grant_type=\"authorization_code\",outcome=\"issued\"}",
        "mcp_oauth_proxy_token_grants_total{slug=\"demo\",grant_type=\"refresh_token\",outcome=\"issued\"}",
        "mcp_oauth_proxy_token_grants_total{slug=\"demo\",grant_type=\"refresh_token\",outcome=\"invalid_grant\"}",
        "mcp_oauth_proxy_refresh_token_reuse_total{slug=\"demo\"}",
        "mcp_oauth_proxy_grants_revoked_total{reason=\"refresh_reuse\"}",
        "mcp_oauth_proxy_upstream_refreshes_total{provider=\"dev\",outcome=\"transient\"}",
        "mcp_oauth_proxy_upstream_refresh_seconds_count{provider=\"dev\"}",
        "mcp_oauth_proxy_mcp_upstream_responses_total{slug=\"demo\",status=\"200\"}",
        "mcp_oauth_proxy_mcp_upstream_first_byte_seconds_count{slug=\"demo\"}",
        "mcp_oauth_proxy_http_request_seconds_count{route=\"token\"}",
    ];
    for series in at_least_one {
        assert!(value(&text, series) >= 1.0, "{series} did not move:\n{text}");
    }
    assert!(text.contains("mcp_oauth_proxy_database_errors_total{kind=\"unavailable\"}"));
    assert!(text.contains("mcp_oauth_proxy_open_event_streams{slug=\"demo\"}"));
    assert!(!text.contains(&client_id), "no client id in a label");
    assert!(!text.contains("demo-user"), "no user in a label");
}

/// The Grafana dashboard in `deploy/` queries only metrics the proxy registers.
#[test]
fn the_dashboard_queries_registered_metrics() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let source = std::fs::read_to_string(format!("{root}/crates/http/src/services/metrics.rs")).unwrap();
    let compact: String = source.split_whitespace().collect();
    let registered: Vec<&str> = ["register(\"", "encode_descriptor(\""]
        .iter()
        .flat_map(|call| compact.split(call).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(registered.contains(&"http_requests") && registered.contains(&"database_errors"), "{registered:?}");
    let dashboard = std::fs::read_to_string(format!("{root}/deploy/grafana-dashboard.json")).unwrap();
    let queried: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter_map(|w| w.strip_prefix("mcp_oauth_proxy_"))
        .collect();
    assert!(queried.len() >= 12);
    for name in queried {
        let family = ["_bucket", "_count", "_sum", "_total"].iter().fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        assert!(registered.contains(&family), "the dashboard queries {name}, which is not registered");
    }
}

#[tokio::test]
async fn the_metrics_listener_closes_a_connection_that_trickles_its_headers() {
    let h = Harness::start_with(Start {
        extra_toml: "[limits]\nheader_read_timeout_secs = 1\n".into(),
        ..Default::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(mcp_oauth_proxy::runtime::serve_metrics(h.app.clone(), listener));
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(4), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "closed by the proxy after the header timeout, not left open");
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    // Whole requests are still answered.
    assert!(scrape(&format!("http://{address}")).await.contains("mcp_oauth_proxy_"));
}
