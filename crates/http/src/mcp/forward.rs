//! Sending a request to the MCP upstream and streaming its answer back.

use std::pin::Pin;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use prometheus_client::metrics::gauge::Gauge;
use tower_http::timeout::TimeoutBody;

use super::tool_list::{EventStream, MAX_EDITED_MESSAGE, ToolEdit, Unreadable, edit_json};
use crate::client_address::ClientAddress;
use crate::error::HttpError;
use crate::services::identities::IdentityHeaders;
use crate::services::mcp_client::McpClient;
use crate::settings::{ServerSettings, UpstreamAuth, speaks_for_the_proxy};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and so
/// never cross a proxy.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn connection_named(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// Request headers that go upstream: everything but hop-by-hop headers, `Host` (the
/// upstream's own is set), `Content-Length` (recomputed), the client's credentials (its
/// token and cookies are for the proxy alone), the headers that carry what the proxy
/// sends (`ours`: the provider token's, the assertion's, a static credential's), and
/// every header that speaks for the proxy (identity and forwarding headers, which the
/// proxy sets itself: see [`speaks_for_the_proxy`]).
fn forwardable_request_header(name: &HeaderName, named: &[String], ours: &[Option<&HeaderName>]) -> bool {
    let n = name.as_str();
    !(HOP_BY_HOP.contains(&n)
        || named.iter().any(|c| c == n)
        || name == header::HOST
        || name == header::CONTENT_LENGTH
        || name == header::AUTHORIZATION
        || name == header::COOKIE
        || ours.iter().flatten().any(|h| *h == name)
        || speaks_for_the_proxy(n))
}

/// The headers that carry what the proxy sends `server`'s MCP upstream, whichever mode it
/// is in: a client's value for any of them never crosses.
fn credential_headers(server: &ServerSettings) -> [Option<&HeaderName>; 3] {
    let (assertion, fixed) = match &server.upstream_auth {
        UpstreamAuth::Identity(identity) => (identity.header.as_ref(), identity.static_header.as_ref().map(|(n, _)| n)),
        _ => (None, None),
    };
    [Some(&server.upstream_token_header), assertion, fixed]
}

