//! What the MCP upstream is told about the user (`upstream_auth`, `identity_headers`),
//! and that nothing a client writes can speak for the proxy: the identity assertion
//! verified as an upstream would (against `P/.well-known/jwks.json`, with `jsonwebtoken`),
//! key rotation, the assertion's header and static credential, `none`, and the headers
//! oauth2-proxy-style upstreams believe.

use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_devsupport::idp::IdpOptions;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::harness::{Harness, KEY, Start};

const NEW_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// An MCP upstream that answers with the request headers it received, as JSON; a request
/// carrying `x-test-refuse` is answered 401, as by an upstream refusing the credential.
pub(crate) async fn spawn_echo() -> String {
    let handler = |headers: HeaderMap| async move {
        if headers.contains_key("x-test-refuse") {
            return AxumStatus::UNAUTHORIZED.into_response();
        }
        let seen: Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned())))
            .collect();
        axum::Json(Value::Object(seen)).into_response()
    };
    let router = axum::Router::new().route("/mcp", axum::routing::any(handler));
    let (base, _) = mcp_oauth_devsupport::serve_on_loopback(router).await.unwrap();
    format!("{base}/mcp")
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A proxy whose demo server (`servers[0]`) has `env` over it, in front of the echo.
async fn start(pairs: &[(&str, &str)], idp_options: Option<IdpOptions>) -> Harness {
    let upstream_url = Some(spawn_echo().await);
    Harness::start_with(Start { upstream_url, env: env(pairs), idp_options, ..Default::default() }).await
}

const IDENTITY: (&str, &str) = ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity");

