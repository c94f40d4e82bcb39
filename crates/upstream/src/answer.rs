//! The provider's HTTP answers, read one way. Every endpoint's status (and, at the token
//! endpoint, its OAuth error body) goes through [`classify`], so that the same answer means
//! the same thing wherever it comes from.

use std::fmt;

use reqwest::StatusCode;
use serde_json::Value;

use crate::error::UpstreamError;

/// Which of the provider's endpoints answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Discovery,
    Jwks,
    Token,
    Userinfo,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Self::Discovery => "discovery",
            Self::Jwks => "jwks_uri",
            Self::Token => "token endpoint",
            Self::Userinfo => "userinfo",
        }
    }

    /// Only the token endpoint has OAuth error bodies (RFC 6749 §5.2); a userinfo endpoint
    /// reports in `WWW-Authenticate`, and its status is read instead.
    fn has_oauth_error_bodies(self) -> bool {
        matches!(self, Self::Token)
    }

    /// The `error` of a refusal that came without an OAuth error body.
    fn refusal_code(self, status: StatusCode) -> String {
        match self {
            Self::Userinfo => format!("userinfo_http_{}", status.as_u16()),
            _ => format!("http_{}", status.as_u16()),
        }
    }
}

/// An OAuth error response body (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthErrorBody {
    pub error: String,
    pub description: Option<String>,
}

impl OAuthErrorBody {
    fn from_json(json: &Value) -> Option<Self> {
        Some(Self {
            error: json["error"].as_str()?.to_owned(),
            description: json["error_description"].as_str().map(str::to_owned),
        })
    }
}

impl fmt::Display for OAuthErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(d) => write!(f, "{} ({d})", self.error),
            None => f.write_str(&self.error),
        }
    }
}

/// The one reading of a provider's answer: `Ok` when it is a success to be read on, else the
/// kind of failure. In order:
/// - 5xx, 408, 429 or `temporarily_unavailable`: the provider failing or asking us to come
///   back later, whatever else the body says: `Unavailable`;
/// - an OAuth error body, whatever the status (GitHub sends errors with 200): `Rejected` if
///   it refuses the user's grant (`invalid_grant`), `Misconfigured` otherwise (it refuses
///   the proxy: its credentials, its request);
/// - 2xx: success;
/// - a userinfo 401: the user's access token refused, `Rejected`;
/// - any other status (3xx, since redirects are not followed, and 4xx): `Misconfigured`,
///   since nothing in it says the user's grant is gone.
pub(crate) fn classify(
    endpoint: Endpoint,
    status: StatusCode,
    oauth_error: Option<OAuthErrorBody>,
) -> Result<(), UpstreamError> {
    let name = endpoint.name();
    let transient =
        status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS;
    match oauth_error {
        Some(e) if transient || e.error == "temporarily_unavailable" => {
            Err(UpstreamError::Unavailable(format!("{name} answered HTTP {status}: {e}")))
        }
        Some(e) if refuses_the_grant(&e.error) => {
            Err(UpstreamError::Rejected { error: e.error, description: e.description })
        }
        Some(e) => Err(UpstreamError::Misconfigured(format!("{name} answered HTTP {status}: {e}"))),
        None if transient => Err(UpstreamError::Unavailable(format!("{name} answered HTTP {status}"))),
        None if status.is_success() => Ok(()),
        None if endpoint == Endpoint::Userinfo && status == StatusCode::UNAUTHORIZED => {
            Err(UpstreamError::Rejected { error: endpoint.refusal_code(status), description: None })
        }
        None => Err(UpstreamError::Misconfigured(format!("{name} answered HTTP {status}"))),
    }
}

/// Whether an OAuth error refuses the user's grant itself: `invalid_grant` (RFC 6749
/// §5.2), and GitHub's name for it at the code exchange, `bad_verification_code`.
fn refuses_the_grant(error: &str) -> bool {
    matches!(error, "invalid_grant" | "bad_verification_code")
}

/// Sends a request to one of the provider's endpoints and returns the JSON of a successful
/// answer. A request that fails on the way (connecting, timing out, reading the body) is
/// `Unavailable`; a successful answer that is not JSON is `Protocol`.
pub(crate) async fn fetch_json(endpoint: Endpoint, request: reqwest::RequestBuilder) -> Result<Value, UpstreamError> {
    let name = endpoint.name();
    let transport = |e: reqwest::Error| UpstreamError::Unavailable(format!("{name}: {}", describe_transport_error(&e)));
    let resp = request.header("accept", "application/json").send().await.map_err(transport)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(transport)?;
    let json = serde_json::from_slice::<Value>(&body);
    let oauth_error = match &json {
        Ok(json) if endpoint.has_oauth_error_bodies() => OAuthErrorBody::from_json(json),
        _ => None,
    };
    classify(endpoint, status, oauth_error)?;
    json.map_err(|e| UpstreamError::Protocol(format!("{name} did not answer JSON: {e}")))
}

