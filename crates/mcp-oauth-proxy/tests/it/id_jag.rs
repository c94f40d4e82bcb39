//! Enterprise-managed authorization (SEP-990): the development IdP, standing in for the
//! company's IdP, signs ID-JAGs; a client redeems them with the `jwt-bearer` grant and
//! calls an identity-mode upstream, which sees the user the IdP named. Replays are refused,
//! at a second replica too (PostgreSQL when this run has one, else the same SQLite file).

use std::sync::Arc;

use mcp_oauth_core::ManualClock;
use mcp_oauth_core::jwt_grant::{ID_JAG_PROFILE, ID_JAG_TYPE, JWT_BEARER};
use mcp_oauth_core::token::random_id;
use mcp_oauth_devsupport::idp::DevIdp;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Harness, REDIRECT, Start};
use crate::identity::{seen, spawn_echo, verified};
use crate::replicas::postgres_url;

const CLIENT: &str = "claude-enterprise";
const SECRET: &str = "claude-enterprise-secret-0123456789";

struct Setup {
    idp: DevIdp,
    issuer: String,
    clock: ManualClock,
    upstream: String,
}

async fn setup() -> Setup {
    let clock = ManualClock::starting_now();
    let idp = DevIdp::new(Default::default(), Arc::new(clock.clone()));
    let issuer = idp.spawn().await.unwrap();
    Setup { idp, issuer, clock, upstream: spawn_echo().await }
}

/// A proxy whose demo server takes `acme`'s ID-JAGs, lets in acme.com addresses, and
/// sends the echo its identity assertion. `storage` and `public_url` make a replica.
async fn proxy(s: &Setup, storage: Option<String>, public_url: Option<String>) -> Harness {
    proxy_with(s, storage, public_url, "", &[]).await
}

/// [`proxy`] with `more` tables (the demo server takes every IdP they configure too) and
/// `more_env` variables.
async fn proxy_with(
    s: &Setup,
    storage: Option<String>,
    public_url: Option<String>,
    more: &str,
    more_env: &[(&str, &str)],
) -> Harness {
    let limited = format!("clients = [\"{CLIENT}\"]\n");
    // A test that brings its own `[client_metadata_documents]` lets any client present them.
    let idp_clients = if more.contains("client_metadata_documents") { "" } else { limited.as_str() };
    let extra = format!(
        "[enterprise_idps.acme]\nissuer = \"{issuer}\"\njwks_url = \"{issuer}/jwks\"\n{idp_clients}\n\
         [[clients]]\nclient_id = \"{CLIENT}\"\nclient_secret = \"{SECRET}\"\nredirect_uris = [\"{REDIRECT}\"]\n\n\
         [[clients]]\nclient_id = \"cursor\"\nclient_secret = \"{SECRET}-cursor\"\nredirect_uris = [\"{REDIRECT}\"]\n\n{more}",
        issuer = s.issuer
    );
    let idps: Vec<&str> = std::iter::once("acme")
        .chain(more.lines().filter_map(|l| l.strip_prefix("[enterprise_idps.")?.strip_suffix(']')))
        .collect();
    let idps = idps.join(",");
    let env = [
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity"),
        ("MCP_OAUTH_PROXY_SERVERS__0__ENTERPRISE_IDPS", idps.as_str()),
        ("MCP_OAUTH_PROXY_SERVERS__0__ACCESS__EMAIL_DOMAINS", "acme.com"),
    ];
    Harness::start_with(Start {
        upstream_url: Some(s.upstream.clone()),
        env: env.iter().chain(more_env).map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        extra_toml: extra,
        idp: Some((s.idp.clone(), s.issuer.clone())),
        clock: Some(s.clock.clone()),
        storage_url: storage,
        public_url,
        ..Default::default()
    })
    .await
}

/// The claims acme's IdP puts in an ID-JAG for Ada and `h`'s demo server.
fn claims(s: &Setup, h: &Harness) -> Value {
    let now = mcp_oauth_core::Clock::now(&s.clock);
    json!({
        "iss": s.issuer, "sub": "00u-ada", "aud": h.url("/oauth/demo"), "resource": h.url("/mcp/demo"),
        "client_id": CLIENT, "jti": random_id(), "iat": now, "exp": now + 300, "scope": "mcp",
        "email": "ada@acme.com", "groups": ["eng"], "name": "Ada",
    })
}

