//! From the raw file to a `Config`, one function per section. Each notes its problems and
//! returns what later sections need, so one run reports every problem in file order.
//! Providers, servers and clients have files of their own.

use std::net::SocketAddr;

use mcp_oauth_core::seal::{self, KeyRing};
use mcp_oauth_http::settings::{
    AccessRules, AdminSettings, ConnectionSettings, LimitSettings, MetadataDocumentSettings, ServerSettings, Settings,
    TokenSettings,
};

use super::problems::{Lookup, Problems};
use super::raw::{Raw, RawAdmin, RawEncryption, RawLimits, RawMetadataDocuments, RawStorage, RawTokens};
use super::{Config, ConfigErrors, DEFAULT_STORAGE_URL, ENV_PREFIX, clients, enterprise_idps, providers, servers};

pub(super) fn validate(raw: Raw, lookup: Lookup<'_>) -> Result<Config, ConfigErrors> {
    let mut problems = Problems::default();
    let listen = listen(&mut problems, raw.listen);
    let public_url = public_url(&mut problems, raw.public_url);
    let idle_timeout_secs = idle_timeout_secs(&mut problems, raw.idle_timeout_secs);
    let storage_url = storage_url(&mut problems, raw.storage);
    let keys = keys(&mut problems, raw.encryption);
    let tokens = tokens(&mut problems, raw.tokens);
    let providers = providers::validate(&mut problems, raw.providers, lookup);
    let servers = servers::validate(&mut problems, raw.servers, &providers, lookup);
    let static_clients = clients::validate(&mut problems, raw.clients, lookup);
    let enterprise_idps = enterprise_idps::validate(&mut problems, raw.enterprise_idps, &servers);
    let metadata_documents = metadata_documents(&mut problems, raw.client_metadata_documents);
    let trusted_proxies = trusted_proxies(&mut problems, raw.trusted_proxies);
    let (limits, connections) = limits(&mut problems, raw.limits);
    let audit_path = raw.audit.path.filter(|p| !p.is_empty());
    let admin = raw.admin.and_then(|a| admin(&mut problems, a, &servers, audit_path.as_deref()));
    let metrics_listen = raw.metrics.listen.and_then(|text| {
        text.parse()
            .map_err(|_| {
                problems.push("metrics.listen", format_args!("{text:?} is not an address like 127.0.0.1:9464"))
            })
            .ok()
    });
    problems.finish()?;
    Ok(Config {
        listen,
        storage_url,
        keys: keys.expect("no problems means the key decoded"),
        settings: Settings {
            public_url,
            tokens,
            servers,
            static_clients,
            enterprise_idps,
            metadata_documents,
            registration_enabled: raw.registration.enabled.unwrap_or(true),
            trusted_proxies,
            connections,
            limits,
            admin,
        },
        providers,
        idle_timeout_secs,
        metrics_listen,
        audit_path,
    })
}

/// `[admin]`: operators log in at a provider that one of the servers uses (its callback is
/// the one registered there), and are named by subject, verified email or group: a domain
/// would make everyone at a company an operator.
fn admin(
    problems: &mut Problems,
    raw: RawAdmin,
    servers: &[std::sync::Arc<ServerSettings>],
    audit_path: Option<&str>,
) -> Option<AdminSettings> {
    let mut in_use: Vec<&str> = servers.iter().map(|s| s.provider.as_str()).filter(|p| !p.is_empty()).collect();
    in_use.sort_unstable();
    in_use.dedup();
    let provider = match (raw.provider, in_use.as_slice()) {
        (Some(p), _) if in_use.contains(&p.as_str()) => p,
        (Some(p), _) => {
            problems.push("admin.provider", format_args!("{p:?} is not the provider of any server"));
            return None;
        }
        (None, [one]) => (*one).to_owned(),
        (None, _) => {
            problems.push("admin.provider", "required: name the provider operators log in at");
            return None;
        }
    };
    let operators = AccessRules {
        subjects: raw.subjects,
        emails: raw.emails,
        email_domains: vec![],
        groups: raw.groups,
        clients: vec![],
    };
    if operators == AccessRules::default() {
        problems.push("admin", "names no operator: list subjects, emails or groups (or remove [admin])");
        return None;
    }
    let audit_path = audit_path.filter(|p| *p != "-").map(std::path::PathBuf::from);
    Some(AdminSettings { provider, operators, audit_path })
}

