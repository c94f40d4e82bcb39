//! The MCP path, with the official Rust SDK (rmcp) as client and as upstream server.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_oauth_devsupport::idp::{Fault, IdpOptions};
use reqwest::StatusCode;
use rmcp::model::{CallToolRequestParams, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use crate::harness::{Browser, Harness, INITIALIZE, REDIRECT, Start};

/// A client handler that records when each progress notification arrived.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<(Instant, f64)>>>);

impl ClientHandler for Recorder {
    async fn on_progress(&self, p: ProgressNotificationParam, _cx: NotificationContext<RoleClient>) {
        self.0.lock().unwrap().push((Instant::now(), p.progress));
    }
}

pub async fn connect(h: &Harness, slug: &str, token: &str) -> RunningService<RoleClient, Recorder> {
    mcp_oauth_upstream::http_client::install_crypto_provider();
    let cfg = StreamableHttpClientTransportConfig::with_uri(h.url(&format!("/mcp/{slug}"))).auth_header(token);
    Recorder::default()
        .serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .expect("MCP session through the proxy")
}

pub async fn call(client: &RunningService<RoleClient, Recorder>, tool: &str, args: Value) -> Value {
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(rmcp::model::object(args));
    let result = client.call_tool(params).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::to_value(result).unwrap()
}

pub fn text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {result}"))
}

/// A raw JSON-RPC POST through the proxy, for status-level checks.
async fn post(h: &Harness, slug: &str, token: Option<&str>, body: String) -> reqwest::Response {
    let mut req = h
        .http
        .post(h.url(&format!("/mcp/{slug}")))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn access(tokens: &Value) -> String {
    tokens["access_token"].as_str().unwrap().to_owned()
}

/// The official SDK's whole OAuth flow against `mcp_url`: discovery from the 401,
/// dynamic registration, the consent page and upstream login (a scripted browser),
/// the code exchange; returns a connected MCP session.
pub async fn rmcp_oauth_session(mcp_url: &str) -> RunningService<RoleClient, Recorder> {
    // rmcp builds its own reqwest clients, which need the process's TLS provider.
    mcp_oauth_upstream::http_client::install_crypto_provider();
    let mut state = OAuthState::new(mcp_url, None).await.expect("discovery");
    state
        .start_authorization(AuthorizationRequest::new(REDIRECT).with_client_name("rmcp integration test"))
        .await
        .expect("registration");
    let auth_url = state.get_authorization_url().await.unwrap();
    let back = Browser::new().login(&auth_url, true).await;
    // With `iss` (RFC 9207), which the SDK insists on since our metadata promises it.
    state.handle_callback_url(&back).await.expect("code exchange");
    let manager = state.into_authorization_manager().expect("authorized");
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(crate::harness::client(), manager),
        StreamableHttpClientTransportConfig::with_uri(mcp_url.to_owned()),
    );
    Recorder::default().serve(transport).await.expect("MCP session")
}

#[tokio::test]
async fn rmcp_oauth_client_discovers_registers_logs_in_and_calls_tools() {
    let h = Harness::start().await;
    let client = rmcp_oauth_session(&h.url("/mcp/demo")).await;
    let tools = client.list_tools(None).await.unwrap();
    let names: Vec<String> = tools.tools.iter().map(|t| t.name.to_string()).collect();
    for tool in ["whoami", "add", "echo", "count_slowly"] {
        assert!(names.contains(&tool.to_owned()), "{names:?}");
    }
    assert_eq!(text(&call(&client, "whoami", json!({})).await), "demo-user");
    assert_eq!(text(&call(&client, "add", json!({"a": 2, "b": 40})).await), "42");

    // The upstream saw the provider's tokens, and never one of ours.
    let seen = h.observed.authorization_headers();
    assert!(!seen.is_empty());
    for header in &seen {
        assert!(header.starts_with("Bearer idp_at_"), "upstream saw {header:?}");
    }
}

