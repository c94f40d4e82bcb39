//! `[enterprise_idps.<name>]`: the IdPs whose ID-JAGs (SEP-990) the servers that name them
//! (`servers[i].enterprise_idps`) accept.

use std::sync::Arc;

use mcp_oauth_http::settings::{EnterpriseIdp, IdpKeys, ServerSettings};

use super::problems::Problems;
use super::raw::RawEnterpriseIdp;

/// An ID-JAG is short-lived by the profile: five minutes is the usual; at most an hour.
const MAX_LIFETIME_SECS: (i64, i64, i64) = (30, 600, 3600);

pub(super) fn validate(
    problems: &mut Problems,
    raw: std::collections::BTreeMap<String, RawEnterpriseIdp>,
    servers: &[Arc<ServerSettings>],
) -> Vec<Arc<EnterpriseIdp>> {
    let mut idps: Vec<Arc<EnterpriseIdp>> = Vec::new();
    for (name, r) in raw {
        let key = |k: &str| format!("enterprise_idps.{name}.{k}");
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            problems.push(
                &format!("enterprise_idps.{name}"),
                "an IdP's name is letters, digits, '-' and '_' (it names its users: idp:<name>:<sub>)",
            );
        }
        let issuer = r.issuer.unwrap_or_default();
        if issuer.is_empty() {
            problems.required(&key("issuer"));
        } else if let Some(other) = idps.iter().find(|i| i.issuer == issuer) {
            problems.push(&key("issuer"), format_args!("{issuer:?} is also enterprise_idps.{}'s", other.name));
        }
        let keys = match (r.jwks_url, r.jwks) {
            (Some(url), None) => problems.url(&key("jwks_url"), &url).map(IdpKeys::Url),
            (None, Some(text)) => match serde_json::from_str(&text) {
                Ok(set) => Some(IdpKeys::Inline(set)),
                Err(e) => {
                    problems.push(&key("jwks"), format_args!("is not a JWK set ({{\"keys\": [...]}}): {e}"));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push(&key("jwks"), "give jwks_url or jwks, not both");
                None
            }
            (None, None) => {
                problems.push(&key("jwks_url"), "is required (or jwks, the key set inline)");
                None
            }
        };
        let (min, default, max) = MAX_LIFETIME_SECS;
        let max_lifetime_secs = r.max_lifetime_secs.unwrap_or(default);
        problems.range(&key("max_lifetime_secs"), max_lifetime_secs, min, max);
        if r.clients.as_ref().is_some_and(Vec::is_empty) {
            problems.push(&key("clients"), "names no client; leave it out to accept any client the IdP names");
        }
        let Some(keys) = keys else { continue };
        idps.push(Arc::new(EnterpriseIdp {
            name,
            issuer,
            keys,
            clients: r.clients,
            email_claim: r.email_claim.filter(|c| !c.is_empty()).unwrap_or_else(|| "email".into()),
            groups_claim: r.groups_claim.filter(|c| !c.is_empty()).unwrap_or_else(|| "groups".into()),
            max_lifetime_secs,
        }));
    }
    for (i, server) in servers.iter().enumerate() {
        for name in &server.enterprise_idps {
            if !idps.iter().any(|idp| &idp.name == name) {
                problems.push(
                    &format!("servers[{i}].enterprise_idps"),
                    format_args!("no IdP named {name:?} is configured under [enterprise_idps]"),
                );
            }
        }
    }
    idps
}
