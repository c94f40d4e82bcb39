//! The environment overlay, written onto the parsed file before serde reads it, so that
//! a value from the environment is checked exactly like one from the file.
//!
//! Every key can come from the environment as `MCP_OAUTH_PROXY_` followed by its path in
//! upper case, with `__` between path segments and array indexes as numbers:
//! `MCP_OAUTH_PROXY_PUBLIC_URL`, `MCP_OAUTH_PROXY_TOKENS__ACCESS_TTL_SECS`,
//! `MCP_OAUTH_PROXY_PROVIDERS__GITHUB__CLIENT_SECRET`, `MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_URL`.
//! `MCP_OAUTH_PROXY_ENCRYPTION_KEY` is accepted for `encryption.key`. Environment values
//! win over the file. Lists may be given as comma-separated strings.

use toml::{Table, Value};

use super::ENV_PREFIX;

/// `MCP_OAUTH_PROXY_*` variables that the command line reads (see `main.rs`).
const NOT_CONFIG: &[&str] = &["LOG_FORMAT"];

/// Applies `MCP_OAUTH_PROXY_*` variables onto the parsed file.
pub(super) fn overlay(table: &mut Table, vars: impl Iterator<Item = (String, String)>) -> Result<(), String> {
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        // Variables of the command line, not of the configuration.
        if NOT_CONFIG.contains(&rest) {
            continue;
        }
        let rest = if rest == "ENCRYPTION_KEY" { "ENCRYPTION__KEY" } else { rest };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        set_path(table, &path, value).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// Writes `value` at `path`, creating tables and list entries on the way, so that
/// `SERVERS__1__SLUG` works without a second `[[servers]]` in the file.
fn set_path(table: &mut Table, path: &[String], value: String) -> Result<(), String> {
    let (head, tail) = path.split_first().ok_or("empty key")?;
    if tail.is_empty() {
        table.insert(head.clone(), Value::String(value));
        return Ok(());
    }
    let entry = table.entry(head.clone()).or_insert_with(|| {
        if tail[0].parse::<usize>().is_ok() { Value::Array(vec![]) } else { Value::Table(Table::new()) }
    });
    match entry {
        Value::Table(t) => set_path(t, tail, value),
        Value::Array(items) => {
            let index: usize = tail[0].parse().map_err(|_| format!("{head} is a list; expected an index after it"))?;
            while items.len() <= index {
                items.push(Value::Table(Table::new()));
            }
            match (&mut items[index], &tail[1..]) {
                (Value::Table(t), rest) if !rest.is_empty() => set_path(t, rest, value),
                (slot, []) => {
                    *slot = Value::String(value);
                    Ok(())
                }
                _ => Err(format!("{head}[{index}] is not a table")),
            }
        }
        _ => Err(format!("{head} is not a table")),
    }
}
