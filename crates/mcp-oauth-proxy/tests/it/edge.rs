//! The shape of the HTTP edge: each kind of route refuses in its own form.

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, INITIALIZE};

fn content_type(r: &reqwest::Response) -> String {
    r.headers()["content-type"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_unknown_server_is_404_as_json_for_programs_and_as_a_page_for_people() {
    let h = Harness::start().await;
    for (method, path) in [
        ("POST", "/oauth/nope/token"),
        ("POST", "/oauth/nope/revoke"),
        ("POST", "/oauth/nope/register"),
        ("GET", "/.well-known/oauth-authorization-server/oauth/nope"),
        ("GET", "/.well-known/oauth-protected-resource/mcp/nope"),
        ("POST", "/mcp/nope"),
    ] {
        let req = if method == "POST" { h.http.post(h.url(path)) } else { h.http.get(h.url(path)) };
        let r =
            req.header("content-type", "application/x-www-form-urlencoded").body("grant_type=x").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(content_type(&r).starts_with("application/json"), "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
        assert!(body["error_description"].as_str().unwrap().contains("\"nope\""), "{path}");
    }
    let r = h.http.get(h.url("/oauth/nope/authorize?client_id=x")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(content_type(&r).starts_with("text/html"));
    assert_eq!(r.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = h
            .http
            .post(h.url("/mcp/demo"))
            .header("authorization", format!("{scheme} {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INITIALIZE)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn a_form_that_is_not_a_form_is_an_oauth_error_or_a_page() {
    let h = Harness::start().await;
    let r = h.http.post(h.url("/oauth/demo/token")).json(&serde_json::json!({"grant_type": "x"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = h.http.post(h.url("/oauth/demo/authorize")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(content_type(&r).starts_with("text/html"));
}
