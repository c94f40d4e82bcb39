//! The whole path, from TOML text and environment to `Config` or to every message.

use mcp_oauth_core::client::AuthMethod as ClientAuthMethod;
use mcp_oauth_core::seal::{self, KeyRing};
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_upstream::ProviderAuthMethod;

use super::{Config, ConfigErrors, DEFAULT_STORAGE_URL, ENV_PREFIX};

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
    assert_eq!(c.settings.servers[0].mcp_upstream.to_string(), "http://127.0.0.1:9999/mcp");
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
tool_changes = "warn"
[[servers]]
slug = "ok"
upstream_url = "http://127.0.0.1:1/mcp"
provider = "gh"
scopes = ["read"]
default_scopes = ["write"]
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
        "servers[1].tool_changes: \"warn\" must be \"off\", \"report\" or \"block\"",
        "servers[2].slug",
        "servers[2].default_scopes: write must be among this server's scopes (read)",
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
default_scopes = ["read"]
tool_changes = "block"
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
    assert_eq!(server.mcp_upstream.to_string(), "http://127.0.0.1:9000/mcp");
    assert_eq!(server.scopes.to_string(), "read write");
    assert_eq!(server.upstream_token_header, "x-upstream-token");
    assert_eq!(server.upstream_token_format, "Token {token}");
    assert_eq!(server.max_body_bytes, 2048);
    assert_eq!(server.default_scopes.to_string(), "read");
    assert_eq!(server.tool_changes, mcp_oauth_http::settings::ToolChanges::Block);

    let client = &s.static_clients[0];
    assert_eq!(client.client_id, "cli");
    assert!(client.secret_hash == Some(TokenHash::of("cs")));
    assert_eq!(client.metadata.token_endpoint_auth_method, ClientAuthMethod::ClientSecretBasic);
    assert_eq!(client.metadata.client_name.as_deref(), Some("The CLI"));
    assert_eq!(client.metadata.redirect_uris, ["http://127.0.0.1/cb"]);
    assert!(client.trusted);
}

/// The server settings hold the URL that validation parsed: what the proxy requests is
/// what was checked.
#[test]
fn servers_get_the_upstream_url_that_was_validated() {
    let text = minimal().replace("http://127.0.0.1:9000/mcp", "HTTP://LocalHost:80/a/../mcp");
    let c = load(&text, &[("GH_SECRET", "s")]).unwrap();
    assert_eq!(c.settings.servers[0].mcp_upstream.to_string(), "http://localhost/mcp");
}

fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    load(text, env).unwrap_err().0
}

#[test]
fn an_in_memory_sqlite_database_is_refused() {
    let with_memory = minimal().replacen("[encryption]", "[storage]\nurl = \"sqlite::memory:\"\n[encryption]", 1);
    assert_eq!(
        problems(&with_memory, &[("GH_SECRET", "s")]),
        ["storage.url: must name a file, as in sqlite://./data/proxy.db (not an in-memory database)"]
    );
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
        (format!("{}scopes = 1\n", minimal()), &secret, "servers[0].scopes: expected a list of strings, found integer"),
        (format!("{}scopes = [1]\n", minimal()), &secret, "servers[0].scopes: expected strings, found integer"),
    ] {
        let e = problems(&text, env);
        assert!(e.len() == 1 && e[0].starts_with(start), "{e:?}");
    }
}

/// A configuration whose only provider is `[providers.p]` with `body`.
fn with_provider(body: &str) -> String {
    format!(
        "public_url = \"https://p.example\"\n[encryption]\nkey = \"{KEY}\"\n[providers.p]\nclient_id = \"id\"\n\
         client_secret = \"s\"\n{body}\n[[servers]]\nslug = \"demo\"\nupstream_url = \"http://127.0.0.1:9000/mcp\"\n\
         provider = \"p\"\n"
    )
}

/// A preset's body, and what it resolves to: authorization endpoint, issuer, token
/// endpoint, scopes, userinfo endpoint.
type PresetCase = (&'static str, &'static str, Option<&'static str>, &'static str, &'static str, Option<&'static str>);

