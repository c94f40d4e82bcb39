//! Brokered OAuth (`upstream_auth = "oauth"`): an MCP upstream protected by its own
//! authorization server (a second development provider, as strict as the first), the
//! proxy its client. The upstream sees that server's token for the user, never the
//! proxy's or the provider's; the token refreshes once when due and survives a restart;
//! each registration method (pre-registered, Client ID Metadata Document, dynamic, stored
//! once); a changed issuer; RFC 9207 `iss`; a step-up the upstream asks for; revocation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcp_oauth_core::ManualClock;
use mcp_oauth_devsupport::idp::{DevIdp, Fault, IdpOptions};
use mcp_oauth_devsupport::mcp_server::{self, Observed, Protection};
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Browser, Harness, Start};

/// The upstream's authorization server, its MCP server, and the proxy in front.
struct Brokered {
    h: Harness,
    upstream_as: DevIdp,
    /// What the MCP upstream's metadata names as its authorization server.
    names: Arc<Mutex<String>>,
    /// The authorization servers whose tokens the MCP upstream accepts, by issuer.
    trusted: Arc<Mutex<HashMap<String, DevIdp>>>,
    observed: Observed,
    /// How often the MCP upstream's protected-resource metadata was fetched (once per
    /// discovery).
    metadata_fetches: Arc<AtomicUsize>,
    /// How long the MCP upstream's metadata takes to answer (milliseconds).
    metadata_delay_ms: Arc<AtomicU64>,
    env: Vec<(String, String)>,
}

impl Brokered {
    /// The MCP upstream moves to a new authorization server (made with `options`): its
    /// metadata names it, and it accepts that server's tokens. Returns it and its issuer.
    async fn move_to(&self, options: IdpOptions) -> (DevIdp, String) {
        let (moved_to, issuer) = authorization_server(options, &self.h.clock).await;
        self.trusted.lock().unwrap().insert(issuer.clone(), moved_to.clone());
        *self.names.lock().unwrap() = issuer.clone();
        (moved_to, issuer)
    }
}

fn upstream_as_options() -> IdpOptions {
    IdpOptions {
        client_id: "proxy-at-upstream".into(),
        client_secret: "upstream-secret".into(),
        subject: "upstream-user".into(),
        ..Default::default()
    }
}

async fn authorization_server(options: IdpOptions, clock: &ManualClock) -> (DevIdp, String) {
    let idp = DevIdp::new(options, Arc::new(clock.clone()));
    let issuer = idp.spawn().await.unwrap();
    (idp, issuer)
}

/// An MCP upstream (needing `files:read`) protected by an authorization server of its
/// own, without the proxy `start` puts in front: (that server, its issuer, the
/// upstream's URL, how often its protected-resource metadata was fetched).
async fn protected_upstream(options: IdpOptions, clock: &ManualClock) -> (DevIdp, String, String, Arc<AtomicUsize>) {
    let (upstream_as, issuer) = authorization_server(options, clock).await;
    let fetches = Arc::new(AtomicUsize::new(0));
    let a = upstream_as.clone();
    let protection = Protection {
        authorization_server: Arc::new(Mutex::new(issuer.clone())),
        scopes: vec!["files:read".into()],
        tool_scope: None,
        scopes_of: Arc::new(move |t: &str| a.scope_of(t)),
        metadata_fetches: Arc::clone(&fetches),
        metadata_delay_ms: Default::default(),
    };
    let url = mcp_server::spawn_protected(upstream_as.token_check(), Observed::default(), protection).await.unwrap();
    (upstream_as, issuer, url, fetches)
}

/// An upstream authorization server that takes dynamic registrations.
fn dynamic_options() -> IdpOptions {
    IdpOptions { dynamic_registration: true, ..upstream_as_options() }
}

/// A proxy in front of an upstream whose server takes dynamic registrations, and a grant
/// that has made a call through it.
async fn serving_a_grant() -> (Brokered, Value) {
    let b = start(dynamic_options(), &[]).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    (b, tokens)
}

