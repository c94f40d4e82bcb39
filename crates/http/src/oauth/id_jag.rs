//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with an enterprise IdP's
//! Identity Assertion JWT Authorization Grant (ID-JAG) as the `assertion` (SEP-990): the
//! IdP has decided that this user may use this client with this server; the server's own
//! access rules still decide too. Every check is `mcp_oauth_core::jwt_grant`'s; the `jti`
//! is remembered in the store until the assertion expires, so a replay is refused at every
//! replica. Any refusal is `invalid_grant`, its reason in the log only; the assertion
//! itself is never logged or stored.
//!
//! No refresh token: each new access token goes back through the IdP, whose policy (and
//! whether the user is still employed) then decides again; the access token lives
//! `tokens.access_ttl_secs`.

use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::jwt_grant::{self, Expected, claimed_issuer};
use mcp_oauth_core::scope::Scopes;
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_store::AssertionUse;

use super::browserless::{self, Browserless};
use super::token_response::TokenResponse;
use crate::error::HttpError;
use crate::services::audit::Caller;
use crate::settings::{EnterpriseIdp, ServerSettings};
use crate::state::App;

/// Clock skew tolerated between the IdP and the proxy.
const LEEWAY_SECS: i64 = 60;
/// The most unexpired assertion ids remembered per IdP: past it, assertions are refused
/// (and a warning logged) rather than the table grown. Far above honest use: at five
/// minutes an assertion, 100 000 is over 300 token requests a second from one IdP.
pub const USED_ASSERTIONS_PER_ISSUER: i64 = 100_000;

pub async fn jwt_bearer(
    app: &App,
    server: &ServerSettings,
    client: &Client,
    params: &Params,
    caller: &Caller,
) -> Result<TokenResponse, HttpError> {
    let assertion = params.require("assertion")?;
    let refused = |reason: &dyn std::fmt::Display| {
        tracing::info!(server = %server.slug, client_id = %client.client_id, %reason, "ID-JAG refused");
        HttpError::from(OAuthError::invalid_grant("the assertion is not valid for this client and server"))
    };
    if server.upstream_auth.needs_provider_token() {
        return Err(refused(&"this server sends provider tokens, which an ID-JAG's grant has none of"));
    }
    let iss = claimed_issuer(assertion).ok_or_else(|| refused(&"no readable iss"))?;
    let idp =
        app.enterprise_idps.for_server(server, &iss).ok_or_else(|| refused(&"iss is not an IdP of this server"))?;
    let settings = &idp.settings;
    if settings.clients.as_ref().is_some_and(|c| !c.contains(&client.client_id)) {
        return Err(refused(&format_args!(
            "the client may not present enterprise_idps.{}'s assertions",
            settings.name
        )));
    }
    browserless::check_resource(app, server, params)?;
    let (audience, resource) = (app.settings.issuer(&server.slug), app.settings.resource(&server.slug));
    let now = app.now();
    let expected = Expected {
        issuer: &settings.issuer,
        audience: &audience,
        resource: &resource,
        client_id: &client.client_id,
        now,
        leeway_secs: LEEWAY_SECS,
        max_lifetime_secs: settings.max_lifetime_secs,
        email_claim: &settings.email_claim,
        groups_claim: &settings.groups_claim,
    };
    let jag = app.enterprise_idps.verify(idp, assertion, &expected).await.map_err(|e| refused(&e))?;
    let subject = grant_subject(app, server, settings, &jag.subject);
    if let Some(rules) = &server.access {
        let who = mcp_oauth_upstream::Identity {
            subject: subject.clone(),
            email: jag.identity.verified_email().map(str::to_owned),
            groups: jag.identity.groups.clone(),
            name: None,
        };
        if !rules.allows(&who) {
            return Err(refused(&format_args!("the access rules do not let subject {subject} in")));
        }
    }
    let scope = granted_scope(server, client, params.get("scope"), jag.scope.as_ref())?;
    // Last, so that an assertion refused for another reason can still be used once it is
    // fixed (a configuration change): only an accepted one is spent.
    let remember_until = jag.expires_at + LEEWAY_SECS;
    let jti = TokenHash::of(&jag.jti);
    match app.store.use_assertion(&settings.issuer, &jti, remember_until, now, USED_ASSERTIONS_PER_ISSUER).await? {
        AssertionUse::First => {}
        AssertionUse::Replay => return Err(refused(&"jti was already used")),
        AssertionUse::Full => {
            tracing::warn!(idp = %settings.name, cap = USED_ASSERTIONS_PER_ISSUER, "too many unexpired assertions of one IdP are remembered; refusing more until they expire");
            return Err(refused(&"the IdP's assertion ids are at their bound"));
        }
    }
    let grant = Browserless {
        subject,
        identity: jag.identity,
        scope,
        grant_type: jwt_grant::JWT_BEARER,
        idp: Some(settings.name.clone()),
        expires_in: app.settings.tokens.access_ttl_secs,
    };
    browserless::issue(app, server, client, grant, caller).await
}

/// Who an ID-JAG's grant speaks for. A `sub` is unique only at its issuer (OpenID Connect
/// Core §2; an ID-JAG's is the IdP's, as in the id_tokens of its single sign-on), while a
/// server's grants, access rules, account page and identity assertions know one namespace
/// of subjects, its provider's. So the IdP's `sub` is kept as it is when the IdP *is* the
/// server's provider (one user, one subject, whichever way they came), and is otherwise
/// `idp:<name>:<sub>`, so that no IdP can speak for a user of the provider, or of another
/// IdP, who has the same id. (Client grants are `client:<id>`; provider subjects carry no
/// such prefix.)
fn grant_subject(app: &App, server: &ServerSettings, idp: &EnterpriseIdp, sub: &str) -> String {
    let is_provider =
        app.providers.get(&server.provider).is_some_and(|p| p.settings().issuer.as_ref() == Some(&idp.issuer));
    if is_provider { sub.to_owned() } else { format!("idp:{}:{sub}", idp.name) }
}

/// SEP-990 §7.2.1: the intersection of the requested scopes and the asserted ones (within
/// the server's, and the client's when it is limited); nothing requested: the asserted
/// ones, or the server's default when the IdP said nothing of scopes.
fn granted_scope(
    server: &ServerSettings,
    client: &Client,
    requested: Option<&str>,
    asserted: Option<&Scopes>,
) -> Result<Scopes, OAuthError> {
    let allowed = client.metadata.scope.as_deref().map(Scopes::parse).transpose()?;
    let within = |s: &&str| {
        server.scopes.iter().any(|x| x == *s)
            && allowed.as_ref().is_none_or(|a| a.iter().any(|x| x == *s))
            && asserted.is_none_or(|a| a.iter().any(|x| x == *s))
    };
    let requested = requested.map(Scopes::parse).transpose()?.filter(|s| !s.is_empty());
    let kept = match (&requested, asserted) {
        (Some(requested), _) => Scopes::from_list(requested.iter().filter(within)),
        (None, Some(asserted)) => Scopes::from_list(asserted.iter().filter(within)),
        (None, None) => Scopes::from_list(server.default_scopes.iter().filter(within)),
    };
    if kept.is_empty() {
        return Err(OAuthError::invalid_scope("none of the requested scopes can be granted"));
    }
    Ok(kept)
}
