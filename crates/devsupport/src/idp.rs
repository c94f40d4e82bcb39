//! A development identity provider.
//!
//! It keeps everything in memory and knows one user. It is strict where a real provider
//! is (client authentication, redirect URI, PKCE, single-use codes) so that the proxy's
//! upstream client is exercised for real, and it counts what it was asked so that tests
//! can assert, for example, that a burst of requests caused exactly one refresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcp_oauth_core::clock::SharedClock;
use mcp_oauth_core::token::random_b64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// How the provider behaves.
#[derive(Debug, Clone)]
pub struct IdpOptions {
    pub client_id: String,
    pub client_secret: String,
    pub subject: String,
    /// Lifetime of access tokens; `None` sends no `expires_in` at all (like GitHub).
    pub access_ttl_secs: Option<i64>,
    pub issue_refresh_tokens: bool,
    /// Issue a new refresh token on each refresh and invalidate the old one.
    pub rotate_refresh_tokens: bool,
    /// Send an id_token when `openid` is among the scopes.
    pub issue_id_token: bool,
    /// Sign id_tokens with a key the provider does not publish (a forgery, for tests).
    pub sign_with_unpublished_key: bool,
    /// More claims about the user, in id_tokens and at userinfo (email, groups, …).
    pub claims: serde_json::Map<String, Value>,
    /// As an MCP upstream's authorization server: offer dynamic registration (RFC 7591).
    pub dynamic_registration: bool,
    /// As an MCP upstream's authorization server: accept Client ID Metadata Documents
    /// (fetched, and the redirect URI checked against them).
    pub metadata_documents: bool,
    /// Say `authorization_response_iss_parameter_supported` in the metadata.
    pub iss_parameter_supported: bool,
    /// Leave `iss` out of authorization responses.
    pub omit_iss: bool,
    /// Publish a userinfo endpoint in the metadata (an authorization server that says
    /// nothing about its users has none).
    pub userinfo: bool,
    /// Scopes left out of the metadata's `scopes_supported` (which it still grants).
    pub unlisted_scopes: Vec<String>,
}

