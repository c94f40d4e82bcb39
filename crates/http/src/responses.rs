//! How answers leave the proxy: OAuth JSON errors, token JSON, HTML pages and redirects,
//! each with the headers its kind needs. Handlers build answers only through here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::html::escape;

/// An OAuth error as a JSON answer (RFC 6749 §5.2). Never cached.
pub struct JsonError(pub OAuthError);

impl From<OAuthError> for JsonError {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = no_store_json(status, e.to_json());
        if e.code == mcp_oauth_core::OAuthErrorCode::InvalidClient {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mcp-oauth-proxy\""));
        }
        if let Some(secs) = e.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// JSON that must never be stored by a cache: tokens, errors, registrations.
pub fn no_store_json(status: StatusCode, body: serde_json::Value) -> Response {
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}dt{font-weight:600;margin-top:.6rem}dd{margin:0}code{background:#f3f3f3;padding:0 .2rem}\
button{font-size:1rem;padding:.5rem 1.2rem;margin-right:.6rem;border-radius:4px;border:1px solid #888;background:#f4f4f4}\
button[value=approve]{background:#1a5fb4;border-color:#1a5fb4;color:#fff}.note{color:#a40}small{color:#555}";

/// An HTML page; `body_html` must already be escaped where it echoes input.
pub fn html_page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>{body_html}</body></html>",
        escape(title)
    );
    let mut resp = (status, axum::response::Html(page)).into_response();
    harden_html(&mut resp);
    resp
}

/// An error shown to the person in the browser, used when there is no client redirect
/// URI we may trust (unknown client, mismatched redirect URI, lost login session).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    html_page(status, "Authorization error", &format!("<h1>Authorization error</h1><p>{}</p>", escape(message)))
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
