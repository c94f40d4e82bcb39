//! The consent page: the defence against the confused deputy (MCP authorization spec,
//! "Security Considerations"). The provider sees one client, the proxy, for every MCP
//! client; without this page, any dynamically registered client could ride an existing
//! provider session to a token. So the user names, in this browser, each client they let
//! in.
//!
//! The form's CSRF token is a signature, not a stored nonce: showing the page again (a
//! reload, a prefetch, a second tab) never invalidates a form already on screen.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_oauth_core::client::{Client, displayable};
use mcp_oauth_core::form::Params;
use mcp_oauth_core::scope::Scopes;

use super::request::{AuthorizationRequest, ClientRedirect};
use crate::cookies;
use crate::pages;
use crate::settings::{ServerSettings, ToolChanges};
use crate::state::App;

const CSRF_TTL_SECS: i64 = 30 * 60;

/// The authorization parameters the form carries back, unchanged.
const CARRIED: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
    "resource",
];

/// What a CSRF token is bound to: this server, client, redirect URI and browser.
fn csrf_parts<'a>(
    server: &'a ServerSettings,
    client: &'a Client,
    reply: &'a ClientRedirect,
    browser_id: &'a str,
) -> [&'a str; 4] {
    [&server.slug, &client.client_id, &reply.redirect_uri, browser_id]
}

/// Whether a consent form was really answered by the person in this browser.
pub fn csrf_is_valid(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    reply: &ClientRedirect,
    browser_id: &str,
    token: Option<&str>,
) -> bool {
    let parts = csrf_parts(server, client, reply, browser_id);
    token.is_some_and(|t| app.signer.verify_until("csrf", &parts, t, app.now()))
}

fn approval_parts<'a>(server: &'a ServerSettings, client: &'a Client, browser_id: &'a str) -> [&'a str; 3] {
    [&server.slug, &client.client_id, browser_id]
}

/// The scopes this browser approved for this client at this server, unless it never
/// did or the approval expired. The cookie carries them, signed with the browser's id and
/// the expiry: `<scopes, base64url>.<expiry>.<signature>`.
pub fn approved_scopes(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    browser_id: &str,
    headers: &HeaderMap,
) -> Option<Scopes> {
    let value = cookies::get(headers, &app.cookies.consent(&server.slug, &client.client_id))?;
    let (encoded, signed) = value.split_once('.')?;
    let scopes = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    let [a, b, c] = approval_parts(server, client, browser_id);
    let verified = app.signer.verify_until("consent", &[a, b, c, &scopes], signed, app.now());
    verified.then(|| Scopes::parse(&scopes).ok()).flatten()
}

/// Whether this browser approved this client at this server (for any scopes): enough to
/// trust its redirect URI with an error.
pub fn is_remembered(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    browser_id: &str,
    headers: &HeaderMap,
) -> bool {
    approved_scopes(app, server, client, browser_id, headers).is_some()
}

/// Whether this browser's approval covers `scope`: a client that asks for more (a step-up)
/// is shown the consent page again, with what it adds.
pub fn covers(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    scope: &Scopes,
    browser_id: &str,
    headers: &HeaderMap,
) -> bool {
    approved_scopes(app, server, client, browser_id, headers).is_some_and(|approved| scope.is_subset_of(&approved))
}

/// The cookie that remembers this browser's approval of `scope` (and of what it approved
/// before), for `tokens.consent_ttl_secs`. The expiry is inside the signature: a browser
/// that keeps the cookie longer gains nothing.
pub fn remember(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    scope: &Scopes,
    browser_id: &str,
    headers: &HeaderMap,
) -> HeaderValue {
    let before = approved_scopes(app, server, client, browser_id, headers).unwrap_or_default();
    let approved = Scopes::from_list(before.iter().chain(scope.iter())).to_string();
    let name = app.cookies.consent(&server.slug, &client.client_id);
    let ttl = app.settings.tokens.consent_ttl_secs;
    let [a, b, c] = approval_parts(server, client, browser_id);
    let signed = app.signer.sign_until("consent", &[a, b, c, &approved], app.now() + ttl);
    app.cookies.set(&name, &format!("{}.{signed}", URL_SAFE_NO_PAD.encode(&approved)), ttl)
}

/// Where the answer goes, as a person can judge it: the scheme and the host (and port).
/// The scheme matters: `claudeai://claude.ai/…` opens an app, not the claude.ai website.
fn destination(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{}://{h}:{p}", u.scheme()),
            (Some(h), None) => format!("{}://{h}", u.scheme()),
            (None, _) => format!("{}:", u.scheme()),
        },
        Err(_) => uri.to_owned(),
    }
}

/// The page; `notice` explains why it is shown again (with `status` 403).
pub async fn page(
    app: &App,
    server: &ServerSettings,
    req: &AuthorizationRequest,
    params: &Params,
    browser_id: &str,
    headers: &HeaderMap,
    notice: Option<&str>,
) -> Response {
    let parts = csrf_parts(server, &req.client, &req.reply, browser_id);
    let csrf = app.signer.sign_until("csrf", &parts, app.now() + CSRF_TTL_SECS);
    // Names from stored registrations predate the cleaning at registration: clean again.
    let client_name = req.client.metadata.client_name.as_deref().map(displayable).unwrap_or_default();
    let client_name = if client_name.is_empty() { "An unnamed application".to_owned() } else { client_name };
    let before = approved_scopes(app, server, &req.client, browser_id, headers);
    let scopes: Vec<pages::ScopeLine> = req
        .scope
        .iter()
        .map(|name| pages::ScopeLine {
            name,
            description: server.scope_descriptions.get(name).map(String::as_str),
            tools: server.tool_scopes.patterns_needing(name).collect(),
            added: before.as_ref().is_some_and(|b| !b.iter().any(|s| s == name)),
        })
        .collect();
    let action = format!("{}/authorize", app.settings.issuer(&server.slug));
    let verified_host = app.clients.verified_host(&req.client);
    let status = if notice.is_some() { StatusCode::FORBIDDEN } else { StatusCode::OK };
    let pins = match server.tool_changes {
        ToolChanges::Off => None,
        // The page is still worth showing without them.
        _ => app
            .tool_pins
            .snapshot(&server.slug)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "tool pins unavailable"))
            .ok(),
    };
    let mut changed_tools: Vec<&str> = pins.iter().flat_map(|p| p.changed().map(|(tool, _)| tool)).collect();
    changed_tools.sort_unstable();
    pages::consent(
        status,
        &pages::Consent {
            server: &server.slug,
            client_name: &client_name,
            client_id: &req.client.client_id,
            destination: &destination(&req.reply.redirect_uri),
            scopes,
            provider: if server.has_provider() {
                app.providers.for_server(server).name()
            } else {
                "the MCP server's own sign-in"
            },
            notice,
            action: &action,
            carried: CARRIED.iter().filter_map(|k| params.get(k).map(|v| (*k, v))).collect(),
            trace_id: req.trace.as_str(),
            verified_host: verified_host.as_deref(),
            changed_tools,
            changed_tools_blocked: server.tool_changes == ToolChanges::Block,
            csrf_token: &csrf,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_destination_shows_scheme_and_host() {
        use super::destination;
        assert_eq!(destination("claudeai://claude.ai/oauth/callback"), "claudeai://claude.ai");
        assert_eq!(destination("https://app.example/cb?x=1"), "https://app.example");
        assert_eq!(destination("http://127.0.0.1:7777/callback"), "http://127.0.0.1:7777");
        assert_eq!(destination("com.example.app:/callback"), "com.example.app:");
    }
}
