//! Brokered OAuth (`upstream_auth = "oauth"`): the proxy as the MCP *client* of an MCP
//! server that is itself OAuth-protected. What it takes to become that server's client:
//!
//! - [`discover`]: the server's protected-resource metadata (RFC 9728), from the
//!   `resource_metadata` of its 401 challenge or else from the well-known path derived
//!   from its URL, then its authorization server's metadata (RFC 8414, then OpenID
//!   Connect Discovery), whose `issuer` must be the one the resource named;
//! - [`register`]: RFC 7591 dynamic registration of the proxy's one fixed callback;
//! - [`revoke`]: RFC 7009 revocation of a grant's tokens when the grant ends.
//!
//! Once registered, the authorization server is an ordinary [`Provider`](crate::Provider)
//! built by [`provider`]: the same login URL, code exchange, refresh, identity and failure
//! classification as a configured identity provider, so nothing downstream changes.
//!
//! Every fetch here can be caused by an anonymous request (a login started), so each is
//! bounded in time (the client's) and in bytes ([`MAX_DOCUMENT_BYTES`]), never follows a
//! redirect, and the caller caches what it learns. The URLs of the authorization server
//! come from the upstream's metadata, not from the operator: they must be https
//! ([`UrlPolicy`]), with plain http only on loopback when the operator allows it
//! (development and tests). Unlike Client ID Metadata Documents (whose URLs anyone may
//! name, and whose fetcher refuses internal addresses), internal addresses are not refused
//! here: the upstream is the operator's choice, and its authorization server is often on
//! the same private network (an in-house Keycloak); what the upstream names is trusted as
//! far as the upstream is, and no further than https.

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::discovery::{at, first_naming};
use crate::error::UpstreamError;
use crate::settings::{ProviderAuthMethod, ProviderSettings};

/// Metadata documents and registration answers larger than this are refused.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Which URLs named by the upstream's metadata may be fetched or sent a browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Plain http to a loopback host (`127.0.0.0/8`, `[::1]`, `localhost`): development
    /// and tests only.
    pub allow_http_loopback: bool,
}

impl UrlPolicy {
    pub fn check(&self, what: &str, s: &str) -> Result<Url, UpstreamError> {
        let url = Url::parse(s).map_err(|e| UpstreamError::Protocol(format!("{what} {s:?} is not a URL: {e}")))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        match url.scheme() {
            "https" if url.host().is_some() => Ok(url),
            "http" if loopback && self.allow_http_loopback => Ok(url),
            _ => Err(UpstreamError::Protocol(format!(
                "{what} {s:?} must be an https URL (plain http only on loopback, when allowed)"
            ))),
        }
    }
}

/// What the MCP upstream's 401 challenge said (RFC 6750 §3, RFC 9728 §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
}

impl Challenge {
    /// Reads a `WWW-Authenticate` value's Bearer challenge; `None` when there is none.
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim_start();
        let (scheme, params) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut out = Self::default();
        let mut s = params.trim();
        while !s.is_empty() {
            let Some((name, after)) = s.split_once('=') else { break };
            let name = name.trim().trim_start_matches(',').trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            match name.as_str() {
                "resource_metadata" => out.resource_metadata = Some(value),
                "scope" => out.scope = Some(value),
                "error" => out.error = Some(value),
                _ => {}
            }
            s = next.trim_start().trim_start_matches(',').trim_start();
        }
        Some(out)
    }
}

/// The upstream's authorization server, as its metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationServer {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub registration_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    pub userinfo_endpoint: Option<Url>,
    pub jwks_uri: Option<Url>,
    pub scopes_supported: Vec<String>,
    pub token_endpoint_auth_methods: Vec<String>,
    pub client_id_metadata_document_supported: bool,
    /// RFC 9207: the server says it sends `iss` with every authorization response.
    pub iss_parameter_supported: bool,
}

