//! An authorization request (RFC 6749 §4.1.1 with PKCE and RFC 8707), checked, and the
//! verified place its answers go.
//!
//! Order matters (RFC 6749 §4.1.2.1, RFC 9700 §4.1): until the client and its redirect
//! URI are verified, every error is a page shown to the user, never a redirect; after
//! that, errors may go back to the client's redirect URI with `state` and `iss`, when
//! the handler judges the client trustworthy enough (see [`Invalid::answer`]).

use axum::http::StatusCode;
use axum::response::Response;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::scope::{Scopes, grant_scope};
use mcp_oauth_core::{OAuthError, pkce, redirect_uri};

use crate::error::HttpError;
use crate::responses::redirect;
use crate::settings::{OFFLINE_ACCESS, ServerSettings};
use crate::state::App;
use crate::trace::{TraceId, quoting};

/// `state` is stored with the pending login and echoed back; an anonymous caller must not
/// make the proxy store more than this for it.
const MAX_STATE_BYTES: usize = 4096;

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: Client,
    pub scope: Scopes,
    pub code_challenge: String,
    pub resource: String,
    pub reply: ClientRedirect,
    /// This login attempt's trace id.
    pub trace: TraceId,
}

/// The client's verified redirect URI, with what every answer sent there carries: the
/// client's `state` and our `iss` (RFC 9207, so clients can tell authorization servers
/// apart).
#[derive(Debug, Clone)]
pub struct ClientRedirect {
    pub issuer: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// `302 Found` answering a GET, `303 See Other` answering a form POST.
    pub status: StatusCode,
    /// Quoted in every `error_description`, for the user to hand to the operator.
    pub trace_id: Option<String>,
}

impl ClientRedirect {
    fn location(&self, params: &[(&str, &str)]) -> String {
        let Ok(mut url) = url::Url::parse(&self.redirect_uri) else {
            return self.redirect_uri.clone();
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(state) = &self.state {
                q.append_pair("state", state);
            }
            q.append_pair("iss", &self.issuer);
        }
        url.into()
    }

    /// The successful answer: the authorization code.
    pub fn code(&self, code: &str) -> Response {
        redirect(self.status, &self.location(&[("code", code)]))
    }

    /// An error answer (RFC 6749 §4.1.2.1). Only OAuth errors are the client's to know;
    /// anything else is shown to the person in the browser.
    pub fn error(&self, error: impl Into<HttpError>) -> HttpError {
        match error.into() {
            HttpError::OAuth(error) => {
                let description = quoting(&error.description, self.trace_id.as_deref());
                let mut params = vec![("error", error.code.as_str())];
                if !description.is_empty() {
                    params.push(("error_description", description.as_str()));
                }
                HttpError::Redirect { status: self.status, location: self.location(&params) }
            }
            other => other.for_browser(),
        }
    }
}

/// Why an authorization request was refused.
#[derive(Debug)]
pub enum Invalid {
    /// The client or its redirect URI could not be verified: only a page will do.
    Unverified(HttpError),
    /// The client and redirect URI are verified, the rest of the request is not.
    Verified(Box<VerifiedButInvalid>),
}

#[derive(Debug)]
pub struct VerifiedButInvalid {
    pub client: Client,
    pub reply: ClientRedirect,
    pub error: OAuthError,
}

impl Invalid {
    /// The answer: the error at the client's redirect URI only if `may_redirect` (the
    /// client is trusted, or this browser approved it, or the user has just acted);
    /// otherwise a page. Redirecting a malformed request of any registered client would
    /// make the proxy's domain an open redirector to whatever URI that client registered
    /// (RFC 9700 §4.11.2).
    pub fn answer(self, may_redirect: impl FnOnce(&Client, &ClientRedirect) -> bool) -> HttpError {
        match self {
            Self::Unverified(e) => e,
            Self::Verified(v) if may_redirect(&v.client, &v.reply) => v.reply.error(v.error),
            Self::Verified(v) => HttpError::from(v.error).for_browser(),
        }
    }
}

impl AuthorizationRequest {
    /// Checks an authorization request's parameters; `status` is how redirects answer it.
    pub async fn validate(
        app: &App,
        server: &ServerSettings,
        params: &Params,
        status: StatusCode,
        trace: &TraceId,
    ) -> Result<Self, Invalid> {
        let page = |message: &str| Invalid::Unverified(HttpError::bad_request_page(message));
        if params.get("state").is_some_and(|s| s.len() > MAX_STATE_BYTES) {
            return Err(page("The state parameter is too long (at most 4096 bytes)."));
        }
        let client_id =
            params.require("client_id").map_err(|e| Invalid::Unverified(HttpError::from(e).for_browser()))?;
        let client = app
            .clients
            .find(&server.slug, client_id)
            .await
            .map_err(|e| Invalid::Unverified(HttpError::from(e).for_browser()))?
            .ok_or_else(|| page("Unknown client. The application must register again."))?;
        let Some(redirect_uri) = redirect_uri::resolve(&client.metadata.redirect_uris, params.get("redirect_uri"))
        else {
            return Err(page("The redirect URI is missing or is not registered for this client."));
        };
        let reply = ClientRedirect {
            issuer: app.settings.issuer(&server.slug),
            redirect_uri: redirect_uri.to_owned(),
            state: params.get("state").map(str::to_owned),
            status,
            trace_id: Some(trace.to_string()),
        };
        match check(app, server, params) {
            Ok((scope, code_challenge, resource)) => {
                Ok(Self { client, scope, code_challenge, resource, reply, trace: trace.clone() })
            }
            Err(error) => Err(Invalid::Verified(Box::new(VerifiedButInvalid { client, reply, error }))),
        }
    }
}

/// The rest of the request, once the client and its redirect URI are known: the scope,
/// the PKCE challenge and the resource.
fn check(app: &App, server: &ServerSettings, params: &Params) -> Result<(Scopes, String, String), OAuthError> {
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => return Err(OAuthError::unsupported_response_type("only response_type=code is supported")),
        None => return Err(OAuthError::invalid_request("response_type is required")),
    }
    let code_challenge = pkce::validate_challenge(params.get("code_challenge"), params.get("code_challenge_method"))?;
    let resource = app.settings.resource(&server.slug);
    if let Some(requested) = params.get("resource") {
        // RFC 8707: the resource must be ours. A trailing slash is the same resource.
        if requested.trim_end_matches('/') != resource {
            return Err(OAuthError::invalid_target(format!("this server issues tokens only for {resource}")));
        }
    }
    let mut scope = grant_scope(params.get("scope"), &server.scopes, &server.default_scopes)?;
    // `offline_access` is granted when asked for, never by default.
    if Scopes::parse(params.get("scope").unwrap_or_default())?.iter().any(|s| s == OFFLINE_ACCESS) {
        scope = Scopes::from_list(scope.iter().chain([OFFLINE_ACCESS]));
    }
    Ok((scope, code_challenge, resource))
}