/// `extra`: more `MCP_OAUTH_PROXY_*` variables (and the ones `*_env` keys name).
async fn start(options: IdpOptions, extra: &[(&str, &str)]) -> Brokered {
    let clock = ManualClock::starting_now();
    let (upstream_as, issuer) = authorization_server(options, &clock).await;
    let names = Arc::new(Mutex::new(issuer.clone()));
    let trusted = Arc::new(Mutex::new(HashMap::from([(issuer, upstream_as.clone())])));
    // The MCP upstream accepts tokens of the authorization server it names now.
    let current = |names: &Arc<Mutex<String>>, trusted: &Arc<Mutex<HashMap<String, DevIdp>>>| {
        let issuer = names.lock().unwrap().clone();
        trusted.lock().unwrap().get(&issuer).cloned()
    };
    let (n, t) = (Arc::clone(&names), Arc::clone(&trusted));
    let check: mcp_server::TokenCheck = Arc::new(move |token: &str| current(&n, &t)?.subject_of(token));
    let (n, t) = (Arc::clone(&names), Arc::clone(&trusted));
    let scopes_of = Arc::new(move |token: &str| current(&n, &t)?.scope_of(token));
    let observed = Observed::default();
    let metadata_fetches = Arc::new(AtomicUsize::new(0));
    let metadata_delay_ms = Arc::new(AtomicU64::new(0));
    let protection = Protection {
        authorization_server: Arc::clone(&names),
        scopes: vec!["files:read".into()],
        tool_scope: Some(("echo".into(), "files:write".into())),
        scopes_of,
        metadata_fetches: Arc::clone(&metadata_fetches),
        metadata_delay_ms: Arc::clone(&metadata_delay_ms),
    };
    let upstream_url = mcp_server::spawn_protected(check, observed.clone(), protection).await.unwrap();
    let mut env: Vec<(String, String)> = [
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "oauth"),
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_OAUTH__ALLOW_HTTP_LOOPBACK", "true"),
        ("MCP_OAUTH_PROXY_SERVERS__0__SCOPES", "files:read,files:write"),
        ("MCP_OAUTH_PROXY_SERVERS__0__DEFAULT_SCOPES", "files:read"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.sort();
    let h = Harness::start_with(Start {
        upstream_url: Some(upstream_url),
        env: env.clone(),
        clock: Some(clock),
        ..Default::default()
    })
    .await;
    Brokered { h, upstream_as, names, trusted, observed, metadata_fetches, metadata_delay_ms, env }
}

const PRE_REGISTERED: &[(&str, &str)] = &[
    ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_OAUTH__CLIENT_ID", "proxy-at-upstream"),
    ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_OAUTH__CLIENT_SECRET_ENV", "UPSTREAM_SECRET"),
    ("UPSTREAM_SECRET", "upstream-secret"),
];

/// Both logins (the provider's, then the upstream's), approving everything, with
/// `at_upstream` added to the upstream's login form; the proxy's final answer.
async fn both_logins(h: &Harness, client_id: &str, scope: Option<&str>, at_upstream: &[(&str, &str)]) -> String {
    let mut browser = Browser::new();
    let extra: Vec<(&str, &str)> = scope.map(|s| vec![("scope", s)]).unwrap_or_default();
    let sent = browser.through_callback(&h.authorize_url(client_id, &extra), &[("login", "approve")]).await;
    let mut form = vec![("login", "approve")];
    form.extend_from_slice(at_upstream);
    let done = browser.through_upstream(&sent, &form).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    done.location()
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// A new client, logged in through both logins: (client id, token response).
async fn logged_in(h: &Harness, scope: Option<&str>) -> (String, Value) {
    let client_id = h.register_public().await;
    let back = both_logins(h, &client_id, scope, &[]).await;
    let code = query(&back).get("code").unwrap_or_else(|| panic!("no code in {back}")).clone();
    let tokens = h.exchange(&client_id, &code).await;
    (client_id, tokens)
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn the_upstream_gets_its_own_authorization_servers_token_refreshed_once_and_kept_across_a_restart() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let (client_id, tokens) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);

    // What the upstream saw: a token of its own authorization server, for that user.
    let seen = b.observed.authorization_headers().last().cloned().unwrap();
    let sent = seen.strip_prefix("Bearer ").unwrap().to_owned();
    assert!(b.upstream_as.issued_access_tokens().contains(&sent), "the upstream AS's token");
    assert!(!b.h.idp.issued_access_tokens().contains(&sent), "never the provider's");
    assert_ne!(sent, access(&tokens), "never the proxy's");
    assert_eq!(b.upstream_as.subject_of(&sent).as_deref(), Some("upstream-user"));
    // The login at the upstream's authorization server: the pre-registered client, PKCE
    // S256, the upstream's resource (RFC 8707) and the scope its challenge named.
    let asked = b.upstream_as.authorize_requests().last().cloned().unwrap();
    assert_eq!(asked["client_id"], "proxy-at-upstream");
    assert_eq!(asked["code_challenge_method"], "S256");
    assert_eq!(asked["resource"], b.h.upstream_url);
    assert_eq!(asked["scope"], "files:read offline_access", "offline_access, which its server lists");
    assert_eq!(asked["redirect_uri"], b.h.url("/oauth/upstream-callback"));
    assert_eq!(b.upstream_as.token_clients(), ["proxy-at-upstream"], "authenticated as the configured client");
    // The code exchange names the same resource (RFC 8707 §2.2; the conformance suite's
    // `resource-parameter-in-token`).
    let exchanged = b.upstream_as.token_requests().last().cloned().unwrap();
    assert_eq!(exchanged["grant_type"], "authorization_code");
    assert_eq!(exchanged.get("resource"), Some(&b.h.upstream_url), "{exchanged:?}");

    // Expired: a burst of requests refreshes once.
    b.h.clock.advance(301);
    let calls = (0..5).map(|_| b.h.mcp_status(access(&tokens)));
    for status in futures_util::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(b.upstream_as.refresh_count(), 1, "single flight");
    let refresh = b.upstream_as.token_requests().last().cloned().unwrap();
    assert_eq!(refresh["grant_type"], "refresh_token");
    assert_eq!(refresh.get("resource"), Some(&b.h.upstream_url), "the refresh names the resource too: {refresh:?}");
    let refreshed = b.observed.authorization_headers().last().cloned().unwrap();
    assert_ne!(refreshed, seen, "the refreshed token is sent");

    // A restart keeps the grant and its upstream tokens.
    let Brokered { h, upstream_as, observed, env, .. } = b;
    let h = h.restarted(env).await;
    assert_eq!(h.mcp_status(access(&tokens)).await, StatusCode::OK);
    assert_eq!(observed.authorization_headers().last(), Some(&refreshed));
    assert_eq!(upstream_as.refresh_count(), 1);

    // The client revokes its grant: the upstream's tokens are revoked there too (RFC 7009).
    let r = h
        .http
        .post(h.url("/oauth/demo/revoke"))
        .form(&[("token", tokens["refresh_token"].as_str().unwrap()), ("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sent = refreshed.strip_prefix("Bearer ").unwrap().to_owned();
    for _ in 0..100 {
        if upstream_as.revoked_tokens().contains(&sent) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revoked = upstream_as.revoked_tokens();
    assert!(revoked.contains(&sent), "the access token revoked upstream: {revoked:?}");
    assert_eq!(revoked.len(), 2, "and the refresh token");
    let ours = [access(&tokens), tokens["refresh_token"].as_str().unwrap()];
    assert!(!revoked.iter().any(|t| ours.contains(&t.as_str())), "never the proxy's own tokens");
    assert!(!upstream_as.access_token_is_valid(&sent));
}

#[tokio::test]
async fn the_console_names_the_authorization_server_a_brokered_upstream_uses() {
    let env: Vec<(&str, &str)> =
        PRE_REGISTERED.iter().copied().chain([("MCP_OAUTH_PROXY_ADMIN__EMAILS", "demo@example.com")]).collect();
    let b = start(upstream_as_options(), &env).await;
    let mut browser = Browser::new();
    let _ = crate::admin_console::console_login(&b.h, &mut browser).await;
    let page = browser.get(&b.h.url("/admin")).await;
    assert!(page.body.contains("not discovered by this replica yet"), "{}", page.body);
    let _ = logged_in(&b.h, None).await;
    let page = browser.get(&b.h.url("/admin")).await;
    let issuer = b.names.lock().unwrap().clone();
    let said = format!("tokens of {issuer} (the proxy's registration: pre-registered client)");
    assert!(page.body.replace("&#39;", "'").contains(&said), "{}", page.body);
}

#[tokio::test]
async fn dynamic_registration_is_stored_once_and_outlives_a_restart() {
    let options = dynamic_options();
    let b = start(options, &[]).await;
    let (_, first) = logged_in(&b.h, None).await;
    let (_, second) = logged_in(&b.h, None).await;
    assert_eq!(b.upstream_as.registrations(), 1, "registered once, used for both logins");
    // SEP-837 (the conformance suite's `sep-837-application-type-present`): the proxy says
    // it is a web application when it registers.
    let sent = b.upstream_as.registration_requests();
    assert_eq!(sent[0]["application_type"], "web", "{sent:?}");
    assert_eq!(sent[0]["redirect_uris"][0], b.h.url("/oauth/upstream-callback"));
    let issuer = b.names.lock().unwrap().clone();
    let stored = b.h.app.store.upstream_registration("demo", &issuer).await.unwrap().expect("stored");
    assert!(stored.client_id.starts_with("dcr_"));
    assert!(stored.secret_sealed.is_some(), "its secret sealed");
    assert_eq!(b.upstream_as.token_clients(), [stored.client_id.clone(), stored.client_id.clone()]);
    // `doctor` says what the upstream's metadata says, and the stored registration.
    let out = b.h.cli(&["doctor", "--server", "demo"], &b.env).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("authorization server:  {issuer}")), "{text}");
    assert!(text.contains(&format!("registered as {:?} (stored)", stored.client_id)), "{text}");
    assert!(text.contains("scopes:                files:read (named by the upstream)"), "{text}");
    assert!(text.contains(&b.h.upstream_url), "{text}");
    let Brokered { h, upstream_as, env, .. } = b;
    let h = h.restarted(env).await;
    logged_in(&h, None).await;
    assert_eq!(upstream_as.registrations(), 1, "the stored registration is used after a restart");
    for tokens in [first, second] {
        assert_eq!(h.mcp_status(access(&tokens)).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_client_id_metadata_document_is_preferred_to_registration() {
    let options = IdpOptions { dynamic_registration: true, metadata_documents: true, ..upstream_as_options() };
    let b = start(options, &[]).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    let document = b.h.url("/oauth/upstream-client.json");
    assert_eq!(b.upstream_as.token_clients(), std::slice::from_ref(&document));
    assert_eq!(b.upstream_as.registrations(), 0);
    assert!(b.upstream_as.documents_fetched() >= 1);
    let served = b.h.get_json("/oauth/upstream-client.json").await;
    assert_eq!(served["client_id"], document);
    assert_eq!(served["redirect_uris"][0], b.h.url("/oauth/upstream-callback"));
    assert_eq!(served["token_endpoint_auth_method"], "none");
    assert_eq!(served["application_type"], "web");
}

#[tokio::test]
async fn an_answer_naming_another_issuer_or_none_is_refused() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let client_id = b.h.register_public().await;
    let back = both_logins(&b.h, &client_id, None, &[("forged_iss", "https://evil.example")]).await;
    assert_eq!(query(&back).get("error").map(String::as_str), Some("access_denied"), "{back}");
    assert_eq!(b.upstream_as.code_exchanges(), 0, "the code is never redeemed");
    // A server that promises `iss` (RFC 9207) and sends none.
    b.upstream_as.set_options(|o| o.omit_iss = true);
    let back = both_logins(&b.h, &client_id, None, &[]).await;
    assert_eq!(query(&back).get("error").map(String::as_str), Some("access_denied"), "{back}");
    // One that does not promise it may leave it out.
    b.upstream_as.set_options(|o| o.iss_parameter_supported = false);
    b.h.clock.advance(601); // discovered again
    let back = both_logins(&b.h, &client_id, None, &[]).await;
    assert!(query(&back).contains_key("code"), "{back}");
}

#[tokio::test]
async fn a_changed_issuer_registers_anew_and_old_grants_authorize_again() {
    let (b, tokens) = serving_a_grant().await;
    // The MCP upstream moves to another authorization server.
    let (moved_to, issuer) = b.move_to(dynamic_options()).await;
    b.h.clock.advance(601); // past the discovery's lifetime (and the token's)
    let (status, challenge) = initialize(&b.h, access(&tokens)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old grant must authorize again");
    assert!(challenge.contains("resource_metadata"), "{challenge}");
    assert_eq!(b.upstream_as.refresh_count(), 0, "no refresh at the former issuer");
    assert_eq!(moved_to.refresh_count(), 0, "nor is its refresh token sent to the new one");
    // A new login registers at the new server, and works.
    let (_, tokens) = logged_in(&b.h, None).await;
    assert_eq!(moved_to.registrations(), 1);
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    assert!(b.h.app.store.upstream_registration("demo", &issuer).await.unwrap().is_some());
}

#[tokio::test]
async fn an_upstream_that_moves_is_noticed_from_its_401_at_once() {
    // SEP-2352 (the conformance suite's `auth/authorization-server-migration`): the
    // upstream names another authorization server and refuses the former's tokens, long
    // before the discovery's lifetime ends or the grant's token expires.
    let options = dynamic_options();
    let audit = std::env::temp_dir().join(format!("mop-moved-{}.log", mcp_oauth_core::token::random_id()));
    let b = start(options.clone(), &[("MCP_OAUTH_PROXY_AUDIT__PATH", audit.to_str().unwrap())]).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    let (_, other) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    let former_client = b.upstream_as.token_clients()[0].clone();
    let former = b.names.lock().unwrap().clone();
    let (moved_to, issuer) = b.move_to(options).await;
    b.h.clock.advance(5);
    let fetched = b.metadata_fetches.load(SeqCst);

    let (status, challenge) = initialize(&b.h, access(&tokens)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a challenge to authorize again, not a 502");
    assert!(challenge.contains("resource_metadata"), "{challenge}");
    assert_eq!(b.metadata_fetches.load(SeqCst), fetched + 1, "discovered again, once");
    assert_eq!(moved_to.registrations(), 1, "registered at the new server");
    let mut moved = None;
    for _ in 0..100 {
        let events = crate::audit::read_events(&audit, 1).await;
        moved = events.into_iter().find(|e| e["event"] == "upstream.moved");
        if moved.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let moved = moved.expect("upstream.moved audited");
    assert_eq!(moved["slug"], "demo");
    assert_eq!(moved["reason"], format!("from {former} to {issuer}"));
    assert_eq!(b.upstream_as.refresh_count(), 0, "no refresh at the former server");
    assert_eq!(moved_to.refresh_count(), 0, "nor is its refresh token sent to the new one");
    // The other grant of the former server ends at its first refusal, with no second
    // discovery within the interval.
    let (status, _) = initialize(&b.h, access(&other)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(b.metadata_fetches.load(SeqCst), fetched + 1);

    // The client authorizes again: the new server's registration, never the former's.
    let (_, tokens) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    assert_eq!(moved_to.registrations(), 1);
    let at_new = moved_to.authorize_requests().last().cloned().unwrap();
    assert_ne!(at_new["client_id"], former_client, "the former server's client id is not reused");
    assert!(!moved_to.token_clients().contains(&former_client));
}

#[tokio::test]
async fn a_login_a_minute_after_a_move_begins_at_the_new_server() {
    // No call has been refused yet to tell the proxy; a login binds a new grant to a
    // server, so it does not trust what was discovered more than a minute before.
    let (b, _) = serving_a_grant().await;
    let (moved_to, _) = b.move_to(dynamic_options()).await;
    b.h.clock.advance(61);
    let (_, tokens) = logged_in(&b.h, None).await;
    assert_eq!(moved_to.authorize_requests().len(), 1, "the login went to the server the upstream names now");
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
}

#[tokio::test]
async fn a_login_finished_at_a_replica_that_missed_a_move_redeems_its_code_where_it_began() {
    let options = dynamic_options();
    let b = start(options.clone(), &[]).await;
    let other = Harness::start_with(Start {
        storage_url: Some(b.h.storage_url.clone()),
        public_url: Some(b.h.base.clone()),
        idp: Some((b.h.idp.clone(), b.h.idp_issuer())),
        clock: Some(b.h.clock.clone()),
        upstream_url: Some(b.h.upstream_url.clone()),
        env: b.env.clone(),
        ..Default::default()
    })
    .await;
    // The other replica knows the first server; then the upstream moves.
    let server = other.app.settings.server("demo").unwrap().clone();
    let first = b.names.lock().unwrap().clone();
    assert_eq!(other.app.brokers.broker(&server).await.unwrap().issuer(), first);
    let (moved_to, issuer) = b.move_to(options).await;
    // A login begins at the first replica (which discovers the new server) and its answer
    // reaches the other (a load balancer's choice).
    let client_id = b.h.register_public().await;
    let mut browser = Browser::new();
    let sent = browser.through_callback(&b.h.authorize_url(&client_id, &[]), &[("login", "approve")]).await;
    assert!(sent.location().starts_with(&issuer), "{}", sent.location());
    let login = browser.get(&sent.location()).await;
    let back = browser.submit(&login, &issuer, &[("login", "approve")]).await;
    let done = browser.get(&back.location().replace(&b.h.base, &other.base)).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    let code = query(&done.location()).get("code").cloned().unwrap_or_else(|| panic!("{}", done.location()));
    assert_eq!(moved_to.code_exchanges(), 1, "the code went to the server that issued it");
    assert_eq!(b.upstream_as.code_exchanges(), 0, "and to no other");
    let tokens = other.exchange(&client_id, &code).await;
    assert_eq!(other.mcp_status(access(&tokens)).await, StatusCode::OK);
}

#[tokio::test]
async fn an_upstream_refusing_every_token_is_discovered_again_at_most_every_30_seconds() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    let (_, other) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    b.trusted.lock().unwrap().clear(); // the same server named, none of its tokens accepted
    let fetched = b.metadata_fetches.load(SeqCst);
    // Eight refused at once, then four more one after the other.
    let at_once = (0..8).map(|i| initialize(&b.h, access(if i % 2 == 0 { &tokens } else { &other })));
    for (status, _) in futures_util::future::join_all(at_once).await {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "the upstream's own refusal keeps the grant");
    }
    for token in [&tokens, &other, &tokens, &other] {
        let (status, _) = initialize(&b.h, access(token)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }
    assert_eq!(b.metadata_fetches.load(SeqCst), fetched + 1, "one discovery for twelve refusals");
    b.h.clock.advance(31);
    assert_eq!(initialize(&b.h, access(&tokens)).await.0, StatusCode::BAD_GATEWAY);
    assert_eq!(b.metadata_fetches.load(SeqCst), fetched + 2, "and another after the interval");
    assert!(b.h.access_token_works(access(&tokens)).await, "the grant is kept");
}

#[tokio::test]
async fn refusals_waiting_behind_a_logins_discovery_share_one_discovery_after_it() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    b.trusted.lock().unwrap().clear();
    b.h.clock.advance(61); // a login now discovers the upstream again first
    b.metadata_delay_ms.store(500, SeqCst);
    let server = b.h.app.settings.server("demo").unwrap().clone();
    let fetched = b.metadata_fetches.load(SeqCst);
    let login = b.h.app.brokers.for_login(&server);
    let refusals = async {
        // The login's discovery holds the server's turn; these queue behind it.
        tokio::time::sleep(Duration::from_millis(150)).await;
        futures_util::future::join_all((0..6).map(|_| initialize(&b.h, access(&tokens)))).await
    };
    let (found, answers) = tokio::join!(login, refusals);
    assert!(found.is_ok());
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::BAD_GATEWAY), "{answers:?}");
    let discoveries = b.metadata_fetches.load(SeqCst) - fetched;
    assert!(discoveries <= 2, "the login's discovery and one for the refusals, not one each: {discoveries}");
}

#[tokio::test]
async fn a_grant_outlives_no_switch_of_upstream_auth_and_its_refresh_token_stays_with_its_issuer() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    // The operator puts the server back on the provider's token.
    let Brokered { h, upstream_as, mut env, .. } = b;
    env.retain(|(k, _)| !k.contains("__UPSTREAM_AUTH") && !k.contains("__UPSTREAM_OAUTH__"));
    let h = h.restarted(env).await;
    h.clock.advance(301); // the upstream's token is due for a refresh
    assert_eq!(h.mcp_status(access(&tokens)).await, StatusCode::UNAUTHORIZED, "the grant authorizes again");
    assert_eq!(h.idp.refresh_count(), 0, "the upstream's refresh token is never sent to the provider");
    assert_eq!(upstream_as.refresh_count(), 0);
}

/// An `initialize` with `token`; returns the status and the `WWW-Authenticate` header.
async fn initialize(h: &Harness, token: &str) -> (StatusCode, String) {
    let r = crate::harness::send_initialize(&h.http, &h.base, token).await.unwrap();
    let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status(), challenge)
}

/// A `tools/call` of `tool`; returns the status and the `WWW-Authenticate` header.
async fn call(h: &Harness, token: &str, tool: &str) -> (StatusCode, String) {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"hi"}}}}}}"#
    );
    let r = h
        .http
        .post(h.url("/mcp/demo"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status(), challenge)
}

