//! The validated runtime settings the HTTP layer works from. The binary's config loader
//! builds these from TOML and the environment; tests build them directly.

use std::sync::Arc;

use mcp_oauth_core::client::Client;
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::tool_scopes::ToolScopes;

#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    pub code_ttl_secs: i64,
    pub refresh_grace_secs: i64,
    /// How long a browser's approval of a client is remembered (the consent page is
    /// skipped meanwhile).
    pub consent_ttl_secs: i64,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_ttl_secs: 3600,
            refresh_ttl_secs: 30 * 24 * 3600,
            code_ttl_secs: 60,
            refresh_grace_secs: 30,
            consent_ttl_secs: 30 * 24 * 3600,
        }
    }
}

/// The scope asking for refresh tokens (OpenID Connect Core §11); refresh tokens are
/// issued as the client's registration says either way.
pub const OFFLINE_ACCESS: &str = "offline_access";

/// One protected MCP server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub slug: String,
    /// Where the proxy reaches the MCP server (the "MCP upstream"), validated once by the
    /// configuration loader: a bad URL stops the proxy at start, never a request.
    pub mcp_upstream: axum::http::Uri,
    /// The name of the identity provider users of this server log in with; empty for a
    /// brokered server (`upstream_auth = "oauth"`) without one, whose users log in at the
    /// MCP upstream's own authorization server only (see [`Self::has_provider`]).
    pub provider: String,
    /// The scopes this server's authorization server offers.
    pub scopes: Scopes,
    /// What a client that asks for no scope (or none this server knows) is granted, and
    /// what a 401 asks for: the least a client needs to start, a tool's own scopes coming
    /// by step-up when a call needs them (least privilege, as the MCP scope-selection
    /// rules intend). `default_scopes` when configured; else the listed `scopes`, never
    /// the scopes only tools add; else (nothing listed) every scope.
    pub default_scopes: Scopes,
    /// The request header that carries the user's provider token to the MCP upstream.
    pub upstream_token_header: axum::http::HeaderName,
    /// Its value, with `{token}` standing for the token (default `Bearer {token}`).
    pub upstream_token_format: String,
    /// Larger MCP request bodies get 413.
    pub max_body_bytes: usize,
    /// Who may use this server; `None`: everyone the provider authenticates.
    pub access: Option<AccessRules>,
    /// What each scope allows, in the operator's words, for the consent page.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    /// The scopes each tool's calls need (see `mcp_oauth_core::tool_scopes`); empty: any
    /// valid token may call any tool, and MCP traffic is forwarded untouched.
    pub tool_scopes: ToolScopes,
    /// Leave the tools a token may not call out of `tools/list` answers.
    pub hide_unauthorized_tools: bool,
    /// What a tool whose definition changed since it was pinned meets (see `tool_pins`).
    pub tool_changes: ToolChanges,
    /// What the MCP upstream receives to know the request is the user's.
    pub upstream_auth: UpstreamAuth,
    /// Send `X-Forwarded-User`, `-Email` (verified only) and `-Groups` from the verified
    /// identity, for MCP upstreams written for oauth2-proxy.
    pub identity_headers: bool,
    /// The enterprise IdPs (their names) whose ID-JAGs this server accepts.
    pub enterprise_idps: Vec<String>,
}

/// What the MCP upstream receives with each request (`upstream_auth`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UpstreamAuth {
    /// The user's provider token, in `upstream_token_header` (today's behaviour).
    #[default]
    ProviderToken,
    /// A JWT the proxy signs for the grant (see `mcp_oauth_core::identity_assertion`).
    Identity(IdentitySettings),
    /// Nothing: an upstream that trusts its network.
    None,
    /// Brokered OAuth: the MCP upstream is OAuth-protected itself; the proxy is its
    /// client, and sends the user's token from the upstream's own authorization server
    /// (see `services::brokers`).
    OAuth(UpstreamOAuthSettings),
}

impl UpstreamAuth {
    /// Whether requests need the grant's sealed upstream token (opened, and refreshed
    /// when due): the provider's token, or, brokered, the upstream authorization server's.
    pub fn needs_provider_token(&self) -> bool {
        matches!(self, Self::ProviderToken | Self::OAuth(_))
    }

