//! `P/admin`: the operators' console, for the people `[admin]` names (by subject,
//! verified email or group, at one provider).
//!
//! - `GET P/admin`: the servers (upstream, how it is reached, provider), each with its
//!   recent health and a chart of its last hour (`services::history`);
//! - `GET P/admin/grants?subject=&client=&server=`: grants, newest first; `POST
//!   P/admin/grants/revoke` revokes one (`grant=ID`) or every active one matching the
//!   filter (`matching=1`);
//! - `GET P/admin/clients?q=`: registered clients; `POST P/admin/clients/delete`;
//! - `GET P/admin/audit?event=&subject=&trace=`: the latest events of the audit trail's
//!   file;
//! - `GET P/admin/login`: a login at the operators' provider.
//!
//! Without an operator's session a page sends the browser to log in, and a form is
//! refused (403); a user who is no operator is refused at the login (403), and an account
//! page session is no operator's session. Every answer extends the session by 15 idle
//! minutes (at most eight hours after the login); every form carries the session's CSRF
//! token; every action is audited with `"by": "admin"`.

mod audit_view;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use mcp_oauth_core::clock::utc;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::form::Params;
use mcp_oauth_store::GrantFilter;

use crate::account::{self, session::OPERATOR_MAX_SECS, session::Session};
use crate::cookies;
use crate::error::HttpError;
use crate::extract::{Browser, BrowserQuery, OAuthForm};
use crate::pages::{self, AdminGrant, AdminPage};
use crate::responses;
use crate::services::audit::Caller;
use crate::services::history::Minute;
use crate::settings::AdminSettings;
use crate::state::{App, AppState};

/// Rows a listing shows at most.
const LIST_LIMIT: i64 = 200;
const CSRF_PURPOSE: &str = "admin form";

/// Why a page is not shown: the console is off (404), or there is no operator's session
/// (to the login).
enum Away {
    Off(HttpError),
    LogIn(String),
}

impl Away {
    fn answer(self) -> Response {
        match self {
            Self::Off(e) => axum::response::IntoResponse::into_response(e),
            Self::LogIn(url) => responses::redirect(StatusCode::SEE_OTHER, &url),
        }
    }
}

/// The operator's session of a request to a page.
fn operator_for_page<'a>(app: &'a App, headers: &HeaderMap) -> Result<(Session, &'a AdminSettings), Away> {
    let admin = console(app).map_err(Away::Off)?;
    match session_of(app, headers) {
        Some(s) => Ok((s, admin)),
        None => Err(Away::LogIn(format!("{}/admin/login", app.settings.public_url))),
    }
}

/// The operator's session a form was posted in, with its CSRF token checked.
fn operator_for_form<'a>(
    app: &'a App,
    headers: &HeaderMap,
    form: &Params,
) -> Result<(Session, &'a AdminSettings), HttpError> {
    let admin = console(app)?;
    let session = session_of(app, headers).ok_or_else(|| {
        HttpError::forbidden_page(
            "Your operator session has ended (15 idle minutes). Open the console and log in again.",
        )
    })?;
    if !app.signer.verify(CSRF_PURPOSE, &[&session.id], form.get("csrf").unwrap_or_default()) {
        return Err(HttpError::forbidden_page("This form did not come from the console. Open it and try again."));
    }
    Ok((session, admin))
}

fn console(app: &App) -> Result<&AdminSettings, HttpError> {
    app.settings.admin.as_ref().ok_or_else(|| HttpError::not_found_page("This proxy has no operators' console."))
}

fn session_of(app: &App, headers: &HeaderMap) -> Option<Session> {
    let session =
        Session::open_operator(&app.keys, cookies::get(headers, &app.cookies.operator_session())?, app.now())?;
    // Named by the operators' rules when it began; a provider changed since is no longer theirs.
    app.settings.admin.as_ref().is_some_and(|a| a.provider == session.provider).then_some(session)
}

/// A page, with the session extended by this request.
fn page(app: &App, session: &Session, html: String) -> Response {
    let mut resp = responses::html(StatusCode::OK, html);
    extend(app, session, &mut resp);
    resp
}

fn extend(app: &App, session: &Session, resp: &mut Response) {
    let extended = session.extended(app.now());
    let cookie =
        app.cookies.set(&app.cookies.operator_session(), &extended.seal_operator(&app.keys), OPERATOR_MAX_SECS);
    resp.headers_mut().append(header::SET_COOKIE, cookie);
}

fn frame<'a>(app: &'a App, session: &'a Session, csrf: &'a str) -> AdminPage<'a> {
    AdminPage { prefix: app.settings.path_prefix(), operator: &session.subject, csrf_token: csrf }
}

pub async fn login(State(app): State<AppState>) -> Result<Response, HttpError> {
    let provider = console(&app)?.provider.clone();
    account::send_to_provider(&app, &provider, true).await
}

