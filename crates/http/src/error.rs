//! The one error type of the HTTP layer, and the only way a handler answers with an error.
//!
//! Each variant is a kind of answer, not a cause: the same cause (the database is down)
//! is an OAuth JSON error at the token endpoint and an error page in the browser. Domain
//! errors come in through one `From` each; browser routes turn what would be JSON into a
//! page with [`HttpError::for_browser`]. Details that help an attacker or leak internals
//! go to the log at the conversion, never into the answer.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_core::{OAuthError, OAuthErrorCode};
use mcp_oauth_store::StoreError;
use mcp_oauth_upstream::UpstreamError;

use crate::responses::{no_store_json, redirect};
use crate::services::clients::LookupError;
use crate::services::identities::IdentityError;
use crate::services::limits::RateLimited;
use crate::services::mcp_client::SendError;
use crate::services::upstream_access::AccessError;
use crate::settings::{ServerSettings, Settings};
use crate::trace::quoting;
use mcp_oauth_core::scope::Scopes;

#[derive(Debug)]
pub enum HttpError {
    /// An OAuth error as JSON (RFC 6749 §5.2), with the status [`OAuthError::http_status`]
    /// gives it: the OAuth endpoints, and failures of the MCP endpoint that are not about
    /// its token (the database or the provider is unavailable).
    OAuth(OAuthError),
    /// The OAuth endpoint exists but not for this method.
    MethodNotAllowed { allow: &'static str },
    /// A JSON error outside OAuth's vocabulary: an unknown server (404), a body too slow
    /// (408), an MCP request too large (413), an MCP upstream that fails (502, 504). Built
    /// by the named constructors below, so that no route picks a status itself.
    Json { status: StatusCode, error: &'static str, description: String },
    /// A page for the person in the browser, when there is no client we may redirect to;
    /// with `Retry-After` when something is unavailable for a while.
    Page { status: StatusCode, message: String, retry_after: Option<u64> },
    /// An authorization error delivered to the client's verified redirect URI.
    Redirect { status: StatusCode, location: String },
    /// The MCP endpoint's bearer challenge (RFC 6750 §3, RFC 9728 §5.1).
    Challenge(Challenge),
    /// A JSON-RPC error for an MCP request refused before it went upstream (400).
    JsonRpc { id: serde_json::Value, code: i64, message: String },
    /// Over a limit on anonymous work: 429 with `Retry-After`, as JSON or, for a
    /// person's browser, as a page.
    RateLimited { retry_after: u64, page: bool },
}

/// What a `WWW-Authenticate: Bearer` challenge tells the client: where the authorization
/// server is, which scopes to ask for, and what was wrong with the token it sent.
#[derive(Debug)]
pub struct Challenge {
    pub resource_metadata: String,
    pub scope: String,
    /// `Some` only when a token was presented (RFC 6750 §3.1: no error code otherwise).
    pub invalid_token: Option<String>,
    /// A valid token without the scopes the request needs: 403, and `scope` names every
    /// scope it needs (step-up authorization, SEP-2350).
    pub insufficient_scope: bool,
}

impl HttpError {
    fn page(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page { status, message: message.into(), retry_after: None }
    }

    /// A page for a browser request that cannot be acted on and has no client to be sent
    /// back to (400).
    pub fn bad_request_page(message: impl Into<String>) -> Self {
        Self::page(StatusCode::BAD_REQUEST, message)
    }

    /// A page for a person the server's access rules do not let in (403).
    pub fn forbidden_page(message: impl Into<String>) -> Self {
        Self::page(StatusCode::FORBIDDEN, message)
    }

    /// A page for what is no longer there (404), such as the server of a login in progress.
    pub fn not_found_page(message: impl Into<String>) -> Self {
        Self::page(StatusCode::NOT_FOUND, message)
    }

    /// A page for a browser or network over a cap that time alone lifts (429), without a
    /// `Retry-After`: the page says what to do.
    pub fn too_many_page(message: impl Into<String>) -> Self {
        Self::page(StatusCode::TOO_MANY_REQUESTS, message)
    }

    /// The MCP endpoint's 401 for `server`; `why` when a token was presented and refused.
    pub fn challenge(settings: &Settings, server: &ServerSettings, why: Option<&str>) -> Self {
        Self::Challenge(Challenge {
            resource_metadata: settings.resource_metadata_url(&server.slug),
            scope: server.default_scopes.to_string(),
            invalid_token: why.map(str::to_owned),
            insufficient_scope: false,
        })
    }

    /// The MCP endpoint's 403 for a token that lacks scopes: `needed` names every scope the
    /// request needs; the client asks again for those and the ones it has.
    pub fn insufficient_scope(settings: &Settings, server: &ServerSettings, needed: &Scopes) -> Self {
        Self::Challenge(Challenge {
            resource_metadata: settings.resource_metadata_url(&server.slug),
            scope: needed.to_string(),
            invalid_token: None,
            insufficient_scope: true,
        })
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::Json { status: StatusCode::NOT_FOUND, error: "not_found", description: what.into() }
    }

    /// A request body larger than the route allows (413).
    pub fn too_large(limit: usize) -> Self {
        let description = format!("MCP request bodies are limited to {limit} bytes");
        Self::Json { status: StatusCode::PAYLOAD_TOO_LARGE, error: "request_too_large", description }
    }

    /// A request the OAuth endpoints could not read (its status is axum's rejection's).
    pub fn unreadable_body(status: StatusCode, description: String) -> Self {
        Self::Json { status, error: "invalid_request", description }
    }

    /// The user's provider token cannot be sent as the header the MCP upstream expects
    /// (502): the configured format makes an invalid header value of it.
    pub fn bad_upstream_token() -> Self {
        Self::gateway(StatusCode::BAD_GATEWAY, "bad_gateway", "the upstream token is not a valid header value")
    }

    /// The MCP upstream answered 401 to a server that sends no provider token
    /// (`upstream_auth = "identity"` or `"none"`): not the client's token failing, and
    /// nothing the provider can settle, so no challenge and no provider call (502): the
    /// upstream refuses what the proxy sends (`why`), which its operator must fix.
    pub fn upstream_refused_proxy(why: &str) -> Self {
        Self::gateway(StatusCode::BAD_GATEWAY, "upstream_rejected_credential", why)
    }

    /// An MCP upstream's answer that had to be read (to edit its tool lists) and could not
    /// be (502): `why` says what was wrong with it.
    pub fn upstream_unreadable(why: String) -> Self {
        Self::Json { status: StatusCode::BAD_GATEWAY, error: "upstream_unreadable", description: why }
    }

    fn gateway(status: StatusCode, error: &'static str, description: &str) -> Self {
        Self::Json { status, error, description: description.into() }
    }

    /// A request body that did not arrive within `body_read_timeout` (408). `error` is the
    /// code in the route's vocabulary: `invalid_request` at the OAuth endpoints, whose
    /// clients expect RFC 6749's codes, `request_timeout` at the MCP endpoint.
    pub fn body_too_slow(error: &'static str) -> Self {
        let description = "the request body did not arrive in time".into();
        Self::Json { status: StatusCode::REQUEST_TIMEOUT, error, description }
    }

    /// The same error, naming the login attempt's trace id for whoever reads it: a page,
    /// an OAuth error's description, a redirect's `error_description` (built by
    /// `ClientRedirect`, which quotes it itself).
    pub fn traced(self, trace_id: Option<&str>) -> Self {
        let Some(id) = trace_id else { return self };
        match self {
            Self::Page { status, message, retry_after } => {
                Self::Page { status, message: quoting(&message, Some(id)), retry_after }
            }
            Self::OAuth(mut e) => {
                e.description = quoting(&e.description, Some(id));
                Self::OAuth(e)
            }
            other => other,
        }
    }

    /// What went wrong, for a log line: never a URL (a redirect carries the client's
    /// `state`) or anything else the request carried.
    pub fn summary(&self) -> String {
        match self {
            Self::OAuth(e) => e.to_string(),
            Self::MethodNotAllowed { allow } => format!("method not allowed (allow {allow})"),
            Self::Json { status, error, description } => format!("{status} {error}: {description}"),
            Self::Page { status, message, .. } => format!("{status}: {message}"),
            Self::Redirect { status, .. } => format!("{status}: an error sent to the client's redirect URI"),
            Self::Challenge(c) if c.insufficient_scope => format!("insufficient scope: needs {}", c.scope),
            Self::Challenge(c) => format!("bearer challenge: {}", c.invalid_token.as_deref().unwrap_or("no token")),
            Self::JsonRpc { code, message, .. } => format!("JSON-RPC error {code}: {message}"),
            Self::RateLimited { retry_after, .. } => format!("rate limited for {retry_after} s"),
        }
    }

    /// The same error for a person in a browser: JSON becomes a page with its status and
    /// description; pages and redirects stay as they are.
    pub fn for_browser(self) -> Self {
        match self {
            Self::OAuth(e) => {
                let status = StatusCode::from_u16(e.http_status())
                    .ok()
                    .filter(StatusCode::is_server_error)
                    .unwrap_or(StatusCode::BAD_REQUEST);
                let message = if e.description.is_empty() { e.code.to_string() } else { e.description };
                Self::Page { status, message, retry_after: e.retry_after }
            }
            Self::Json { status, description, .. } => Self::Page { status, message: description, retry_after: None },
            Self::MethodNotAllowed { .. } => Self::page(StatusCode::METHOD_NOT_ALLOWED, "This method is not allowed."),
            Self::RateLimited { retry_after, .. } => Self::RateLimited { retry_after, page: true },
            other => other,
        }
    }
}

impl From<OAuthError> for HttpError {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

/// A storage failure: temporary when the database is unreachable (the client should
/// retry), a server error otherwise.
impl From<StoreError> for HttpError {
    fn from(e: StoreError) -> Self {
        Self::OAuth(match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "database unavailable");
                OAuthError::temporarily_unavailable("the database is unavailable; retry shortly", 1)
            }
            other => {
                tracing::error!(error = %other, "storage error");
                OAuthError::server_error("internal storage error")
            }
        })
    }
}

