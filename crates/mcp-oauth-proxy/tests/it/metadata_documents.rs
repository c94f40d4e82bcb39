//! Client ID Metadata Documents: a client whose id is the URL of its metadata.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Browser, Harness, REDIRECT, Start};

/// Serves `/client.json` (naming itself, unless `claimed_id` says otherwise) and returns
/// its URL.
async fn serve_document(claimed_id: Option<&str>, redirect: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/client.json", listener.local_addr().unwrap());
    let doc = json!({
        "client_id": claimed_id.unwrap_or(&url),
        "client_name": "Metadata-document app",
        "redirect_uris": [redirect],
        "token_endpoint_auth_method": "none",
    });
    let router = axum::Router::new().route("/client.json", axum::routing::get(move || async move { axum::Json(doc) }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn allowing_loopback() -> Start {
    Start { extra_toml: "[client_metadata_documents]\nallow_loopback = true\n".into(), ..Default::default() }
}

#[tokio::test]
async fn a_metadata_document_client_logs_in_without_registering() {
    let h = Harness::start_with(allowing_loopback()).await;
    let meta: Value = h.get_json("/.well-known/oauth-authorization-server/oauth/demo").await;
    assert_eq!(meta["client_id_metadata_document_supported"], true);

    let client_id = serve_document(None, REDIRECT).await;
    let mut browser = Browser::new();
    let page = browser.get(&h.authorize_url(&client_id, &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Metadata-document app"));
    let code = h.authorize(&mut browser, &client_id).await;
    let tokens = h.exchange(&client_id, &code).await;
    assert!(h.access_token_works(tokens["access_token"].as_str().unwrap()).await);
    let (status, _) = h.refresh(&client_id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn documents_that_lie_or_do_not_list_the_redirect_are_refused() {
    let h = Harness::start_with(allowing_loopback()).await;
    let liar = serve_document(Some("https://trusted.example/client.json"), REDIRECT).await;
    let page = Browser::new().get(&h.authorize_url(&liar, &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.headers.get("location").is_none());
    let elsewhere = serve_document(None, "http://127.0.0.1:9999/other").await;
    let page = Browser::new().get(&h.authorize_url(&elsewhere, &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.headers.get("location").is_none());
}

#[tokio::test]
async fn documents_on_internal_addresses_are_never_fetched() {
    let h = Harness::start().await; // production defaults: no loopback, https only
    for client_id in
        ["https://127.0.0.1:1/client.json", "https://localhost/client.json", "https://169.254.169.254/latest/meta-data"]
    {
        let page = Browser::new().get(&h.authorize_url(client_id, &[])).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id}");
        // The reason goes to the log; the caller learns only that it could not be used.
        assert!(page.body.contains("could not be used"), "{client_id}: {}", page.body);
        assert!(!page.body.contains("internal address"), "{client_id}: {}", page.body);
    }
    // Plain http is not a metadata document at all in production.
    let plain = serve_document(None, REDIRECT).await;
    let page = Browser::new().get(&h.authorize_url(&plain, &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
}

/// Serves the largest documents the proxy accepts (64 KiB, 20 redirect URIs of 2 KiB
/// each), each naming the URL it was fetched from, on `hosts` loopback addresses.
async fn serve_maximal_documents(hosts: u8) -> Vec<String> {
    let router = axum::Router::new().route(
        "/{name}",
        axum::routing::get(
            |headers: axum::http::HeaderMap, axum::extract::Path(name): axum::extract::Path<String>| async move {
                let host = headers["host"].to_str().unwrap().to_owned();
                // 20 redirect URIs of 2048 characters, the most a client may register.
                let uris: Vec<String> = (0..20).map(|i| format!("https://app.example/{i:0>2028}")).collect();
                let doc = json!({
                    "client_id": format!("http://{host}/{name}"),
                    "client_name": "x".repeat(256),
                    "redirect_uris": uris,
                    "token_endpoint_auth_method": "none",
                    "padding": "p".repeat(20_000),
                });
                axum::Json(doc)
            },
        ),
    );
    let mut bases = Vec::new();
    for i in 1..=hosts {
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.{i}:0")).await.unwrap();
        bases.push(format!("http://{}", listener.local_addr().unwrap()));
        let router = router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }
    bases
}

/// Thousands of maximal documents on many hosts cannot grow the proxy past the cache's
/// byte budget; the per-host limit refuses a host's documents beyond its rate.
#[tokio::test]
async fn the_document_cache_is_bounded_in_bytes_against_many_documents_on_many_hosts() {
    let budget = 2 * 1024 * 1024;
    let h = Harness::start_with(Start {
        extra_toml: format!("[client_metadata_documents]\nallow_loopback = true\ncache_bytes = {budget}\n"),
        ..Default::default()
    })
    .await;
    let hosts = serve_maximal_documents(100).await;
    let mut fetched = 0;
    let mut refused = 0;
    for (i, base) in hosts.iter().enumerate() {
        // 31 documents a host: the 31st is over the default 30 fetches per host a minute.
        for n in 0..31 {
            let url = format!("{base}/client-{i}-{n}.json");
            match h.app.clients.find("demo", &url).await {
                Ok(Some(_)) => fetched += 1,
                Ok(None) => panic!("{url}: no client"),
                Err(_) => refused += 1,
            }
            let (_, bytes) = h.app.clients.document_cache_usage();
            assert!(bytes <= budget, "the cache holds {bytes} bytes, over its budget of {budget}");
        }
    }
    assert_eq!((fetched, refused), (3000, 100), "30 fetches a host, the 31st refused");
    let (entries, bytes) = h.app.clients.document_cache_usage();
    assert!(entries > 10 && bytes > budget / 2, "the cache is used: {entries} entries, {bytes} bytes");
}

/// `allowed_hosts` admits documents from listed hosts only; `verified_hosts` marks them
/// verified on the consent page, with their host.
#[tokio::test]
async fn admission_by_host_and_the_verified_mark() {
    let document = serve_document(None, REDIRECT).await;
    let h = Harness::start_with(Start {
        extra_toml: "[client_metadata_documents]\nallow_loopback = true\nallowed_hosts = [\"127.0.0.1\"]\n\
                     verified_hosts = [\"127.0.0.1\"]\n"
            .into(),
        ..Default::default()
    })
    .await;
    let page = Browser::new().get(&h.authorize_url(&document, &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Verified application from") && page.body.contains("<b>127.0.0.1</b>"), "{}", page.body);

    let elsewhere = Harness::start_with(Start {
        extra_toml: "[client_metadata_documents]\nallow_loopback = true\nallowed_hosts = [\"*.example.com\"]\n".into(),
        ..Default::default()
    })
    .await;
    let page = Browser::new().get(&elsewhere.authorize_url(&document, &[])).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("does not accept clients from 127.0.0.1"), "{}", page.body);
    let unverified = Harness::start_with(allowing_loopback()).await;
    let page = Browser::new().get(&unverified.authorize_url(&document, &[])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Verified application"));
}

/// What a [`DocumentHost`] does with a request for its document.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Serving,
    /// Accepts the request and never answers.
    Stalling,
    /// 404: the document was withdrawn.
    Gone,
}

/// A host serving one metadata document, told at any moment to stall or to withdraw it.
struct DocumentHost {
    url: String,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Requests for the document so far.
    requests: Arc<AtomicUsize>,
}

impl DocumentHost {
    async fn start(ip: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(format!("{ip}:0")).await.unwrap();
        let url = format!("http://{}/client.json", listener.local_addr().unwrap());
        let doc = json!({
            "client_id": url,
            "client_name": "Metadata-document app",
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
        });
        let behaviour = Arc::new(Mutex::new(Behaviour::Serving));
        let told = behaviour.clone();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let router = axum::Router::new().route(
            "/client.json",
            axum::routing::get(move || async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let now = *told.lock().unwrap();
                match now {
                    Behaviour::Serving => axum::Json(doc).into_response(),
                    Behaviour::Stalling => std::future::pending().await,
                    Behaviour::Gone => axum::http::StatusCode::NOT_FOUND.into_response(),
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url, behaviour, requests }
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }
}

/// A client of `host` with a completed login: its refresh token.
async fn logged_in_at(h: &Harness, host: &DocumentHost) -> String {
    let code = h.authorize(&mut Browser::new(), &host.url).await;
    h.exchange(&host.url, &code).await["refresh_token"].as_str().unwrap().to_owned()
}

/// Past its freshness, a cached document keeps serving its client while it is fetched
/// again in the background: a host that stalls does not log its users out, nor slow them.
#[tokio::test]
async fn a_stale_document_keeps_its_client_refreshing_while_its_host_stalls() {
    let h = Harness::start_with(allowing_loopback()).await;
    let host = DocumentHost::start("127.0.0.1").await;
    let mut refresh = logged_in_at(&h, &host).await;
    host.set(Behaviour::Stalling);
    for _ in 0..3 {
        h.clock.advance(600); // past the five minutes a document is fresh
        let started = Instant::now();
        let (status, body) = h.refresh(&host.url, &refresh).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() < Duration::from_secs(2), "answered at once, not after the stalled fetch");
        refresh = body["refresh_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(host.requests.load(Ordering::SeqCst), 2, "one fetch at login, then one refresh shared by all");
}

/// A stale document whose host now says it is gone stops serving its client as soon as
/// the refresh in the background has seen that.
#[tokio::test]
async fn a_withdrawn_document_ends_its_client_once_the_refresh_sees_it() {
    let h = Harness::start_with(allowing_loopback()).await;
    let host = DocumentHost::start("127.0.0.1").await;
    let refresh = logged_in_at(&h, &host).await;
    host.set(Behaviour::Gone);
    h.clock.advance(600);
    let (status, body) = h.refresh(&host.url, &refresh).await;
    assert_eq!(status, StatusCode::OK, "the stale document answers while it is fetched again: {body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = h.refresh(&host.url, &refresh).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["error"], "invalid_client", "{body}");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(Instant::now() < deadline, "the withdrawn document is still used");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Past the hard maximum age (24 hours) a document is no longer used without fetching it
/// again: with its host stalling, the client is told to come back (503
/// `temporarily_unavailable` with `Retry-After`; its refresh token is kept), and it
/// refreshes once its host answers again.
#[tokio::test]
async fn past_its_maximum_age_a_document_must_be_fetched_again() {
    let h = Harness::start_with(allowing_loopback()).await;
    let host = DocumentHost::start("127.0.0.1").await;
    let refresh = logged_in_at(&h, &host).await;
    host.set(Behaviour::Stalling);
    h.clock.advance(24 * 3600);
    let (status, body, headers) =
        h.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &host.url)]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(headers.contains_key("retry-after"));
    host.set(Behaviour::Serving);
    let (status, body) = h.refresh(&host.url, &refresh).await;
    assert_eq!(status, StatusCode::OK, "the refresh token outlived the outage: {body}");
}

/// Serves, on each of `hosts` loopback addresses from 127.0.0.`first`, documents that
/// never come.
async fn stalling_hosts(first: u8, hosts: u8) -> Vec<String> {
    let router = axum::Router::new().route("/{name}", axum::routing::get(std::future::pending::<String>));
    let mut bases = Vec::new();
    for i in first..first + hosts {
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.{i}:0")).await.unwrap();
        bases.push(format!("http://{}", listener.local_addr().unwrap()));
        let router = router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }
    bases
}

/// Hosts that stall cannot take the fetches a new client from another host needs: each
/// host gets a few at once. Every document that cannot be fetched now is a 503 with
/// `Retry-After`, never `invalid_client`.
#[tokio::test]
async fn stalling_hosts_cannot_take_the_fetches_of_a_new_client() {
    let h = Harness::start_with(allowing_loopback()).await;
    let mut stalled = tokio::task::JoinSet::new();
    for base in stalling_hosts(20, 10).await {
        for n in 0..8 {
            let app = h.app.clone();
            let url = format!("{base}/client-{n}.json");
            stalled.spawn(async move { app.clients.find("demo", &url).await.err().map(IntoResponse::into_response) });
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the stalled fetches are under way
    let host = DocumentHost::start("127.0.0.1").await;
    let page = Browser::new().get(&h.authorize_url(&host.url, &[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Metadata-document app"));
    while let Some(answer) = stalled.join_next().await {
        let answer = answer.unwrap().expect("a stalled document is no client");
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers().contains_key("retry-after"));
    }
}

/// A host over its fetches per minute is told to come back later: a page with 503 and
/// `Retry-After` at `/authorize`, `temporarily_unavailable` at the token endpoint.
#[tokio::test]
async fn a_host_over_its_rate_gets_retry_after_not_invalid_client() {
    let h = Harness::start_with(Start {
        extra_toml: "[client_metadata_documents]\nallow_loopback = true\nfetches_per_host_per_minute = 1\n".into(),
        ..Default::default()
    })
    .await;
    let first = serve_document(None, REDIRECT).await;
    assert_eq!(Browser::new().get(&h.authorize_url(&first, &[])).await.status, StatusCode::OK);
    let second = serve_document(None, REDIRECT).await; // the same host, another port
    let page = Browser::new().get(&h.authorize_url(&second, &[])).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.body.contains("try again"), "{}", page.body);
    let (status, body, headers) =
        h.token(&[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", &second)]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(headers.contains_key("retry-after"));
}
