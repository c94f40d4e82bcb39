//! The token and revocation endpoints.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Browser, Harness, REDIRECT, VERIFIER};

fn s(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str().unwrap_or_else(|| panic!("no {k} in {v}")).to_owned()
}

#[tokio::test]
async fn code_exchange_issues_bound_tokens_and_no_store() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let code = h.authorize(&mut Browser::new(), &client_id).await;
    let (status, body, headers) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "mcp");
    assert!(s(&body, "access_token").starts_with("mop_at_"));
    assert!(s(&body, "refresh_token").starts_with("mop_rt_"));
    assert!(h.access_token_works(&s(&body, "access_token")).await);
    let info = h
        .app
        .store
        .find_access_token(&mcp_oauth_core::token::TokenHash::of(&s(&body, "access_token")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.server.as_str(), info.subject.as_str()), ("demo", "demo-user"));
    assert_eq!(info.resource, h.url("/mcp/demo"));
}

#[tokio::test]
async fn every_refresh_rotates_and_the_newest_token_keeps_working() {
    let h = Harness::start().await;
    let (client_id, mut tokens) = h.logged_in().await;
    for round in 0..4 {
        h.clock.advance(120);
        let (status, next) = h.refresh(&client_id, &s(&tokens, "refresh_token")).await;
        assert_eq!(status, StatusCode::OK, "refresh {round}: {next}");
        assert_ne!(next["refresh_token"], tokens["refresh_token"]);
        assert!(h.access_token_works(&s(&next, "access_token")).await, "refresh {round} revoked its own result");
        tokens = next;
    }
}

#[tokio::test]
async fn a_superseded_refresh_token_works_within_grace_and_revokes_the_family_after() {
    let h = Harness::start().await;
    let (client_id, first) = h.logged_in().await;
    let old = s(&first, "refresh_token");
    let (_, a) = h.refresh(&client_id, &old).await;
    // An honest race or retry, moments later: the same answer again (the successor the
    // first use produced, with a new access token), never a second branch.
    h.clock.advance(10);
    let (status, b) = h.refresh(&client_id, &old).await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(s(&b, "refresh_token"), s(&a, "refresh_token"), "one successor");
    assert_eq!(b["scope"], a["scope"]);
    assert_ne!(s(&b, "access_token"), s(&a, "access_token"));
    assert!(h.access_token_works(&s(&b, "access_token")).await);
    assert!(h.access_token_works(&s(&a, "access_token")).await);
    // Long after the rotation: someone else holds the old token. Everything goes.
    h.clock.advance(31);
    let (status, err) = h.refresh(&client_id, &old).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["error"], "invalid_grant");
    for pair in [&first, &a, &b] {
        assert!(!h.access_token_works(&s(pair, "access_token")).await);
    }
    let (status, err) = h.refresh(&client_id, &s(&b, "refresh_token")).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_all_succeed_with_one_successor() {
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    let rt = s(&tokens, "refresh_token");
    let results = futures_join(20, || h.refresh(&client_id, &rt)).await;
    let successor = s(&results[0].1, "refresh_token");
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert!(h.access_token_works(&s(body, "access_token")).await);
        assert_eq!(s(body, "refresh_token"), successor, "every racer gets the one successor");
    }
    let (status, next) = h.refresh(&client_id, &successor).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(h.app.upstream.refreshes_in_flight(), 0, "no lock is left behind");
}

async fn futures_join<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let futs: Vec<_> = (0..n).map(|_| f()).collect();
    let mut out = Vec::new();
    // Poll them together on this task.
    let mut pinned: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<T>> = (0..n).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, fut) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.extend(done.into_iter().map(Option::unwrap));
    out
}