    /// The configuration's word for it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ProviderToken => "provider_token",
            Self::Identity(_) => "identity",
            Self::OAuth(_) => "oauth",
            Self::None => "none",
        }
    }

    pub fn brokered(&self) -> Option<&UpstreamOAuthSettings> {
        match self {
            Self::OAuth(settings) => Some(settings),
            _ => None,
        }
    }
}

/// `[servers.upstream_oauth]`: brokered OAuth to an OAuth-protected MCP upstream.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UpstreamOAuthSettings {
    /// A client registered by hand at the upstream's authorization server: used first.
    pub client_id: Option<String>,
    /// Its secret (from `client_secret_env`); `None`: a public client.
    pub client_secret: Option<String>,
    /// The scopes to ask the upstream for, instead of those its challenge or metadata name.
    pub scopes: Option<Vec<String>>,
    /// Accept plain http on loopback for the upstream's authorization server (its
    /// metadata's URLs must otherwise be https): development and tests only.
    pub allow_http_loopback: bool,
    /// Refresh the upstream's access token this long before it expires.
    pub refresh_margin_secs: i64,
}

impl std::fmt::Debug for UpstreamOAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOAuthSettings")
            .field("client_id", &self.client_id)
            .field("has_client_secret", &self.client_secret.is_some())
            .field("scopes", &self.scopes)
            .field("allow_http_loopback", &self.allow_http_loopback)
            .finish_non_exhaustive()
    }
}

impl UpstreamOAuthSettings {
    pub const DEFAULT_REFRESH_MARGIN_SECS: i64 = 60;
}

/// `[servers.identity]`: the identity assertion for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// The assertion's `aud`: by default the server's `upstream_url`.
    pub audience: String,
    pub lifetime_secs: i64,
    /// The header carrying the bare JWT; `None`: `Authorization: Bearer <jwt>`.
    pub header: Option<axum::http::HeaderName>,
    /// A static credential sent beside the assertion (an API key the upstream also
    /// wants), its value read from the environment at load and marked sensitive.
    pub static_header: Option<(axum::http::HeaderName, axum::http::HeaderValue)>,
}

impl IdentitySettings {
    pub const DEFAULT_LIFETIME_SECS: i64 = 300;

    pub fn new(audience: &str) -> Self {
        Self {
            audience: audience.to_owned(),
            lifetime_secs: Self::DEFAULT_LIFETIME_SECS,
            header: None,
            static_header: None,
        }
    }
}

/// Request headers that say who the user is or where the request came from, which an
/// upstream written for an authenticating proxy (oauth2-proxy, Pomerium, a load balancer)
/// believes: the proxy's to set, never a client's to pass on. `name` is lower case, as
/// `HeaderName`s are.
pub fn speaks_for_the_proxy(name: &str) -> bool {
    name == "forwarded"
        || name.starts_with("x-forwarded-")
        || name == "x-real-ip"
        || name.starts_with("x-auth-request-")
        || name == "x-remote-user"
        || name == "remote-user"
}

/// What the proxy does when a tool's definition differs from the one it pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChanges {
    /// Nothing is pinned.
    Off,
    /// The change is audited, counted and shown on the consent page.
    #[default]
    Report,
    /// As `Report`, and the tool is hidden and its calls refused until an operator
    /// accepts the change.
    Block,
}

/// An enterprise IdP (`[enterprise_idps.<name>]`) whose ID-JAGs are accepted.
#[derive(Debug, Clone)]
pub struct EnterpriseIdp {
    pub name: String,
    /// Its issuer identifier: an ID-JAG's `iss`, exactly.
    pub issuer: String,
    pub keys: IdpKeys,
    /// The clients that may present its assertions; `None`: any client it names.
    pub clients: Option<Vec<String>>,
    pub email_claim: String,
    pub groups_claim: String,
    /// The longest `exp - iat` accepted.
    pub max_lifetime_secs: i64,
}

/// Where an enterprise IdP's signing keys come from.
#[derive(Debug, Clone)]
pub enum IdpKeys {
    Inline(jsonwebtoken::jwk::JwkSet),
    Url(url::Url),
}

