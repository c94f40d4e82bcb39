//! `[[servers]]`: the protected MCP servers, each behind its own path and issuer.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::tool_scopes::ToolScopes;
use mcp_oauth_http::settings::{
    AccessRules, IdentitySettings, ServerSettings, ToolChanges, UpstreamAuth, UpstreamOAuthSettings,
    speaks_for_the_proxy,
};
use mcp_oauth_upstream::ProviderSettings;

use super::problems::{Lookup, Problems};
use super::raw::{RawIdentity, RawServer, RawUpstreamOAuth, StringList};

/// The bounds of `[servers.identity] lifetime_secs`: long enough to outlast a request and
/// the clock skew between the proxy and the MCP upstream, short enough that an assertion
/// that leaks is soon worthless.
const ASSERTION_LIFETIME_SECS: (i64, i64) = (30, 3600);

pub(super) fn validate(
    problems: &mut Problems,
    raw: Vec<RawServer>,
    providers: &[ProviderSettings],
    lookup: Lookup<'_>,
) -> Vec<Arc<ServerSettings>> {
    if raw.is_empty() {
        problems.push("servers", "at least one [[servers]] entry is required");
    }
    let mut slugs = BTreeSet::new();
    let mut servers = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        servers.extend(server(problems, i, s, &mut slugs, providers, lookup).map(Arc::new));
    }
    servers
}

