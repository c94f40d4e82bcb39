//! Who logged in: the subject of a verified id_token, or else the userinfo endpoint's answer.
//! Whether the provider still accepts a user's access token: the userinfo endpoint's answer.
//! The provider's signing keys are cached here.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use crate::answer::{self, Endpoint};
use crate::error::UpstreamError;
use crate::id_token::{self, IdTokenError};
use crate::settings::{Endpoints, ProviderSettings};
use crate::token_endpoint::UpstreamTokens;

/// Signing keys are fetched again when a token names an unknown key, but not more often
/// than this (a stream of forged `kid`s must not turn into a stream of fetches).
const JWKS_REFETCH: Duration = Duration::from_secs(30);

/// The provider's published signing keys, fetched when first needed.
#[derive(Default)]
pub(crate) struct SigningKeys(Mutex<Option<Fetched>>);

struct Fetched {
    keys: JwkSet,
    at: Instant,
}

/// What is needed to find out who logged in.
pub(crate) struct Context<'a> {
    pub http: &'a reqwest::Client,
    pub settings: &'a ProviderSettings,
    pub endpoints: &'a Endpoints,
    pub keys: &'a SigningKeys,
}

/// Who logged in, as the provider vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's stable id for the user.
    pub subject: String,
    /// Only an address the provider says it verified (`email_verified: true`): an address
    /// a user can set at will must not decide access.
    pub email: Option<String>,
    /// From the provider's groups claim (`groups_claim`), if it sends one.
    pub groups: Vec<String>,
    /// The user's display name (`name`), if the provider sends one: for identity
    /// assertions, never for access decisions.
    pub name: Option<String>,
}

impl Identity {
    fn from_claims(subject: String, claims: &Value, groups_claim: &str) -> Self {
        let verified =
            matches!(&claims["email_verified"], Value::Bool(true)) || claims["email_verified"].as_str() == Some("true");
        let email = claims["email"].as_str().filter(|_| verified).map(str::to_owned);
        let groups = match &claims[groups_claim] {
            Value::Array(items) => items.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
            Value::String(one) => vec![one.clone()],
            _ => vec![],
        };
        let name = claims["name"].as_str().filter(|n| !n.is_empty()).map(str::to_owned);
        Self { subject, email, groups, name }
    }
}

/// Who logged in: the id_token's subject and claims when there is one, else the userinfo
/// endpoint's `sub` (OpenID) or `id` (GitHub and other plain OAuth APIs) and claims.
pub(crate) async fn identify(
    cx: &Context<'_>,
    tokens: &UpstreamTokens,
    nonce: Option<&str>,
    now: i64,
) -> Result<Identity, UpstreamError> {
    // An id_token counts only if its signature verifies against the provider's keys;
    // without published keys it is ignored in favour of the userinfo endpoint.
    let id_token = tokens.id_token.as_ref().filter(|_| cx.endpoints.jwks.is_some() || cx.endpoints.userinfo.is_none());
    if let Some(id_token) = id_token {
        let expect = id_token::Expectations {
            issuer: cx.settings.issuer.as_deref(),
            client_id: &cx.settings.client_id,
            nonce,
            now,
        };
        let (subject, claims) = verified_claims(cx, id_token, &expect).await?;
        return Ok(Identity::from_claims(subject, &claims, &cx.settings.groups_claim));
    }
    let Some(userinfo) = cx.endpoints.userinfo.clone() else {
        return Err(UpstreamError::Protocol(
            "the provider returned no id_token and no userinfo_endpoint is configured".into(),
        ));
    };
    let info = answer::fetch_json(Endpoint::Userinfo, cx.http.get(userinfo).bearer_auth(&tokens.access_token)).await?;
    let subject = match (&info["sub"], &info["id"]) {
        (Value::String(s), _) if !s.is_empty() => s.clone(),
        (_, Value::String(s)) if !s.is_empty() => s.clone(),
        (_, Value::Number(n)) => n.to_string(),
        _ => return Err(UpstreamError::Protocol("userinfo has neither sub nor id".into())),
    };
    Ok(Identity::from_claims(subject, &info, &cx.settings.groups_claim))
}

/// What the provider says of an access token it issued, when asked at its userinfo endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// The provider answered with the user's claims: it still accepts the token.
    Accepted,
    /// The provider has no userinfo endpoint, so it cannot be asked.
    Unknown,
}

/// Whether the provider still accepts `access_token`: a refusal (its userinfo endpoint
/// answering 401) is `UpstreamError::Rejected`, as at the login; any other failure says
/// nothing about the token (see `answer::classify`).
pub(crate) async fn check_access_token(cx: &Context<'_>, access_token: &str) -> Result<TokenStatus, UpstreamError> {
    let Some(userinfo) = cx.endpoints.userinfo.clone() else { return Ok(TokenStatus::Unknown) };
    answer::fetch_json(Endpoint::Userinfo, cx.http.get(userinfo).bearer_auth(access_token)).await?;
    Ok(TokenStatus::Accepted)
}

/// The keys in the provider's JWKS document that we can read. A key of a kind the library
/// does not know is left out rather than failing the whole set: the others still verify.
async fn fetch_keys(http: &reqwest::Client, url: &Url) -> Result<Fetched, UpstreamError> {
    let doc = answer::fetch_json(Endpoint::Jwks, http.get(url.clone())).await?;
    let Some(published) = doc["keys"].as_array() else {
        return Err(UpstreamError::Protocol("the jwks_uri document has no keys array".into()));
    };
    let keys = published.iter().filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok()).collect();
    Ok(Fetched { keys: JwkSet { keys }, at: Instant::now() })
}

/// The subject and claims of a verified id_token. The keys are fetched on first use, and again (rate
/// limited) when no key we have could have signed the token, as after a key rotation.
async fn verified_claims(
    cx: &Context<'_>,
    id_token: &str,
    expect: &id_token::Expectations<'_>,
) -> Result<(String, Value), UpstreamError> {
    let Some(url) = cx.endpoints.jwks.as_ref() else {
        return Err(UpstreamError::Protocol(
            "the provider sent an id_token but publishes no signing keys (set jwks_uri or userinfo_endpoint)".into(),
        ));
    };
    let mut cache = cx.keys.0.lock().await;
    let fetched = match cache.take() {
        Some(fetched) => fetched,
        None => fetch_keys(cx.http, url).await?,
    };
    let fetched = cache.insert(fetched);
    match id_token::verify(id_token, &fetched.keys, expect) {
        Err(IdTokenError::NoKey) if fetched.at.elapsed() >= JWKS_REFETCH => {
            let fetched = cache.insert(fetch_keys(cx.http, url).await?);
            id_token::verify(id_token, &fetched.keys, expect)
        }
        other => other,
    }
    .map_err(|e| UpstreamError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Identity;

    #[test]
    fn claims_give_a_verified_email_groups_and_a_name() {
        let claims = json!({"email": "a@example.com", "email_verified": true, "groups": ["g"], "name": "Ada"});
        let who = Identity::from_claims("u".into(), &claims, "groups");
        assert_eq!(who.email.as_deref(), Some("a@example.com"));
        assert_eq!((who.groups, who.name.as_deref()), (vec!["g".to_owned()], Some("Ada")));
        let unverified = json!({"email": "a@example.com", "name": ""});
        let who = Identity::from_claims("u".into(), &unverified, "groups");
        assert_eq!((who.email, who.name), (None, None), "an unverified email and an empty name are not kept");
    }
}
