//! One upstream OAuth 2.0 / OpenID Connect provider, seen as a confidential client.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use crate::id_token;
use crate::jwks::{self, JwkSet};

/// How the proxy authenticates itself to the provider's token endpoint (not to be confused
/// with `mcp_oauth_core::client::AuthMethod`, how our own clients authenticate to us).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderAuthMethod {
    ClientSecretPost,
    ClientSecretBasic,
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
    /// Send the client's `resource` upstream. Off by default: Entra ID, Auth0 and
    /// others reject resource indicators they do not know, and the login fails.
    pub forward_resource: bool,
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

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UpstreamError {
    /// The provider said no, for good: `invalid_grant`, `invalid_client`, a denied login.
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected { error: String, description: Option<String> },
    /// The provider could not be reached or failed (network, timeout, 5xx, 429):
    /// the same request may work later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something that is not OAuth (a misconfiguration, or a bug
    /// on its side). Treated as temporary: it is no reason to end a user's grant.
    #[error("the provider's answer was not understood: {0}")]
    Protocol(String),
}

impl UpstreamError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}

struct Endpoints {
    authorization: Url,
    token: Url,
    userinfo: Option<Url>,
    jwks: Option<Url>,
}

/// Signing keys are fetched again when a token names an unknown key, but not more often
/// than this (a stream of forged `kid`s must not turn into a stream of fetches).
const JWKS_REFETCH_SECS: u64 = 30;

pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
    keys: tokio::sync::Mutex<Option<(JwkSet, std::time::Instant)>>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider").field("settings", &self.settings).finish_non_exhaustive()
    }
}

fn parse_url(what: &str, s: &str) -> Result<Url, UpstreamError> {
    Url::parse(s).map_err(|e| UpstreamError::Protocol(format!("{what} {s:?} is not a URL: {e}")))
}

impl Provider {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self { settings, http, endpoints: OnceCell::new(), keys: tokio::sync::Mutex::new(None) }
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Whether the provider speaks OpenID Connect for us (and so gets a nonce).
    pub fn wants_nonce(&self) -> bool {
        self.settings.scopes.iter().any(|s| s == "openid")
    }

    /// The endpoints, discovering the missing ones from the issuer on first use. A failed
    /// discovery is not cached: the next request tries again.
    async fn endpoints(&self) -> Result<&Endpoints, UpstreamError> {
        self.endpoints.get_or_try_init(|| self.resolve_endpoints()).await
    }

    /// Resolves the endpoints now (at start), so that a misconfiguration shows up early.
    pub async fn warm_up(&self) -> Result<(), UpstreamError> {
        self.endpoints().await.map(|_| ())
    }

    async fn resolve_endpoints(&self) -> Result<Endpoints, UpstreamError> {
        let s = &self.settings;
        let complete = s.authorization_endpoint.is_some() && s.token_endpoint.is_some();
        let all_explicit = complete && s.userinfo_endpoint.is_some() && s.jwks_uri.is_some();
        let discovered = match (&s.issuer, all_explicit) {
            (Some(issuer), false) => Some(self.discover(issuer).await?),
            _ => None,
        };
        let pick = |explicit: &Option<String>, key: &str| -> Option<String> {
            explicit.clone().or_else(|| discovered.as_ref().and_then(|d| d[key].as_str().map(str::to_owned)))
        };
        let authorization = pick(&s.authorization_endpoint, "authorization_endpoint")
            .ok_or_else(|| UpstreamError::Protocol("no authorization_endpoint configured or discovered".into()))?;
        let token = pick(&s.token_endpoint, "token_endpoint")
            .ok_or_else(|| UpstreamError::Protocol("no token_endpoint configured or discovered".into()))?;
        let userinfo = pick(&s.userinfo_endpoint, "userinfo_endpoint");
        let jwks = pick(&s.jwks_uri, "jwks_uri");
        Ok(Endpoints {
            authorization: parse_url("authorization_endpoint", &authorization)?,
            token: parse_url("token_endpoint", &token)?,
            userinfo: userinfo.map(|u| parse_url("userinfo_endpoint", &u)).transpose()?,
            jwks: jwks.map(|u| parse_url("jwks_uri", &u)).transpose()?,
        })
    }

