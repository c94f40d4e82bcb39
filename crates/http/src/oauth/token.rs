//! The token endpoint: `authorization_code` and `refresh_token` grants.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::{CodeVerdict, FamilyStatus, judge_code, judge_refresh};
use mcp_oauth_core::form::Params;
use mcp_oauth_core::pkce;
use mcp_oauth_core::scope::{Scopes, refresh_scope};
use mcp_oauth_core::token::{TokenHash, TokenKind, mint};
use mcp_oauth_store::{NewTokenPair, StoredRefreshToken};
use serde_json::json;

use super::client_auth;
use crate::app::{App, AppState, store_error};
use crate::responses::{JsonError, no_store_json};
use crate::settings::ServerSettings;
use crate::upstream_access::AccessError;

/// OAuth endpoints accept only form posts (RFC 6749 §3.2).
pub fn require_form(headers: &HeaderMap) -> Result<(), OAuthError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    if mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Ok(())
    } else {
        Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"))
    }
}

pub async fn token(State(app): State<AppState>, Path(slug): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    match grant(&app, &slug, &headers, &body).await {
        Ok(resp) => resp,
        Err(e) => JsonError(e).into_response(),
    }
}

pub async fn method_not_allowed() -> Response {
    let mut resp = JsonError(OAuthError::invalid_request("this endpoint accepts POST only")).into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("POST"));
    resp
}