/// What discovery found: the resource, the scopes to ask for, and its authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The resource identifier (RFC 8707 `resource`): the metadata's `resource`.
    pub resource: String,
    /// The scopes to ask for: the challenge's `scope`, else the resource's
    /// `scopes_supported`, else the authorization server's (never `offline_access` from
    /// there: it is asked for only when the server lists it).
    pub scopes: Vec<String>,
    pub server: AuthorizationServer,
}

/// Discovers the MCP upstream at `mcp_url` (see the module's comment).
pub async fn discover(http: &reqwest::Client, mcp_url: &Url, policy: UrlPolicy) -> Result<Discovered, UpstreamError> {
    let challenge = probe(http, mcp_url).await?;
    let mut candidates = Vec::new();
    if let Some(url) = challenge.as_ref().and_then(|c| c.resource_metadata.clone()) {
        candidates.push(policy.check("resource_metadata", &url).or_else(|e| {
            // The upstream URL is the operator's: its own origin is as trusted as it is.
            match Url::parse(&url) {
                Ok(u) if u.origin() == mcp_url.origin() => Ok(u),
                _ => Err(e),
            }
        })?);
    }
    let origin = mcp_url.origin().ascii_serialization();
    let path = mcp_url.path().trim_end_matches('/');
    for url in [
        format!("{origin}/.well-known/oauth-protected-resource{path}"),
        format!("{origin}/.well-known/oauth-protected-resource"),
    ] {
        let url = Url::parse(&url).map_err(|e| UpstreamError::Misconfigured(format!("upstream_url: {e}")))?;
        if !candidates.contains(&url) {
            candidates.push(url);
        }
    }
    let mut last = UpstreamError::Misconfigured("the MCP upstream publishes no protected-resource metadata".into());
    let mut resource = None;
    for url in candidates {
        match fetch_document(http.get(url.clone())).await {
            Ok(doc) => {
                resource = Some(doc);
                break;
            }
            Err(e) => last = at(&url, e),
        }
    }
    let resource = resource.ok_or(last)?;
    let resource_id = resource["resource"].as_str().unwrap_or(mcp_url.as_str()).to_owned();
    // RFC 9728 §3.3 and §7.3: metadata that names another resource is not this upstream's
    // (an attacker's, or a misconfiguration): its authorization server is never asked.
    if !resource_covers(&resource_id, mcp_url) {
        return Err(UpstreamError::Protocol(format!(
            "the protected-resource metadata is for {resource_id:?}, not for the MCP upstream {mcp_url}"
        )));
    }
    let issuer = resource["authorization_servers"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| UpstreamError::Protocol("the protected-resource metadata names no authorization server".into()))?
        .to_owned();
    let server = authorization_server(http, &issuer, policy).await?;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
    };
    let scopes = match challenge.and_then(|c| c.scope) {
        Some(scope) => scope.split_whitespace().map(str::to_owned).collect(),
        None => {
            let listed = strings(&resource["scopes_supported"]);
            if listed.is_empty() { server.scopes_supported.clone() } else { listed }
        }
    };
    Ok(Discovered { resource: resource_id, scopes, server })
}

/// One request to the MCP upstream without credentials: its 401 challenge, if it sends one.
async fn probe(http: &reqwest::Client, mcp_url: &Url) -> Result<Option<Challenge>, UpstreamError> {
    let body = r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#;
    let resp = http
        .post(mcp_url.clone())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("the MCP upstream: {e}")))?;
    if resp.status() != StatusCode::UNAUTHORIZED {
        return Ok(None);
    }
    Ok(resp.headers().get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).find_map(Challenge::parse))
}

