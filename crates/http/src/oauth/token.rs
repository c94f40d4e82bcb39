//! The token endpoint (RFC 6749 §3.2): the `authorization_code` and `refresh_token`
//! grants, carried out in `grants`, and those made without a browser: `client_credentials`
//! (`browserless`) and an enterprise IdP's ID-JAG with the `jwt-bearer` grant (`id_jag`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::jwt_grant;

use super::client_auth::{self, ClientCredentials};
use super::{browserless, grants, id_jag};
use crate::error::HttpError;
use crate::extract::{OAuthForm, Server};
use crate::responses::no_store_json;
use crate::services::audit::Caller;
use crate::services::metrics::GrantLabels;
use crate::settings::ServerSettings;
use crate::state::{App, AppState};

/// The grants this endpoint carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
    /// RFC 7523 with an enterprise IdP's ID-JAG as the assertion (SEP-990).
    JwtBearer,
}

/// A `grant_type` this endpoint does not carry out, or none at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoGrant {
    Unsupported(String),
    Missing,
}

impl GrantType {
    /// The request's `grant_type`, read once: for the grant and for its metric label.
    pub fn of(params: &Params) -> Result<Self, NoGrant> {
        match params.get("grant_type") {
            Some("authorization_code") => Ok(Self::AuthorizationCode),
            Some("refresh_token") => Ok(Self::RefreshToken),
            Some("client_credentials") => Ok(Self::ClientCredentials),
            Some(jwt_grant::JWT_BEARER) => Ok(Self::JwtBearer),
            Some(other) => Err(NoGrant::Unsupported(other.to_owned())),
            None => Err(NoGrant::Missing),
        }
    }

    /// The `grant_type` label of `token_grants_total`: the grant, `unsupported` or `none`.
    fn label(parsed: &Result<Self, NoGrant>) -> &'static str {
        match parsed {
            Ok(Self::AuthorizationCode) => "authorization_code",
            Ok(Self::RefreshToken) => "refresh_token",
            Ok(Self::ClientCredentials) => "client_credentials",
            Ok(Self::JwtBearer) => "jwt_bearer",
            Err(NoGrant::Unsupported(_)) => "unsupported",
            Err(NoGrant::Missing) => "none",
        }
    }
}

impl From<NoGrant> for HttpError {
    fn from(e: NoGrant) -> Self {
        match e {
            NoGrant::Unsupported(other) => {
                OAuthError::unsupported_grant_type(format!("grant_type {other:?} is not supported")).into()
            }
            NoGrant::Missing => OAuthError::invalid_request("grant_type is required").into(),
        }
    }
}

pub async fn token(
    State(app): State<AppState>,
    server: Server,
    caller: Caller,
    headers: HeaderMap,
    OAuthForm(params, _): OAuthForm,
) -> Result<Response, HttpError> {
    let grant_type = GrantType::of(&params);
    let label = GrantType::label(&grant_type);
    let credentials = ClientCredentials::read(&headers, &params);
    let result = grant(&app, &server, grant_type, credentials, &params, &caller).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(HttpError::OAuth(e)) => e.code.as_str(),
        Err(HttpError::RateLimited { .. }) => "rate_limited",
        Err(_) => "other",
    };
    let labels = GrantLabels { slug: server.slug.clone(), grant_type: label, outcome };
    app.metrics.token_grants.get_or_create(&labels).inc();
    result
}

async fn grant(
    app: &App,
    server: &ServerSettings,
    grant_type: Result<GrantType, NoGrant>,
    credentials: ClientCredentials,
    params: &Params,
    caller: &Caller,
) -> Result<Response, HttpError> {
    // The client is authenticated first: an unknown grant type is answered only to a
    // client that proved who it is.
    let client = client_auth::authenticate(app, server, caller.address, credentials).await?;
    let tokens = match grant_type? {
        GrantType::AuthorizationCode => grants::authorization_code(app, server, &client, params, caller).await?,
        GrantType::RefreshToken => grants::refresh_token(app, server, &client, params, caller).await?,
        GrantType::ClientCredentials => browserless::client_credentials(app, server, &client, params, caller).await?,
        GrantType::JwtBearer => id_jag::jwt_bearer(app, server, &client, params, caller).await?,
    };
    Ok(no_store_json(StatusCode::OK, tokens))
}

/// For the token and revocation endpoints, which take POST only.
pub async fn method_not_allowed() -> HttpError {
    HttpError::MethodNotAllowed { allow: "POST" }
}
