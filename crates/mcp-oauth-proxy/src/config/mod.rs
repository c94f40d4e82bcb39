//! Configuration: TOML, overlaid by the environment, validated into typed settings.
//! Every problem found is reported, each naming its key; secrets never appear in errors.
//!
//! - `raw`: the shape of the file as serde reads it, lenient where the environment
//!   can only give strings
//! - `env`: `MCP_OAUTH_PROXY_*` variables written onto the file before it is read
//! - `validate`: raw to typed, one function per section; the larger sections are
//!   `providers`, `servers`, `clients` and `enterprise_idps`
//! - `problems`: the collector the sections note their problems in

mod clients;
mod enterprise_idps;
mod env;
mod presets;
mod problems;
mod providers;
mod raw;
mod servers;
mod validate;

use std::net::SocketAddr;

use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_http::settings::Settings;
use mcp_oauth_upstream::ProviderSettings;
use toml::{Table, Value};

use raw::Raw;

pub const ENV_PREFIX: &str = "MCP_OAUTH_PROXY_";
pub const DEFAULT_STORAGE_URL: &str = "sqlite://./data/proxy.db";

/// The validated configuration. `Debug` prints no secret.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub storage_url: String,
    pub keys: KeyRing,
    pub settings: Settings,
    pub providers: Vec<ProviderSettings>,
    /// An upstream MCP response silent this long is ended.
    pub idle_timeout_secs: u64,
    /// Where `/metrics` is served (never on the public listener); `None`: not at all.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the audit trail is appended (`-`: standard output); `None`: nowhere.
    pub audit_path: Option<String>,
}

/// Every problem with a configuration, one per line, each naming its key.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "the configuration is invalid:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads a file (optional: everything may come from the environment) and the
    /// process environment.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigErrors> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| ConfigErrors(vec![format!("{}: {e}", p.display())]))?,
            None => String::new(),
        };
        Self::from_parts(&text, std::env::vars(), &|name| std::env::var(name).ok())
    }

    /// Parses and validates; `env_vars` are the overlay, `lookup` reads the variables
    /// that `client_secret_env` names.
    pub fn from_parts(
        toml_text: &str,
        env_vars: impl Iterator<Item = (String, String)>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let mut table: Table = toml_text.parse().map_err(|e: toml::de::Error| ConfigErrors(vec![e.to_string()]))?;
        env::overlay(&mut table, env_vars).map_err(|e| ConfigErrors(vec![e]))?;
        let raw: Raw = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            ConfigErrors(vec![format!("{path}: {}", e.into_inner())])
        })?;
        validate::validate(raw, lookup)
    }
}

#[cfg(test)]
mod tests;
