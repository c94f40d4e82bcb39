//! MCP 2026-07-28: `offline_access` in the authorization server's metadata only (SEP-2207),
//! dynamic registration that can be turned off.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Browser, Harness, Start};

async fn get_json(h: &Harness, path: &str) -> Value {
    h.get_json(path).await
}

#[tokio::test]
async fn offline_access_belongs_to_the_authorization_server_alone() {
    let h = Harness::start().await;
    let as_meta = get_json(&h, "/.well-known/oauth-authorization-server/oauth/demo").await;
    assert_eq!(as_meta["scopes_supported"], json!(["mcp", "offline_access"]));
    let prm = get_json(&h, "/.well-known/oauth-protected-resource/mcp/demo").await;
    assert_eq!(prm["scopes_supported"], json!(["mcp"]));
    let r = h.http.post(h.url("/mcp/demo")).body("{}").send().await.unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("scope=\"mcp\""), "{challenge}");

    // Granted when asked for, not by default; refresh tokens as the registration says.
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let redirect = b.login(&h.authorize_url(&client_id, &[("scope", "mcp offline_access")]), true).await;
    let code = url::Url::parse(&redirect).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let tokens = h.exchange(&client_id, &code).await;
    assert_eq!(tokens["scope"], "mcp offline_access");
    assert!(tokens["refresh_token"].is_string());
    let (_, plain) = h.logged_in().await;
    assert_eq!(plain["scope"], "mcp");
}

#[tokio::test]
async fn registration_can_be_turned_off() {
    let h = Harness::start_with(Start { extra_toml: "[registration]\nenabled = false\n".into(), ..Default::default() })
        .await;
    let meta = get_json(&h, "/.well-known/oauth-authorization-server/oauth/demo").await;
    assert!(meta.get("registration_endpoint").is_none(), "{meta}");
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    let (status, body) = h.register(json!({"redirect_uris": ["http://127.0.0.1:7777/callback"]})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let on = Harness::start().await;
    let meta = get_json(&on, "/.well-known/oauth-authorization-server/oauth/demo").await;
    assert_eq!(meta["registration_endpoint"], on.url("/oauth/demo/register"));
}
