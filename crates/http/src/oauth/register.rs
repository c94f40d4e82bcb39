//! Dynamic client registration (RFC 7591).

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::Response;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::{Client, ClientMetadata};
use mcp_oauth_core::token::{TokenKind, mint, random_id};
use serde_json::Value;

use crate::error::HttpError;
use crate::extract::Server;
use crate::responses::no_store_json;
use crate::serve::body_deadline;
use crate::services::audit::Caller;
use crate::state::AppState;

/// Registration bodies larger than this are refused: a registration is a few hundred
/// bytes, and whatever is accepted is stored for anyone who asks.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub async fn register(
    State(app): State<AppState>,
    server: Server,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, HttpError> {
    if !app.settings.registration_enabled {
        return Err(HttpError::not_found(
            "dynamic registration is turned off here: use a client ID metadata document or a pre-registered client",
        ));
    }
    app.limits.registration(caller.address.client)?;
    let body = body.map_err(|rejection| {
        if body_deadline::is_elapsed(&rejection) {
            return HttpError::body_too_slow("invalid_request");
        }
        OAuthError::invalid_client_metadata(format!("the registration request is larger than {MAX_BODY_BYTES} bytes"))
            .into()
    })?;
    let request: Value = serde_json::from_slice(&body)
        .map_err(|_| OAuthError::invalid_client_metadata("the request body must be a JSON object"))?;
    let metadata = ClientMetadata::from_registration(&request)?;
    let now = app.now();
    let secret = metadata.token_endpoint_auth_method.uses_secret().then(|| mint(TokenKind::ClientSecret));
    let client = Client {
        client_id: format!("mop_client_{}", random_id()),
        secret_hash: secret.as_ref().map(|s| s.hash),
        metadata,
        trusted: false,
        created_at: now,
    };
    app.clients.register(&server.slug, &client).await?;
    tracing::info!(server = %server.slug, client_id = %client.client_id, name = ?client.metadata.client_name, "client registered");
    app.audit.record(app.event("client.registered").slug(&server.slug).client(&client.client_id).from(&caller));

    // RFC 7591 §3.2.1: echo every registered field, plus the credentials.
    let mut body = serde_json::to_value(&client.metadata).expect("metadata serialises");
    body["client_id"] = client.client_id.clone().into();
    body["client_id_issued_at"] = now.into();
    if let Some(secret) = secret {
        body["client_secret"] = secret.secret.into();
        body["client_secret_expires_at"] = 0.into();
    }
    Ok(no_store_json(StatusCode::CREATED, body))
}
