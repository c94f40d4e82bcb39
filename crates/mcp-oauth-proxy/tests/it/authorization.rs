//! The authorization endpoint, the consent page and the upstream callback.

use std::collections::HashMap;

use mcp_oauth_devsupport::idp::Fault;
use reqwest::StatusCode;

use crate::harness::{Browser, Harness, REDIRECT};

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

#[tokio::test]
async fn unknown_client_or_unregistered_redirect_gets_a_page_never_a_redirect() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let page = b.get(&h.authorize_url("no-such-client", &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.headers.get("location").is_none());
    let evil = h.authorize_url(&client_id, &[]).replace("127.0.0.1%3A7777%2Fcallback", "evil.example%2Fcb");
    let page = b.get(&evil).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{evil}");
    assert!(page.headers.get("location").is_none());
    assert_eq!(page.headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn loopback_redirects_match_on_any_port() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let url = h.authorize_url(&client_id, &[]).replace("7777", "51234");
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

/// Errors in a request redirect to the client only once this browser approved it (or it
/// is trusted): before that, a page, so the proxy is no open redirector.
#[tokio::test]
async fn pkce_is_required_and_must_be_s256() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let no_pkce = h
        .authorize_url(&client_id, &[])
        .split('&')
        .filter(|p| !p.starts_with("code_challenge"))
        .collect::<Vec<_>>()
        .join("&");
    let plain = h.authorize_url(&client_id, &[]).replace("code_challenge_method=S256", "code_challenge_method=plain");
    for url in [&no_pkce, &plain] {
        let page = b.get(url).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(page.headers.get("location").is_none());
        assert!(page.body.contains("code_challenge"), "{}", page.body);
    }
    h.authorize(&mut b, &client_id).await;
    for url in [&no_pkce, &plain] {
        let page = b.get(url).await;
        assert_eq!(page.status, StatusCode::FOUND);
        let q = query(&page.location());
        assert!(page.location().starts_with(REDIRECT));
        assert_eq!(q["error"], "invalid_request");
        assert_eq!(q["state"], "client-state");
        assert_eq!(q["iss"], h.url("/oauth/demo"));
    }
}

#[tokio::test]
async fn resource_must_be_this_server() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let other = h.url("/mcp/other");
    let page = b.get(&h.authorize_url(&client_id, &[("resource", &other)])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("only for"), "{}", page.body);
    let ours = h.url("/mcp/demo");
    let page = b.get(&h.authorize_url(&client_id, &[("resource", &ours)])).await;
    assert_eq!(page.status, StatusCode::OK);
    h.authorize(&mut b, &client_id).await;
    let page = b.get(&h.authorize_url(&client_id, &[("resource", &other)])).await;
    assert_eq!(query(&page.location())["error"], "invalid_target");
}

/// A malformed request for a client that names an attacker's redirect URI must not send
/// the browser there (open redirect, RFC 9700 §4.11.2), even through a forged consent
/// POST; a trusted client does get its errors redirected.
#[tokio::test]
async fn open_redirect_through_a_malformed_request_is_refused() {
    let h = Harness::start_with(crate::harness::Start {
        extra_toml: format!(
            "[[clients]]\nclient_id = \"ops-tool\"\nredirect_uris = [\"{REDIRECT}\"]\ntrusted = true\n"
        ),
        ..Default::default()
    })
    .await;
    let (status, body) = h
        .register(
            serde_json::json!({"redirect_uris": ["https://evil.example/land"], "token_endpoint_auth_method": "none"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let evil_client = body["client_id"].as_str().unwrap();
    let mut b = Browser::new();
    let url = format!(
        "{}?client_id={evil_client}&redirect_uri=https%3A%2F%2Fevil.example%2Fland&state=x",
        h.url("/oauth/demo/authorize")
    );
    let page = b.get(&url).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.headers.get("location").is_none(), "no redirect to the attacker");
    assert_eq!(page.headers["x-frame-options"], "DENY");
    let fields = vec![
        ("client_id".to_owned(), evil_client.to_owned()),
        ("redirect_uri".to_owned(), "https://evil.example/land".to_owned()),
        ("decision".to_owned(), "approve".to_owned()),
        ("csrf_token".to_owned(), "forged".to_owned()),
    ];
    let page = b.post_form(&h.url("/oauth/demo/authorize"), &fields).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.headers.get("location").is_none(), "no redirect after a forged consent post");

    let trusted = format!("{}?client_id=ops-tool&redirect_uri={}&state=x", h.url("/oauth/demo/authorize"), REDIRECT);
    let page = b.get(&trusted).await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(query(&page.location())["error"], "invalid_request");
}

#[tokio::test]
async fn an_overlong_state_gets_a_page() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let long = "s".repeat(4097);
    let page = Browser::new().get(&h.authorize_url(&client_id, &[("state", &long)])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("state"), "{}", page.body);
    let ok = "s".repeat(4096);
    assert_eq!(Browser::new().get(&h.authorize_url(&client_id, &[("state", &ok)])).await.status, StatusCode::OK);
}

