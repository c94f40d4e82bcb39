//! The MCP server behind the proxies in the benchmark: a fixed answer to every POST and an
//! event stream held open for every GET, after checking the bearer token. It does almost
//! nothing, so that what is measured is the proxy in front of it, not the server (the
//! real MCP server of the tests, rmcp, costs more per call than a proxy hop).

use std::convert::Infallible;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::stream::{self, StreamExt};
use mcp_oauth_devsupport::mcp_server::TokenCheck;

/// The answer to the benchmark's `tools/call add(1, 2)`.
const ANSWER: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"3"}],"isError":false}}"#;

/// Serves on a loopback port, accepting the tokens `tokens` accepts (the development
/// identity provider's: a map lookup); returns the MCP endpoint's URL.
pub async fn spawn(tokens: TokenCheck) -> std::io::Result<String> {
    let check = move |headers: &HeaderMap| {
        let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        bearer.is_some_and(|token| tokens(token).is_some())
    };
    let (call_check, stream_check) = (check.clone(), check);
    let router = Router::new().route(
        "/mcp",
        post(move |headers: HeaderMap| async move {
            if !call_check(&headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            ([(CONTENT_TYPE, "application/json")], ANSWER).into_response()
        })
        .get(move |headers: HeaderMap| async move {
            if !stream_check(&headers) {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            held_stream()
        }),
    );
    let (base, _) = mcp_oauth_devsupport::serve_on_loopback(router).await?;
    Ok(format!("{base}/mcp"))
}

/// An event stream that says it is open and then stays open, as a server's stream of
/// notifications does while nothing happens.
fn held_stream() -> Response {
    let opened = stream::once(async { Ok::<_, Infallible>(Bytes::from_static(b": open\n\n")) });
    let body = Body::from_stream(opened.chain(stream::pending()));
    ([(CONTENT_TYPE, "text/event-stream")], body).into_response()
}