/// `None` when there is no valid upstream URL to build the settings with; the problem
/// is noted.
fn server(
    problems: &mut Problems,
    i: usize,
    s: RawServer,
    slugs: &mut BTreeSet<String>,
    providers: &[ProviderSettings],
    lookup: Lookup<'_>,
) -> Option<ServerSettings> {
    let key = |k: &str| format!("servers[{i}].{k}");
    let slug = s.slug.unwrap_or_default();
    if slug.is_empty() || !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        problems.push(&key("slug"), format_args!("{slug:?} must match [a-z0-9-]+"));
    } else if !slugs.insert(slug.clone()) {
        problems.push(&key("slug"), format_args!("{slug:?} is used by another server"));
    }
    let upstream = match s.upstream_url.as_deref() {
        None | Some("") => {
            problems.required(&key("upstream_url"));
            None
        }
        // Parsed once here into the form requests are sent with.
        Some(u) => problems.url(&key("upstream_url"), u).and_then(|url| {
            url.as_str()
                .parse::<axum::http::Uri>()
                .map_err(|e| problems.push(&key("upstream_url"), format_args!("{u:?} cannot be requested: {e}")))
                .ok()
        }),
    };
    // Brokered OAuth may do without a provider: the upstream's own login is then the only
    // one (see `ServerSettings::provider`).
    let brokered = s.upstream_auth.as_deref().map(str::trim) == Some("oauth");
    let provider = s.provider.unwrap_or_default();
    if provider.is_empty() && brokered {
        if s.access.is_some() {
            problems.push(
                &key("access"),
                "needs what a provider says of the user; without a provider the user is known only by what the \
                 upstream's authorization server says, if anything: name a provider, or remove the rules",
            );
        }
    } else if !providers.iter().any(|p| p.name == provider) {
        problems.push(&key("provider"), format_args!("no provider named {provider:?} is configured under [providers]"));
    }
    let tool_scopes = ToolScopes::new(s.tool_scopes.into_iter().filter_map(|(pattern, StringList(list))| {
        let scopes = Scopes::parse(&list.join(" "))
            .map_err(|e| problems.push(&key(&format!("tool_scopes.{pattern}")), e.description))
            .ok()?;
        if pattern.is_empty() || scopes.is_empty() {
            problems.push(
                &key("tool_scopes"),
                format_args!("{pattern:?} needs a tool-name pattern and at least one scope"),
            );
            return None;
        }
        Some((pattern, scopes))
    }));
    // The server's scopes: those listed, and every scope a tool needs (clients learn
    // them from the metadata and the challenges); `mcp` when there are none at all.
    let listed = (!s.scopes.is_empty()).then(|| Scopes::parse(&s.scopes.join(" ")).ok()).flatten();
    let mut scopes: Vec<String> = s.scopes;
    scopes.extend(tool_scopes.all_scopes().map(str::to_owned));
    if scopes.is_empty() {
        scopes.push("mcp".to_owned());
    }
    let scopes = Scopes::parse(&scopes.join(" ")).unwrap_or_else(|e| {
        problems.push(&key("scopes"), e.description);
        Scopes::default()
    });
    let header = s.upstream_token_header.and_then(|h| {
        HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| problems.push(&key("upstream_token_header"), format_args!("{h:?} is not a header name")))
            .ok()
    });
    if s.upstream_token_format.as_ref().is_some_and(|f| !f.contains("{token}")) {
        problems.push(&key("upstream_token_format"), "must contain {token}");
    }
    if let Some(max) = s.max_body_bytes {
        problems.range(&key("max_body_bytes"), max, 1024, 1 << 30);
    }
    let access = s.access.map(|a| AccessRules {
        subjects: a.subjects,
        emails: a.emails,
        email_domains: a.email_domains.into_iter().map(|d| d.trim_start_matches('@').to_owned()).collect(),
        groups: a.groups,
        clients: a.clients,
    });
    if access.as_ref().is_some_and(|a| a == &AccessRules::default()) {
        problems.push(&key("access"), "names nobody; remove it to let everyone the provider authenticates in");
    }

    let audience = s.upstream_url.as_deref().unwrap_or_default().trim();
    let upstream_auth = upstream_auth(problems, i, s.upstream_auth.as_deref(), s.identity, audience, lookup);
    if !s.enterprise_idps.is_empty() && upstream_auth.needs_provider_token() {
        problems.push(
            &key("enterprise_idps"),
            format_args!(
                "an ID-JAG's grant has no provider token to send; set {} = \"identity\" or \"none\"",
                key("upstream_auth")
            ),
        );
    }
    // A client using a server on its own behalf has no provider token to send.
    if access.as_ref().is_some_and(|a| !a.clients.is_empty()) && upstream_auth.needs_provider_token() {
        problems.push(
            &key("access.clients"),
            format_args!(
                "clients have no provider token to send; set {} = \"identity\" or \"none\"",
                key("upstream_auth")
            ),
        );
    }
    let upstream_auth = match upstream_auth {
        UpstreamAuth::OAuth(_) => {
            // The upstream's own authorization server issued the token: it goes as the
            // upstream expects it (RFC 6750), whatever the provider-token settings say.
            for (k, set) in [
                ("upstream_token_header", header.is_some()),
                ("upstream_token_format", s.upstream_token_format.is_some()),
            ] {
                if set {
                    problems.push(
                        &key(k),
                        "does not apply with upstream_auth = \"oauth\" (the token goes as Authorization: Bearer)",
                    );
                }
            }
            UpstreamAuth::OAuth(upstream_oauth(problems, i, s.upstream_oauth.unwrap_or_default(), lookup))
        }
        other => {
            if s.upstream_oauth.is_some() {
                problems.push(&key("upstream_oauth"), "applies only with upstream_auth = \"oauth\"");
            }
            other
        }
    };

    // The settings hold the URL validated above; without one there is nothing to build
    // (and no need for a placeholder URL, as the load fails on the problem noted).
    let mut server = ServerSettings::new(&slug, upstream?, &provider, scopes);
    server.upstream_auth = upstream_auth;
    server.enterprise_idps = s.enterprise_idps;
    server.identity_headers = s.identity_headers.unwrap_or(false);
    if let Some(name) = header {
        server.upstream_token_header = name;
    }
    if let Some(format) = s.upstream_token_format {
        server.upstream_token_format = format;
    }
    if let Some(max) = s.max_body_bytes {
        server.max_body_bytes = max.max(0) as usize;
    }
    server.access = access;
    // Without `default_scopes`, the listed scopes: a tool's own scopes come by step-up.
    if let Some(listed) = listed {
        server.default_scopes = listed;
    }
    if !s.default_scopes.is_empty() {
        match Scopes::parse(&s.default_scopes.join(" ")) {
            Ok(default) if default.is_subset_of(&server.scopes) => server.default_scopes = default,
            Ok(default) => problems.push(
                &key("default_scopes"),
                format_args!("{default} must be among this server's scopes ({})", server.scopes),
            ),
            Err(e) => problems.push(&key("default_scopes"), e.description),
        }
    }
    server.tool_scopes = tool_scopes;
    for described in s.scope_descriptions.keys().filter(|k| !server.scopes.iter().any(|s| s == k.as_str())) {
        problems.push(&key("scope_descriptions"), format_args!("{described:?} is not one of this server's scopes"));
    }
    server.scope_descriptions = s.scope_descriptions;
    server.hide_unauthorized_tools = s.hide_unauthorized_tools.unwrap_or(false);
    server.tool_changes = match s.tool_changes.as_deref().map(str::trim) {
        None | Some("report") => ToolChanges::Report,
        Some("off") => ToolChanges::Off,
        Some("block") => ToolChanges::Block,
        Some(other) => {
            problems.push(&key("tool_changes"), format_args!("{other:?} must be \"off\", \"report\" or \"block\""));
            ToolChanges::Report
        }
    };
    Some(server)
}

