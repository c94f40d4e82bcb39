//! Discovery documents: protected resource metadata (RFC 9728) and authorization server
//! metadata (RFC 8414), served at every location MCP clients look; and the key set MCP
//! upstreams verify identity assertions with (`P/.well-known/jwks.json`); and the proxy's
//! own Client ID Metadata Document, as the client of brokered MCP upstreams.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use mcp_oauth_core::client::AuthMethod;
use mcp_oauth_core::jwt_grant;
use serde_json::{Value, json};

use crate::extract::Server;
use crate::services::identities::Identities;
use crate::settings::{ServerSettings, Settings};
use crate::state::AppState;

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
        "grant_types_supported": grant_types(&server),
        "token_endpoint_auth_methods_supported": AuthMethod::SUPPORTED,
        "revocation_endpoint_auth_methods_supported": AuthMethod::SUPPORTED,
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": settings.metadata_documents.enabled,
    });
    if settings.registration_enabled {
        metadata["registration_endpoint"] = format!("{issuer}/register").into();
    }
    // SEP-990: a server that accepts ID-JAGs says so (the grant and its profile).
    if !server.enterprise_idps.is_empty() {
        metadata["authorization_grant_profiles_supported"] = json!([jwt_grant::ID_JAG_PROFILE]);
    }
    Json(metadata)
}

/// Brokered OAuth: the proxy's Client ID Metadata Document, which authorization servers
/// of OAuth-protected MCP upstreams fetch when the proxy logs users in there with this
/// URL as its `client_id` (see `services::brokers`).
pub async fn upstream_client(State(app): State<AppState>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(app.brokers.client_metadata_document()))
}

/// The grants this server carries out: the browser's two, and those without a browser
/// where the server takes them (clients on their own behalf, an enterprise IdP's ID-JAGs).
fn grant_types(server: &ServerSettings) -> Vec<&'static str> {
    let mut grants = vec!["authorization_code", "refresh_token"];
    if server.access.as_ref().is_some_and(|a| !a.clients.is_empty()) {
        grants.push("client_credentials");
    }
    if !server.enterprise_idps.is_empty() {
        grants.push(jwt_grant::JWT_BEARER);
    }
    grants
}

/// How long verifiers may keep the key set: long enough that they need not fetch it per
/// assertion, short enough that a rotated key is seen well within the time the previous
/// key must stay configured (at least the assertion lifetime, see the README).
const JWKS_MAX_AGE_SECS: u32 = 300;

/// The public keys identity assertions are signed with, current first (RFC 7517). Served
/// whether or not a server uses assertions: they reveal nothing, and a verifier set up
/// before its server is switched to `identity` finds them.
pub async fn jwks(State(identities): State<Arc<Identities>>) -> impl IntoResponse {
    let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
    ([(header::CONTENT_TYPE, "application/json".to_owned()), (header::CACHE_CONTROL, cache)], identities.jwks_json())
}
