//! `P/mcp/S`: the MCP endpoint clients talk to, proxied to the server's MCP upstream.
//!
//! Per request: one indexed read checks the client's token and fetches the sealed
//! provider credential with it (the `Bearer` extractor); the credential is opened (and
//! refreshed once if it is about to expire); the request goes to the MCP upstream with
//! the user's provider token in place of the client's; the answer streams back as it
//! arrives. Servers whose `upstream_auth` is `identity` or `none` need no provider token:
//! the request goes with the proxy's identity assertion, or with nothing (see
//! [`without_provider_token`]).

mod forward;
mod strict_json;
mod tool_list;
mod tool_rules;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;

use crate::client_address::ClientAddress;
use crate::serve::body_deadline;
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_store::AccessTokenInfo;

use crate::error::HttpError;
use crate::extract::Bearer;
use crate::services::metrics::ServerMetrics;
use crate::services::upstream_access::{AccessError, Trigger};
use crate::settings::{ServerSettings, Settings, ToolChanges, UpstreamAuth};
use crate::state::{App, AppState};
use forward::Credential;
use prometheus_client::metrics::gauge::Gauge;
use tool_list::ToolEdit;

pub async fn handle(
    State(app): State<AppState>,
    Bearer { server, token, hash }: Bearer,
    from: ClientAddress,
    req: Request,
) -> Result<Response, HttpError> {
    let (mut parts, body) = req.into_parts();
    // Streamable HTTP uses these three (CORS preflights are answered before this); any
    // other method could carry a body the tool rules never see to an upstream that
    // executes whatever arrives.
    if ![Method::GET, Method::POST, Method::DELETE].contains(&parts.method) {
        return Err(HttpError::MethodNotAllowed { allow: "GET, POST, DELETE" });
    }
    let declared_len = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared_len.is_some_and(|len| len > server.max_body_bytes) {
        return Err(HttpError::too_large(server.max_body_bytes));
    }
    // Buffered, because a request refused by the MCP upstream with 401 is replayed once;
    // MCP request bodies are small JSON-RPC messages.
    let body = axum::body::to_bytes(Body::new(body), server.max_body_bytes).await.map_err(|e| {
        if body_deadline::is_elapsed(&e) {
            HttpError::body_too_slow("request_timeout")
        } else {
            HttpError::too_large(server.max_body_bytes)
        }
    })?;

    let edit = tool_edit(&app, &server, &token, &parts, &body).await?;
    if edit.is_some() {
        // The answer is read and edited here; a compressed one could not be.
        parts.headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    let origin = (&from, app.settings.public_scheme_and_host());
    if server.identity_headers {
        parts.extensions.insert(app.identities.headers(&token)?);
    }
    if !server.upstream_auth.needs_provider_token() {
        return without_provider_token(&app, &server, (&token, hash), &parts, body, origin, edit).await;
    }
    let refused = |e| access_refused(&app.settings, &server, e);
    let credential = &token.upstream;
    let first = app.upstream.token(&server, credential, None).await.map_err(refused)?;
    if first.first_use {
        let trace_id = token.trace_id.as_deref().unwrap_or("-");
        tracing::info!(trace_id, server = %server.slug, client_id = %token.client_id, "first MCP call of a grant");
    }
    let metrics = app.metrics.server(&server.slug);
    let open_streams = || metrics.open_streams.clone();
    let resp = send(&app, &metrics, &server, &parts, body.clone(), &first.token, origin).await?;
    let idle = app.mcp_client.idle;
    if let Some(step_up) = upstream_step_up(&app.settings, &server, &token, &resp) {
        return Err(step_up);
    }
    if resp.status() != StatusCode::UNAUTHORIZED {
        return answer(&app, &token, hash, resp, idle, open_streams, edit).await;
    }
    // The MCP upstream refused the user's token: an auth event, not a tool error (hiding
    // it as one leaves the client with a token that never works). `upstream_access` finds
    // a newer token to replay once (asking the provider at most once a minute per grant),
    // or says whose refusal it is: the provider's ends the grant (the challenge); the MCP
    // server's alone is a 502 that keeps it, as another login would change nothing.
    drop(resp);
    let refused_credential = first.credential(credential);
    let second = app.upstream.token(&server, &refused_credential, Some(Trigger::Rejected)).await.map_err(refused)?;
    let resp = send(&app, &metrics, &server, &parts, body, &second.token, origin).await?;
    if resp.status() == StatusCode::UNAUTHORIZED {
        return Err(refused(app.upstream.refused_again(&server, &credential.family_id)));
    }
    answer(&app, &token, hash, resp, idle, open_streams, edit).await
}

/// Brokered OAuth: an upstream's `403` with `WWW-Authenticate: Bearer
/// error="insufficient_scope", scope="..."` becomes the proxy's own step-up challenge
/// (its `resource_metadata`, never the upstream's: the client's authorization server is
/// the proxy), naming every scope the call needs: the token's and the ones the upstream
/// asked for. Proxy scopes map to upstream scopes by name (list the upstream's under the
/// server's `scopes`); a new authorization with them asks the upstream for them too (see
/// `Broker::scopes_for`). A scope the server does not list is left out, so the challenge
/// never names what the proxy could not grant.
fn upstream_step_up(
    settings: &Settings,
    server: &ServerSettings,
    token: &AccessTokenInfo,
    resp: &axum::http::Response<hyper::body::Incoming>,
) -> Option<HttpError> {
    if resp.status() != StatusCode::FORBIDDEN || server.upstream_auth.brokered().is_none() {
        return None;
    }
    let challenge = resp
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(mcp_oauth_upstream::brokered::Challenge::parse)?;
    if challenge.error.as_deref() != Some("insufficient_scope") {
        return None;
    }
    // `offline_access` belongs to the authorization server alone, never in a challenge
    // (SEP-2207), even when the upstream names it.
    let asked = challenge.scope.unwrap_or_default();
    let asked = asked
        .split_whitespace()
        .filter(|s| *s != crate::settings::OFFLINE_ACCESS)
        .filter(|s| server.scopes.is_empty() || server.scopes.iter().any(|o| o == *s));
    let needed = Scopes::from_list(token.scope.split_whitespace().chain(asked));
    tracing::info!(server = %server.slug, client_id = %token.client_id, %needed, "the MCP upstream asks for more scope: step-up");
    Some(HttpError::insufficient_scope(settings, server, &needed))
}

/// A server whose MCP upstream gets the proxy's identity assertion, or nothing: the
/// provider token is neither opened nor refreshed (the grant is live: the token check
/// refused ended grants). A 401 from the MCP upstream refuses what the proxy sent, which
/// neither the provider nor a new login can change: 502, the grant kept, and a warning
/// for the operator (an assertion refused is usually a verifier expecting another `aud`
/// or `iss`, or unable to fetch the key set).
async fn without_provider_token(
    app: &App,
    server: &ServerSettings,
    (token, hash): (&AccessTokenInfo, TokenHash),
    parts: &Parts,
    body: Bytes,
    origin: (&ClientAddress, (&str, &str)),
    edit: Option<ToolEdit>,
) -> Result<Response, HttpError> {
    if app.upstream.first_use(&token.upstream) {
        let trace_id = token.trace_id.as_deref().unwrap_or("-");
        tracing::info!(trace_id, server = %server.slug, client_id = %token.client_id, "first MCP call of a grant");
    }
    let assertion = match &server.upstream_auth {
        UpstreamAuth::Identity(settings) => Some(app.identities.assertion(settings, token)?),
        _ => None,
    };
    let credential = assertion.as_ref().map_or(Credential::Nothing, Credential::Assertion);
    let metrics = app.metrics.server(&server.slug);
    let resp = send_as(app, &metrics, server, parts, body, credential, origin).await?;
    if resp.status() == StatusCode::UNAUTHORIZED {
        let why = if assertion.is_some() {
            "the MCP server refused the proxy's identity assertion; check the audience, issuer and key set URL it expects"
        } else {
            "the MCP server asks for a credential, and this server is configured to send none (upstream_auth = \"none\")"
        };
        tracing::warn!(server = %server.slug, why, "the MCP upstream answered 401");
        return Err(HttpError::upstream_refused_proxy(why));
    }
    let open_streams = || metrics.open_streams.clone();
    answer(app, token, hash, resp, app.mcp_client.idle, open_streams, edit).await
}

/// What the tool rules and the pinned tool definitions make of a request: refused, or
/// `Ok` with what to do to the tool lists its answer carries, if anything.
async fn tool_edit(
    app: &App,
    server: &ServerSettings,
    token: &AccessTokenInfo,
    parts: &Parts,
    body: &Bytes,
) -> Result<Option<ToolEdit>, HttpError> {
    let judged = judge(app, server, token, parts, body)?;
    let block = server.tool_changes == ToolChanges::Block;
    // A GET stream may replay (after `Last-Event-ID`) the answer to an earlier tools/list:
    // where tools are hidden, it is edited like the answer itself.
    let replays = parts.method == Method::GET && (block || server.hide_unauthorized_tools);
    let lists = judged.lists_tools || replays;
    let mut edits: Vec<ToolEdit> = Vec::new();
    if server.tool_changes != ToolChanges::Off && (lists || (block && !judged.calls.is_empty())) {
        let snapshot = match app.tool_pins.snapshot(&server.slug).await {
            Ok(snapshot) => Some(snapshot),
            // Blocking cannot be done without the pins; reporting can wait for the next list.
            Err(e) if block => return Err(e.into()),
            Err(e) => {
                tracing::warn!(server = %server.slug, error = %e, "tool pins unavailable; this answer is not checked");
                None
            }
        };
        if let Some(snapshot) = snapshot {
            if let Some((tool, id)) = judged.calls.iter().find(|(tool, _)| block && snapshot.is_changed(tool)) {
                tracing::info!(server = %server.slug, tool, "call refused: the tool changed since it was pinned");
                return Err(HttpError::JsonRpc {
                    id: id.clone(),
                    code: tool_rules::INVALID_PARAMS,
                    message: format!(
                        "the tool {tool:?} changed since it was approved; it is blocked until an operator accepts the change"
                    ),
                });
            }
            if lists {
                let (pins, server) = (Arc::clone(&app.tool_pins), Arc::new(server.clone()));
                edits.push(Arc::new(move |tools: &mut Vec<serde_json::Value>| pins.check(&server, &snapshot, tools)));
            }
        }
    }
    if server.hide_unauthorized_tools && !server.tool_scopes.is_empty() && lists {
        let rules = server.tool_scopes.clone();
        let granted = Scopes::parse(&token.scope).unwrap_or_default();
        edits.push(Arc::new(move |tools: &mut Vec<serde_json::Value>| {
            tools.retain(|tool| tool["name"].as_str().is_some_and(|name| rules.required(name).is_subset_of(&granted)));
        }));
    }
    Ok(match edits.len() {
        0 => None,
        1 => edits.pop(),
        // Pins first: they see every tool, the ones this token may not see included.
        _ => Some(Arc::new(move |tools: &mut Vec<serde_json::Value>| edits.iter().for_each(|edit| edit(tools)))),
    })
}

/// Judges the body: against the tool rules where there are any (or where changed tools
/// are blocked), refusing what may not go upstream; elsewhere only to notice a tool list
/// for the pins, refusing nothing.
fn judge(
    app: &App,
    server: &ServerSettings,
    token: &AccessTokenInfo,
    parts: &Parts,
    body: &Bytes,
) -> Result<tool_rules::Judged, HttpError> {
    // Every body is judged, whatever the method: a GET or DELETE with a body is as able
    // to reach a tool as a POST.
    if parts.method != Method::POST && body.is_empty() {
        return Ok(Default::default());
    }
    let granted = Scopes::parse(&token.scope).unwrap_or_default();
    if server.tool_scopes.is_empty() && server.tool_changes != ToolChanges::Block {
        let may_list = server.tool_changes == ToolChanges::Report && body.windows(10).any(|w| w == b"tools/list");
        return Ok(if may_list {
            tool_rules::check(&parts.headers, body, &server.tool_scopes, &granted).unwrap_or_default()
        } else {
            Default::default()
        });
    }
    match tool_rules::check(&parts.headers, body, &server.tool_scopes, &granted) {
        Ok(judged) => Ok(judged),
        Err(tool_rules::Refusal::InsufficientScope { needed }) => {
            tracing::info!(server = %server.slug, client_id = %token.client_id, %needed, "tool call refused: insufficient scope");
            Err(HttpError::insufficient_scope(&app.settings, server, &needed))
        }
        Err(tool_rules::Refusal::BadRequest { id, code, message }) => Err(HttpError::JsonRpc { id, code, message }),
    }
}

/// The MCP upstream's answer, edited if `edit` says so, and ended on revocation if it
/// is an event stream.
async fn answer(
    app: &App,
    token: &AccessTokenInfo,
    hash: TokenHash,
    resp: Response<hyper::body::Incoming>,
    idle: std::time::Duration,
    open_streams: impl FnOnce() -> Gauge<i64, AtomicI64>,
    edit: Option<ToolEdit>,
) -> Result<Response, HttpError> {
    let resp = match edit {
        Some(edit) => forward::edited_back(resp, idle, open_streams, edit).await?,
        None => forward::stream_back(resp, idle, open_streams),
    };
    Ok(revocable(app, token, hash, resp))
}

/// An event stream, ended when its grant or access token is revoked (see `revocations`;
/// it may stay open for hours after the token was checked). Other answers end by
/// themselves and register nothing.
fn revocable(app: &App, token: &AccessTokenInfo, hash: TokenHash, resp: Response) -> Response {
    if !forward::is_event_stream(resp.headers()) {
        return resp;
    }
    resp.map(|body| app.revocations.end_on_revocation(&token.upstream.family_id, hash, body))
}

/// [`send_as`] with the user's provider token.
async fn send(
    app: &App,
    metrics: &ServerMetrics,
    server: &ServerSettings,
    parts: &Parts,
    body: Bytes,
    provider_token: &str,
    origin: (&ClientAddress, (&str, &str)),
) -> Result<Response<hyper::body::Incoming>, HttpError> {
    send_as(app, metrics, server, parts, body, Credential::ProviderToken(provider_token), origin).await
}

/// [`forward::send`], counted: the MCP upstream's status and its time to the response head.
async fn send_as(
    app: &App,
    metrics: &ServerMetrics,
    server: &ServerSettings,
    parts: &Parts,
    body: Bytes,
    credential: Credential<'_>,
    origin: (&ClientAddress, (&str, &str)),
) -> Result<Response<hyper::body::Incoming>, HttpError> {
    let started = Instant::now();
    let resp = forward::send(&app.mcp_client, server, parts, body, credential, origin).await?;
    metrics.responses.inc(resp.status().as_u16());
    metrics.first_byte.observe(started.elapsed().as_secs_f64());
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