#[test]
fn presets_resolve_to_their_endpoints_without_the_network() {
    let cases: &[PresetCase] = &[
        (
            "preset = \"github\"",
            "https://github.com/login/oauth/authorize",
            None,
            "https://github.com/login/oauth/access_token",
            "read:user",
            Some("https://api.github.com/user"),
        ),
        (
            "preset = \"google\"",
            "https://accounts.google.com/o/oauth2/v2/auth",
            Some("https://accounts.google.com"),
            "https://oauth2.googleapis.com/token",
            "openid email profile",
            Some("https://openidconnect.googleapis.com/v1/userinfo"),
        ),
        (
            "preset = \"microsoft\"\ntenant = \"contoso.onmicrosoft.com\"",
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize",
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
            "openid email profile offline_access",
            Some("https://graph.microsoft.com/oidc/userinfo"),
        ),
        (
            "preset = \"okta\"\ndomain = \"example.okta.com\"",
            "https://example.okta.com/oauth2/v1/authorize",
            Some("https://example.okta.com"),
            "https://example.okta.com/oauth2/v1/token",
            "openid email profile offline_access",
            Some("https://example.okta.com/oauth2/v1/userinfo"),
        ),
        (
            "preset = \"auth0\"\ndomain = \"example.eu.auth0.com\"",
            "https://example.eu.auth0.com/authorize",
            Some("https://example.eu.auth0.com/"),
            "https://example.eu.auth0.com/oauth/token",
            "openid email profile offline_access",
            Some("https://example.eu.auth0.com/userinfo"),
        ),
        (
            "preset = \"keycloak\"\nrealm_url = \"https://sso.example.com/realms/staff/\"",
            "https://sso.example.com/realms/staff/protocol/openid-connect/auth",
            Some("https://sso.example.com/realms/staff"),
            "https://sso.example.com/realms/staff/protocol/openid-connect/token",
            "openid email profile offline_access",
            Some("https://sso.example.com/realms/staff/protocol/openid-connect/userinfo"),
        ),
        (
            "preset = \"gitlab\"",
            "https://gitlab.com/oauth/authorize",
            Some("https://gitlab.com"),
            "https://gitlab.com/oauth/token",
            "openid email profile",
            Some("https://gitlab.com/oauth/userinfo"),
        ),
    ];
    for (body, authorize, issuer, token, scopes, userinfo) in cases {
        let c = load(&with_provider(body), &[]).unwrap_or_else(|e| panic!("{body}: {e}"));
        let p = &c.providers[0];
        assert_eq!(p.authorization_endpoint.as_deref(), Some(*authorize), "{body}");
        assert_eq!(p.issuer.as_deref(), *issuer, "{body}");
        assert_eq!(p.token_endpoint.as_deref(), Some(*token), "{body}");
        assert_eq!(p.scopes.join(" "), *scopes, "{body}");
        assert_eq!(p.userinfo_endpoint.as_deref(), *userinfo, "{body}");
    }
    let google = load(&with_provider("preset = \"google\""), &[]).unwrap();
    let params: Vec<(String, String)> = google.providers[0].extra_authorize_params.clone();
    assert!(
        params.contains(&("access_type".into(), "offline".into()))
            && params.contains(&("prompt".into(), "consent".into()))
    );
}

#[test]
fn explicit_keys_win_over_a_preset_and_missing_parameters_are_named() {
    let c = load(
        &with_provider("preset = \"google\"\nscopes = [\"openid\"]\ntoken_endpoint = \"https://t.example/token\""),
        &[],
    )
    .unwrap();
    assert_eq!(c.providers[0].token_endpoint.as_deref(), Some("https://t.example/token"));
    assert_eq!(c.providers[0].scopes, ["openid"]);
    let e = load(&with_provider("preset = \"microsoft\""), &[]).unwrap_err().to_string();
    assert!(e.contains("providers.p.preset") && e.contains("tenant"), "{e}");
    let e = load(&with_provider("preset = \"facebook\""), &[]).unwrap_err().to_string();
    assert!(e.contains("providers.p.preset") && e.contains("keycloak"), "{e}");
}

