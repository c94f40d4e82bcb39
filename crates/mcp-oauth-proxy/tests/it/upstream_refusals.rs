//! An MCP upstream answering 401 (issue 16): the provider is asked about it at most once a
//! minute per grant; a refusal by the provider alone ends the grant (the challenge);
//! otherwise the client gets a 502 that is not a challenge and keeps its grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mcp_oauth_core::ManualClock;
use mcp_oauth_devsupport::idp::{DevIdp, Fault, IdpOptions};
use mcp_oauth_devsupport::mcp_server::{self, Observed};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Start};

/// A proxy in front of the sample MCP server, which refuses every token while the switch
/// is on (an MCP server with a bug or an outage of its own), else accepts the provider's.
async fn start(idp_options: IdpOptions) -> (Harness, Arc<AtomicBool>) {
    let clock = ManualClock::starting_now();
    let idp = DevIdp::new(idp_options, Arc::new(clock.clone()));
    let issuer = idp.spawn().await.unwrap();
    let refusing = Arc::new(AtomicBool::new(false));
    let check: mcp_server::TokenCheck = {
        let (idp, refusing) = (idp.clone(), refusing.clone());
        Arc::new(move |token: &str| if refusing.load(Ordering::SeqCst) { None } else { idp.subject_of(token) })
    };
    let upstream_url = mcp_server::spawn(check, Observed::default()).await.unwrap();
    let start =
        Start { clock: Some(clock), idp: Some((idp, issuer)), upstream_url: Some(upstream_url), ..Default::default() };
    (Harness::start_with(start).await, refusing)
}

/// A GitHub OAuth app: tokens without expiry, no refresh token, no id_token (the user is
/// found at userinfo).
fn github_like() -> IdpOptions {
    IdpOptions { access_ttl_secs: None, issue_refresh_tokens: false, issue_id_token: false, ..Default::default() }
}

/// `initialize` through the proxy: the status, the body, and whether it is a challenge.
async fn call(h: &Harness, token: &str) -> (StatusCode, Value, bool) {
    let r = crate::harness::send_initialize(&h.http, &h.base, token).await.unwrap();
    let challenge = r.headers().get("www-authenticate").is_some();
    (r.status(), r.json().await.unwrap_or(Value::Null), challenge)
}

fn assert_the_mcp_servers_refusal((status, body, challenge): (StatusCode, Value, bool), what: &str) {
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{what}: {body}");
    assert_eq!(body["error"], "upstream_rejected_credential", "{what}");
    assert!(!challenge, "{what}: not a challenge, which would send the client to log in again");
}

