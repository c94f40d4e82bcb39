//! Access rules per server: who may use it, by subject, verified email, email domain or
//! group, from the verified id_token.

use mcp_oauth_devsupport::idp::IdpOptions;
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Browser, Harness, Start};

/// The demo server with `access.<rule> = <value>`; the user has the dev IdP's claims
/// (subject demo-user, demo@example.com verified, group staff) unless `claims` says otherwise.
async fn with_rule(rule: &str, value: &str, claims: Option<serde_json::Value>) -> Harness {
    let mut idp = IdpOptions::default();
    if let Some(c) = claims {
        idp.claims = c.as_object().cloned().unwrap();
    }
    let dir = std::env::temp_dir().join(format!("mop-access-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    Harness::start_with(Start {
        idp_options: Some(idp),
        env: vec![(format!("MCP_OAUTH_PROXY_SERVERS__0__ACCESS__{}", rule.to_uppercase()), value.to_owned())],
        extra_toml: format!("[audit]\npath = \"{}\"\n", dir.join("audit.log").display()),
        db_dir: Some(dir),
        ..Default::default()
    })
    .await
}

/// The whole login; the status of the proxy's answer to the provider's callback.
async fn login_status(h: &Harness) -> (StatusCode, String) {
    let client_id = h.register_public().await;
    let done = Browser::new().through_callback(&h.authorize_url(&client_id, &[]), &[("login", "approve")]).await;
    (done.status, done.body)
}

#[tokio::test]
async fn users_are_let_in_by_any_rule_and_refused_otherwise() {
    for (rule, value) in [
        ("subjects", "demo-user"),
        ("emails", "Demo@Example.com"),
        ("email_domains", "example.com"),
        ("groups", "staff,admins"),
    ] {
        let h = with_rule(rule, value, None).await;
        assert_eq!(login_status(&h).await.0, StatusCode::FOUND, "{rule} = {value}");
    }
    for (rule, value) in [("subjects", "someone-else"), ("email_domains", "corp.example"), ("groups", "admins")] {
        let h = with_rule(rule, value, None).await;
        let (status, body) = login_status(&h).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{rule} = {value}");
        assert!(body.contains("not allowed to use this MCP server"), "{body}");
        let grants = h.app.store.list_grants(&Default::default(), 10).await.unwrap();
        assert!(grants.is_empty(), "no grant is stored for a refused user");
        let read = || std::fs::read_to_string(h.db_dir.join("audit.log")).unwrap_or_default();
        for _ in 0..50 {
            if read().contains("login.denied") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let trail = read();
        assert!(trail.contains("\"event\":\"login.denied\"") && trail.contains("\"subject\":\"demo-user\""), "{trail}");
    }
}

#[tokio::test]
async fn an_email_the_provider_did_not_verify_opens_nothing() {
    let unverified = json!({"email": "demo@example.com", "email_verified": false});
    let h = with_rule("email_domains", "example.com", Some(unverified)).await;
    assert_eq!(login_status(&h).await.0, StatusCode::FORBIDDEN);
    let unsaid = json!({"email": "demo@example.com"});
    let h = with_rule("emails", "demo@example.com", Some(unsaid)).await;
    assert_eq!(login_status(&h).await.0, StatusCode::FORBIDDEN, "email_verified absent is not verified");
}