/// The authorization server's metadata (RFC 8414 first, then OpenID Connect Discovery,
/// at both of its places), which must name `issuer` exactly (RFC 8414 §3.3).
pub async fn authorization_server(
    http: &reqwest::Client,
    issuer: &str,
    policy: UrlPolicy,
) -> Result<AuthorizationServer, UpstreamError> {
    let parsed = policy.check("authorization server", issuer)?;
    let origin = parsed.origin().ascii_serialization();
    let path = parsed.path().trim_end_matches('/');
    let base = issuer.trim_end_matches('/');
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
        format!("{base}/.well-known/openid-configuration"),
    ];
    let none = UpstreamError::Misconfigured(format!("{issuer} publishes no authorization server metadata"));
    let doc = first_naming(issuer, &candidates, none, |url| fetch_document(http.get(url))).await?;
    read_server(&doc, doc["issuer"].as_str().unwrap_or_default(), policy)
}

fn read_server(doc: &Value, issuer: &str, policy: UrlPolicy) -> Result<AuthorizationServer, UpstreamError> {
    let required = |key: &str| -> Result<Url, UpstreamError> {
        let s = doc[key].as_str().ok_or_else(|| UpstreamError::Protocol(format!("the metadata has no {key}")))?;
        policy.check(key, s)
    };
    let optional = |key: &str| -> Result<Option<Url>, UpstreamError> {
        doc[key].as_str().map(|s| policy.check(key, s)).transpose()
    };
    let strings = |key: &str| -> Vec<String> {
        doc[key].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
    };
    let methods = strings("code_challenge_methods_supported");
    // The MCP authorization spec: a client must refuse an authorization server that does
    // not list S256 (PKCE cannot be assumed).
    if !methods.iter().any(|m| m == "S256") {
        return Err(UpstreamError::Misconfigured(format!(
            "{issuer} does not list S256 in code_challenge_methods_supported"
        )));
    }
    Ok(AuthorizationServer {
        issuer: issuer.to_owned(),
        authorization_endpoint: required("authorization_endpoint")?,
        token_endpoint: required("token_endpoint")?,
        registration_endpoint: optional("registration_endpoint")?,
        revocation_endpoint: optional("revocation_endpoint")?,
        userinfo_endpoint: optional("userinfo_endpoint")?,
        jwks_uri: optional("jwks_uri")?,
        scopes_supported: strings("scopes_supported"),
        token_endpoint_auth_methods: strings("token_endpoint_auth_methods_supported"),
        client_id_metadata_document_supported: doc["client_id_metadata_document_supported"] == Value::Bool(true),
        iss_parameter_supported: doc["authorization_response_iss_parameter_supported"] == Value::Bool(true),
    })
}

/// How the proxy becomes the client of an upstream's authorization server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMethod {
    /// `[servers.upstream_oauth] client_id`, registered there by hand.
    PreRegistered,
    /// The proxy's Client ID Metadata Document: its URL is the `client_id`.
    MetadataDocument,
    /// RFC 7591 dynamic registration, stored per server and issuer.
    Dynamic,
}

impl RegistrationMethod {
    pub fn label(self) -> &'static str {
        match self {
            Self::PreRegistered => "pre-registered client",
            Self::MetadataDocument => "Client ID Metadata Document",
            Self::Dynamic => "dynamic client registration (RFC 7591)",
        }
    }
}

/// The registration method for `server`, the first that applies: pre-registered (when the
/// operator configured a client), a metadata document (when the server supports them),
/// dynamic registration (when it offers it). `Misconfigured` when none does.
pub fn registration_method(
    pre_registered: bool,
    server: &AuthorizationServer,
) -> Result<RegistrationMethod, UpstreamError> {
    if pre_registered {
        Ok(RegistrationMethod::PreRegistered)
    } else if server.client_id_metadata_document_supported {
        Ok(RegistrationMethod::MetadataDocument)
    } else if server.registration_endpoint.is_some() {
        Ok(RegistrationMethod::Dynamic)
    } else {
        Err(UpstreamError::Misconfigured(format!(
            "{} supports neither Client ID Metadata Documents nor dynamic registration: register a client there \
             and configure [servers.upstream_oauth] client_id",
            server.issuer
        )))
    }
}