impl Default for IdpOptions {
    fn default() -> Self {
        Self {
            client_id: "proxy-client".into(),
            client_secret: "proxy-secret".into(),
            subject: "demo-user".into(),
            access_ttl_secs: Some(300),
            issue_refresh_tokens: true,
            rotate_refresh_tokens: true,
            issue_id_token: true,
            sign_with_unpublished_key: false,
            claims: json!({"email": "demo@example.com", "email_verified": true, "groups": ["staff"]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            dynamic_registration: false,
            metadata_documents: false,
            iss_parameter_supported: true,
            omit_iss: false,
            userinfo: true,
            unlisted_scopes: Vec::new(),
        }
    }
}

/// What the next token request should suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `invalid_grant`: the refresh token is dead (permanent).
    InvalidGrant,
    /// HTTP 503 (transient).
    Unavailable,
    /// `invalid_client`: the proxy's own credentials are refused (an expired secret).
    InvalidClient,
    /// A bare 403 from something in front of the provider (a firewall, a CDN).
    Forbidden,
}

#[derive(Debug, Clone)]
struct IssuedCode {
    redirect_uri: String,
    challenge: String,
    scope: String,
    nonce: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<String, IssuedCode>,
    /// access token → expiry (None: never)
    access_tokens: HashMap<String, Option<i64>>,
    refresh_tokens: HashMap<String, String>, // refresh token → scope
    /// access token → scope
    access_scopes: HashMap<String, String>,
    refresh_count: usize,
    /// Requests to the userinfo endpoint, answered or refused.
    userinfo_requests: usize,
    code_exchanges: usize,
    authorize_requests: Vec<HashMap<String, String>>,
    fault: Option<Fault>,
    /// Every access token ever issued, revoked or not.
    issued: Vec<String>,
    /// When false, no access token is valid (a provider that revoked everything).
    rejecting: bool,
    /// Clients registered dynamically: client_id → secret (`None`: a public client).
    registered: HashMap<String, Option<String>>,
    /// The metadata of every registration request (RFC 7591), in order.
    registration_requests: Vec<Value>,
    /// The form of every authenticated token request, in order.
    token_requests: Vec<HashMap<String, String>>,
    /// Tokens revoked at the revocation endpoint (RFC 7009), in order.
    revoked: Vec<String>,
    /// Client ID Metadata Documents fetched.
    documents_fetched: usize,
    /// The client_id of every successful token request, in order.
    token_clients: Vec<String>,
}

/// The provider's id_token signing key (ES256), made fresh at each start.
struct SigningKey {
    pair: EcdsaKeyPair,
    jwk: Value,
}

impl SigningKey {
    fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("P-256 key generation");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("own key");
        let public = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "dev-1",
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        });
        Self { pair, jwk }
    }

    fn sign_jwt(&self, claims: &Value) -> String {
        self.sign_typed("JWT", claims)
    }

    fn sign_typed(&self, typ: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": typ, "kid": "dev-1"});
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self.pair.sign(&SystemRandom::new(), input.as_bytes()).expect("ECDSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// A running provider's handle: cheap to clone, shared with its router.
#[derive(Clone)]
pub struct DevIdp {
    options: Arc<Mutex<IdpOptions>>,
    inner: Arc<Mutex<Inner>>,
    clock: SharedClock,
    issuer: Arc<Mutex<String>>,
    signing: Arc<SigningKey>,
}

impl DevIdp {
    pub fn new(options: IdpOptions, clock: SharedClock) -> Self {
        Self {
            options: Arc::new(Mutex::new(options)),
            inner: Arc::default(),
            clock,
            issuer: Arc::default(),
            signing: Arc::new(SigningKey::generate()),
        }
    }

    /// Serves the provider on a loopback port; returns its issuer URL.
    pub async fn spawn(&self) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        *self.issuer.lock().unwrap() = issuer.clone();
        let router = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(issuer)
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/oauth-authorization-server", get(discovery))
            .route("/register", axum::routing::post(register))
            .route("/revoke", axum::routing::post(revoke))
            .route("/authorize", get(login_page).post(login_submit))
            .route("/token", axum::routing::post(token))
            .route("/userinfo", get(userinfo))
            .route("/jwks", get(jwks))
            .with_state(self.clone())
    }

    /// `claims` signed with the provider's key (ES256, `kid` `dev-1`, published at
    /// `/jwks`) under the JOSE `typ` given: as an enterprise IdP signs an ID-JAG
    /// (`oauth-id-jag+jwt`), for tests of the proxy's `jwt-bearer` grant.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> String {
        self.signing.sign_typed(typ, claims)
    }

    pub fn set_options(&self, f: impl FnOnce(&mut IdpOptions)) {
        f(&mut self.options.lock().unwrap());
    }

    pub fn options(&self) -> IdpOptions {
        self.options.lock().unwrap().clone()
    }

    /// The next token request fails this way (once).
    pub fn inject_fault(&self, fault: Fault) {
        self.inner.lock().unwrap().fault = Some(fault);
    }

    pub fn refresh_count(&self) -> usize {
        self.inner.lock().unwrap().refresh_count
    }

    /// How many times the userinfo endpoint was asked (the proxy asks it whether a token
    /// an MCP server refused is still good).
    pub fn userinfo_requests(&self) -> usize {
        self.inner.lock().unwrap().userinfo_requests
    }

    pub fn code_exchanges(&self) -> usize {
        self.inner.lock().unwrap().code_exchanges
    }

    /// The query parameters of every authorization request received, oldest first.
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.inner.lock().unwrap().authorize_requests.clone()
    }

    /// Whether `token` is an access token this provider issued and that is still valid.
    pub fn access_token_is_valid(&self, token: &str) -> bool {
        let now = self.clock.now();
        let inner = self.inner.lock().unwrap();
        if inner.rejecting {
            return false;
        }
        match inner.access_tokens.get(token) {
            Some(None) => true,
            Some(Some(expires_at)) => now < *expires_at,
            None => false,
        }
    }

    /// An access token for the configured user, as if issued by a login (for measuring
    /// an upstream directly, without the proxy).
    pub fn mint_access_token(&self) -> String {
        self.mint_tokens("openid", None)["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// Invalidates every access token issued so far (refresh tokens keep working), as a
    /// provider does when it rotates keys or the user changes their password.
    pub fn revoke_access_tokens(&self) {
        self.inner.lock().unwrap().access_tokens.clear();
    }

    /// While set, no access token is accepted anywhere, even fresh ones.
    pub fn reject_all_tokens(&self, rejecting: bool) {
        self.inner.lock().unwrap().rejecting = rejecting;
    }

    /// The subject a valid access token belongs to.
    pub fn subject_of(&self, token: &str) -> Option<String> {
        self.access_token_is_valid(token).then(|| self.options().subject)
    }

    /// A check for the sample MCP server: this provider's valid tokens only.
    pub fn token_check(&self) -> crate::mcp_server::TokenCheck {
        let idp = self.clone();
        std::sync::Arc::new(move |token: &str| idp.subject_of(token))
    }

    /// The scope of a valid access token.
    pub fn scope_of(&self, token: &str) -> Option<String> {
        if !self.access_token_is_valid(token) {
            return None;
        }
        self.inner.lock().unwrap().access_scopes.get(token).cloned()
    }

    /// How many clients registered dynamically.
    pub fn registrations(&self) -> usize {
        self.inner.lock().unwrap().registered.len()
    }

    /// The form of every authenticated token request, in order.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.inner.lock().unwrap().token_requests.clone()
    }

    /// The metadata each dynamic registration sent (RFC 7591), in order.
    pub fn registration_requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().registration_requests.clone()
    }

    /// Every token revoked at the revocation endpoint, in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.inner.lock().unwrap().revoked.clone()
    }

    pub fn documents_fetched(&self) -> usize {
        self.inner.lock().unwrap().documents_fetched
    }

    /// The client_id of every successful token request, in order.
    pub fn token_clients(&self) -> Vec<String> {
        self.inner.lock().unwrap().token_clients.clone()
    }

    /// Every access token ever issued (tests check none of them leaks to the client).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.inner.lock().unwrap().issued.clone()
    }

    fn issuer(&self) -> String {
        self.issuer.lock().unwrap().clone()
    }

    fn mint_tokens(&self, scope: &str, nonce: Option<&str>) -> Value {
        let o = self.options();
        let now = self.clock.now();
        let access = format!("idp_at_{}", random_b64(24));
        let mut inner = self.inner.lock().unwrap();
        inner.access_tokens.insert(access.clone(), o.access_ttl_secs.map(|ttl| now + ttl));
        inner.access_scopes.insert(access.clone(), scope.to_owned());
        inner.issued.push(access.clone());
        let mut body = json!({ "access_token": access, "token_type": "Bearer", "scope": scope });
        if let Some(ttl) = o.access_ttl_secs {
            body["expires_in"] = ttl.into();
        }
        if o.issue_refresh_tokens {
            let refresh = format!("idp_rt_{}", random_b64(24));
            inner.refresh_tokens.insert(refresh.clone(), scope.to_owned());
            body["refresh_token"] = refresh.into();
        }
        if o.issue_id_token && scope.split(' ').any(|s| s == "openid") {
            let mut claims = json!({
                "iss": self.issuer(), "aud": o.client_id, "sub": o.subject,
                "iat": now, "exp": now + 600,
            });
            if let Some(nonce) = nonce {
                claims["nonce"] = nonce.into();
            }
            for (k, v) in &o.claims {
                claims[k] = v.clone();
            }
            body["id_token"] = if o.sign_with_unpublished_key {
                SigningKey::generate().sign_jwt(&claims)
            } else {
                self.signing.sign_jwt(&claims)
            }
            .into();
        }
        body
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

async fn discovery(State(idp): State<DevIdp>) -> Response {
    let issuer = idp.issuer();
    let o = idp.options();
    let listed_scopes: Vec<&str> = ["openid", "files:read", "files:write", "offline_access"]
        .into_iter()
        .filter(|s| !o.unlisted_scopes.iter().any(|u| u == s))
        .collect();
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "jwks_uri": format!("{issuer}/jwks"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "scopes_supported": listed_scopes,
        "authorization_response_iss_parameter_supported": o.iss_parameter_supported,
        "client_id_metadata_document_supported": o.metadata_documents,
    });
    if o.dynamic_registration {
        doc["registration_endpoint"] = format!("{issuer}/register").into();
    }
    if !o.userinfo {
        doc.as_object_mut().expect("an object").remove("userinfo_endpoint");
    }
    axum::Json(doc).into_response()
}

