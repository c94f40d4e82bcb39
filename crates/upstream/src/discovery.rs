//! Finding a provider's endpoints from its issuer: OpenID Connect Discovery 1.0 first, then
//! the RFC 8414 authorization server metadata.

use serde_json::Value;

use crate::answer::{self, Endpoint};
use crate::error::UpstreamError;
use crate::settings::parse_url;

/// The provider's metadata document. It must name the configured issuer: a document that
/// names another one is somebody else's, and its endpoints are not to be trusted.
pub(crate) async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Value, UpstreamError> {
    let base = issuer.trim_end_matches('/');
    let parsed = parse_url("issuer", issuer)?;
    let origin = parsed.origin().ascii_serialization();
    let path = parsed.path().trim_end_matches('/');
    let candidates = [
        format!("{base}/.well-known/openid-configuration"),
        // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ];
    // Any failure at one place is a reason to try the other: a server may answer 404, or
    // 200 with an HTML page, at the one it does not serve.
    let none = UpstreamError::Unavailable("no discovery document found".into());
    first_naming(issuer, &candidates, none, |url| answer::fetch_json(Endpoint::Discovery, http.get(url))).await
}

/// The first of `candidates` where `fetch` finds a JSON document; that document must name
/// `issuer` (a document that names another one is somebody else's, and its endpoints are
/// not to be trusted: RFC 8414 §3.3). `none` when no place answers; otherwise the last
/// failure, saying where. Shared by the providers' discovery and brokered OAuth's, which
/// differ in the places they try, in order, and in how they fetch.
pub(crate) async fn first_naming<F, Fut>(
    issuer: &str,
    candidates: &[String],
    none: UpstreamError,
    fetch: F,
) -> Result<Value, UpstreamError>
where
    F: Fn(&str) -> Fut,
    Fut: std::future::Future<Output = Result<Value, UpstreamError>>,
{
    let base = issuer.trim_end_matches('/');
    let mut last = none;
    for url in candidates {
        let doc = match fetch(url).await {
            Ok(doc) => doc,
            Err(e) => {
                last = at(url, e);
                continue;
            }
        };
        let named = doc["issuer"].as_str().unwrap_or_default();
        if named.trim_end_matches('/') != base {
            return Err(UpstreamError::Protocol(format!(
                "the metadata at {url} names issuer {named:?}, not {issuer:?}"
            )));
        }
        return Ok(doc);
    }
    Err(last)
}

/// Says which place failed: the operator fixing the issuer needs to know.
pub(crate) fn at(url: impl std::fmt::Display, e: UpstreamError) -> UpstreamError {
    match e {
        UpstreamError::Unavailable(m) => UpstreamError::Unavailable(format!("{m} (at {url})")),
        UpstreamError::Protocol(m) => UpstreamError::Protocol(format!("{m} (at {url})")),
        UpstreamError::Misconfigured(m) => UpstreamError::Misconfigured(format!("{m} (at {url})")),
        // Not produced for a document endpoint (see `answer::classify`); kept as it is.
        rejected @ UpstreamError::Rejected { .. } => rejected,
    }
}