async fn grant(app: &App, slug: &str, headers: &HeaderMap, body: &[u8]) -> Result<Response, OAuthError> {
    let server = app.server(slug).ok_or_else(|| OAuthError::invalid_request("unknown MCP server"))?;
    require_form(headers)?;
    let params = Params::parse(body)?;
    let client = client_auth::authenticate(app, slug, headers, &params).await?;
    match params.get("grant_type") {
        Some("authorization_code") => authorization_code(app, server, &client, &params).await,
        Some("refresh_token") => refresh_token(app, server, &client, &params).await,
        Some(other) => Err(OAuthError::unsupported_grant_type(format!("grant_type {other:?} is not supported"))),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// A fresh token pair for `client`; the refresh token only if the client registered
/// for the refresh grant. Returns the stored form and the response body.
fn new_pair(app: &App, client: &Client, scope: &Scopes) -> (NewTokenPair, serde_json::Value) {
    let now = app.now();
    let t = &app.settings.tokens;
    let access = mint(TokenKind::AccessToken);
    let mut body = json!({
        "access_token": access.secret,
        "token_type": "Bearer",
        "expires_in": t.access_ttl_secs,
        "scope": scope.to_string(),
    });
    let refresh = client.metadata.allows_grant("refresh_token").then(|| {
        let r = mint(TokenKind::RefreshToken);
        body["refresh_token"] = r.secret.into();
        (r.hash, now + t.refresh_ttl_secs)
    });
    let pair = NewTokenPair {
        access_hash: access.hash,
        access_expires_at: now + t.access_ttl_secs,
        refresh,
        client_id: client.client_id.clone(),
        scope: scope.to_string(),
        issued_at: now,
    };
    (pair, body)
}

async fn revoke_for_replay(app: &App, family_id: &str, what: &str) {
    match app.store.end_family(family_id, FamilyStatus::Revoked, app.now()).await {
        Ok(true) => tracing::warn!(family = family_id, "{what} replayed: the grant has been revoked"),
        Ok(false) => {}
        Err(e) => tracing::error!(family = family_id, error = %e, "could not revoke a replayed grant"),
    }
}

async fn authorization_code(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    let code = params.require("code")?;
    let hash = TokenHash::of(code);
    let stored = app.store.find_code(&hash).await.map_err(store_error)?;
    let Some(stored) = stored else {
        return Err(OAuthError::invalid_grant("unknown authorization code"));
    };
    // Checks that do not prove the caller holds this code leave it untouched.
    if stored.client_id != client.client_id || stored.server != server.slug {
        return Err(OAuthError::invalid_grant("the authorization code was issued to another client"));
    }
    match judge_code(&mcp_oauth_core::family::CodeState { used: stored.used, expires_at: stored.expires_at }, app.now())
    {
        CodeVerdict::Redeem => {}
        CodeVerdict::Expired => return Err(OAuthError::invalid_grant("the authorization code has expired")),
        CodeVerdict::Replay => {
            revoke_for_replay(app, &stored.family_id, "authorization code").await;
            return Err(OAuthError::invalid_grant("the authorization code was already used; its tokens are revoked"));
        }
    }
    if let Some(given) = params.get("redirect_uri")
        && given != stored.redirect_uri
    {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request"));
    }
    pkce::verify(params.get("code_verifier"), &stored.code_challenge)?;

    let scope = Scopes::parse(&stored.scope)?;
    let (pair, body) = new_pair(app, client, &scope);
    if !app.store.redeem_code(&hash, app.now(), &pair).await.map_err(store_error)? {
        // Another request redeemed it between our read and our write: a replay.
        revoke_for_replay(app, &stored.family_id, "authorization code").await;
        return Err(OAuthError::invalid_grant("the authorization code was already used; its tokens are revoked"));
    }
    Ok(no_store_json(StatusCode::OK, body))
}

async fn refresh_token(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    params: &Params,
) -> Result<Response, OAuthError> {
    if !client.metadata.allows_grant("refresh_token") {
        return Err(OAuthError::unauthorized_client("this client did not register the refresh_token grant"));
    }
    let presented = params.require("refresh_token")?;
    let hash = TokenHash::of(presented);
    let stored = app.store.find_refresh_token(&hash).await.map_err(store_error)?;
    let Some(stored) = stored.filter(|s| s.server == server.slug) else {
        return Err(OAuthError::invalid_grant("unknown refresh token"));
    };
    refuse_unless_rotatable(app, &stored, client).await?;
    let scope = refresh_scope(params.get("scope"), &Scopes::parse(&stored.scope)?)?;
    ensure_upstream_usable(app, server, &stored.family_id).await?;
    let (pair, body) = new_pair(app, client, &scope);
    let grace = app.settings.tokens.refresh_grace_secs;
    if app.store.rotate_refresh_token(&hash, &client.client_id, app.now(), grace, &pair).await.map_err(store_error)? {
        return Ok(no_store_json(StatusCode::OK, body));
    }
    // The state changed between our read and our write (a concurrent revocation, or the
    // grace window closing): read again and report what it is now.
    let now_stored = app.store.find_refresh_token(&hash).await.map_err(store_error)?;
    match now_stored {
        Some(s) => {
            refuse_unless_rotatable(app, &s, client).await?;
            Err(OAuthError::invalid_grant("the refresh token changed concurrently; retry"))
        }
        None => Err(OAuthError::invalid_grant("unknown refresh token")),
    }
}

/// A client refreshing its token after the upstream credential expired must get a token
/// that works: refresh upstream now, and if that is refused for good, refuse this grant
/// too, so the client logs in again instead of holding a token that cannot work.
async fn ensure_upstream_usable(app: &App, server: &ServerSettings, family_id: &str) -> Result<(), OAuthError> {
    let provider = app.provider(server);
    let Some(cred) = app.store.upstream_credential(family_id).await.map_err(store_error)? else {
        return Err(OAuthError::invalid_grant("unknown grant"));
    };
    let result = app.upstream_access_token(provider, family_id, &cred.sealed, cred.expires_at, None).await;
    match result {
        Ok(_) => Ok(()),
        Err(AccessError::NeedsLogin) => Err(OAuthError::invalid_grant("the upstream login has ended; authorize again")),
        Err(AccessError::Unavailable(_)) => {
            Err(OAuthError::temporarily_unavailable("the upstream identity provider is unavailable; retry shortly", 5))
        }
        Err(AccessError::Internal(_)) => Err(OAuthError::server_error("internal error")),
    }
}

/// Applies the family state machine; revokes the family on reuse.
async fn refuse_unless_rotatable(app: &App, stored: &StoredRefreshToken, client: &Client) -> Result<(), OAuthError> {
    let state = mcp_oauth_core::family::RefreshTokenState {
        client_id: stored.client_id.clone(),
        family_status: stored.family_status,
        expires_at: stored.expires_at,
        superseded_at: stored.superseded_at,
    };
    let verdict = judge_refresh(&state, &client.client_id, app.now(), app.settings.tokens.refresh_grace_secs);
    if verdict.rotates() {
        return Ok(());
    }
    if verdict.revokes_family() {
        revoke_for_replay(app, &stored.family_id, "superseded refresh token").await;
    }
    Err(OAuthError::invalid_grant(verdict.refusal()))
}
