//! The operator's commands on pinned tool definitions, on SQLite and on PostgreSQL.

use mcp_oauth_store::SeenTool;
use serde_json::{Value, json};

use crate::admin::{deployments, stdout};

const NOW: i64 = 1_700_000_000;

/// A sighting of `tool` whose description is `version` (and whose digest names it).
fn seen(tool: &str, version: &str) -> SeenTool {
    SeenTool {
        name: tool.into(),
        digest: format!("digest-{version}"),
        definition: json!({"name": tool, "description": version, "inputSchema": {"type": "object"}}).to_string(),
    }
}

fn stderr(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn list_show_and_accept_a_changed_tool_through_the_binary() {
    for h in deployments().await {
        // What the MCP path records from tools/list answers, recorded here directly.
        let store = mcp_oauth_store::open(&h.storage_url).await.unwrap();
        store.pin_tools("demo", &[seen("echo", "a"), seen("add", "a")], NOW).await.unwrap();
        store.pin_tools("other", &[seen("echo", "a")], NOW).await.unwrap();

        let listed = stdout(&h.cli(&["tools", "list"], &[]).await);
        assert!(listed.contains("SERVER") && listed.contains("PINNED-AT"), "{listed}");
        assert!(listed.contains("2023-11-14 22:13:20Z"), "{listed}");
        assert!(listed.contains("3 tool(s), 0 changed"), "{listed}");
        let refused = stderr(&h.cli(&["tools", "accept", "--server", "demo", "--tool", "echo"], &[]).await);
        assert!(refused.contains("no pending change"), "{refused}");
        let unknown = stderr(&h.cli(&["tools", "accept", "--server", "demo", "--tool", "nope"], &[]).await);
        assert!(unknown.contains("no pinned tool"), "{unknown}");

        // The server changes a tool's description.
        assert_eq!(store.pin_tools("demo", &[seen("echo", "b"), seen("add", "a")], NOW + 60).await.unwrap(), ["echo"]);
        let changed = stdout(&h.cli(&["tools", "list", "--changed"], &[]).await);
        assert!(changed.contains("changed since 2023-11-14 22:14:20Z"), "{changed}");
        assert!(changed.contains("1 tool(s), 1 changed") && !changed.contains("add"), "{changed}");
        let other: Value =
            serde_json::from_str(&stdout(&h.cli(&["tools", "list", "--server", "other", "--json"], &[]).await))
                .unwrap();
        assert_eq!(
            other,
            json!([{"server": "other", "tool": "echo", "digest": "digest-a", "pinned_at": NOW, "changed": null}])
        );

        let shown: Value =
            serde_json::from_str(&stdout(&h.cli(&["tools", "show", "--server", "demo", "--tool", "echo"], &[]).await))
                .unwrap();
        assert_eq!(shown["pinned"]["definition"]["description"], "a", "{shown:#}");
        assert_eq!(shown["changed"]["definition"]["description"], "b", "{shown:#}");
        assert_eq!(shown["changed"]["digest"], "digest-b");
        assert_eq!(shown["differs_in"], json!(["description"]));

        // Only the change the operator looked at is accepted.
        let stale = stderr(
            &h.cli(&["tools", "accept", "--server", "demo", "--tool", "echo", "--digest", "digest-x"], &[]).await,
        );
        assert!(stale.contains("is now digest-b"), "{stale}");
        let accepted = stdout(
            &h.cli(&["tools", "accept", "--server", "demo", "--tool", "echo", "--digest", "digest-b"], &[]).await,
        );
        assert!(accepted.contains("accepted"), "{accepted}");
        let again = stderr(&h.cli(&["tools", "accept", "--server", "demo", "--tool", "echo"], &[]).await);
        assert!(again.contains("no pending change"), "{again}");
        let none: Value =
            serde_json::from_str(&stdout(&h.cli(&["tools", "list", "--changed", "--json"], &[]).await)).unwrap();
        assert_eq!(none, json!([]));
        let shown: Value =
            serde_json::from_str(&stdout(&h.cli(&["tools", "show", "--server", "demo", "--tool", "echo"], &[]).await))
                .unwrap();
        assert_eq!((shown["pinned"]["digest"].as_str(), &shown["changed"]), (Some("digest-b"), &Value::Null));
        assert!(pending_changes(&*store, "demo").await.is_empty());
    }
}

/// The tools of `server` with a pending change, by name.
async fn pending_changes(store: &dyn mcp_oauth_store::Store, server: &str) -> Vec<String> {
    let pins = store.tool_pins(Some(server)).await.unwrap();
    pins.into_iter().filter(|p| p.changed.is_some()).map(|p| p.tool).collect()
}