/// The proxy's client at the upstream's authorization server.
#[derive(Clone, PartialEq, Eq)]
pub struct Registration {
    pub client_id: String,
    /// `None`: a public client (`token_endpoint_auth_method = "none"`).
    pub client_secret: Option<String>,
    pub auth_method: ProviderAuthMethod,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("client_id", &self.client_id)
            .field("has_secret", &self.client_secret.is_some())
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

/// RFC 7591 dynamic registration of a confidential client (`client_secret_post` when the
/// server lists it, else `client_secret_basic`; a public client when it issues no secret)
/// with the one redirect URI the proxy uses for every brokered login.
pub async fn register(
    http: &reqwest::Client,
    server: &AuthorizationServer,
    metadata: &Value,
) -> Result<Registration, UpstreamError> {
    let endpoint = server
        .registration_endpoint
        .clone()
        .ok_or_else(|| UpstreamError::Misconfigured(format!("{} offers no dynamic registration", server.issuer)))?;
    let answer = fetch_document(http.post(endpoint).json(metadata)).await?;
    let client_id = answer["client_id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| UpstreamError::Protocol("the registration answer has no client_id".into()))?
        .to_owned();
    let client_secret = answer["client_secret"].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    let auth_method = match (answer["token_endpoint_auth_method"].as_str(), &client_secret) {
        (_, None) => ProviderAuthMethod::None,
        (Some("client_secret_basic"), Some(_)) => ProviderAuthMethod::ClientSecretBasic,
        _ => ProviderAuthMethod::ClientSecretPost,
    };
    Ok(Registration { client_id, client_secret, auth_method })
}

/// The auth method a confidential client asks for at registration (and uses):
/// `client_secret_post` where the server lists it, else `client_secret_basic` (RFC 8414's
/// default when it lists nothing). Post first, because authorization servers built with
/// the MCP SDKs read `client_id` from the form even with a Basic header (the Python SDK's
/// answers Basic alone with `unauthorized_client`, "Missing client_id": found by the
/// interop suite).
pub fn preferred_auth_method(server: &AuthorizationServer) -> &'static str {
    if server.token_endpoint_auth_methods.iter().any(|m| m == "client_secret_post") {
        "client_secret_post"
    } else {
        "client_secret_basic"
    }
}

/// Whether the protected-resource metadata's `resource` names the MCP upstream at `mcp_url`:
/// the same origin, and a path that is the upstream's or one of its parents (as the MCP
/// SDKs accept), compared segment by segment.
fn resource_covers(resource: &str, mcp_url: &Url) -> bool {
    let Ok(resource) = Url::parse(resource) else { return false };
    if resource.origin() != mcp_url.origin() || resource.query().is_some() || resource.fragment().is_some() {
        return false;
    }
    let parent = resource.path().trim_end_matches('/');
    let path = mcp_url.path().trim_end_matches('/');
    path == parent || path.strip_prefix(parent).is_some_and(|rest| rest.starts_with('/'))
}

/// The provider settings that make `server` and `registration` an ordinary
/// [`Provider`](crate::Provider): every endpoint explicit (no second discovery), the
/// `resource` always sent, refreshes included (RFC 8707: the upstream MCP URL, which such servers expect).
pub fn provider(
    name: &str,
    resource: &str,
    server: &AuthorizationServer,
    registration: &Registration,
    scopes: Vec<String>,
    refresh_margin_secs: i64,
) -> ProviderSettings {
    ProviderSettings {
        name: name.to_owned(),
        issuer: Some(server.issuer.clone()),
        authorization_endpoint: Some(server.authorization_endpoint.to_string()),
        token_endpoint: Some(server.token_endpoint.to_string()),
        userinfo_endpoint: server.userinfo_endpoint.as_ref().map(Url::to_string),
        jwks_uri: server.jwks_uri.as_ref().map(Url::to_string),
        client_id: registration.client_id.clone(),
        client_secret: registration.client_secret.clone().unwrap_or_default(),
        auth_method: registration.auth_method,
        scopes,
        refresh_margin_secs,
        extra_authorize_params: Vec::new(),
        groups_claim: "groups".into(),
        forward_resource: true,
        refresh_resource: Some(resource.to_owned()),
    }
}

/// RFC 7009: revokes `token` at `endpoint`, authenticated as `settings`' client.
/// Unknown tokens are answered 200 there too, so any 2xx is success.
pub async fn revoke(
    http: &reqwest::Client,
    endpoint: &Url,
    settings: &ProviderSettings,
    token: &str,
    hint: &str,
) -> Result<(), UpstreamError> {
    let form = [("token", token), ("token_type_hint", hint)];
    let req = crate::token_endpoint::authenticated(http.post(endpoint.clone()), settings, &form);
    let resp = req.send().await.map_err(|e| UpstreamError::Unavailable(format!("revocation endpoint: {e}")))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Err(UpstreamError::Unavailable(format!("revocation endpoint answered HTTP {status}")))
    } else {
        Err(UpstreamError::Misconfigured(format!("revocation endpoint answered HTTP {status}")))
    }
}