/// RFC 7591, as much as the proxy uses: a confidential client unless it asks for `none`.
async fn register(State(idp): State<DevIdp>, axum::Json(metadata): axum::Json<Value>) -> Response {
    if !idp.options().dynamic_registration {
        return (StatusCode::NOT_FOUND, "no registration here").into_response();
    }
    let client_id = format!("dcr_{}", random_b64(12));
    let public = metadata["token_endpoint_auth_method"] == "none";
    let secret = (!public).then(|| random_b64(24));
    {
        let mut inner = idp.inner.lock().unwrap();
        inner.registered.insert(client_id.clone(), secret.clone());
        inner.registration_requests.push(metadata.clone());
    }
    let mut answer = metadata.clone();
    answer["client_id"] = client_id.into();
    if let Some(secret) = secret {
        answer["client_secret"] = secret.into();
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// RFC 7009: forgets the token (access or refresh) of an authenticated client.
async fn revoke(State(idp): State<DevIdp>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if client_of(&idp, &headers, &form).is_none() {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let mut inner = idp.inner.lock().unwrap();
    inner.access_tokens.remove(&token);
    inner.refresh_tokens.remove(&token);
    inner.revoked.push(token);
    StatusCode::OK.into_response()
}

async fn login_page(State(idp): State<DevIdp>, Query(q): Query<HashMap<String, String>>) -> Response {
    idp.inner.lock().unwrap().authorize_requests.push(q.clone());
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    if !knows_client(&idp, &client_id, &redirect_uri).await {
        return (StatusCode::BAD_REQUEST, Html("unknown client_id")).into_response();
    }
    let page = maud::html! {
        (maud::DOCTYPE)
        html {
            head { title { "Development identity provider" } }
            body {
                h1 { "Development identity provider" }
                p {
                    "Log in as the demo user " b { (idp.options().subject) }
                    ". This provider exists for development and tests only."
                }
                form method="post" action="/authorize" {
                    @for (k, v) in &q {
                        input type="hidden" name=(k) value=(v);
                    }
                    button type="submit" name="login" value="approve" { "Log in" }
                    button type="submit" name="login" value="deny" { "Cancel" }
                }
            }
        }
    };
    Html(page.into_string()).into_response()
}

async fn login_submit(State(idp): State<DevIdp>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let (Some(redirect_uri), Some(state)) = (form.get("redirect_uri"), form.get("state")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and state are required").into_response();
    };
    let Ok(mut target) = url::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response();
    };
    if form.get("login").map(String::as_str) != Some("approve") {
        target.query_pairs_mut().append_pair("error", "access_denied").append_pair("state", state);
        return Redirect::to(target.as_str()).into_response();
    }
    if form.get("code_challenge_method").map(String::as_str) != Some("S256") || !form.contains_key("code_challenge") {
        target.query_pairs_mut().append_pair("error", "invalid_request").append_pair("state", state);
        return Redirect::to(target.as_str()).into_response();
    }
    let code = format!("idp_ac_{}", random_b64(24));
    idp.inner.lock().unwrap().codes.insert(
        code.clone(),
        IssuedCode {
            redirect_uri: redirect_uri.clone(),
            challenge: form["code_challenge"].clone(),
            scope: form.get("scope").cloned().unwrap_or_default(),
            nonce: form.get("nonce").cloned(),
        },
    );
    // RFC 9207: name ourselves, as providers that support it do (and tests can forge it).
    let iss = form.get("forged_iss").cloned().unwrap_or_else(|| idp.issuer());
    target.query_pairs_mut().append_pair("code", &code).append_pair("state", state);
    if !idp.options().omit_iss {
        target.query_pairs_mut().append_pair("iss", &iss);
    }
    Redirect::to(target.as_str()).into_response()
}

/// Whether `client_id` may log users in with `redirect_uri`: the configured client, a
/// registered one, or (when enabled) a Client ID Metadata Document that lists it.
async fn knows_client(idp: &DevIdp, client_id: &str, redirect_uri: &str) -> bool {
    let o = idp.options();
    if client_id == o.client_id || idp.inner.lock().unwrap().registered.contains_key(client_id) {
        return true;
    }
    if !o.metadata_documents || !(client_id.starts_with("https://") || client_id.starts_with("http://")) {
        return false;
    }
    idp.inner.lock().unwrap().documents_fetched += 1;
    let Ok(resp) = reqwest::get(client_id).await else { return false };
    let Ok(doc) = resp.json::<Value>().await else { return false };
    doc["client_id"] == client_id
        && doc["redirect_uris"].as_array().is_some_and(|uris| uris.iter().any(|u| u == redirect_uri))
}

/// The client a token or revocation request authenticates as, if it does: the
/// configured client or a registered one with its secret (in a Basic header or the form),
/// a registered public client or (when enabled) a metadata-document client by its id.
fn client_of(idp: &DevIdp, headers: &HeaderMap, form: &HashMap<String, String>) -> Option<String> {
    let o = idp.options();
    let (id, secret) =
        match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic ")) {
            Some(basic) => {
                let decoded = STANDARD.decode(basic).ok()?;
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                let (id, secret) = decoded.split_once(':')?;
                let dec = |s: &str| {
                    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned())
                };
                (dec(id)?, dec(secret))
            }
            None => (form.get("client_id")?.clone(), form.get("client_secret").cloned()),
        };
    if id == o.client_id {
        return (secret.as_deref() == Some(o.client_secret.as_str())).then_some(id);
    }
    if let Some(expected) = idp.inner.lock().unwrap().registered.get(&id) {
        return (secret == *expected).then_some(id);
    }
    (o.metadata_documents && secret.is_none() && id.contains("://")).then_some(id)
}