/// `upstream_auth` and `[servers.identity]`: what the MCP upstream receives. `audience` is
/// the server's `upstream_url` as written, the assertion's default `aud`.
fn upstream_auth(
    problems: &mut Problems,
    i: usize,
    mode: Option<&str>,
    identity: Option<RawIdentity>,
    audience: &str,
    lookup: Lookup<'_>,
) -> UpstreamAuth {
    let key = |k: &str| format!("servers[{i}].{k}");
    let auth = match mode.map(str::trim) {
        None | Some("provider_token") => UpstreamAuth::ProviderToken,
        Some("none") => UpstreamAuth::None,
        // `[servers.upstream_oauth]` is read by the caller.
        Some("oauth") => UpstreamAuth::OAuth(UpstreamOAuthSettings::default()),
        Some("identity") => {
            let raw = identity.unwrap_or_default();
            return UpstreamAuth::Identity(identity_settings(problems, i, raw, audience, lookup));
        }
        Some(other) => {
            problems.push(
                &key("upstream_auth"),
                format_args!("{other:?} must be \"provider_token\", \"identity\", \"oauth\" or \"none\""),
            );
            UpstreamAuth::ProviderToken
        }
    };
    if identity.is_some() {
        problems.push(&key("identity"), "applies only with upstream_auth = \"identity\"");
    }
    auth
}

/// `[servers.upstream_oauth]`: how the proxy becomes the upstream's client.
fn upstream_oauth(
    problems: &mut Problems,
    i: usize,
    raw: RawUpstreamOAuth,
    lookup: Lookup<'_>,
) -> UpstreamOAuthSettings {
    let key = |k: &str| format!("servers[{i}].upstream_oauth.{k}");
    let client_id = raw.client_id.map(|c| c.trim().to_owned());
    if client_id.as_deref() == Some("") {
        problems.push(&key("client_id"), "must not be empty; leave it out to register the proxy automatically");
    }
    let client_secret = match raw.client_secret_env {
        None => None,
        Some(_) if client_id.is_none() => {
            problems.push(&key("client_secret_env"), "applies only with client_id (a pre-registered client)");
            None
        }
        // An empty variable counts as unset, as for every secret.
        Some(var) => match lookup(&var) {
            Some(v) if !v.is_empty() => Some(v),
            _ => {
                problems.push(&key("client_secret_env"), format_args!("the environment variable {var} is not set"));
                None
            }
        },
    };
    let scopes: Vec<String> = raw.scopes.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    let refresh_margin_secs = raw.refresh_margin_secs.unwrap_or(UpstreamOAuthSettings::DEFAULT_REFRESH_MARGIN_SECS);
    problems.range(&key("refresh_margin_secs"), refresh_margin_secs, 0, 3600);
    UpstreamOAuthSettings {
        client_id: client_id.filter(|c| !c.is_empty()),
        client_secret,
        scopes: (!scopes.is_empty()).then_some(scopes),
        allow_http_loopback: raw.allow_http_loopback.unwrap_or(false),
        refresh_margin_secs: refresh_margin_secs.clamp(0, 3600),
    }
}

