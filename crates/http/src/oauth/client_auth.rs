//! Client authentication at the token and revocation endpoints (RFC 6749 §2.3): a secret
//! (Basic or in the body), or a signed client assertion (`private_key_jwt`, RFC 7523 §2.2)
//! checked against the client's keys, its `jti` spent in the store so that it works once
//! at any replica.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::{AuthMethod, Client, PresentedCredentials};
use mcp_oauth_core::form::Params;
use mcp_oauth_core::jwt_grant::{CLIENT_ASSERTION_TYPE, ClientExpected, claimed_issuer};
use mcp_oauth_core::token::TokenHash;
use mcp_oauth_store::AssertionUse;

use crate::client_address::ClientAddress;
use crate::error::HttpError;
use crate::extract::authorization;
use crate::services::clients::{DocumentError, KeyRefusal};
use crate::settings::ServerSettings;
use crate::state::App;

/// RFC 6749 §2.3.1: both halves of Basic credentials are form-urlencoded before base64.
fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The client credentials a token or revocation request carries, read once from its
/// `Authorization` header and form: HTTP Basic, or `client_id` (and `client_secret`) in
/// the body. What is wrong with them is kept, and answered when the request is
/// authenticated (after what the endpoint checks first).
pub struct ClientCredentials(Result<PresentedCredentials, OAuthError>);

impl ClientCredentials {
    /// Using both Basic and a body secret at once is an `invalid_request` (RFC 6749 §2.3).
    pub fn read(headers: &HeaderMap, params: &Params) -> Self {
        Self(presented(headers, params))
    }
}

fn presented(headers: &HeaderMap, params: &Params) -> Result<PresentedCredentials, OAuthError> {
    if let Some(assertion) = params.get("client_assertion") {
        if authorization(headers, "Basic").is_some() || params.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request("use one client authentication method, not two"));
        }
        if params.get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
            return Err(OAuthError::invalid_client("client_assertion_type is not supported"));
        }
        // The client is named by the assertion's issuer (checked with its signature), or
        // by `client_id`, which must then be the same.
        let client_id = match (params.get("client_id"), claimed_issuer(assertion)) {
            (Some(id), _) => id.to_owned(),
            (None, Some(iss)) => iss,
            (None, None) => return Err(OAuthError::invalid_client("the client assertion names no client")),
        };
        return Ok(PresentedCredentials { client_id, secret: None, assertion: Some(assertion.to_owned()) });
    }
    if let Some(b64) = authorization(headers, "Basic") {
        if params.get("client_secret").is_some() {
            return Err(OAuthError::invalid_request("use one client authentication method, not two"));
        }
        let malformed = || OAuthError::invalid_client("malformed Basic credentials");
        let decoded = STANDARD.decode(b64).ok().and_then(|d| String::from_utf8(d).ok()).ok_or_else(malformed)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
        let client_id = form_decode(id);
        if let Some(body_id) = params.get("client_id")
            && body_id != client_id
        {
            return Err(OAuthError::invalid_request("client_id differs from the Basic credentials"));
        }
        return Ok(PresentedCredentials { client_id, secret: Some(form_decode(secret)), assertion: None });
    }
    let client_id = params.get("client_id").ok_or_else(|| OAuthError::invalid_client("client_id is required"))?;
    let secret = params.get("client_secret").map(str::to_owned);
    Ok(PresentedCredentials { client_id: client_id.to_owned(), secret, assertion: None })
}

/// Finds and authenticates the client of a token or revocation request, within the
/// failure limits (see `limits`): an attempt with a secret is refused at once while the
/// address, or this client from this address, has used up its failures, and a wrong
/// secret is counted. A public client that sends a secret is refused without counting:
/// it guesses nothing, and counting it would let anyone who knows the (public) client id
/// use up that client's budget.
pub async fn authenticate(
    app: &App,
    server: &ServerSettings,
    from: ClientAddress,
    credentials: ClientCredentials,
) -> Result<Client, HttpError> {
    let creds = credentials.0?;
    let has_secret = creds.secret.is_some() || creds.assertion.is_some();
    if has_secret {
        app.limits.check_client_auth(from.client, &creds.client_id)?;
    }
    let client = app
        .clients
        .find(&server.slug, &creds.client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client_id; register again"))?;
    if client.metadata.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
        let Some(assertion) = creds.assertion.as_deref() else {
            return Err(OAuthError::invalid_client("client authentication is required").into());
        };
        return match client_assertion(app, server, &client, assertion).await {
            Ok(()) => Ok(client),
            Err(e) => {
                app.limits.failed_client_auth(from.client, &creds.client_id);
                Err(e)
            }
        };
    }
    if client.secret_hash.is_none() && has_secret {
        return Err(OAuthError::invalid_client("this client is public: send no client secret").into());
    }
    client.authenticate(&creds).inspect_err(|_| {
        if has_secret {
            app.limits.failed_client_auth(from.client, &creds.client_id);
        }
    })?;
    Ok(client)
}

/// The most unexpired client assertion ids remembered per client (see `use_assertion`).
const USED_ASSERTIONS_PER_CLIENT: i64 = 10_000;
/// Clock skew tolerated, and the longest a client assertion may live.
const LEEWAY_SECS: i64 = 60;
const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// Checks a `private_key_jwt` client's assertion and spends its `jti`. Refusals are
/// `invalid_client` with their reason in the log; keys that cannot be fetched now are
/// `temporarily_unavailable`.
async fn client_assertion(app: &App, server: &ServerSettings, client: &Client, jwt: &str) -> Result<(), HttpError> {
    let refused = |reason: &dyn std::fmt::Display| {
        tracing::info!(server = %server.slug, client_id = %client.client_id, %reason, "client assertion refused");
        HttpError::from(OAuthError::invalid_client("client authentication failed"))
    };
    let issuer = app.settings.issuer(&server.slug);
    let token_endpoint = format!("{issuer}/token");
    let audiences = [token_endpoint.as_str(), issuer.as_str()];
    let now = app.now();
    let expected = ClientExpected {
        client_id: &client.client_id,
        audiences: &audiences,
        now,
        leeway_secs: LEEWAY_SECS,
        max_lifetime_secs: MAX_ASSERTION_LIFETIME_SECS,
    };
    let accepted = match app.clients.keys.verify(client, jwt, &expected).await {
        Ok(accepted) => accepted,
        Err(KeyRefusal::Keys(DocumentError::Unavailable { retry_after })) => {
            let later = "the client's keys cannot be fetched now; try again later";
            return Err(OAuthError::temporarily_unavailable(later, retry_after).into());
        }
        Err(e) => return Err(refused(&e)),
    };
    let spender = format!("client:{}", client.client_id);
    let jti = TokenHash::of(&accepted.jti);
    let until = accepted.expires_at + LEEWAY_SECS;
    match app.store.use_assertion(&spender, &jti, until, now, USED_ASSERTIONS_PER_CLIENT).await? {
        AssertionUse::First => Ok(()),
        AssertionUse::Replay => Err(refused(&"jti was already used")),
        AssertionUse::Full => Err(refused(&"the client's assertion ids are at their bound")),
    }
}
