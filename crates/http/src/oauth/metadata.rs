//! Discovery documents: protected resource metadata (RFC 9728) and authorization server
//! metadata (RFC 8414), served at every location MCP clients look.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use mcp_oauth_core::client::AuthMethod;
use serde_json::{Value, json};

use crate::extract::Server;
use crate::settings::Settings;

pub async fn protected_resource(State(s): State<Arc<Settings>>, server: Server) -> Json<Value> {
    Json(json!({
        "resource": s.resource(&server.slug),
        "authorization_servers": [s.issuer(&server.slug)],
        "scopes_supported": server.scopes.iter().collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "resource_name": format!("MCP server {}", server.slug),
    }))
}

pub async fn authorization_server(State(settings): State<Arc<Settings>>, server: Server) -> Json<Value> {
    let issuer = settings.issuer(&server.slug);
    let mut metadata = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "scopes_supported": server.grantable_scopes().iter().collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": AuthMethod::SUPPORTED,
        "revocation_endpoint_auth_methods_supported": AuthMethod::SUPPORTED,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": settings.metadata_documents.enabled,
    });
    if settings.registration_enabled {
        metadata["registration_endpoint"] = format!("{issuer}/register").into();
    }
    Json(metadata)
}