/// Who may use a server: a user is let in when any one rule matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRules {
    /// Provider subjects (`sub`, or the user id for GitHub-like providers).
    pub subjects: Vec<String>,
    /// Verified email addresses, compared without case.
    pub emails: Vec<String>,
    /// Domains of verified email addresses (`example.com`), compared without case.
    pub email_domains: Vec<String>,
    /// Groups from the provider's groups claim.
    pub groups: Vec<String>,
    /// Client ids that may use the server on their own behalf (the client credentials
    /// grant). A client is never let in by the other rules, nor a user by this one.
    pub clients: Vec<String>,
}

impl AccessRules {
    /// Whether `client_id` may be given a token of its own (client credentials).
    pub fn allows_client(&self, client_id: &str) -> bool {
        self.clients.iter().any(|c| c == client_id)
    }

    pub fn allows(&self, who: &mcp_oauth_upstream::Identity) -> bool {
        let email = who.email.as_deref().map(str::to_ascii_lowercase);
        let domain = email.as_deref().and_then(|e| e.rsplit_once('@')).map(|(_, d)| d.to_owned());
        self.subjects.contains(&who.subject)
            || email.as_deref().is_some_and(|e| self.emails.iter().any(|x| x.eq_ignore_ascii_case(e)))
            || domain.as_deref().is_some_and(|d| self.email_domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
            || who.groups.iter().any(|g| self.groups.contains(g))
    }
}

impl ServerSettings {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

    /// What this server's authorization server grants: its scopes, and `offline_access`,
    /// which clients may ask for and which belongs to the authorization server alone
    /// (SEP-2207: listed in its metadata, never in the resource's or in challenges).
    pub fn grantable_scopes(&self) -> Scopes {
        Scopes::from_list(self.scopes.iter().chain(std::iter::once(OFFLINE_ACCESS)))
    }

    /// Whether users log in at a provider first (every server but a brokered one without
    /// `provider`).
    pub fn has_provider(&self) -> bool {
        !self.provider.is_empty()
    }

    /// A server with the default token header, format and limits.
    pub fn new(slug: &str, mcp_upstream: axum::http::Uri, provider: &str, scopes: Scopes) -> Self {
        Self {
            slug: slug.to_owned(),
            mcp_upstream,
            provider: provider.to_owned(),
            default_scopes: scopes.clone(),
            scopes,
            upstream_token_header: axum::http::header::AUTHORIZATION,
            upstream_token_format: "Bearer {token}".to_owned(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            access: None,
            scope_descriptions: Default::default(),
            tool_scopes: ToolScopes::default(),
            hide_unauthorized_tools: false,
            tool_changes: ToolChanges::default(),
            upstream_auth: UpstreamAuth::default(),
            identity_headers: false,
            enterprise_idps: Vec::new(),
        }
    }
}

/// Client ID Metadata Documents: clients identified by an https URL to their metadata.
#[derive(Debug, Clone)]
pub struct MetadataDocumentSettings {
    pub enabled: bool,
    /// Fetch from loopback (and over plain http): for development and tests only.
    pub allow_loopback: bool,
    /// What the cache of fetched documents may hold, in bytes of its own accounting.
    pub cache_bytes: usize,
    /// Fetches from one host per minute; more are answered 503 with `Retry-After` until
    /// the minute has passed.
    pub fetches_per_host_per_minute: u32,
    /// The hosts documents may come from (`app.example`, or `*.example.com` for its
    /// subdomains); `None`: any public host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Hosts the operator vouches for: their clients are marked verified, with the host
    /// shown prominently, on the consent page.
    pub verified_hosts: Vec<String>,
}

impl MetadataDocumentSettings {
    pub fn allows(&self, host: &str) -> bool {
        self.allowed_hosts.as_ref().is_none_or(|patterns| patterns.iter().any(|p| host_matches(p, host)))
    }

    pub fn verifies(&self, host: &str) -> bool {
        self.verified_hosts.iter().any(|p| host_matches(p, host))
    }
}

/// `pattern` is a host name, or `*.` and a domain for every host below that domain.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1
                && host.to_ascii_lowercase().ends_with(&format!(".{}", domain.to_ascii_lowercase()))
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

impl Default for MetadataDocumentSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_loopback: false,
            cache_bytes: 4 * 1024 * 1024,
            fetches_per_host_per_minute: 30,
            allowed_hosts: None,
            verified_hosts: vec![],
        }
    }
}

