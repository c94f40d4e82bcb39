//! The provider's token endpoint: the proxy, as a confidential client, exchanges codes and
//! refreshes tokens there.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::answer::{self, Endpoint};
use crate::error::UpstreamError;
use crate::settings::{ProviderAuthMethod, ProviderSettings};

/// Tokens from the provider's token endpoint. `Debug` prints no secret.
#[derive(Clone, Deserialize)]
pub struct UpstreamTokens {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// Seconds; `None` when the provider says nothing (GitHub OAuth apps).
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub id_token: Option<String>,
}

impl fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("expires_in", &self.expires_in)
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

/// `expires_in` as a number, or as a numeric string (some providers send that).
fn lenient_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

/// One token request (`params` names the grant), authenticated as the configured client.
pub(crate) async fn request(
    http: &reqwest::Client,
    endpoint: Url,
    settings: &ProviderSettings,
    params: &[(&str, &str)],
) -> Result<UpstreamTokens, UpstreamError> {
    let req = authenticated(http.post(endpoint), settings, params);
    let json = answer::fetch_json(Endpoint::Token, req).await?;
    let tokens: UpstreamTokens =
        serde_json::from_value(json).map_err(|e| UpstreamError::Protocol(format!("token response: {e}")))?;
    if tokens.access_token.is_empty() {
        return Err(UpstreamError::Protocol("token response has an empty access_token".into()));
    }
    Ok(tokens)
}

/// `req` with the form `params`, authenticated as the configured client: its credentials
/// in the form, in a Basic header, or (a public client) only its `client_id` in the form.
pub(crate) fn authenticated(
    req: reqwest::RequestBuilder,
    settings: &ProviderSettings,
    params: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    let mut req = req;
    match settings.auth_method {
        ProviderAuthMethod::ClientSecretPost => {
            form.push(("client_id", &settings.client_id));
            form.push(("client_secret", &settings.client_secret));
        }
        ProviderAuthMethod::ClientSecretBasic => {
            // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
            let enc = |s: &str| form_urlencoded_component(s);
            let basic = STANDARD.encode(format!("{}:{}", enc(&settings.client_id), enc(&settings.client_secret)));
            req = req.header("authorization", format!("Basic {basic}"));
        }
        ProviderAuthMethod::None => form.push(("client_id", &settings.client_id)),
    }
    req.form(&form)
}

fn form_urlencoded_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
