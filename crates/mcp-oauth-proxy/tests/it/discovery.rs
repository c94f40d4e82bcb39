use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::Harness;

#[tokio::test]
async fn protected_resource_metadata_names_our_authorization_server() {
    let h = Harness::start().await;
    let r = h.http.get(h.url("/.well-known/oauth-protected-resource/mcp/demo")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resource"], h.url("/mcp/demo"));
    assert_eq!(body["authorization_servers"], serde_json::json!([h.url("/oauth/demo")]));
    assert_eq!(body["bearer_methods_supported"], serde_json::json!(["header"]));
    assert_eq!(body["scopes_supported"], serde_json::json!(["mcp"]));
    let r = h.http.get(h.url("/.well-known/oauth-protected-resource/mcp/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn authorization_server_metadata_is_served_wherever_clients_look() {
    let h = Harness::start().await;
    let issuer = h.url("/oauth/demo");
    for path in [
        "/.well-known/oauth-authorization-server/oauth/demo",
        "/.well-known/openid-configuration/oauth/demo",
        "/oauth/demo/.well-known/openid-configuration",
        "/oauth/demo/.well-known/oauth-authorization-server",
    ] {
        let r = h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let m: Value = r.json().await.unwrap();
        assert_eq!(m["issuer"], issuer, "issuer must be byte-equal ({path})");
        assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(m["grant_types_supported"], serde_json::json!(["authorization_code", "refresh_token"]));
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            serde_json::json!(["none", "client_secret_post", "client_secret_basic", "private_key_jwt"])
        );
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["registration_endpoint"], format!("{issuer}/register"));
        assert_eq!(m["revocation_endpoint"], format!("{issuer}/revoke"));
        assert_eq!(m["token_endpoint"], format!("{issuer}/token"));
        assert_eq!(m["authorization_endpoint"], format!("{issuer}/authorize"));
    }
}

#[tokio::test]
async fn browser_clients_may_call_machine_endpoints_cross_origin() {
    let h = Harness::start().await;
    let r = h
        .http
        .request(reqwest::Method::OPTIONS, h.url("/oauth/demo/token"))
        .header("origin", "http://localhost:6274")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn health_and_readiness_probes_answer() {
    let h = Harness::start().await;
    for path in ["/healthz", "/readyz"] {
        let r = h.http.get(h.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
}