fn listen(problems: &mut Problems, raw: Option<String>) -> SocketAddr {
    let text = raw.unwrap_or_else(|| "127.0.0.1:8080".into());
    text.parse().unwrap_or_else(|_| {
        problems.push("listen", format_args!("{text:?} is not an address like 127.0.0.1:8080"));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    })
}

fn public_url(problems: &mut Problems, raw: Option<String>) -> String {
    let Some(url) = raw else {
        problems.push("public_url", "required (the URL clients reach the proxy at, e.g. https://mcp.example.com)");
        return String::new();
    };
    // Every endpoint URL is this one with a path appended.
    if let Some(parsed) = problems.url("public_url", &url) {
        if url.ends_with('/') {
            problems.push("public_url", format_args!("{url:?} must not end with a slash"));
        } else if parsed.query().is_some() || parsed.fragment().is_some() {
            problems.push("public_url", "must not have a query or fragment");
        }
    }
    url
}

fn idle_timeout_secs(problems: &mut Problems, raw: Option<i64>) -> u64 {
    let secs = raw.unwrap_or(300);
    problems.range("idle_timeout_secs", secs, 5, 86_400);
    secs.max(5) as u64
}

fn storage_url(problems: &mut Problems, raw: RawStorage) -> String {
    let url = raw.url.unwrap_or_else(|| DEFAULT_STORAGE_URL.into());
    if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        problems.push("storage.url", "must start with sqlite:// or postgres://");
    } else if url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory")) {
        // Each of the proxy's connections would open a database of its own.
        problems.push("storage.url", "must name a file, as in sqlite://./data/proxy.db (not an in-memory database)");
    }
    url
}

/// `None` when the current key is missing or does not decode; the problem is noted.
fn keys(problems: &mut Problems, raw: RawEncryption) -> Option<KeyRing> {
    let Some(key) = raw.key else {
        problems.push(
            "encryption.key",
            format_args!("required (or {ENV_PREFIX}ENCRYPTION_KEY); create one with `mcp-oauth-proxy keygen`"),
        );
        return None;
    };
    let current = seal::decode_key(&key).map_err(|e| problems.push("encryption.key", e)).ok();
    let previous: Vec<[u8; 32]> = raw
        .previous_keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| {
            seal::decode_key(k).map_err(|e| problems.push(&format!("encryption.previous_keys[{i}]"), e)).ok()
        })
        .collect();
    current.map(|c| KeyRing::new(c, &previous))
}

fn tokens(problems: &mut Problems, raw: RawTokens) -> TokenSettings {
    let defaults = TokenSettings::default();
    let mut ttl = |key: &str, value: Option<i64>, default: i64, min: i64, max: i64| {
        let v = value.unwrap_or(default);
        if !(min..=max).contains(&v) {
            problems.push(&format!("tokens.{key}"), format_args!("{v} is out of range ({min} to {max} seconds)"));
        }
        v
    };
    TokenSettings {
        access_ttl_secs: ttl("access_ttl_secs", raw.access_ttl_secs, defaults.access_ttl_secs, 10, 86_400),
        refresh_ttl_secs: ttl("refresh_ttl_secs", raw.refresh_ttl_secs, defaults.refresh_ttl_secs, 300, 31_536_000),
        code_ttl_secs: ttl("code_ttl_secs", raw.code_ttl_secs, defaults.code_ttl_secs, 10, 600),
        refresh_grace_secs: ttl("refresh_grace_secs", raw.refresh_grace_secs, defaults.refresh_grace_secs, 0, 300),
        consent_ttl_secs: ttl("consent_ttl_secs", raw.consent_ttl_secs, defaults.consent_ttl_secs, 0, 31_536_000),
    }
}