#[tokio::test]
async fn a_replayed_code_revokes_what_it_issued() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let code = h.authorize(&mut Browser::new(), &client_id).await;
    let tokens = h.exchange(&client_id, &code).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", client_id.as_str()),
    ];
    let (status, err, _) = h.token(&form).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert!(!h.access_token_works(&s(&tokens, "access_token")).await);
    let (status, _) = h.refresh(&client_id, &s(&tokens, "refresh_token")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn code_checks_wrong_verifier_client_redirect_and_expiry() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let other_client = h.register_public().await;
    let code = h.authorize(&mut Browser::new(), &client_id).await;
    let wrong_verifier = "A".repeat(43);
    for (what, form) in [
        (
            "verifier",
            vec![
                ("code_verifier", wrong_verifier.as_str()),
                ("client_id", client_id.as_str()),
                ("redirect_uri", REDIRECT),
            ],
        ),
        ("no verifier", vec![("client_id", client_id.as_str()), ("redirect_uri", REDIRECT)]),
        ("client", vec![("code_verifier", VERIFIER), ("client_id", other_client.as_str()), ("redirect_uri", REDIRECT)]),
        (
            "redirect",
            vec![
                ("code_verifier", VERIFIER),
                ("client_id", client_id.as_str()),
                ("redirect_uri", "http://127.0.0.1:7777/other"),
            ],
        ),
    ] {
        let mut full = vec![("grant_type", "authorization_code"), ("code", code.as_str())];
        full.extend(form);
        let (status, err, _) = h.token(&full).await;
        assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{what}");
    }
    // None of those burned the code for its rightful owner.
    let tokens = h.exchange(&client_id, &code).await;
    assert!(h.access_token_works(&s(&tokens, "access_token")).await);

    let code = h.authorize(&mut Browser::new(), &client_id).await;
    h.clock.advance(61);
    let (status, err, _) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    let rt = s(&tokens, "refresh_token");

    let (status, err, headers) = h.token(&[("client_id", &client_id)]).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    assert_eq!(headers["cache-control"], "no-store");
    let (_, err, _) = h.token(&[("grant_type", "password"), ("client_id", &client_id)]).await;
    assert_eq!(err["error"], "unsupported_grant_type");
    let (_, err, _) = h.token(&[("grant_type", "refresh_token"), ("client_id", &client_id)]).await;
    assert_eq!(err["error"], "invalid_request");
    let (status, err, _) =
        h.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", "nobody")]).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (_, err, _) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &client_id),
            ("scope", "mcp admin"),
        ])
        .await;
    assert_eq!(err["error"], "invalid_scope");
    // A repeated parameter, sent raw.
    let r = h
        .http
        .post(h.url("/oauth/demo/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=refresh_token&refresh_token={rt}&refresh_token={rt}&client_id={client_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_request");
    // JSON bodies are not OAuth.
    let r = h.http.post(h.url("/oauth/demo/token")).json(&json!({"grant_type": "refresh_token"})).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "invalid_request");
    // GET is not allowed.
    let r = h.http.get(h.url("/oauth/demo/token?grant_type=refresh_token")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // The refresh token still works after all that.
    let (status, _) = h.refresh(&client_id, &rt).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn confidential_clients_authenticate_and_basic_failures_challenge() {
    let h = Harness::start().await;
    let (_, reg) =
        h.register(json!({"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"]})).await;
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    let (id, secret) = (s(&reg, "client_id"), s(&reg, "client_secret"));
    let code = h.authorize(&mut Browser::new(), &id).await;
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("code_verifier", VERIFIER)];
    let bad = h.http.post(h.url("/oauth/demo/token")).basic_auth(&id, Some("wrong")).form(&form).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    assert_eq!(bad.json::<serde_json::Value>().await.unwrap()["error"], "invalid_client");
    let missing = h.http.post(h.url("/oauth/demo/token")).form(&[("client_id", id.as_str())]).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let ok = h.http.post(h.url("/oauth/demo/token")).basic_auth(&id, Some(&secret)).form(&form).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn clients_that_did_not_register_refresh_get_no_refresh_token() {
    let h = Harness::start().await;
    let (_, reg) = h.register(json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})).await;
    let id = s(&reg, "client_id");
    let code = h.authorize(&mut Browser::new(), &id).await;
    let tokens = h.exchange(&id, &code).await;
    assert!(tokens.get("refresh_token").is_none());
    let (_, err) = h.refresh(&id, "mop_rt_anything").await;
    assert_eq!(err["error"], "unauthorized_client");
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_client_and_server() {
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    let other = h.register_public().await;
    let rt = s(&tokens, "refresh_token");
    let (_, err) = h.refresh(&other, &rt).await;
    assert_eq!(err["error"], "invalid_grant");
    let r = h
        .http
        .post(h.url("/oauth/other/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the client is not registered at the other server");
    let (status, _) = h.refresh(&client_id, &rt).await;
    assert_eq!(status, StatusCode::OK, "foreign attempts did not consume it");
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family_and_unknown_tokens_answer_200() {
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    let revoke = |token: String| {
        let h = &h;
        let client_id = client_id.clone();
        async move {
            h.http
                .post(h.url("/oauth/demo/revoke"))
                .form(&[("token", token.as_str()), ("client_id", client_id.as_str())])
                .send()
                .await
                .unwrap()
        }
    };
    let r = revoke("mop_rt_unknown".into()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(revoke(s(&tokens, "refresh_token")).await.status(), StatusCode::OK);
    assert!(!h.access_token_works(&s(&tokens, "access_token")).await);
    let (_, err) = h.refresh(&client_id, &s(&tokens, "refresh_token")).await;
    assert_eq!(err["error"], "invalid_grant");

    let (client_id2, tokens2) = h.logged_in().await;
    let r = h
        .http
        .post(h.url("/oauth/demo/revoke"))
        .form(&[
            ("token", s(&tokens2, "access_token").as_str()),
            ("client_id", &client_id2),
            ("token_type_hint", "access_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!h.access_token_works(&s(&tokens2, "access_token")).await);
    let (status, _) = h.refresh(&client_id2, &s(&tokens2, "refresh_token")).await;
    assert_eq!(status, StatusCode::OK, "revoking an access token leaves the grant");
}

#[tokio::test]
async fn reauthorizing_one_client_instance_leaves_other_grants_alone() {
    let h = Harness::start().await;
    let (client_id, first) = h.logged_in().await;
    let code = h.authorize(&mut Browser::new(), &client_id).await;
    let second = h.exchange(&client_id, &code).await;
    assert!(h.access_token_works(&s(&first, "access_token")).await);
    assert!(h.access_token_works(&s(&second, "access_token")).await);
    assert_eq!(h.refresh(&client_id, &s(&first, "refresh_token")).await.0, StatusCode::OK);
}
