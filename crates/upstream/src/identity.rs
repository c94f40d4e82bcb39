//! Who logged in: the subject of a verified id_token, or else the userinfo endpoint's answer.
//! The provider's signing keys are cached here.

use std::time::Instant;

use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use crate::answer::{self, Endpoint};
use crate::error::UpstreamError;
use crate::id_token;
use crate::jwks::{self, JwkSet};
use crate::provider::{Endpoints, ProviderSettings};
use crate::token_endpoint::UpstreamTokens;

/// Signing keys are fetched again when a token names an unknown key, but not more often
/// than this (a stream of forged `kid`s must not turn into a stream of fetches).
const JWKS_REFETCH_SECS: u64 = 30;

/// The provider's published signing keys and when they were fetched; empty until first needed.
#[derive(Default)]
pub(crate) struct SigningKeys(Mutex<Option<(JwkSet, Instant)>>);

/// What is needed to find out who logged in.
pub(crate) struct Context<'a> {
    pub http: &'a reqwest::Client,
    pub settings: &'a ProviderSettings,
    pub endpoints: &'a Endpoints,
    pub keys: &'a SigningKeys,
}

/// Who logged in: the id_token's subject when there is one, else the userinfo
/// endpoint's `sub` (OpenID) or `id` (GitHub and other plain OAuth APIs).
pub(crate) async fn subject(
    cx: &Context<'_>,
    tokens: &UpstreamTokens,
    nonce: Option<&str>,
    now: i64,
) -> Result<String, UpstreamError> {
    // An id_token counts only if its signature verifies against the provider's keys;
    // without published keys it is ignored in favour of the userinfo endpoint.
    let id_token = tokens.id_token.as_ref().filter(|_| cx.endpoints.jwks.is_some() || cx.endpoints.userinfo.is_none());
    if let Some(id_token) = id_token {
        verify_signature(cx, id_token).await?;
        let expect = id_token::Expectations {
            issuer: cx.settings.issuer.as_deref(),
            client_id: &cx.settings.client_id,
            nonce,
            now,
        };
        return id_token::subject(id_token, &expect).map_err(|e| UpstreamError::Protocol(e.to_string()));
    }
    let Some(userinfo) = cx.endpoints.userinfo.clone() else {
        return Err(UpstreamError::Protocol(
            "the provider returned no id_token and no userinfo_endpoint is configured".into(),
        ));
    };
    userinfo_subject(cx.http, userinfo, &tokens.access_token).await
}

async fn userinfo_subject(http: &reqwest::Client, url: Url, access_token: &str) -> Result<String, UpstreamError> {
    let info = answer::fetch_json(Endpoint::Userinfo, http.get(url).bearer_auth(access_token)).await?;
    match (&info["sub"], &info["id"]) {
        (Value::String(s), _) if !s.is_empty() => Ok(s.clone()),
        (_, Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        (_, Value::Number(n)) => Ok(n.to_string()),
        _ => Err(UpstreamError::Protocol("userinfo has neither sub nor id".into())),
    }
}

async fn fetch_keys(http: &reqwest::Client, url: &Url) -> Result<JwkSet, UpstreamError> {
    let doc = answer::fetch_json(Endpoint::Jwks, http.get(url.clone())).await?;
    serde_json::from_value(doc).map_err(|e| UpstreamError::Protocol(format!("jwks: {e}")))
}

/// Verifies an id_token's signature, fetching the keys on first use and again (rate
/// limited) when the token names a key we do not have, as after a key rotation.
async fn verify_signature(cx: &Context<'_>, id_token: &str) -> Result<(), UpstreamError> {
    let Some(url) = cx.endpoints.jwks.clone() else {
        return Err(UpstreamError::Protocol(
            "the provider sent an id_token but publishes no signing keys (set jwks_uri or userinfo_endpoint)".into(),
        ));
    };
    let mut cache = cx.keys.0.lock().await;
    let stale = cache.as_ref().is_none_or(|(_, at)| at.elapsed().as_secs() >= JWKS_REFETCH_SECS);
    if cache.is_none() {
        *cache = Some((fetch_keys(cx.http, &url).await?, Instant::now()));
    }
    let result = jwks::verify(id_token, &cache.as_ref().expect("filled above").0);
    match result {
        Err(jwks::SignatureError::NoKey) if stale => {
            *cache = Some((fetch_keys(cx.http, &url).await?, Instant::now()));
            jwks::verify(id_token, &cache.as_ref().expect("filled above").0)
        }
        other => other,
    }
    .map_err(|e| UpstreamError::Protocol(format!("id_token: {e}")))
}
