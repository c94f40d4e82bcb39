//! The two grants of the token endpoint. Each decides with the rules in
//! `mcp_oauth_core::family` and acts with one atomic store operation, so that racing
//! requests (on one replica or several) cannot both win.

use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::{CodeState, CodeVerdict, FamilyStatus, RefreshTokenState, judge_code, judge_refresh};
use mcp_oauth_core::form::Params;
use mcp_oauth_core::scope::{Scopes, refresh_scope};
use mcp_oauth_core::sealed::RefreshSuccessor;
use mcp_oauth_core::token::{TokenHash, TokenKind, mint};
use mcp_oauth_core::{OAuthError, pkce};
use mcp_oauth_store::{NewTokenPair, RefreshRotation, Rotation, StoredCode, StoredRefreshToken};

use super::token_response::TokenResponse;
use crate::error::HttpError;
use crate::services::audit::Caller;
use crate::services::metrics::SlugLabels;
use crate::settings::ServerSettings;
use crate::state::App;

/// Redeems an authorization code for the grant's first token pair.
pub async fn authorization_code(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    params: &Params,
    caller: &Caller,
) -> Result<TokenResponse, HttpError> {
    let code = params.require("code")?;
    let hash = TokenHash::of(code);
    let Some(stored) = app.store.find_code(&hash).await? else {
        return Err(OAuthError::invalid_grant("unknown authorization code").into());
    };
    // From here on, an answer is about one login attempt: it quotes the attempt's trace id.
    let trace = stored.trace_id.as_deref();
    let result = redeem(app, server, client, params, caller, &hash, &stored).await;
    match &result {
        Ok(_) => {
            tracing::info!(trace_id = trace.unwrap_or("-"), client_id = %client.client_id, "authorization code redeemed")
        }
        Err(e) => tracing::info!(trace_id = trace.unwrap_or("-"), refusal = e.summary(), "authorization code refused"),
    }
    result.map_err(|e| e.traced(trace))
}

async fn redeem(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    params: &Params,
    caller: &Caller,
    hash: &TokenHash,
    stored: &StoredCode,
) -> Result<TokenResponse, HttpError> {
    // Checks that do not prove the caller holds this code leave it untouched.
    if stored.client_id != client.client_id || stored.server != server.slug {
        return Err(OAuthError::invalid_grant("the authorization code was issued to another client").into());
    }
    let replayed = || OAuthError::invalid_grant("the authorization code was already used; its tokens are revoked");
    match judge_code(&CodeState { used: stored.used, expires_at: stored.expires_at }, app.now()) {
        CodeVerdict::Redeem => {}
        CodeVerdict::Expired => return Err(OAuthError::invalid_grant("the authorization code has expired").into()),
        CodeVerdict::Replay => {
            revoke_for_replay(app, (Some(server), &stored.family_id), "authorization code", "code_replay", caller)
                .await;
            return Err(replayed().into());
        }
    }
    if let Some(given) = params.get("redirect_uri")
        && given != stored.redirect_uri
    {
        return Err(OAuthError::invalid_grant("redirect_uri does not match the authorization request").into());
    }
    pkce::verify(params.get("code_verifier"), &stored.code_challenge)?;

    let scope = Scopes::parse(&stored.scope)?;
    let issued = new_pair(app, client, &scope);
    if !app.store.redeem_code(hash, app.now(), &issued.pair).await? {
        // Another request redeemed it between our read and our write: a replay.
        revoke_for_replay(app, (Some(server), &stored.family_id), "authorization code", "code_replay", caller).await;
        return Err(replayed().into());
    }
    let event = app.event("token.issued").slug(&server.slug).client(&client.client_id).grant(&stored.family_id);
    app.audit.record(event.grant_type("authorization_code").from(caller).trace(stored.trace_id.as_deref()));
    Ok(issued.answer(scope.to_string(), issued.refresh_token.clone()))
}

/// Rotates a refresh token: the presented one is superseded, a new pair issued.
pub async fn refresh_token(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    params: &Params,
    caller: &Caller,
) -> Result<TokenResponse, HttpError> {
    if !client.metadata.allows_grant("refresh_token") {
        return Err(OAuthError::unauthorized_client("this client did not register the refresh_token grant").into());
    }
    let hash = TokenHash::of(params.require("refresh_token")?);
    let unknown = || OAuthError::invalid_grant("unknown refresh token");
    let stored = app.store.find_refresh_token(&hash).await?.filter(|s| s.server == server.slug).ok_or_else(unknown)?;
    refuse_unless_rotatable(app, &stored, client, caller).await?;
    let scope = refresh_scope(params.get("scope"), &Scopes::parse(&stored.scope)?)?;
    ensure_provider_token(app, server, &stored).await?;
    let issued = new_pair(app, client, &scope);
    // The client registered for the refresh grant (checked above): a refresh token was minted.
    let successor =
        RefreshSuccessor { refresh_token: issued.refresh_token.clone().unwrap_or_default(), scope: scope.to_string() };
    let sealed = successor.seal(&app.keys, &hash);
    let grace = app.settings.tokens.refresh_grace_secs;
    let refreshed = || {
        let event = app.event("token.refreshed").slug(&server.slug).client(&client.client_id);
        app.audit.record(event.grant(&stored.family_id).from(caller));
    };
    let rotation = RefreshRotation {
        hash: &hash,
        client_id: &client.client_id,
        now: app.now(),
        grace_secs: grace,
        pair: &issued.pair,
        successor_sealed: &sealed,
    };
    match app.store.rotate_refresh_token(rotation).await? {
        Rotation::Rotated => {
            refreshed();
            return Ok(issued.answer(successor.scope, Some(successor.refresh_token)));
        }
        // The same answer as the first use of this token got, with a new access token:
        // as if that answer had been delivered twice. No second refresh token exists.
        Rotation::Replayed { successor_sealed } => {
            let first = RefreshSuccessor::open(&app.keys, &hash, &successor_sealed).map_err(|e| {
                tracing::error!(error = %e, "cannot open a sealed refresh-token successor");
                OAuthError::server_error("internal error")
            })?;
            refreshed();
            return Ok(issued.answer(first.scope, Some(first.refresh_token)));
        }
        Rotation::Refused => {}
    }
    // The state changed between our read and our write (a concurrent revocation, or the
    // grace window closing): read again and report what it is now.
    let now_stored = app.store.find_refresh_token(&hash).await?.ok_or_else(unknown)?;
    refuse_unless_rotatable(app, &now_stored, client, caller).await?;
    Err(OAuthError::invalid_grant("the refresh token changed concurrently; retry").into())
}

