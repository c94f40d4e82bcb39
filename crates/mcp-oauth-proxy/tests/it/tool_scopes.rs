//! Per-tool scopes and step-up authorization (SEP-2350): a token without a tool's scopes
//! gets 403 naming them, nothing reaches the MCP upstream, and after the client asks again
//! for the union the call goes through. Headers that disagree with the body are refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Browser, Harness, Start};
use crate::mcp::{call, connect, text};

/// The demo server with `add` needing `tools:write` and `whoami` `tools:read`.
async fn with_tool_scopes() -> Harness {
    Harness::start_with(Start {
        env: vec![
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__ADD".into(), "tools:write".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__WHOAMI".into(), "tools:read".into()),
        ],
        ..Default::default()
    })
    .await
}

/// A token for `scope`, through a fresh browser (so the consent page is shown).
pub(crate) async fn token_for(h: &Harness, client_id: &str, scope: &str) -> Value {
    token_asking(h, client_id, &[("scope", scope)]).await
}

/// A token from an authorization request with `extra` parameters, through a fresh browser.
async fn token_asking(h: &Harness, client_id: &str, extra: &[(&str, &str)]) -> Value {
    let redirect = Browser::new().login(&h.authorize_url(client_id, extra), true).await;
    let code = url::Url::parse(&redirect).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    h.exchange(client_id, &code).await
}

