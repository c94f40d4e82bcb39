//! Brokered OAuth (`upstream_auth = "oauth"`): the user's second login, at the MCP
//! upstream's own authorization server, after the provider's.
//!
//! The provider's login told the proxy who the user is; the pending authorization is then
//! stored again under a new `state`, carrying that (sealed, bound to the new state) in
//! `broker`, and the browser goes to the upstream's authorization server with PKCE S256,
//! `state`, `resource` (RFC 8707: the upstream's resource identifier) and the scopes the
//! upstream named (see `Broker::scopes_for`). Its answer comes back to the one fixed
//! `P/oauth/upstream-callback`; RFC 9207's `iss` is checked there (required when the
//! server says it sends it, and a mismatch always refused); the code is exchanged at the
//! server the login began at (its issuer sealed with the first step: see [`began_at`]),
//! and the grant holds the upstream's tokens, sealed with the issuer that issued them.

use std::sync::Arc;

use mcp_oauth_core::form::Params;
use mcp_oauth_core::sealed::UserIdentity;
use mcp_oauth_core::token::{TokenHash, TokenKind, mint, random_b64, random_id};
use mcp_oauth_core::{OAuthError, pkce};
use mcp_oauth_store::{PendingAuthorization, PendingCaps};
use mcp_oauth_upstream::UpstreamTokens;
use serde::{Deserialize, Serialize};

use super::login_grant::{Completed, LOGIN_TTL_SECS, Step, store_grant};
use crate::error::HttpError;
use crate::services::brokers::Broker;
use crate::settings::ServerSettings;
use crate::state::App;

/// What the provider's login found out, carried to the upstream's callback; without a
/// provider, nothing (`subject` absent): the upstream's login is the only one.
#[derive(Serialize, Deserialize)]
struct FirstStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default)]
    identity: UserIdentity,
    /// The authorization server the browser was sent to: its code goes to that server's
    /// token endpoint and no other's (absent in logins begun before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
}

/// The additional data that binds a sealed first step to its pending row.
fn aad(state_hash: &TokenHash) -> String {
    let hex: String = state_hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("pending:{hex}:broker")
}

/// The provider's login is done (`who`: the subject and identity), or there is none (a
/// server without `provider`): store the upstream's login step (`pending` with a new state,
/// verifier and nonce) and return the URL of the upstream's authorization server.
pub(super) async fn start(
    app: &App,
    server: &ServerSettings,
    pending: &PendingAuthorization,
    who: Option<(&str, UserIdentity)>,
) -> Result<String, HttpError> {
    let settings = server.upstream_auth.brokered().ok_or_else(|| OAuthError::server_error("not a brokered server"))?;
    let broker = app.brokers.for_login(server).await?;
    let state = mint(TokenKind::UpstreamState);
    let verifier = pkce::new_verifier();
    let nonce = broker.provider.wants_nonce().then(|| random_b64(16));
    let (subject, identity) = match who {
        Some((subject, identity)) => (Some(subject.to_owned()), identity),
        None => (None, UserIdentity::default()),
    };
    let step = FirstStep { subject, identity, issuer: Some(broker.issuer().to_owned()) };
    let step = serde_json::to_vec(&step).map_err(|e| OAuthError::server_error(e.to_string()))?;
    let next = PendingAuthorization {
        state_hash: state.hash,
        upstream_verifier: verifier.clone(),
        nonce: nonce.clone(),
        expires_at: app.now() + LOGIN_TTL_SECS,
        broker: Some(app.keys.seal(&step, &aad(&state.hash))),
        ..pending.clone()
    };
    let limits = &app.settings.limits;
    let caps = PendingCaps {
        per_browser: i64::from(limits.pending_per_browser),
        per_address: i64::from(limits.pending_per_address),
    };
    // The first step's row was taken, so this one fits wherever that one did.
    if !app.store.insert_pending(&next, app.now(), caps).await? {
        app.metrics.rate_limited("pending_logins");
        return Err(HttpError::too_many_page(
            "Too many logins were started from this browser or network and not finished. Finish one, or try again in ten minutes.",
        ));
    }
    let scopes = broker.scopes_for(settings, &server.scopes, &pending.scope);
    let url = broker
        .provider
        .authorization_url_for(
            app.brokers.callback_url(),
            &state.secret,
            &pkce::s256_challenge(&verifier),
            nonce.as_deref(),
            &broker.discovered.resource,
            &scopes,
        )
        .await?;
    let trace_id = pending.trace_id.as_deref().unwrap_or("-");
    tracing::info!(trace_id, server = %server.slug, issuer = broker.issuer(), "sent to the MCP upstream's authorization server");
    Ok(url)
}

