//! The token endpoint (RFC 6749 §3.2): the `authorization_code` and `refresh_token`
//! grants, carried out in `grants`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::form::Params;

use super::{client_auth, grants};
use crate::audit::Caller;
use crate::error::HttpError;
use crate::extract::{OAuthForm, Server};
use crate::metrics::GrantLabels;
use crate::responses::no_store_json;
use crate::settings::ServerSettings;
use crate::state::{App, AppState};

pub async fn token(
    State(app): State<AppState>,
    server: Server,
    caller: Caller,
    headers: HeaderMap,
    OAuthForm(params, _): OAuthForm,
) -> Result<Response, HttpError> {
    let result = grant(&app, &server, &headers, &params, &caller).await;
    let outcome = match &result {
        Ok(_) => "issued",
        Err(HttpError::OAuth(e)) => e.code.as_str(),
        Err(HttpError::RateLimited { .. }) => "rate_limited",
        Err(_) => "other",
    };
    let grant_type = match params.get("grant_type") {
        Some(g @ ("authorization_code" | "refresh_token")) => g.to_owned(),
        Some(_) => "unsupported".to_owned(),
        None => "none".to_owned(),
    };
    let labels = GrantLabels { slug: server.slug.clone(), grant_type, outcome };
    app.metrics.token_grants.get_or_create(&labels).inc();
    result
}

async fn grant(
    app: &App,
    server: &ServerSettings,
    headers: &HeaderMap,
    params: &Params,
    caller: &Caller,
) -> Result<Response, HttpError> {
    let client = client_auth::authenticate(app, server, caller.address, headers, params).await?;
    let tokens = match params.get("grant_type") {
        Some("authorization_code") => grants::authorization_code(app, server, &client, params, caller).await?,
        Some("refresh_token") => grants::refresh_token(app, server, &client, params, caller).await?,
        Some(other) => {
            return Err(OAuthError::unsupported_grant_type(format!("grant_type {other:?} is not supported")).into());
        }
        None => return Err(OAuthError::invalid_request("grant_type is required").into()),
    };
    Ok(no_store_json(StatusCode::OK, tokens))
}

/// For the token and revocation endpoints, which take POST only.
pub async fn method_not_allowed() -> HttpError {
    HttpError::MethodNotAllowed { allow: "POST" }
}