/// Over a limit on anonymous work: 429 as JSON (a browser route makes it a page with
/// [`HttpError::for_browser`]).
impl From<RateLimited> for HttpError {
    fn from(e: RateLimited) -> Self {
        Self::RateLimited { retry_after: e.retry_after, page: false }
    }
}

impl From<LookupError> for HttpError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::Refused(e) => e.into(),
            LookupError::Store(e) => e.into(),
        }
    }
}

/// A lookup failing outside a handler (as tests call it) answers as it would inside one.
impl IntoResponse for LookupError {
    fn into_response(self) -> Response {
        HttpError::from(self).into_response()
    }
}

/// A failure at the identity provider, as the client is told about it, wherever it
/// happens (starting a login, finishing it). Each kind (see `FailureKind`) has its answer:
/// the user refused ends the login, the proxy refused is a long wait for the operator, a
/// transient failure a short one; an answer that is not OAuth is a server error, as
/// retrying soon brings the same. The caller has logged the detail.
impl From<UpstreamError> for HttpError {
    fn from(e: UpstreamError) -> Self {
        Self::OAuth(match e {
            UpstreamError::Rejected { error, .. } => {
                OAuthError::access_denied(format!("the upstream identity provider refused the login ({error})"))
            }
            UpstreamError::Misconfigured(_) => OAuthError::temporarily_unavailable(
                "the upstream identity provider refused the proxy's request; try again later",
                30,
            ),
            UpstreamError::Unavailable(_) => {
                OAuthError::temporarily_unavailable("the upstream identity provider is unavailable; try again", 5)
            }
            UpstreamError::Protocol(_) => {
                OAuthError::server_error("the upstream identity provider answered unexpectedly")
            }
        })
    }
}

