//! The 401 answer of the MCP endpoint (RFC 6750 §3, RFC 9728 §5.1, MCP authorization).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::settings::ServerSettings;

/// A 401 whose `WWW-Authenticate` tells the client where to find the authorization
/// server and which scopes to ask for; `error="invalid_token"` only when a token was
/// presented (RFC 6750 §3.1).
pub fn challenge(app: &App, server: &ServerSettings, invalid_token: Option<&str>) -> Response {
    let mut value = format!(
        "Bearer resource_metadata=\"{}\", scope=\"{}\"",
        app.settings.resource_metadata_url(&server.slug),
        server.scopes
    );
    let body = match invalid_token {
        Some(why) => {
            value.push_str(&format!(", error=\"invalid_token\", error_description=\"{}\"", why.replace('"', "'")));
            json!({"error": "invalid_token", "error_description": why})
        }
        None => json!({"error": "unauthorized", "error_description": "a Bearer access token is required"}),
    };
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
