//! `[[servers]]`: the protected MCP servers, each behind its own path and issuer.

use std::sync::Arc;

use axum::http::HeaderName;
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_http::settings::ServerSettings;
use mcp_oauth_upstream::ProviderSettings;

use super::problems::Problems;
use super::raw::RawServer;

pub(super) fn validate(
    problems: &mut Problems,
    raw: Vec<RawServer>,
    providers: &[ProviderSettings],
) -> Vec<Arc<ServerSettings>> {
    if raw.is_empty() {
        problems.push("servers", "at least one [[servers]] entry is required");
    }
    let mut servers = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let server = server(problems, i, s, &servers, providers);
        servers.push(Arc::new(server));
    }
    servers
}

fn server(
    problems: &mut Problems,
    i: usize,
    s: RawServer,
    earlier: &[Arc<ServerSettings>],
    providers: &[ProviderSettings],
) -> ServerSettings {
    let key = |k: &str| format!("servers[{i}].{k}");
    let slug = s.slug.unwrap_or_default();
    if slug.is_empty() || !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        problems.push(&key("slug"), format_args!("{slug:?} must match [a-z0-9-]+"));
    } else if earlier.iter().any(|o| o.slug == slug) {
        problems.push(&key("slug"), format_args!("{slug:?} is used by another server"));
    }
    let upstream_url = s.upstream_url.unwrap_or_default();
    let mcp_upstream = if upstream_url.is_empty() {
        problems.required(&key("upstream_url"));
        None
    } else {
        problems.url(&key("upstream_url"), &upstream_url)
    };
    let provider = s.provider.unwrap_or_default();
    if !providers.iter().any(|p| p.name == provider) {
        problems.push(&key("provider"), format_args!("no provider named {provider:?} is configured under [providers]"));
    }
    let scopes = if s.scopes.is_empty() { vec!["mcp".to_owned()] } else { s.scopes };
    let scopes = Scopes::parse(&scopes.join(" ")).unwrap_or_else(|e| {
        problems.push(&key("scopes"), e.description);
        Scopes::default()
    });
    // A placeholder only when an error was recorded above, which stops the load.
    let mcp_upstream = mcp_upstream.unwrap_or_else(|| url::Url::parse("http://invalid.invalid/").expect("valid"));
    let mut server = ServerSettings::new(&slug, mcp_upstream, &provider, scopes);
    if let Some(h) = s.upstream_token_header {
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(name) => server.upstream_token_header = name,
            Err(_) => problems.push(&key("upstream_token_header"), format_args!("{h:?} is not a header name")),
        }
    }
    if let Some(f) = s.upstream_token_format {
        if !f.contains("{token}") {
            problems.push(&key("upstream_token_format"), "must contain {token}");
        }
        server.upstream_token_format = f;
    }
    if let Some(max) = s.max_body_bytes {
        problems.range(&key("max_body_bytes"), max, 1024, 1 << 30);
        server.max_body_bytes = max.max(0) as usize;
    }
    server
}