    /// OpenID discovery, then RFC 8414; the document must name the configured issuer.
    async fn discover(&self, issuer: &str) -> Result<Value, UpstreamError> {
        let base = issuer.trim_end_matches('/');
        let parsed = parse_url("issuer", issuer)?;
        let origin = parsed.origin().ascii_serialization();
        let path = parsed.path().trim_end_matches('/');
        let candidates = [
            format!("{base}/.well-known/openid-configuration"),
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
        ];
        let mut last = UpstreamError::Unavailable("no discovery document found".into());
        for url in candidates {
            match self.http.get(&url).header("accept", "application/json").send().await {
                Ok(resp) if resp.status().is_success() => {
                    let doc: Value = resp
                        .json()
                        .await
                        .map_err(|e| UpstreamError::Protocol(format!("discovery document at {url}: {e}")))?;
                    let named = doc["issuer"].as_str().unwrap_or_default();
                    if named.trim_end_matches('/') != base {
                        return Err(UpstreamError::Protocol(format!(
                            "discovery document at {url} names issuer {named:?}, not {issuer:?}"
                        )));
                    }
                    return Ok(doc);
                }
                Ok(resp) if resp.status().is_server_error() => {
                    last = UpstreamError::Unavailable(format!("discovery at {url}: HTTP {}", resp.status()))
                }
                Ok(resp) => last = UpstreamError::Protocol(format!("discovery at {url}: HTTP {}", resp.status())),
                Err(e) => {
                    last = UpstreamError::Unavailable(format!("discovery at {url}: {}", describe_transport_error(&e)))
                }
            }
        }
        Err(last)
    }

    /// Where to send the user's browser to log in.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
        nonce: Option<&str>,
        resource: Option<&str>,
    ) -> Result<String, UpstreamError> {
        let mut url = self.endpoints().await?.authorization.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256");
            if !self.settings.scopes.is_empty() {
                q.append_pair("scope", &self.settings.scopes.join(" "));
            }
            if let Some(nonce) = nonce {
                q.append_pair("nonce", nonce);
            }
            if let (true, Some(resource)) = (self.settings.forward_resource, resource) {
                q.append_pair("resource", resource);
            }
            for (k, v) in &self.settings.extra_authorize_params {
                q.append_pair(k, v);
            }
        }
        Ok(url.into())
    }

    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<UpstreamTokens, UpstreamError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<UpstreamTokens, UpstreamError> {
        self.token_request(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<UpstreamTokens, UpstreamError> {
        let endpoint = self.endpoints().await?.token.clone();
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut req = self.http.post(endpoint).header("accept", "application/json");
        match self.settings.auth_method {
            ProviderAuthMethod::ClientSecretPost => {
                form.push(("client_id", &self.settings.client_id));
                form.push(("client_secret", &self.settings.client_secret));
            }
            ProviderAuthMethod::ClientSecretBasic => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before base64.
                let enc = |s: &str| form_urlencoded_component(s);
                let basic =
                    STANDARD.encode(format!("{}:{}", enc(&self.settings.client_id), enc(&self.settings.client_secret)));
                req = req.header("authorization", format!("Basic {basic}"));
            }
        }
        let resp =
            req.form(&form).send().await.map_err(|e| UpstreamError::Unavailable(describe_transport_error(&e)))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| UpstreamError::Unavailable(describe_transport_error(&e)))?;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        // Some providers (GitHub) answer errors with 200 and an `error` member.
        if let Some(error) = json.as_ref().and_then(|j| j["error"].as_str()) {
            let err = UpstreamError::Rejected {
                error: error.to_owned(),
                description: json.as_ref().and_then(|j| j["error_description"].as_str()).map(str::to_owned),
            };
            // A 5xx carrying an OAuth error body is still the provider failing.
            return Err(if status.is_server_error() || error == "temporarily_unavailable" {
                UpstreamError::Unavailable(err.to_string())
            } else {
                err
            });
        }
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            return Err(UpstreamError::Unavailable(format!("token endpoint answered HTTP {status}")));
        }
        if !status.is_success() {
            return Err(UpstreamError::Rejected { error: format!("http_{}", status.as_u16()), description: None });
        }
        let json = json.ok_or_else(|| UpstreamError::Protocol("token endpoint did not answer JSON".into()))?;
        let tokens: UpstreamTokens =
            serde_json::from_value(json).map_err(|e| UpstreamError::Protocol(format!("token response: {e}")))?;
        if tokens.access_token.is_empty() {
            return Err(UpstreamError::Protocol("token response has an empty access_token".into()));
        }
        Ok(tokens)
    }

    /// Who logged in: the id_token's subject when there is one, else the userinfo
    /// endpoint's `sub` (OpenID) or `id` (GitHub and other plain OAuth APIs).
    pub async fn subject(
        &self,
        tokens: &UpstreamTokens,
        nonce: Option<&str>,
        now: i64,
    ) -> Result<String, UpstreamError> {
        let endpoints = self.endpoints().await?;
        // An id_token counts only if its signature verifies against the provider's keys;
        // without published keys it is ignored in favour of the userinfo endpoint.
        let id_token = tokens.id_token.as_ref().filter(|_| endpoints.jwks.is_some() || endpoints.userinfo.is_none());
        if let Some(id_token) = id_token {
            self.verify_signature(id_token).await?;
            let expect = id_token::Expectations {
                issuer: self.settings.issuer.as_deref(),
                client_id: &self.settings.client_id,
                nonce,
                now,
            };
            return id_token::subject(id_token, &expect).map_err(|e| UpstreamError::Protocol(e.to_string()));
        }
        let Some(userinfo) = endpoints.userinfo.clone() else {
            return Err(UpstreamError::Protocol(
                "the provider returned no id_token and no userinfo_endpoint is configured".into(),
            ));
        };
        let resp = self
            .http
            .get(userinfo)
            .bearer_auth(&tokens.access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(describe_transport_error(&e)))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(UpstreamError::Unavailable(format!("userinfo answered HTTP {status}")));
        }
        if !status.is_success() {
            return Err(UpstreamError::Rejected {
                error: format!("userinfo_http_{}", status.as_u16()),
                description: None,
            });
        }
        let info: Value = resp.json().await.map_err(|e| UpstreamError::Protocol(format!("userinfo: {e}")))?;
        match (&info["sub"], &info["id"]) {
            (Value::String(s), _) if !s.is_empty() => Ok(s.clone()),
            (_, Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            (_, Value::Number(n)) => Ok(n.to_string()),
            _ => Err(UpstreamError::Protocol("userinfo has neither sub nor id".into())),
        }
    }
}

