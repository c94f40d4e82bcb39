//! Per-tool authorization on the MCP path, for servers with `tool_scopes`.
//!
//! The body decides which tool is called (it is what the MCP upstream executes); the
//! `Mcp-Method` and `Mcp-Name` headers of the 2026-07-28 revision must agree with it, or
//! an intermediary that routes on the headers and a server that executes the body could
//! be told two different things. A request of that revision must carry them; earlier
//! revisions have none and are judged by their body alone.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::tool_scopes::ToolScopes;
use serde_json::Value;

use super::strict_json::{self, Rejected};

/// The revision from which requests carry `Mcp-Method` and `Mcp-Name`.
const HEADERS_REVISION: &str = "2026-07-28";

/// Why a request may not go upstream.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The body is not JSON-RPC, or headers and body disagree, or a required header is
    /// missing: 400 with this JSON-RPC error (`id` of the request when known).
    BadRequest { id: Value, code: i64, message: String },
    /// The token lacks scopes a tool call needs: 403 naming every scope the request needs.
    InsufficientScope { needed: Scopes },
}

/// JSON-RPC: the body could not be parsed.
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: the body is JSON but not a request this endpoint takes.
const INVALID_REQUEST: i64 = -32600;
/// MCP 2026-07-28: headers missing, malformed or disagreeing with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// The revision that removed JSON-RPC batches.
const NO_BATCHES_REVISION: &str = "2025-06-18";

/// JSON-RPC: the params name what does not exist (MCP: an unknown tool).
pub const INVALID_PARAMS: i64 = -32602;

/// What the rules learned of an accepted body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Judged {
    /// It asks for `tools/list` (alone or in a batch), so the answer carries tools.
    pub lists_tools: bool,
    /// The tools it calls, with the id of each call.
    pub calls: Vec<(String, Value)>,
}

/// Checks a body (one message or a batch) against its headers and the token's `granted`
/// scopes. The body judged is the body forwarded: keys another parser could read
/// differently are refused (see `strict_json`).
pub fn check(headers: &HeaderMap, body: &[u8], rules: &ToolScopes, granted: &Scopes) -> Result<Judged, Refusal> {
    let invalid = |message: String| Refusal::BadRequest { id: Value::Null, code: INVALID_REQUEST, message };
    let parsed = strict_json::parse(body).map_err(|e| match e {
        Rejected::NotJson => {
            Refusal::BadRequest { id: Value::Null, code: PARSE_ERROR, message: "the request body is not JSON".into() }
        }
        Rejected::Ambiguous(why) => invalid(format!("ambiguous request: {why}")),
    })?;
    let revision = revision(headers)?;
    let messages: Vec<&Value> = match &parsed {
        Value::Array(batch) => {
            // A revision without batches refuses them: its upstream does not expect one,
            // and its headers describe one message.
            if revision.as_deref().is_some_and(|r| r >= NO_BATCHES_REVISION) {
                return Err(invalid(format!("protocol revision {NO_BATCHES_REVISION} and later take no batches")));
            }
            if batch.is_empty() {
                return Err(invalid("an empty batch".into()));
            }
            batch.iter().collect()
        }
        one => vec![one],
    };
    let mut needed = Vec::new();
    let mut lists_tools = false;
    let mut calls = Vec::new();
    for message in messages {
        check_headers(headers, revision.as_deref(), message)?;
        lists_tools |= message["method"] == "tools/list";
        if message["method"] == "tools/call" {
            let Some(tool) = message["params"]["name"].as_str() else {
                return Err(Refusal::BadRequest {
                    id: message["id"].clone(),
                    code: INVALID_PARAMS,
                    message: "tools/call needs params.name".into(),
                });
            };
            needed.extend(rules.required(tool).iter().map(str::to_owned));
            calls.push((tool.to_owned(), message["id"].clone()));
        }
    }
    let needed = Scopes::from_list(needed);
    if needed.is_subset_of(granted) {
        Ok(Judged { lists_tools, calls })
    } else {
        Err(Refusal::InsufficientScope { needed })
    }
}

/// The request's protocol revision (`MCP-Protocol-Version`); `None` when absent, which a
/// server takes as 2025-03-26. Revisions are dates compared as text, so anything else is
/// refused rather than compared.
fn revision(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    // As sent: the upstream reads it undecoded.
    let Some(value) = single(headers, "mcp-protocol-version")? else { return Ok(None) };
    let is_date = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !is_date {
        return Err(Refusal::BadRequest {
            id: Value::Null,
            code: INVALID_REQUEST,
            message: format!("MCP-Protocol-Version {value:?} is not a protocol revision"),
        });
    }
    Ok(Some(value.to_owned()))
}

