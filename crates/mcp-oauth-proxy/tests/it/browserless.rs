//! Grants made at the token endpoint alone: client credentials (SEP-1046) reaching an
//! identity-mode upstream as `client:<id>`, with a secret or a signed client assertion
//! (`private_key_jwt`, keys inline or at a `jwks_uri`), and what is refused on the way.

use mcp_oauth_core::jwt_grant::CLIENT_ASSERTION_TYPE;
use mcp_oauth_core::jwt_grant::test_signer::TestSigner;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Start};
use crate::identity::{seen, spawn_echo, verified};

const SECRET: &str = "ci-bot-secret-0123456789abcdef";

fn clients_toml() -> String {
    format!(
        "[[clients]]\nclient_id = \"ci-bot\"\nclient_secret_env = \"CI_BOT_SECRET\"\n\
         grant_types = [\"client_credentials\"]\nscopes = [\"mcp\"]\n\n\
         [[clients]]\nclient_id = \"other-bot\"\nclient_secret = \"{SECRET}-other\"\n\
         grant_types = [\"client_credentials\"]\n\n\
         [[clients]]\nclient_id = \"browser-app\"\nclient_secret = \"{SECRET}-browser\"\n\
         redirect_uris = [\"http://127.0.0.1:7777/callback\"]\n"
    )
}

/// A proxy whose demo server is in identity mode, lets `ci-bot` in on its own behalf,
/// and sends the echo upstream what it would send an MCP server.
async fn start() -> Harness {
    let env = [
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity"),
        ("MCP_OAUTH_PROXY_SERVERS__0__ACCESS__CLIENTS", "ci-bot,browser-app"),
        ("MCP_OAUTH_PROXY_SERVERS__0__SCOPES", "mcp,admin"),
        ("CI_BOT_SECRET", SECRET),
    ];
    Harness::start_with(Start {
        upstream_url: Some(spawn_echo().await),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        extra_toml: clients_toml(),
        ..Default::default()
    })
    .await
}