#[tokio::test]
async fn progress_streams_before_the_result() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let client = connect(&h, "demo", &access(&tokens)).await;
    let started = Instant::now();
    let result = call(&client, "count_slowly", json!({"steps": 3, "delay_ms": 400})).await;
    let finished = Instant::now();
    assert_eq!(text(&result), "counted to 3");
    let events = client.service().0.lock().unwrap().clone();
    assert_eq!(events.len(), 3, "one notification per step");
    // The first step arrived long before the result: nothing was buffered whole.
    assert!(finished.duration_since(events[0].0) >= Duration::from_millis(600), "{:?}", finished - events[0].0);
    assert!(events[0].0.duration_since(started) < finished.duration_since(started));
}

#[tokio::test]
async fn missing_or_bad_tokens_get_the_discovery_challenge() {
    let h = Harness::start().await;
    let prm = h.url("/.well-known/oauth-protected-resource/mcp/demo");
    let r = post(&h, "demo", None, INITIALIZE.into()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains(&format!("resource_metadata=\"{prm}\"")), "{challenge}");
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");
    assert!(!challenge.contains("error="), "no error without a token: {challenge}");

    let r = post(&h, "demo", Some("mop_at_made_up"), INITIALIZE.into()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("resource_metadata="), "{challenge}");

    // Tokens in the query string are not accepted.
    let (_, tokens) = h.logged_in().await;
    let r = h
        .http
        .post(h.url(&format!("/mcp/demo?access_token={}", access(&tokens))))
        .header("content-type", "application/json")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(h.observed.authorization_headers().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn a_token_for_one_server_is_refused_by_another() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let r = post(&h, "other", Some(&access(&tokens)), INITIALIZE.into()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(post(&h, "demo", Some(&access(&tokens)), INITIALIZE.into()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn twenty_concurrent_calls_after_expiry_cause_one_upstream_refresh() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let client = Arc::new(connect(&h, "demo", &access(&tokens)).await);
    h.clock.advance(301); // the upstream token (300 s) has expired
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { call(&client, "add", json!({"a": i, "b": 1})).await })
        })
        .collect();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(text(&c.await.unwrap()), (i + 1).to_string());
    }
    assert_eq!(h.idp.refresh_count(), 1, "exactly one upstream refresh");
}

#[tokio::test]
async fn transient_upstream_failure_is_503_and_keeps_the_grant() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    h.clock.advance(301);
    h.idp.inject_fault(Fault::Unavailable);
    let r = post(&h, "demo", Some(&access(&tokens)), INITIALIZE.into()).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    // The provider is back: the same token works.
    let client = connect(&h, "demo", &access(&tokens)).await;
    assert_eq!(text(&call(&client, "add", json!({"a": 1, "b": 1})).await), "2");
    assert_eq!(h.idp.refresh_count(), 1, "refreshed once the provider was back (faults are not counted)");
}