/// What the proxy sends the MCP upstream to say the request is the user's.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// The user's provider token, in the server's token header and format.
    ProviderToken(&'a str),
    /// The value of the identity-assertion header (see `services::identities`), with the
    /// server's static credential header beside it, if it has one.
    Assertion(&'a HeaderValue),
    /// Nothing (`upstream_auth = "none"`).
    Nothing,
}

/// The forwarding headers the MCP upstream receives: the client's trusted chain (if the
/// peer is a trusted proxy) extended by this hop, else this hop alone.
fn set_forwarding(headers: &mut HeaderMap, incoming: &HeaderMap, from: &ClientAddress, (proto, host): (&str, &str)) {
    let chain =
        incoming.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ");
    let forwarded_for = if from.peer_is_trusted && !chain.is_empty() {
        format!("{chain}, {}", from.peer)
    } else {
        from.peer.to_string()
    };
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(headers, "x-forwarded-for", &forwarded_for);
    let trusted_or = |name: &str, ours: &str| -> String {
        match incoming.get(name).and_then(|v| v.to_str().ok()) {
            Some(theirs) if from.peer_is_trusted => theirs.to_owned(),
            _ => ours.to_owned(),
        }
    };
    set(headers, "x-forwarded-proto", &trusted_or("x-forwarded-proto", proto));
    set(headers, "x-forwarded-host", &trusted_or("x-forwarded-host", host));
}

/// Response headers that speak for the proxy's origin, not the MCP upstream's, and so are
/// the proxy's to send or not: the upstream's cookies would be set on the proxy's origin,
/// its `Strict-Transport-Security` would pin the proxy's host to its policy, its
/// `WWW-Authenticate` challenge would send the client to the upstream's authorization
/// server instead of ours, and its `Server` would describe another program.
const ORIGIN_HEADERS: &[HeaderName] =
    &[header::SET_COOKIE, header::STRICT_TRANSPORT_SECURITY, header::WWW_AUTHENTICATE, header::SERVER];

/// Response headers that come back: everything but hop-by-hop headers and those above.
fn forwardable_response_header(name: &HeaderName, named: &[String]) -> bool {
    let n = name.as_str();
    !(HOP_BY_HOP.contains(&n) || named.iter().any(|c| c == n) || ORIGIN_HEADERS.contains(name))
}

/// Sends the client's request to `server`'s MCP upstream with `credential` in place of
/// the client's credentials, and the grant's identity headers if the handler attached
/// them (`IdentityHeaders`, a request extension).
pub async fn send(
    client: &McpClient,
    server: &ServerSettings,
    parts: &Parts,
    body: Bytes,
    credential: Credential<'_>,
    (from, public): (&ClientAddress, (&str, &str)),
) -> Result<Response<Incoming>, HttpError> {
    let named = connection_named(&parts.headers);
    let ours = credential_headers(server);
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 4);
    for (name, value) in &parts.headers {
        if forwardable_request_header(name, &named, &ours) {
            headers.append(name.clone(), value.clone());
        }
    }
    set_forwarding(&mut headers, &parts.headers, from, public);
    if from.peer_is_trusted
        && let Some(forwarded) = parts.headers.get("forwarded")
    {
        headers.insert(HeaderName::from_static("forwarded"), forwarded.clone());
    }
    if let Some(identity) = parts.extensions.get::<IdentityHeaders>() {
        for (name, value) in identity.iter() {
            headers.insert(name.clone(), value.clone());
        }
    }
    match credential {
        Credential::ProviderToken(provider_token) => {
            let credential = server.upstream_token_format.replace("{token}", provider_token);
            let Ok(mut credential) = HeaderValue::from_str(&credential) else {
                return Err(HttpError::bad_upstream_token());
            };
            credential.set_sensitive(true);
            headers.insert(server.upstream_token_header.clone(), credential);
        }
        Credential::Assertion(value) => {
            if let UpstreamAuth::Identity(identity) = &server.upstream_auth {
                let name = identity.header.clone().unwrap_or(header::AUTHORIZATION);
                headers.insert(name, value.clone());
                if let Some((name, value)) = &identity.static_header {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        Credential::Nothing => {}
    }
    // hyper sets Host from the URI and Content-Length from the body.
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = server.mcp_upstream.clone();
    *request.headers_mut() = headers;
    client.send(request).await.map_err(|e| {
        tracing::warn!(server = %server.slug, error = %e, "MCP upstream unreachable");
        HttpError::from(e)
    })
}

/// The MCP upstream's answer as ours, its body passed on frame by frame as it arrives
/// (SSE events reach the client as they are produced), ended if it stays silent for
/// `idle`. Dropping the returned body, which hyper does when the client goes away, drops
/// the connection to the MCP upstream and so cancels its call.
pub fn stream_back(
    upstream: Response<Incoming>,
    idle: Duration,
    open_streams: impl FnOnce() -> Gauge<i64, AtomicI64>,
) -> Response {
    let (head, incoming) = upstream.into_parts();
    let headers = response_headers(&head.headers);
    let upstream = TimeoutBody::new(idle, incoming);
    let body = if is_event_stream(&headers) {
        // Counted open until the stream ends or the client goes away (the body is dropped).
        Body::new(Counted { body: upstream, _open: OpenStream::new(open_streams()) })
    } else {
        Body::new(upstream)
    };
    response(head.status, headers, body)
}

/// The answer to a request that lists tools, with `edit` applied to each tool list (see
/// `tool_list`). A JSON answer is read whole first, so one that cannot be read is refused
/// with 502 before anything reaches the client; an event stream is edited event by event
/// and cut where it cannot be read. Answers other than 2xx pass as they are: they carry
/// no tool list a client would take.
pub async fn edited_back(
    upstream: Response<Incoming>,
    idle: Duration,
    open_streams: impl FnOnce() -> Gauge<i64, AtomicI64>,
    edit: ToolEdit,
) -> Result<Response, HttpError> {
    if !upstream.status().is_success() {
        return Ok(stream_back(upstream, idle, open_streams));
    }
    let unreadable = |e: Unreadable| HttpError::upstream_unreadable(e.to_string());
    let (head, incoming) = upstream.into_parts();
    let mut headers = response_headers(&head.headers);
    // The request asked for the identity encoding; anything else cannot be read here.
    let encoded =
        headers.get_all(header::CONTENT_ENCODING).iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err(unreadable(Unreadable("it is compressed")));
    }
    // The body changes length as tools are left out.
    headers.remove(header::CONTENT_LENGTH);
    let upstream = TimeoutBody::new(idle, incoming);
    if !is_event_stream(&headers) {
        let whole = read_bounded(upstream, MAX_EDITED_MESSAGE).await.map_err(|e| match e.downcast::<Unreadable>() {
            Ok(e) => unreadable(*e),
            Err(_) => unreadable(Unreadable("the MCP server's answer broke off")),
        })?;
        let body = if whole.is_empty() { whole } else { edit_json(&whole, &edit).map_err(unreadable)? };
        return Ok(response(head.status, headers, Body::from(body)));
    }
    let open = OpenStream::new(open_streams());
    let events = futures_util::stream::unfold(
        (Box::pin(upstream), EventStream::default(), false, open),
        move |(mut frames, mut events, done, open)| {
            let edit = edit.clone();
            async move {
                if done {
                    return None;
                }
                let out = match next_data(&mut frames).await? {
                    Ok(chunk) => events.push(&chunk, &edit).map(Bytes::from).map_err(|e| {
                        tracing::warn!(error = %e, "tools/list event stream cut");
                        axum::BoxError::from(e)
                    }),
                    Err(e) => Err(e),
                };
                let done = out.is_err();
                Some((out, (frames, events, done, open)))
            }
        },
    );
    Ok(response(head.status, headers, Body::from_stream(events)))
}

/// Whether an answer is an event stream (media types compare without case).
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        let essence = v.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("text/event-stream")
    })
}