#[test]
fn connections_per_address_and_the_ipv6_prefix_have_defaults_and_bounds() {
    let c = load(&minimal(), &[("GH_SECRET", "s")]).unwrap();
    assert_eq!(c.settings.connections.max_connections_per_address, 256);
    assert_eq!(c.settings.connections.ipv6_prefix_len, 64);

    let text = format!("{}\n[limits]\nmax_connections_per_address = 8\nipv6_prefix_length = 56\n", minimal());
    let c = load(&text, &[("GH_SECRET", "s")]).unwrap();
    assert_eq!(c.settings.connections.max_connections_per_address, 8);
    assert_eq!(c.settings.connections.ipv6_prefix_len, 56);

    let text = format!("{}\n[limits]\nmax_connections_per_address = 0\nipv6_prefix_length = 129\n", minimal());
    let errors = load(&text, &[("GH_SECRET", "s")]).unwrap_err().0;
    assert!(
        errors.contains(&"limits.max_connections_per_address: must be between 1 and 10000000".to_owned()),
        "{errors:?}"
    );
    assert!(errors.contains(&"limits.ipv6_prefix_length: must be between 32 and 128".to_owned()), "{errors:?}");
}

/// Review finding: the README says ties between equally specific patterns go to the one
/// listed first, but the configuration was a sorted map, so they went alphabetically.
#[test]
fn tool_scope_ties_go_to_the_first_listed_pattern() {
    // Both globs have four literal characters and match "read_note"; "read*" is listed
    // first but sorts after "*note".
    let text = minimal().replace(
        "[[servers]]",
        "[[servers]]\ntool_scopes = { \"read*\" = [\"notes:read\"], \"*note\" = [\"notes:write\"] }",
    );
    let c = load(&text, &[("GH_SECRET", "s3cret")]).unwrap();
    let rules = &c.settings.servers[0].tool_scopes;
    assert_eq!(rules.required("read_note").to_string(), "notes:read", "the first listed, not the first sorted");
}

#[test]
fn upstream_auth_defaults_to_the_provider_token_and_reads_each_mode() {
    use mcp_oauth_http::settings::UpstreamAuth;
    let c = load(&minimal(), &[("GH_SECRET", "s")]).unwrap();
    assert_eq!(c.settings.servers[0].upstream_auth, UpstreamAuth::ProviderToken);
    assert!(!c.settings.servers[0].identity_headers);

    let none = format!("{}upstream_auth = \"none\"\nidentity_headers = true\n", minimal());
    let c = load(&none, &[("GH_SECRET", "s")]).unwrap();
    assert_eq!(c.settings.servers[0].upstream_auth, UpstreamAuth::None);
    assert!(c.settings.servers[0].identity_headers);

    // The defaults: aud the upstream URL as written, five minutes, Authorization: Bearer.
    let identity = format!("{}upstream_auth = \"identity\"\n", minimal());
    let c = load(&identity, &[("GH_SECRET", "s")]).unwrap();
    let UpstreamAuth::Identity(settings) = &c.settings.servers[0].upstream_auth else { panic!("identity") };
    assert_eq!(settings.audience, "http://127.0.0.1:9000/mcp");
    assert_eq!((settings.lifetime_secs, settings.header.clone(), settings.static_header.clone()), (300, None, None));

    let full = format!(
        "{}upstream_auth = \"identity\"\n[servers.identity]\naudience = \"urn:tools\"\nlifetime_secs = 120\n\
         header = \"X-Identity\"\nstatic_header = {{ name = \"X-Api-Key\", value_env = \"TOOLS_KEY\" }}\n",
        minimal()
    );
    let c = load(&full, &[("GH_SECRET", "s"), ("TOOLS_KEY", "k-123")]).unwrap();
    let UpstreamAuth::Identity(settings) = &c.settings.servers[0].upstream_auth else { panic!("identity") };
    assert_eq!((settings.audience.as_str(), settings.lifetime_secs), ("urn:tools", 120));
    assert_eq!(settings.header.as_ref().map(|h| h.as_str()), Some("x-identity"));
    let (name, value) = settings.static_header.as_ref().unwrap();
    assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-api-key", "k-123"));
    assert!(value.is_sensitive());
    assert!(!format!("{c:?}").contains("k-123"), "the static credential is not printed");
    // From the environment too.
    let c = load(
        &minimal(),
        &[
            ("GH_SECRET", "s"),
            ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity"),
            ("MCP_OAUTH_PROXY_SERVERS__0__IDENTITY__LIFETIME_SECS", "60"),
        ],
    )
    .unwrap();
    assert!(matches!(&c.settings.servers[0].upstream_auth, UpstreamAuth::Identity(s) if s.lifetime_secs == 60));
}

