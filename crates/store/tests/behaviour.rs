//! The storage behaviour suite: every promise of the `Store` trait, checked against every
//! backend available. SQLite always runs; PostgreSQL runs when `MOP_TEST_POSTGRES_URL`
//! names a database (CI sets it, and refuses to skip it there).

use std::sync::Arc;

use mcp_oauth_core::client::{Client, ClientMetadata};
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::{TokenHash, TokenKind, mint, random_id};
use mcp_oauth_store::*;

async fn backends() -> Vec<Arc<dyn Store>> {
    let dir = std::env::temp_dir().join(format!("mop-store-{}", random_id()));
    let mut out = vec![open(&format!("sqlite://{}/test.db", dir.display())).await.unwrap()];
    match std::env::var("MOP_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => out.push(open(&fresh_postgres_database(&url).await).await.unwrap()),
        _ if std::env::var("MOP_REQUIRE_POSTGRES").is_ok() => {
            panic!("MOP_REQUIRE_POSTGRES is set but MOP_TEST_POSTGRES_URL is not")
        }
        _ => {}
    }
    out
}

/// A new, empty database on the test server, so that each test (purges included) sees
/// only its own rows, as it does with its own SQLite file.
async fn fresh_postgres_database(url: &str) -> String {
    use sqlx::Connection;
    let name = format!("mop_behaviour_{}", random_id());
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let base = url.rsplit_once('/').map(|(b, _)| b).unwrap_or(url);
    format!("{base}/{name}")
}

const NOW: i64 = 1_700_000_000;

fn pair(client: &str, now: i64) -> (NewTokenPair, String, String) {
    let at = mint(TokenKind::AccessToken);
    let rt = mint(TokenKind::RefreshToken);
    (
        NewTokenPair {
            access_hash: at.hash,
            access_expires_at: now + 3600,
            refresh: Some((rt.hash, now + 86_400)),
            client_id: client.into(),
            scope: "mcp".into(),
            issued_at: now,
        },
        at.secret,
        rt.secret,
    )
}

/// A family with an unredeemed code; returns (family id, code hash).
async fn family(store: &dyn Store, client: &str) -> (String, TokenHash) {
    let id = random_id();
    let code = mint(TokenKind::AuthorizationCode);
    store
        .create_family(
            &NewFamily {
                id: id.clone(),
                server: "demo".into(),
                client_id: client.into(),
                subject: "user-1".into(),
                scope: "mcp".into(),
                resource: "http://p/mcp/demo".into(),
                upstream_sealed: "v1.x.y".into(),
                upstream_expires_at: None,
                created_at: NOW,
                trace_id: Some("trace-1".into()),
            },
            &NewCode {
                hash: code.hash,
                family_id: id.clone(),
                client_id: client.into(),
                redirect_uri: "http://127.0.0.1/cb".into(),
                code_challenge: "c".into(),
                expires_at: NOW + 60,
            },
        )
        .await
        .unwrap();
    (id, code.hash)
}

/// A family whose code has been redeemed; returns (family id, refresh token hash).
async fn active_family(store: &dyn Store, client: &str) -> (String, TokenHash) {
    let (id, code) = family(store, client).await;
    let (p, _, _) = pair(client, NOW);
    assert!(store.redeem_code(&code, NOW, &p).await.unwrap());
    (id, p.refresh.unwrap().0)
}

/// Rotates `hash` as `client_id` at `now` with a 30-second grace window.
async fn rotate(
    store: &dyn Store,
    hash: &TokenHash,
    client_id: &str,
    now: i64,
    pair: &NewTokenPair,
    successor_sealed: &str,
) -> Rotation {
    let rotation = RefreshRotation { hash, client_id, now, grace_secs: 30, pair, successor_sealed };
    store.rotate_refresh_token(rotation).await.unwrap()
}

#[tokio::test]
async fn clients_are_scoped_to_their_server() {
    for store in backends().await {
        let metadata = ClientMetadata::from_registration(&serde_json::json!({
            "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "none"
        }))
        .unwrap();
        let client = Client {
            client_id: random_id(),
            secret_hash: None,
            metadata: metadata.clone(),
            trusted: false,
            created_at: NOW,
        };
        store.insert_client("demo", &client).await.unwrap();
        let found = store.find_client("demo", &client.client_id).await.unwrap().unwrap();
        assert_eq!(found.metadata, metadata);
        assert!(found.secret_hash.is_none());
        assert!(store.find_client("other", &client.client_id).await.unwrap().is_none());
        assert!(matches!(store.insert_client("demo", &client).await, Err(StoreError::Duplicate(_))));

        // A confidential client's secret hash comes back as it went in.
        let secret = mint(TokenKind::ClientSecret);
        let confidential = Client { client_id: random_id(), secret_hash: Some(secret.hash), ..client };
        store.insert_client("demo", &confidential).await.unwrap();
        let found = store.find_client("demo", &confidential.client_id).await.unwrap().unwrap();
        assert_eq!(found.secret_hash, Some(secret.hash));
    }
}