/// The MCP upstream did not answer (504) or could not be reached (502).
impl From<SendError> for HttpError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Timeout => {
                Self::gateway(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", "the MCP server did not answer in time")
            }
            SendError::Unreachable(_) => {
                Self::gateway(StatusCode::BAD_GATEWAY, "upstream_unreachable", "the MCP server is unreachable")
            }
        }
    }
}

/// No usable provider token for a grant. The MCP endpoint answers `NeedsLogin` with its
/// bearer challenge instead (see `mcp`); everywhere else it ends the client's grant.
/// `UpstreamRefused` is a 502 and not a challenge: the client's token is good, and a new
/// login would bring a token the provider already accepts to an MCP server refusing it.
impl From<AccessError> for HttpError {
    fn from(e: AccessError) -> Self {
        Self::OAuth(match e {
            AccessError::UpstreamRefused => {
                return Self::gateway(
                    StatusCode::BAD_GATEWAY,
                    "upstream_rejected_credential",
                    "the MCP server refused the user's provider credential, which the provider has not refused; \
                     the grant is kept",
                );
            }
            AccessError::NeedsLogin => OAuthError::invalid_grant("the upstream login has ended; authorize again"),
            AccessError::Unavailable(_) => {
                OAuthError::temporarily_unavailable("the upstream identity provider is unavailable; retry shortly", 5)
            }
            AccessError::Internal(_) => OAuthError::server_error("internal error"),
        })
    }
}