#[test]
fn upstream_auth_problems_name_their_keys() {
    let bad_mode = format!("{}upstream_auth = \"oauth2\"\n", minimal());
    assert_eq!(
        problems(&bad_mode, &[("GH_SECRET", "s")]),
        [r#"servers[0].upstream_auth: "oauth2" must be "provider_token", "identity", "oauth" or "none""#]
    );
    let stray = format!("{}[servers.identity]\nlifetime_secs = 60\n", minimal());
    assert_eq!(
        problems(&stray, &[("GH_SECRET", "s")]),
        [r#"servers[0].identity: applies only with upstream_auth = "identity""#]
    );
    let bad = format!(
        "{}upstream_auth = \"identity\"\n[servers.identity]\naudience = \"\"\nlifetime_secs = 5\n\
         header = \"X-Forwarded-User\"\nstatic_header = {{ name = \"bad name\", value_env = \"MISSING_KEY\" }}\n",
        minimal()
    );
    assert_eq!(
        problems(&bad, &[("GH_SECRET", "s")]),
        [
            "servers[0].identity.audience: must not be empty; leave it out for the upstream URL",
            "servers[0].identity.lifetime_secs: must be between 30 and 3600",
            r#"servers[0].identity.header: "X-Forwarded-User" is a header the proxy does not let carry a credential"#,
            r#"servers[0].identity.static_header.name: "bad name" is not a header name"#,
            "servers[0].identity.static_header.value_env: the environment variable MISSING_KEY is not set",
        ]
    );
    let clash = format!(
        "{}upstream_auth = \"identity\"\n[servers.identity]\nstatic_header = {{ name = \"Authorization\" }}\n",
        minimal()
    );
    assert_eq!(
        problems(&clash, &[("GH_SECRET", "s")]),
        [
            "servers[0].identity.static_header.name: authorization already carries the assertion",
            "servers[0].identity.static_header.value_env: required",
        ]
    );
    let unknown = format!("{}upstream_auth = \"identity\"\n[servers.identity]\nissuer = \"x\"\n", minimal());
    let e = load(&unknown, &[("GH_SECRET", "s")]).unwrap_err().to_string();
    assert!(e.contains("servers[0].identity") && e.contains("issuer"), "{e}");
}

#[test]
fn brokered_oauth_reads_its_table_and_names_the_keys_of_its_problems() {
    use mcp_oauth_http::settings::UpstreamAuth;
    let plain = format!("{}upstream_auth = \"oauth\"\n", minimal());
    let c = load(&plain, &[("GH_SECRET", "s")]).unwrap();
    let UpstreamAuth::OAuth(o) = &c.settings.servers[0].upstream_auth else { panic!("oauth") };
    assert_eq!((o.client_id.as_deref(), o.client_secret.as_deref(), o.scopes.as_ref()), (None, None, None));
    assert!(!o.allow_http_loopback);
    assert!(c.settings.servers[0].upstream_auth.needs_provider_token(), "its token is opened and refreshed");

    let full = format!(
        "{}upstream_auth = \"oauth\"\n[servers.upstream_oauth]\nclient_id = \"proxy\"\n\
         client_secret_env = \"UP_SECRET\"\nscopes = [\"files:read\"]\nallow_http_loopback = true\n",
        minimal()
    );
    let c = load(&full, &[("GH_SECRET", "s"), ("UP_SECRET", "up-123")]).unwrap();
    let UpstreamAuth::OAuth(o) = &c.settings.servers[0].upstream_auth else { panic!("oauth") };
    assert_eq!((o.client_id.as_deref(), o.client_secret.as_deref()), (Some("proxy"), Some("up-123")));
    assert_eq!(o.scopes.as_deref(), Some(&["files:read".to_owned()][..]));
    assert!(!format!("{c:?}").contains("up-123"), "the secret is not printed");

    let bad = format!(
        "{}upstream_auth = \"oauth\"\nupstream_token_format = \"token {{token}}\"\n\
         [servers.upstream_oauth]\nclient_secret_env = \"UP_SECRET\"\nrefresh_margin_secs = 7200\n",
        minimal()
    );
    assert_eq!(
        problems(&bad, &[("GH_SECRET", "s"), ("UP_SECRET", "x")]),
        [
            r#"servers[0].upstream_token_format: does not apply with upstream_auth = "oauth" (the token goes as Authorization: Bearer)"#,
            "servers[0].upstream_oauth.client_secret_env: applies only with client_id (a pre-registered client)",
            "servers[0].upstream_oauth.refresh_margin_secs: must be between 0 and 3600",
        ]
    );
    let stray = format!("{}[servers.upstream_oauth]\nclient_id = \"x\"\n", minimal());
    assert_eq!(
        problems(&stray, &[("GH_SECRET", "s")]),
        [r#"servers[0].upstream_oauth: applies only with upstream_auth = "oauth""#]
    );
    let missing = format!(
        "{}upstream_auth = \"oauth\"\n[servers.upstream_oauth]\nclient_id = \"x\"\nclient_secret_env = \"NOPE\"\n",
        minimal()
    );
    assert_eq!(
        problems(&missing, &[("GH_SECRET", "s")]),
        ["servers[0].upstream_oauth.client_secret_env: the environment variable NOPE is not set"]
    );
}

#[test]
fn a_brokered_server_may_go_without_a_provider_but_not_with_access_rules() {
    let solo = minimal().replace("provider = \"gh\"\n", "upstream_auth = \"oauth\"\n");
    let c = load(&solo, &[("GH_SECRET", "s")]).unwrap();
    assert!(!c.settings.servers[0].has_provider());
    let ruled = format!("{solo}access = {{ emails = [\"a@example.com\"] }}\n");
    let found = problems(&ruled, &[("GH_SECRET", "s")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("servers[0].access: needs what a provider says of the user"), "{found:?}");
    // Any other mode still needs one.
    let plain = minimal().replace("provider = \"gh\"\n", "");
    assert_eq!(
        problems(&plain, &[("GH_SECRET", "s")]),
        [r#"servers[0].provider: no provider named "" is configured under [providers]"#]
    );
}

#[test]
fn the_console_names_its_operators_at_a_provider_a_server_uses() {
    let env = [("GH_SECRET", "s")];
    let ok = load(&format!("{}\n[admin]\nemails = [\"ops@example.com\"]\n", minimal()), &env).unwrap();
    let admin = ok.settings.admin.expect("[admin] given");
    assert_eq!(admin.provider, "gh", "the one provider in use, when not named");
    assert_eq!(admin.operators.emails, ["ops@example.com"]);
    assert!(load(&minimal(), &env).unwrap().settings.admin.is_none());

    let nobody = problems(&format!("{}\n[admin]\nprovider = \"gh\"\n", minimal()), &env);
    assert!(nobody.iter().any(|p| p.starts_with("admin:") && p.contains("names no operator")), "{nobody:?}");
    let unknown = problems(&format!("{}\n[admin]\nprovider = \"okta\"\nsubjects = [\"1\"]\n", minimal()), &env);
    assert!(unknown.iter().any(|p| p.starts_with("admin.provider:")), "{unknown:?}");
    let domains = problems(&format!("{}\n[admin]\nemail_domains = [\"example.com\"]\n", minimal()), &env);
    assert!(!domains.is_empty(), "a whole domain cannot be operators: {domains:?}");
}

#[test]
fn client_credentials_clients_and_the_servers_they_may_use() {
    let with = |more: &str| format!("{}access = {{ clients = [\"ci-bot\"] }}\n{more}", minimal());
    let bot = "[[clients]]\nclient_id = \"ci-bot\"\nclient_secret = \"s3cret-bot\"\n\
               grant_types = [\"client_credentials\"]\nscopes = [\"mcp\"]\n";
    // A server that sends provider tokens cannot take a client on its own behalf.
    let e = load(&with(bot), &[("GH_SECRET", "s")]).unwrap_err().to_string();
    assert!(e.contains("servers[0].access.clients") && e.contains("servers[0].upstream_auth"), "{e}");
    let identity = [("GH_SECRET", "s"), ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity")];
    let c = load(&with(bot), &identity).unwrap();
    assert!(c.settings.servers[0].access.as_ref().unwrap().allows_client("ci-bot"));
    let client = &c.settings.static_clients[0];
    assert_eq!(client.metadata.grant_types, ["client_credentials"]);
    assert_eq!(client.metadata.scope.as_deref(), Some("mcp"));
    assert!(client.metadata.redirect_uris.is_empty() && client.secret_hash.is_some());
    // No secret, an unknown grant, a refresh token without a user, redirect URIs unused.
    let bad = "[[clients]]\nclient_id = \"ci-bot\"\ngrant_types = [\"client_credentials\", \"password\"]\n\
               [[clients]]\nclient_id = \"b\"\nclient_secret = \"s3cret-b\"\n\
               grant_types = [\"client_credentials\", \"refresh_token\"]\nredirect_uris = [\"https://a.example/cb\"]\n";
    let e = load(&with(bad), &identity).unwrap_err().to_string();
    for needle in [
        "clients[0].grant_types: \"password\"",
        "client_credentials needs a client_secret",
        "clients[1].grant_types: refresh_token needs authorization_code",
        "clients[1].redirect_uris",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
    // Keys instead of a secret: private_key_jwt; both at once is refused.
    let keyed = "[[clients]]\nclient_id = \"ci-bot\"\ngrant_types = [\"client_credentials\"]\n\
                 jwks = '{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"x\": \"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}'\n";
    let c = load(&with(keyed), &identity).unwrap();
    assert_eq!(c.settings.static_clients[0].metadata.token_endpoint_auth_method, ClientAuthMethod::PrivateKeyJwt);
    let e = load(&with(&format!("{keyed}client_secret = \"s3cret-bot\"\n")), &identity).unwrap_err().to_string();
    assert!(e.contains("clients[0].jwks: a client authenticates with a secret or with keys"), "{e}");
}

#[test]
fn enterprise_idps_and_the_servers_that_take_their_assertions() {
    let idp = "[enterprise_idps.acme]\nissuer = \"https://acme.okta.com\"\n\
               jwks_url = \"https://acme.okta.com/oauth2/v1/keys\"\nclients = [\"claude-enterprise\"]\n";
    let text = format!("{}enterprise_idps = [\"acme\"]\n{idp}", minimal());
    // A server that sends provider tokens cannot take ID-JAGs.
    let e = load(&text, &[("GH_SECRET", "s")]).unwrap_err().to_string();
    assert!(e.contains("servers[0].enterprise_idps") && e.contains("servers[0].upstream_auth"), "{e}");
    let identity = [("GH_SECRET", "s"), ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "identity")];
    let c = load(&text, &identity).unwrap();
    let acme = &c.settings.enterprise_idps[0];
    assert_eq!((acme.name.as_str(), acme.issuer.as_str()), ("acme", "https://acme.okta.com"));
    assert_eq!(
        (acme.email_claim.as_str(), acme.groups_claim.as_str(), acme.max_lifetime_secs),
        ("email", "groups", 600)
    );
    assert_eq!(c.settings.servers[0].enterprise_idps, ["acme"]);
    // Each problem names its key.
    let bad = format!(
        "{}enterprise_idps = [\"acme\", \"nobody\"]\n[enterprise_idps.acme]\njwks = \"not json\"\nmax_lifetime_secs = 99999\n\
         [enterprise_idps.beta]\nissuer = \"https://b.example\"\n\
         [enterprise_idps.\"a:b\"]\nissuer = \"https://ab.example\"\njwks_url = \"https://ab.example/keys\"\n",
        minimal()
    );
    let e = load(&bad, &identity).unwrap_err().to_string();
    for needle in [
        "enterprise_idps.acme.issuer",
        "enterprise_idps.acme.jwks",
        "enterprise_idps.acme.max_lifetime_secs",
        "enterprise_idps.beta.jwks_url",
        "enterprise_idps.a:b: an IdP's name is letters, digits",
        "servers[0].enterprise_idps: no IdP named \"nobody\"",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}