#[tokio::test]
async fn pending_authorizations_are_taken_once_by_their_own_browser() {
    for store in backends().await {
        let state = mint(TokenKind::UpstreamState);
        let browser = TokenHash::of("browser-a");
        let pending = PendingAuthorization {
            state_hash: state.hash,
            browser_hash: browser,
            server: "demo".into(),
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            scope: "mcp".into(),
            resource: "r".into(),
            code_challenge: "x".into(),
            client_state: Some("s".into()),
            upstream_verifier: "v".into(),
            nonce: None,
            expires_at: NOW + 600,
            trace_id: Some("trace-2".into()),
            address: Some("192.0.2.1".into()),
            broker: Some("sealed-step".into()),
        };
        let caps = |per_browser, per_address| PendingCaps { per_browser, per_address };
        assert!(store.insert_pending(&pending, NOW, caps(2, 2)).await.unwrap());
        assert!(store.take_pending(&state.hash, &TokenHash::of("browser-b"), NOW).await.unwrap().is_none());
        assert!(store.take_pending(&state.hash, &browser, NOW + 600).await.unwrap().is_none(), "expired");
        let taken = store.take_pending(&state.hash, &browser, NOW).await.unwrap().unwrap();
        assert_eq!(taken.client_state.as_deref(), Some("s"));
        assert_eq!(taken.trace_id.as_deref(), Some("trace-2"));
        assert_eq!(taken.broker.as_deref(), Some("sealed-step"), "the broker step comes back");
        assert!(store.take_pending(&state.hash, &browser, NOW).await.unwrap().is_none(), "single use");
        // At most so many unexpired logins per browser, and per address.
        let another = |browser_hash, address: &str| PendingAuthorization {
            state_hash: mint(TokenKind::UpstreamState).hash,
            browser_hash,
            address: Some(address.into()),
            ..pending.clone()
        };
        let a = "192.0.2.1";
        assert!(store.insert_pending(&another(browser, a), NOW, caps(2, 9)).await.unwrap());
        assert!(store.insert_pending(&another(browser, a), NOW, caps(2, 9)).await.unwrap());
        assert!(!store.insert_pending(&another(browser, a), NOW, caps(2, 9)).await.unwrap(), "capped");
        let b = TokenHash::of("browser-b");
        assert!(store.insert_pending(&another(b, a), NOW, caps(2, 9)).await.unwrap(), "per browser");
        assert!(
            store.insert_pending(&another(browser, a), NOW + 600, caps(2, 9)).await.unwrap(),
            "expired ones do not count"
        );
        // Fresh browsers (cookies the client chose) from one address: capped per address.
        let fresh = |i: usize| TokenHash::of(&format!("fresh-{i}"));
        assert!(store.insert_pending(&another(fresh(1), "192.0.2.50"), NOW, caps(2, 2)).await.unwrap());
        assert!(store.insert_pending(&another(fresh(2), "192.0.2.50"), NOW, caps(2, 2)).await.unwrap());
        assert!(!store.insert_pending(&another(fresh(3), "192.0.2.50"), NOW, caps(2, 2)).await.unwrap(), "per address");
        assert!(
            store.insert_pending(&another(fresh(4), "192.0.2.51"), NOW, caps(2, 2)).await.unwrap(),
            "another address"
        );
    }
}