fn identity_settings(
    problems: &mut Problems,
    i: usize,
    raw: RawIdentity,
    default_audience: &str,
    lookup: Lookup<'_>,
) -> IdentitySettings {
    let key = |k: &str| format!("servers[{i}].identity.{k}");
    let audience = match raw.audience.as_deref().map(str::trim) {
        Some("") => {
            problems.push(&key("audience"), "must not be empty; leave it out for the upstream URL");
            default_audience
        }
        Some(audience) => audience,
        None => default_audience,
    };
    let mut settings = IdentitySettings::new(audience);
    if let Some(secs) = raw.lifetime_secs {
        let (min, max) = ASSERTION_LIFETIME_SECS;
        problems.range(&key("lifetime_secs"), secs, min, max);
        settings.lifetime_secs = secs.clamp(min, max);
    }
    // `Authorization` named explicitly is the default: `Bearer <jwt>`.
    settings.header = raw
        .header
        .and_then(|h| header_name(problems, &key("header"), &h))
        .filter(|name| name != axum::http::header::AUTHORIZATION);
    if let Some(fixed) = raw.static_header {
        let name = match fixed.name {
            Some(n) => header_name(problems, &key("static_header.name"), &n),
            None => {
                problems.required(&key("static_header.name"));
                None
            }
        };
        let assertion_header = settings.header.clone().unwrap_or(axum::http::header::AUTHORIZATION);
        let name = name.filter(|n| {
            let clash = *n == assertion_header;
            if clash {
                problems.push(&key("static_header.name"), format_args!("{n} already carries the assertion"));
            }
            !clash
        });
        let value = match fixed.value_env {
            None => {
                problems.required(&key("static_header.value_env"));
                None
            }
            Some(var) => match lookup(&var) {
                // An empty variable counts as unset, as for every secret.
                Some(v) if !v.is_empty() => HeaderValue::from_str(&v)
                    .map_err(|_| {
                        problems.push(
                            &key("static_header.value_env"),
                            format_args!("the value of {var} cannot be sent as a header value"),
                        )
                    })
                    .ok(),
                _ => {
                    problems.push(
                        &key("static_header.value_env"),
                        format_args!("the environment variable {var} is not set"),
                    );
                    None
                }
            },
        };
        if let (Some(name), Some(mut value)) = (name, value) {
            value.set_sensitive(true);
            settings.static_header = Some((name, value));
        }
    }
    settings
}

/// A header the proxy may set itself: a valid name, and none that carries something else
/// (a connection's, a request's framing, the identity and forwarding headers it sets).
fn header_name(problems: &mut Problems, key: &str, text: &str) -> Option<HeaderName> {
    let Ok(name) = HeaderName::from_bytes(text.trim().as_bytes()) else {
        problems.push(key, format_args!("{text:?} is not a header name"));
        return None;
    };
    let reserved =
        ["host", "content-length", "content-type", "cookie", "connection", "transfer-encoding", "te", "upgrade"];
    if reserved.contains(&name.as_str()) || speaks_for_the_proxy(name.as_str()) {
        problems.push(key, format_args!("{text:?} is a header the proxy does not let carry a credential"));
        return None;
    }
    Some(name)
}
