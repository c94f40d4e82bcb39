//! Finding a provider's endpoints from its issuer: OpenID Connect Discovery 1.0 first, then
//! the RFC 8414 authorization server metadata.

use serde_json::Value;

use crate::error::{UpstreamError, describe_transport_error};
use crate::provider::parse_url;

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
    let mut last = UpstreamError::Unavailable("no discovery document found".into());
    for url in candidates {
        match http.get(&url).header("accept", "application/json").send().await {
            Ok(resp) if resp.status().is_success() => {
                let doc: Value = resp
                    .json()
                    .await
                    .map_err(|e| UpstreamError::Protocol(format!("discovery document at {url}: {e}")))?;
                let named = doc["issuer"].as_str().unwrap_or_default();
                if named.trim_end_matches('/') != base {
                    return Err(UpstreamError::Protocol(format!(
                        "discovery document at {url} names issuer {named:?}, not {issuer:?}"
                    )));
                }
                return Ok(doc);
            }
            Ok(resp) if resp.status().is_server_error() => {
                last = UpstreamError::Unavailable(format!("discovery at {url}: HTTP {}", resp.status()))
            }
            Ok(resp) => last = UpstreamError::Protocol(format!("discovery at {url}: HTTP {}", resp.status())),
            Err(e) => {
                last = UpstreamError::Unavailable(format!("discovery at {url}: {}", describe_transport_error(&e)))
            }
        }
    }
    Err(last)
}