async fn raw_call(h: &Harness, token: &str, tool: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": tool, "arguments": {"a": 1, "b": 2}}});
    let mut req = h
        .http
        .post(h.url("/mcp/demo"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(body.to_string()).send().await.unwrap()
}

#[tokio::test]
async fn a_tool_call_without_its_scope_steps_up_and_then_goes_through() {
    let h = with_tool_scopes().await;
    let prm: Value = h.get_json("/.well-known/oauth-protected-resource/mcp/demo").await;
    assert_eq!(prm["scopes_supported"], json!(["tools:read", "tools:write"]), "the tools' scopes are the server's");

    let client_id = h.register_public().await;
    let read = token_for(&h, &client_id, "tools:read").await;
    assert_eq!(read["scope"], "tools:read");
    let access = read["access_token"].as_str().unwrap();
    let seen_before = h.observed.authorization_headers().len();
    let r = raw_call(&h, access, "add", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    assert!(challenge.contains("scope=\"tools:write\""), "every scope the call needs: {challenge}");
    assert!(
        challenge
            .contains(&format!("resource_metadata=\"{}\"", h.url("/.well-known/oauth-protected-resource/mcp/demo")))
    );
    assert_eq!(h.observed.authorization_headers().len(), seen_before, "nothing reached the MCP upstream");

    // The client asks again for the union of what it has and what was named.
    let both = token_for(&h, &client_id, "tools:read tools:write").await;
    assert_eq!(both["scope"], "tools:read tools:write");
    let client = connect(&h, "demo", both["access_token"].as_str().unwrap()).await;
    assert_eq!(text(&call(&client, "add", json!({"a": 2, "b": 3})).await), "5");
    assert_eq!(text(&call(&client, "whoami", json!({})).await), "demo-user");
    // A refresh may narrow, never widen: the read token cannot grow into write.
    let (status, err) = h.refresh(&client_id, read["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{err}");
    let widened = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", err["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
            ("scope", "tools:read tools:write"),
        ])
        .await;
    assert_eq!((widened.0, widened.1["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
}

#[tokio::test]
async fn headers_that_disagree_with_the_body_are_refused_before_the_upstream() {
    let h = with_tool_scopes().await;
    let client_id = h.register_public().await;
    let tokens = token_for(&h, &client_id, "tools:read tools:write").await;
    let access = tokens["access_token"].as_str().unwrap();
    let seen_before = h.observed.authorization_headers().len();
    let r = raw_call(&h, access, "add", &[("mcp-method", "tools/call"), ("mcp-name", "whoami")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["id"].as_i64(), body["error"]["code"].as_i64()), (Some(5), Some(-32020)), "{body}");
    let r = raw_call(&h, access, "add", &[("mcp-protocol-version", "2026-07-28")]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "the 2026-07-28 revision requires the headers");
    assert_eq!(h.observed.authorization_headers().len(), seen_before, "nothing reached the MCP upstream");
}

/// Asking for more than this browser approved shows the consent page again, with what is
/// added, what each scope allows and which tools it opens.
#[tokio::test]
async fn a_step_up_is_consented_to_with_what_it_adds() {
    let h = Harness::start_with(Start {
        env: vec![
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__ADD".into(), "tools:write".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__WHOAMI".into(), "tools:read".into()),
            (
                "MCP_OAUTH_PROXY_SERVERS__0__SCOPE_DESCRIPTIONS__TOOLS:WRITE".into(),
                "Change things in your account".into(),
            ),
        ],
        ..Default::default()
    })
    .await;
    let client_id = h.register_public().await;
    let mut b = Browser::new();
    b.login(&h.authorize_url(&client_id, &[("scope", "tools:read")]), true).await;
    // The same scopes again: remembered, straight to the provider.
    let again = b.get(&h.authorize_url(&client_id, &[("scope", "tools:read")])).await;
    assert_eq!(again.status, StatusCode::FOUND);
    // More: the consent page, marking what is new.
    let more = b.get(&h.authorize_url(&client_id, &[("scope", "tools:read tools:write")])).await;
    assert_eq!(more.status, StatusCode::OK, "a step-up is consented to");
    let body = &more.body;
    let write_line = body.split("<li>").find(|l| l.contains("tools:write")).expect("tools:write listed");
    assert!(
        write_line.contains("new")
            && write_line.contains("Change things in your account")
            && write_line.contains("add"),
        "{write_line}"
    );
    let read_line = body.split("<li>").find(|l| l.contains("tools:read")).expect("tools:read listed");
    assert!(!read_line.contains("new"), "{read_line}");
    // Approved, the union is remembered.
    let approved = b.submit(&more, "", &[("decision", "approve")]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    let after = b.get(&h.authorize_url(&client_id, &[("scope", "tools:write")])).await;
    assert_eq!(after.status, StatusCode::FOUND);
}

/// With `hide_unauthorized_tools`, a token sees only the tools it may call.
#[tokio::test]
async fn tool_lists_match_the_token() {
    let h = Harness::start_with(Start {
        env: vec![
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__ADD".into(), "tools:write".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__WHOAMI".into(), "tools:read".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__HIDE_UNAUTHORIZED_TOOLS".into(), "true".into()),
        ],
        ..Default::default()
    })
    .await;
    let client_id = h.register_public().await;
    let read = token_for(&h, &client_id, "tools:read").await;
    let seen = tool_names(&h, read["access_token"].as_str().unwrap()).await;
    assert!(seen.contains(&"whoami".to_owned()) && !seen.contains(&"add".to_owned()), "{seen:?}");
    let both = token_for(&h, &client_id, "tools:read tools:write").await;
    let seen = tool_names(&h, both["access_token"].as_str().unwrap()).await;
    assert!(seen.contains(&"whoami".to_owned()) && seen.contains(&"add".to_owned()), "{seen:?}");
}

async fn tool_names(h: &Harness, token: &str) -> Vec<String> {
    let client = connect(h, "demo", token).await;
    client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.to_string()).collect()
}

/// The 401 asks for the least a client needs to start: the server's listed scopes when its
/// tools have scopes of their own (those come by step-up); every scope when none are listed.
#[tokio::test]
async fn a_401_asks_for_the_listed_scopes_and_the_tools_scopes_come_by_step_up() {
    async fn challenge(h: &Harness) -> String {
        let r =
            h.http.post(h.url("/mcp/demo")).header("content-type", "application/json").body("{}").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        r.headers()["www-authenticate"].to_str().unwrap().to_owned()
    }
    let unlisted = with_tool_scopes().await;
    assert!(challenge(&unlisted).await.contains("scope=\"tools:read tools:write\""));

    let listed = Harness::start_with(Start {
        env: vec![
            ("MCP_OAUTH_PROXY_SERVERS__0__SCOPES".into(), "tools:read".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__ADD".into(), "tools:write".into()),
        ],
        ..Default::default()
    })
    .await;
    let c = challenge(&listed).await;
    assert!(c.contains("scope=\"tools:read\""), "{c}");
    let prm: Value = listed.get_json("/.well-known/oauth-protected-resource/mcp/demo").await;
    assert_eq!(prm["scopes_supported"], json!(["tools:read", "tools:write"]), "the metadata lists every scope");
}

/// Review finding: an authorization request without `scope` got every scope, tools' own
/// included, so least privilege depended on the client asking for less. It gets the
/// server's default: `default_scopes`, else the listed scopes.
#[tokio::test]
async fn a_request_without_scope_gets_the_default_scopes() {
    async fn unasked(h: &Harness) -> Value {
        let client_id = h.register_public().await;
        token_asking(h, &client_id, &[]).await["scope"].clone()
    }
    let listed = Harness::start_with(Start {
        env: vec![
            ("MCP_OAUTH_PROXY_SERVERS__0__SCOPES".into(), "tools:read".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__ADD".into(), "tools:write".into()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(unasked(&listed).await, "tools:read");
    let configured = Harness::start_with(Start {
        env: vec![
            ("MCP_OAUTH_PROXY_SERVERS__0__SCOPES".into(), "files:read,files:list".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__DEFAULT_SCOPES".into(), "files:list".into()),
            ("MCP_OAUTH_PROXY_SERVERS__0__TOOL_SCOPES__ADD".into(), "tools:write".into()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(unasked(&configured).await, "files:list");
    // Asking still works, within the offer.
    let client_id = configured.register_public().await;
    assert_eq!(token_for(&configured, &client_id, "files:read tools:write").await["scope"], "files:read tools:write");
}

/// A refresh that narrowed the scope, replayed within the grace window (an honest retry,
/// or someone holding the previous refresh token), answers what the first refresh did:
/// the narrowed scope, and an access token that cannot call what the narrowing removed.
#[tokio::test]
async fn a_replayed_refresh_keeps_the_narrowing_it_replays() {
    let h = with_tool_scopes().await;
    let client_id = h.register_public().await;
    let both = token_for(&h, &client_id, "tools:read tools:write").await;
    let previous = both["refresh_token"].as_str().unwrap();
    let (status, narrowed, _) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", previous),
            ("client_id", &client_id),
            ("scope", "tools:read"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{narrowed}");
    assert_eq!(narrowed["scope"], "tools:read");

    h.clock.advance(5);
    let (status, replayed) = h.refresh(&client_id, previous).await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["refresh_token"], narrowed["refresh_token"], "the one successor");
    assert_eq!(replayed["scope"], "tools:read");
    let access = replayed["access_token"].as_str().unwrap();
    assert_eq!(raw_call(&h, access, "add", &[]).await.status(), StatusCode::FORBIDDEN, "tools:write was narrowed away");
    let client = connect(&h, "demo", access).await;
    assert_eq!(text(&call(&client, "whoami", json!({})).await), "demo-user", "tools:read still works");
}

/// Review finding: scopes were enforced for POST only, so a PUT or PATCH carrying a
/// `tools/call` with a read-only token reached the upstream. Other methods are refused
/// before the upstream, and a body on GET or DELETE is judged like a POST's.
#[tokio::test]
async fn tool_rules_have_no_way_around_through_other_methods() {
    let h = with_tool_scopes().await;
    let client_id = h.register_public().await;
    let read = token_for(&h, &client_id, "tools:read").await;
    let access = read["access_token"].as_str().unwrap();
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}});
    let seen_before = h.observed.authorization_headers().len();
    let refused = [("PUT", StatusCode::METHOD_NOT_ALLOWED), ("PATCH", StatusCode::METHOD_NOT_ALLOWED)];
    let judged = [("GET", StatusCode::FORBIDDEN), ("DELETE", StatusCode::FORBIDDEN)];
    for (method, expected) in refused.into_iter().chain(judged) {
        let r = h
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), h.url("/mcp/demo"))
            .bearer_auth(access)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected, "{method}");
        if expected == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(r.headers()["allow"], "GET, POST, DELETE");
        }
    }
    assert_eq!(h.observed.authorization_headers().len(), seen_before, "nothing reached the MCP upstream");
}
