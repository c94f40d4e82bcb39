//! Rotating the encryption key: a start without a needed key is refused, `rotate-key`
//! re-seals everything, credentials are re-sealed as they are used, and consent cookies
//! signed with the previous key stay valid.

use std::time::Duration;

use mcp_oauth_core::seal::{KeyRing, decode_key};
use reqwest::StatusCode;

use crate::harness::{Browser, Harness, KEY};

const NEW_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn key_id(key: &str) -> String {
    KeyRing::new(decode_key(key).unwrap(), &[]).current_key_id().to_owned()
}

fn rotated_env(with_previous: bool) -> Vec<(String, String)> {
    let mut env = vec![("MCP_OAUTH_PROXY_ENCRYPTION_KEY".to_owned(), NEW_KEY.to_owned())];
    if with_previous {
        env.push(("MCP_OAUTH_PROXY_ENCRYPTION__PREVIOUS_KEYS".to_owned(), KEY.to_owned()));
    }
    env
}

/// The binary with the harness's configuration and the rotated key.
async fn run_binary(h: &Harness, args: &[&str], with_previous: bool) -> std::process::Output {
    h.cli(args, &rotated_env(with_previous)).await
}

#[tokio::test]
async fn serve_refuses_to_start_without_a_needed_key_and_rotate_key_reseals_everything() {
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;

    let out = run_binary(&h, &["serve"], false).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serve started without the key: {stderr}");
    assert!(stderr.contains(&key_id(KEY)) && stderr.contains("encryption.previous_keys"), "{stderr}");
    assert!(stderr.contains("1 stored credential"), "{stderr}");

    let out = run_binary(&h, &["rotate-key"], true).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 provider credential(s)"), "{stdout}");
    assert!(stdout.contains(&key_id(NEW_KEY)), "{stdout}");

    // The old key can go: a proxy without it serves the same grant.
    let rotated = h.restarted(rotated_env(false)).await;
    assert_eq!(rotated.mcp_status(tokens["access_token"].as_str().unwrap()).await, StatusCode::OK);
    let (status, body) = rotated.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn credentials_are_resealed_as_they_are_used_and_old_consent_stays_valid() {
    let h = Harness::start().await;
    let client_id = h.register_public().await;
    let mut browser = Browser::new();
    let code = h.authorize(&mut browser, &client_id).await;
    let tokens = h.exchange(&client_id, &code).await;
    let rotated = h.restarted(rotated_env(true)).await;
    let usage = rotated.app.store.sealed_key_usage().await.unwrap();
    assert_eq!(usage, vec![(key_id(KEY), 1)]);
    assert_eq!(rotated.mcp_status(tokens["access_token"].as_str().unwrap()).await, StatusCode::OK);
    let mut usage = vec![];
    for _ in 0..50 {
        usage = rotated.app.store.sealed_key_usage().await.unwrap();
        if usage == vec![(key_id(NEW_KEY), 1)] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(usage, vec![(key_id(NEW_KEY), 1)], "re-sealed with the current key on use");
    // The consent this browser gave under the previous key is still remembered.
    let again = browser.get(&rotated.authorize_url(&client_id, &[])).await;
    assert_eq!(again.status, StatusCode::FOUND, "{}", again.body);
}