/// What the echo saw of one MCP request with `token` and `extra` headers; the status if
/// it was not 200.
pub(crate) async fn seen(h: &Harness, token: &str, extra: &[(&str, &str)]) -> Result<Value, (StatusCode, Value)> {
    let mut request = h
        .http
        .post(h.url("/mcp/demo"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let r = request.body("{}").send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status == StatusCode::OK { Ok(body) } else { Err((status, body)) }
}

/// What a client could write to pass for someone else at an upstream that believes
/// oauth2-proxy-style headers.
const SPOOFED: &[(&str, &str)] = &[
    ("x-forwarded-user", "admin"),
    ("x-forwarded-email", "root@evil.example"),
    ("x-forwarded-groups", "admins"),
    ("x-forwarded-preferred-username", "admin"),
    ("x-auth-request-user", "admin"),
    ("x-auth-request-email", "root@evil.example"),
    ("remote-user", "admin"),
    ("x-remote-user", "admin"),
    ("x-real-ip", "10.0.0.1"),
];

fn assert_nothing_spoofed(seen: &Value) {
    let text = seen.to_string();
    assert!(!text.contains("admin") && !text.contains("evil.example") && !text.contains("10.0.0.1"), "{seen:#}");
    for name in ["x-forwarded-preferred-username", "x-auth-request-user", "x-auth-request-email", "remote-user"] {
        assert!(seen.get(name).is_none(), "{name}: {seen:#}");
    }
    assert!(seen.get("x-remote-user").is_none() && seen.get("x-real-ip").is_none(), "{seen:#}");
}

/// The assertion in `value` (`Bearer <jwt>`, or the bare JWT), verified against the key
/// set the proxy publishes, as an MCP upstream would: signature, `iss`, `aud`, `exp`.
pub(crate) async fn verified(h: &Harness, value: &str, audience: &str) -> (jsonwebtoken::Header, Value) {
    let jwt = value.strip_prefix("Bearer ").unwrap_or(value);
    let r = h.http.get(h.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let set: JwkSet = r.json().await.unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let jwk = set.find(header.kid.as_deref().expect("a kid")).expect("the signing key is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[h.base.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
    (header, data.claims)
}

#[tokio::test]
async fn client_identity_headers_never_reach_the_upstream_and_identity_headers_carry_the_verified_user() {
    // Today's mode (the provider token): what the client wrote is dropped.
    let h = start(&[], None).await;
    let (_, tokens) = h.logged_in().await;
    let seen_plain = seen(&h, tokens["access_token"].as_str().unwrap(), SPOOFED).await.unwrap();
    assert_nothing_spoofed(&seen_plain);
    assert!(seen_plain.get("x-forwarded-user").is_none() && seen_plain.get("x-forwarded-email").is_none());
    assert!(seen_plain["authorization"].as_str().unwrap().starts_with("Bearer idp_at_"), "{seen_plain:#}");
    // This hop's own forwarding headers are still set.
    assert_eq!(seen_plain["x-forwarded-for"], "127.0.0.1");

    // With identity headers, the upstream gets the real user in their place.
    let h = start(&[("MCP_OAUTH_PROXY_SERVERS__0__IDENTITY_HEADERS", "true")], None).await;
    let (_, tokens) = h.logged_in().await;
    let seen = seen(&h, tokens["access_token"].as_str().unwrap(), SPOOFED).await.unwrap();
    assert_nothing_spoofed(&seen);
    assert_eq!(seen["x-forwarded-user"], "demo-user");
    assert_eq!(seen["x-forwarded-email"], "demo@example.com");
    assert_eq!(seen["x-forwarded-groups"], "staff");
    assert!(seen["authorization"].as_str().unwrap().starts_with("Bearer idp_at_"), "the provider token still goes");
}

#[tokio::test]
async fn an_unverified_email_is_neither_asserted_nor_sent_as_a_header() {
    let mut options = IdpOptions::default();
    options.claims.insert("email_verified".into(), json!(false));
    options.claims.insert("groups".into(), json!(["staff", "ops"]));
    let headers_on = ("MCP_OAUTH_PROXY_SERVERS__0__IDENTITY_HEADERS", "true");
    let h = start(&[IDENTITY, headers_on], Some(options)).await;
    let (_, tokens) = h.logged_in().await;
    let seen = seen(&h, tokens["access_token"].as_str().unwrap(), &[]).await.unwrap();
    assert!(seen.get("x-forwarded-email").is_none(), "{seen:#}");
    assert_eq!(seen["x-forwarded-groups"], "staff,ops");
    let (_, claims) = verified(&h, seen["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert!(claims.get("email").is_none() && claims.get("email_verified").is_none(), "{claims:#}");
    assert_eq!(claims["groups"], json!(["staff", "ops"]));
}

#[tokio::test]
async fn identity_mode_sends_a_signed_assertion_of_the_verified_user_and_no_provider_token() {
    let mut options = IdpOptions::default();
    options.claims.insert("name".into(), json!("Demo User"));
    let h = start(&[IDENTITY], Some(options)).await;
    let (client_id, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap();
    let seen = seen(&h, token, SPOOFED).await.unwrap();
    assert_nothing_spoofed(&seen);
    let value = seen["authorization"].as_str().unwrap();
    assert!(!value.contains("idp_at_") && !value.contains(token), "neither the provider's token nor the client's");
    let (header, claims) = verified(&h, value, &h.upstream_url).await;
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(claims["iss"], h.base.as_str());
    assert_eq!(claims["aud"], h.upstream_url.as_str());
    assert_eq!(claims["sub"], "demo-user");
    assert_eq!((claims["email"].as_str(), claims["email_verified"].as_bool()), (Some("demo@example.com"), Some(true)));
    assert_eq!(claims["name"], "Demo User");
    assert_eq!(claims["groups"], json!(["staff"]));
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["scope"], tokens["scope"]);
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 300);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(seen.get("x-forwarded-user").is_none(), "identity headers are off by default");

    // Not signed per request: the next requests carry the same assertion.
    assert_eq!(h.app.identities.signed(), 1);
    for _ in 0..3 {
        let again = self::seen(&h, token, &[]).await.unwrap();
        assert_eq!(again["authorization"].as_str().unwrap(), value);
    }
    assert_eq!(h.app.identities.signed(), 1);
    // Past four fifths of its lifetime (and past the provider token's expiry, 300 s): a
    // new assertion, and still no provider refresh, as the provider token is not needed.
    h.clock.advance(301);
    let later = self::seen(&h, token, &[]).await.unwrap();
    let later = later["authorization"].as_str().unwrap();
    assert_ne!(later, value);
    let (_, renewed) = verified(&h, later, &h.upstream_url).await;
    assert_ne!(renewed["jti"], claims["jti"]);
    assert_eq!(renewed["iat"].as_i64().unwrap(), iat + 301);
    assert_eq!(h.app.identities.signed(), 2);
    assert_eq!(h.idp.refresh_count(), 0, "the MCP path never refreshed the provider token");

    // An ended grant is refused before anything is signed or sent.
    let info = h.app.store.find_access_token(&TokenHash::of(token)).await.unwrap().unwrap();
    h.app.store.end_family(&info.upstream.family_id, FamilyStatus::Revoked, h.app.now()).await.unwrap();
    assert_eq!(h.mcp_status(token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_upstream_refusing_the_assertion_is_a_502_that_keeps_the_grant_and_asks_no_provider() {
    let h = start(&[IDENTITY], None).await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap();
    let (status, body) = seen(&h, token, &[("x-test-refuse", "1")]).await.unwrap_err();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"], "upstream_rejected_credential", "{body}");
    assert!(body["error_description"].as_str().unwrap_or_default().contains("identity assertion"), "{body}");
    assert_eq!((h.idp.refresh_count(), h.idp.userinfo_requests()), (0, 0), "the provider was not asked");
    assert!(h.access_token_works(token).await);
    assert!(seen(&h, token, &[]).await.is_ok());
}

#[tokio::test]
async fn a_custom_header_carries_the_bare_assertion_beside_a_static_credential() {
    let h = start(
        &[
            IDENTITY,
            ("MCP_OAUTH_PROXY_SERVERS__0__IDENTITY__HEADER", "X-Identity-Assertion"),
            ("MCP_OAUTH_PROXY_SERVERS__0__IDENTITY__AUDIENCE", "urn:demo-tools"),
            ("MCP_OAUTH_PROXY_SERVERS__0__IDENTITY__STATIC_HEADER__NAME", "X-Api-Key"),
            ("MCP_OAUTH_PROXY_SERVERS__0__IDENTITY__STATIC_HEADER__VALUE_ENV", "DEMO_API_KEY"),
            ("DEMO_API_KEY", "key-from-the-environment"),
        ],
        None,
    )
    .await;
    let (_, tokens) = h.logged_in().await;
    let spoofs = [("x-identity-assertion", "forged"), ("x-api-key", "guessed")];
    let seen = seen(&h, tokens["access_token"].as_str().unwrap(), &spoofs).await.unwrap();
    assert!(seen.get("authorization").is_none(), "no Authorization when another header carries it: {seen:#}");
    assert_eq!(seen["x-api-key"], "key-from-the-environment");
    let jwt = seen["x-identity-assertion"].as_str().unwrap();
    assert!(!jwt.starts_with("Bearer "), "{jwt}");
    let (_, claims) = verified(&h, jwt, "urn:demo-tools").await;
    assert_eq!(claims["sub"], "demo-user");
}

#[tokio::test]
async fn none_mode_sends_no_credential_at_all() {
    let h = start(&[("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "none")], None).await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap();
    let seen = seen(&h, token, &[("cookie", "a=b")]).await.unwrap();
    assert!(seen.get("authorization").is_none() && seen.get("cookie").is_none(), "{seen:#}");
    assert!(!seen.to_string().contains("idp_at_") && !seen.to_string().contains(token), "{seen:#}");
    assert!(seen.get("x-forwarded-user").is_none());
    // A 401 is not the client's token failing: no challenge sends it to log in again.
    let (status, body) = self::seen(&h, token, &[("x-test-refuse", "1")]).await.unwrap_err();
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_GATEWAY, Some("upstream_rejected_credential")));
}

#[tokio::test]
async fn after_a_key_rotation_both_keys_are_published_and_the_new_one_signs() {
    let h = start(&[IDENTITY], None).await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let before = seen(&h, &token, &[]).await.unwrap();
    let (old, _) = verified(&h, before["authorization"].as_str().unwrap(), &h.upstream_url).await;
    let old_kid = old.kid.unwrap();
    let set: JwkSet = serde_json::from_value(h.get_json("/.well-known/jwks.json").await).unwrap();
    assert_eq!(set.keys.len(), 1);

    let rotated = h
        .restarted(env(&[
            IDENTITY,
            ("MCP_OAUTH_PROXY_ENCRYPTION_KEY", NEW_KEY),
            ("MCP_OAUTH_PROXY_ENCRYPTION__PREVIOUS_KEYS", KEY),
        ]))
        .await;
    let set: JwkSet = serde_json::from_value(rotated.get_json("/.well-known/jwks.json").await).unwrap();
    let kids: Vec<&str> = set.keys.iter().filter_map(|k| k.common.key_id.as_deref()).collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(kids[1], old_kid, "the previous key stays published");
    // The grant from before the rotation is served, with an assertion the new key signed.
    let after = seen(&rotated, &token, &[]).await.unwrap();
    let (new, claims) = verified(&rotated, after["authorization"].as_str().unwrap(), &rotated.upstream_url).await;
    assert_eq!(new.kid.as_deref(), Some(kids[0]));
    assert_ne!(kids[0], old_kid);
    assert_eq!(claims["email"], "demo@example.com", "the sealed identity opened with the previous key");
}
