//! The raw shape of the configuration file, as serde reads it; `validate` turns it into
//! typed settings. Every field is optional here so that validation can name each missing
//! key instead of serde stopping at the first.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub idle_timeout_secs: Option<i64>,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub encryption: RawEncryption,
    #[serde(default)]
    pub tokens: RawTokens,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub servers: Vec<RawServer>,
    #[serde(default)]
    pub clients: Vec<RawClient>,
    #[serde(default)]
    pub enterprise_idps: BTreeMap<String, RawEnterpriseIdp>,
    #[serde(default)]
    pub client_metadata_documents: RawMetadataDocuments,
    #[serde(default, deserialize_with = "lenient::list")]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub registration: RawRegistration,
    pub admin: Option<RawAdmin>,
}

/// `[admin]`: the operators' console.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub provider: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub subjects: Vec<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub emails: Vec<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub groups: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistration {
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub path: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default, deserialize_with = "lenient::int")]
    pub registrations_per_minute: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub authorizations_per_minute: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub failures_per_minute: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub pending_per_browser: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub pending_per_address: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub ipv6_prefix_length: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub header_read_timeout_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub body_read_timeout_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_connections: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_connections_per_address: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetadataDocuments {
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub allow_loopback: Option<bool>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub cache_bytes: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub fetches_per_host_per_minute: Option<i64>,
    #[serde(default, deserialize_with = "lenient::optional_list")]
    pub allowed_hosts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub verified_hosts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEncryption {
    pub key: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub previous_keys: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    #[serde(default, deserialize_with = "lenient::int")]
    pub access_ttl_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub refresh_ttl_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub code_ttl_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub refresh_grace_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub consent_ttl_secs: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    /// `github`, `google`, `microsoft`, `okta`, `auth0`, `keycloak`, `gitlab`.
    pub preset: Option<String>,
    /// For `microsoft`: the directory (tenant) id or domain.
    pub tenant: Option<String>,
    /// For `okta`, `auth0` and a self-hosted `gitlab`: the host name.
    pub domain: Option<String>,
    /// For `keycloak`: the realm's URL.
    pub realm_url: Option<String>,
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub scopes: Vec<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub refresh_margin_secs: Option<i64>,
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub forward_resource: Option<bool>,
    pub groups_claim: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub slug: Option<String>,
    pub upstream_url: Option<String>,
    pub provider: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub scopes: Vec<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub default_scopes: Vec<String>,
    pub upstream_token_header: Option<String>,
    pub upstream_token_format: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_body_bytes: Option<i64>,
    pub access: Option<RawAccess>,
    /// In the order written: among equally specific patterns the first listed decides.
    #[serde(default, deserialize_with = "lenient::ordered")]
    pub tool_scopes: Vec<(String, StringList)>,
    #[serde(default)]
    pub scope_descriptions: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub hide_unauthorized_tools: Option<bool>,
    pub tool_changes: Option<String>,
    pub upstream_auth: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub identity_headers: Option<bool>,
    pub identity: Option<RawIdentity>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub enterprise_idps: Vec<String>,
    pub upstream_oauth: Option<RawUpstreamOAuth>,
}

/// `[servers.upstream_oauth]`: brokered OAuth (`upstream_auth = "oauth"`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstreamOAuth {
    pub client_id: Option<String>,
    /// The environment variable holding the pre-registered client's secret.
    pub client_secret_env: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub scopes: Vec<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub allow_http_loopback: Option<bool>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub refresh_margin_secs: Option<i64>,
}

/// `[enterprise_idps.<name>]`: an IdP whose ID-JAGs are accepted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnterpriseIdp {
    pub issuer: Option<String>,
    pub jwks_url: Option<String>,
    /// The key set as JSON text (`{"keys": [...]}`).
    pub jwks: Option<String>,
    #[serde(default, deserialize_with = "lenient::optional_list")]
    pub clients: Option<Vec<String>>,
    pub email_claim: Option<String>,
    pub groups_claim: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub max_lifetime_secs: Option<i64>,
}

/// `[servers.identity]`: the identity assertion (`upstream_auth = "identity"`).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    pub audience: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub lifetime_secs: Option<i64>,
    pub header: Option<String>,
    pub static_header: Option<RawStaticHeader>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStaticHeader {
    pub name: Option<String>,
    /// The environment variable holding the value (a credential: never in the file).
    pub value_env: Option<String>,
}

/// A list of strings, also as one comma-separated string (as the environment gives it).
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct StringList(#[serde(deserialize_with = "lenient::list")] pub Vec<String>);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    #[serde(default, deserialize_with = "lenient::list")]
    pub subjects: Vec<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub emails: Vec<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub email_domains: Vec<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub groups: Vec<String>,
    /// Clients that may use the server on their own behalf (client credentials).
    #[serde(default, deserialize_with = "lenient::list")]
    pub clients: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub client_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub redirect_uris: Vec<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub trusted: Option<bool>,
    /// Default: `authorization_code` and `refresh_token`.
    #[serde(default, deserialize_with = "lenient::optional_list")]
    pub grant_types: Option<Vec<String>>,
    /// The scopes the client may be given (client credentials); default: any.
    #[serde(default, deserialize_with = "lenient::optional_list")]
    pub scopes: Option<Vec<String>>,
    /// For `private_key_jwt`: the client's public keys as JSON text, or where they are.
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
}

/// Deserializers that also take the string forms the environment provides.
mod lenient {
    use serde::{Deserialize, Deserializer, de::Error};
    use toml::Value;

    /// A table's entries in the order they were written (`toml`'s `preserve_order`
    /// keeps it through the environment overlay), where a map type would sort them.
    pub fn ordered<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, super::StringList)>, D::Error> {
        toml::Table::deserialize(d)?
            .into_iter()
            .map(|(k, v)| super::StringList::deserialize(v).map(|list| (k, list)).map_err(D::Error::custom))
            .collect()
    }

    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Value::deserialize(d)? {
            Value::Integer(i) => Ok(Some(i)),
            Value::String(s) => {
                s.trim().parse().map(Some).map_err(|_| D::Error::custom(format!("{s:?} is not a whole number")))
            }
            other => Err(D::Error::custom(format!("expected a whole number, found {}", other.type_str()))),
        }
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(d)? {
            Value::Boolean(b) => Ok(Some(b)),
            Value::String(s) if s == "true" => Ok(Some(true)),
            Value::String(s) if s == "false" => Ok(Some(false)),
            other => Err(D::Error::custom(format!("expected true or false, found {other:?}"))),
        }
    }

    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!("expected strings, found {}", other.type_str()))),
                })
                .collect(),
            other => Err(D::Error::custom(format!("expected a list of strings, found {}", other.type_str()))),
        }
    }

    /// A list whose absence means something else than an empty list.
    pub fn optional_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
        list(d).map(Some)
    }
}
