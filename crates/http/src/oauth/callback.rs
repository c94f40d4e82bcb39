//! `P/oauth/callback`: where the upstream provider sends the user back.
//!
//! The pending authorization is taken (once, and only by the browser that started it),
//! the upstream code exchanged, the user identified, the upstream credential sealed into
//! a new family, and the client finally receives the proxy's own authorization code.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::token::{TokenHash, TokenKind, mint, random_id};
use mcp_oauth_store::{NewCode, NewFamily, PendingAuthorization};
use mcp_oauth_upstream::UpstreamError;

use super::authorize::{Refusal, client_redirect, error_redirect};
use super::upstream_credential::UpstreamSecret;
use crate::app::{App, AppState, store_error};
use crate::cookies;
use crate::responses::{error_page, redirect};

/// What an upstream failure means for the client.
fn upstream_failure(e: &UpstreamError) -> OAuthError {
    match e {
        UpstreamError::Unavailable(_) => {
            OAuthError::temporarily_unavailable("the upstream identity provider is unavailable; try again", 5)
        }
        UpstreamError::Rejected { error, .. } => {
            OAuthError::access_denied(format!("the upstream identity provider refused the login ({error})"))
        }
        UpstreamError::Protocol(_) => OAuthError::server_error("the upstream identity provider answered unexpectedly"),
    }
}

pub async fn callback(State(app): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let params = match Params::parse(query.unwrap_or_default().as_bytes()) {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Some(state) = params.get("state") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The login response has no state. Start again from your application.",
        );
    };
    let Some(browser_id) = cookies::get(&headers, &app.cookies.browser()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This browser did not start this login (its cookie is missing). Start again from your application, \
             in the browser that opens.",
        );
    };
    let pending = match app.store.take_pending(&TokenHash::of(state), &TokenHash::of(browser_id), app.now()).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This login has expired, was already completed, or was started in another browser. \
                 Start again from your application.",
            );
        }
        Err(e) => return error_page(StatusCode::SERVICE_UNAVAILABLE, &store_error(e).description),
    };
    let Some(server) = app.server(&pending.server) else {
        return error_page(StatusCode::NOT_FOUND, "The MCP server of this login is no longer configured.");
    };
    let outcome = finish(&app, &pending, &params).await;
    let issuer = app.settings.issuer(&server.slug);
    match outcome {
        Ok(code) => {
            let to =
                client_redirect(&issuer, &pending.redirect_uri, &[("code", &code)], pending.client_state.as_deref());
            redirect(StatusCode::FOUND, &to)
        }
        Err(error) => error_redirect(
            &app,
            server,
            Refusal::Redirect {
                redirect_uri: pending.redirect_uri.clone(),
                state: pending.client_state.clone(),
                error,
            },
            StatusCode::FOUND,
        ),
    }
}

/// Completes the login; returns the proxy's authorization code for the client.
async fn finish(app: &App, pending: &PendingAuthorization, params: &Params) -> Result<String, OAuthError> {
    let server = app.server(&pending.server).expect("checked by the caller");
    let provider = app.provider(server);
    if let Some(error) = params.get("error") {
        tracing::info!(provider = provider.name(), error, "upstream login did not succeed");
        return Err(match error {
            "access_denied" => OAuthError::access_denied("the user did not log in at the upstream identity provider"),
            "temporarily_unavailable" => {
                OAuthError::temporarily_unavailable("the upstream identity provider is unavailable; try again", 5)
            }
            other => OAuthError::server_error(format!("the upstream identity provider answered {other}")),
        });
    }
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::server_error("the upstream identity provider sent neither a code nor an error"))?;
    let log_failure = |stage: &str, e: &UpstreamError| {
        tracing::warn!(provider = provider.name(), stage, error = %e, "upstream login failed");
    };
    let tokens = provider
        .exchange_code(code, &pending.upstream_verifier, &app.settings.callback_url())
        .await
        .inspect_err(|e| log_failure("code exchange", e))
        .map_err(|e| upstream_failure(&e))?;
    let now = app.now();
    let subject = provider
        .subject(&tokens, pending.nonce.as_deref(), now)
        .await
        .inspect_err(|e| log_failure("identify user", e))
        .map_err(|e| upstream_failure(&e))?;

    let family_id = random_id();
    let family = NewFamily {
        id: family_id.clone(),
        server: pending.server.clone(),
        client_id: pending.client_id.clone(),
        subject: subject.clone(),
        scope: pending.scope.clone(),
        resource: pending.resource.clone(),
        upstream_sealed: UpstreamSecret::from_tokens(&tokens).seal(&app.keys, &family_id),
        upstream_expires_at: tokens.expires_in.map(|secs| now + secs),
        created_at: now,
    };
    let code = mint(TokenKind::AuthorizationCode);
    let stored_code = NewCode {
        hash: code.hash,
        family_id: family_id.clone(),
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        expires_at: now + app.settings.tokens.code_ttl_secs,
    };
    app.store.create_family(&family, &stored_code).await.map_err(store_error)?;
    tracing::info!(server = %pending.server, client_id = %pending.client_id, %subject, family = %family_id, "user authorized a client");
    Ok(code.secret)
}
