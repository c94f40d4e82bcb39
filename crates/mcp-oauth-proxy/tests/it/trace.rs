//! Explaining a failed login: the attempt's trace id on every error it produced, and
//! `mcp-oauth-proxy trace ID` printing its steps from the audit trail.

use reqwest::StatusCode;

use crate::harness::{Browser, Harness, REDIRECT, Start};

/// The trace id quoted in `text` ("… (trace id X)").
fn quoted_trace(text: &str) -> String {
    let at = text.find("trace id ").unwrap_or_else(|| panic!("no trace id in {text}")) + "trace id ".len();
    text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}

fn audited(extra: &str) -> Start {
    let dir = std::env::temp_dir().join(format!("mop-trace-{}", mcp_oauth_core::token::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    Start {
        extra_toml: format!("[audit]\npath = \"{}\"\n{extra}", dir.join("audit.log").display()),
        db_dir: Some(dir),
        env: vec![("MCP_OAUTH_PROXY_SERVERS__0__ACCESS__GROUPS".into(), "admins".into())],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_refused_login_shows_its_trace_id_and_trace_prints_its_steps() {
    let h = Harness::start_with(audited("")).await;
    let client_id = h.register_public().await;
    let authorize = h.authorize_url(&client_id, &[]);
    let consent = Browser::new().get(&authorize).await;
    let page = Browser::new().through_callback(&authorize, &[("login", "approve")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let id = quoted_trace(&page.body);
    assert!(!consent.body.contains(&id), "another attempt, another id");
    assert!(consent.body.contains("name=\"trace_id\""), "the consent form carries its attempt's id");

    let audit = vec![("MCP_OAUTH_PROXY_AUDIT__PATH".to_owned(), h.db_dir.join("audit.log").display().to_string())];
    // The trail is written by a thread of its own: wait until the attempt's end is in it.
    let trail = h.db_dir.join("audit.log");
    for _ in 0..200 {
        if std::fs::read_to_string(&trail).unwrap_or_default().contains("login.denied") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let out = h.cli(&["trace", &id], &audit).await;
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("consent.approved") && printed.contains("login.denied"), "{printed}");
    assert!(printed.find("consent.approved") < printed.find("login.denied"), "in order: {printed}");
    assert!(printed.contains("subject=demo-user") && printed.contains("not allowed"), "{printed}");
    let unknown = h.cli(&["trace", "nosuchtrace1"], &audit).await;
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn error_redirects_and_the_code_exchange_quote_the_attempt() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    // Denied at the consent page: the error redirect's description names the attempt.
    let consent = b.get(&h.authorize_url(&client_id, &[])).await;
    let denied = b.submit(&consent, "", &[("decision", "deny")]).await;
    let location = denied.location();
    let q: std::collections::HashMap<String, String> =
        url::Url::parse(&location).unwrap().query_pairs().into_owned().collect();
    assert_eq!(q["error"], "access_denied");
    let first = quoted_trace(&q["error_description"]);
    // A completed login whose code is exchanged with the wrong verifier: the JSON error
    // names that attempt's id.
    let code = h.authorize(&mut b, &client_id).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id.as_str()),
        ("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier-1234"),
    ];
    let (status, body, _) = h.token(&form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let second = quoted_trace(body["error_description"].as_str().unwrap());
    assert_ne!(first, second, "each attempt has its own id");
}
