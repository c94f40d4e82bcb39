//! Token revocation (RFC 7009).
//!
//! Revoking a refresh token ends its whole grant (the access tokens issued with it
//! included, as RFC 7009 §2.1 encourages); revoking an access token ends just that
//! token. Unknown, expired or foreign tokens get the same 200 as a success, so the
//! endpoint reveals nothing about which tokens exist.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::token::TokenHash;

use super::client_auth::{self, ClientCredentials};
use crate::error::HttpError;
use crate::extract::{OAuthForm, Server};
use crate::responses::no_store_json;
use crate::services::audit::Caller;
use crate::settings::ServerSettings;
use crate::state::{App, AppState};

pub async fn revoke(
    State(app): State<AppState>,
    server: Server,
    caller: Caller,
    headers: HeaderMap,
    OAuthForm(params, _): OAuthForm,
) -> Result<Response, HttpError> {
    run(&app, &server, &headers, &params, &caller).await
}

async fn run(
    app: &App,
    server: &ServerSettings,
    headers: &HeaderMap,
    params: &Params,
    caller: &Caller,
) -> Result<Response, HttpError> {
    let credentials = ClientCredentials::read(headers, params);
    let client = client_auth::authenticate(app, server, caller.address, credentials).await?;
    let hash = TokenHash::of(params.require("token")?);
    let revocation = Revocation { app, server, client: &client, caller };
    // The hint only orders the lookups (RFC 7009 §2.1); both kinds are always tried.
    let access_first = params.get("token_type_hint") == Some("access_token");
    let found = (access_first && revocation.access_token(&hash).await?)
        || revocation.refresh_token(&hash).await?
        || (!access_first && revocation.access_token(&hash).await?);
    tracing::debug!(found, "revocation request");
    Ok(no_store_json(StatusCode::OK, serde_json::json!({})))
}

/// A client revoking one of its tokens at one server.
struct Revocation<'a> {
    app: &'a App,
    server: &'a ServerSettings,
    client: &'a Client,
    caller: &'a Caller,
}

impl Revocation<'_> {
    fn holds(&self, client_id: &str, server: &str) -> bool {
        client_id == self.client.client_id && server == self.server.slug
    }

    /// Ends the grant of a refresh token this client holds. `true` if the token exists.
    async fn refresh_token(&self, hash: &TokenHash) -> Result<bool, HttpError> {
        let app = self.app;
        let Some(rt) = app.store.find_refresh_token(hash).await? else { return Ok(false) };
        if self.holds(&rt.client_id, &rt.server)
            && app.store.end_family(&rt.family_id, FamilyStatus::Revoked, app.now()).await?
        {
            app.metrics.grant_revoked("client");
            let event = app.event("grant.revoked").slug(&rt.server).client(&rt.client_id).grant(&rt.family_id);
            app.audit.record(event.reason("client").from(self.caller));
            tracing::info!(family = %rt.family_id, "grant revoked by its client");
            app.brokers.revoke_later(self.server, &rt.family_id);
        }
        Ok(true)
    }

    /// Revokes an access token this client holds. `true` if the token exists.
    async fn access_token(&self, hash: &TokenHash) -> Result<bool, HttpError> {
        let app = self.app;
        let Some(at) = app.store.find_access_token(hash).await? else { return Ok(false) };
        if self.holds(&at.client_id, &at.server) && app.store.revoke_access_token(hash, app.now()).await? {
            let event = app.event("token.revoked").slug(&at.server).client(&at.client_id).grant(&at.upstream.family_id);
            app.audit.record(event.subject(&at.subject).from(self.caller));
        }
        Ok(true)
    }
}