/// A fresh token pair: what the store keeps (hashes) and the secrets for the answer.
struct Issued {
    pair: NewTokenPair,
    access_token: String,
    refresh_token: Option<String>,
    expires_in: i64,
}

impl Issued {
    /// The answer with this pair's access token. Its scope and refresh token are given:
    /// a replayed refresh answers with the ones the first use was given.
    fn answer(&self, scope: String, refresh_token: Option<String>) -> TokenResponse {
        TokenResponse::bearer(self.access_token.clone(), self.expires_in, scope, refresh_token)
    }
}

/// A fresh token pair for `client`; the refresh token only if the client registered
/// for the refresh grant.
fn new_pair(app: &App, client: &Client, scope: &Scopes) -> Issued {
    let now = app.now();
    let t = &app.settings.tokens;
    let access = mint(TokenKind::AccessToken);
    let refresh = client.metadata.allows_grant("refresh_token").then(|| mint(TokenKind::RefreshToken));
    let pair = NewTokenPair {
        access_hash: access.hash,
        access_expires_at: now + t.access_ttl_secs,
        refresh: refresh.as_ref().map(|r| (r.hash, now + t.refresh_ttl_secs)),
        client_id: client.client_id.clone(),
        scope: scope.to_string(),
        issued_at: now,
    };
    Issued {
        pair,
        access_token: access.secret,
        refresh_token: refresh.map(|r| r.secret),
        expires_in: t.access_ttl_secs,
    }
}

async fn revoke_for_replay(
    app: &App,
    (server, family_id): (Option<&ServerSettings>, &str),
    what: &str,
    reason: &'static str,
    caller: &Caller,
) {
    match app.store.end_family(family_id, FamilyStatus::Revoked, app.now()).await {
        Ok(true) => {
            if let Some(server) = server {
                app.brokers.revoke_later(server, family_id);
            }
            app.metrics.grant_revoked(reason);
            app.audit.record(app.event("grant.revoked").grant(family_id).reason(reason).from(caller));
            tracing::warn!(family = family_id, "{what} replayed: the grant has been revoked");
        }
        Ok(false) => {}
        Err(e) => tracing::error!(family = family_id, error = %e, "could not revoke a replayed grant"),
    }
}

/// A client refreshing its token after the provider token expired must get a token that
/// works: refresh at the provider now, and if that is refused for good, refuse this
/// grant too, so the client logs in again instead of holding a token that cannot work.
async fn ensure_provider_token(
    app: &App,
    server: &ServerSettings,
    stored: &StoredRefreshToken,
) -> Result<(), HttpError> {
    Ok(app.upstream.ensure_fresh(server, &stored.upstream).await?)
}

/// Applies the family state machine; revokes the family on reuse.
async fn refuse_unless_rotatable(
    app: &App,
    stored: &StoredRefreshToken,
    client: &Client,
    caller: &Caller,
) -> Result<(), HttpError> {
    let state = RefreshTokenState {
        client_id: stored.client_id.clone(),
        family_status: stored.family_status,
        expires_at: stored.expires_at,
        superseded_at: stored.superseded_at,
    };
    let verdict = judge_refresh(&state, &client.client_id, app.now(), app.settings.tokens.refresh_grace_secs);
    if verdict.rotates() {
        return Ok(());
    }
    if verdict.revokes_family() {
        let labels = SlugLabels { slug: stored.server.clone() };
        app.metrics.refresh_reuse.get_or_create(&labels).inc();
        let event = app.event("refresh.reuse_detected").slug(&stored.server).client(&client.client_id);
        app.audit.record(event.grant(&stored.family_id).from(caller));
        let grant = (app.settings.server(&stored.server).map(AsRef::as_ref), stored.family_id.as_str());
        revoke_for_replay(app, grant, "superseded refresh token", "refresh_reuse", caller).await;
    }
    Err(OAuthError::invalid_grant(verdict.refusal()).into())
}
