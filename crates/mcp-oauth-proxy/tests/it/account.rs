//! The account page: a user logs in at the provider, sees the applications holding access
//! to their account (and no one else's), and revokes them; forms without the session's
//! CSRF token, or from another site, are refused.

use reqwest::StatusCode;

use crate::harness::{Browser, Harness};

/// Logs `browser` in to the account page through the development provider (as whoever
/// the provider's options name now); returns the page.
pub(crate) async fn account_login(h: &Harness, browser: &mut Browser) -> mcp_oauth_devsupport::browser::Page {
    let start = browser.get(&h.url("/account")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "one provider: straight to its login");
    let to_provider = browser.get(&start.location()).await;
    assert_eq!(to_provider.status, StatusCode::FOUND, "{}", to_provider.body);
    let login_page = browser.get(&to_provider.location()).await;
    assert_eq!(login_page.status, StatusCode::OK, "{}", login_page.body);
    let origin = url::Url::parse(&to_provider.location()).unwrap().origin().ascii_serialization();
    let back = browser.submit(&login_page, &origin, &[("login", "approve")]).await;
    let done = browser.get(&back.location()).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), h.url("/account"));
    let page = browser.get(&h.url("/account")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page
}

pub(crate) fn field(page: &mcp_oauth_devsupport::browser::Page, name: &str) -> Vec<String> {
    page.hidden_fields().into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect()
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn a_user_sees_only_their_connections_and_revokes_one() {
    let h = Harness::start().await;
    let (mine, my_tokens) = h.logged_in().await;
    let my_token = my_tokens["access_token"].as_str().unwrap().to_owned();
    h.idp.set_options(|o| o.subject = "someone-else".into());
    let (theirs, their_tokens) = h.logged_in().await;
    let their_token = their_tokens["access_token"].as_str().unwrap().to_owned();
    h.idp.set_options(|o| o.subject = "demo-user".into());

    let mut browser = Browser::new();
    let page = account_login(&h, &mut browser).await;
    assert!(page.body.contains(&mine), "my client is listed: {}", page.body);
    assert!(!page.body.contains(&theirs), "another user's client is not");
    assert!(page.body.contains("demo-user"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let grants = field(&page, "grant");
    assert_eq!(grants.len(), 1, "{grants:?}");
    let csrf = field(&page, "csrf")[0].clone();

    // Another user's grant id in my session revokes nothing.
    let their_grant = h.app.store.find_access_token(&mcp_oauth_core::token::TokenHash::of(&their_token)).await;
    let their_grant = their_grant.unwrap().unwrap().upstream.family_id.clone();
    let r = browser.post_form(&h.url("/account/revoke"), &form(&[("csrf", &csrf), ("grant", &their_grant)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(h.access_token_works(&their_token).await, "another user's grant stands");

    let r = browser.post_form(&h.url("/account/revoke"), &form(&[("csrf", &csrf), ("grant", &grants[0])])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(h.mcp_status(&my_token).await, StatusCode::UNAUTHORIZED, "a revoked connection's token is refused");
    assert!(h.access_token_works(&their_token).await);
    let after = browser.get(&h.url("/account")).await;
    assert!(!after.body.contains(&mine), "the revoked connection is gone from the page");
}

#[tokio::test]
async fn revoke_all_ends_every_connection_of_the_user() {
    let h = Harness::start().await;
    let (_, first) = h.logged_in().await;
    let (_, second) = h.logged_in().await;
    let mut browser = Browser::new();
    let page = account_login(&h, &mut browser).await;
    assert_eq!(field(&page, "grant").len(), 2);
    let csrf = field(&page, "csrf")[0].clone();
    let r = browser.post_form(&h.url("/account/revoke"), &form(&[("csrf", &csrf), ("all", "1")])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    for tokens in [first, second] {
        assert_eq!(h.mcp_status(tokens["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn forms_without_the_session_s_token_or_session_are_refused() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    let page = account_login(&h, &mut browser).await;
    let grant = field(&page, "grant")[0].clone();
    let csrf = field(&page, "csrf")[0].clone();

    // No token, a wrong one, and another session's.
    let mut other = Browser::new();
    let other_page = account_login(&h, &mut other).await;
    let other_csrf = field(&other_page, "csrf")[0].clone();
    for fields in [
        vec![("grant", grant.as_str())],
        vec![("csrf", "forged"), ("grant", &grant)],
        vec![("csrf", &other_csrf), ("grant", &grant)],
    ] {
        let r = browser.post_form(&h.url("/account/revoke"), &form(&fields)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{fields:?}: {}", r.body);
    }
    // A cross-site form arrives without the SameSite=Lax session cookie.
    let r = Browser::new().post_form(&h.url("/account/revoke"), &form(&[("csrf", &csrf), ("grant", &grant)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(h.access_token_works(&token).await, "nothing was revoked");

    // The session ends after an hour: the page asks to log in again, forms are refused.
    h.clock.advance(3601);
    assert_eq!(browser.get(&h.url("/account")).await.status, StatusCode::SEE_OTHER);
    let r = browser.post_form(&h.url("/account/revoke"), &form(&[("csrf", &csrf), ("grant", &grant)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_account_login_with_a_state_of_its_own_is_not_taken_for_an_authorization() {
    let h = Harness::start().await;
    let mut browser = Browser::new();
    let start = browser.get(&h.url("/account")).await;
    let to_provider = browser.get(&start.location()).await;
    let state = url::Url::parse(&to_provider.location())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    // The provider's answer with another state: neither the account's login nor any
    // pending authorization.
    let wrong = browser.get(&h.url(&format!("/oauth/callback?code=x&state={state}x"))).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "{}", wrong.body);
    assert!(!browser.cookies.iter().any(|(k, v)| k == "mop_account" && !v.is_empty()));
}

#[tokio::test]
async fn the_login_and_each_revocation_are_audited_as_the_user_s() {
    let dir = std::env::temp_dir().join(format!("mop-account-audit-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("audit.log");
    let h = Harness::start_with(crate::harness::Start {
        extra_toml: format!("[audit]\npath = \"{}\"\n", path.display()),
        ..Default::default()
    })
    .await;
    let (client_id, _) = h.logged_in().await;
    let mut browser = Browser::new();
    let page = account_login(&h, &mut browser).await;
    let (grant, csrf) = (field(&page, "grant")[0].clone(), field(&page, "csrf")[0].clone());
    browser.post_form(&h.url("/account/revoke"), &form(&[("csrf", &csrf), ("grant", &grant)])).await;
    let mut events = Vec::new();
    for _ in 0..100 {
        events = crate::audit::read_events(&path, 1).await;
        if events.iter().any(|e| e["event"] == "grant.revoked") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let login = events.iter().find(|e| e["event"] == "account.login").expect("account.login");
    assert_eq!(login["subject"], "demo-user");
    let revoked = events.iter().find(|e| e["event"] == "grant.revoked").expect("grant.revoked");
    assert_eq!(revoked["by"], "user");
    assert_eq!(revoked["grant_id"], grant.as_str());
    assert_eq!(revoked["client_id"], client_id.as_str());
    assert_eq!(revoked["subject"], "demo-user");
}

/// Revoked from either page on one replica, a token is refused by the other within two
/// seconds (PostgreSQL; skipped without it unless CI requires it).
#[tokio::test]
async fn a_revocation_from_either_page_reaches_the_other_replica() {
    let Some((a, b)) = crate::replicas::two_replicas_with("[admin]\nsubjects = [\"demo-user\"]\n").await else {
        return;
    };
    let (_, from_account) = a.logged_in().await;
    let (_, from_console) = a.logged_in().await;
    let refused_by_b = |token: String| {
        let b = &b;
        async move {
            let started = std::time::Instant::now();
            while started.elapsed() < std::time::Duration::from_secs(2) {
                if b.mcp_status(&token).await == StatusCode::UNAUTHORIZED {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        }
    };
    let (first, second) = (
        from_account["access_token"].as_str().unwrap().to_owned(),
        from_console["access_token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(b.mcp_status(&first).await, StatusCode::OK);

    let mut browser = Browser::new();
    let page = account_login(&a, &mut browser).await;
    let grant = a.app.store.find_access_token(&mcp_oauth_core::token::TokenHash::of(&first)).await.unwrap().unwrap();
    let csrf = field(&page, "csrf")[0].clone();
    let fields = form(&[("csrf", &csrf), ("grant", &grant.upstream.family_id)]);
    assert_eq!(browser.post_form(&a.url("/account/revoke"), &fields).await.status, StatusCode::SEE_OTHER);
    assert!(refused_by_b(first).await, "the account page's revocation reached the other replica");
    assert_eq!(b.mcp_status(&second).await, StatusCode::OK, "the other connection stands");

    // The console: an operator revokes the other connection.
    let mut console = Browser::new();
    let done = crate::admin_console::console_login(&a, &mut console).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let grant = a.app.store.find_access_token(&mcp_oauth_core::token::TokenHash::of(&second)).await.unwrap().unwrap();
    let page = console.get(&a.url("/admin/grants")).await;
    let csrf = field(&page, "csrf")[0].clone();
    let fields = form(&[("csrf", &csrf), ("grant", &grant.upstream.family_id)]);
    assert_eq!(console.post_form(&a.url("/admin/grants/revoke"), &fields).await.status, StatusCode::SEE_OTHER);
    assert!(refused_by_b(second).await, "the console's revocation reached the other replica");
}

#[tokio::test]
async fn the_page_shows_when_a_connection_was_last_used_to_a_few_minutes() {
    let h = Harness::start().await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let grant = h.app.store.find_access_token(&mcp_oauth_core::token::TokenHash::of(&token)).await.unwrap().unwrap();
    let last_used = || async {
        h.app.last_uses.flush(h.app.store.as_ref()).await;
        let filter =
            mcp_oauth_store::GrantFilter { grant_id: Some(grant.upstream.family_id.clone()), ..Default::default() };
        h.app.store.list_grants(&filter, 1).await.unwrap()[0].last_used_at
    };
    let t0 = mcp_oauth_core::Clock::now(&h.clock);
    assert_eq!(h.mcp_status(&token).await, StatusCode::OK);
    assert_eq!(last_used().await, Some(t0), "the first call is noted");
    h.clock.advance(60);
    assert_eq!(h.mcp_status(&token).await, StatusCode::OK);
    assert_eq!(last_used().await, Some(t0), "a call a minute later is not: the note is coarse");
    h.clock.advance(300);
    assert_eq!(h.mcp_status(&token).await, StatusCode::OK);
    assert_eq!(last_used().await, Some(t0 + 360), "five minutes after the last note, it is noted again");

    let mut browser = Browser::new();
    let page = account_login(&h, &mut browser).await;
    assert!(page.body.contains("Last used"), "{}", page.body);
    assert!(page.body.contains(&mcp_oauth_core::clock::utc(t0 + 360)), "{}", page.body);
}