async fn redeem(h: &Harness, client: (&str, &str), assertion: &str) -> (StatusCode, Value) {
    let form = [("grant_type", JWT_BEARER), ("assertion", assertion)];
    let r = h.http.post(h.url("/oauth/demo/token")).basic_auth(client.0, Some(client.1)).form(&form).send();
    let r = r.await.unwrap();
    let status = r.status();
    assert_eq!(r.headers()["cache-control"], "no-store");
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn an_id_jag_reaches_an_identity_upstream_as_the_user_the_idp_named() {
    let s = setup().await;
    let dir = std::env::temp_dir().join(format!("mop-id-jag-{}", random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let audit = dir.join("audit.log");
    let h = proxy_with(&s, None, None, &format!("[audit]\npath = \"{}\"\n", audit.display()), &[]).await;
    let metadata = h.get_json("/.well-known/oauth-authorization-server/oauth/demo").await;
    assert!(metadata["grant_types_supported"].as_array().unwrap().iter().any(|g| g == JWT_BEARER), "{metadata:#}");
    assert_eq!(metadata["authorization_grant_profiles_supported"], json!([ID_JAG_PROFILE]));
    let other = h.get_json("/.well-known/oauth-authorization-server/oauth/other").await;
    assert!(other.get("authorization_grant_profiles_supported").is_none(), "only servers that take ID-JAGs say so");

    let jag = s.idp.sign_jwt(ID_JAG_TYPE, &claims(&s, &h));
    let (status, tokens) = redeem(&h, (CLIENT, SECRET), &jag).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "mcp");
    assert!(tokens.get("refresh_token").is_none(), "no refresh token: the IdP decides again: {tokens}");
    let upstream = seen(&h, tokens["access_token"].as_str().unwrap(), &[]).await.unwrap();
    let (_, asserted) = verified(&h, upstream["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert_eq!((asserted["sub"].as_str(), asserted["email"].as_str()), (Some("00u-ada"), Some("ada@acme.com")));
    assert_eq!((asserted["email_verified"].as_bool(), asserted["groups"].clone()), (Some(true), json!(["eng"])));
    assert_eq!(asserted["client_id"], CLIENT);

    // The same assertion again: refused, with nothing said of why.
    let (status, body) = redeem(&h, (CLIENT, SECRET), &jag).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert!(!body.to_string().contains("jti"), "{body}");

    // The audit trail: the grant type and the IdP; never the assertion.
    let events = crate::audit::read_events(&audit, 1).await;
    let issued = events.iter().find(|e| e["event"] == "token.issued").expect("token.issued");
    assert_eq!((issued["grant_type"].as_str(), issued["idp"].as_str()), (Some(JWT_BEARER), Some("acme")));
    assert_eq!((issued["subject"].as_str(), issued["client_id"].as_str()), (Some("00u-ada"), Some(CLIENT)));
    let trail = std::fs::read_to_string(&audit).unwrap();
    assert!(!trail.contains(&jag) && !trail.contains(jag.split('.').nth(2).unwrap()), "the assertion is not audited");
}

#[tokio::test]
async fn an_idp_that_is_not_the_provider_speaks_only_for_its_own_users() {
    let s = setup().await;
    // acme's IdP is also the provider its users log in with; partner's is not.
    let partner = DevIdp::new(Default::default(), Arc::new(s.clock.clone()));
    let partner_issuer = partner.spawn().await.unwrap();
    let more = format!(
        "[enterprise_idps.partner]\nissuer = \"{partner_issuer}\"\njwks_url = \"{partner_issuer}/jwks\"\nclients = [\"{CLIENT}\"]\n"
    );
    // Ada, by her id at acme, or anyone with an acme.com address.
    let h = proxy_with(&s, None, None, &more, &[("MCP_OAUTH_PROXY_SERVERS__0__ACCESS__SUBJECTS", "00u-ada")]).await;
    let from_partner = |sub: &str, email: &str| {
        let mut c = claims(&s, &h);
        c["iss"] = json!(partner_issuer);
        c["sub"] = json!(sub);
        c["email"] = json!(email);
        partner.sign_jwt(ID_JAG_TYPE, &c)
    };
    // Partner's user with Ada's id is not Ada: the subject rule does not let them in.
    let (status, body) = redeem(&h, (CLIENT, SECRET), &from_partner("00u-ada", "eve@partner.example")).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
    // One let in by the address rule is known to the upstream by partner's namespace.
    let (status, tokens) = redeem(&h, (CLIENT, SECRET), &from_partner("00u-bob", "bob@acme.com")).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let upstream = seen(&h, tokens["access_token"].as_str().unwrap(), &[]).await.unwrap();
    let (_, asserted) = verified(&h, upstream["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert_eq!(asserted["sub"], "idp:partner:00u-bob");
    // acme's, the provider's own, keeps its id: the one her browser logins have.
    let mut c = claims(&s, &h);
    c["email"] = json!("ada@elsewhere.example");
    let (status, tokens) = redeem(&h, (CLIENT, SECRET), &s.idp.sign_jwt(ID_JAG_TYPE, &c)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let upstream = seen(&h, tokens["access_token"].as_str().unwrap(), &[]).await.unwrap();
    let (_, asserted) = verified(&h, upstream["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert_eq!(asserted["sub"], "00u-ada");
}

#[tokio::test]
async fn id_jags_are_refused_when_anything_is_wrong() {
    let s = setup().await;
    let h = proxy(&s, None, None).await;
    let wrong = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = claims(&s, &h);
        f(c.as_object_mut().unwrap());
        s.idp.sign_jwt(ID_JAG_TYPE, &c)
    };
    let cases: Vec<(&str, String)> = vec![
        ("an id_token", s.idp.sign_jwt("JWT", &claims(&s, &h))),
        ("another audience", wrong(&|c| drop(c.insert("aud".into(), json!("https://elsewhere.example/oauth"))))),
        ("another server's resource", wrong(&|c| drop(c.insert("resource".into(), json!("http://x/mcp/other"))))),
        ("another client", wrong(&|c| drop(c.insert("client_id".into(), json!("cursor"))))),
        ("an unknown issuer", wrong(&|c| drop(c.insert("iss".into(), json!("https://evil.example"))))),
        ("expired", wrong(&|c| drop(c.insert("exp".into(), json!(c["iat"].as_i64().unwrap() - 120))))),
        ("outside the access rules", wrong(&|c| drop(c.insert("email".into(), json!("eve@evil.example"))))),
        ("no scope in common", wrong(&|c| drop(c.insert("scope".into(), json!("admin"))))),
    ];
    for (what, jag) in cases {
        let (status, body) = redeem(&h, (CLIENT, SECRET), &jag).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert!(["invalid_grant", "invalid_scope"].contains(&body["error"].as_str().unwrap()), "{what}: {body}");
    }
    // A client the IdP's `clients` does not list, even when the assertion names it.
    let jag = wrong(&|c| drop(c.insert("client_id".into(), json!("cursor"))));
    let (status, body) = redeem(&h, ("cursor", &format!("{SECRET}-cursor")), &jag).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    // A made-up key id fetches the key set again, but not twice in a row.
    let before = h.app.enterprise_idps.fetches();
    let forger = mcp_oauth_core::jwt_grant::test_signer::TestSigner::new([1; 32], "made-up");
    let forged = forger.sign(ID_JAG_TYPE, &claims(&s, &h));
    for _ in 0..3 {
        let (status, _) = redeem(&h, (CLIENT, SECRET), &forged).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    assert!(h.app.enterprise_idps.fetches() - before <= 1, "refetches are rate-limited");
    // Nothing was spent by the refusals: a good assertion still works.
    let (status, body) = redeem(&h, (CLIENT, SECRET), &s.idp.sign_jwt(ID_JAG_TYPE, &claims(&s, &h))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_replay_at_another_replica_is_refused() {
    let s = setup().await;
    let storage = match postgres_url().await {
        Some(url) => url,
        None => format!("sqlite://{}/proxy.db", std::env::temp_dir().join(format!("mop-it-{}", random_id())).display()),
    };
    let a = proxy(&s, Some(storage.clone()), None).await;
    let b = proxy(&s, Some(storage), Some(a.base.clone())).await;
    let jag = s.idp.sign_jwt(ID_JAG_TYPE, &claims(&s, &a));
    let (status, body) = redeem(&a, (CLIENT, SECRET), &jag).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = redeem(&b, (CLIENT, SECRET), &jag).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{body}");
}

/// The client shape the extension recommends: a Client ID Metadata Document as `client_id`,
/// authenticating with `private_key_jwt` against the keys its document publishes.
#[tokio::test]
async fn a_metadata_document_client_signs_its_request_and_redeems_an_id_jag() {
    use mcp_oauth_core::jwt_grant::CLIENT_ASSERTION_TYPE;
    use mcp_oauth_core::jwt_grant::test_signer::TestSigner;

    let s = setup().await;
    let key = TestSigner::new([4; 32], "app-1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client_id = format!("http://{}/client.json", listener.local_addr().unwrap());
    let doc = json!({
        "client_id": client_id, "client_name": "Enterprise agent", "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key.jwk]},
    });
    let router = axum::Router::new().route("/client.json", axum::routing::get(move || async move { axum::Json(doc) }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let h = proxy_with(&s, None, None, "[client_metadata_documents]\nallow_loopback = true\n", &[]).await;

    let mut jag_claims = claims(&s, &h);
    jag_claims["client_id"] = json!(client_id);
    let jag = s.idp.sign_jwt(ID_JAG_TYPE, &jag_claims);
    let now = mcp_oauth_core::Clock::now(&s.clock);
    let assertion = |jti: &str| {
        key.sign(
            "JWT",
            &json!({"iss": client_id, "sub": client_id, "aud": h.url("/oauth/demo"), "jti": jti, "exp": now + 60}),
        )
    };
    let redeem = |client_assertion: String| {
        let form = [
            ("grant_type", JWT_BEARER.to_owned()),
            ("assertion", jag.clone()),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()),
            ("client_assertion", client_assertion),
        ];
        h.http.post(h.url("/oauth/demo/token")).form(&form).send()
    };
    // Without its signature the document's client is not authenticated.
    let form = [("grant_type", JWT_BEARER), ("assertion", &jag), ("client_id", &client_id)];
    let r = h.http.post(h.url("/oauth/demo/token")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = redeem(assertion("c-1")).await.unwrap();
    let status = r.status();
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let upstream = seen(&h, tokens["access_token"].as_str().unwrap(), &[]).await.unwrap();
    let (_, asserted) = verified(&h, upstream["authorization"].as_str().unwrap(), &h.upstream_url).await;
    assert_eq!((asserted["sub"].as_str(), asserted["client_id"].as_str()), (Some("00u-ada"), Some(client_id.as_str())));
}