#[tokio::test]
async fn consent_page_names_the_client_escapes_input_and_blocks_framing() {
    let h = Harness::start().await;
    let (_, body) = h
        .register(serde_json::json!({
            "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
            "client_name": "<script>alert('x')</script>",
        }))
        .await;
    let client_id = body["client_id"].as_str().unwrap();
    let page = Browser::new().get(&h.authorize_url(client_id, &[("state", "\"><img src=x>")])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert!(!page.body.contains("<img src=x>"));
    assert!(page.body.contains("&lt;script&gt;"));
    assert!(page.body.contains("127.0.0.1:7777"), "shows the redirect host");
    assert!(page.body.contains("dev"), "names the provider");
    assert!(page.body.contains("<form method=\"post\""));
    assert!(page.body.contains("name=\"decision\" value=\"approve\""));
    assert!(page.body.contains("name=\"decision\" value=\"deny\""));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(page.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn a_second_view_of_the_consent_page_keeps_the_first_form_valid() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let url = h.authorize_url(&client_id, &[]);
    let first = b.get(&url).await;
    let second = b.get(&url).await;
    assert_eq!(second.status, StatusCode::OK);
    let approved = b.submit(&first, "", &[("decision", "approve")]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert!(approved.location().starts_with(&h.idp_issuer()));
}

#[tokio::test]
async fn consent_posts_without_a_valid_csrf_token_do_nothing() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut victim = Browser::new();
    let page = victim.get(&h.authorize_url(&client_id, &[])).await;
    // An attacker's own form token, replayed into the victim's browser.
    let mut attacker = Browser::new();
    let attackers_page = attacker.get(&h.authorize_url(&client_id, &[])).await;
    let forged = victim.submit(&attackers_page, "", &[("decision", "approve")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.headers.get("location").is_none());
    let mut fields: Vec<(String, String)> =
        page.hidden_fields().into_iter().filter(|(k, _)| k != "csrf_token").collect();
    fields.push(("decision".into(), "approve".into()));
    let missing = victim.post_form(&page.form_action(), &fields).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(h.idp.authorize_requests().is_empty(), "nobody reached the upstream provider");
}

#[tokio::test]
async fn deny_returns_access_denied_to_the_client() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let page = b.get(&h.authorize_url(&client_id, &[])).await;
    let denied = b.submit(&page, "", &[("decision", "deny")]).await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER);
    let q = query(&denied.location());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "client-state");
    assert_eq!(q["iss"], h.url("/oauth/demo"));
}

#[tokio::test]
async fn approval_is_remembered_per_client_in_this_browser() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    h.authorize(&mut b, &client_id).await;
    let again = b.get(&h.authorize_url(&client_id, &[])).await;
    assert_eq!(again.status, StatusCode::FOUND, "no second consent page");
    assert!(again.location().starts_with(&h.idp_issuer()));
    let other_client = h.register_public().await;
    assert_eq!(b.get(&h.authorize_url(&other_client, &[])).await.status, StatusCode::OK);
    assert_eq!(Browser::new().get(&h.authorize_url(&client_id, &[])).await.status, StatusCode::OK);
    // Remembered for tokens.consent_ttl_secs (30 days by default), then asked again.
    h.clock.advance(30 * 24 * 3600 - 1);
    assert_eq!(b.get(&h.authorize_url(&client_id, &[])).await.status, StatusCode::FOUND);
    h.clock.advance(1);
    assert_eq!(b.get(&h.authorize_url(&client_id, &[])).await.status, StatusCode::OK, "the approval expired");
}

