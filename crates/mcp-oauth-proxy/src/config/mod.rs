//! Configuration: TOML, overlaid by the environment, validated into typed settings.
//!
//! Every key can also come from an `MCP_OAUTH_PROXY_*` environment variable (see `env`).
//! Every problem found is reported, each naming its key; secrets never appear in errors.

mod env;
mod problems;
mod raw;

use std::net::SocketAddr;
use std::sync::Arc;

use mcp_oauth_core::client::{AuthMethod as ClientAuthMethod, Client, ClientMetadata};
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::seal::{self, KeyRing};
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_http::settings::{MetadataDocumentSettings, ServerSettings, Settings, TokenSettings};
use mcp_oauth_upstream::{ProviderAuthMethod, ProviderSettings};
use toml::{Table, Value};

use problems::{Lookup, Problems};
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
        validate(raw, lookup)
    }
}

fn validate(raw: Raw, lookup: Lookup<'_>) -> Result<Config, ConfigErrors> {
    let mut problems = Problems::default();

    let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_text.parse().unwrap_or_else(|_| {
        problems.push("listen", format_args!("{listen_text:?} is not an address like 127.0.0.1:8080"));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });

    let public_url = match raw.public_url {
        None => {
            problems.push("public_url", "required (the URL clients reach the proxy at, e.g. https://mcp.example.com)");
            String::new()
        }
        Some(u) => {
            if let Some(parsed) = problems.url("public_url", &u) {
                if u.ends_with('/') {
                    problems.push("public_url", format_args!("{u:?} must not end with a slash"));
                } else if parsed.query().is_some() || parsed.fragment().is_some() {
                    problems.push("public_url", "must not have a query or fragment");
                }
            }
            u
        }
    };

    let idle_timeout_secs = raw.idle_timeout_secs.unwrap_or(300);
    problems.range("idle_timeout_secs", idle_timeout_secs, 5, 86_400);

    let storage_url = raw.storage.url.unwrap_or_else(|| DEFAULT_STORAGE_URL.into());
    if !(storage_url.starts_with("sqlite:")
        || storage_url.starts_with("postgres://")
        || storage_url.starts_with("postgresql://"))
    {
        problems.push("storage.url", "must start with sqlite:// or postgres://");
    }

    let keys = match raw.encryption.key {
        None => {
            problems.push(
                "encryption.key",
                format_args!("required (or {ENV_PREFIX}ENCRYPTION_KEY); create one with `mcp-oauth-proxy keygen`"),
            );
            None
        }
        Some(k) => {
            let current = seal::decode_key(&k).map_err(|e| problems.push("encryption.key", e)).ok();
            let previous: Vec<[u8; 32]> = raw
                .encryption
                .previous_keys
                .iter()
                .enumerate()
                .filter_map(|(i, k)| {
                    seal::decode_key(k).map_err(|e| problems.push(&format!("encryption.previous_keys[{i}]"), e)).ok()
                })
                .collect();
            current.map(|c| KeyRing::new(c, &previous))
        }
    };

    let defaults = TokenSettings::default();
    let mut ttl = |key: &str, v: Option<i64>, default: i64, min: i64, max: i64| {
        let v = v.unwrap_or(default);
        if v < min || v > max {
            problems.push(&format!("tokens.{key}"), format_args!("{v} is out of range ({min} to {max} seconds)"));
        }
        v
    };
    let tokens = TokenSettings {
        access_ttl_secs: ttl("access_ttl_secs", raw.tokens.access_ttl_secs, defaults.access_ttl_secs, 10, 86_400),
        refresh_ttl_secs: ttl(
            "refresh_ttl_secs",
            raw.tokens.refresh_ttl_secs,
            defaults.refresh_ttl_secs,
            300,
            31_536_000,
        ),
        code_ttl_secs: ttl("code_ttl_secs", raw.tokens.code_ttl_secs, defaults.code_ttl_secs, 10, 600),
        refresh_grace_secs: ttl(
            "refresh_grace_secs",
            raw.tokens.refresh_grace_secs,
            defaults.refresh_grace_secs,
            0,
            300,
        ),
    };

    let mut providers = Vec::new();
    for (name, p) in raw.providers {
        let key = |k: &str| format!("providers.{name}.{k}");
        if let Some(i) = &p.issuer {
            problems.url(&key("issuer"), i);
        }
        for (k, v) in [
            ("authorization_endpoint", &p.authorization_endpoint),
            ("token_endpoint", &p.token_endpoint),
            ("userinfo_endpoint", &p.userinfo_endpoint),
            ("jwks_uri", &p.jwks_uri),
        ] {
            if let Some(v) = v {
                problems.url(&key(k), v);
            }
        }
        if p.issuer.is_none() && (p.authorization_endpoint.is_none() || p.token_endpoint.is_none()) {
            problems.push(
                &format!("providers.{name}"),
                "set issuer (to discover the endpoints) or both authorization_endpoint and token_endpoint",
            );
        }
        let client_id = p.client_id.unwrap_or_else(|| {
            problems.required(&key("client_id"));
            String::new()
        });
        if p.client_secret.is_none() && p.client_secret_env.is_none() {
            problems.push(&key("client_secret"), "required (or client_secret_env)");
        }
        let client_secret =
            problems.secret(&key("client_secret"), p.client_secret, p.client_secret_env, lookup).unwrap_or_default();
        let auth_method = match p.token_endpoint_auth_method.as_deref() {
            None | Some("client_secret_post") => ProviderAuthMethod::ClientSecretPost,
            Some("client_secret_basic") => ProviderAuthMethod::ClientSecretBasic,
            Some(other) => {
                problems.push(
                    &key("token_endpoint_auth_method"),
                    format_args!("{other:?} is not client_secret_post or client_secret_basic"),
                );
                ProviderAuthMethod::ClientSecretPost
            }
        };
        let refresh_margin_secs = p.refresh_margin_secs.unwrap_or(60);
        problems.range(&key("refresh_margin_secs"), refresh_margin_secs, 0, 3600);
        providers.push(ProviderSettings {
            name,
            issuer: p.issuer,
            authorization_endpoint: p.authorization_endpoint,
            token_endpoint: p.token_endpoint,
            userinfo_endpoint: p.userinfo_endpoint,
            jwks_uri: p.jwks_uri,
            client_id,
            client_secret,
            auth_method,
            scopes: p.scopes,
            refresh_margin_secs,
            extra_authorize_params: p.authorize_params.into_iter().collect(),
            forward_resource: p.forward_resource.unwrap_or(false),
        });
    }

    let mut servers: Vec<Arc<ServerSettings>> = Vec::new();
    if raw.servers.is_empty() {
        problems.push("servers", "at least one [[servers]] entry is required");
    }
    for (i, s) in raw.servers.into_iter().enumerate() {
        let key = |k: &str| format!("servers[{i}].{k}");
        let slug = s.slug.unwrap_or_default();
        if slug.is_empty() || !slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            problems.push(&key("slug"), format_args!("{slug:?} must match [a-z0-9-]+"));
        } else if servers.iter().any(|o| o.slug == slug) {
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
            problems
                .push(&key("provider"), format_args!("no provider named {provider:?} is configured under [providers]"));
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
            match axum::http::HeaderName::from_bytes(h.as_bytes()) {
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
        servers.push(Arc::new(server));
    }

    let mut static_clients: Vec<Client> = Vec::new();
    for (i, c) in raw.clients.into_iter().enumerate() {
        let key = |k: &str| format!("clients[{i}].{k}");
        let client_id = c.client_id.unwrap_or_default();
        if client_id.is_empty() {
            problems.required(&key("client_id"));
        } else if static_clients.iter().any(|o| o.client_id == client_id) {
            problems.push(&key("client_id"), format_args!("{client_id:?} is listed twice"));
        }
        let secret = problems.secret(&key("client_secret"), c.client_secret, c.client_secret_env, lookup);
        let method = if secret.is_some() { "client_secret_basic" } else { "none" };
        let registration = serde_json::json!({
            "redirect_uris": c.redirect_uris,
            "token_endpoint_auth_method": method,
            "grant_types": ["authorization_code", "refresh_token"],
            "client_name": c.client_name.unwrap_or_else(|| client_id.clone()),
        });
        match ClientMetadata::from_registration(&registration) {
            Ok(metadata) => static_clients.push(Client {
                client_id,
                secret_hash: secret.as_deref().map(TokenHash::of),
                metadata,
                trusted: c.trusted.unwrap_or(false),
                created_at: 0,
            }),
            Err(e) => problems.push(&key("redirect_uris"), e.description),
        }
    }
    debug_assert!(
        static_clients.iter().all(|c| c.metadata.token_endpoint_auth_method != ClientAuthMethod::ClientSecretPost)
    );

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
            metadata_documents: MetadataDocumentSettings {
                enabled: raw.client_metadata_documents.enabled.unwrap_or(true),
                allow_loopback: raw.client_metadata_documents.allow_loopback.unwrap_or(false),
                ..Default::default()
            },
            trusted_proxies: vec![],
            connections: Default::default(),
        },
        providers,
        idle_timeout_secs: idle_timeout_secs.max(5) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn minimal() -> String {
        format!(
            r#"
public_url = "https://p.example"
[encryption]
key = "{KEY}"
[providers.gh]
authorization_endpoint = "https://github.com/login/oauth/authorize"
token_endpoint = "https://github.com/login/oauth/access_token"
userinfo_endpoint = "https://api.github.com/user"
client_id = "abc"
client_secret_env = "GH_SECRET"
[[servers]]
slug = "demo"
upstream_url = "http://127.0.0.1:9000/mcp"
provider = "gh"
"#
        )
    }

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup_vars = vars.clone();
        Config::from_parts(text, vars.into_iter(), &move |n| {
            lookup_vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn minimal_config_loads_with_defaults() {
        let c = load(&minimal(), &[("GH_SECRET", "s3cret")]).unwrap();
        assert_eq!(c.storage_url, DEFAULT_STORAGE_URL);
        assert_eq!(c.settings.tokens.access_ttl_secs, 3600);
        assert_eq!(c.providers[0].client_secret, "s3cret");
        assert_eq!(c.settings.servers[0].scopes.to_string(), "mcp");
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = load(
            &minimal(),
            &[
                ("GH_SECRET", "s"),
                ("MCP_OAUTH_PROXY_TOKENS__ACCESS_TTL_SECS", "120"),
                ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_URL", "http://127.0.0.1:9999/mcp"),
                ("MCP_OAUTH_PROXY_PROVIDERS__GH__SCOPES", "read:user, repo"),
                ("MCP_OAUTH_PROXY_LISTEN", "0.0.0.0:9090"),
                ("MCP_OAUTH_PROXY_LOG_FORMAT", "json"),
            ],
        )
        .unwrap();
        assert_eq!(c.settings.tokens.access_ttl_secs, 120);
        assert_eq!(c.settings.servers[0].mcp_upstream.as_str(), "http://127.0.0.1:9999/mcp");
        assert_eq!(c.providers[0].scopes, ["read:user", "repo"]);
        assert_eq!(c.listen.port(), 9090);
    }

    #[test]
    fn key_can_come_from_the_environment() {
        let text = minimal().replace(&format!("key = \"{KEY}\""), "");
        assert!(load(&text, &[("GH_SECRET", "s")]).is_err());
        assert!(load(&text, &[("GH_SECRET", "s"), ("MCP_OAUTH_PROXY_ENCRYPTION_KEY", KEY)]).is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let text = minimal().replace("client_id = \"abc\"", "client_id = \"abc\"\nclient_sekret = \"x\"");
        let e = load(&text, &[("GH_SECRET", "s")]).unwrap_err().to_string();
        assert!(e.contains("providers.gh") && e.contains("client_sekret"), "{e}");
    }

    #[test]
    fn every_problem_is_named_and_secrets_are_not_echoed() {
        let text = r#"
public_url = "https://p.example/"
[encryption]
key = "short"
[providers.gh]
client_id = "abc"
client_secret = "hunter2-very-secret"
[[servers]]
slug = "Bad Slug"
upstream_url = "not a url"
provider = "nope"
[[servers]]
slug = "ok"
upstream_url = "http://127.0.0.1:1/mcp"
provider = "gh"
[[servers]]
slug = "ok"
upstream_url = "http://127.0.0.1:1/mcp"
provider = "gh"
[[clients]]
client_id = "c"
redirect_uris = ["javascript:alert(1)"]
"#;
        let e = load(text, &[]).unwrap_err().to_string();
        for needle in [
            "public_url",
            "encryption.key",
            "providers.gh: set issuer",
            "servers[0].slug",
            "servers[0].upstream_url",
            "servers[0].provider",
            "servers[2].slug",
            "clients[0].redirect_uris",
        ] {
            assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
        }
        assert!(!e.contains("hunter2"), "{e}");
    }

    /// Every key set to something other than its default lands in the settings.
    #[test]
    fn every_key_reaches_the_settings() {
        let previous = seal::generate_key();
        let text = format!(
            r#"
listen = "0.0.0.0:9090"
public_url = "https://p.example/prefix"
idle_timeout_secs = 60
[storage]
url = "postgres://db/proxy"
[encryption]
key = "{KEY}"
previous_keys = ["{previous}"]
[tokens]
access_ttl_secs = 11
refresh_ttl_secs = 301
code_ttl_secs = 12
refresh_grace_secs = 0
[client_metadata_documents]
enabled = false
allow_loopback = true
[providers.oidc]
issuer = "https://id.example"
jwks_uri = "https://id.example/jwks"
client_id = "abc"
client_secret = "s"
token_endpoint_auth_method = "client_secret_basic"
scopes = ["openid", "email"]
refresh_margin_secs = 0
forward_resource = true
[providers.oidc.authorize_params]
prompt = "consent"
[[servers]]
slug = "docs-1"
upstream_url = "http://127.0.0.1:9000/mcp"
provider = "oidc"
scopes = ["read", "write"]
upstream_token_header = "X-Upstream-Token"
upstream_token_format = "Token {{token}}"
max_body_bytes = 2048
[[clients]]
client_id = "cli"
client_secret_env = "CLI_SECRET"
client_name = "The CLI"
redirect_uris = ["http://127.0.0.1/cb"]
trusted = true
"#
        );
        let c = load(&text, &[("CLI_SECRET", "cs")]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(c.idle_timeout_secs, 60);
        assert_eq!(c.storage_url, "postgres://db/proxy");
        let old = KeyRing::new(seal::decode_key(&previous).unwrap(), &[]);
        assert_eq!(c.keys.open(&old.seal(b"x", "aad"), "aad").unwrap(), b"x");

        let s = &c.settings;
        assert_eq!(s.public_url, "https://p.example/prefix");
        let t = &s.tokens;
        assert_eq!((t.access_ttl_secs, t.refresh_ttl_secs, t.code_ttl_secs, t.refresh_grace_secs), (11, 301, 12, 0));
        assert!(!s.metadata_documents.enabled && s.metadata_documents.allow_loopback);

        let p = &c.providers[0];
        assert_eq!((p.name.as_str(), p.issuer.as_deref()), ("oidc", Some("https://id.example")));
        assert_eq!((p.authorization_endpoint.as_deref(), p.token_endpoint.as_deref()), (None, None));
        assert_eq!(p.jwks_uri.as_deref(), Some("https://id.example/jwks"));
        assert_eq!((p.client_id.as_str(), p.client_secret.as_str()), ("abc", "s"));
        assert_eq!(p.auth_method, ProviderAuthMethod::ClientSecretBasic);
        assert_eq!(p.scopes, ["openid", "email"]);
        assert_eq!(p.refresh_margin_secs, 0);
        assert_eq!(p.extra_authorize_params, [("prompt".to_owned(), "consent".to_owned())]);
        assert!(p.forward_resource);

        let server = &s.servers[0];
        assert_eq!((server.slug.as_str(), server.provider.as_str()), ("docs-1", "oidc"));
        assert_eq!(server.mcp_upstream.as_str(), "http://127.0.0.1:9000/mcp");
        assert_eq!(server.scopes.to_string(), "read write");
        assert_eq!(server.upstream_token_header, "x-upstream-token");
        assert_eq!(server.upstream_token_format, "Token {token}");
        assert_eq!(server.max_body_bytes, 2048);

        let client = &s.static_clients[0];
        assert_eq!(client.client_id, "cli");
        assert!(client.secret_hash == Some(TokenHash::of("cs")));
        assert_eq!(client.metadata.token_endpoint_auth_method, ClientAuthMethod::ClientSecretBasic);
        assert_eq!(client.metadata.client_name.as_deref(), Some("The CLI"));
        assert_eq!(client.metadata.redirect_uris, ["http://127.0.0.1/cb"]);
        assert!(client.trusted);
    }

    fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
        load(text, env).unwrap_err().0
    }

    /// The exact text of every message: operators read them, and a refactoring of the
    /// validation must not change them.
    #[test]
    fn every_message_text_is_pinned() {
        let text = format!(
            r#"
listen = "localhost"
public_url = "https://p.example/"
idle_timeout_secs = 1
[storage]
url = "mysql://db"
[encryption]
key = "short"
previous_keys = ["{KEY}", "also-short"]
[tokens]
access_ttl_secs = 5
refresh_ttl_secs = 1
code_ttl_secs = 601
refresh_grace_secs = -1
[providers.a]
issuer = "not a url"
authorization_endpoint = "ftp://x.example/auth"
client_secret = "hunter2"
client_secret_env = "A_SECRET"
token_endpoint_auth_method = "private_key_jwt"
refresh_margin_secs = 3601
[providers.b]
token_endpoint = "https://b.example/token"
client_id = "b"
client_secret_env = "UNSET"
[providers.c]
issuer = "https://c.example"
[[servers]]
slug = "Bad Slug"
upstream_url = "not a url"
provider = "nope"
scopes = ["bad scope\\"]
upstream_token_header = "bad header"
upstream_token_format = "Token"
max_body_bytes = 1023
[[servers]]
slug = "ok"
provider = "b"
[[servers]]
slug = "ok"
upstream_url = "mailto:x@example.com"
provider = "b"
[[clients]]
redirect_uris = ["https://c.example/cb"]
[[clients]]
client_id = "c"
client_secret = "s"
client_secret_env = "C_SECRET"
redirect_uris = ["javascript:alert(1)"]
[[clients]]
client_id = "c"
client_secret_env = "UNSET"
redirect_uris = ["https://c.example/cb"]
[[clients]]
client_id = "c"
redirect_uris = ["https://c.example/cb"]
"#
        );
        let expected = [
            r#"listen: "localhost" is not an address like 127.0.0.1:8080"#,
            r#"public_url: "https://p.example/" must not end with a slash"#,
            "idle_timeout_secs: must be between 5 and 86400",
            "storage.url: must start with sqlite:// or postgres://",
            "encryption.key: encryption key must be base64 of exactly 32 bytes",
            "encryption.previous_keys[1]: encryption key must be base64 of exactly 32 bytes",
            "tokens.access_ttl_secs: 5 is out of range (10 to 86400 seconds)",
            "tokens.refresh_ttl_secs: 1 is out of range (300 to 31536000 seconds)",
            "tokens.code_ttl_secs: 601 is out of range (10 to 600 seconds)",
            "tokens.refresh_grace_secs: -1 is out of range (0 to 300 seconds)",
            r#"providers.a.issuer: "not a url" is not a URL (relative URL without a base)"#,
            r#"providers.a.authorization_endpoint: "ftp://x.example/auth" must be an http or https URL"#,
            "providers.a.client_id: required",
            "providers.a.client_secret: set either providers.a.client_secret or providers.a.client_secret_env, not both",
            r#"providers.a.token_endpoint_auth_method: "private_key_jwt" is not client_secret_post or client_secret_basic"#,
            "providers.a.refresh_margin_secs: must be between 0 and 3600",
            "providers.b: set issuer (to discover the endpoints) or both authorization_endpoint and token_endpoint",
            "providers.b.client_secret_env: the environment variable UNSET is not set",
            "providers.c.client_id: required",
            "providers.c.client_secret: required (or client_secret_env)",
            r#"servers[0].slug: "Bad Slug" must match [a-z0-9-]+"#,
            r#"servers[0].upstream_url: "not a url" is not a URL (relative URL without a base)"#,
            r#"servers[0].provider: no provider named "nope" is configured under [providers]"#,
            "servers[0].scopes: scope contains a character RFC 6749 does not allow",
            r#"servers[0].upstream_token_header: "bad header" is not a header name"#,
            "servers[0].upstream_token_format: must contain {token}",
            "servers[0].max_body_bytes: must be between 1024 and 1073741824",
            "servers[1].upstream_url: required",
            r#"servers[2].slug: "ok" is used by another server"#,
            r#"servers[2].upstream_url: "mailto:x@example.com" must be an http or https URL"#,
            "clients[0].client_id: required",
            "clients[1].client_secret: set either clients[1].client_secret or clients[1].client_secret_env, not both",
            r#"clients[1].redirect_uris: redirect URI "javascript:alert(1)": this scheme is not allowed"#,
            "clients[2].client_secret_env: the environment variable UNSET is not set",
            r#"clients[3].client_id: "c" is listed twice"#,
        ];
        assert_eq!(problems(&text, &[("A_SECRET", "s")]), expected);
    }

    #[test]
    fn messages_of_an_empty_configuration_are_pinned() {
        assert_eq!(
            problems("", &[]),
            [
                "public_url: required (the URL clients reach the proxy at, e.g. https://mcp.example.com)",
                "encryption.key: required (or MCP_OAUTH_PROXY_ENCRYPTION_KEY); create one with `mcp-oauth-proxy keygen`",
                "servers: at least one [[servers]] entry is required",
            ]
        );
    }

    #[test]
    fn public_url_messages_are_pinned() {
        for (url, expected) in [
            ("/relative", r#"public_url: "/relative" is not a URL (relative URL without a base)"#),
            ("ftp://p.example", r#"public_url: "ftp://p.example" must be an http or https URL"#),
            ("https://p.example/x?y=1", "public_url: must not have a query or fragment"),
        ] {
            let text = minimal().replace("https://p.example", url);
            assert_eq!(problems(&text, &[("GH_SECRET", "s")]), [expected], "{url}");
        }
    }

    #[test]
    fn messages_before_validation_are_pinned() {
        let secret = [("GH_SECRET", "s")];
        let toml_error = problems("x = ", &[]);
        assert!(toml_error.len() == 1 && toml_error[0].starts_with("TOML parse error at line 1"), "{toml_error:?}");
        let missing = std::path::Path::new("/nonexistent/proxy.toml");
        let read_error = Config::load(Some(missing)).unwrap_err().0;
        assert!(read_error.len() == 1 && read_error[0].starts_with("/nonexistent/proxy.toml: "), "{read_error:?}");
        let with_scopes = format!("{}scopes = [\"mcp\"]\n", minimal());
        for (var, expected) in [
            ("SERVERS__SLUG", "servers is a list; expected an index after it"),
            ("PUBLIC_URL__HOST", "public_url is not a table"),
            ("SERVERS__0__SCOPES__0__NAME", "scopes[0] is not a table"),
        ] {
            let var = format!("{ENV_PREFIX}{var}");
            assert_eq!(problems(&with_scopes, &[secret[0], (&var, "x")]), [format!("{var}: {expected}")]);
        }
        // The toml crate appends the path again after our text; that part is not ours to pin.
        let env_int = [secret[0], ("MCP_OAUTH_PROXY_TOKENS__ACCESS_TTL_SECS", "soon")];
        let env_bool = [secret[0], ("MCP_OAUTH_PROXY_CLIENT_METADATA_DOCUMENTS__ENABLED", "yes")];
        for (text, env, start) in [
            (minimal(), &env_int[..], r#"tokens.access_ttl_secs: "soon" is not a whole number"#),
            (minimal(), &env_bool, r#"client_metadata_documents.enabled: expected true or false, found String("yes")"#),
            (
                format!("idle_timeout_secs = true\n{}", minimal()),
                &secret,
                "idle_timeout_secs: expected a whole number, found boolean",
            ),
            (
                format!("{}scopes = 1\n", minimal()),
                &secret,
                "servers[0].scopes: expected a list of strings, found integer",
            ),
            (format!("{}scopes = [1]\n", minimal()), &secret, "servers[0].scopes: expected strings, found integer"),
        ] {
            let e = problems(&text, env);
            assert!(e.len() == 1 && e[0].starts_with(start), "{e:?}");
        }
    }
}
