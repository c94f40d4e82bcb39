//! The operators' console: operators named in `[admin]` log in through the provider,
//! list and revoke grants, delete clients and read the audit trail; everyone else is
//! refused, and every form needs the session's CSRF token.

use reqwest::StatusCode;

use crate::harness::{Browser, Harness, Start};
use mcp_oauth_devsupport::browser::Page;

async fn console(operators: &str) -> (Harness, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("mop-console-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let audit = dir.join("audit.log");
    let h = Harness::start_with(Start {
        extra_toml: format!("[audit]\npath = \"{}\"\n\n[admin]\n{operators}\n", audit.display()),
        ..Default::default()
    })
    .await;
    (h, audit)
}

/// The console's login through the development provider, as whoever it names now; the
/// callback's answer.
pub(crate) async fn console_login(h: &Harness, browser: &mut Browser) -> Page {
    let start = browser.get(&h.url("/admin")).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "no session: to the login");
    let login = browser.get(&start.location()).await;
    let to_provider = browser.get(&login.location()).await;
    let origin = url::Url::parse(&login.location()).unwrap().origin().ascii_serialization();
    let back = browser.submit(&to_provider, &origin, &[("login", "approve")]).await;
    browser.get(&back.location()).await
}

fn hidden(page: &Page, name: &str) -> Vec<String> {
    page.hidden_fields().into_iter().filter(|(k, _)| k == name).map(|(_, v)| v).collect()
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn events(path: &std::path::Path, event: &str) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let found: Vec<_> =
            crate::audit::read_events(path, 1).await.into_iter().filter(|e| e["event"] == event).collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no {event} in the audit trail")
}

