//! Client authentication at the token and revocation endpoints (RFC 6749 §2.3).

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcp_oauth_core::OAuthError;
use mcp_oauth_core::client::{Client, PresentedCredentials};
use mcp_oauth_core::form::Params;

use crate::client_address::ClientAddress;
use crate::error::HttpError;
use crate::extract::authorization;
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
        return Ok(PresentedCredentials { client_id, secret: Some(form_decode(secret)) });
    }
    let client_id = params.get("client_id").ok_or_else(|| OAuthError::invalid_client("client_id is required"))?;
    Ok(PresentedCredentials { client_id: client_id.to_owned(), secret: params.get("client_secret").map(str::to_owned) })
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
    let has_secret = creds.secret.is_some();
    if has_secret {
        app.limits.check_client_auth(from.client, &creds.client_id)?;
    }
    let client = app
        .clients
        .find(&server.slug, &creds.client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_client("unknown client_id; register again"))?;
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
