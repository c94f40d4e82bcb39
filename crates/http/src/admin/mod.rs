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
mod operator;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::clock::utc;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::form::Params;
use mcp_oauth_store::{GrantFilter, StoreError};

use crate::account;
use crate::error::HttpError;
use crate::extract::BrowserQuery;
use crate::pages::{self, AdminGrant};
use crate::responses;
use crate::services::audit::Caller;
use crate::services::history::Minute;
use crate::state::AppState;
use operator::{OperatorForm, OperatorPage, back_to, console, page};

/// Rows a listing shows at most.
const LIST_LIMIT: i64 = 200;

pub async fn login(State(app): State<AppState>) -> Result<Response, HttpError> {
    let provider = console(&app)?.provider.clone();
    account::send_to_provider(&app, &provider, true).await
}

pub async fn overview(State(app): State<AppState>, OperatorPage(session): OperatorPage) -> Response {
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
            upstream_auth: match app.brokers.describe(s) {
                Some(broker) => format!("{}: {broker}", s.upstream_auth.label()),
                None => s.upstream_auth.label().to_owned(),
            },
            health: health(&app.history.last_hour(&s.slug)),
            last_hour: app
                .history
                .last_hour(&s.slug)
                .iter()
                .map(|m| [m.answers, m.errors, m.refusals, m.refreshes])
                .collect(),
        })
        .collect();
    page(&app, &session, |frame| pages::admin_overview(frame, &servers))
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

pub async fn grants(
    State(app): State<AppState>,
    OperatorPage(session): OperatorPage,
    BrowserQuery(params): BrowserQuery,
) -> Response {
    let filter = grant_filter(&params);
    let listed = match app.store.list_grants(&filter, LIST_LIMIT).await {
        Ok(listed) => listed,
        Err(e) => return failed(e).into_response(),
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
    page(&app, &session, |frame| pages::admin_grants(frame, &filter, &grants))
}

pub async fn revoke_grants(
    State(app): State<AppState>,
    caller: Caller,
    OperatorForm { session, form }: OperatorForm,
) -> Result<Response, HttpError> {
    let targets = match (form.get("grant"), form.get("matching")) {
        (Some(id), None) => vec![GrantFilter { grant_id: Some(id.to_owned()), ..GrantFilter::default() }],
        (None, Some("1")) => {
            let filter = grant_filter(&form);
            if filter == GrantFilter::default() {
                return Err(HttpError::bad_request_page("Name the grants to revoke: a subject, a client or a server."));
            }
            let listed = app.store.list_grants(&filter, i64::MAX).await.map_err(failed)?;
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
        let Some(grant) = app.store.list_grants(&target, 1).await.map_err(failed)?.pop() else { continue };
        if app.store.revoke_grants(&target, app.now()).await.map_err(failed)? == 1 {
            app.metrics.grant_revoked("admin");
            let event = app.event("grant.revoked").slug(&grant.server).client(&grant.client_id).grant(&grant.id);
            let event = event.subject(&grant.subject).by("admin").reason(format!("operator {}", session.subject));
            app.audit.record(event.from(&caller));
        }
    }
    Ok(back_to(&app, &session, "/admin/grants", &form))
}

pub async fn clients(
    State(app): State<AppState>,
    OperatorPage(session): OperatorPage,
    BrowserQuery(params): BrowserQuery,
) -> Response {
    let needle = params.get("q").map(str::trim).unwrap_or_default().to_lowercase();
    let listed = match app.store.list_clients().await {
        Ok(listed) => listed,
        Err(e) => return failed(e).into_response(),
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
    page(&app, &session, |frame| pages::admin_clients(frame, &needle, &clients))
}

pub async fn delete_client(
    State(app): State<AppState>,
    caller: Caller,
    OperatorForm { session, form }: OperatorForm,
) -> Result<Response, HttpError> {
    let client_id = form.get("client_id").ok_or_else(|| HttpError::bad_request_page("Name the client to delete."))?;
    if app.store.delete_client(client_id, app.now()).await.map_err(failed)? > 0 {
        let event = app.event("client.deleted").client(client_id).by("admin");
        app.audit.record(event.reason(format!("operator {}", session.subject)).from(&caller));
    }
    Ok(back_to(&app, &session, "/admin/clients", &form))
}

pub async fn audit(
    State(app): State<AppState>,
    OperatorPage(session): OperatorPage,
    BrowserQuery(params): BrowserQuery,
) -> Response {
    let filter = audit_view::Filter {
        event: params.get("event").filter(|v| !v.is_empty()).map(str::to_owned),
        subject: params.get("subject").filter(|v| !v.is_empty()).map(str::to_owned),
        trace: params.get("trace").filter(|v| !v.is_empty()).map(str::to_owned),
    };
    let audit_path = app.settings.admin.as_ref().and_then(|a| a.audit_path.as_deref());
    let events = audit_path.map(|path| audit_view::latest(path, &filter, LIST_LIMIT as usize));
    let given = [filter.event.as_deref(), filter.subject.as_deref(), filter.trace.as_deref()];
    page(&app, &session, |frame| pages::admin_audit(frame, given, events.as_ref()))
}

pub async fn logout(State(app): State<AppState>, _: OperatorForm) -> Result<Response, HttpError> {
    let mut resp = responses::redirect(StatusCode::SEE_OTHER, &format!("{}/admin", app.settings.public_url));
    resp.headers_mut().append(header::SET_COOKIE, app.cookies.clear(&app.cookies.operator_session()));
    Ok(resp)
}

/// A store failure, as the console's error page.
fn failed(e: StoreError) -> HttpError {
    HttpError::from(e).for_browser()
}
