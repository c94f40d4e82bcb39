//! What must never leak or be lost: secrets in logs, plaintext upstream tokens at rest,
//! and state across a restart.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;

use crate::harness::Harness;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test process, a global subscriber that records everything at
/// TRACE level. Global rather than scoped: a scoped subscriber misses events from
/// callsites whose interest another thread cached first.
fn capture_logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let sink = captured.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || sink.clone())
                .with_ansi(false)
                .init();
            captured
        })
        .clone()
}

#[tokio::test]
async fn no_token_code_or_secret_appears_in_the_logs() {
    let captured = capture_logs();

    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    let (_, refreshed) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    let (_, _) = h.refresh(&client_id, "mop_rt_not_a_real_token_but_secret_anyway").await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("client registered"), "logs were captured: {logs}");
    let mut secrets: Vec<String> = vec![
        tokens["access_token"].as_str().unwrap().into(),
        tokens["refresh_token"].as_str().unwrap().into(),
        refreshed["access_token"].as_str().unwrap().into(),
        "mop_rt_not_a_real_token_but_secret_anyway".into(),
        "proxy-secret".into(),
        crate::harness::VERIFIER.into(),
        crate::harness::KEY.into(),
    ];
    secrets.extend(h.idp.issued_access_tokens());
    for prefix in ["mop_ac_", "mop_st_", "idp_ac_", "idp_rt_"] {
        assert!(!logs.contains(prefix), "a {prefix} value was logged");
    }
    for s in secrets {
        assert!(!logs.contains(&s), "secret {}… was logged", &s[..8.min(s.len())]);
    }
}

#[tokio::test]
async fn upstream_tokens_are_encrypted_at_rest() {
    let h = Harness::start().await;
    h.logged_in().await;
    let upstream = h.idp.issued_access_tokens();
    assert_eq!(upstream.len(), 1);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&h.db_dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let haystack = String::from_utf8_lossy(&bytes);
    assert!(!haystack.contains(&upstream[0]), "upstream access token stored in plaintext");
    assert!(!haystack.contains("idp_rt_"), "upstream refresh token stored in plaintext");
}

#[tokio::test]
async fn registrations_and_grants_survive_a_restart() {
    let first = Harness::start().await;
    let (client_id, tokens) = first.logged_in().await;
    let second = first.restarted(vec![]).await;
    let (status, body) = second.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page = crate::harness::Browser::new().get(&second.authorize_url(&client_id, &[])).await;
    assert_eq!(page.status, StatusCode::OK, "the client is still registered");
}
