//! The authorization endpoint: `GET` checks the request and shows the consent page (or
//! goes straight to the provider's login for trusted or already-approved clients);
//! `POST` receives the consent form.
//!
//! Errors in a request go back to the client only when the client has earned it here:
//! it is trusted, this browser approved it before, or the person has just answered its
//! consent form. Otherwise they are shown on a page (see `request::Invalid`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::form::Params;

use super::request::{AuthorizationRequest, ClientRedirect};
use super::{consent, login};
use crate::client_address::ClientAddress;
use crate::cookies::{self, BROWSER_MAX_AGE};
use crate::error::HttpError;
use crate::extract::{Browser, BrowserQuery, OAuthForm, Server};
use crate::responses::redirect;
use crate::services::audit::Caller;
use crate::state::{App, AppState};
use crate::trace::TraceId;

pub async fn get(
    State(app): State<AppState>,
    server: Server<Browser>,
    from: ClientAddress,
    BrowserQuery(params): BrowserQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    app.limits.authorization(from.client).map_err(|e| HttpError::from(e).for_browser())?;
    let trace = TraceId::new();
    let client_id = params.get("client_id").unwrap_or("-");
    tracing::info!(trace_id = %trace, server = %server.slug, client_id, "authorization request");
    let result = show(&app, &server, from, &params, &headers, &trace).await;
    result.map_err(|e| refused(e, &trace))
}

async fn show(
    app: &App,
    server: &Server<Browser>,
    from: ClientAddress,
    params: &Params,
    headers: &HeaderMap,
    trace: &TraceId,
) -> Result<Response, HttpError> {
    let (browser_id, is_new) = cookies::browser_id(headers, &app.cookies);
    let approved =
        |client: &Client| client.trusted || consent::is_remembered(app, server, client, &browser_id, headers);
    let req = AuthorizationRequest::validate(app, server, params, StatusCode::FOUND, trace)
        .await
        .map_err(|invalid| invalid.answer(|client, _| approved(client)))?;
    let covered = req.client.trusted || consent::covers(app, server, &req.client, &req.scope, &browser_id, headers);
    let resp = if covered {
        go_to_provider(app, server, &req, (&browser_id, from)).await?
    } else {
        consent::page(app, server, &req, params, &browser_id, headers, None).await
    };
    Ok(with_browser_cookie(app, resp, &browser_id, is_new))
}

pub async fn post(
    State(app): State<AppState>,
    server: Server<Browser>,
    caller: Caller,
    headers: HeaderMap,
    OAuthForm(params, _): OAuthForm<Browser>,
) -> Result<Response, HttpError> {
    app.limits.authorization(caller.address.client).map_err(|e| HttpError::from(e).for_browser())?;
    let trace = TraceId::carried_or_new(params.get("trace_id"));
    let result = answer(&app, &server, &caller, &headers, &params, &trace).await;
    result.map_err(|e| refused(e, &trace))
}

async fn answer(
    app: &App,
    server: &Server<Browser>,
    caller: &Caller,
    headers: &HeaderMap,
    params: &Params,
    trace: &TraceId,
) -> Result<Response, HttpError> {
    let (browser_id, is_new) = cookies::browser_id(headers, &app.cookies);
    // The person acted only if the form carries a CSRF token signed for this browser.
    let acted = |client: &Client, reply: &ClientRedirect| {
        consent::csrf_is_valid(app, server, client, reply, &browser_id, params.get("csrf_token"))
    };
    let req =
        AuthorizationRequest::validate(app, server, params, StatusCode::SEE_OTHER, trace).await.map_err(|invalid| {
            invalid.answer(|client, reply| {
                acted(client, reply)
                    || client.trusted
                    || consent::is_remembered(app, server, client, &browser_id, headers)
            })
        })?;
    let resp = if !acted(&req.client, &req.reply) {
        // Expired form, lost cookie, or a forged post: nothing happens, and the person
        // (if it is one) is asked again with a fresh form.
        let notice = "This consent form has expired or did not come from this browser. Please confirm again.";
        consent::page(app, server, &req, params, &browser_id, headers, Some(notice)).await
    } else {
        let decided = |name| {
            tracing::info!(trace_id = %trace, server = %server.slug, client_id = %req.client.client_id, name, "consent");
            app.event(name).slug(&server.slug).client(&req.client.client_id).from(caller).trace(Some(trace.as_str()))
        };
        match params.get("decision") {
            Some("approve") => {
                app.audit.record(decided("consent.approved"));
                let mut resp = go_to_provider(app, server, &req, (&browser_id, caller.address)).await?;
                let cookie = consent::remember(app, server, &req.client, &req.scope, &browser_id, headers);
                resp.headers_mut().append(header::SET_COOKIE, cookie);
                resp
            }
            Some("deny") => {
                app.audit.record(decided("consent.denied"));
                return Err(req.reply.error(OAuthError::access_denied("the user denied access")));
            }
            _ => {
                return Err(HttpError::bad_request_page("The consent form must be answered with approve or deny."));
            }
        }
    };
    Ok(with_browser_cookie(app, resp, &browser_id, is_new))
}

/// A refusal of this attempt, quoting its trace id, and logged with it.
fn refused(e: HttpError, trace: &TraceId) -> HttpError {
    tracing::info!(trace_id = %trace, refusal = e.summary(), "authorization request refused");
    e.traced(Some(trace.as_str()))
}

/// Sends the browser to the provider's login, or reports why not at the client's
/// redirect URI.
async fn go_to_provider(
    app: &App,
    server: &Server<Browser>,
    req: &AuthorizationRequest,
    starter: (&str, ClientAddress),
) -> Result<Response, HttpError> {
    match login::start(app, server, req, starter).await {
        Ok(url) => Ok(redirect(req.reply.status, &url)),
        Err(e) => Err(req.reply.error(e)),
    }
}

fn with_browser_cookie(app: &App, mut resp: Response, browser_id: &str, is_new: bool) -> Response {
    if is_new {
        let cookie = app.cookies.set(&app.cookies.browser(), browser_id, BROWSER_MAX_AGE);
        resp.headers_mut().append(header::SET_COOKIE, cookie);
    }
    resp
}
