//! Token revocation (RFC 7009).
//!
//! Revoking a refresh token ends its whole family (the access tokens issued with it
//! included, as RFC 7009 §2.1 encourages); revoking an access token ends just that
//! token. Unknown, expired or foreign tokens get the same 200 as a success, so the
//! endpoint reveals nothing about which tokens exist.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::token::TokenHash;

use super::client_auth;
use super::token::require_form;
use crate::app::{App, AppState, store_error};
use crate::responses::{JsonError, no_store_json};

pub async fn revoke(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match run(&app, &slug, &headers, &body).await {
        Ok(()) => no_store_json(StatusCode::OK, serde_json::json!({})),
        Err(e) => JsonError(e).into_response(),
    }
}

async fn run(app: &App, slug: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let server = app.server(slug).ok_or_else(|| OAuthError::invalid_request("unknown MCP server"))?;
    require_form(headers)?;
    let params = Params::parse(body)?;
    let client = client_auth::authenticate(app, slug, headers, &params).await?;
    let token = params.require("token")?;
    let hash = TokenHash::of(token);
    let now = app.now();
    // The hint only orders the lookups (RFC 7009 §2.1); both kinds are always tried.
    let access_first = params.get("token_type_hint") == Some("access_token");
    for kind in if access_first { ["access", "refresh"] } else { ["refresh", "access"] } {
        if kind == "refresh" {
            if let Some(rt) = app.store.find_refresh_token(&hash).await.map_err(store_error)? {
                if rt.client_id == client.client_id && rt.server == server.slug {
                    app.store.end_family(&rt.family_id, FamilyStatus::Revoked, now).await.map_err(store_error)?;
                    tracing::info!(family = %rt.family_id, "grant revoked by its client");
                }
                return Ok(());
            }
        } else if let Some(at) = app.store.find_access_token(&hash).await.map_err(store_error)? {
            if at.client_id == client.client_id && at.server == server.slug {
                app.store.revoke_access_token(&hash, now).await.map_err(store_error)?;
            }
            return Ok(());
        }
    }
    Ok(())
}