pub async fn overview(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let (session, _) = match operator_for_page(&app, &headers) {
        Ok(s) => s,
        Err(away) => return away.answer(),
    };
    let csrf = app.signer.sign(CSRF_PURPOSE, &[&session.id]);
    let servers: Vec<pages::AdminServer> = app
        .settings
        .servers
        .iter()
        .map(|s| pages::AdminServer {
            slug: s.slug.clone(),
            upstream: s.mcp_upstream.to_string(),
            provider: if s.provider.is_empty() {
                "(none: the upstream's own login)".to_owned()
            } else {
                s.provider.clone()
            },
            upstream_auth: s.upstream_auth.label().to_owned(),
            health: health(&app.history.last_hour(&s.slug)),
            last_hour: app
                .history
                .last_hour(&s.slug)
                .iter()
                .map(|m| [m.answers, m.errors, m.refusals, m.refreshes])
                .collect(),
        })
        .collect();
    page(&app, &session, pages::admin_overview(&frame(&app, &session, &csrf), &servers))
}

/// A server's recent health in words: its upstream over the last five minutes, its
/// provider's refreshes over the hour.
fn health(minutes: &[Minute]) -> Vec<String> {
    let recent = &minutes[minutes.len().saturating_sub(5)..];
    let (answers, errors, refusals) =
        recent.iter().fold((0, 0, 0), |(a, e, r), m| (a + m.answers, e + m.errors, r + m.refusals));
    let upstream = if minutes.is_empty() {
        "not sampled yet (a sample a minute)".to_owned()
    } else if answers == 0 {
        "upstream: no traffic in the last 5 minutes".to_owned()
    } else if errors * 2 >= answers {
        format!("upstream failing: {errors} of {answers} answers were 5xx in the last 5 minutes")
    } else {
        format!("upstream answering: {answers} answers, {errors} 5xx, {refusals} 401s in the last 5 minutes")
    };
    let (refreshes, failed) = minutes.iter().fold((0, 0), |(r, f), m| (r + m.refreshes, f + m.refresh_failures));
    vec![upstream, format!("provider: {refreshes} refreshes in the last hour, {failed} failed")]
}

fn grant_filter(params: &Params) -> GrantFilter {
    let given = |k: &str| params.get(k).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
    GrantFilter { grant_id: None, subject: given("subject"), client_id: given("client"), server: given("server") }
}

pub async fn grants(State(app): State<AppState>, headers: HeaderMap, BrowserQuery(params): BrowserQuery) -> Response {
    let (session, _) = match operator_for_page(&app, &headers) {
        Ok(s) => s,
        Err(away) => return away.answer(),
    };
    let filter = grant_filter(&params);
    let listed = match app.store.list_grants(&filter, LIST_LIMIT).await {
        Ok(listed) => listed,
        Err(e) => return axum::response::IntoResponse::into_response(HttpError::from(e).for_browser()),
    };
    let grants: Vec<AdminGrant> = listed
        .into_iter()
        .map(|g| AdminGrant {
            active: g.status == FamilyStatus::Active,
            status: g.status.as_str().to_owned(),
            id: g.id,
            server: g.server,
            client_id: g.client_id,
            subject: g.subject,
            scope: g.scope,
            created: utc(g.created_at),
            last_used: g.last_used_at.max(g.last_issued_at).map(utc),
        })
        .collect();
    let csrf = app.signer.sign(CSRF_PURPOSE, &[&session.id]);
    page(&app, &session, pages::admin_grants(&frame(&app, &session, &csrf), &filter, &grants))
}

pub async fn revoke_grants(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    OAuthForm(form, _): OAuthForm<Browser>,
) -> Result<Response, HttpError> {
    let (session, _) = operator_for_form(&app, &headers, &form)?;
    let targets = match (form.get("grant"), form.get("matching")) {
        (Some(id), None) => vec![GrantFilter { grant_id: Some(id.to_owned()), ..GrantFilter::default() }],
        (None, Some("1")) => {
            let filter = grant_filter(&form);
            if filter == GrantFilter::default() {
                return Err(HttpError::bad_request_page("Name the grants to revoke: a subject, a client or a server."));
            }
            let listed =
                app.store.list_grants(&filter, i64::MAX).await.map_err(|e| HttpError::from(e).for_browser())?;
            listed
                .into_iter()
                .filter(|g| g.status == FamilyStatus::Active)
                .map(|g| GrantFilter { grant_id: Some(g.id), ..filter.clone() })
                .collect()
        }
        _ => return Err(HttpError::bad_request_page("Choose one grant to revoke, or the grants matching a filter.")),
    };
    for target in targets {
        // Listed again for the audit event's details, in the statement's own terms.
        let Some(grant) = app.store.list_grants(&target, 1).await.map_err(|e| HttpError::from(e).for_browser())?.pop()
        else {
            continue;
        };
        if app.store.revoke_grants(&target, app.now()).await.map_err(|e| HttpError::from(e).for_browser())? == 1 {
            app.metrics.grant_revoked("admin");
            let event = app.event("grant.revoked").slug(&grant.server).client(&grant.client_id).grant(&grant.id);
            let event = event.subject(&grant.subject).by("admin").reason(format!("operator {}", session.subject));
            app.audit.record(event.from(&caller));
        }
    }
    let mut resp = responses::redirect(StatusCode::SEE_OTHER, &back_to(&app, "/admin/grants", &form));
    extend(&app, &session, &mut resp);
    Ok(resp)
}

