//! The authorization endpoint: `GET` checks the request and shows the consent page (or
//! goes straight to the upstream login for trusted or already-approved clients); `POST`
//! receives the consent form.
//!
//! Order matters (RFC 6749 §4.1.2.1, RFC 9700 §4.1): until the client and its redirect
//! URI are verified, every error is a page shown to the user, never a redirect; after
//! that, errors go back to the client's redirect URI with `state` and `iss`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::scope::{Scopes, grant_scope};
use mcp_oauth_core::token::{TokenHash, TokenKind, mint};
use mcp_oauth_core::{OAuthError, pkce, redirect_uri};
use mcp_oauth_store::PendingAuthorization;

use super::consent;
use crate::app::{App, AppState};
use crate::cookies::{self, BROWSER_MAX_AGE};
use crate::responses::{error_page, redirect};
use crate::settings::ServerSettings;

/// How long a user may take to log in at the upstream provider.
const LOGIN_TTL_SECS: i64 = 600;

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: Client,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scope: Scopes,
    pub code_challenge: String,
    pub resource: String,
}

pub enum Refusal {
    /// The client or redirect URI cannot be trusted: tell the user, redirect nowhere.
    Page(StatusCode, String),
    /// Tell the client, at its verified redirect URI.
    Redirect { redirect_uri: String, state: Option<String>, error: OAuthError },
}

impl From<OAuthError> for Refusal {
    fn from(e: OAuthError) -> Self {
        let status = if e.http_status() >= 500 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_REQUEST };
        Refusal::Page(status, e.to_string())
    }
}

/// The redirect that answers an authorization request, success or error, always with
/// `iss` (RFC 9207) so clients can tell authorization servers apart.
pub fn client_redirect(issuer: &str, redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return redirect_uri.to_owned();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(state) = state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", issuer);
    }
    url.into()
}

pub fn error_redirect(app: &App, server: &ServerSettings, refusal: Refusal, status: StatusCode) -> Response {
    match refusal {
        Refusal::Page(status, message) => error_page(status, &message),
        Refusal::Redirect { redirect_uri, state, error } => {
            let mut params = vec![("error", error.code.as_str())];
            if !error.description.is_empty() {
                params.push(("error_description", error.description.as_str()));
            }
            let to = client_redirect(&app.settings.issuer(&server.slug), &redirect_uri, &params, state.as_deref());
            redirect(status, &to)
        }
    }
}

/// Checks an authorization request's parameters.
pub async fn validate(app: &App, server: &ServerSettings, params: &Params) -> Result<AuthorizationRequest, Refusal> {
    let client_id = params.require("client_id")?;
    let client = app.find_client(&server.slug, client_id).await?.ok_or_else(|| {
        Refusal::Page(StatusCode::BAD_REQUEST, "Unknown client. The application must register again.".into())
    })?;
    let redirect_uri = redirect_uri::resolve(&client.metadata.redirect_uris, params.get("redirect_uri"))
        .ok_or_else(|| {
            Refusal::Page(
                StatusCode::BAD_REQUEST,
                "The redirect URI is missing or is not registered for this client.".into(),
            )
        })?
        .to_owned();

    let state = params.get("state").map(str::to_owned);
    let refuse =
        |error: OAuthError| Refusal::Redirect { redirect_uri: redirect_uri.clone(), state: state.clone(), error };

    match params.get("response_type") {
        Some("code") => {}
        Some(_) => return Err(refuse(OAuthError::unsupported_response_type("only response_type=code is supported"))),
        None => return Err(refuse(OAuthError::invalid_request("response_type is required"))),
    }
    let code_challenge =
        pkce::validate_challenge(params.get("code_challenge"), params.get("code_challenge_method")).map_err(&refuse)?;
    let resource = app.settings.resource(&server.slug);
    if let Some(requested) = params.get("resource") {
        // RFC 8707: the resource must be ours. A trailing slash is the same resource.
        if requested.trim_end_matches('/') != resource {
            return Err(refuse(OAuthError::invalid_target(format!("this server issues tokens only for {resource}"))));
        }
    }
    let scope = grant_scope(params.get("scope"), &server.scopes).map_err(&refuse)?;
    Ok(AuthorizationRequest { client, redirect_uri, state, scope, code_challenge, resource })
}