impl Provider {
    async fn fetch_keys(&self, url: &Url) -> Result<JwkSet, UpstreamError> {
        let resp = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| UpstreamError::Unavailable(describe_transport_error(&e)))?;
        if resp.status().is_server_error() {
            return Err(UpstreamError::Unavailable(format!("jwks_uri answered HTTP {}", resp.status())));
        }
        if !resp.status().is_success() {
            return Err(UpstreamError::Protocol(format!("jwks_uri answered HTTP {}", resp.status())));
        }
        resp.json().await.map_err(|e| UpstreamError::Protocol(format!("jwks: {e}")))
    }

    /// Verifies an id_token's signature, fetching the keys on first use and again (rate
    /// limited) when the token names a key we do not have, as after a key rotation.
    async fn verify_signature(&self, id_token: &str) -> Result<(), UpstreamError> {
        let Some(url) = self.endpoints().await?.jwks.clone() else {
            return Err(UpstreamError::Protocol(
                "the provider sent an id_token but publishes no signing keys (set jwks_uri or userinfo_endpoint)"
                    .into(),
            ));
        };
        let mut cache = self.keys.lock().await;
        let stale = cache.as_ref().is_none_or(|(_, at)| at.elapsed().as_secs() >= JWKS_REFETCH_SECS);
        if cache.is_none() {
            *cache = Some((self.fetch_keys(&url).await?, std::time::Instant::now()));
        }
        let result = jwks::verify(id_token, &cache.as_ref().expect("filled above").0);
        match result {
            Err(jwks::SignatureError::NoKey) if stale => {
                *cache = Some((self.fetch_keys(&url).await?, std::time::Instant::now()));
                jwks::verify(id_token, &cache.as_ref().expect("filled above").0)
            }
            other => other,
        }
        .map_err(|e| UpstreamError::Protocol(format!("id_token: {e}")))
    }
}

/// A failed request to the provider, described by its kind and innermost cause. reqwest's own
/// message (and its `without_url()`) leads with the URL and hides the cause behind it; the
/// URLs carry nothing secret (secrets go in bodies and headers), but the cause is what an
/// operator needs.
fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut src = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

fn form_urlencoded_component(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