/// A JSON document, its size bounded while it is read. Success is any 2xx; a 4xx is the
/// upstream refusing what we asked (`Misconfigured`: nothing about a user), a 5xx, 408 or
/// 429 a failure that may pass.
async fn fetch_document(request: reqwest::RequestBuilder) -> Result<Value, UpstreamError> {
    let mut resp = request
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("request failed: {e}")))?;
    let status = resp.status();
    if status.is_server_error() || matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT) {
        return Err(UpstreamError::Unavailable(format!("answered HTTP {status}")));
    }
    if !status.is_success() {
        return Err(UpstreamError::Misconfigured(format!("answered HTTP {status}")));
    }
    if resp.content_length().is_some_and(|n| n as usize > MAX_DOCUMENT_BYTES) {
        return Err(UpstreamError::Protocol("the document is too large".into()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| UpstreamError::Unavailable(format!("reading: {e}")))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(UpstreamError::Protocol("the document is too large".into()));
        }
    }
    serde_json::from_slice(&body).map_err(|_| UpstreamError::Protocol("the answer is not JSON".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_with_quoted_and_bare_values() {
        let c = Challenge::parse(
            r#"Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp""#,
        )
        .unwrap();
        assert_eq!(c.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(c.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://mcp.example/.well-known/oauth-protected-resource/mcp")
        );
        let bare = Challenge::parse("bearer realm=x,error=invalid_token").unwrap();
        assert_eq!(bare.error.as_deref(), Some("invalid_token"));
        assert!(Challenge::parse("Basic realm=\"x\"").is_none());
    }

    /// Serves `body` (`{url}` in it replaced by the server's URL) as a JSON answer to every
    /// request on a loopback port, without a Content-Length when `chunked` (so only the
    /// reading bounds it); returns the URL.
    async fn serve(body: String, chunked: bool) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let body = body.replace("{url}", &url);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let head = if chunked {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".to_owned()
                    } else {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        )
                    };
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body.as_bytes()).await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn metadata_larger_than_the_bound_is_refused_however_it_is_sent() {
        let policy = UrlPolicy { allow_http_loopback: true };
        let http = crate::http_client::for_provider_calls();
        let huge = format!(r#"{{"issuer":"x","pad":"{}"}}"#, "a".repeat(MAX_DOCUMENT_BYTES));
        for chunked in [false, true] {
            let url = serve(huge.clone(), chunked).await;
            let e = authorization_server(&http, &url, policy).await.unwrap_err();
            assert!(e.to_string().contains("too large"), "chunked {chunked}: {e}");
        }
    }

    #[tokio::test]
    async fn metadata_naming_another_issuer_or_lacking_s256_is_refused() {
        let policy = UrlPolicy { allow_http_loopback: true };
        let http = crate::http_client::for_provider_calls();
        let url = serve(r#"{"issuer":"https://elsewhere.example"}"#.to_owned(), false).await;
        let e = authorization_server(&http, &url, policy).await.unwrap_err();
        assert!(e.to_string().contains("names issuer"), "{e}");
        // A document that names the issuer it is served for, without S256; then with it.
        let doc = |methods: &str| {
            format!(
                r#"{{"issuer":"{{url}}","authorization_endpoint":"{{url}}/a","token_endpoint":"{{url}}/t","code_challenge_methods_supported":[{methods}]}}"#
            )
        };
        let served = serve(doc(r#""plain""#), false).await;
        let e = authorization_server(&http, &served, policy).await.unwrap_err();
        assert!(e.to_string().contains("does not list S256"), "{e}");
        let served = serve(doc(r#""plain","S256""#), false).await;
        let found = authorization_server(&http, &served, policy).await.unwrap();
        assert_eq!(found.token_endpoint.as_str(), format!("{served}/t"));
    }

    #[test]
    fn the_registration_method_is_the_first_that_applies() {
        let server = |cimd: bool, dcr: bool| AuthorizationServer {
            issuer: "https://as.example".into(),
            authorization_endpoint: Url::parse("https://as.example/a").unwrap(),
            token_endpoint: Url::parse("https://as.example/t").unwrap(),
            registration_endpoint: dcr.then(|| Url::parse("https://as.example/r").unwrap()),
            revocation_endpoint: None,
            userinfo_endpoint: None,
            jwks_uri: None,
            scopes_supported: vec![],
            token_endpoint_auth_methods: vec![],
            client_id_metadata_document_supported: cimd,
            iss_parameter_supported: false,
        };
        use RegistrationMethod::*;
        assert_eq!(registration_method(true, &server(true, true)).unwrap(), PreRegistered);
        assert_eq!(registration_method(false, &server(true, true)).unwrap(), MetadataDocument);
        assert_eq!(registration_method(false, &server(false, true)).unwrap(), Dynamic);
        assert!(registration_method(false, &server(false, false)).is_err());
    }

    #[test]
    fn the_metadatas_resource_must_name_the_upstream() {
        let mcp = Url::parse("http://localhost:3000/mcp").unwrap();
        assert!(resource_covers("http://localhost:3000/mcp", &mcp));
        assert!(resource_covers("http://localhost:3000/mcp/", &mcp));
        assert!(resource_covers("http://localhost:3000", &mcp), "a parent path");
        assert!(resource_covers("http://localhost:3000/", &mcp));
        assert!(!resource_covers("https://evil.example.com/mcp", &mcp), "another origin");
        assert!(!resource_covers("http://localhost:3001/mcp", &mcp), "another port");
        assert!(!resource_covers("http://localhost:3000/mcp-other", &mcp), "not a path segment");
        assert!(!resource_covers("http://localhost:3000/mcp/deeper", &mcp), "a child is not the upstream");
        assert!(!resource_covers("not a url", &mcp));
    }

    #[test]
    fn urls_named_by_metadata_must_be_https_or_allowed_loopback() {
        let strict = UrlPolicy { allow_http_loopback: false };
        let dev = UrlPolicy { allow_http_loopback: true };
        assert!(strict.check("x", "https://as.example/token").is_ok());
        assert!(strict.check("x", "http://127.0.0.1:9/token").is_err());
        assert!(dev.check("x", "http://127.0.0.1:9/token").is_ok());
        assert!(dev.check("x", "http://localhost:9/token").is_ok());
        assert!(dev.check("x", "http://as.example/token").is_err(), "http only on loopback");
        assert!(dev.check("x", "javascript:alert(1)").is_err());
    }
}
