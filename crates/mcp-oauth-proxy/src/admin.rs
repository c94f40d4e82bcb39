//! The operator's commands on the configured storage: registered clients, grants, and
//! pinned tool definitions.
//! They work while the proxy serves: a revocation is one conditional statement, and
//! serving processes learn of it within two seconds (a PostgreSQL replica at once; a
//! SQLite proxy, which caches lookups, when it next checks for outside changes).

use crate::BoxError;
use std::fmt::Write;

use mcp_oauth_core::clock::{Clock, SystemClock};
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_http::Brokers;
use mcp_oauth_http::settings::Settings;
use mcp_oauth_store::{GrantFilter, GrantSummary, Store, ToolPin};
use serde_json::json;

/// At most this many grants are listed.
const LIST_LIMIT: i64 = 10_000;

pub async fn list_clients(store: &dyn Store, as_json: bool) -> Result<String, BoxError> {
    let clients = store.list_clients().await?;
    if as_json {
        let rows: Vec<_> = clients
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client.client_id,
                    "server": c.server,
                    "client_name": c.client.metadata.client_name,
                    "created_at": c.client.created_at,
                    "confidential": c.client.secret_hash.is_some(),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    let mut out = format!("{:<44} {:<14} {:<12} {}\n", "CLIENT", "SERVER", "CREATED", "NAME");
    for c in &clients {
        let name = c.client.metadata.client_name.as_deref().unwrap_or("-");
        writeln!(out, "{:<44} {:<14} {:<12} {name}", c.client.client_id, c.server, c.client.created_at)?;
    }
    writeln!(out, "{} client(s)", clients.len())?;
    Ok(out)
}

pub async fn show_client(store: &dyn Store, client_id: &str) -> Result<String, BoxError> {
    let found: Vec<_> = store.list_clients().await?.into_iter().filter(|c| c.client.client_id == client_id).collect();
    let Some(c) = found.first() else {
        return Err(format!("no registered client {client_id:?}").into());
    };
    let grants =
        store.list_grants(&GrantFilter { client_id: Some(client_id.into()), ..Default::default() }, LIST_LIMIT).await?;
    let mut metadata = serde_json::to_value(&c.client.metadata)?;
    metadata["client_id"] = c.client.client_id.clone().into();
    metadata["server"] = c.server.clone().into();
    metadata["created_at"] = c.client.created_at.into();
    metadata["confidential"] = c.client.secret_hash.is_some().into();
    metadata["grants"] = grants.len().into();
    Ok(serde_json::to_string_pretty(&metadata)?)
}

pub async fn delete_client(store: &dyn Store, client_id: &str) -> Result<String, BoxError> {
    match store.delete_client(client_id, SystemClock.now()).await? {
        0 => Err(format!("no registered client {client_id:?}").into()),
        _ => Ok(format!("deleted client {client_id} and ended its grants")),
    }
}

pub async fn list_grants(store: &dyn Store, filter: &GrantFilter, as_json: bool) -> Result<String, BoxError> {
    let grants = store.list_grants(filter, LIST_LIMIT).await?;
    if as_json {
        let rows: Vec<_> = grants.iter().map(grant_json).collect();
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    let mut out = format!(
        "{:<34} {:<24} {:<44} {:<12} {:<12} {:<12} {:<12} {}\n",
        "GRANT", "SUBJECT", "CLIENT", "SERVER", "CREATED", "LAST ISSUED", "UPSTREAM EXP", "STATUS"
    );
    let or_dash = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    for g in &grants {
        writeln!(
            out,
            "{:<34} {:<24} {:<44} {:<12} {:<12} {:<12} {:<12} {}",
            g.id,
            g.subject,
            g.client_id,
            g.server,
            g.created_at,
            or_dash(g.last_issued_at),
            or_dash(g.upstream_expires_at),
            g.status.as_str()
        )?;
    }
    writeln!(out, "{} grant(s)", grants.len())?;
    Ok(out)
}

fn grant_json(g: &GrantSummary) -> serde_json::Value {
    json!({
        "grant_id": g.id,
        "subject": g.subject,
        "client_id": g.client_id,
        "slug": g.server,
        "created_at": g.created_at,
        "last_issued_at": g.last_issued_at,
        "upstream_expires_at": g.upstream_expires_at,
        "status": g.status.as_str(),
    })
}

/// Ends the grants `filter` names; those of brokered servers (`upstream_auth = "oauth"`)
/// have their upstream tokens revoked at the upstream's authorization server too (RFC 7009),
/// where it offers revocation, through `brokers`.
pub async fn revoke_grants(
    store: &dyn Store,
    filter: &GrantFilter,
    settings: &Settings,
    brokers: &Brokers,
) -> Result<String, BoxError> {
    if filter == &GrantFilter::default() {
        return Err("name the grants to revoke: --subject, --client or --grant".into());
    }
    // The brokered grants among those about to end, read first: their credentials stay
    // readable after (an ended grant keeps its row until the purge).
    let brokered: Vec<GrantSummary> = store
        .list_grants(filter, 100_000)
        .await?
        .into_iter()
        .filter(|g| g.status == FamilyStatus::Active)
        .filter(|g| settings.server(&g.server).is_some_and(|s| s.upstream_auth.brokered().is_some()))
        .collect();
    let n = store.revoke_grants(filter, SystemClock.now()).await?;
    let mut out = format!("revoked {n} active grant(s); running proxies refuse their tokens within two seconds");
    if !brokered.is_empty() {
        let (mut reached, mut failed) = (0, 0);
        for g in &brokered {
            let Some(server) = settings.server(&g.server) else { continue };
            match brokers.revoke_now(server, &g.id).await {
                Ok(_) => reached += 1,
                Err(_) => failed += 1,
            }
        }
        out.push_str(&format!(
            "\nupstream tokens of {reached} brokered grant(s) revoked at their authorization servers \
             (where they offer revocation); {failed} could not be (see the log)"
        ));
    }
    Ok(out)
}

/// Pinned tools, by server and name; only those with a pending change when `changed_only`.
pub async fn list_tools(
    store: &dyn Store,
    server: Option<&str>,
    changed_only: bool,
    as_json: bool,
) -> Result<String, BoxError> {
    let pins: Vec<ToolPin> =
        store.tool_pins(server).await?.into_iter().filter(|p| !changed_only || p.changed.is_some()).collect();
    if as_json {
        let rows: Vec<_> = pins
            .iter()
            .map(|p| {
                json!({
                    "server": p.server,
                    "tool": p.tool,
                    "digest": p.digest,
                    "pinned_at": p.pinned_at,
                    "changed": p.changed.as_ref().map(|c| json!({"digest": c.digest, "seen_at": c.seen_at})),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&rows)?);
    }
    let mut out = format!("{:<14} {:<32} {:<20} {}\n", "SERVER", "TOOL", "PINNED-AT", "STATUS");
    for p in &pins {
        let status = match &p.changed {
            None => "pinned".to_owned(),
            Some(c) => format!("changed since {}", mcp_oauth_core::clock::utc(c.seen_at)),
        };
        writeln!(out, "{:<14} {:<32} {:<20} {status}", p.server, p.tool, mcp_oauth_core::clock::utc(p.pinned_at))?;
    }
    let changed = pins.iter().filter(|p| p.changed.is_some()).count();
    write!(out, "{} tool(s), {changed} changed", pins.len())?;
    if changed > 0 {
        write!(
            out,
            "\ncompare with `tools show --server S --tool T`; accept a change with `tools accept --server S --tool T`"
        )?;
    }
    Ok(out)
}

/// One tool's pinned definition and its changed one, as pretty JSON, with the top-level
/// fields in which they differ.
pub async fn show_tool(store: &dyn Store, server: &str, tool: &str) -> Result<String, BoxError> {
    let pin = find_pin(store, server, tool).await?;
    let pinned = definition(&pin.definition);
    let mut shown = json!({
        "server": pin.server,
        "tool": pin.tool,
        "pinned": {"digest": pin.digest, "pinned_at": mcp_oauth_core::clock::utc(pin.pinned_at), "definition": pinned},
        "changed": null,
    });
    if let Some(c) = &pin.changed {
        let changed = definition(&c.definition);
        shown["changed"] =
            json!({"digest": c.digest, "seen_at": mcp_oauth_core::clock::utc(c.seen_at), "definition": changed});
        shown["differs_in"] = differing_fields(&pinned, &changed).into();
    }
    Ok(serde_json::to_string_pretty(&shown)?)
}

/// Makes a tool's pending change its pin: with `digest`, only if the pending change is still
/// that one (what the operator looked at: the server may have changed the tool again since).
pub async fn accept_tool(
    store: &dyn Store,
    server: &str,
    tool: &str,
    digest: Option<&str>,
) -> Result<String, BoxError> {
    if store.accept_tool_change(server, tool, digest, SystemClock.now()).await? {
        return Ok(format!(
            "accepted the changed definition of tool {tool:?} at server {server:?}: it is the pin now; running \
             proxies stop reporting (or blocking) the tool within five seconds"
        ));
    }
    // Refused: read the tool back, only to say why.
    let pin = find_pin(store, server, tool).await?;
    Err(match (pin.changed, digest) {
        (None, _) => format!("tool {tool:?} at server {server:?} has no pending change: nothing to accept").into(),
        (Some(c), Some(expected)) => format!(
            "the pending change of tool {tool:?} at server {server:?} is now {}, not {expected}: look at it again \
             with `tools show`",
            c.digest
        )
        .into(),
        // No change was pending at the accept, and one was recorded just after it.
        (Some(_), None) => {
            format!("tool {tool:?} at server {server:?} changed just now: look at it with `tools show`").into()
        }
    })
}

async fn find_pin(store: &dyn Store, server: &str, tool: &str) -> Result<ToolPin, BoxError> {
    store
        .tool_pins(Some(server))
        .await?
        .into_iter()
        .find(|p| p.tool == tool)
        .ok_or_else(|| format!("no pinned tool {tool:?} at server {server:?}").into())
}

/// A stored definition as JSON; as a string if it is not JSON (the proxy stores canonical
/// JSON, but showing beats failing here).
fn definition(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| text.into())
}

/// The top-level fields (name, description, inputSchema, ...) that two definitions do not
/// share as equal.
fn differing_fields(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["(the whole definition)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().cloned().collect()
}

/// The steps of one login attempt, from the audit trail at `path`.
pub fn trace(path: &str, trace_id: &str) -> Result<String, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the audit trail {path}: {e}"))?;
    let steps: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["trace_id"] == trace_id)
        .collect();
    if steps.is_empty() {
        return Err(format!("no event with trace id {trace_id} in {path}").into());
    }
    let mut out = format!("login attempt {trace_id}: {} step(s)\n", steps.len());
    for step in &steps {
        let field = |k: &str| step[k].as_str().map(str::to_owned);
        let mut line = format!(
            "{}  {:<18}",
            mcp_oauth_core::clock::utc(step["time"].as_i64().unwrap_or(0)),
            step["event"].as_str().unwrap_or("?")
        );
        for (label, key) in [("server", "slug"), ("client", "client_id"), ("subject", "subject"), ("grant", "grant_id")]
        {
            if let Some(v) = field(key) {
                write!(line, " {label}={v}")?;
            }
        }
        if let Some(reason) = field("reason") {
            write!(line, "\n    why: {reason}")?;
        }
        writeln!(out, "{line}")?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fields_two_definitions_differ_in() {
        use serde_json::json;
        let a = json!({"name": "t", "description": "adds", "inputSchema": {"type": "object"}});
        let b = json!({"name": "t", "description": "adds; also reads ~/.ssh", "annotations": {}});
        assert_eq!(super::differing_fields(&a, &b), ["annotations", "description", "inputSchema"]);
        assert!(super::differing_fields(&a, &a).is_empty());
        assert_eq!(super::differing_fields(&a, &json!("not an object")), ["(the whole definition)"]);
    }
}