#[tokio::test]
async fn an_operator_revokes_another_user_s_grant_and_sees_the_event() {
    let (h, audit) = console("emails = [\"demo@example.com\"]").await;
    h.idp.set_options(|o| o.subject = "alice".into());
    let (alice_client, alice) = h.logged_in().await;
    let alice_token = alice["access_token"].as_str().unwrap().to_owned();
    h.idp.set_options(|o| o.subject = "demo-user".into());

    let mut browser = Browser::new();
    let done = console_login(&h, &mut browser).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), h.url("/admin"));
    let overview = browser.get(&h.url("/admin")).await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(overview.body.contains("demo"), "the servers are listed");
    let csp = overview.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));

    let grants = browser.get(&h.url("/admin/grants?subject=alice")).await;
    assert!(grants.body.contains(&alice_client), "{}", grants.body);
    let (csrf, grant) = (hidden(&grants, "csrf")[0].clone(), hidden(&grants, "grant")[0].clone());
    let r = browser.post_form(&h.url("/admin/grants/revoke"), &form(&[("csrf", &csrf), ("grant", &grant)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(h.mcp_status(&alice_token).await, StatusCode::UNAUTHORIZED, "revoked at once");

    let revoked = events(&audit, "grant.revoked").await;
    assert_eq!(revoked[0]["by"], "admin");
    assert_eq!(revoked[0]["subject"], "alice");
    assert_eq!(revoked[0]["grant_id"], grant.as_str());
    events(&audit, "admin.login").await;
    let trail = browser.get(&h.url("/admin/audit?event=grant.revoked")).await;
    assert!(trail.body.contains("grant.revoked") && trail.body.contains("alice"), "{}", trail.body);
    assert!(!trail.body.contains("login.completed"), "filtered by event");
}

#[tokio::test]
async fn revoking_by_filter_and_deleting_a_client() {
    let (h, audit) = console("subjects = [\"demo-user\"]").await;
    let (client_id, first) = h.logged_in().await;
    let mut browser = Browser::new();
    console_login(&h, &mut browser).await;
    let grants = browser.get(&h.url(&format!("/admin/grants?client={client_id}"))).await;
    let csrf = hidden(&grants, "csrf")[0].clone();
    let r = browser
        .post_form(&h.url("/admin/grants/revoke"), &form(&[("csrf", &csrf), ("matching", "1"), ("client", &client_id)]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(h.mcp_status(first["access_token"].as_str().unwrap()).await, StatusCode::UNAUTHORIZED);

    let clients = browser.get(&h.url("/admin/clients?q=")).await;
    assert!(clients.body.contains(&client_id));
    let r =
        browser.post_form(&h.url("/admin/clients/delete"), &form(&[("csrf", &csrf), ("client_id", &client_id)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(!browser.get(&h.url("/admin/clients")).await.body.contains(&client_id));
    assert_eq!(events(&audit, "client.deleted").await[0]["by"], "admin");
}

#[tokio::test]
async fn everyone_else_is_refused() {
    let (h, audit) = console("groups = [\"operators\"]").await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let grant = h.app.store.find_access_token(&mcp_oauth_core::token::TokenHash::of(&token)).await.unwrap().unwrap();
    let grant = grant.upstream.family_id.clone();

    // The provider's demo user is in group `staff`, not `operators`.
    let mut browser = Browser::new();
    let refused = console_login(&h, &mut browser).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    events(&audit, "admin.denied").await;
    for path in ["/admin", "/admin/grants", "/admin/clients", "/admin/audit"] {
        let r = browser.get(&h.url(path)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}: no session, nothing shown");
        assert!(!r.body.contains(&grant));
    }
    // Forms without an operator's session, even with an account page session.
    let start = browser.get(&h.url("/account")).await;
    let to_provider = browser.get(&start.location()).await;
    let login_page = browser.get(&to_provider.location()).await;
    let origin = url::Url::parse(&to_provider.location()).unwrap().origin().ascii_serialization();
    let back = browser.submit(&login_page, &origin, &[("login", "approve")]).await;
    browser.get(&back.location()).await;
    let account = browser.get(&h.url("/account")).await;
    let account_csrf = hidden(&account, "csrf")[0].clone();
    for (path, fields) in [
        ("/admin/grants/revoke", form(&[("csrf", &account_csrf), ("grant", &grant)])),
        ("/admin/clients/delete", form(&[("csrf", &account_csrf), ("client_id", "x")])),
    ] {
        let r = browser.post_form(&h.url(path), &fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert!(h.access_token_works(&token).await, "nothing was revoked");
}

#[tokio::test]
async fn forms_need_the_token_and_a_session_not_idle_for_15_minutes() {
    let (h, _) = console("subjects = [\"demo-user\"]").await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    console_login(&h, &mut browser).await;
    let page = browser.get(&h.url("/admin/grants")).await;
    let (csrf, grant) = (hidden(&page, "csrf")[0].clone(), hidden(&page, "grant")[0].clone());
    let r = browser.post_form(&h.url("/admin/grants/revoke"), &form(&[("grant", &grant)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no token");
    let r = browser.post_form(&h.url("/admin/grants/revoke"), &form(&[("csrf", "forged"), ("grant", &grant)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a forged token");

    // Each page extends the session: 14 minutes twice is still a session.
    h.clock.advance(14 * 60);
    assert_eq!(browser.get(&h.url("/admin")).await.status, StatusCode::OK);
    h.clock.advance(14 * 60);
    assert_eq!(browser.get(&h.url("/admin")).await.status, StatusCode::OK);
    // 15 idle minutes: log in again.
    h.clock.advance(15 * 60);
    let r = browser.post_form(&h.url("/admin/grants/revoke"), &form(&[("csrf", &csrf), ("grant", &grant)])).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "idle too long");
    assert_eq!(browser.get(&h.url("/admin")).await.status, StatusCode::SEE_OTHER);
    assert!(h.access_token_works(&token).await);
}

#[tokio::test]
async fn the_servers_page_shows_each_upstream_s_health_and_last_hour() {
    let (h, _) = console("subjects = [\"demo-user\"]").await;
    let (_, tokens) = h.logged_in().await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let mut browser = Browser::new();
    console_login(&h, &mut browser).await;
    assert!(browser.get(&h.url("/admin")).await.body.contains("not sampled yet"));
    h.app.history.sample();
    for _ in 0..3 {
        assert_eq!(h.mcp_status(&token).await, StatusCode::OK);
    }
    h.clock.advance(60);
    h.app.history.sample();
    let page = browser.get(&h.url("/admin")).await;
    assert!(page.body.contains("upstream answering: 3 answers, 0 5xx, 0 401s"), "{}", page.body);
    assert!(page.body.contains("<svg") && page.body.contains("demo, last hour: 3 answers"), "{}", page.body);
}