impl From<IdentityError> for HttpError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::Internal(_) => Self::OAuth(OAuthError::server_error("internal error")),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        match self {
            Self::OAuth(e) => oauth_json(&e),
            Self::MethodNotAllowed { allow } => {
                let mut resp = oauth_json(&OAuthError::invalid_request(format!("this endpoint accepts {allow} only")));
                *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
                resp
            }
            Self::Json { status, error, description } => {
                no_store_json(status, serde_json::json!({"error": error, "error_description": description}))
            }
            Self::Page { status, message, retry_after } => {
                let mut resp = crate::pages::error(status, &message);
                if let Some(secs) = retry_after {
                    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                resp
            }
            Self::Redirect { status, location } => redirect(status, &location),
            Self::Challenge(c) => c.into_response(),
            Self::JsonRpc { id, code, message } => no_store_json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
            ),
            Self::RateLimited { retry_after, page: true } => {
                let message = format!("Too many requests from this address. Try again in {retry_after} seconds.");
                let mut resp = crate::pages::error(StatusCode::TOO_MANY_REQUESTS, &message);
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                resp
            }
            Self::RateLimited { retry_after, page: false } => {
                // RFC 6749 has no code for this; `temporarily_unavailable` tells an OAuth
                // client to come back later, and 429 with `Retry-After` says when.
                let description = format!("too many requests; retry in {retry_after} seconds");
                let mut resp = oauth_json(&OAuthError::temporarily_unavailable(description, retry_after));
                *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                resp
            }
        }
    }
}

fn oauth_json(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = no_store_json(status, e.to_json());
    if e.code == OAuthErrorCode::InvalidClient {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"mcp-oauth-proxy\""));
    }
    if let Some(secs) = e.retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

impl IntoResponse for Challenge {
    fn into_response(self) -> Response {
        let mut value = format!("Bearer resource_metadata=\"{}\", scope=\"{}\"", self.resource_metadata, self.scope);
        if self.insufficient_scope {
            value.push_str(", error=\"insufficient_scope\"");
            let why = format!("this request needs the scopes {}", self.scope);
            let body =
                serde_json::json!({"error": "insufficient_scope", "error_description": why, "scope": self.scope});
            let mut resp = no_store_json(StatusCode::FORBIDDEN, body);
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return resp;
        }
        let body = match &self.invalid_token {
            Some(why) => {
                value.push_str(&format!(", error=\"invalid_token\", error_description=\"{}\"", why.replace('"', "'")));
                serde_json::json!({"error": "invalid_token", "error_description": why})
            }
            None => {
                serde_json::json!({"error": "unauthorized", "error_description": "a Bearer access token is required"})
            }
        };
        let mut resp = no_store_json(StatusCode::UNAUTHORIZED, body);
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_carry_their_status_and_headers() {
        let resp = HttpError::from(OAuthError::invalid_client("x")).into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));
        let resp = HttpError::from(StoreError::Unavailable("down".into())).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn browsers_get_pages_with_the_same_status() {
        let page = HttpError::from(StoreError::Unavailable("down".into())).for_browser();
        assert!(matches!(page, HttpError::Page { status: StatusCode::SERVICE_UNAVAILABLE, .. }));
        let page = HttpError::from(OAuthError::invalid_request("bad")).for_browser();
        assert!(
            matches!(page, HttpError::Page { status: StatusCode::BAD_REQUEST, ref message, .. } if message == "bad")
        );
        let resp = HttpError::from(StoreError::Unavailable("down".into())).for_browser().into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1", "the page says when to come back");
        let resp = HttpError::not_found("no such server").for_browser().into_response();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(resp.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    }

    #[test]
    fn a_challenge_names_an_error_only_for_a_presented_token() {
        let c = |why: Option<&str>| {
            HttpError::Challenge(Challenge {
                resource_metadata: "https://p/.well-known/oauth-protected-resource/mcp/s".into(),
                scope: "mcp".into(),
                invalid_token: why.map(str::to_owned),
                insufficient_scope: false,
            })
            .into_response()
        };
        let without = c(None);
        assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
        assert!(!without.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().contains("error="));
        let with = c(Some("expired \"now\""));
        let value = with.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert!(value.contains("error=\"invalid_token\"") && value.contains("expired 'now'"), "{value}");
    }
}