/// Refusals that are about the proxy (its secret, a firewall) end nobody's grant: 503 with
/// `Retry-After`, on the MCP path and at the token endpoint, and the same tokens work once
/// the provider answers again.
#[tokio::test]
async fn a_provider_refusing_the_proxy_keeps_every_grant() {
    for fault in [Fault::InvalidClient, Fault::Forbidden] {
        let h = Harness::start().await;
        let (client_id, tokens) = h.logged_in().await;
        h.clock.advance(301);
        h.idp.inject_fault(fault);
        let r = post(&h, "demo", Some(&access(&tokens)), INITIALIZE.into()).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        assert!(r.headers().contains_key("retry-after"));
        h.idp.inject_fault(fault);
        let (status, err) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!((status, err["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("temporarily_unavailable")));
        let client = connect(&h, "demo", &access(&tokens)).await;
        assert_eq!(text(&call(&client, "add", json!({"a": 1, "b": 1})).await), "2", "{fault:?}");
    }
}

#[tokio::test]
async fn permanent_upstream_failure_sends_the_user_back_to_login() {
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    h.clock.advance(301);
    h.idp.inject_fault(Fault::InvalidGrant);
    let r = post(&h, "demo", Some(&access(&tokens)), INITIALIZE.into()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    let (status, err) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn an_upstream_401_refreshes_once_and_replays() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let client = connect(&h, "demo", &access(&tokens)).await;
    h.idp.revoke_access_tokens(); // upstream no longer accepts the token we hold
    assert_eq!(text(&call(&client, "add", json!({"a": 3, "b": 4})).await), "7");
    assert_eq!(h.idp.refresh_count(), 1);

    // An MCP server that refuses even the token just refreshed (a minute later, as a
    // refusal asks the provider at most once a minute; see `upstream_refusals`): one
    // refresh, one replay, no loop, and a 502 rather than a challenge, since the provider
    // has just issued the token and a new login would change nothing.
    h.clock.advance(61);
    h.idp.reject_all_tokens(true);
    let r = post(&h, "demo", Some(&access(&tokens)), INITIALIZE.into()).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(!r.headers().contains_key("www-authenticate"));
    assert_eq!(h.idp.refresh_count(), 2, "one refresh per refused request, no loop");
}

#[tokio::test]
async fn the_clients_refresh_grant_refreshes_an_expired_upstream_credential() {
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    h.clock.advance(301);
    let (status, fresh) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(h.idp.refresh_count(), 1);
    let client = connect(&h, "demo", &access(&fresh)).await;
    assert_eq!(text(&call(&client, "whoami", json!({})).await), "demo-user");
    assert_eq!(h.idp.refresh_count(), 1, "the MCP call found the credential fresh");
}

#[tokio::test]
async fn providers_without_expiry_or_refresh_tokens_are_never_refreshed() {
    let h = Harness::start_with(Start {
        idp_options: Some(IdpOptions { access_ttl_secs: None, issue_refresh_tokens: false, ..Default::default() }),
        ..Default::default()
    })
    .await;
    let (client_id, tokens) = h.logged_in().await;
    h.clock.advance(10 * 24 * 3600); // ten days: our access token expired, theirs never does
    let (status, fresh) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let client = connect(&h, "demo", &access(&fresh)).await;
    assert_eq!(text(&call(&client, "whoami", json!({})).await), "demo-user");
    assert_eq!(h.idp.refresh_count(), 0);
}

#[tokio::test]
async fn oversized_requests_get_413() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let big =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(4 * 1024 * 1024));
    let r = post(&h, "demo", Some(&access(&tokens)), big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.observed.authorization_headers().is_empty());
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_changes_nothing() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let h = Harness::start_with(Start { upstream_url: Some(url), ..Default::default() }).await;
    let (client_id, tokens) = h.logged_in().await;
    let r = post(&h, "demo", Some(&access(&tokens)), INITIALIZE.into()).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "upstream_unreachable");
    assert!(h.access_token_works(&access(&tokens)).await);
    assert_eq!(h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await.0, StatusCode::OK);
}

/// Refresh twice in a row, with a provider that rotates its refresh tokens (the new one
/// must have been stored) and with one that does not (the old one must have been kept).
#[tokio::test]
async fn rotated_upstream_refresh_tokens_are_stored_and_unrotated_ones_kept() {
    for rotate in [true, false] {
        let h = Harness::start_with(Start {
            idp_options: Some(IdpOptions { rotate_refresh_tokens: rotate, ..Default::default() }),
            ..Default::default()
        })
        .await;
        let (_, tokens) = h.logged_in().await;
        for round in 1..=3 {
            h.clock.advance(301);
            let r = post(&h, "demo", Some(&access(&tokens)), INITIALIZE.into()).await;
            assert_eq!(r.status(), StatusCode::OK, "rotate={rotate}, round {round}");
            assert_eq!(h.idp.refresh_count(), round, "rotate={rotate}");
        }
    }
}
