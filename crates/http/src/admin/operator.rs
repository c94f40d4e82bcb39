//! Who is at the console: the extractors every console route opens with, and the two
//! ways its answers end (a page, or back to a page after a form), each extending the
//! operator's session by this request.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::form::Params;

use crate::account::session::{OPERATOR_MAX_SECS, Session};
use crate::cookies;
use crate::error::HttpError;
use crate::extract::{Browser, OAuthForm};
use crate::pages::AdminPage;
use crate::responses;
use crate::settings::AdminSettings;
use crate::state::{App, AppState};

const CSRF_PURPOSE: &str = "admin form";

/// An operator's request for a page. Without the console: 404; without an operator's
/// session: to the login.
pub struct OperatorPage(pub Session);

impl FromRequestParts<AppState> for OperatorPage {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        console(app).map_err(IntoResponse::into_response)?;
        match session_of(app, &parts.headers) {
            Some(session) => Ok(Self(session)),
            None => {
                let login = format!("{}/admin/login", app.settings.public_url);
                Err(responses::redirect(StatusCode::SEE_OTHER, &login))
            }
        }
    }
}

/// A form an operator posted from the console: their session, and the form, whose CSRF
/// token is the session's. Without either: 403 (a form is never sent to log in first:
/// what it asked for would be lost, or done unasked).
pub struct OperatorForm {
    pub session: Session,
    pub form: Params,
}

impl FromRequest<AppState> for OperatorForm {
    type Rejection = HttpError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, HttpError> {
        console(app)?;
        let session = session_of(app, req.headers()).ok_or_else(|| {
            HttpError::forbidden_page(
                "Your operator session has ended (15 idle minutes). Open the console and log in again.",
            )
        })?;
        let OAuthForm(form, _) = OAuthForm::<Browser>::from_request(req, app).await?;
        if !app.signer.verify(CSRF_PURPOSE, &[&session.id], form.get("csrf").unwrap_or_default()) {
            return Err(HttpError::forbidden_page("This form did not come from the console. Open it and try again."));
        }
        Ok(Self { session, form })
    }
}

/// The console's settings; 404 when this proxy has none.
pub fn console(app: &App) -> Result<&AdminSettings, HttpError> {
    app.settings.admin.as_ref().ok_or_else(|| HttpError::not_found_page("This proxy has no operators' console."))
}

fn session_of(app: &App, headers: &HeaderMap) -> Option<Session> {
    let session =
        Session::open_operator(&app.keys, cookies::get(headers, &app.cookies.operator_session())?, app.now())?;
    // Named by the operators' rules when it began; a provider changed since is no longer theirs.
    app.settings.admin.as_ref().is_some_and(|a| a.provider == session.provider).then_some(session)
}

/// A console page `html` builds in the frame (the operator, the forms' CSRF token).
pub fn page(app: &App, session: &Session, html: impl FnOnce(&AdminPage) -> String) -> Response {
    let csrf = app.signer.sign(CSRF_PURPOSE, &[&session.id]);
    let frame = AdminPage { prefix: app.settings.path_prefix(), operator: &session.subject, csrf_token: &csrf };
    let mut resp = responses::html(StatusCode::OK, html(&frame));
    extend(app, session, &mut resp);
    resp
}

/// After a form: back to the console's `path`, with the filter the form was posted from,
/// so that the operator sees the result.
pub fn back_to(app: &App, session: &Session, path: &str, form: &Params) -> Response {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for key in ["subject", "client", "server", "q"] {
        if let Some(v) = form.get(key).filter(|v| !v.is_empty()) {
            query.append_pair(key, v);
        }
    }
    let query = query.finish();
    let sep = if query.is_empty() { "" } else { "?" };
    let mut resp =
        responses::redirect(StatusCode::SEE_OTHER, &format!("{}{path}{sep}{query}", app.settings.public_url));
    extend(app, session, &mut resp);
    resp
}

fn extend(app: &App, session: &Session, resp: &mut Response) {
    let extended = session.extended(app.now());
    let cookie =
        app.cookies.set(&app.cookies.operator_session(), &extended.seal_operator(&app.keys), OPERATOR_MAX_SECS);
    resp.headers_mut().append(header::SET_COOKIE, cookie);
}
