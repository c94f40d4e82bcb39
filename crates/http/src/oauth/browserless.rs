//! The grants made at the token endpoint alone, with no browser, consent page or
//! provider login: `client_credentials` (SEP-1046: a client on its own behalf) and, in
//! `jwt_bearer`, an enterprise IdP's ID-JAG (SEP-990). Each still creates a grant (a
//! family), so that its tokens can be listed, revoked and audited like any other; it holds
//! no provider token, only who the grant speaks for, so its servers must send their MCP
//! upstream an identity assertion or nothing (`upstream_auth` `identity` or `none`). No
//! refresh token: the client asks again with what it proved the first time.

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::sealed::{UpstreamSecret, UserIdentity};
use mcp_oauth_core::token::{TokenKind, mint, random_id};
use mcp_oauth_store::{NewFamily, NewTokenPair};

use super::token_response::TokenResponse;
use crate::error::HttpError;
use crate::services::audit::Caller;
use crate::settings::ServerSettings;
use crate::state::App;

/// The subject of a client's own grant: never a provider's user id, which has no colon
/// prefix of this form, so access rules and upstreams can tell the two apart.
pub fn client_subject(client_id: &str) -> String {
    format!("client:{client_id}")
}

/// `grant_type=client_credentials`: a confidential client that this server lets in by
/// `access.clients` gets a token for itself, within the scopes it may have.
pub async fn client_credentials(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    params: &Params,
    caller: &Caller,
) -> Result<TokenResponse, HttpError> {
    if !client.metadata.token_endpoint_auth_method.is_confidential()
        || !client.metadata.allows_grant("client_credentials")
    {
        return Err(OAuthError::unauthorized_client("this client may not use the client_credentials grant").into());
    }
    if server.upstream_auth.needs_provider_token()
        || !server.access.as_ref().is_some_and(|a| a.allows_client(&client.client_id))
    {
        tracing::info!(server = %server.slug, client_id = %client.client_id, "client credentials refused: the client is not in this server's access.clients");
        return Err(OAuthError::unauthorized_client("this client may not use this server on its own behalf").into());
    }
    check_resource(app, server, params)?;
    let scope = scope_for(server, client.metadata.scope.as_deref(), params.get("scope"), None)?;
    let grant = Browserless {
        subject: client_subject(&client.client_id),
        identity: UserIdentity::default(),
        scope,
        grant_type: "client_credentials",
        idp: None,
        expires_in: app.settings.tokens.access_ttl_secs,
    };
    issue(app, server, client, grant, caller).await
}

/// RFC 8707: a `resource`, when given, must be this server's MCP URL.
pub fn check_resource(app: &App, server: &ServerSettings, params: &Params) -> Result<(), OAuthError> {
    let resource = app.settings.resource(&server.slug);
    match params.get("resource") {
        Some(requested) if requested.trim_end_matches('/') != resource => {
            Err(OAuthError::invalid_target(format!("this server issues tokens only for {resource}")))
        }
        _ => Ok(()),
    }
}

/// The scope of a grant made without a user: what was asked for (or else the server's
/// default), within what the server offers, what the client may have (`allowed`, when it
/// is limited) and what an assertion carried (`asserted`, when it carried any). Asking for
/// more than that is `invalid_scope`: with no consent page, nothing is quietly narrowed
/// for a person to see.
pub fn scope_for(
    server: &ServerSettings,
    allowed: Option<&str>,
    requested: Option<&str>,
    asserted: Option<&Scopes>,
) -> Result<Scopes, OAuthError> {
    let allowed = allowed.map(Scopes::parse).transpose()?;
    let within = |s: &str| {
        server.scopes.iter().any(|x| x == s)
            && allowed.as_ref().is_none_or(|a| a.iter().any(|x| x == s))
            && asserted.is_none_or(|a| a.iter().any(|x| x == s))
    };
    let requested = requested.map(Scopes::parse).transpose()?.filter(|s| !s.is_empty());
    match requested {
        Some(requested) => {
            if let Some(beyond) = requested.iter().find(|s| !within(s)) {
                return Err(OAuthError::invalid_scope(format!("scope {beyond:?} cannot be granted to this client")));
            }
            Ok(requested)
        }
        None => {
            let kept = Scopes::from_list(server.default_scopes.iter().filter(|s| within(s)));
            if kept.is_empty() {
                return Err(OAuthError::invalid_scope("no scope of this server can be granted to this client"));
            }
            Ok(kept)
        }
    }
}

/// What a grant made without a user is, once its checks have passed.
pub struct Browserless {
    pub subject: String,
    pub identity: UserIdentity,
    pub scope: Scopes,
    pub grant_type: &'static str,
    /// The enterprise IdP whose assertion was redeemed (its configured name).
    pub idp: Option<String>,
    pub expires_in: i64,
}

/// Stores the grant with its access token (and no refresh token), and records it.
pub async fn issue(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    grant: Browserless,
    caller: &Caller,
) -> Result<TokenResponse, HttpError> {
    let now = app.now();
    let family_id = random_id();
    // No provider token: the sealed value holds who the grant speaks for, for identity
    // assertions and headers, as a login's does.
    let secret = UpstreamSecret {
        access_token: String::new(),
        refresh_token: None,
        refusal_checked_at: None,
        identity: Some(grant.identity),
        issuer: None,
    };
    let family = NewFamily {
        id: family_id.clone(),
        server: server.slug.clone(),
        client_id: client.client_id.clone(),
        subject: grant.subject.clone(),
        scope: grant.scope.to_string(),
        resource: app.settings.resource(&server.slug),
        upstream_sealed: secret.seal(&app.keys, &family_id),
        upstream_expires_at: None,
        created_at: now,
        trace_id: None,
    };
    let access = mint(TokenKind::AccessToken);
    let pair = NewTokenPair {
        access_hash: access.hash,
        access_expires_at: now + grant.expires_in,
        refresh: None,
        client_id: client.client_id.clone(),
        scope: grant.scope.to_string(),
        issued_at: now,
    };
    app.store.issue_grant(&family, &pair).await?;
    let event = app.event("token.issued").slug(&server.slug).client(&client.client_id).subject(&grant.subject);
    app.audit.record(event.grant(&family_id).grant_type(grant.grant_type).idp(grant.idp.as_deref()).from(caller));
    tracing::info!(server = %server.slug, client_id = %client.client_id, subject = %grant.subject, family = %family_id, grant_type = grant.grant_type, "grant issued without a browser");
    Ok(TokenResponse::bearer(access.secret, grant.expires_in, grant.scope.to_string(), None))
}
