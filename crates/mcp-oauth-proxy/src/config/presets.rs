//! Provider presets: `preset = "google"` (and friends) fills a provider's endpoints,
//! scopes and known quirks, so that an operator writes only the client id and secret
//! (and the tenant, domain or realm a provider needs). Keys written explicitly win.

use std::collections::BTreeMap;

use super::raw::RawProvider;

/// The names `preset` accepts.
pub const PRESETS: &[&str] = &["github", "google", "microsoft", "okta", "auth0", "keycloak", "gitlab"];

/// What a preset fills in.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Preset {
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub scopes: Vec<String>,
    pub authorize_params: BTreeMap<String, String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The preset `name` for `p`, or what is missing to build it (the key it needs, or an
/// unknown name).
pub(super) fn preset(name: &str, p: &RawProvider) -> Result<Preset, String> {
    let need = |value: &Option<String>, key: &str| {
        value
            .as_deref()
            .map(|v| v.trim_end_matches('/').to_owned())
            .ok_or_else(|| format!("preset {name:?} needs {key}"))
    };
    let oidc = |issuer: String, authorize: &str, token: &str, userinfo: &str, jwks: &str| Preset {
        authorization_endpoint: Some(format!("{issuer}{authorize}")),
        token_endpoint: Some(format!("{issuer}{token}")),
        userinfo_endpoint: Some(format!("{issuer}{userinfo}")),
        jwks_uri: Some(format!("{issuer}{jwks}")),
        issuer: Some(issuer),
        scopes: strings(&["openid", "email", "profile", "offline_access"]),
        authorize_params: BTreeMap::new(),
    };
    Ok(match name {
        // An OAuth app: tokens without expiry or refresh token, the user from the REST API.
        "github" => Preset {
            authorization_endpoint: Some("https://github.com/login/oauth/authorize".into()),
            token_endpoint: Some("https://github.com/login/oauth/access_token".into()),
            userinfo_endpoint: Some("https://api.github.com/user".into()),
            scopes: strings(&["read:user"]),
            ..Preset::default()
        },
        // Refresh tokens only with access_type=offline, and only on consent.
        "google" => Preset {
            issuer: Some("https://accounts.google.com".into()),
            authorization_endpoint: Some("https://accounts.google.com/o/oauth2/v2/auth".into()),
            token_endpoint: Some("https://oauth2.googleapis.com/token".into()),
            userinfo_endpoint: Some("https://openidconnect.googleapis.com/v1/userinfo".into()),
            jwks_uri: Some("https://www.googleapis.com/oauth2/v3/certs".into()),
            scopes: strings(&["openid", "email", "profile"]),
            authorize_params: [("access_type", "offline"), ("prompt", "consent")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        },
        // Tenant-specific v2.0 endpoints (a multi-tenant issuer names each tenant in its
        // tokens, so one issuer cannot be checked); Entra rejects unknown `resource`s.
        "microsoft" => {
            let tenant = need(&p.tenant, "tenant (the directory id or domain)")?;
            let base = format!("https://login.microsoftonline.com/{tenant}");
            Preset {
                issuer: Some(format!("{base}/v2.0")),
                authorization_endpoint: Some(format!("{base}/oauth2/v2.0/authorize")),
                token_endpoint: Some(format!("{base}/oauth2/v2.0/token")),
                userinfo_endpoint: Some("https://graph.microsoft.com/oidc/userinfo".into()),
                jwks_uri: Some(format!("{base}/discovery/v2.0/keys")),
                scopes: strings(&["openid", "email", "profile", "offline_access"]),
                authorize_params: BTreeMap::new(),
            }
        }
        // The org authorization server of an Okta domain.
        "okta" => oidc(
            format!("https://{}", need(&p.domain, "domain (e.g. example.okta.com)")?),
            "/oauth2/v1/authorize",
            "/oauth2/v1/token",
            "/oauth2/v1/userinfo",
            "/oauth2/v1/keys",
        ),
        // Auth0's issuer ends with a slash, and its tokens say so.
        "auth0" => {
            let domain = need(&p.domain, "domain (e.g. example.eu.auth0.com)")?;
            let mut preset =
                oidc(format!("https://{domain}"), "/authorize", "/oauth/token", "/userinfo", "/.well-known/jwks.json");
            preset.issuer = Some(format!("https://{domain}/"));
            preset
        }
        "keycloak" => oidc(
            need(&p.realm_url, "realm_url (e.g. https://sso.example.com/realms/staff)")?,
            "/protocol/openid-connect/auth",
            "/protocol/openid-connect/token",
            "/protocol/openid-connect/userinfo",
            "/protocol/openid-connect/certs",
        ),
        // gitlab.com, or a self-hosted GitLab at `domain`.
        "gitlab" => {
            let host = p.domain.as_deref().unwrap_or("gitlab.com").trim_end_matches('/');
            let mut preset = oidc(
                format!("https://{host}"),
                "/oauth/authorize",
                "/oauth/token",
                "/oauth/userinfo",
                "/oauth/discovery/keys",
            );
            preset.scopes = strings(&["openid", "email", "profile"]);
            preset
        }
        other => return Err(format!("{other:?} is not a preset; use one of {}", PRESETS.join(", "))),
    })
}

/// `p` with what its preset fills in, where `p` says nothing.
pub(super) fn apply(preset: Preset, mut p: RawProvider) -> RawProvider {
    p.issuer = p.issuer.or(preset.issuer);
    p.authorization_endpoint = p.authorization_endpoint.or(preset.authorization_endpoint);
    p.token_endpoint = p.token_endpoint.or(preset.token_endpoint);
    p.userinfo_endpoint = p.userinfo_endpoint.or(preset.userinfo_endpoint);
    p.jwks_uri = p.jwks_uri.or(preset.jwks_uri);
    if p.scopes.is_empty() {
        p.scopes = preset.scopes;
    }
    for (k, v) in preset.authorize_params {
        p.authorize_params.entry(k).or_insert(v);
    }
    p
}
