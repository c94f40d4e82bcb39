//! Moving from SQLite to PostgreSQL without logging anyone out.

use reqwest::StatusCode;

use crate::harness::{Harness, Start};
use crate::replicas::postgres_url;

#[tokio::test]
async fn tokens_issued_on_sqlite_keep_working_on_postgresql() {
    let Some(target) = postgres_url().await else { return };
    let h = Harness::start().await;
    let (client_id, tokens) = h.logged_in().await;
    let (_, refreshed) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    // A pinned tool with a pending change: both move, or the change would be pinned unseen.
    let tool = |digest: &str| mcp_oauth_store::SeenTool {
        name: "echo".into(),
        digest: digest.into(),
        definition: format!(r#"{{"name":"echo","description":"{digest}"}}"#),
    };
    let sqlite = mcp_oauth_store::open(&h.storage_url).await.unwrap();
    sqlite.pin_tools("demo", &[tool("a")], 1).await.unwrap();
    assert_eq!(sqlite.pin_tools("demo", &[tool("b")], 2).await.unwrap(), ["echo"]);

    let out = h.cli(&["migrate-storage", "--to", &target], &[]).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("1 client(s), 1 grant(s)") && said.contains("the counts match"), "{said}");
    assert!(said.contains("1 pinned tool(s)"), "{said}");
    assert!(said.contains("[storage]"), "{said}");
    let again = h.cli(&["migrate-storage", "--to", &target], &[]).await;
    assert!(!again.status.success(), "a database that is not empty is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let moved = Harness::start_with(Start {
        storage_url: Some(target),
        clock: Some(h.clock.clone()),
        idp: Some((h.idp.clone(), h.idp_issuer())),
        upstream_url: Some(h.upstream_url.clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(moved.mcp_status(refreshed["access_token"].as_str().unwrap()).await, StatusCode::OK);
    let pins = moved.app.store.tool_pins(None).await.unwrap();
    assert_eq!(pins, sqlite.tool_pins(None).await.unwrap());
    assert_eq!(pins[0].changed.as_ref().map(|c| c.digest.as_str()), Some("b"));
    let (status, body) = moved.refresh(&client_id, refreshed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The superseded token is still known for what it is: reuse after the grace window.
    moved.clock.advance(60);
    let (status, _) = moved.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