/// The upstream authorization server's answer for `pending` (the second step).
pub(super) async fn complete(
    app: &App,
    server: &ServerSettings,
    pending: &PendingAuthorization,
    params: &Params,
) -> Result<Step, (HttpError, Option<String>)> {
    let sealed = pending.broker.as_deref().unwrap_or_default();
    let step = app
        .keys
        .open(sealed, &aad(&pending.state_hash))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<FirstStep>(&bytes).ok())
        .ok_or_else(|| (HttpError::from(OAuthError::server_error("the login's first step cannot be read")), None))?;
    let subject = step.subject.clone();
    let broker = began_at(app, server, step.issuer.as_deref()).await.map_err(|e| (e, subject.clone()))?;
    // RFC 9207: refuse an answer naming another issuer (a mix-up), and one naming none
    // from a server that said it always names itself.
    match params.get("iss") {
        Some(iss) if iss != broker.issuer() => {
            tracing::warn!(server = %server.slug, iss, expected = broker.issuer(), "the upstream's login response names another issuer");
            let e = OAuthError::access_denied("the login response came from another authorization server");
            return Err((e.into(), subject));
        }
        None if broker.discovered.server.iss_parameter_supported => {
            tracing::warn!(server = %server.slug, "the upstream's login response has no iss, which its server promises");
            let e = OAuthError::access_denied("the login response does not name its authorization server");
            return Err((e.into(), subject));
        }
        _ => {}
    }
    if let Some(error) = params.get("error") {
        tracing::info!(server = %server.slug, error, "the login at the MCP upstream's authorization server did not succeed");
        let e = match error {
            "access_denied" => {
                OAuthError::access_denied("the user did not authorize at the MCP server's authorization server")
            }
            "temporarily_unavailable" => OAuthError::temporarily_unavailable(
                "the MCP server's authorization server is unavailable; try again",
                5,
            ),
            other => OAuthError::server_error(format!("the MCP server's authorization server answered {other}")),
        };
        return Err((e.into(), subject));
    }
    let Some(code) = params.get("code") else {
        let e = OAuthError::server_error("the MCP server's authorization server sent neither a code nor an error");
        return Err((e.into(), subject));
    };
    let tokens = broker
        .provider
        .exchange_code(code, &pending.upstream_verifier, app.brokers.callback_url(), Some(&broker.discovered.resource))
        .await
        .map_err(|e| {
            tracing::warn!(server = %server.slug, error = %e, "the code exchange at the MCP upstream's authorization server failed");
            (HttpError::from(e), subject.clone())
        })?;
    let (who, identity) = match step {
        FirstStep { subject: Some(subject), identity, .. } => (subject, identity),
        FirstStep { subject: None, .. } => {
            identify(app, server, &broker, &tokens, pending).await.map_err(|e| (e, None))?
        }
    };
    store_grant(app, pending, &tokens, (&who, identity), Some(broker.issuer()))
        .await
        .map_err(|e| (e, subject))
        .map(|(code, grant_id)| Step::Done(Completed { code, grant_id, subject: who }))
}

/// The broker of the authorization server a login began at (`began`). This replica may
/// know another: the login began at a replica that had noticed a move this one has not
/// (the upstream is then discovered again), or the upstream moved during the login.
/// Either way the code goes only to the server that issued it (the mix-up RFC 9207
/// guards against, here for servers that send no `iss` too): if the upstream names
/// another server now, the login fails and the client starts a new one.
async fn began_at(app: &App, server: &ServerSettings, began: Option<&str>) -> Result<Arc<Broker>, HttpError> {
    let broker = app.brokers.broker(server).await?;
    let Some(began) = began.filter(|b| *b != broker.issuer()) else { return Ok(broker) };
    app.brokers.rediscover(server).await;
    let broker = app.brokers.broker(server).await?;
    if broker.issuer() == began {
        return Ok(broker);
    }
    tracing::warn!(server = %server.slug, began, now = broker.issuer(), "the MCP upstream names another authorization server than the one this login began at");
    let e = OAuthError::temporarily_unavailable(
        "the MCP server moved to another authorization server during the login; authorize again",
        1,
    );
    Err(e.into())
}

/// Without a provider: who the user is, as the upstream's authorization server says (its
/// id_token, verified, or its userinfo endpoint) when it can say it; else a pseudonymous
/// subject of this grant alone, since nothing else is known (a new login is a new subject;
/// the configuration refuses access rules for such a server).
async fn identify(
    app: &App,
    server: &ServerSettings,
    broker: &Broker,
    tokens: &UpstreamTokens,
    pending: &PendingAuthorization,
) -> Result<(String, UserIdentity), HttpError> {
    let can_say = tokens.id_token.is_some() || broker.discovered.server.userinfo_endpoint.is_some();
    if !can_say {
        return Ok((format!("anonymous:{}", random_id()), UserIdentity::default()));
    }
    let who = broker.provider.identify(tokens, pending.nonce.as_deref(), app.now()).await.map_err(|e| {
        tracing::warn!(server = %server.slug, error = %e, "the MCP upstream's authorization server did not say who logged in");
        HttpError::from(e)
    })?;
    let identity = UserIdentity {
        email: who.email.clone(),
        email_verified: who.email.is_some(),
        name: who.name.clone(),
        groups: who.groups.clone(),
    };
    Ok((who.subject, identity))
}