/// `Mcp-Method` and `Mcp-Name` against one message: equal when present, present when the
/// request's revision requires them.
fn check_headers(headers: &HeaderMap, revision: Option<&str>, message: &Value) -> Result<(), Refusal> {
    let Some(method) = message["method"].as_str() else { return Ok(()) }; // a response
    let id = message["id"].clone();
    let refuse = |why: String| Refusal::BadRequest { id: id.clone(), code: HEADER_MISMATCH, message: why };
    let required = revision.is_some_and(|r| r >= HEADERS_REVISION);
    let name_in_body = match method {
        "tools/call" | "prompts/get" => message["params"]["name"].as_str(),
        "resources/read" => message["params"]["uri"].as_str(),
        _ => None,
    };
    match header(headers, "mcp-method")? {
        Some(h) if h != method => {
            return Err(refuse(format!("Mcp-Method {h:?} does not match the body's method {method:?}")));
        }
        None if required => return Err(refuse("Mcp-Method is required".into())),
        _ => {}
    }
    if let Some(name) = name_in_body {
        match header(headers, "mcp-name")? {
            Some(h) if h != name => return Err(refuse(format!("Mcp-Name {h:?} does not match the body's {name:?}"))),
            None if required => return Err(refuse("Mcp-Name is required".into())),
            _ => {}
        }
    }
    Ok(())
}

/// A header's value, decoding the `=?base64?…?=` form used for values that are not
/// plain ASCII.
fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, Refusal> {
    let Some(text) = single(headers, name)? else { return Ok(None) };
    let bad =
        |why: &str| Refusal::BadRequest { id: Value::Null, code: HEADER_MISMATCH, message: format!("{name}: {why}") };
    match text.strip_prefix("=?base64?").and_then(|rest| rest.strip_suffix("?=")) {
        Some(encoded) => {
            let bytes = STANDARD.decode(encoded).map_err(|_| bad("not valid base64"))?;
            String::from_utf8(bytes).map(Some).map_err(|_| bad("not UTF-8"))
        }
        None => Ok(Some(text.to_owned())),
    }
}