/// `path` with the filter the form was posted from, so that the operator sees the result.
fn back_to(app: &App, path: &str, form: &Params) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for key in ["subject", "client", "server", "q"] {
        if let Some(v) = form.get(key).filter(|v| !v.is_empty()) {
            query.append_pair(key, v);
        }
    }
    let query = query.finish();
    let sep = if query.is_empty() { "" } else { "?" };
    format!("{}{path}{sep}{query}", app.settings.public_url)
}

pub async fn clients(State(app): State<AppState>, headers: HeaderMap, BrowserQuery(params): BrowserQuery) -> Response {
    let (session, _) = match operator_for_page(&app, &headers) {
        Ok(s) => s,
        Err(away) => return away.answer(),
    };
    let needle = params.get("q").map(str::trim).unwrap_or_default().to_lowercase();
    let listed = match app.store.list_clients().await {
        Ok(listed) => listed,
        Err(e) => return axum::response::IntoResponse::into_response(HttpError::from(e).for_browser()),
    };
    let clients: Vec<pages::AdminClient> = listed
        .into_iter()
        .filter(|r| {
            let name = r.client.metadata.client_name.as_deref().unwrap_or_default().to_lowercase();
            needle.is_empty() || r.client.client_id.to_lowercase().contains(&needle) || name.contains(&needle)
        })
        .take(LIST_LIMIT as usize)
        .map(|r| pages::AdminClient {
            server: r.server,
            name: r.client.metadata.client_name.clone().unwrap_or_default(),
            redirect_uris: r.client.metadata.redirect_uris.join(" "),
            confidential: r.client.secret_hash.is_some(),
            registered: utc(r.client.created_at),
            client_id: r.client.client_id,
        })
        .collect();
    let csrf = app.signer.sign(CSRF_PURPOSE, &[&session.id]);
    page(&app, &session, pages::admin_clients(&frame(&app, &session, &csrf), &needle, &clients))
}

pub async fn delete_client(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    OAuthForm(form, _): OAuthForm<Browser>,
) -> Result<Response, HttpError> {
    let (session, _) = operator_for_form(&app, &headers, &form)?;
    let client_id = form.get("client_id").ok_or_else(|| HttpError::bad_request_page("Name the client to delete."))?;
    if app.store.delete_client(client_id, app.now()).await.map_err(|e| HttpError::from(e).for_browser())? > 0 {
        let event = app.event("client.deleted").client(client_id).by("admin");
        app.audit.record(event.reason(format!("operator {}", session.subject)).from(&caller));
    }
    let mut resp = responses::redirect(StatusCode::SEE_OTHER, &back_to(&app, "/admin/clients", &form));
    extend(&app, &session, &mut resp);
    Ok(resp)
}

pub async fn audit(State(app): State<AppState>, headers: HeaderMap, BrowserQuery(params): BrowserQuery) -> Response {
    let (session, admin) = match operator_for_page(&app, &headers) {
        Ok(s) => s,
        Err(away) => return away.answer(),
    };
    let filter = audit_view::Filter {
        event: params.get("event").filter(|v| !v.is_empty()).map(str::to_owned),
        subject: params.get("subject").filter(|v| !v.is_empty()).map(str::to_owned),
        trace: params.get("trace").filter(|v| !v.is_empty()).map(str::to_owned),
    };
    let events = admin.audit_path.as_deref().map(|path| audit_view::latest(path, &filter, LIST_LIMIT as usize));
    let csrf = app.signer.sign(CSRF_PURPOSE, &[&session.id]);
    let given = [filter.event.as_deref(), filter.subject.as_deref(), filter.trace.as_deref()];
    page(&app, &session, pages::admin_audit(&frame(&app, &session, &csrf), given, events.as_ref()))
}

pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    OAuthForm(form, _): OAuthForm<Browser>,
) -> Result<Response, HttpError> {
    operator_for_form(&app, &headers, &form)?;
    let mut resp = responses::redirect(StatusCode::SEE_OTHER, &format!("{}/admin", app.settings.public_url));
    resp.headers_mut().append(header::SET_COOKIE, app.cookies.clear(&app.cookies.operator_session()));
    Ok(resp)
}
