//! `P/oauth/callback`: where the provider sends the user back; and
//! `P/oauth/upstream-callback`: where a brokered MCP upstream's own authorization server
//! does (see `upstream_login`).
//!
//! A login started from the account page is handed to `account`. Otherwise the pending
//! authorization is taken (once, and only by the browser that started it, and only at the
//! callback of its step), the login finished (see `login`), and the client finally receives
//! the proxy's own authorization code, or the error, at its verified redirect URI; or,
//! brokered, the browser goes on to the upstream's login.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcp_oauth_core::token::TokenHash;

use super::login;
use super::request::ClientRedirect;
use crate::account;
use crate::cookies;
use crate::error::HttpError;
use crate::extract::BrowserQuery;
use crate::services::audit::Caller;
use crate::state::AppState;

pub async fn callback(
    State(app): State<AppState>,
    caller: Caller,
    BrowserQuery(params): BrowserQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    finish(app, caller, params, headers, false).await
}

pub async fn upstream_callback(
    State(app): State<AppState>,
    caller: Caller,
    BrowserQuery(params): BrowserQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    finish(app, caller, params, headers, true).await
}

async fn finish(
    app: AppState,
    caller: Caller,
    params: mcp_oauth_core::form::Params,
    headers: HeaderMap,
    upstream_step: bool,
) -> Result<Response, HttpError> {
    let page = |message: &str| HttpError::bad_request_page(message);
    let state = params
        .get("state")
        .ok_or_else(|| page("The login response has no state. Start again from your application."))?;
    // The account page's logins come back here too (the one redirect URI registered at
    // each provider); theirs carry their own cookie.
    if let Some(login) = account::login_answered(&app, &headers, state) {
        return account::finish_login(&app, login, &params, &caller).await;
    }
    let browser_id = cookies::get(&headers, &app.cookies.browser()).ok_or_else(|| {
        page(
            "This browser did not start this login (its cookie is missing). Start again from your application, \
             in the browser that opens.",
        )
    })?;
    let pending = app
        .store
        .take_pending(&TokenHash::of(state), &TokenHash::of(browser_id), app.now())
        .await
        .map_err(|e| HttpError::from(e).for_browser())?
        .ok_or_else(|| {
            page(
                "This login has expired, was already completed, or was started in another browser. \
                 Start again from your application.",
            )
        })?;
    if pending.broker.is_some() != upstream_step {
        return Err(page("This login response arrived at the wrong address. Start again from your application."));
    }
    let server = app
        .settings
        .server(&pending.server)
        .ok_or_else(|| HttpError::not_found_page("The MCP server of this login is no longer configured."))?;
    let reply = ClientRedirect {
        issuer: app.settings.issuer(&server.slug),
        redirect_uri: pending.redirect_uri.clone(),
        state: pending.client_state.clone(),
        status: StatusCode::FOUND,
        trace_id: pending.trace_id.clone(),
    };
    match login::finish(&app, server, &pending, &params, &caller).await {
        Ok(login::Finished::Code(code)) => Ok(reply.code(&code)),
        Ok(login::Finished::Upstream(url)) => Ok(crate::responses::redirect(StatusCode::FOUND, &url)),
        Err(e) => Err(reply.error(e).traced(pending.trace_id.as_deref())),
    }
}