#[tokio::test]
async fn upstream_registrations_are_stored_once_per_server_and_issuer() {
    for store in backends().await {
        let reg = |client_id: &str, issuer: &str| UpstreamRegistration {
            server: "brokered".into(),
            issuer: issuer.into(),
            client_id: client_id.into(),
            secret_sealed: Some(format!("sealed-{client_id}")),
            created_at: NOW,
        };
        let issuer = "https://as.example";
        assert!(store.upstream_registration("brokered", issuer).await.unwrap().is_none());
        // Two replicas registering at once: both end up using the first one stored.
        let (first, second) = (reg("client-a", issuer), reg("client-b", issuer));
        let (a, b) =
            tokio::join!(store.insert_upstream_registration(&first), store.insert_upstream_registration(&second),);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a, b, "one registration wins");
        assert!(a.client_id == "client-a" || a.client_id == "client-b");
        assert_eq!(a.secret_sealed, Some(format!("sealed-{}", a.client_id)));
        let again = store.insert_upstream_registration(&reg("client-c", issuer)).await.unwrap();
        assert_eq!(again, a, "a later registration does not replace it");
        assert_eq!(store.upstream_registration("brokered", issuer).await.unwrap(), Some(a.clone()));
        // Another issuer (the upstream moved its authorization server): a registration of its own.
        let moved = store.insert_upstream_registration(&reg("client-d", "https://as2.example")).await.unwrap();
        assert_eq!(moved.client_id, "client-d");
        assert!(store.upstream_registration("other", issuer).await.unwrap().is_none(), "per server");

        // Key rotation finds a secret sealed with another key (the key id is the sealed
        // value's characters 4..12) and re-seals it only if it is still as read.
        let sealed_with = |key: &str| format!("v1.{key}.payload");
        let public = UpstreamRegistration { secret_sealed: None, ..reg("public", "https://as3.example") };
        store.insert_upstream_registration(&public).await.unwrap();
        let old =
            UpstreamRegistration { secret_sealed: Some(sealed_with("oldkey01")), ..reg("x", "https://as4.example") };
        store.insert_upstream_registration(&old).await.unwrap();
        let usage = store.sealed_key_usage().await.unwrap();
        assert!(usage.contains(&("oldkey01".to_owned(), 1)), "{usage:?}");
        let found = store.sealed_with_other_keys("newkey01", 100).await.unwrap();
        let kind = SealedKind::UpstreamRegistration { server: "brokered".into(), issuer: "https://as4.example".into() };
        let value = found.iter().find(|v| v.kind == kind).expect("the old secret is found").clone();
        assert_eq!(value.sealed, sealed_with("oldkey01"));
        assert!(store.reseal(&value, &sealed_with("newkey01")).await.unwrap());
        assert!(!store.reseal(&value, &sealed_with("newkey02")).await.unwrap(), "only as read");
        let now = store.upstream_registration("brokered", "https://as4.example").await.unwrap().unwrap();
        assert_eq!(now.secret_sealed, Some(sealed_with("newkey01")));
    }
}

#[tokio::test]
async fn concurrent_code_redemption_has_exactly_one_winner() {
    for store in backends().await {
        let (_, code) = family(store.as_ref(), "c").await;
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move { store.redeem_code(&code, NOW, &pair("c", NOW).0).await.unwrap() }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += t.await.unwrap() as usize;
        }
        assert_eq!(wins, 1, "{}", store.backend());
        assert!(store.find_code(&code).await.unwrap().unwrap().used);
    }
}

#[tokio::test]
async fn expired_codes_cannot_be_redeemed() {
    for store in backends().await {
        let (_, code) = family(store.as_ref(), "c").await;
        assert!(!store.redeem_code(&code, NOW + 60, &pair("c", NOW).0).await.unwrap());
    }
}

#[tokio::test]
async fn rotation_honours_client_grace_expiry_and_family() {
    for store in backends().await {
        let (family_id, rt) = active_family(store.as_ref(), "c").await;
        let refused = rotate(store.as_ref(), &rt, "other", NOW, &pair("other", NOW).0, "s0").await;
        assert_eq!(refused, Rotation::Refused);
        let (p1, _, _) = pair("c", NOW + 10);
        assert_eq!(rotate(store.as_ref(), &rt, "c", NOW + 10, &p1, "successor-1").await, Rotation::Rotated);
        let old = store.find_refresh_token(&rt).await.unwrap().unwrap();
        assert_eq!(old.superseded_at, Some(NOW + 10));
        // Within grace: the first rotation's successor again, a new access token beside
        // it, and no second refresh token; the supersession time does not move.
        let (p2, _, _) = pair("c", NOW + 40);
        let replay = rotate(store.as_ref(), &rt, "c", NOW + 40, &p2, "successor-2").await;
        assert_eq!(replay, Rotation::Replayed { successor_sealed: "successor-1".into() });
        assert!(store.find_access_token(&p2.access_hash).await.unwrap().is_some());
        assert!(store.find_refresh_token(&p2.refresh.unwrap().0).await.unwrap().is_none(), "no second branch");
        assert_eq!(store.find_refresh_token(&rt).await.unwrap().unwrap().superseded_at, Some(NOW + 10));
        // After grace: refused.
        let late = rotate(store.as_ref(), &rt, "c", NOW + 41, &pair("c", NOW + 41).0, "s3").await;
        assert_eq!(late, Rotation::Refused);
        // The new token works until its family ends.
        let new = store.find_refresh_token(&p1.refresh.unwrap().0).await.unwrap().unwrap();
        assert_eq!(new.family_id, family_id);
        assert!(store.end_family(&family_id, FamilyStatus::Revoked, NOW + 50).await.unwrap());
        assert!(!store.end_family(&family_id, FamilyStatus::Revoked, NOW + 50).await.unwrap());
        let ended = rotate(store.as_ref(), &p1.refresh.unwrap().0, "c", NOW + 50, &pair("c", NOW).0, "s").await;
        assert_eq!(ended, Rotation::Refused);
        let at = store.find_access_token(&p1.access_hash).await.unwrap().unwrap();
        assert_eq!(at.upstream.family_status, FamilyStatus::Revoked);
        // An expired token does not rotate.
        let (_, rt2) = active_family(store.as_ref(), "c").await;
        let expired = rotate(store.as_ref(), &rt2, "c", NOW + 86_400, &pair("c", NOW).0, "s").await;
        assert_eq!(expired, Rotation::Refused);
    }
}