/// Bounds on connections, so slow or numerous clients cannot hold the proxy.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// A connection whose request headers have not all arrived by then is closed.
    pub header_read_timeout: std::time::Duration,
    /// A request body (OAuth forms, MCP requests) must have arrived whole within this of
    /// the request reaching the router, however it is split; otherwise 408. One deadline
    /// for the whole body, not a timeout between its bytes (see `body_deadline`).
    pub body_read_timeout: std::time::Duration,
    /// Connections open at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// Connections open at once from one socket peer address (IPv6 peers grouped by
    /// `ipv6_prefix_len`), so that one address cannot hold all of `max_connections`;
    /// further ones are closed at once. Trusted proxies are not capped: they carry
    /// everyone's connections.
    pub max_connections_per_address: usize,
    /// How many leading bits of an IPv6 address name one client (`limits.ipv6_prefix_length`):
    /// a host is usually given a whole /64, and would otherwise have 2^64 addresses.
    pub ipv6_prefix_len: u8,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 20_000,
            max_connections_per_address: 256,
            ipv6_prefix_len: 64,
        }
    }
}

/// Bounds on what anonymous callers can make the proxy do, per client address (and per
/// client for failures). Over a bound: 429 with `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Dynamic registrations per address and minute.
    pub registrations_per_minute: u32,
    /// Authorization requests (consent page views and answers) per address and minute.
    pub authorizations_per_minute: u32,
    /// Failed client authentications (wrong secrets) at the token and revocation
    /// endpoints per client and address, per minute; an address as a whole may fail four
    /// times as often. Refused grants and successful requests never count.
    pub failures_per_minute: u32,
    /// Logins one browser may have started and not finished.
    pub pending_per_browser: u32,
    /// Logins one address may have started and not finished.
    pub pending_per_address: u32,
    /// IPv6 addresses are limited by their network of this many bits (one host commonly
    /// holds a /64).
    pub ipv6_prefix_len: u8,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            registrations_per_minute: 30,
            authorizations_per_minute: 120,
            failures_per_minute: 30,
            pending_per_browser: 20,
            pending_per_address: 100,
            ipv6_prefix_len: 64,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `scheme://host[:port][/prefix]`, without a trailing slash.
    pub public_url: String,
    pub tokens: TokenSettings,
    /// Shared, so that a request holds its server without copying it.
    pub servers: Vec<Arc<ServerSettings>>,
    /// Clients pre-registered by the operator; valid at every server.
    pub static_clients: Vec<Client>,
    /// Enterprise IdPs whose ID-JAGs the servers that name them accept (SEP-990).
    pub enterprise_idps: Vec<Arc<EnterpriseIdp>>,
    pub metadata_documents: MetadataDocumentSettings,
    /// Dynamic client registration (RFC 7591); off, only pre-registered clients and
    /// metadata documents can log in.
    pub registration_enabled: bool,
    /// Peers whose `X-Forwarded-For` and `Forwarded` headers are believed: the load
    /// balancers and reverse proxies in front of this one.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub connections: ConnectionSettings,
    pub limits: LimitSettings,
    /// The operators' console (`P/admin`); `None` leaves it out.
    pub admin: Option<AdminSettings>,
}

/// Who may use the operators' console, and where they log in.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// The provider operators log in at.
    pub provider: String,
    /// Who among that provider's users is an operator.
    pub operators: AccessRules,
    /// The audit trail's file, for the console's view of recent events.
    pub audit_path: Option<std::path::PathBuf>,
}

impl Settings {
    pub fn server(&self, slug: &str) -> Option<&Arc<ServerSettings>> {
        self.servers.iter().find(|s| s.slug == slug)
    }

    /// The path part of `public_url` (`""` or `/prefix`), under which every route lives.
    pub fn path_prefix(&self) -> &str {
        let after_scheme = self.public_url.split_once("://").map_or("", |(_, r)| r);
        after_scheme.find('/').map_or("", |i| &after_scheme[i..])
    }

