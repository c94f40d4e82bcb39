//! One test per publicly known vulnerability of MCP OAuth proxies and authorization
//! servers that applies here, named after what it guards against.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Browser, Harness, REDIRECT, Start, VERIFIER};

fn no_redirect(page: &mcp_oauth_devsupport::browser::Page) -> bool {
    page.headers.get("location").is_none()
}

#[tokio::test]
async fn unchecked_redirect_uri() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    for evil in
        ["https://evil.example/cb", "http://127.0.0.1.evil.example/callback", "http://127.0.0.1:7777/callback/../x"]
    {
        let url = h.authorize_url(&client_id, &[]).replace(
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A7777%2Fcallback",
            &format!("redirect_uri={}", url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()),
        );
        let page = Browser::new().get(&url).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{evil}");
        assert!(no_redirect(&page), "{evil}");
    }
}

#[tokio::test]
async fn pkce_bypass_by_omitting_the_verifier() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let code = h.authorize(&mut Browser::new(), &client_id).await;
    let form =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("client_id", &client_id)];
    let (status, body, _) = h.token(&form).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    // The code is not spent by the failed attempt... but a second, correct one is a
    // different request: PKCE decides, the verifier is required.
    let mut with_empty = form.to_vec();
    with_empty.push(("code_verifier", ""));
    assert_eq!(h.token(&with_empty).await.0, StatusCode::BAD_REQUEST);
    let mut right = form.to_vec();
    right.push(("code_verifier", VERIFIER));
    assert_eq!(h.token(&right).await.0, StatusCode::OK);
}

#[tokio::test]
async fn open_redirect_from_the_consent_step() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let consent = b.get(&h.authorize_url(&client_id, &[])).await;
    assert_eq!(consent.status, StatusCode::OK);
    // The form posted back with the redirect URI swapped, the CSRF token kept.
    let mut fields = consent.hidden_fields();
    for (k, v) in fields.iter_mut() {
        if k == "redirect_uri" {
            *v = "https://evil.example/cb".into();
        }
    }
    fields.push(("decision".into(), "deny".into()));
    let page = b.post_form(&h.url("/oauth/demo/authorize"), &fields).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(no_redirect(&page));
}

#[tokio::test]
async fn javascript_redirect_uris() {
    let h = Harness::start().await;
    for uri in
        ["javascript:alert(1)", "JavaScript://%0aalert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:x"]
    {
        let (status, body) = h.register(json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_redirect_uri", "{uri}");
    }
}

#[tokio::test]
async fn callback_without_consent() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    // A state the proxy never issued.
    let page = b.get(&h.url("/oauth/callback?code=x&state=made-up")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(no_redirect(&page));
    // A real login's provider response, replayed in another browser (no consent there).
    let consent = b.get(&h.authorize_url(&client_id, &[])).await;
    let upstream = b.submit(&consent, "", &[("decision", "approve")]).await.location();
    let login = b.get(&upstream).await;
    let origin = url::Url::parse(&upstream).unwrap().origin().ascii_serialization();
    let callback = b.submit(&login, &origin, &[("login", "approve")]).await.location();
    let page = Browser::new().get(&callback).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(no_redirect(&page), "no code for a browser that did not consent");
}

#[tokio::test]
async fn tokens_not_bound_to_their_resource() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let r = h
        .http
        .post(h.url("/mcp/other"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .header("content-type", "application/json")
        .body(crate::harness::INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a token for one MCP server opens no other");
}

#[tokio::test]
async fn reflected_content_on_error_and_callback_pages() {
    let h = Harness::start().await;
    let payload = "<script>alert(1)</script>";
    let encoded: String = url::form_urlencoded::byte_serialize(payload.as_bytes()).collect();
    let client_id = h.register_public().await;
    for path in [
        format!("/oauth/demo/authorize?client_id={encoded}"),
        format!("/oauth/demo/authorize?client_id={client_id}&redirect_uri={encoded}"),
        format!("/oauth/callback?state={encoded}&error={encoded}&error_description={encoded}"),
        format!("/oauth/{encoded}/authorize"),
    ] {
        let r = h.http.get(h.url(&path)).send().await.unwrap();
        let csp = r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_owned());
        let body = r.text().await.unwrap();
        assert!(!body.contains(payload), "{path} reflects markup: {body}");
        assert!(csp.is_some_and(|c| c.contains("default-src 'none'")), "{path}");
    }
}

#[tokio::test]
async fn ssrf_through_metadata_documents() {
    let h = Harness::start_with(Start::default()).await;
    for client_id in [
        "https://127.0.0.1/c.json",
        "https://169.254.169.254/latest/meta-data/c.json",
        "https://[::ffff:127.0.0.1]/c.json",
        "https://[64:ff9b::7f00:1]/c.json",
        "https://localhost/c.json",
        "https://10.0.0.1/c.json",
        // Not globally reachable: refused by the guard (a 400), not merely unreachable
        // (which would be a 503, come back later).
        "https://[::ffff:0:a00:1]/c.json",
        "https://[fec0::1]/c.json",
        "https://[100::1]/c.json",
        "https://[5f00::1]/c.json",
    ] {
        let page = Browser::new().get(&h.authorize_url(client_id, &[])).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id}");
        assert!(no_redirect(&page));
        // Refused as a document, or (a URL that is not in its normal form) not taken
        // for one at all: never fetched either way.
        let refused = page.body.contains("could not be used") || page.body.contains("Unknown client");
        assert!(refused, "{client_id}: {}", page.body);
    }
}
