//! The end of every browser login, whichever way it went (the provider's login alone, or
//! brokered, the MCP upstream's after it): a new grant holding the tokens and who the user
//! is, and the proxy's code that starts it. Shared by `login` and `upstream_login`, which
//! hand the browser to each other and so cannot own it either.

use mcp_oauth_core::sealed::UserIdentity;
use mcp_oauth_core::token::{TokenKind, mint, random_id};
use mcp_oauth_store::{NewCode, NewFamily, PendingAuthorization};
use mcp_oauth_upstream::UpstreamTokens;

use crate::error::HttpError;
use crate::state::App;

/// How long a user may take to log in at the provider.
pub(super) const LOGIN_TTL_SECS: i64 = 600;

/// A completed login: the proxy's authorization code for the client, and what it grants.
pub(super) struct Completed {
    pub code: String,
    pub grant_id: String,
    pub subject: String,
}

/// What a login step led to.
pub(super) enum Step {
    Done(Completed),
    /// Brokered OAuth: the provider's login done, the upstream's to come (its URL).
    Upstream(String),
}

/// A new grant holding the provider's tokens (or, brokered, the upstream authorization
/// server's, `issuer` naming it) and who the user is (sealed with them: it is personal
/// data), and the code that starts it: (code, grant id).
pub(super) async fn store_grant(
    app: &App,
    pending: &PendingAuthorization,
    tokens: &UpstreamTokens,
    (subject, identity): (&str, UserIdentity),
    issuer: Option<&str>,
) -> Result<(String, String), HttpError> {
    let now = app.now();
    let family_id = random_id();
    let family = NewFamily {
        id: family_id.clone(),
        server: pending.server.clone(),
        client_id: pending.client_id.clone(),
        subject: subject.to_owned(),
        scope: pending.scope.clone(),
        resource: pending.resource.clone(),
        upstream_sealed: app.upstream.seal(&family_id, tokens, identity, issuer),
        upstream_expires_at: tokens.expires_in.map(|secs| now + secs),
        created_at: now,
        trace_id: pending.trace_id.clone(),
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
    app.store.create_family(&family, &stored_code).await?;
    let trace_id = pending.trace_id.as_deref().unwrap_or("-");
    tracing::info!(trace_id, server = %pending.server, client_id = %pending.client_id, %subject, family = %family_id, "user authorized a client");
    Ok((code.secret, family_id))
}
