//! Dynamic client registration (RFC 7591).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::{Client, ClientMetadata};
use mcp_oauth_core::token::{TokenKind, mint, random_id};
use serde_json::Value;

use crate::app::{AppState, store_error};
use crate::responses::{JsonError, no_store_json};

pub async fn register(State(app): State<AppState>, Path(slug): Path<String>, body: Bytes) -> Response {
    let Some(server) = app.server(&slug) else {
        return JsonError(OAuthError::invalid_request("unknown MCP server")).into_response();
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return JsonError(OAuthError::invalid_client_metadata("the request body must be a JSON object"))
                .into_response();
        }
    };
    let metadata = match ClientMetadata::from_registration(&request) {
        Ok(m) => m,
        Err(e) => return JsonError(e).into_response(),
    };
    let now = app.now();
    let secret = metadata.token_endpoint_auth_method.is_confidential().then(|| mint(TokenKind::ClientSecret));
    let client = Client {
        client_id: format!("mop_client_{}", random_id()),
        secret_hash: secret.as_ref().map(|s| s.hash),
        metadata,
        trusted: false,
        created_at: now,
    };
    if let Err(e) = app.store.insert_client(&server.slug, &client).await {
        return JsonError(store_error(e)).into_response();
    }
    tracing::info!(server = %server.slug, client_id = %client.client_id, name = ?client.metadata.client_name, "client registered");

    // RFC 7591 §3.2.1: echo every registered field, plus the credentials.
    let mut body = serde_json::to_value(&client.metadata).expect("metadata serialises");
    body["client_id"] = client.client_id.clone().into();
    body["client_id_issued_at"] = now.into();
    if let Some(secret) = secret {
        body["client_secret"] = secret.secret.into();
        body["client_secret_expires_at"] = 0.into();
    }
    no_store_json(StatusCode::CREATED, body)
}
