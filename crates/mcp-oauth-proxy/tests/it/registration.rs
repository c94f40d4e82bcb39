use reqwest::StatusCode;
use serde_json::json;

use crate::harness::Harness;

#[tokio::test]
async fn public_client_registration_echoes_every_field() {
    let h = Harness::start().await;
    let (status, body) = h
        .register(json!({
            "redirect_uris": ["http://127.0.0.1:3000/cb", "cursor://anysphere.cursor-retrieval/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "My Client",
            "software_id": "x",
            "made_up_field": 42,
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["client_id"].as_str().unwrap().starts_with("mop_client_"));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["client_name"], "My Client");
    assert_eq!(body["software_id"], "x");
    assert_eq!(body["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(body["redirect_uris"][1], "cursor://anysphere.cursor-retrieval/oauth/callback");
    assert!(body.get("client_secret").is_none());
    assert!(body["client_id_issued_at"].is_i64());
}

#[tokio::test]
async fn confidential_client_gets_a_secret_and_its_method() {
    let h = Harness::start().await;
    let (status, body) = h
        .register(
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "client_secret_post"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["client_secret"].as_str().unwrap().starts_with("mop_cs_"));
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_post");
}

#[tokio::test]
async fn unsafe_redirect_uris_are_refused() {
    let h = Harness::start().await;
    for uri in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https://app.example/cb#fragment",
        "https://*.example.com/cb",
        "http://app.example/cb",
    ] {
        let (status, body) = h.register(json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["error"], "invalid_redirect_uri", "{uri}");
    }
    let (status, body) =
        h.register(json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client_metadata");
    let r = h.http.post(h.url("/oauth/demo/register")).body("not json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn clients_belong_to_the_server_they_registered_at() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let url = h.authorize_url(&client_id, &[]).replace("/oauth/demo/", "/oauth/other/");
    let page = crate::harness::Browser::new().get(&url).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.headers.get("location").is_none());
}