fn refusals(h: &Harness, outcome: &str) -> f64 {
    let series =
        format!("mcp_oauth_proxy_mcp_upstream_credential_refusals_total{{provider=\"dev\",outcome=\"{outcome}\"}}");
    let text = h.app.metrics.render();
    text.lines().find_map(|l| l.strip_prefix(&series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

/// Before: the first 401 ended the grant for good (no refresh token to try), whoever was
/// at fault.
#[tokio::test]
async fn without_refresh_tokens_an_mcp_servers_401s_keep_the_grant_and_ask_the_provider_once_a_minute() {
    let (h, refusing) = start(github_like()).await;
    let (_, tokens) = h.logged_in().await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(call(&h, access).await.0, StatusCode::OK);

    refusing.store(true, Ordering::SeqCst);
    let asked = h.idp.userinfo_requests();
    for i in 0..5 {
        assert_the_mcp_servers_refusal(call(&h, access).await, &format!("refused call {i}"));
    }
    assert_eq!(h.idp.userinfo_requests() - asked, 1, "the provider was asked once within the minute");
    assert!(h.access_token_works(access).await, "the grant is kept");
    assert_eq!((refusals(&h, "provider_accepts"), refusals(&h, "asked_recently")), (1.0, 4.0));

    h.clock.advance(61);
    for i in 0..3 {
        assert_the_mcp_servers_refusal(call(&h, access).await, &format!("a minute later, call {i}"));
    }
    assert_eq!(h.idp.userinfo_requests() - asked, 2, "asked again once the minute had passed");

    refusing.store(false, Ordering::SeqCst);
    assert_eq!(call(&h, access).await.0, StatusCode::OK, "the MCP server is back: the same client token works");
    assert_eq!(h.idp.refresh_count(), 0);
}

/// Before: every 401 refreshed at the provider (rotating its refresh token), then
/// answered with a challenge.
#[tokio::test]
async fn with_refresh_tokens_an_mcp_servers_401s_refresh_at_most_once_a_minute() {
    let (h, refusing) = start(IdpOptions::default()).await;
    let (_, tokens) = h.logged_in().await;
    let access = tokens["access_token"].as_str().unwrap();
    refusing.store(true, Ordering::SeqCst);
    for i in 0..5 {
        assert_the_mcp_servers_refusal(call(&h, access).await, &format!("refused call {i}"));
    }
    assert_eq!(h.idp.refresh_count(), 1, "one refresh within the minute");
    // The first call replayed with the refreshed token, which was refused too.
    assert_eq!(
        (refusals(&h, "refreshed"), refusals(&h, "refused_again"), refusals(&h, "asked_recently")),
        (1.0, 1.0, 4.0)
    );

    h.clock.advance(61);
    for i in 0..3 {
        assert_the_mcp_servers_refusal(call(&h, access).await, &format!("a minute later, call {i}"));
    }
    assert_eq!(h.idp.refresh_count(), 2, "one more once the minute had passed");
    assert_eq!(h.idp.userinfo_requests(), 0, "a refresh is the question; userinfo is not asked besides");

    refusing.store(false, Ordering::SeqCst);
    assert_eq!(call(&h, access).await.0, StatusCode::OK, "the grant was kept");
    assert_eq!(h.idp.refresh_count(), 2);
}

/// The provider refuses the token too (the user revoked the app): the grant ends and the
/// client is told to authorize again. Before, the grant ended without the provider being
/// asked, as it did for any 401.
#[tokio::test]
async fn a_token_the_provider_refuses_too_ends_the_grant_with_the_challenge() {
    let (h, _) = start(github_like()).await;
    let (client_id, tokens) = h.logged_in().await;
    let access = tokens["access_token"].as_str().unwrap();
    h.idp.revoke_access_tokens(); // the MCP server, which asks the provider, refuses it too
    let asked = h.idp.userinfo_requests();
    let (status, body, challenge) = call(&h, access).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_token")), "{body}");
    assert!(challenge, "a challenge: authorize again");
    assert!(body["error_description"].as_str().unwrap().contains("authorize again"), "{body}");
    assert_eq!(h.idp.userinfo_requests() - asked, 1, "the provider was asked");
    assert!(!h.access_token_works(access).await, "the grant has ended");
    let (status, err) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert_eq!(refusals(&h, "provider_refused"), 1.0);
}

/// A refresh the provider refuses after an MCP server's 401 ends the grant as well (as it
/// did before: a guard, not a change).
#[tokio::test]
async fn a_refresh_the_provider_refuses_after_a_401_ends_the_grant_with_the_challenge() {
    let (h, refusing) = start(IdpOptions::default()).await;
    let (_, tokens) = h.logged_in().await;
    let access = tokens["access_token"].as_str().unwrap();
    refusing.store(true, Ordering::SeqCst);
    h.idp.inject_fault(Fault::InvalidGrant);
    let (status, body, challenge) = call(&h, access).await;
    assert_eq!((status, body["error"].as_str(), challenge), (StatusCode::UNAUTHORIZED, Some("invalid_token"), true));
    assert!(!h.access_token_works(access).await, "the grant has ended");
}

/// The time the provider was last asked is stored with the grant, not kept in the process:
/// another process on the same database (a replica, or this one restarted) holds to the
/// same minute.
#[tokio::test]
async fn the_minute_holds_across_processes() {
    let (h, refusing) = start(IdpOptions::default()).await;
    let (_, tokens) = h.logged_in().await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    refusing.store(true, Ordering::SeqCst);
    assert_the_mcp_servers_refusal(call(&h, &access).await, "first refusal");
    assert_eq!(h.idp.refresh_count(), 1);

    let h = h.restarted(vec![]).await;
    assert_the_mcp_servers_refusal(call(&h, &access).await, "after the restart");
    assert_eq!(h.idp.refresh_count(), 1, "not refreshed again within the minute");
    h.clock.advance(61);
    assert_the_mcp_servers_refusal(call(&h, &access).await, "a minute later");
    assert_eq!(h.idp.refresh_count(), 2);
}