/// A failed request to the provider, described by its kind and innermost cause. reqwest's own
/// message (and its `without_url()`) leads with the URL and hides the cause behind it; the
/// URLs carry nothing secret (secrets go in bodies and headers), but the cause is what an
/// operator needs.
fn describe_transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut src = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn body(error: &str) -> Option<OAuthErrorBody> {
        Some(OAuthErrorBody { error: error.into(), description: None })
    }

    fn kind(r: Result<(), UpstreamError>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(UpstreamError::Rejected { .. }) => "rejected",
            Err(UpstreamError::Unavailable(_)) => "unavailable",
            Err(UpstreamError::Protocol(_)) => "protocol",
            Err(UpstreamError::Misconfigured(_)) => "misconfigured",
        }
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn only_invalid_grant_refuses_the_grant_and_the_rest_is_about_the_proxy() {
        use Endpoint::Token;
        let cases: &[(u16, Option<&str>, &str)] = &[
            (200, None, "ok"),
            (400, Some("invalid_grant"), "rejected"),
            (200, Some("bad_verification_code"), "rejected"), // GitHub: errors with 200
            (401, Some("invalid_client"), "misconfigured"),
            (400, Some("unauthorized_client"), "misconfigured"),
            (400, Some("invalid_request"), "misconfigured"),
            (200, Some("incorrect_client_credentials"), "misconfigured"), // GitHub's invalid_client
            (400, None, "misconfigured"),
            (401, None, "misconfigured"),
            (403, None, "misconfigured"), // a firewall or CDN in the way
            (404, None, "misconfigured"), // a wrong path
            (302, None, "misconfigured"), // redirects are not followed
            (400, Some("temporarily_unavailable"), "unavailable"),
            (500, None, "unavailable"),
            (503, Some("server_error"), "unavailable"),
            (408, None, "unavailable"),
            (429, None, "unavailable"),
            (429, Some("slow_down"), "unavailable"),
        ];
        for &(code, error, expected) in cases {
            assert_eq!(kind(classify(Token, status(code), error.and_then(body))), expected, "{code} {error:?}");
        }
    }

    #[test]
    fn refusals_keep_the_providers_words_or_name_the_status() {
        let described = Some(OAuthErrorBody { error: "invalid_grant".into(), description: Some("used".into()) });
        assert_eq!(
            classify(Endpoint::Token, status(400), described),
            Err(UpstreamError::Rejected { error: "invalid_grant".into(), description: Some("used".into()) })
        );
        assert_eq!(
            classify(Endpoint::Token, status(403), None),
            Err(UpstreamError::Misconfigured("token endpoint answered HTTP 403 Forbidden".into()))
        );
        assert_eq!(
            classify(Endpoint::Userinfo, status(401), None),
            Err(UpstreamError::Rejected { error: "userinfo_http_401".into(), description: None })
        );
    }

    #[test]
    fn document_endpoints_that_refuse_are_misconfigured_not_refusing_the_user() {
        for endpoint in [Endpoint::Discovery, Endpoint::Jwks] {
            assert_eq!(kind(classify(endpoint, status(200), None)), "ok");
            assert_eq!(kind(classify(endpoint, status(404), None)), "misconfigured", "{endpoint:?}");
            assert_eq!(kind(classify(endpoint, status(403), None)), "misconfigured", "{endpoint:?}");
            assert_eq!(kind(classify(endpoint, status(502), None)), "unavailable", "{endpoint:?}");
            assert_eq!(kind(classify(endpoint, status(429), None)), "unavailable", "{endpoint:?}");
        }
        assert_eq!(kind(classify(Endpoint::Userinfo, status(401), None)), "rejected");
        assert_eq!(kind(classify(Endpoint::Userinfo, status(403), None)), "misconfigured");
        assert_eq!(kind(classify(Endpoint::Userinfo, status(503), None)), "unavailable");
        assert_eq!(kind(classify(Endpoint::Userinfo, status(429), None)), "unavailable");
    }

    /// Serves one canned HTTP answer on a loopback port; returns its URL.
    async fn answer_once(response: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(response.as_bytes()).await;
        });
        url
    }

    fn http() -> reqwest::Client {
        crate::http_client::for_provider_calls()
    }

    #[tokio::test]
    async fn fetch_json_reads_the_body_then_classifies() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"a\":\"ok\"}\n";
        let url = answer_once(ok).await;
        assert_eq!(fetch_json(Endpoint::Jwks, http().get(url)).await.unwrap()["a"], "ok");

        let html = "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\n\r\n<html>";
        let url = answer_once(html).await;
        assert!(matches!(fetch_json(Endpoint::Token, http().post(url)).await, Err(UpstreamError::Protocol(_))));

        let refused = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 25\r\n\r\n\
                       {\"error\":\"invalid_grant\"}";
        let url = answer_once(refused).await;
        assert_eq!(
            fetch_json(Endpoint::Token, http().post(url)).await,
            Err(UpstreamError::Rejected { error: "invalid_grant".into(), description: None })
        );
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_unavailable() {
        // Bind then drop: nothing listens on that port any more.
        let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let r = fetch_json(Endpoint::Userinfo, http().get(format!("http://127.0.0.1:{port}/"))).await;
        assert!(
            matches!(&r, Err(UpstreamError::Unavailable(m)) if m.starts_with("userinfo: connection failed")),
            "{r:?}"
        );
    }
}
