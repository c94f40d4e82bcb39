//! `[providers.<name>]`: the upstream identity providers users log in with.

use std::collections::BTreeMap;

use mcp_oauth_upstream::{ProviderAuthMethod, ProviderSettings};

use super::presets;
use super::problems::{Lookup, Problems};
use super::raw::RawProvider;

pub(super) fn validate(
    problems: &mut Problems,
    raw: BTreeMap<String, RawProvider>,
    lookup: Lookup<'_>,
) -> Vec<ProviderSettings> {
    raw.into_iter().map(|(name, p)| provider(problems, name, p, lookup)).collect()
}

fn provider(problems: &mut Problems, name: String, p: RawProvider, lookup: Lookup<'_>) -> ProviderSettings {
    let key = |k: &str| format!("providers.{name}.{k}");
    let p = match p.preset.clone() {
        None => p,
        Some(preset) => match presets::preset(&preset, &p) {
            Ok(filled) => presets::apply(filled, p),
            Err(why) => {
                problems.push(&key("preset"), why);
                p
            }
        },
    };
    for (k, v) in [
        ("issuer", &p.issuer),
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
    // Unlike a pre-registered client's, a provider's secret is not optional.
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
    ProviderSettings {
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
        refresh_resource: None,
        groups_claim: p.groups_claim.unwrap_or_else(|| "groups".to_owned()),
    }
}
