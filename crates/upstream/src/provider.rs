//! One upstream OAuth 2.0 / OpenID Connect provider, seen as a confidential client: its
//! settings, its endpoints (configured or discovered once), and the operations the HTTP
//! layer calls. Each operation's work is in its own module; this file only wires them.

use std::fmt;

use tokio::sync::OnceCell;

use crate::authorization_url::{self, Login};
use crate::discovery;
use crate::error::UpstreamError;
use crate::identity::{self, Identity, SigningKeys, TokenStatus};
use crate::settings::{Endpoints, ProviderSettings, parse_url};
use crate::token_endpoint::{self, UpstreamTokens};

pub struct Provider {
    settings: ProviderSettings,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
    keys: SigningKeys,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Provider {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self { settings, http, endpoints: OnceCell::new(), keys: SigningKeys::default() }
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
            (Some(issuer), false) => Some(discovery::discover(&self.http, issuer).await?),
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

    /// Where to send the user's browser to log in.
    pub async fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
        nonce: Option<&str>,
        resource: Option<&str>,
    ) -> Result<String, UpstreamError> {
        let endpoint = &self.endpoints().await?.authorization;
        let login = Login { redirect_uri, state, code_challenge, nonce, resource, scopes: None };
        Ok(authorization_url::build(endpoint, &self.settings, &login))
    }

    /// [`Self::authorization_url`] asking for `scopes` rather than the configured ones, and
    /// always naming `resource` (brokered OAuth: RFC 8707, the MCP upstream's URL).
    pub async fn authorization_url_for(
        &self,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
        nonce: Option<&str>,
        resource: &str,
        scopes: &[String],
    ) -> Result<String, UpstreamError> {
        let endpoint = &self.endpoints().await?.authorization;
        let login =
            Login { redirect_uri, state, code_challenge, nonce, resource: Some(resource), scopes: Some(scopes) };
        Ok(authorization_url::build(endpoint, &self.settings, &login))
    }

    /// The authorization code grant. `resource` (RFC 8707) is sent when given and the
    /// provider forwards resources: the same one the authorization request named.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        resource: Option<&str>,
    ) -> Result<UpstreamTokens, UpstreamError> {
        let mut params = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        if let (true, Some(resource)) = (self.settings.forward_resource, resource) {
            params.push(("resource", resource));
        }
        self.token_request(&params).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<UpstreamTokens, UpstreamError> {
        let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        if let Some(resource) = &self.settings.refresh_resource {
            params.push(("resource", resource));
        }
        self.token_request(&params).await
    }

    async fn token_request(&self, params: &[(&str, &str)]) -> Result<UpstreamTokens, UpstreamError> {
        let endpoint = self.endpoints().await?.token.clone();
        token_endpoint::request(&self.http, endpoint, &self.settings, params).await
    }

    /// Who logged in, with what the provider says of them (verified email, groups): from
    /// the id_token when there is one, else from the userinfo endpoint (`sub`, or `id` for
    /// GitHub and other plain OAuth APIs).
    pub async fn identify(
        &self,
        tokens: &UpstreamTokens,
        nonce: Option<&str>,
        now: i64,
    ) -> Result<Identity, UpstreamError> {
        let cx = identity::Context {
            http: &self.http,
            settings: &self.settings,
            endpoints: self.endpoints().await?,
            keys: &self.keys,
        };
        identity::identify(&cx, tokens, nonce, now).await
    }

    /// Whether the provider still accepts a user's access token (asked at its userinfo
    /// endpoint): to tell, when an MCP server refuses the token, whether the provider did
    /// too. `Err(Rejected)` when the provider refuses it.
    pub async fn check_access_token(&self, access_token: &str) -> Result<TokenStatus, UpstreamError> {
        let cx = identity::Context {
            http: &self.http,
            settings: &self.settings,
            endpoints: self.endpoints().await?,
            keys: &self.keys,
        };
        identity::check_access_token(&cx, access_token).await
    }
}
