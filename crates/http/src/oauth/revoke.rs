//! Token revocation (RFC 7009).
//!
//! Revoking a refresh token ends its whole grant (the access tokens issued with it
//! included, as RFC 7009 §2.1 encourages); revoking an access token ends just that
//! token. Unknown, expired or foreign tokens get the same 200 as a success, so the
//! endpoint reveals nothing about which tokens exist.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::token::TokenHash;

use super::client_auth;
use crate::client_address::ClientAddress;
use crate::error::HttpError;
use crate::extract::{OAuthForm, Server};
use crate::responses::no_store_json;
use crate::settings::ServerSettings;
use crate::state::{App, AppState};

pub async fn revoke(
    State(app): State<AppState>,
    server: Server,
    from: ClientAddress,
    headers: HeaderMap,
    OAuthForm(params, _): OAuthForm,
) -> Result<Response, HttpError> {
    client_auth::limit_failures(&app, from, &headers, &params, run(&app, &server, &headers, &params)).await
}

async fn run(app: &App, server: &ServerSettings, headers: &HeaderMap, params: &Params) -> Result<Response, HttpError> {
    let client = client_auth::authenticate(app, server, headers, params).await?;
    let hash = TokenHash::of(params.require("token")?);
    // The hint only orders the lookups (RFC 7009 §2.1); both kinds are always tried.
    let access_first = params.get("token_type_hint") == Some("access_token");
    let found = (access_first && revoke_access(app, server, &client, &hash).await?)
        || revoke_refresh(app, server, &client, &hash).await?
        || (!access_first && revoke_access(app, server, &client, &hash).await?);
    tracing::debug!(found, "revocation request");
    Ok(no_store_json(StatusCode::OK, serde_json::json!({})))
}

/// Ends the grant of a refresh token this client holds. `true` if the token exists.
async fn revoke_refresh(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    hash: &TokenHash,
) -> Result<bool, HttpError> {
    let Some(rt) = app.store.find_refresh_token(hash).await? else { return Ok(false) };
    if rt.client_id == client.client_id && rt.server == server.slug {
        if app.store.end_family(&rt.family_id, FamilyStatus::Revoked, app.now()).await? {
            app.metrics.grant_revoked("client");
        }
        tracing::info!(family = %rt.family_id, "grant revoked by its client");
    }
    Ok(true)
}

/// Revokes an access token this client holds. `true` if the token exists.
async fn revoke_access(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    hash: &TokenHash,
) -> Result<bool, HttpError> {
    let Some(at) = app.store.find_access_token(hash).await? else { return Ok(false) };
    if at.client_id == client.client_id && at.server == server.slug {
        app.store.revoke_access_token(hash, app.now()).await?;
    }
    Ok(true)
}
