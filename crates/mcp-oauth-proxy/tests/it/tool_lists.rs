//! `hide_unauthorized_tools` fails closed, and the body judged is the body forwarded:
//! review findings, each against a bare upstream that answers `tools/list` the way a real
//! server may (compressed when asked, CR line endings, a media type in capitals, a batch).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Harness, Start};
use crate::tool_scopes::token_for;

const TOOLS: &str = r#"[{"name":"whoami"},{"name":"add"}]"#;

/// An upstream that answers every request with the tool list, in the form the request's
/// `x-answer` header asks for; it keeps the `Accept-Encoding` and bodies it received.
async fn spawn_upstream(seen: Arc<Mutex<Vec<(String, String)>>>) -> String {
    let handler = move |headers: HeaderMap, body: String| {
        let seen = seen.clone();
        async move {
            let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            seen.lock().unwrap().push((accept.clone(), body));
            let one = |id: u32| format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":{TOOLS}}}}}"#);
            let answer = headers.get("x-answer").and_then(|v| v.to_str().ok()).unwrap_or("json").to_owned();
            let (content_type, encoding, body) = match answer.as_str() {
                // Compressed whenever the client accepts it, as most HTTP servers do.
                "gzip-if-accepted" if accept.contains("gzip") => {
                    let mut gz = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
                    gz.extend(one(1).bytes().map(|b| b ^ 0x5a));
                    ("application/json", Some("gzip"), gz)
                }
                "gzip-always" => ("application/json", Some("gzip"), vec![0x1f, 0x8b, 0x08, 0]),
                "sse-cr" => ("text/event-stream", None, format!("event: message\rdata: {}\r\r", one(1)).into_bytes()),
                "sse-caps" => ("Text/Event-Stream; charset=utf-8", None, format!("data: {}\n\n", one(1)).into_bytes()),
                "batch" => ("application/json", None, format!("[{},{}]", one(1), one(2)).into_bytes()),
                "not-json" => ("application/json", None, b"{\"result\":{\"tools\":[{\"name\":\"add\"},]}}".to_vec()),
                _ => ("application/json", None, one(1).into_bytes()),
            };
            let mut resp: Response = Body::from(body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            if let Some(e) = encoding {
                resp.headers_mut().insert(header::CONTENT_ENCODING, e.parse().unwrap());
            }
            resp
        }
    };
    let router = axum::Router::new().route("/mcp", axum::routing::post(handler));
    let (base, _) = mcp_oauth_devsupport::serve_on_loopback(router).await.unwrap();
    format!("{base}/mcp")
}

async fn proxy(upstream: String) -> Harness {
    Harness::start_with(Start {
        upstream_url: Some(upstream),
        env: vec![
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__ADD".into(), "tools:write".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__WHOAMI".into(), "tools:read".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__HIDE_UNAUTHORIZED_TOOLS".into(), "true".into()),
        ],
        ..Default::default()
    })
    .await
}

async fn read_only_token(h: &Harness) -> String {
    let client_id = h.register_public().await;
    token_for(h, &client_id, "tools:read").await["access_token"].as_str().unwrap().to_owned()
}

async fn post(h: &Harness, token: &str, body: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = h
        .http
        .post(h.url("/mcp/demo"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.body(body.to_owned()).send().await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.bytes().await.unwrap().to_vec())
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

#[tokio::test]
async fn no_answer_shows_a_tool_the_token_may_not_call() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = proxy(spawn_upstream(seen.clone()).await).await;
    let token = read_only_token(&h).await;
    let v2025 = ("mcp-protocol-version", "2025-03-26");
    for answer in ["json", "gzip-if-accepted", "sse-cr", "sse-caps", "batch"] {
        let body =
            if answer == "batch" { format!("[{LIST},{}]", LIST.replace("\"id\":1", "\"id\":2")) } else { LIST.into() };
        let headers = [("x-answer", answer), ("accept-encoding", "gzip, br"), v2025];
        let (status, _, out) = post(&h, &token, &body, &headers).await;
        let text = String::from_utf8_lossy(&out);
        assert_eq!(status, StatusCode::OK, "{answer}: {text}");
        assert!(text.contains("whoami"), "{answer}: {text}");
        assert!(!text.contains("\"add\""), "{answer}: the hidden tool reached the client: {text}");
    }
    // The proxy asked for an answer it can read, whatever the client accepts.
    assert!(seen.lock().unwrap().iter().all(|(accept, _)| accept == "identity"), "{:?}", seen.lock().unwrap());
    // An upstream that compresses anyway, or answers what is not JSON, is refused.
    for answer in ["gzip-always", "not-json"] {
        let (status, _, out) = post(&h, &token, LIST, &[("x-answer", answer)]).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}: {}", String::from_utf8_lossy(&out));
        let error: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(error["error"], "upstream_unreadable");
    }
}

#[tokio::test]
async fn a_body_that_could_mean_another_call_upstream_is_refused() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let h = proxy(spawn_upstream(seen.clone()).await).await;
    let token = read_only_token(&h).await;
    let bodies = [
        // Go's encoding/json reads keys without case, the last one winning.
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "whoami", "Name": "add"}})
            .to_string(),
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"add"}}"#.into(),
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"add"}}"#.into(),
    ];
    for body in &bodies {
        let (status, _, out) = post(&h, &token, body, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(error["error"]["code"], -32600, "{error}");
    }
    // Batches: none from revision 2025-06-18 on; before it, each element is judged.
    let call_add = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add"}}"#;
    let batch = format!("[{LIST},{call_add}]");
    let (status, _, _) = post(&h, &token, &batch, &[("mcp-protocol-version", "2025-06-18")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = post(&h, &token, &batch, &[("mcp-protocol-version", "2025-03-26")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the batch's call needs tools:write");
    assert!(seen.lock().unwrap().is_empty(), "nothing reached the upstream: {:?}", seen.lock().unwrap());
}