#[tokio::test]
async fn the_upstreams_insufficient_scope_is_a_step_up_the_proxy_can_satisfy() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    let (status, challenge) = call(&b.h, access(&tokens), "echo").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
    assert!(challenge.contains(r#"scope="files:read files:write""#), "names every scope needed: {challenge}");
    let ours = b.h.app.settings.resource_metadata_url("demo");
    assert!(challenge.contains(&format!(r#"resource_metadata="{ours}""#)), "the proxy's metadata: {challenge}");
    // Authorizing again with those scopes asks the upstream for them too.
    let (_, wider) = logged_in(&b.h, Some("files:read files:write")).await;
    let asked = b.upstream_as.authorize_requests().last().cloned().unwrap();
    assert_eq!(asked["scope"], "files:read offline_access files:write");
    let (status, _) = call(&b.h, access(&wider), "echo").await;
    assert_ne!(status, StatusCode::FORBIDDEN, "the upstream's token now carries the scope");
}

#[tokio::test]
async fn a_step_up_is_satisfied_when_only_the_servers_scopes_name_the_scope() {
    // The upstream's metadata lists no `files:write`, only its 403 names it (as the
    // conformance suite's `auth/scope-step-up` upstream does); the server's `scopes` list
    // it, so the proxy's step-up challenge names it, and the new login must ask for it.
    let options = IdpOptions { unlisted_scopes: vec!["files:write".into()], ..upstream_as_options() };
    let b = start(options, PRE_REGISTERED).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    let (status, challenge) = call(&b.h, access(&tokens), "echo").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.contains(r#"scope="files:read files:write""#), "{challenge}");
    let (_, wider) = logged_in(&b.h, Some("files:read files:write")).await;
    let asked = b.upstream_as.authorize_requests().last().cloned().unwrap();
    assert_eq!(asked["scope"], "files:read offline_access files:write");
    let (status, _) = call(&b.h, access(&wider), "echo").await;
    assert_ne!(status, StatusCode::FORBIDDEN, "the upstream's token now carries the scope");
}

#[tokio::test]
async fn an_operators_grants_revoke_revokes_the_upstream_tokens_too() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    let sent = b.observed.authorization_headers().last().cloned().unwrap();
    let sent = sent.strip_prefix("Bearer ").unwrap().to_owned();
    assert!(b.upstream_as.revoked_tokens().is_empty());
    let out = b.h.cli(&["grants", "revoke", "--subject", "demo-user"], &b.env).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("upstream tokens of 1 brokered grant(s) revoked"), "{text}");
    let revoked = b.upstream_as.revoked_tokens();
    assert_eq!(revoked.len(), 2, "the refresh and the access token: {revoked:?}");
    assert!(revoked.contains(&sent));
    assert!(!b.upstream_as.access_token_is_valid(&sent));
}

#[tokio::test]
async fn without_a_provider_the_upstreams_login_is_the_only_one_and_says_who_the_user_is() {
    let subject = solo_login(upstream_as_options()).await;
    assert_eq!(subject, "upstream-user", "what the upstream's userinfo says");
    // An authorization server that says nothing of its users: a pseudonymous subject.
    let subject = solo_login(IdpOptions { userinfo: false, ..upstream_as_options() }).await;
    assert!(subject.starts_with("anonymous:"), "{subject}");
}

/// A login at a brokered server without a provider (`solo`), its MCP call checked; returns
/// the grant's subject.
async fn solo_login(options: IdpOptions) -> String {
    let clock = ManualClock::starting_now();
    let (upstream_as, issuer) = authorization_server(options, &clock).await;
    let observed = Observed::default();
    let a = upstream_as.clone();
    let protection = Protection {
        authorization_server: Arc::new(Mutex::new(issuer)),
        scopes: vec!["files:read".into()],
        tool_scope: None,
        scopes_of: Arc::new(move |t: &str| a.scope_of(t)),
        metadata_fetches: Default::default(),
        metadata_delay_ms: Default::default(),
    };
    let url = mcp_server::spawn_protected(upstream_as.token_check(), observed.clone(), protection).await.unwrap();
    // servers[2]: no provider.
    let extra_toml = format!(
        "[[servers]]\nslug = \"solo\"\nupstream_url = \"{url}\"\nupstream_auth = \"oauth\"\n\n\
         [servers.upstream_oauth]\nclient_id = \"proxy-at-upstream\"\nclient_secret_env = \"UPSTREAM_SECRET\"\n\
         allow_http_loopback = true\n"
    );
    let env = vec![("UPSTREAM_SECRET".to_owned(), "upstream-secret".to_owned())];
    let h = Harness::start_with(Start { extra_toml, env, clock: Some(clock), ..Default::default() }).await;

    let (status, body) = {
        let r = h
            .http
            .post(h.url("/oauth/solo/register"))
            .json(&serde_json::json!({
                "redirect_uris": [crate::harness::REDIRECT], "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"], "client_name": "Solo client",
            }))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    let authorize = h.authorize_url(&client_id, &[]).replace("/oauth/demo/", "/oauth/solo/");
    let back = Browser::new().through_callback(&authorize, &[("login", "approve")]).await;
    assert_eq!(back.status, StatusCode::FOUND, "{}", back.body);
    let code = query(&back.location()).get("code").cloned().unwrap_or_else(|| panic!("{}", back.location()));
    assert!(h.idp.authorize_requests().is_empty(), "no provider login");
    let r = h
        .http
        .post(h.url("/oauth/solo/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", crate::harness::REDIRECT),
            ("code_verifier", crate::harness::VERIFIER),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    let status = crate::harness::mcp_initialize(&h.http, &h.base, access(&tokens)).await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "/mcp/demo is not this token's server");
    let r = h
        .http
        .post(h.url("/mcp/solo"))
        .bearer_auth(access(&tokens))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(crate::harness::INITIALIZE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen = observed.authorization_headers().last().cloned().unwrap();
    assert!(upstream_as.issued_access_tokens().contains(&seen.strip_prefix("Bearer ").unwrap().to_owned()));
    // Who the user is: what the upstream's authorization server said (its userinfo).
    let filter = mcp_oauth_store::GrantFilter { server: Some("solo".into()), ..Default::default() };
    let grants = h.app.store.list_grants(&filter, 10).await.unwrap();
    assert_eq!(grants.len(), 1);
    grants[0].subject.clone()
}

#[tokio::test]
async fn replicas_registering_at_once_share_one_registration() {
    let Some(storage) = crate::replicas::postgres_url().await else { return };
    let clock = ManualClock::starting_now();
    let options = dynamic_options();
    let (upstream_as, issuer, upstream, _) = protected_upstream(options, &clock).await;
    let env: Vec<(String, String)> = [
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "oauth"),
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_OAUTH__ALLOW_HTTP_LOOPBACK", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let a = Harness::start_with(Start {
        storage_url: Some(storage.clone()),
        upstream_url: Some(upstream.clone()),
        env: env.clone(),
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let b = Harness::start_with(Start {
        storage_url: Some(storage),
        public_url: Some(a.base.clone()),
        idp: Some((a.idp.clone(), a.idp_issuer())),
        clock: Some(clock),
        upstream_url: Some(upstream),
        env,
        ..Default::default()
    })
    .await;
    // Both replicas discover and register at the same moment.
    let (on_a, on_b) = (a.app.settings.server("demo").unwrap().clone(), b.app.settings.server("demo").unwrap().clone());
    let (x, y) = tokio::join!(a.app.brokers.broker(&on_a), b.app.brokers.broker(&on_b));
    let (x, y) = (x.unwrap(), y.unwrap());
    let stored = a.app.store.upstream_registration("demo", &issuer).await.unwrap().expect("stored");
    assert_eq!(x.provider.settings().client_id, stored.client_id, "A uses the stored registration");
    assert_eq!(y.provider.settings().client_id, stored.client_id, "and so does B");
    // A grant made through A is refreshed through B with the same registration.
    let (_, tokens) = logged_in(&a, None).await;
    assert_eq!(b.mcp_status(access(&tokens)).await, StatusCode::OK);
    a.clock.advance(301);
    assert_eq!(b.mcp_status(access(&tokens)).await, StatusCode::OK);
    assert_eq!(upstream_as.refresh_count(), 1);
    assert_eq!(upstream_as.token_clients(), [stored.client_id.clone(), stored.client_id.clone()]);
}

#[tokio::test]
async fn upstream_refresh_failures_are_classified_as_provider_failures_are() {
    let b = start(upstream_as_options(), PRE_REGISTERED).await;
    let (_, tokens) = logged_in(&b.h, None).await;
    // The upstream's authorization server is down when the token is due: 503, grant kept.
    b.h.clock.advance(301);
    b.upstream_as.inject_fault(Fault::Unavailable);
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK, "back: refreshed");
    // It refuses the proxy (its client secret rotated there): 503, grant kept.
    b.h.clock.advance(301);
    b.upstream_as.inject_fault(Fault::InvalidClient);
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(b.h.access_token_works(access(&tokens)).await);
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::OK);
    // It refuses the user's grant: the grant ends, and the client gets the challenge.
    b.h.clock.advance(301);
    b.upstream_as.inject_fault(Fault::InvalidGrant);
    assert_eq!(b.h.mcp_status(access(&tokens)).await, StatusCode::UNAUTHORIZED);
    assert!(!b.h.access_token_works(access(&tokens)).await);
}

#[tokio::test]
async fn a_failed_discovery_is_not_repeated_per_request() {
    let clock = ManualClock::starting_now();
    let (_upstream_as, _, upstream_url, fetches) = protected_upstream(upstream_as_options(), &clock).await;
    // Its authorization server is on plain http, which is not allowed here: discovery fails.
    let env = vec![("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH".to_owned(), "oauth".to_owned())];
    let h =
        Harness::start_with(Start { upstream_url: Some(upstream_url), env, clock: Some(clock), ..Default::default() })
            .await;
    let server = h.app.settings.server("demo").unwrap().clone();
    for _ in 0..5 {
        let e = h.app.brokers.broker(&server).await.err().expect("refused");
        assert!(e.to_string().contains("https"), "{e}");
    }
    let fetched = |f: &Arc<AtomicUsize>| f.load(SeqCst);
    assert_eq!(fetched(&fetches), 1, "one discovery for five attempts");
    h.clock.advance(31);
    assert!(h.app.brokers.broker(&server).await.is_err());
    assert_eq!(fetched(&fetches), 2, "tried again after the pause");
}

#[tokio::test]
async fn a_silent_upstream_holds_up_only_its_own_discovery() {
    let clock = ManualClock::starting_now();
    let (_upstream_as, _, upstream_url, _) = protected_upstream(upstream_as_options(), &clock).await;
    // An upstream that takes connections and never answers: its discovery waits for the
    // timeout (10 s).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let extra_toml = format!(
        "[[servers]]\nslug = \"silent\"\nupstream_url = \"http://{}/mcp\"\nprovider = \"dev\"\n\
         upstream_auth = \"oauth\"\n[servers.upstream_oauth]\nallow_http_loopback = true\n",
        silent.local_addr().unwrap()
    );
    let env = [("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "oauth")]
        .iter()
        .chain(&[("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_OAUTH__ALLOW_HTTP_LOOPBACK", "true")])
        .chain(PRE_REGISTERED)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let start = Start { upstream_url: Some(upstream_url), env, clock: Some(clock), extra_toml, ..Default::default() };
    let h = Harness::start_with(start).await;
    let (demo, silent_server) =
        (h.app.settings.server("demo").unwrap().clone(), h.app.settings.server("silent").unwrap().clone());
    let brokers = Arc::clone(&h.app.brokers);
    let waiting = tokio::spawn(async move { brokers.broker(&silent_server).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let found = tokio::time::timeout(Duration::from_secs(5), h.app.brokers.broker(&demo)).await;
    assert!(found.expect("not held up by the silent upstream's discovery").is_ok());
    assert!(!waiting.is_finished(), "the silent upstream's discovery is still waiting");
    waiting.abort();
}

#[tokio::test]
async fn metadata_naming_another_resource_is_refused() {
    // RFC 9728 §3.3 (the conformance suite's `auth/resource-mismatch`): the upstream's
    // protected-resource metadata names `http://127.0.0.1:…/mcp`, and the proxy reaches it
    // as `http://localhost:…/mcp`, another origin: its authorization server is never used.
    let clock = ManualClock::starting_now();
    let (upstream_as, _, upstream_url, _) = protected_upstream(upstream_as_options(), &clock).await;
    let elsewhere = upstream_url.replace("127.0.0.1", "localhost");
    assert_ne!(elsewhere, upstream_url);
    let env: Vec<(String, String)> = [
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_AUTH", "oauth"),
        ("MCP_OAUTH_PROXY_SERVERS__0__UPSTREAM_OAUTH__ALLOW_HTTP_LOOPBACK", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let h = Harness::start_with(Start { upstream_url: Some(elsewhere), env, clock: Some(clock), ..Default::default() })
        .await;
    let server = h.app.settings.server("demo").unwrap().clone();
    let e = h.app.brokers.broker(&server).await.err().expect("refused");
    assert!(e.to_string().contains("not for the MCP upstream"), "{e}");
    assert!(upstream_as.authorize_requests().is_empty() && upstream_as.token_requests().is_empty());
}