fn metadata_documents(problems: &mut Problems, raw: RawMetadataDocuments) -> MetadataDocumentSettings {
    let defaults = MetadataDocumentSettings::default();
    let mut number = |key: &str, value: Option<i64>, default: usize, min: i64, max: i64| {
        let v = value.unwrap_or(default as i64);
        problems.range(&format!("client_metadata_documents.{key}"), v, min, max);
        v.clamp(min, max) as usize
    };
    MetadataDocumentSettings {
        enabled: raw.enabled.unwrap_or(true),
        allow_loopback: raw.allow_loopback.unwrap_or(false),
        cache_bytes: number("cache_bytes", raw.cache_bytes, defaults.cache_bytes, 65_536, 1 << 30),
        fetches_per_host_per_minute: number(
            "fetches_per_host_per_minute",
            raw.fetches_per_host_per_minute,
            defaults.fetches_per_host_per_minute as usize,
            1,
            100_000,
        ) as u32,
        allowed_hosts: raw.allowed_hosts,
        verified_hosts: raw.verified_hosts,
    }
}

/// Addresses or networks (`10.0.0.0/8`, `192.0.2.7`) of the proxies in front of this one.
fn trusted_proxies(problems: &mut Problems, raw: Vec<String>) -> Vec<ipnet::IpNet> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed =
                text.parse::<ipnet::IpNet>().or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| {
                    problems.push(
                        &format!("trusted_proxies[{i}]"),
                        format_args!("{text:?} is not an address or a network like 10.0.0.0/8"),
                    )
                })
                .ok()
        })
        .collect()
}

fn limits(problems: &mut Problems, raw: RawLimits) -> (LimitSettings, ConnectionSettings) {
    let (l, c) = (LimitSettings::default(), ConnectionSettings::default());
    let mut number = |key: &str, value: Option<i64>, default: i64, min: i64, max: i64| {
        let v = value.unwrap_or(default);
        problems.range(&format!("limits.{key}"), v, min, max);
        v.clamp(min, max)
    };
    let per_minute = |n: u32| i64::from(n);
    let limits = LimitSettings {
        registrations_per_minute: number(
            "registrations_per_minute",
            raw.registrations_per_minute,
            per_minute(l.registrations_per_minute),
            1,
            1_000_000,
        ) as u32,
        authorizations_per_minute: number(
            "authorizations_per_minute",
            raw.authorizations_per_minute,
            per_minute(l.authorizations_per_minute),
            1,
            1_000_000,
        ) as u32,
        failures_per_minute: number(
            "failures_per_minute",
            raw.failures_per_minute,
            per_minute(l.failures_per_minute),
            1,
            1_000_000,
        ) as u32,
        pending_per_browser: number(
            "pending_per_browser",
            raw.pending_per_browser,
            per_minute(l.pending_per_browser),
            1,
            1000,
        ) as u32,
        pending_per_address: number(
            "pending_per_address",
            raw.pending_per_address,
            per_minute(l.pending_per_address),
            1,
            1_000_000,
        ) as u32,
        // Shorter than a /32 would put whole providers' customers in one group.
        ipv6_prefix_len: number("ipv6_prefix_length", raw.ipv6_prefix_length, l.ipv6_prefix_len.into(), 32, 128) as u8,
    };
    let secs = |d: std::time::Duration| d.as_secs() as i64;
    let connections = ConnectionSettings {
        header_read_timeout: std::time::Duration::from_secs(number(
            "header_read_timeout_secs",
            raw.header_read_timeout_secs,
            secs(c.header_read_timeout),
            1,
            300,
        ) as u64),
        body_read_timeout: std::time::Duration::from_secs(number(
            "body_read_timeout_secs",
            raw.body_read_timeout_secs,
            secs(c.body_read_timeout),
            1,
            300,
        ) as u64),
        max_connections: number("max_connections", raw.max_connections, c.max_connections as i64, 1, 10_000_000)
            as usize,
        max_connections_per_address: number(
            "max_connections_per_address",
            raw.max_connections_per_address,
            c.max_connections_per_address as i64,
            1,
            10_000_000,
        ) as usize,
        // One grouping for every limit keyed by address.
        ipv6_prefix_len: limits.ipv6_prefix_len,
    };
    (limits, connections)
}