#[tokio::test]
async fn concurrent_rotations_rotate_once_and_all_get_the_one_successor() {
    for store in backends().await {
        let (family_id, rt) = active_family(store.as_ref(), "c").await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let (p, _, _) = pair("c", NOW);
                let outcome = rotate(store.as_ref(), &rt, "c", NOW, &p, &format!("successor-{i}")).await;
                (i, outcome, p)
            }));
        }
        let mut winner = None;
        let mut replays = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (i, Rotation::Rotated, p) => {
                    assert!(winner.is_none(), "a second rotation");
                    winner = Some((format!("successor-{i}"), p));
                }
                (_, Rotation::Replayed { successor_sealed }, p) => replays.push((successor_sealed, p)),
                (_, Rotation::Refused, _) => panic!("refused within grace"),
            }
        }
        let (successor, p) = winner.expect("one rotation");
        assert_eq!(store.find_refresh_token(&p.refresh.unwrap().0).await.unwrap().unwrap().family_id, family_id);
        assert_eq!(replays.len(), 19);
        for (sealed, p) in replays {
            assert_eq!(sealed, successor);
            assert!(store.find_refresh_token(&p.refresh.unwrap().0).await.unwrap().is_none());
            assert!(store.find_access_token(&p.access_hash).await.unwrap().is_some());
        }
    }
}

#[tokio::test]
async fn access_tokens_carry_their_grant_and_can_be_revoked() {
    for store in backends().await {
        let (family_id, code) = family(store.as_ref(), "c").await;
        let (p, _, _) = pair("c", NOW);
        store.redeem_code(&code, NOW, &p).await.unwrap();
        let info = store.find_access_token(&p.access_hash).await.unwrap().unwrap();
        assert_eq!(
            (info.upstream.family_id.as_str(), info.server.as_str(), info.subject.as_str()),
            (family_id.as_str(), "demo", "user-1")
        );
        assert_eq!(info.trace_id.as_deref(), Some("trace-1"), "the login attempt's trace id");
        // The grant's provider credential comes with it, as the one value a refresh reads.
        let up = &info.upstream;
        assert_eq!((up.sealed.as_str(), up.expires_at, up.family_status), ("v1.x.y", None, FamilyStatus::Active));
        assert_eq!(store.find_code(&code).await.unwrap().unwrap().trace_id.as_deref(), Some("trace-1"));
        assert!(!info.revoked);
        assert!(store.revoke_access_token(&p.access_hash, NOW).await.unwrap());
        assert!(store.find_access_token(&p.access_hash).await.unwrap().unwrap().revoked);
        assert!(store.find_access_token(&TokenHash::of("nope")).await.unwrap().is_none());
        let up = store.upstream_credential(&family_id).await.unwrap().unwrap();
        assert_eq!(up.sealed, "v1.x.y");
        assert_eq!(up.expires_at, None);
    }
}

#[tokio::test]
async fn uses_move_a_grant_s_last_use_forward_only() {
    for store in backends().await {
        let (a, _) = active_family(store.as_ref(), "c").await;
        let (b, _) = active_family(store.as_ref(), "c").await;
        let last_used = |id: String| {
            let store = Arc::clone(&store);
            async move {
                let filter = GrantFilter { grant_id: Some(id), ..GrantFilter::default() };
                store.list_grants(&filter, 1).await.unwrap()[0].last_used_at
            }
        };
        assert_eq!(last_used(a.clone()).await, None, "never used");
        let batch = [(a.clone(), NOW + 10), (b.clone(), NOW + 20), ("no-such-grant".to_owned(), NOW)];
        store.record_uses(&batch).await.unwrap();
        assert_eq!((last_used(a.clone()).await, last_used(b.clone()).await), (Some(NOW + 10), Some(NOW + 20)));
        // A batch from another replica that noted an older use moves nothing back.
        store.record_uses(&[(a.clone(), NOW + 5), (b.clone(), NOW + 30)]).await.unwrap();
        assert_eq!((last_used(a).await, last_used(b).await), (Some(NOW + 10), Some(NOW + 30)));
        store.record_uses(&[]).await.unwrap();
    }
}

