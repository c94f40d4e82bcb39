//! The user's login at the identity provider, from both ends: starting it once consent
//! is given, and finishing it when the provider sends the browser back.

use mcp_oauth_core::form::Params;
use mcp_oauth_core::pkce;
use mcp_oauth_core::sealed::UserIdentity;
use mcp_oauth_core::token::{TokenHash, TokenKind, mint, random_b64};
use mcp_oauth_store::{PendingAuthorization, PendingCaps};
use mcp_oauth_upstream::{Identity, UpstreamTokens};

use super::login_grant::{Completed, LOGIN_TTL_SECS, Step, store_grant};
use super::request::AuthorizationRequest;
use crate::client_address::ClientAddress;
use crate::error::HttpError;
use crate::provider_login;
use crate::services::audit::Caller;
use crate::settings::ServerSettings;
use crate::state::App;

/// Everything checked and consented to: remember the request (bound to this browser) and
/// return the provider URL to send the browser to.
pub async fn start(
    app: &App,
    server: &ServerSettings,
    req: &AuthorizationRequest,
    (browser_id, from): (&str, ClientAddress),
) -> Result<String, HttpError> {
    if !server.has_provider() {
        // Brokered OAuth without a provider: the upstream's login is the only one.
        let pending = pending_for(app, server, req, (browser_id, from), String::new(), None);
        return super::upstream_login::start(app, server, &pending, None).await;
    }
    let provider = app.providers.for_server(server);
    let verifier = pkce::new_verifier();
    let nonce = provider.wants_nonce().then(|| random_b64(16));
    let state = mint(TokenKind::UpstreamState);
    let pending = PendingAuthorization {
        state_hash: state.hash,
        ..pending_for(app, server, req, (browser_id, from), verifier.clone(), nonce.clone())
    };
    let limits = &app.settings.limits;
    let caps = PendingCaps {
        per_browser: i64::from(limits.pending_per_browser),
        per_address: i64::from(limits.pending_per_address),
    };
    if !app.store.insert_pending(&pending, app.now(), caps).await? {
        app.metrics.rate_limited("pending_logins");
        return Err(HttpError::too_many_page(
            "Too many logins were started from this browser or network and not finished. Finish one, or try again in ten minutes.",
        ));
    }
    let url = provider
        .authorization_url(
            &app.settings.callback_url(),
            &state.secret,
            &pkce::s256_challenge(&verifier),
            nonce.as_deref(),
            Some(&req.resource),
        )
        .await
        .map_err(provider_login::failed(provider, "authorization URL"))?;
    tracing::info!(trace_id = %req.trace, server = %server.slug, client_id = %req.client.client_id, "sent to the provider's login");
    Ok(url)
}

/// The pending authorization for `req` in this browser (its `state_hash` a placeholder
/// for the caller to set), to log in with `verifier` and `nonce`.
fn pending_for(
    app: &App,
    server: &ServerSettings,
    req: &AuthorizationRequest,
    (browser_id, from): (&str, ClientAddress),
    verifier: String,
    nonce: Option<String>,
) -> PendingAuthorization {
    PendingAuthorization {
        state_hash: TokenHash([0; 32]),
        browser_hash: TokenHash::of(browser_id),
        server: server.slug.clone(),
        client_id: req.client.client_id.clone(),
        redirect_uri: req.reply.redirect_uri.clone(),
        scope: req.scope.to_string(),
        resource: req.resource.clone(),
        code_challenge: req.code_challenge.clone(),
        client_state: req.reply.state.clone(),
        upstream_verifier: verifier,
        nonce,
        expires_at: app.now() + LOGIN_TTL_SECS,
        trace_id: Some(req.trace.to_string()),
        address: Some(app.limits.key(from.client).to_string()),
        broker: None,
    }
}

/// Where a finished login step sends the browser.
pub enum Finished {
    /// The proxy's authorization code, for the client.
    Code(String),
    /// Brokered OAuth: on to the MCP upstream's own authorization server.
    Upstream(String),
}

/// The provider's answer for `pending`: exchange its code, identify the user, check the
/// server's access rules, seal the provider's tokens into a new grant, and return the
/// proxy's own authorization code. With brokered OAuth, the provider's login is followed
/// by the upstream's (see `upstream_login`), whose answer comes here too and ends in the
/// code. The outcome goes to the audit trail either way.
pub async fn finish(
    app: &App,
    server: &ServerSettings,
    pending: &PendingAuthorization,
    params: &Params,
    caller: &Caller,
) -> Result<Finished, HttpError> {
    let trace = pending.trace_id.as_deref();
    let event = |name| app.event(name).slug(&server.slug).client(&pending.client_id).from(caller).trace(trace);
    let result = match pending.broker {
        None => complete(app, server, pending, params).await,
        Some(_) => super::upstream_login::complete(app, server, pending, params).await,
    };
    match result {
        Ok(Step::Upstream(url)) => Ok(Finished::Upstream(url)),
        Ok(Step::Done(done)) => {
            app.audit.record(event("login.completed").subject(&done.subject).grant(&done.grant_id));
            Ok(Finished::Code(done.code))
        }
        Err((e, subject)) => {
            let why = match &e {
                HttpError::OAuth(e) => e.to_string(),
                HttpError::Page { message, .. } => message.clone(),
                _ => "the login could not be completed".to_owned(),
            };
            tracing::info!(trace_id = trace.unwrap_or("-"), server = %server.slug, why, "login refused");
            let denied = event("login.denied").reason(why);
            app.audit.record(match subject {
                Some(s) => denied.subject(&s),
                None => denied,
            });
            Err(e)
        }
    }
}

/// [`finish`]'s work; a failure comes with the user's subject when it was known.
async fn complete(
    app: &App,
    server: &ServerSettings,
    pending: &PendingAuthorization,
    params: &Params,
) -> Result<Step, (HttpError, Option<String>)> {
    let (tokens, who) = log_in_at_provider(app, server, pending, params).await.map_err(|e| (e, None))?;
    if let Some(rules) = &server.access
        && !rules.allows(&who)
    {
        tracing::info!(server = %server.slug, subject = %who.subject, "login refused by the server's access rules");
        let page = HttpError::forbidden_page(
            "Your account is not allowed to use this MCP server. Ask its operator for access.",
        );
        return Err((page, Some(who.subject)));
    }
    // `Identity` holds a verified address only, so any address kept is a verified one.
    let identity = UserIdentity {
        email: who.email.clone(),
        email_verified: who.email.is_some(),
        name: who.name.clone(),
        groups: who.groups.clone(),
    };
    if server.upstream_auth.brokered().is_some() {
        // The provider's tokens are not kept: this grant will hold the upstream's.
        return super::upstream_login::start(app, server, pending, Some((&who.subject, identity)))
            .await
            .map(Step::Upstream)
            .map_err(|e| (e, Some(who.subject.clone())));
    }
    store_grant(app, pending, &tokens, (&who.subject, identity), None)
        .await
        .map_err(|e| (e, Some(who.subject.clone())))
        .map(|(code, grant_id)| Step::Done(Completed { code, grant_id, subject: who.subject }))
}

/// The provider's answer, redeemed: its tokens, and who logged in.
async fn log_in_at_provider(
    app: &App,
    server: &ServerSettings,
    pending: &PendingAuthorization,
    params: &Params,
) -> Result<(UpstreamTokens, Identity), HttpError> {
    let provider = app.providers.for_server(server);
    provider_login::redeem(app, provider, (&pending.upstream_verifier, pending.nonce.as_deref()), params).await
}
