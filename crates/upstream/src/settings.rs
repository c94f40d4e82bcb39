//! A provider as configured, and its endpoints once resolved: what every job module of
//! this crate reads, so it sits below them all.

use std::fmt;

use url::Url;

use crate::error::UpstreamError;

/// How the proxy authenticates itself to the provider's token endpoint (not to be confused
/// with `mcp_oauth_core::client::AuthMethod`, how our own clients authenticate to us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderAuthMethod {
    ClientSecretPost,
    ClientSecretBasic,
    /// A public client: `client_id` alone (brokered upstreams that register the proxy
    /// without a secret, and Client ID Metadata Documents).
    None,
}

/// A provider as configured (validated by the binary's config loader).
#[derive(Clone)]
pub struct ProviderSettings {
    pub name: String,
    /// When set, missing endpoints are discovered from it, and id_tokens must name it.
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    /// Where the provider publishes its id_token signing keys (else discovered).
    pub jwks_uri: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    pub auth_method: ProviderAuthMethod,
    pub scopes: Vec<String>,
    /// Refresh the upstream access token this long before it expires.
    pub refresh_margin_secs: i64,
    /// Extra query parameters for the authorization URL (`prompt`, `access_type`, …).
    pub extra_authorize_params: Vec<(String, String)>,
    /// The id_token or userinfo claim that lists the user's groups (for access rules).
    pub groups_claim: String,
    /// Send the client's `resource` upstream. Off by default: Entra ID, Auth0 and
    /// others reject resource indicators they do not know, and the login fails.
    pub forward_resource: bool,
    /// The RFC 8707 `resource` every refresh request names: brokered OAuth's MCP upstream,
    /// the same for every grant. `None` for providers, whose resource was the client's and
    /// is not kept.
    pub refresh_resource: Option<String>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .field("token_endpoint", &self.token_endpoint)
            .field("userinfo_endpoint", &self.userinfo_endpoint)
            .field("jwks_uri", &self.jwks_uri)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("auth_method", &self.auth_method)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// The provider's endpoints, once resolved.
pub(crate) struct Endpoints {
    pub authorization: Url,
    pub token: Url,
    pub userinfo: Option<Url>,
    pub jwks: Option<Url>,
}

pub(crate) fn parse_url(what: &str, s: &str) -> Result<Url, UpstreamError> {
    Url::parse(s).map_err(|e| UpstreamError::Protocol(format!("{what} {s:?} is not a URL: {e}")))
}