/// The response headers that come back to the client.
fn response_headers(upstream: &HeaderMap) -> HeaderMap {
    let named = connection_named(upstream);
    let mut headers = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        if forwardable_response_header(name, &named) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

type UpstreamBody = TimeoutBody<Incoming>;

/// The next data of `body` (trailers are not forwarded by a filtered answer).
async fn next_data(body: &mut Pin<Box<UpstreamBody>>) -> Option<Result<Bytes, axum::BoxError>> {
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_) => continue,
            },
            Err(e) => return Some(Err(e)),
        }
    }
}

async fn read_bounded(upstream: UpstreamBody, max: usize) -> Result<Vec<u8>, axum::BoxError> {
    let mut body = Box::pin(upstream);
    let mut whole = Vec::new();
    while let Some(chunk) = next_data(&mut body).await {
        whole.extend_from_slice(&chunk?);
        if whole.len() > max {
            return Err(Unreadable("the answer is too large").into());
        }
    }
    Ok(whole)
}

pin_project_lite::pin_project! {
    /// A body that keeps something alive (an open stream's count) as long as it lives.
    struct Counted<B> {
        #[pin]
        body: B,
        _open: OpenStream,
    }
}

impl<B: http_body::Body> http_body::Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// One open event stream on the gauge, for as long as this lives.
struct OpenStream(Gauge<i64, AtomicI64>);

impl OpenStream {
    fn new(gauge: Gauge<i64, AtomicI64>) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers_are_ours_unless_a_trusted_proxy_sent_them() {
        let public = ("https", "mcp.example.com");
        let mut incoming = HeaderMap::new();
        incoming.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        incoming.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        let direct = ClientAddress::of("9.9.9.9".parse().unwrap(), &incoming, &[]);
        let mut out = HeaderMap::new();
        set_forwarding(&mut out, &incoming, &direct, public);
        assert_eq!(out["x-forwarded-for"], "9.9.9.9");
        assert_eq!(out["x-forwarded-host"], "mcp.example.com");
        assert_eq!(out["x-forwarded-proto"], "https");
        let trusted = [ipnet::IpNet::from("10.0.0.2".parse::<std::net::IpAddr>().unwrap())];
        let via = ClientAddress::of("10.0.0.2".parse().unwrap(), &incoming, &trusted);
        let mut out = HeaderMap::new();
        set_forwarding(&mut out, &incoming, &via, public);
        assert_eq!(out["x-forwarded-for"], "6.6.6.6, 10.0.0.2");
        assert_eq!(out["x-forwarded-host"], "evil.example");
    }

    #[test]
    fn client_credentials_and_hop_by_hop_headers_stay_behind() {
        let auth = header::AUTHORIZATION;
        let named = vec!["x-per-hop".to_owned()];
        for h in ["authorization", "cookie", "host", "connection", "te", "upgrade", "x-per-hop", "content-length"] {
            assert!(!forwardable_request_header(&HeaderName::from_static(h), &named, &[Some(&auth)]), "{h}");
        }
        for h in ["mcp-session-id", "mcp-protocol-version", "last-event-id", "accept", "content-type"] {
            assert!(forwardable_request_header(&HeaderName::from_static(h), &named, &[Some(&auth)]), "{h}");
        }
        let custom = HeaderName::from_static("x-api-key");
        assert!(!forwardable_request_header(&custom, &[], &[Some(&auth), Some(&custom)]));
        for h in [header::SET_COOKIE, header::STRICT_TRANSPORT_SECURITY, header::WWW_AUTHENTICATE, header::SERVER] {
            assert!(!forwardable_response_header(&h, &[]), "{h}");
        }
        assert!(forwardable_response_header(&HeaderName::from_static("mcp-session-id"), &[]));
    }

    #[test]
    fn headers_that_speak_for_the_proxy_never_come_from_the_client() {
        let auth = header::AUTHORIZATION;
        for h in [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-user",
            "x-forwarded-email",
            "x-forwarded-groups",
            "x-forwarded-preferred-username",
            "x-forwarded-access-token",
            "x-real-ip",
            "x-auth-request-user",
            "x-auth-request-email",
            "x-remote-user",
            "remote-user",
        ] {
            assert!(!forwardable_request_header(&HeaderName::from_static(h), &[], &[Some(&auth)]), "{h}");
        }
        // Lookalikes that speak for nobody pass.
        for h in ["x-forwarded", "x-user-agent-id", "remote-addr-hint", "x-auth"] {
            assert!(forwardable_request_header(&HeaderName::from_static(h), &[], &[Some(&auth)]), "{h}");
        }
        // The server's assertion and static credential headers are the proxy's too.
        let mut server = ServerSettings::new("s", "http://127.0.0.1:9/mcp".parse().unwrap(), "p", Default::default());
        let mut identity = crate::settings::IdentitySettings::new("aud");
        identity.header = Some(HeaderName::from_static("x-identity"));
        identity.static_header = Some((HeaderName::from_static("x-api-key"), HeaderValue::from_static("k")));
        server.upstream_auth = UpstreamAuth::Identity(identity);
        let ours = credential_headers(&server);
        for h in ["x-identity", "x-api-key", "authorization"] {
            assert!(!forwardable_request_header(&HeaderName::from_static(h), &[], &ours), "{h}");
        }
    }
}