/// Everything checked and consented to: remember the request and send the browser to
/// the upstream provider. Returns the provider's URL.
pub async fn start_upstream_login(
    app: &App,
    server: &ServerSettings,
    req: &AuthorizationRequest,
    browser_id: &str,
) -> Result<String, OAuthError> {
    let provider = app.provider(server);
    let state = mint(TokenKind::UpstreamState);
    let verifier = pkce::new_verifier();
    let nonce = provider.wants_nonce().then(|| mcp_oauth_core::token::random_b64(16));
    let pending = PendingAuthorization {
        state_hash: state.hash,
        browser_hash: TokenHash::of(browser_id),
        server: server.slug.clone(),
        client_id: req.client.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        scope: req.scope.to_string(),
        resource: req.resource.clone(),
        code_challenge: req.code_challenge.clone(),
        client_state: req.state.clone(),
        upstream_verifier: verifier.clone(),
        nonce: nonce.clone(),
        expires_at: app.now() + LOGIN_TTL_SECS,
    };
    app.store.insert_pending(&pending).await.map_err(crate::app::store_error)?;
    provider
        .authorization_url(
            &app.settings.callback_url(),
            &state.secret,
            &pkce::s256_challenge(&verifier),
            nonce.as_deref(),
            Some(&req.resource),
        )
        .await
        .map_err(|e| {
            tracing::warn!(provider = provider.name(), error = %e, "cannot build the upstream authorization URL");
            OAuthError::temporarily_unavailable("the upstream identity provider is unavailable", 5)
        })
}

/// Sends the browser upstream, or reports why not at the client's redirect URI.
async fn go_upstream(
    app: &App,
    server: &ServerSettings,
    req: &AuthorizationRequest,
    browser_id: &str,
    status: StatusCode,
) -> Response {
    match start_upstream_login(app, server, req, browser_id).await {
        Ok(url) => redirect(status, &url),
        Err(error) => error_redirect(
            app,
            server,
            Refusal::Redirect { redirect_uri: req.redirect_uri.clone(), state: req.state.clone(), error },
            status,
        ),
    }
}

fn with_browser_cookie(app: &App, mut resp: Response, browser_id: &str, is_new: bool) -> Response {
    if is_new {
        let cookie = app.cookies.set(&app.cookies.browser(), browser_id, BROWSER_MAX_AGE);
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    resp
}

fn unknown_server(slug: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, &format!("There is no MCP server named {slug:?} here."))
}

pub async fn get(
    State(app): State<AppState>,
    Path(slug): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(server) = app.server(&slug) else { return unknown_server(&slug) };
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let req = match validate(&app, server, &params).await {
        Ok(req) => req,
        Err(refusal) => return error_redirect(&app, server, refusal, StatusCode::FOUND),
    };
    let (browser_id, is_new) = cookies::browser_id(&headers, &app.cookies);
    let resp = if req.client.trusted || consent::is_remembered(&app, server, &req.client, &browser_id, &headers) {
        go_upstream(&app, server, &req, &browser_id, StatusCode::FOUND).await
    } else {
        consent::page(&app, server, &req, &params, &browser_id, None)
    };
    with_browser_cookie(&app, resp, &browser_id, is_new)
}

pub async fn post(State(app): State<AppState>, Path(slug): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(server) = app.server(&slug) else { return unknown_server(&slug) };
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let req = match validate(&app, server, &params).await {
        Ok(req) => req,
        Err(refusal) => return error_redirect(&app, server, refusal, StatusCode::SEE_OTHER),
    };
    let (browser_id, is_new) = cookies::browser_id(&headers, &app.cookies);
    if !consent::csrf_is_valid(&app, server, &req, &browser_id, params.get("csrf_token")) {
        // Expired form, lost cookie, or a forged post: nothing happens, and the person
        // (if it is one) is asked again with a fresh form.
        let notice = "This consent form has expired or did not come from this browser. Please confirm again.";
        let mut resp = consent::page(&app, server, &req, &params, &browser_id, Some(notice));
        *resp.status_mut() = StatusCode::FORBIDDEN;
        return with_browser_cookie(&app, resp, &browser_id, is_new);
    }
    let resp = match params.get("decision") {
        Some("approve") => {
            let mut resp = go_upstream(&app, server, &req, &browser_id, StatusCode::SEE_OTHER).await;
            if resp.status() == StatusCode::SEE_OTHER {
                resp.headers_mut()
                    .append(header::SET_COOKIE, consent::remember(&app, server, &req.client, &browser_id));
            }
            resp
        }
        Some("deny") => error_redirect(
            &app,
            server,
            Refusal::Redirect {
                redirect_uri: req.redirect_uri.clone(),
                state: req.state.clone(),
                error: OAuthError::access_denied("the user denied access"),
            },
            StatusCode::SEE_OTHER,
        ),
        _ => error_page(StatusCode::BAD_REQUEST, "The consent form must be answered with approve or deny."),
    };
    with_browser_cookie(&app, resp, &browser_id, is_new)
}
