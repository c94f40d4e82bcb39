//! `P/account`: where a user sees the MCP clients that hold access to their account, and
//! takes it back.
//!
//! - `GET P/account`: the user's connections across every server whose users log in at
//!   the provider they logged in with; without a session, the way to log in;
//! - `GET P/account/login?provider=NAME`: a login at that provider, through the callback
//!   every login shares (`P/oauth/callback`, which hands it to [`finish_login`]);
//! - `POST P/account/revoke` (`grant=ID` or `all=1`) and `POST P/account/logout`, each
//!   with the form's CSRF token.
//!
//! The operators' console (`admin`) logs in the same way, to a session of its own.
//!
//! The user is known by the provider's subject, as grants are. Subjects are the
//! provider's own: a connection is listed only on servers whose users log in at the
//! provider of the session, so two providers' users with the same id never see each
//! other's. Revoking ends the grant as the command line does, in one conditional
//! statement that also names the subject (a grant id of another user revokes nothing);
//! running proxies refuse its tokens within two seconds, and its open streams end.

pub mod session;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::pkce;
use mcp_oauth_core::token::{TokenKind, mint, random_b64};
use mcp_oauth_store::{GrantFilter, GrantSummary};

use crate::cookies;
use crate::error::HttpError;
use crate::extract::{Browser, BrowserQuery, OAuthForm};
use crate::pages::{self, AccountConnection};
use crate::provider_login;
use crate::responses;
use crate::services::audit::Caller;
use crate::settings::ServerSettings;
use crate::state::{App, AppState};
use session::{LOGIN_TTL_SECS, Login, OPERATOR_MAX_SECS, SESSION_TTL_SECS, Session};

/// Connections listed per server, newest first: more than a person can read on a page.
const LIST_LIMIT: i64 = 200;
const CSRF_PURPOSE: &str = "account form";

pub async fn page(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, HttpError> {
    let Some(session) = session_of(&app, &headers) else {
        return Ok(choose_login(&app));
    };
    let mut connections = Vec::new();
    for (server, grant) in active_grants(&app, &session).await? {
        connections.push(connection(&app, server, grant).await);
    }
    let csrf = app.signer.sign(CSRF_PURPOSE, &[&session.id]);
    let page = pages::Account {
        provider: &session.provider,
        subject: &session.subject,
        connections: &connections,
        csrf_token: &csrf,
        prefix: app.settings.path_prefix(),
    };
    Ok(responses::html(StatusCode::OK, pages::account(&page)))
}

/// The providers this proxy's servers log in with, each once, in configuration order.
fn providers_in_use(app: &App) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    // A brokered server without a provider logs its users in at the MCP upstream's own
    // authorization server only: the pages have no login to offer for it.
    for server in app.settings.servers.iter().filter(|s| !s.provider.is_empty()) {
        if !names.contains(&server.provider.as_str()) {
            names.push(&server.provider);
        }
    }
    names
}

/// No session: straight to the one provider, or a choice between several.
fn choose_login(app: &App) -> Response {
    let login_url = |provider: &str| {
        let query: String =
            url::form_urlencoded::Serializer::new(String::new()).append_pair("provider", provider).finish();
        format!("{}/account/login?{query}", app.settings.public_url)
    };
    match providers_in_use(app).as_slice() {
        [one] => responses::redirect(StatusCode::SEE_OTHER, &login_url(one)),
        many => {
            let choices: Vec<(&str, String)> = many.iter().map(|p| (*p, login_url(p))).collect();
            responses::html(StatusCode::OK, pages::account_login(&choices))
        }
    }
}

pub async fn start_login(
    State(app): State<AppState>,
    BrowserQuery(params): BrowserQuery,
) -> Result<Response, HttpError> {
    let name = params.get("provider").unwrap_or_default();
    if !providers_in_use(&app).contains(&name) {
        return Err(HttpError::not_found_page("There is no such identity provider here."));
    }
    send_to_provider(&app, name, false).await
}

