//! The consent page: the defence against the confused deputy (MCP authorization spec,
//! "Security Considerations"). The upstream provider sees one client, the proxy, for
//! every MCP client; without this page, any dynamically registered client could ride
//! an existing upstream session to a token. So the user names, in this browser, each
//! client they let in.
//!
//! The form's CSRF token is a signature, not a stored nonce: showing the page again
//! (a reload, a prefetch, a second tab) never invalidates a form already on screen.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::html::escape;

use super::authorize::AuthorizationRequest;
use crate::app::App;
use crate::cookies::{self, CONSENT_MAX_AGE};
use crate::responses::html_page;
use crate::settings::ServerSettings;

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

fn csrf_parts<'a>(server: &'a ServerSettings, req: &'a AuthorizationRequest, browser_id: &'a str) -> [&'a str; 4] {
    [&server.slug, &req.client.client_id, &req.redirect_uri, browser_id]
}

pub fn csrf_is_valid(
    app: &App,
    server: &ServerSettings,
    req: &AuthorizationRequest,
    browser_id: &str,
    token: Option<&str>,
) -> bool {
    token.is_some_and(|t| app.signer.verify_until("csrf", &csrf_parts(server, req, browser_id), t, app.now()))
}

fn consent_value(app: &App, server: &ServerSettings, client: &Client, browser_id: &str) -> String {
    app.signer.sign("consent", &[&server.slug, &client.client_id, browser_id])
}

/// Whether this browser already approved this client at this server.
pub fn is_remembered(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    browser_id: &str,
    headers: &HeaderMap,
) -> bool {
    cookies::get(headers, &app.cookies.consent(&server.slug, &client.client_id))
        .is_some_and(|v| app.signer.verify("consent", &[&server.slug, &client.client_id, browser_id], v))
}

pub fn remember(app: &App, server: &ServerSettings, client: &Client, browser_id: &str) -> HeaderValue {
    let name = app.cookies.consent(&server.slug, &client.client_id);
    app.cookies.set(&name, &consent_value(app, server, client, browser_id), CONSENT_MAX_AGE)
}

fn redirect_host(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(u) => match u.host_str() {
            Some(h) => match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            },
            None => format!("{}:", u.scheme()),
        },
        Err(_) => uri.to_owned(),
    }
}

pub fn page(
    app: &App,
    server: &ServerSettings,
    req: &AuthorizationRequest,
    params: &Params,
    browser_id: &str,
    notice: Option<&str>,
) -> Response {
    let csrf = app.signer.sign_until("csrf", &csrf_parts(server, req, browser_id), app.now() + CSRF_TTL_SECS);
    let hidden: String = CARRIED
        .iter()
        .filter_map(|k| params.get(k).map(|v| (k, v)))
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    let client_name = req.client.metadata.client_name.as_deref().unwrap_or("An unnamed application");
    let scopes = if req.scope.is_empty() { "(none)".to_owned() } else { req.scope.to_string() };
    let provider = app.provider(server).name().to_owned();
    let notice = notice.map(|n| format!("<p class=\"note\">{}</p>", escape(n))).unwrap_or_default();
    let action = format!("{}/authorize", app.settings.issuer(&server.slug));
    let body = format!(
        "<h1>Allow access to {server_slug}?</h1>{notice}\
         <p><b>{client}</b> wants to use the MCP server <b>{server_slug}</b> on your behalf.</p>\
         <dl><dt>Application</dt><dd>{client} <small>(the name it gives itself; client id <code>{client_id}</code>)</small></dd>\
         <dt>It will receive the answer at</dt><dd><code>{host}</code></dd>\
         <dt>Access requested</dt><dd><code>{scopes}</code></dd>\
         <dt>You will sign in with</dt><dd>{provider}</dd></dl>\
         <p>Only allow applications you started yourself and trust.</p>\
         <form method=\"post\" action=\"{action}\">{hidden}\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        server_slug = escape(&server.slug),
        client = escape(client_name),
        client_id = escape(&req.client.client_id),
        host = escape(&redirect_host(&req.redirect_uri)),
        scopes = escape(&scopes),
        provider = escape(&provider),
        action = escape(&action),
        csrf = escape(&csrf),
    );
    html_page(StatusCode::OK, "Allow access?", &body)
}