#[tokio::test]
async fn purge_removes_only_what_has_expired() {
    for store in backends().await {
        let (live_family, live_rt) = active_family(store.as_ref(), "c").await;
        let (dead_family, _) = family(store.as_ref(), "c").await; // code never redeemed
        let retention = Retention { used_code_secs: 100, idle_client_secs: 1000, refresh_grace_secs: 30 };
        let later = NOW + 60 + 100;
        store.purge_expired(later, retention).await.unwrap();
        assert!(store.upstream_credential(&dead_family).await.unwrap().is_none());
        assert!(store.upstream_credential(&live_family).await.unwrap().is_some());
        assert!(store.find_refresh_token(&live_rt).await.unwrap().is_some());
        store.purge_expired(NOW + 86_400, retention).await.unwrap();
        assert!(store.find_refresh_token(&live_rt).await.unwrap().is_none());
        assert!(store.upstream_credential(&live_family).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = std::env::temp_dir().join(format!("mop-store-{}", random_id()));
    let url = format!("sqlite://{}/test.db", dir.display());
    let store = open(&url).await.unwrap();
    let (family_id, rt) = active_family(store.as_ref(), "c").await;
    drop(store);
    let store = open(&url).await.unwrap();
    assert_eq!(store.find_refresh_token(&rt).await.unwrap().unwrap().family_id, family_id);
}

#[tokio::test]
async fn the_refresh_lease_is_exclusive_until_released_or_expired() {
    for store in backends().await {
        let (family_id, _) = active_family(store.as_ref(), "c").await;
        let first = store.take_refresh_lease(&family_id, 1).await.unwrap().expect("free");
        assert!(store.take_refresh_lease(&family_id, 1).await.unwrap().is_none(), "held");
        // The lease runs on the database's clock: wait it out for real.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let second = store.take_refresh_lease(&family_id, 10).await.unwrap().expect("expired, taken over");
        // The first holder lost its lease: its result must not overwrite the second's.
        assert!(!store.store_upstream_credential(&first, "v1.stale.sealed", Some(NOW)).await.unwrap());
        store.release_refresh_lease(&first).await.unwrap();
        assert!(store.take_refresh_lease(&family_id, 10).await.unwrap().is_none(), "a lost lease releases nothing");
        assert!(store.store_upstream_credential(&second, "v1.new.sealed", Some(NOW + 3600)).await.unwrap());
        let up = store.upstream_credential(&family_id).await.unwrap().unwrap();
        assert_eq!((up.sealed.as_str(), up.expires_at), ("v1.new.sealed", Some(NOW + 3600)));
        let third = store.take_refresh_lease(&family_id, 10).await.unwrap().expect("storing released it");
        store.release_refresh_lease(&third).await.unwrap();
        // Concurrent takers: exactly one wins.
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let store = store.clone();
            let id = family_id.clone();
            tasks.push(tokio::spawn(async move { store.take_refresh_lease(&id, 10).await.unwrap().is_some() }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += t.await.unwrap() as usize;
        }
        assert_eq!(wins, 1);
    }
}

/// A replay within the grace window answers what the first rotation answered: its access
/// token carries the successor's scope, not one computed anew from the replayed token
/// (which would undo a narrowing the rotation made).
#[tokio::test]
async fn a_replay_within_grace_issues_the_successors_scope() {
    for store in backends().await {
        let (_, rt) = active_family(store.as_ref(), "c").await;
        let (mut narrowed, _, _) = pair("c", NOW + 10);
        narrowed.scope = "tools:read".into();
        assert_eq!(rotate(store.as_ref(), &rt, "c", NOW + 10, &narrowed, "successor-1").await, Rotation::Rotated);
        let (mut replayed, _, _) = pair("c", NOW + 20);
        replayed.scope = "mcp tools:read tools:write".into();
        let replay = rotate(store.as_ref(), &rt, "c", NOW + 20, &replayed, "successor-2").await;
        assert_eq!(replay, Rotation::Replayed { successor_sealed: "successor-1".into() });
        let access = store.find_access_token(&replayed.access_hash).await.unwrap().unwrap();
        assert_eq!(access.scope, "tools:read", "the successor's scope, as the first answer carried");
        let successor = store.find_refresh_token(&narrowed.refresh.unwrap().0).await.unwrap().unwrap();
        assert_eq!(successor.scope, "tools:read");
    }
}

/// Grants ended and access tokens revoked are found by what the database's clock said
/// before they happened, by every way they end; what came before is not, nor what lives.
#[tokio::test]
async fn revocations_are_found_since_a_moment_on_the_database_clock() {
    for store in backends().await {
        let (live, _) = active_family(store.as_ref(), "c").await;
        let (ended_before, _) = active_family(store.as_ref(), "c").await;
        assert!(store.end_family(&ended_before, FamilyStatus::Revoked, NOW).await.unwrap());
        // The database's clock counts seconds: wait for the next one.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let since = store.revocations_since(i64::MAX).await.unwrap();
        assert_eq!((since.grants.len(), since.access_tokens.len()), (0, 0), "nothing is revoked in the future");
        let start = since.now;

        let (ended, _) = active_family(store.as_ref(), "c").await;
        assert!(store.end_family(&ended, FamilyStatus::NeedsLogin, NOW).await.unwrap());
        let (by_operator, _) = active_family(store.as_ref(), "operator-client").await;
        let filter = GrantFilter { grant_id: Some(by_operator.clone()), ..GrantFilter::default() };
        assert_eq!(store.revoke_grants(&filter, NOW).await.unwrap(), 1);
        let (of_deleted_client, _) = active_family(store.as_ref(), "deleted-client").await;
        store.delete_client("deleted-client", NOW).await.unwrap();
        let (token_family, code) = family(store.as_ref(), "c").await;
        let (p, _, _) = pair("c", NOW);
        assert!(store.redeem_code(&code, NOW, &p).await.unwrap());
        assert!(store.revoke_access_token(&p.access_hash, NOW).await.unwrap());

        let found = store.revocations_since(start).await.unwrap();
        assert!(found.now >= start);
        let mut grants = found.grants.clone();
        grants.sort();
        let mut expected = vec![ended, by_operator, of_deleted_client];
        expected.sort();
        assert_eq!(grants, expected, "{found:?}");
        assert!(!found.grants.contains(&live) && !found.grants.contains(&ended_before));
        assert!(!found.grants.contains(&token_family), "revoking one access token leaves its grant");
        assert_eq!(found.access_tokens, vec![p.access_hash]);
    }
}

/// A tool's sighting with the definition `version` (its digest is the version's name: the
/// store compares digests as given).
fn seen(tool: &str, version: &str) -> SeenTool {
    SeenTool {
        name: tool.into(),
        digest: format!("digest-{version}"),
        definition: format!(r#"{{"name":"{tool}","description":"{version}"}}"#),
    }
}

#[tokio::test]
async fn tools_are_pinned_at_first_sight_and_changes_are_reported_once() {
    for store in backends().await {
        let b = store.backend();
        // First sight pins, and is no change.
        assert!(store.pin_tools("demo", &[seen("echo", "a"), seen("add", "a")], NOW).await.unwrap().is_empty());
        let pins = store.tool_pins(Some("demo")).await.unwrap();
        assert_eq!(pins.iter().map(|p| p.tool.as_str()).collect::<Vec<_>>(), ["add", "echo"], "{b}");
        assert_eq!(
            pins[1],
            ToolPin {
                server: "demo".into(),
                tool: "echo".into(),
                digest: "digest-a".into(),
                definition: seen("echo", "a").definition,
                pinned_at: NOW,
                changed: None,
            }
        );
        // The pinned definition again: nothing.
        assert!(store.pin_tools("demo", &[seen("echo", "a")], NOW + 1).await.unwrap().is_empty());
        assert!(changed(&*store, "demo").await.is_empty());

        // A different definition is reported once; seen again, it is not reported again.
        assert_eq!(store.pin_tools("demo", &[seen("echo", "b"), seen("add", "a")], NOW + 2).await.unwrap(), ["echo"]);
        assert!(store.pin_tools("demo", &[seen("echo", "b"), seen("add", "a")], NOW + 3).await.unwrap().is_empty());
        assert_eq!(changed(&*store, "demo").await, ["echo"]);
        let echo = |pins: Vec<ToolPin>| pins.into_iter().find(|p| p.tool == "echo").unwrap();
        let pin = echo(store.tool_pins(Some("demo")).await.unwrap());
        assert_eq!((pin.digest.as_str(), pin.pinned_at), ("digest-a", NOW), "the pin stays as approved");
        assert_eq!(
            pin.changed,
            Some(ToolChange { digest: "digest-b".into(), definition: seen("echo", "b").definition, seen_at: NOW + 2 })
        );
        // Yet another definition is a change of its own, reported again.
        assert_eq!(store.pin_tools("demo", &[seen("echo", "c")], NOW + 4).await.unwrap(), ["echo"]);
        let pin = echo(store.tool_pins(Some("demo")).await.unwrap());
        assert_eq!(pin.changed.map(|c| (c.digest, c.seen_at)), Some(("digest-c".into(), NOW + 4)));

        // Back to the pinned definition: the pending change is cleared, unreported.
        assert!(store.pin_tools("demo", &[seen("echo", "a")], NOW + 5).await.unwrap().is_empty());
        assert!(changed(&*store, "demo").await.is_empty());
        assert_eq!(echo(store.tool_pins(Some("demo")).await.unwrap()).changed, None);
        // ... so changing away from it again is a change again.
        assert_eq!(store.pin_tools("demo", &[seen("echo", "c")], NOW + 6).await.unwrap(), ["echo"]);

        // A name listed twice counts once, with its first definition.
        let twice = [seen("twice", "a"), seen("twice", "b")];
        assert!(store.pin_tools("demo", &twice, NOW).await.unwrap().is_empty());
        assert!(store.pin_tools("demo", &twice, NOW).await.unwrap().is_empty());
        let pin = store.tool_pins(Some("demo")).await.unwrap().into_iter().find(|p| p.tool == "twice").unwrap();
        assert_eq!((pin.digest.as_str(), pin.changed), ("digest-a", None));
        // Nothing seen: nothing changes.
        assert!(store.pin_tools("demo", &[], NOW).await.unwrap().is_empty());
        assert_eq!(changed(&*store, "demo").await, ["echo"]);
    }
}

#[tokio::test]
async fn racing_sightings_of_one_change_report_it_once() {
    for store in backends().await {
        let tools: Vec<SeenTool> = (0..5).map(|i| seen(&format!("tool-{i}"), "a")).collect();
        store.pin_tools("demo", &tools, NOW).await.unwrap();
        for round in ["b", "c"] {
            // Every caller sees the same change to every tool, in its own order.
            let changed: Vec<SeenTool> = (0..5).map(|i| seen(&format!("tool-{i}"), round)).collect();
            let mut tasks = Vec::new();
            for i in 0..20 {
                let store = store.clone();
                let mut changed = changed.clone();
                changed.rotate_left(i % 5);
                tasks.push(tokio::spawn(async move { store.pin_tools("demo", &changed, NOW + 1).await.unwrap() }));
            }
            let mut reported = Vec::new();
            for t in tasks {
                reported.extend(t.await.unwrap());
            }
            reported.sort();
            let expected: Vec<String> = (0..5).map(|i| format!("tool-{i}")).collect();
            assert_eq!(reported, expected, "each change reported exactly once ({})", store.backend());
        }
    }
}

#[tokio::test]
async fn an_accepted_change_becomes_the_pin() {
    for store in backends().await {
        store.pin_tools("demo", &[seen("echo", "a")], NOW).await.unwrap();
        assert!(!store.accept_tool_change("demo", "echo", None, NOW + 1).await.unwrap(), "nothing pending");
        assert!(!store.accept_tool_change("demo", "nope", None, NOW + 1).await.unwrap(), "no such tool");
        assert_eq!(store.pin_tools("demo", &[seen("echo", "b")], NOW + 2).await.unwrap(), ["echo"]);
        // Only the change the operator looked at is accepted: not one that replaced it.
        assert!(!store.accept_tool_change("demo", "echo", Some("digest-x"), NOW + 3).await.unwrap());
        assert!(!store.accept_tool_change("other", "echo", None, NOW + 3).await.unwrap(), "another server's");
        assert!(store.accept_tool_change("demo", "echo", Some("digest-b"), NOW + 3).await.unwrap());
        assert!(!store.accept_tool_change("demo", "echo", None, NOW + 4).await.unwrap(), "accepted once");
        let pins = store.tool_pins(Some("demo")).await.unwrap();
        assert_eq!(
            pins,
            [ToolPin {
                server: "demo".into(),
                tool: "echo".into(),
                digest: "digest-b".into(),
                definition: seen("echo", "b").definition,
                pinned_at: NOW + 3,
                changed: None,
            }]
        );
        // The accepted definition is now what is expected; the old one would be a change.
        assert!(store.pin_tools("demo", &[seen("echo", "b")], NOW + 5).await.unwrap().is_empty());
        assert_eq!(store.pin_tools("demo", &[seen("echo", "a")], NOW + 6).await.unwrap(), ["echo"]);
        // Without an expected digest, whatever is pending is accepted.
        assert!(store.accept_tool_change("demo", "echo", None, NOW + 7).await.unwrap());
        assert_eq!(store.tool_pins(Some("demo")).await.unwrap()[0].digest, "digest-a");
    }
}

#[tokio::test]
async fn tool_pins_are_kept_per_server() {
    for store in backends().await {
        store.pin_tools("one", &[seen("echo", "a")], NOW).await.unwrap();
        // The same tool name at another server is another tool: first sight, no change.
        assert!(store.pin_tools("two", &[seen("echo", "b")], NOW).await.unwrap().is_empty());
        assert_eq!(store.pin_tools("one", &[seen("echo", "b")], NOW + 1).await.unwrap(), ["echo"]);
        assert!(changed(&*store, "two").await.is_empty());
        assert_eq!(changed(&*store, "one").await, ["echo"]);
        let all = store.tool_pins(None).await.unwrap();
        let listed: Vec<_> = all.iter().map(|p| (p.server.as_str(), p.tool.as_str(), p.changed.is_some())).collect();
        assert_eq!(listed, [("one", "echo", true), ("two", "echo", false)]);
        assert_eq!(store.tool_pins(Some("two")).await.unwrap().len(), 1);
        assert!(store.tool_pins(Some("three")).await.unwrap().is_empty());
        assert!(store.accept_tool_change("one", "echo", None, NOW + 2).await.unwrap());
        assert_eq!(store.tool_pins(Some("two")).await.unwrap()[0].digest, "digest-b", "untouched");
    }
}

/// The tools of `server` with a pending change, by name.
async fn changed(store: &dyn mcp_oauth_store::Store, server: &str) -> Vec<String> {
    let pins = store.tool_pins(Some(server)).await.unwrap();
    pins.into_iter().filter(|p| p.changed.is_some()).map(|p| p.tool).collect()
}

#[tokio::test]
async fn a_grant_issued_at_the_token_endpoint_has_its_tokens_at_once() {
    for store in backends().await {
        let id = random_id();
        let family = NewFamily {
            id: id.clone(),
            server: "demo".into(),
            client_id: "ci-bot".into(),
            subject: "client:ci-bot".into(),
            scope: "mcp".into(),
            resource: "http://p/mcp/demo".into(),
            upstream_sealed: "v1.x.y".into(),
            upstream_expires_at: None,
            created_at: NOW,
            trace_id: None,
        };
        let (mut p, _, _) = pair("ci-bot", NOW);
        p.refresh = None;
        store.issue_grant(&family, &p).await.unwrap();
        let info = store.find_access_token(&p.access_hash).await.unwrap().unwrap();
        assert_eq!((info.subject.as_str(), info.upstream.family_id.as_str()), ("client:ci-bot", id.as_str()));
        assert!(store.end_family(&id, FamilyStatus::Revoked, NOW).await.unwrap(), "it is a grant like any other");
        // Gone with its access token.
        store.purge_expired(NOW + 3600, Retention::default()).await.unwrap();
        assert!(store.upstream_credential(&id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn an_assertion_id_is_used_once_across_stores_until_it_expires() {
    let Ok(url) = std::env::var("MOP_TEST_POSTGRES_URL") else { return };
    if url.is_empty() {
        return;
    }
    // Two stores on one PostgreSQL database: two replicas.
    let db = fresh_postgres_database(&url).await;
    let (a, b) = (open(&db).await.unwrap(), open(&db).await.unwrap());
    let jti = TokenHash::of("jti-1");
    assert_eq!(a.use_assertion("https://idp", &jti, NOW + 60, NOW, 10).await.unwrap(), AssertionUse::First);
    assert_eq!(b.use_assertion("https://idp", &jti, NOW + 60, NOW, 10).await.unwrap(), AssertionUse::Replay);
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(
                async move { store.use_assertion("https://idp", &TokenHash::of("jti-2"), NOW + 60, NOW, 10).await },
            )
        })
        .collect();
    let mut firsts = 0;
    for r in racers {
        firsts += usize::from(r.await.unwrap().unwrap() == AssertionUse::First);
    }
    assert_eq!(firsts, 1, "exactly one replica wins a racing assertion");
}

#[tokio::test]
async fn assertion_ids_are_remembered_per_issuer_bounded_and_purged() {
    for store in backends().await {
        let jti = TokenHash::of("jti-1");
        assert_eq!(store.use_assertion("https://idp", &jti, NOW + 60, NOW, 2).await.unwrap(), AssertionUse::First);
        assert_eq!(
            store.use_assertion("https://idp", &jti, NOW + 60, NOW + 30, 2).await.unwrap(),
            AssertionUse::Replay
        );
        // The same id from another issuer is another assertion.
        assert_eq!(store.use_assertion("https://other", &jti, NOW + 60, NOW, 2).await.unwrap(), AssertionUse::First);
        // The bound: refused, not grown.
        let second = TokenHash::of("jti-2");
        assert_eq!(store.use_assertion("https://idp", &second, NOW + 60, NOW, 2).await.unwrap(), AssertionUse::First);
        let third = TokenHash::of("jti-3");
        assert_eq!(store.use_assertion("https://idp", &third, NOW + 60, NOW, 2).await.unwrap(), AssertionUse::Full);
        // Expired ones count no more, and a purge forgets them.
        assert_eq!(
            store.use_assertion("https://idp", &third, NOW + 200, NOW + 61, 2).await.unwrap(),
            AssertionUse::First
        );
        let purged = store.purge_expired(NOW + 61, Retention::default()).await.unwrap();
        assert_eq!(purged.assertions, 3, "{purged:?}");
        assert_eq!(
            store.use_assertion("https://idp", &third, NOW + 200, NOW + 62, 2).await.unwrap(),
            AssertionUse::Replay
        );
    }
}
