//! `P/mcp/S`: the MCP endpoint clients talk to, proxied to the server's upstream.
//!
//! Per request: one indexed read checks the client's token and fetches the sealed
//! upstream credential with it; the credential is opened (and refreshed once if it is
//! about to expire); the request goes upstream with the user's upstream token in place of
//! the client's; the answer streams back as it arrives.

mod challenge;
mod forward;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_store::AccessTokenInfo;
use serde_json::json;

use crate::app::{App, AppState};
use crate::settings::ServerSettings;
use crate::upstream_access::{AccessError, Trigger};
pub use challenge::challenge;

fn json_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (status, axum::Json(json!({"error": error, "error_description": description}))).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp
}

/// The client's bearer token, checked: present, known, unexpired, unrevoked, its grant
/// active, and issued for this very server (audience).
async fn authenticate(app: &App, server: &ServerSettings, headers: &HeaderMap) -> Result<AccessTokenInfo, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(challenge(app, server, None));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(challenge(app, server, Some("the Authorization header must be a Bearer token")));
    };
    let info = match app.store.find_access_token(&TokenHash::of(token)).await {
        Ok(info) => info,
        Err(e) => {
            let e = crate::app::store_error(e);
            return Err(json_error(StatusCode::SERVICE_UNAVAILABLE, e.code.as_str(), &e.description));
        }
    };
    let refusal = match &info {
        None => Some("unknown access token"),
        Some(i) if i.server != server.slug => Some("this access token was issued for another MCP server"),
        Some(i) if i.revoked => Some("the access token has been revoked"),
        Some(i) if i.family_status != FamilyStatus::Active => Some("the grant has ended; authorize again"),
        Some(i) if i.expires_at <= app.now() => Some("the access token has expired"),
        Some(_) => None,
    };
    match info {
        Some(i) if refusal.is_none() => Ok(i),
        _ => Err(challenge(app, server, Some(refusal.unwrap_or("unknown access token")))),
    }
}

fn access_error(app: &App, server: &ServerSettings, e: AccessError) -> Response {
    match e {
        AccessError::NeedsLogin => challenge(app, server, Some("the upstream login has ended; authorize again")),
        AccessError::Unavailable(_) => {
            let mut resp = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the upstream identity provider is unavailable; retry shortly",
            );
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            resp
        }
        AccessError::Internal(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal error"),
    }
}

pub async fn handle(State(app): State<AppState>, Path(slug): Path<String>, req: Request) -> Response {
    let Some(server) = app.server(&slug) else {
        return json_error(StatusCode::NOT_FOUND, "not_found", "no such MCP server");
    };
    let info = match authenticate(&app, server, req.headers()).await {
        Ok(info) => info,
        Err(resp) => return resp,
    };
    let (parts, body) = req.into_parts();
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|len| len > server.max_body_bytes)
    {
        return too_large(server);
    }
    // Buffered, because a request refused upstream with 401 is replayed once; MCP
    // request bodies are small JSON-RPC messages.
    let Ok(body) = axum::body::to_bytes(Body::new(body), server.max_body_bytes).await else {
        return too_large(server);
    };

    let provider = app.provider(server);
    let first = match app
        .upstream_access_token(provider, &info.family_id, &info.upstream_sealed, info.upstream_expires_at, None)
        .await
    {
        Ok(access) => access,
        Err(e) => return access_error(&app, server, e),
    };
    let resp = match forward::send(&app, server, &parts, body.clone(), &first.token).await {
        Ok(resp) => resp,
        Err(resp) => return resp,
    };
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return forward::stream_back(resp);
    }
    // The upstream MCP server refused the user's token: an auth event, not a tool error
    // (field lesson 9). Refresh once and replay.
    drop(resp);
    let second = match app
        .upstream_access_token(
            provider,
            &info.family_id,
            &first.sealed,
            info.upstream_expires_at,
            Some(Trigger::Rejected),
        )
        .await
    {
        Ok(access) => access,
        Err(e) => return access_error(&app, server, e),
    };
    match forward::send(&app, server, &parts, body, &second.token).await {
        Ok(resp) if resp.status() == reqwest::StatusCode::UNAUTHORIZED => {
            challenge(&app, server, Some("the MCP server refused the upstream credential"))
        }
        Ok(resp) => forward::stream_back(resp),
        Err(resp) => resp,
    }
}

fn too_large(server: &ServerSettings) -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        &format!("MCP request bodies are limited to {} bytes", server.max_body_bytes),
    )
}