async fn client_credentials(h: &Harness, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form: Vec<(&str, &str)> = form.to_vec();
    form.push(("grant_type", "client_credentials"));
    let mut request = h.http.post(h.url("/oauth/demo/token"));
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let r = request.form(&form).send().await.unwrap();
    let status = r.status();
    assert_eq!(r.headers()["cache-control"], "no-store");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn a_browserless_grant_sends_nothing_once_its_server_wants_provider_tokens() {
    let h = start().await;
    let (status, tokens) = client_credentials(&h, Some(("ci-bot", SECRET)), &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // The operator switches the server to provider tokens (and so drops the client rule).
    let h = h.restarted(vec![]).await;
    let before = h.idp.userinfo_requests();
    let r = h.http.post(h.url("/mcp/demo")).bearer_auth(&access).header("content-type", "application/json");
    let r = r.header("accept", "application/json, text/event-stream").body(crate::harness::INITIALIZE).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the grant has no provider token to send");
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("resource_metadata"));
    assert_eq!(h.idp.userinfo_requests(), before, "the provider is not asked about an empty token");
    assert!(!h.access_token_works(&access).await, "the grant has ended");
}

#[tokio::test]
async fn a_client_credentials_token_reaches_an_identity_upstream_as_the_client() {
    let h = start().await;
    let resource = h.url("/mcp/demo");
    let (status, tokens) = client_credentials(&h, Some(("ci-bot", SECRET)), &[("resource", &resource)]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "mcp", "the client's own scopes, within the server's");
    assert!(tokens.get("refresh_token").is_none(), "no refresh token for client credentials: {tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let upstream = seen(&h, access, &[]).await.unwrap();
    let (_, claims) = verified(&h, upstream["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert_eq!(claims["sub"], "client:ci-bot", "{claims:#}");
    assert_eq!(claims["client_id"], "ci-bot");
    assert!(claims.get("email").is_none(), "a client has no email: {claims:#}");

    // client_secret_post works too.
    let (status, body) = client_credentials(&h, None, &[("client_id", "ci-bot"), ("client_secret", SECRET)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The token is a grant: it can be revoked like any other.
    let revoke = [("token", access)];
    let r = h.http.post(h.url("/oauth/demo/revoke")).basic_auth("ci-bot", Some(SECRET)).form(&revoke).send();
    assert_eq!(r.await.unwrap().status(), StatusCode::OK);
    assert!(!h.access_token_works(access).await);
}

#[tokio::test]
async fn client_credentials_are_refused_beyond_what_the_client_may_have() {
    let h = start().await;
    // A wrong secret.
    let (status, body) = client_credentials(&h, Some(("ci-bot", "wrong")), &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    // A scope beyond the client's.
    let (status, body) = client_credentials(&h, Some(("ci-bot", SECRET)), &[("scope", "mcp admin")]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");
    // Another server's resource.
    let (status, body) =
        client_credentials(&h, Some(("ci-bot", SECRET)), &[("resource", "https://elsewhere.example/mcp")]).await;
    assert_eq!(body["error"], "invalid_target", "{status} {body}");
    // A client the server does not list.
    let (status, body) = client_credentials(&h, Some(("other-bot", &format!("{SECRET}-other"))), &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    // A client listed, but not registered for the grant.
    let (status, body) = client_credentials(&h, Some(("browser-app", &format!("{SECRET}-browser"))), &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    // A server that sends provider tokens: no client may use it on its own behalf.
    let r = h.http.post(h.url("/oauth/other/token")).basic_auth("ci-bot", Some(SECRET));
    let r = r.form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    // The metadata says the grant exists.
    let metadata = h.get_json("/.well-known/oauth-authorization-server/oauth/demo").await;
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(grants.iter().any(|g| g == "client_credentials"), "{metadata:#}");
}

/// A client assertion (`private_key_jwt`) for `h`'s demo token endpoint, by `client`.
fn client_assertion(h: &Harness, signer: &TestSigner, client: &str, jti: &str) -> String {
    let now = mcp_oauth_core::Clock::now(&h.clock);
    let claims = serde_json::json!({
        "iss": client, "sub": client, "aud": h.url("/oauth/demo/token"), "jti": jti, "iat": now, "exp": now + 60,
    });
    signer.sign("JWT", &claims)
}

async fn with_assertion(h: &Harness, assertion: &str) -> (StatusCode, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    let r = h.http.post(h.url("/oauth/demo/token")).form(&form).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn private_key_jwt_clients_sign_their_requests_once_each() {
    let inline = TestSigner::new([5; 32], "inline-1");
    let remote = TestSigner::new([6; 32], "remote-1");
    // The remote client's key set, served on loopback (the guarded fetcher allows it here).
    let set = serde_json::json!({"keys": [remote.jwk]});
    let router = axum::Router::new().route("/jwks", axum::routing::get(move || async move { axum::Json(set) }));
    let (jwks_base, _) = mcp_oauth_devsupport::serve_on_loopback(router).await.unwrap();
    let inline_jwks = serde_json::json!({"keys": [inline.jwk]}).to_string().replace('\'', "");
    let extra = format!(
        "[client_metadata_documents]\nallow_loopback = true\n\n\
         [[clients]]\nclient_id = \"signed-bot\"\njwks = '{inline_jwks}'\ngrant_types = [\"client_credentials\"]\n\n\
         [[clients]]\nclient_id = \"remote-bot\"\njwks_uri = \"{jwks_base}/jwks\"\ngrant_types = [\"client_credentials\"]\n"
    );
    let env = [
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity"),
        ("MCP_OAUTH_PROXY_SERVERS__0__ACCESS__CLIENTS", "signed-bot,remote-bot"),
    ];
    let h = Harness::start_with(Start {
        upstream_url: Some(spawn_echo().await),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        extra_toml: extra,
        ..Default::default()
    })
    .await;
    let metadata = h.get_json("/.well-known/oauth-authorization-server/oauth/demo").await;
    let methods = metadata["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(methods.iter().any(|m| m == "private_key_jwt"), "{metadata:#}");

    let assertion = client_assertion(&h, &inline, "signed-bot", "a-1");
    let (status, tokens) = with_assertion(&h, &assertion).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let upstream = seen(&h, tokens["access_token"].as_str().unwrap(), &[]).await.unwrap();
    let (_, claims) = verified(&h, upstream["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert_eq!(claims["sub"], "client:signed-bot");
    // The same assertion again: refused.
    let (status, body) = with_assertion(&h, &assertion).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{body}");
    // Signed by another key, or for another server, or without one at all.
    let (status, _) = with_assertion(&h, &client_assertion(&h, &remote, "signed-bot", "a-2")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let now = mcp_oauth_core::Clock::now(&h.clock);
    let elsewhere = serde_json::json!({"iss": "signed-bot", "sub": "signed-bot", "aud": h.url("/oauth/other/token"),
                                       "jti": "a-3", "exp": now + 60});
    let (status, _) = with_assertion(&h, &inline.sign("JWT", &elsewhere)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = h.http.post(h.url("/oauth/demo/token"));
    let r = r.form(&[("grant_type", "client_credentials"), ("client_id", "signed-bot")]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no assertion, no token");

    // A client whose keys are at a jwks_uri.
    let (status, tokens) = with_assertion(&h, &client_assertion(&h, &remote, "remote-bot", "r-1")).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
}

#[tokio::test]
async fn a_registered_client_gets_tokens_of_its_own_where_the_operator_lists_it() {
    let identity = [("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity")];
    let env =
        |more: &[(&str, &str)]| identity.iter().chain(more).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let h = Harness::start_with(Start { upstream_url: Some(spawn_echo().await), env: env(&[]), ..Default::default() })
        .await;
    let (status, registered) = h.register(serde_json::json!({"grant_types": ["client_credentials"]})).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let (id, secret) = (registered["client_id"].as_str().unwrap(), registered["client_secret"].as_str().unwrap());
    assert_eq!(registered["grant_types"], serde_json::json!(["client_credentials"]));
    // Registered, but no server lets it in yet: anyone may register.
    let (status, body) = client_credentials(&h, Some((id, secret)), &[]).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unauthorized_client")));
    // The operator lists it for this server.
    let h = h.restarted(env(&[("MCP_OAUTH_PROXY_SERVERS__0__ACCESS__CLIENTS", id)])).await;
    let (status, tokens) = client_credentials(&h, Some((id, secret)), &[]).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let upstream = seen(&h, tokens["access_token"].as_str().unwrap(), &[]).await.unwrap();
    let (_, claims) = verified(&h, upstream["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert_eq!(claims["sub"], format!("client:{id}"));
}