/// A header's one value as sent, trimmed.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, Refusal> {
    let bad =
        |why: &str| Refusal::BadRequest { id: Value::Null, code: HEADER_MISMATCH, message: format!("{name}: {why}") };
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Ok(None) };
    // Two values: one intermediary may route on the first and another on the last.
    if values.next().is_some() {
        return Err(bad("sent more than once"));
    }
    value.to_str().map(|v| Some(v.trim())).map_err(|_| bad("not a visible ASCII value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    const LISTS: Judged = Judged { lists_tools: true, calls: Vec::new() };

    fn calls(tool: &str) -> Judged {
        Judged { lists_tools: false, calls: vec![(tool.to_owned(), json!(7))] }
    }

    fn rules() -> ToolScopes {
        ToolScopes::new([
            ("*".to_owned(), Scopes::parse("tools:read").unwrap()),
            ("delete_*".to_owned(), Scopes::parse("tools:write").unwrap()),
        ])
    }

    fn call(tool: &str) -> Vec<u8> {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
            .to_string()
            .into_bytes()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn calls_need_their_tools_scopes() {
        let read = Scopes::parse("tools:read").unwrap();
        assert_eq!(check(&HeaderMap::new(), &call("search"), &rules(), &read), Ok(calls("search")));
        let refused = check(&HeaderMap::new(), &call("delete_file"), &rules(), &read);
        assert_eq!(refused, Err(Refusal::InsufficientScope { needed: Scopes::parse("tools:write").unwrap() }));
        let both = Scopes::parse("tools:read tools:write").unwrap();
        assert_eq!(check(&HeaderMap::new(), &call("delete_file"), &rules(), &both), Ok(calls("delete_file")));
        // Anything but a tool call needs nothing more.
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
        assert_eq!(check(&HeaderMap::new(), list.as_bytes(), &rules(), &Scopes::default()), Ok(LISTS));
    }

    #[test]
    fn a_batch_needs_every_scope_its_calls_need() {
        let batch = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search"}},
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "delete_file"}},
            {"jsonrpc": "2.0", "id": 9, "result": {}},
        ])
        .to_string();
        let refused = check(&HeaderMap::new(), batch.as_bytes(), &rules(), &Scopes::default());
        assert_eq!(
            refused,
            Err(Refusal::InsufficientScope { needed: Scopes::parse("tools:read tools:write").unwrap() })
        );
    }

    #[test]
    fn headers_must_agree_with_the_body_and_be_present_from_the_revision_on() {
        let read_write = Scopes::parse("tools:read tools:write").unwrap();
        let ok =
            headers(&[("mcp-method", "tools/call"), ("mcp-name", "search"), ("mcp-protocol-version", "2026-07-28")]);
        assert_eq!(check(&ok, &call("search"), &rules(), &read_write), Ok(calls("search")));
        // A header naming a harmless tool for a body that calls another.
        let lying = headers(&[("mcp-method", "tools/call"), ("mcp-name", "search")]);
        assert!(matches!(
            check(&lying, &call("delete_file"), &rules(), &read_write),
            Err(Refusal::BadRequest { code: HEADER_MISMATCH, id, .. }) if id == 7
        ));
        let wrong_method = headers(&[("mcp-method", "tools/list")]);
        assert!(matches!(
            check(&wrong_method, &call("search"), &rules(), &read_write),
            Err(Refusal::BadRequest { .. })
        ));
        let missing = headers(&[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call")]);
        assert!(matches!(check(&missing, &call("search"), &rules(), &read_write), Err(Refusal::BadRequest { .. })));
        // An earlier revision carries none and is judged by its body.
        let older = headers(&[("mcp-protocol-version", "2025-06-18")]);
        assert_eq!(check(&older, &call("search"), &rules(), &read_write), Ok(calls("search")));
        // Names that are not plain ASCII come base64-encoded.
        let encoded = format!("=?base64?{}?=", STANDARD.encode("löschen"));
        let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", &encoded)]);
        assert_eq!(check(&h, &call("löschen"), &rules(), &read_write), Ok(calls("löschen")));
        // Review finding: only the first of duplicate headers was compared.
        let mut twice = headers(&[("mcp-method", "tools/call")]);
        twice.append("mcp-name", HeaderValue::from_static("search"));
        twice.append("mcp-name", HeaderValue::from_static("delete_file"));
        assert!(matches!(
            check(&twice, &call("search"), &rules(), &read_write),
            Err(Refusal::BadRequest { code: HEADER_MISMATCH, .. })
        ));
        assert!(matches!(
            check(&HeaderMap::new(), b"{not json", &rules(), &read_write),
            Err(Refusal::BadRequest { code: PARSE_ERROR, .. })
        ));
    }

    #[test]
    fn batches_are_judged_element_by_element_and_refused_where_the_revision_removed_them() {
        let batch = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search"}},
        ])
        .to_string();
        let read = Scopes::parse("tools:read").unwrap();
        for old in [None, Some("2025-03-26")] {
            let h = old.map(|v| headers(&[("mcp-protocol-version", v)])).unwrap_or_default();
            let judged = Judged { lists_tools: true, calls: vec![("search".into(), json!(2))] };
            assert_eq!(check(&h, batch.as_bytes(), &rules(), &read), Ok(judged), "{old:?}");
        }
        for newer in ["2025-06-18", "2025-11-25", "2026-07-28"] {
            let h = headers(&[("mcp-protocol-version", newer)]);
            assert!(
                matches!(
                    check(&h, batch.as_bytes(), &rules(), &read),
                    Err(Refusal::BadRequest { code: INVALID_REQUEST, .. })
                ),
                "{newer}"
            );
        }
        // Headers are compared with every element of a batch.
        let h = headers(&[("mcp-method", "tools/list")]);
        assert!(matches!(
            check(&h, batch.as_bytes(), &rules(), &read),
            Err(Refusal::BadRequest { code: HEADER_MISMATCH, .. })
        ));
        assert!(matches!(
            check(&HeaderMap::new(), b"[]", &rules(), &read),
            Err(Refusal::BadRequest { code: INVALID_REQUEST, .. })
        ));
        // A revision that is not a date cannot be compared with one.
        for bogus in ["0", "latest", "=?base64?MjAyNS0wMy0yNg==?=", "2025-3-26"] {
            let h = headers(&[("mcp-protocol-version", bogus)]);
            assert!(matches!(check(&h, &call("search"), &rules(), &read), Err(Refusal::BadRequest { .. })), "{bogus}");
        }
    }

    #[test]
    fn a_body_another_parser_could_read_as_another_call_is_refused() {
        let read = Scopes::parse("tools:read").unwrap();
        let case = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete_file"}}"#;
        let method =
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","Method":"tools/call","params":{"name":"delete_file"}}"#;
        for body in [&case[..], &method[..]] {
            assert!(matches!(
                check(&HeaderMap::new(), body, &rules(), &read),
                Err(Refusal::BadRequest { code: INVALID_REQUEST, .. })
            ));
        }
    }
}
