//! Extractors: what every handler would otherwise open with. Each refuses with an
//! [`HttpError`] in the form its kind of route answers in: JSON for the OAuth and MCP
//! endpoints, a page for the routes a person's browser visits.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::form::Params;
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_store::AccessTokenInfo;

use crate::client_address::ClientAddress;
use crate::error::HttpError;
use crate::serve::body_deadline;
use crate::services::audit::Caller;
use crate::settings::ServerSettings;
use crate::state::AppState;

/// How a kind of route answers a refusal.
pub trait RouteKind: Send + Sync + 'static {
    fn refuse(e: HttpError) -> HttpError;
}

/// Endpoints that programs call (OAuth, metadata, MCP): JSON errors.
pub struct Api;

/// Endpoints a person's browser visits (authorize, callback): error pages.
pub struct Browser;

impl RouteKind for Api {
    fn refuse(e: HttpError) -> HttpError {
        e
    }
}

impl RouteKind for Browser {
    fn refuse(e: HttpError) -> HttpError {
        e.for_browser()
    }
}

/// The protected MCP server named by the route's `{slug}`; an unknown slug is a 404.
pub struct Server<K = Api>(pub Arc<ServerSettings>, pub PhantomData<K>);

impl<K> Deref for Server<K> {
    type Target = ServerSettings;

    fn deref(&self) -> &ServerSettings {
        &self.0
    }
}

impl<K: RouteKind> FromRequestParts<AppState> for Server<K> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, HttpError> {
        let slug = Path::<String>::from_request_parts(parts, app).await.map(|Path(s)| s).unwrap_or_default();
        match app.settings.server(&slug) {
            Some(server) => Ok(Server(Arc::clone(server), PhantomData)),
            None => Err(K::refuse(HttpError::not_found(format!("There is no MCP server named {slug:?} here.")))),
        }
    }
}

/// Form parameters, parsed strictly (repeated parameters refused, empty ones absent; see
/// `mcp_oauth_core::form`), from an `application/x-www-form-urlencoded` body (RFC 6749
/// §3.2). The body is bounded by the router's `DefaultBodyLimit`.
pub struct OAuthForm<K = Api>(pub Params, pub PhantomData<K>);

impl<K: RouteKind> FromRequest<AppState> for OAuthForm<K> {
    type Rejection = HttpError;

    async fn from_request(req: Request, app: &AppState) -> Result<Self, HttpError> {
        if !is_form(req.headers()) {
            let e = OAuthError::invalid_request("the body must be application/x-www-form-urlencoded");
            return Err(K::refuse(e.into()));
        }
        let body = Bytes::from_request(req, app).await.map_err(|rejection| {
            if body_deadline::is_elapsed(&rejection) {
                return K::refuse(HttpError::body_too_slow("invalid_request"));
            }
            K::refuse(HttpError::unreadable_body(rejection.status(), rejection.body_text()))
        })?;
        Params::parse(&body).map(|p| Self(p, PhantomData)).map_err(|e| K::refuse(e.into()))
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

/// Query parameters of a browser route, parsed as strictly as a form.
pub struct BrowserQuery(pub Params);

impl FromRequestParts<AppState> for BrowserQuery {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, HttpError> {
        let query = parts.uri.query().unwrap_or_default();
        Params::parse(query.as_bytes()).map(Self).map_err(|e| HttpError::from(e).for_browser())
    }
}

/// The credentials in an `Authorization` header with `scheme` (matched case-insensitively,
/// RFC 7235 §2.1).
pub fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (given, credentials) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| credentials.trim())
}

/// A client's access token at the MCP endpoint, checked in one indexed read: present,
/// known, unexpired, unrevoked, its grant active, and issued for this very server
/// (audience). Refused with the bearer challenge.
pub struct Bearer {
    pub server: Arc<ServerSettings>,
    pub token: Arc<AccessTokenInfo>,
    /// The token's hash, which names it in the store (and to `revocations`).
    pub hash: TokenHash,
}

impl FromRequestParts<AppState> for Bearer {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, HttpError> {
        let Server(server, _) = Server::<Api>::from_request_parts(parts, app).await?;
        let refuse = |why: Option<&str>| HttpError::challenge(&app.settings, &server, why);
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(refuse(None));
        }
        let Some(token) = authorization(&parts.headers, "Bearer").filter(|t| !t.is_empty()) else {
            return Err(refuse(Some("the Authorization header must be a Bearer token")));
        };
        let hash = TokenHash::of(token);
        let Some(token) = app.store.find_access_token(&hash).await? else {
            return Err(refuse(Some("unknown access token")));
        };
        match refusal(&token, &server, app.now()) {
            Some(why) => Err(refuse(Some(why))),
            None => Ok(Bearer { server, token, hash }),
        }
    }
}

/// Why a known access token does not open `server` now, if it does not.
fn refusal(token: &AccessTokenInfo, server: &ServerSettings, now: i64) -> Option<&'static str> {
    if token.server != server.slug {
        Some("this access token was issued for another MCP server")
    } else if token.revoked {
        Some("the access token has been revoked")
    } else if token.upstream.family_status != FamilyStatus::Active {
        Some("the grant has ended; authorize again")
    } else if token.expires_at <= now {
        Some("the access token has expired")
    } else {
        None
    }
}

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        // Without connection info (a router driven in-process) nothing is known.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        Ok(ClientAddress::of(peer, &parts.headers, &app.settings.trusted_proxies))
    }
}

/// Who sent the request, for the audit trail: its address and user agent.
impl FromRequestParts<AppState> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Infallible> {
        let address = ClientAddress::from_request_parts(parts, app).await?;
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        Ok(Caller { address, user_agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn auth_schemes_match_case_insensitively() {
        let mut h = HeaderMap::new();
        for (value, expected) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("Bearerabc", None),
        ] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(authorization(&h, "Bearer"), expected, "{value}");
        }
    }

    #[test]
    fn only_form_bodies_are_forms() {
        let mut h = HeaderMap::new();
        assert!(!is_form(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=utf-8"));
        assert!(is_form(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!is_form(&h));
    }
}
