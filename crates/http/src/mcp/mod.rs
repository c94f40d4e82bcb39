//! `P/mcp/S`: the MCP endpoint clients talk to, proxied to the server's MCP upstream.
//!
//! Per request: one indexed read checks the client's token and fetches the sealed
//! provider credential with it (the `Bearer` extractor); the credential is opened (and
//! refreshed once if it is about to expire); the request goes to the MCP upstream with
//! the user's provider token in place of the client's; the answer streams back as it
//! arrives.

pub mod client;
mod forward;
mod tool_list;
mod tool_rules;

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;

use crate::body_deadline;
use crate::client_address::ClientAddress;
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_store::AccessTokenInfo;

use crate::error::HttpError;
use crate::extract::Bearer;
use crate::metrics::{McpLabels, SlugLabels};
use crate::settings::{ServerSettings, Settings};
use crate::state::{App, AppState};
use crate::upstream_access::{AccessError, Trigger};

pub async fn handle(
    State(app): State<AppState>,
    Bearer { server, token, hash }: Bearer,
    from: ClientAddress,
    req: Request,
) -> Result<Response, HttpError> {
    if app.first_calls.is_first(&token.family_id) {
        let trace_id = token.trace_id.as_deref().unwrap_or("-");
        tracing::info!(trace_id, server = %server.slug, client_id = %token.client_id, "first MCP call of a grant");
    }
    let (parts, body) = req.into_parts();
    // Streamable HTTP uses these three (CORS preflights are answered before this); any
    // other method could carry a body the tool rules never see to an upstream that
    // executes whatever arrives.
    if ![Method::GET, Method::POST, Method::DELETE].contains(&parts.method) {
        return Err(HttpError::MethodNotAllowed { allow: "GET, POST, DELETE" });
    }
    let declared_len = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared_len.is_some_and(|len| len > server.max_body_bytes) {
        return Err(too_large(&server));
    }
    // Buffered, because a request refused by the MCP upstream with 401 is replayed once;
    // MCP request bodies are small JSON-RPC messages.
    let body = axum::body::to_bytes(Body::new(body), server.max_body_bytes).await.map_err(|e| {
        if body_deadline::is_elapsed(&e) { HttpError::body_too_slow("request_timeout") } else { too_large(&server) }
    })?;

    let mut tool_filter = None;
    // Every body is judged, whatever the method: a GET or DELETE with a body is as able
    // to reach a tool as a POST.
    if !server.tool_scopes.is_empty() && (parts.method == Method::POST || !body.is_empty()) {
        let granted = Scopes::parse(&token.scope).unwrap_or_default();
        if server.hide_unauthorized_tools && tool_rules::is_tools_list(&body) {
            let rules = server.tool_scopes.clone();
            let granted = granted.clone();
            let keep: forward::ToolFilter =
                std::sync::Arc::new(move |tool| rules.required(tool).is_subset_of(&granted));
            tool_filter = Some(keep);
        }
        match tool_rules::check(&parts.headers, &body, &server.tool_scopes, &granted) {
            Ok(()) => {}
            Err(tool_rules::Refusal::InsufficientScope { needed }) => {
                tracing::info!(server = %server.slug, client_id = %token.client_id, %needed, "tool call refused: insufficient scope");
                return Err(HttpError::insufficient_scope(&app.settings, &server, &needed));
            }
            Err(tool_rules::Refusal::BadRequest { id, code, message }) => {
                return Err(HttpError::JsonRpc { id, code, message });
            }
        }
    }
    let provider = app.providers.for_server(&server);
    let origin = (&from, app.settings.public_scheme_and_host());
    let refused = |e| access_refused(&app.settings, &server, e);
    let first = app
        .upstream
        .token(provider, &token.family_id, &token.upstream_sealed, token.upstream_expires_at, None)
        .await
        .map_err(refused)?;
    // Looked up only for an answer that is an event stream.
    let open_streams = || app.metrics.open_streams.get_or_create(&SlugLabels { slug: server.slug.clone() }).clone();
    let resp = send(&app, &server, &parts, body.clone(), &first.token, origin).await?;
    let idle = app.mcp_client.idle;
    if resp.status() != StatusCode::UNAUTHORIZED {
        return Ok(revocable(&app, &token, hash, forward::stream_back(resp, idle, open_streams, tool_filter)));
    }
    // The MCP upstream refused the user's token: an auth event, not a tool error (hiding
    // it as one leaves the client with a token that never works). `upstream_access` finds
    // a newer token to replay once (asking the provider at most once a minute per grant),
    // or says whose refusal it is: the provider's ends the grant (the challenge); the MCP
    // server's alone is a 502 that keeps it, as another login would change nothing.
    drop(resp);
    let trigger = Some(Trigger::Rejected);
    let second = app
        .upstream
        .token(provider, &token.family_id, &first.sealed, token.upstream_expires_at, trigger)
        .await
        .map_err(refused)?;
    let resp = send(&app, &server, &parts, body, &second.token, origin).await?;
    if resp.status() == StatusCode::UNAUTHORIZED {
        return Err(refused(app.upstream.refused_again(provider, &token.family_id)));
    }
    Ok(revocable(&app, &token, hash, forward::stream_back(resp, idle, open_streams, tool_filter)))
}

/// An event stream, ended when its grant or access token is revoked (see `revocations`;
/// it may stay open for hours after the token was checked). Other answers end by
/// themselves and register nothing.
fn revocable(app: &App, token: &AccessTokenInfo, hash: TokenHash, resp: Response) -> Response {
    let is_event_stream = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_event_stream {
        return resp;
    }
    resp.map(|body| app.revocations.end_on_revocation(&token.family_id, hash, body))
}

/// [`forward::send`], counted: the MCP upstream's status and its time to the response head.
async fn send(
    app: &App,
    server: &ServerSettings,
    parts: &Parts,
    body: Bytes,
    provider_token: &str,
    origin: (&ClientAddress, (&str, &str)),
) -> Result<Response<hyper::body::Incoming>, HttpError> {
    let started = Instant::now();
    let resp = forward::send(&app.mcp_client, server, parts, body, provider_token, origin).await?;
    let labels = McpLabels { slug: server.slug.clone(), status: resp.status().as_u16() };
    app.metrics.mcp_responses.get_or_create(&labels).inc();
    let slug = SlugLabels { slug: server.slug.clone() };
    app.metrics.mcp_first_byte_seconds.get_or_create(&slug).observe(started.elapsed().as_secs_f64());
    Ok(resp)
}

/// No usable provider token: a grant that needs a new login is the client's token
/// failing (the challenge sends it to authorize again); an MCP server refusing a token
/// the provider has not refused is a 502 (see `HttpError::from`); anything else is
/// temporary.
fn access_refused(settings: &Settings, server: &ServerSettings, e: AccessError) -> HttpError {
    match e {
        AccessError::NeedsLogin => {
            HttpError::challenge(settings, server, Some("the upstream login has ended; authorize again"))
        }
        other => other.into(),
    }
}

fn too_large(server: &ServerSettings) -> HttpError {
    HttpError::Json {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        error: "request_too_large",
        description: format!("MCP request bodies are limited to {} bytes", server.max_body_bytes),
    }
}