/// A login at provider `name` (one a server uses: the callback is registered there), for
/// the account page or, `for_console`, the operators' console.
pub async fn send_to_provider(app: &App, name: &str, for_console: bool) -> Result<Response, HttpError> {
    let provider =
        app.providers.get(name).ok_or_else(|| HttpError::not_found_page("There is no such identity provider here."))?;
    let state = mint(TokenKind::UpstreamState).secret;
    let verifier = pkce::new_verifier();
    let nonce = provider.wants_nonce().then(|| random_b64(16));
    let login = Login {
        provider: name.to_owned(),
        state: state.clone(),
        verifier: verifier.clone(),
        nonce: nonce.clone(),
        expires_at: app.now() + LOGIN_TTL_SECS,
        for_console,
    };
    let url = provider
        .authorization_url(
            &app.settings.callback_url(),
            &state,
            &pkce::s256_challenge(&verifier),
            nonce.as_deref(),
            None,
        )
        .await
        .map_err(|e| HttpError::from(e).for_browser())?;
    let mut resp = responses::redirect(StatusCode::FOUND, &url);
    let cookie = app.cookies.set(&app.cookies.account_login(), &login.seal(&app.keys), LOGIN_TTL_SECS);
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// The account page's login this callback answers, if it is one: the browser holds its
/// cookie, and the provider's answer carries its `state`.
pub fn login_answered(app: &App, headers: &HeaderMap, state: &str) -> Option<Login> {
    let value = cookies::get(headers, &app.cookies.account_login())?;
    Login::open(&app.keys, value, state, app.now())
}

/// The provider's answer to a login of the account page or of the operators' console:
/// a session, and back to the page.
pub async fn finish_login(app: &App, login: Login, params: &Params, caller: &Caller) -> Result<Response, HttpError> {
    let provider = app
        .providers
        .get(&login.provider)
        .ok_or_else(|| HttpError::not_found_page("The identity provider of this login is no longer configured."))?;
    let (_tokens, who) = provider_login::redeem(app, provider, (&login.verifier, login.nonce.as_deref()), params)
        .await
        .map_err(HttpError::for_browser)?;
    // The provider's tokens are not kept: the pages need to know who, not to act as them.
    let now = app.now();
    let (page, cookie) = if login.for_console {
        let operators = app.settings.admin.as_ref().filter(|a| a.provider == login.provider);
        if !operators.is_some_and(|a| a.operators.allows(&who)) {
            tracing::info!(subject = %who.subject, "console login refused: not an operator");
            app.audit.record(app.event("admin.denied").subject(&who.subject).from(caller));
            return Err(HttpError::forbidden_page("Your account is not one of this proxy's operators."));
        }
        app.audit.record(app.event("admin.login").subject(&who.subject).from(caller));
        let session = Session::operator(&login.provider, &who.subject, now);
        (
            "/admin",
            app.cookies.set(&app.cookies.operator_session(), &session.seal_operator(&app.keys), OPERATOR_MAX_SECS),
        )
    } else {
        app.audit.record(app.event("account.login").subject(&who.subject).from(caller).reason(login.provider.clone()));
        let session = Session::new(&login.provider, &who.subject, now);
        ("/account", app.cookies.set(&app.cookies.account_session(), &session.seal(&app.keys), SESSION_TTL_SECS))
    };
    let mut resp = responses::redirect(StatusCode::SEE_OTHER, &format!("{}{page}", app.settings.public_url));
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, cookie);
    h.append(header::SET_COOKIE, app.cookies.clear(&app.cookies.account_login()));
    Ok(resp)
}

pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    OAuthForm(form, _): OAuthForm<Browser>,
) -> Result<Response, HttpError> {
    let session = checked_session(&app, &headers, &form)?;
    let grants = active_grants(&app, &session).await?;
    let chosen: Vec<_> = match (form.get("grant"), form.get("all")) {
        (Some(id), None) => grants.into_iter().filter(|(_, g)| g.id == id).collect(),
        (None, Some("1")) => grants,
        _ => return Err(HttpError::bad_request_page("Choose one connection to revoke, or all of them.")),
    };
    for (server, grant) in chosen {
        let filter = GrantFilter {
            grant_id: Some(grant.id.clone()),
            subject: Some(session.subject.clone()),
            server: Some(server.slug.clone()),
            client_id: None,
        };
        if app.store.revoke_grants(&filter, app.now()).await.map_err(|e| HttpError::from(e).for_browser())? == 1 {
            app.metrics.grant_revoked("user");
            let event = app.event("grant.revoked").slug(&server.slug).client(&grant.client_id).grant(&grant.id);
            app.audit.record(event.subject(&session.subject).by("user").from(&caller));
        }
    }
    Ok(responses::redirect(StatusCode::SEE_OTHER, &format!("{}/account", app.settings.public_url)))
}

pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form, _): OAuthForm<Browser>,
) -> Result<Response, HttpError> {
    checked_session(&app, &headers, &form)?;
    let mut resp = responses::redirect(StatusCode::SEE_OTHER, &format!("{}/account", app.settings.public_url));
    resp.headers_mut().append(header::SET_COOKIE, app.cookies.clear(&app.cookies.account_session()));
    Ok(resp)
}

fn session_of(app: &App, headers: &HeaderMap) -> Option<Session> {
    Session::open(&app.keys, cookies::get(headers, &app.cookies.account_session())?, app.now())
}

/// The session a form was posted in, if its CSRF token is that session's. A form from
/// another site arrives without the session cookie (`SameSite=Lax`) and without the
/// token; either is refused.
fn checked_session(app: &App, headers: &HeaderMap, form: &Params) -> Result<Session, HttpError> {
    let session = session_of(app, headers)
        .ok_or_else(|| HttpError::forbidden_page("Your session has ended. Open your account page and log in again."))?;
    let token = form.get("csrf").unwrap_or_default();
    if !app.signer.verify(CSRF_PURPOSE, &[&session.id], token) {
        return Err(HttpError::forbidden_page("This form did not come from your account page. Open it and try again."));
    }
    Ok(session)
}

/// The session's user's active grants on every server of the session's provider.
async fn active_grants<'a>(
    app: &'a App,
    session: &Session,
) -> Result<Vec<(&'a ServerSettings, GrantSummary)>, HttpError> {
    let mut all = Vec::new();
    for server in app.settings.servers.iter().filter(|s| s.provider == session.provider) {
        let filter = GrantFilter {
            subject: Some(session.subject.clone()),
            server: Some(server.slug.clone()),
            ..GrantFilter::default()
        };
        let grants = app.store.list_grants(&filter, LIST_LIMIT).await.map_err(|e| HttpError::from(e).for_browser())?;
        all.extend(grants.into_iter().filter(|g| g.status == FamilyStatus::Active).map(|g| (server.as_ref(), g)));
    }
    all.sort_by_key(|(_, g)| std::cmp::Reverse(g.created_at));
    Ok(all)
}

/// One grant as the page shows it: the client as it names itself (or as the operator
/// vouches for it), where, what, since when.
async fn connection(app: &App, server: &ServerSettings, grant: GrantSummary) -> AccountConnection {
    // A client that cannot be looked up now (a metadata document unreachable) is shown
    // by its id: the page must list every grant, to let the user revoke it.
    let client = app.clients.find(&server.slug, &grant.client_id).await.ok().flatten();
    let name = client.as_ref().and_then(|c| c.metadata.client_name.clone());
    AccountConnection {
        grant_id: grant.id,
        server: server.slug.clone(),
        client_name: name.unwrap_or_else(|| grant.client_id.clone()),
        verified_host: client.as_ref().and_then(|c| app.clients.verified_host(c)),
        client_id: grant.client_id,
        scope: grant.scope,
        connected: mcp_oauth_core::clock::utc(grant.created_at),
        last_used: grant.last_used_at.max(grant.last_issued_at).map(mcp_oauth_core::clock::utc),
    }
}
