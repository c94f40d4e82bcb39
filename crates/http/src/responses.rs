//! The shapes of successful answers, each with the headers its kind needs: JSON that no
//! cache may keep, redirects, and HTML (rendered in `pages`). Errors go through `error`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// JSON that must never be stored by a cache: tokens, errors, registrations.
pub fn no_store_json(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// Headers for every HTML answer: no framing (clickjacking on the consent page), no
/// referrer (the URL carries codes and state), no script, no caching.
fn harden_html(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// A rendered HTML page.
pub fn html(status: StatusCode, page: String) -> Response {
    let mut resp = (status, axum::response::Html(page)).into_response();
    harden_html(&mut resp);
    resp
}

/// A redirect. `303 See Other` after a form POST; `302 Found` for authorization
/// responses to GET requests (RFC 6749 §4.1.2).
pub fn redirect(status: StatusCode, location: &str) -> Response {
    let mut resp = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    harden_html(&mut resp);
    resp
}
