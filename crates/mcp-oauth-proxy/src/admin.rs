//! The operator's commands on the configured storage: registered clients and grants.
//! They work while the proxy serves: a revocation is one conditional statement, and
//! serving processes learn of it within two seconds (a PostgreSQL replica at once; a
//! SQLite proxy, which caches lookups, when it next checks for outside changes).

use std::fmt::Write;

use mcp_oauth_core::clock::{Clock, SystemClock};
use mcp_oauth_store::{GrantFilter, GrantSummary, Store};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

pub async fn revoke_grants(store: &dyn Store, filter: &GrantFilter) -> Result<String, BoxError> {
    if filter == &GrantFilter::default() {
        return Err("name the grants to revoke: --subject, --client or --grant".into());
    }
    let n = store.revoke_grants(filter, SystemClock.now()).await?;
    Ok(format!("revoked {n} active grant(s); running proxies refuse their tokens within two seconds"))
}