    /// The scheme and the host (with port) of `public_url`, as clients see the proxy.
    pub fn public_scheme_and_host(&self) -> (&str, &str) {
        let (scheme, rest) = self.public_url.split_once("://").unwrap_or(("", &self.public_url));
        (scheme, rest.split('/').next().unwrap_or(rest))
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn issuer(&self, slug: &str) -> String {
        format!("{}/oauth/{slug}", self.public_url)
    }

    pub fn resource(&self, slug: &str) -> String {
        format!("{}/mcp/{slug}", self.public_url)
    }

    /// Where MCP upstreams fetch the keys that verify identity assertions.
    pub fn jwks_url(&self) -> String {
        format!("{}/.well-known/jwks.json", self.public_url)
    }

    pub fn callback_url(&self) -> String {
        format!("{}/oauth/callback", self.public_url)
    }

    /// Brokered OAuth: where every upstream authorization server sends the browser back.
    pub fn upstream_callback_url(&self) -> String {
        format!("{}/oauth/upstream-callback", self.public_url)
    }

    /// Brokered OAuth: the proxy's Client ID Metadata Document, and so its `client_id` at
    /// authorization servers that support them: one stable URL for every server.
    pub fn upstream_client_metadata_url(&self) -> String {
        format!("{}/oauth/upstream-client.json", self.public_url)
    }

    /// RFC 9728 §3.1: the well-known segment goes between the host and the path.
    pub fn resource_metadata_url(&self, slug: &str) -> String {
        let origin_len = self.public_url.len() - self.path_prefix().len();
        format!(
            "{}/.well-known/oauth-protected-resource{}/mcp/{slug}",
            &self.public_url[..origin_len],
            self.path_prefix()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Settings {
        Settings {
            public_url: url.into(),
            tokens: TokenSettings::default(),
            servers: vec![],
            static_clients: vec![],
            enterprise_idps: vec![],
            metadata_documents: MetadataDocumentSettings::default(),
            registration_enabled: true,
            trusted_proxies: vec![],
            connections: ConnectionSettings::default(),
            limits: LimitSettings::default(),
            admin: None,
        }
    }

    #[test]
    fn host_patterns_match_hosts_and_subdomains_only() {
        assert!(host_matches("claude.ai", "claude.ai"));
        assert!(host_matches("*.example.com", "apps.example.com"));
        assert!(host_matches("*.example.com", "a.b.EXAMPLE.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "evilexample.com"));
        assert!(!host_matches("claude.ai", "claude.ai.evil.example"));
    }

    #[test]
    fn any_rule_lets_a_user_in() {
        let who = |subject: &str, email: Option<&str>, groups: &[&str]| mcp_oauth_upstream::Identity {
            subject: subject.into(),
            email: email.map(str::to_owned),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            name: None,
        };
        let rules = AccessRules {
            subjects: vec!["u1".into()],
            emails: vec!["Boss@Example.com".into()],
            email_domains: vec!["corp.example".into()],
            groups: vec!["admins".into()],
            clients: vec!["ci-bot".into()],
        };
        assert!(rules.allows(&who("u1", None, &[])));
        assert!(!rules.allows(&who("ci-bot", None, &[])), "a client rule lets no user in");
        assert!(rules.allows_client("ci-bot") && !rules.allows_client("u1"), "nor a user rule a client");
        assert!(rules.allows(&who("u2", Some("boss@example.com"), &[])));
        assert!(rules.allows(&who("u3", Some("anyone@CORP.example"), &[])));
        assert!(rules.allows(&who("u4", None, &["staff", "admins"])));
        assert!(!rules.allows(&who("u5", Some("anyone@corp.example.evil.com"), &["staff"])));
        assert!(!rules.allows(&who("u6", Some("x@notcorp.example"), &[])));
        assert!(!AccessRules::default().allows(&who("u1", Some("a@b.c"), &["g"])), "no rule: nobody");
    }

    #[test]
    fn urls_derive_from_public_url() {
        let s = settings("https://p.example");
        assert_eq!(s.path_prefix(), "");
        assert_eq!(s.issuer("a"), "https://p.example/oauth/a");
        assert_eq!(s.resource_metadata_url("a"), "https://p.example/.well-known/oauth-protected-resource/mcp/a");
        let s = settings("https://p.example/auth");
        assert_eq!(s.path_prefix(), "/auth");
        assert_eq!(s.public_scheme_and_host(), ("https", "p.example"));
        assert_eq!(s.resource("a"), "https://p.example/auth/mcp/a");
        assert_eq!(s.resource_metadata_url("a"), "https://p.example/.well-known/oauth-protected-resource/auth/mcp/a");
    }
}