#[tokio::test]
async fn trusted_preregistered_clients_skip_consent() {
    let h = crate::harness::Harness::start_with(crate::harness::Start {
        extra_toml: format!(
            "[[clients]]\nclient_id = \"ops-tool\"\nredirect_uris = [\"{REDIRECT}\"]\ntrusted = true\n"
        ),
        ..Default::default()
    })
    .await;
    let page = Browser::new().get(&h.authorize_url("ops-tool", &[])).await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert!(page.location().starts_with(&h.idp_issuer()));
}

#[tokio::test]
async fn upstream_request_uses_our_own_state_and_pkce_and_no_resource() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    h.authorize(&mut b, &client_id).await;
    let upstream = &h.idp.authorize_requests()[0];
    assert_ne!(upstream["state"], "client-state");
    assert!(upstream["state"].starts_with("mop_st_"));
    assert_eq!(upstream["code_challenge_method"], "S256");
    assert_ne!(upstream["code_challenge"], mcp_oauth_core::pkce::s256_challenge(crate::harness::VERIFIER));
    assert_eq!(upstream["redirect_uri"], h.url("/oauth/callback"));
    assert!(!upstream.contains_key("resource"));
    assert!(upstream.contains_key("nonce"));
}

#[tokio::test]
async fn callback_refuses_forged_reused_or_foreign_state() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let page = b.get(&h.authorize_url(&client_id, &[])).await;
    let upstream = b.submit(&page, "", &[("decision", "approve")]).await.location();
    let login = b.get(&upstream).await;
    let origin = url::Url::parse(&upstream).unwrap().origin().ascii_serialization();
    let callback = b.submit(&login, &origin, &[("login", "approve")]).await.location();

    let forged = b.get(&h.url("/oauth/callback?code=x&state=mop_st_forged")).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.headers.get("location").is_none());
    // Another browser (no binding cookie) cannot complete this login, and does not
    // spoil it for the right one.
    let stranger = Browser::new().get(&callback).await;
    assert_eq!(stranger.status, StatusCode::BAD_REQUEST);
    let done = b.get(&callback).await;
    assert_eq!(done.status, StatusCode::FOUND);
    assert!(query(&done.location()).contains_key("code"));
    let replay = b.get(&callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST, "state is single use");
}

#[tokio::test]
async fn upstream_denial_and_failures_reach_the_client_as_oauth_errors() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    let back = b.login(&h.authorize_url(&client_id, &[]), false).await;
    let q = query(&back);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "client-state");
    assert_eq!(q["iss"], h.url("/oauth/demo"));

    h.idp.inject_fault(Fault::Unavailable);
    let back = b.login(&h.authorize_url(&client_id, &[]), true).await;
    assert_eq!(query(&back)["error"], "temporarily_unavailable");

    h.idp.inject_fault(Fault::InvalidGrant);
    let back = b.login(&h.authorize_url(&client_id, &[]), true).await;
    assert_eq!(query(&back)["error"], "access_denied");
}

#[tokio::test]
async fn an_id_token_with_a_forged_signature_is_refused() {
    let h = Harness::start_with(crate::harness::Start {
        idp_options: Some(mcp_oauth_devsupport::idp::IdpOptions {
            sign_with_unpublished_key: true,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let client_id = h.register_public().await;
    let back = Browser::new().login(&h.authorize_url(&client_id, &[]), true).await;
    let q = query(&back);
    assert_eq!(q["error"], "server_error", "{back}");
    assert!(!q.contains_key("code"));
    assert_eq!(h.idp.code_exchanges(), 1, "the code was exchanged, and then the id_token refused");
}

/// RFC 9207: the callback is shared by every provider; a response naming another issuer
/// than the one the login went to (a mix-up attack) issues no code.
#[tokio::test]
async fn a_login_response_naming_another_issuer_is_refused() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let forged = [("login", "approve"), ("forged_iss", "https://evil.example")];
    let done = Browser::new().through_callback(&h.authorize_url(&client_id, &[]), &forged).await;
    assert_eq!(done.status, StatusCode::FOUND);
    let q = query(&done.location());
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"), "{}", done.location());
    assert!(!q.contains_key("code"));
}