async fn token(State(idp): State<DevIdp>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let Some(client) = client_of(&idp, &headers, &form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    };
    idp.inner.lock().unwrap().token_requests.push(form.clone());
    if let Some(fault) = idp.inner.lock().unwrap().fault.take() {
        return match fault {
            Fault::InvalidGrant => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "injected failure"),
            Fault::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "injected outage").into_response(),
            Fault::InvalidClient => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "injected bad secret"),
            Fault::Forbidden => (StatusCode::FORBIDDEN, "<html>blocked by policy</html>").into_response(),
        };
    }
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let issued = form.get("code").and_then(|c| idp.inner.lock().unwrap().codes.remove(c));
            let Some(issued) = issued else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
            };
            if form.get("redirect_uri") != Some(&issued.redirect_uri) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri mismatch");
            }
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            if mcp_oauth_core::pkce::s256_challenge(&verifier) != issued.challenge {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
            }
            idp.inner.lock().unwrap().code_exchanges += 1;
            idp.inner.lock().unwrap().token_clients.push(client);
            axum::Json(idp.mint_tokens(&issued.scope, issued.nonce.as_deref())).into_response()
        }
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            let rotate = idp.options().rotate_refresh_tokens;
            let scope = {
                let mut inner = idp.inner.lock().unwrap();
                inner.refresh_count += 1;
                if rotate {
                    inner.refresh_tokens.remove(&presented)
                } else {
                    inner.refresh_tokens.get(&presented).cloned()
                }
            };
            let Some(scope) = scope else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used refresh token");
            };
            idp.inner.lock().unwrap().token_clients.push(client);
            let mut body = idp.mint_tokens(&scope, None);
            body.as_object_mut().unwrap().remove("id_token");
            if !rotate {
                // Keep the old refresh token: the response carries none (like Google).
                if let Some(fresh) = body.as_object_mut().unwrap().remove("refresh_token") {
                    idp.inner.lock().unwrap().refresh_tokens.remove(fresh.as_str().unwrap());
                }
            }
            axum::Json(body).into_response()
        }
        _ => {
            oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code and refresh_token")
        }
    }
}

async fn jwks(State(idp): State<DevIdp>) -> Response {
    axum::Json(json!({ "keys": [idp.signing.jwk.clone()] })).into_response()
}

async fn userinfo(State(idp): State<DevIdp>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    idp.inner.lock().unwrap().userinfo_requests += 1;
    if !idp.access_token_is_valid(token) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")])
            .into_response();
    }
    let o = idp.options();
    let mut info = json!({"sub": o.subject, "name": "Demo User"});
    for (k, v) in &o.claims {
        info[k] = v.clone();
    }
    axum::Json(info).into_response()
}
