//! Property tests for the input parsers and rules, and the token family against a model.
//! Run with `PROPTEST_CASES` to go deeper; CI runs the defaults below.

use std::collections::{BTreeMap, BTreeSet};

use mcp_oauth_core::client::AuthMethod;
use mcp_oauth_core::client_metadata_document::{is_forbidden_address, metadata_from_document};
use mcp_oauth_core::family::{FamilyStatus, RefreshTokenState, RefreshVerdict, judge_refresh};
use mcp_oauth_core::form::Params;
use mcp_oauth_core::redirect_uri;
use mcp_oauth_core::scope::{Scopes, grant_scope, refresh_scope};
use proptest::prelude::*;
use serde_json::{Value, json};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 1000, ..ProptestConfig::default() }
}

fn encode(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn scope_token() -> impl Strategy<Value = String> {
    "[a-z:]{1,6}"
}

proptest! {
    #![proptest_config(config())]

    /// Distinct keys round-trip; an empty value reads as absent.
    #[test]
    fn forms_round_trip(map in proptest::collection::btree_map("[a-z_]{1,8}", ".{0,12}", 0..8)) {
        let pairs: Vec<(String, String)> = map.clone().into_iter().collect();
        let parsed = Params::parse(encode(&pairs).as_bytes()).unwrap();
        for (k, v) in &map {
            prop_assert_eq!(parsed.get(k), (!v.is_empty()).then_some(v.as_str()));
        }
    }

    /// Any parameter sent twice is an error, wherever the copies stand.
    #[test]
    fn repeated_parameters_are_refused(
        map in proptest::collection::btree_map("[a-z_]{1,8}", ".{0,12}", 1..8),
        pick in any::<prop::sample::Index>(),
        value in ".{0,12}",
        at in any::<prop::sample::Index>(),
    ) {
        let mut pairs: Vec<(String, String)> = map.into_iter().collect();
        let key = pairs[pick.index(pairs.len())].0.clone();
        pairs.insert(at.index(pairs.len() + 1), (key, value));
        prop_assert!(Params::parse(encode(&pairs).as_bytes()).is_err());
    }

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn the_form_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Params::parse(&bytes);
    }

    /// A redirect URI matches itself; a non-loopback URI matches nothing else; a loopback
    /// URI matches itself on any port and nothing with another host or path.
    #[test]
    fn redirect_uris_match_exactly_but_for_loopback_ports(
        host in "[a-z]{1,8}\\.example",
        path in "/[a-z]{0,8}",
        other_path in "/[a-z]{0,8}",
        port in 1u16..,
        other_port in 1u16..,
    ) {
        let https = format!("https://{host}{path}");
        let https_other_port = format!("https://{host}:{other_port}{path}");
        let https_other_path = format!("https://{host}{other_path}");
        let loopback = format!("http://127.0.0.1:{port}{path}");
        let loopback_other_port = format!("http://127.0.0.1:{other_port}{path}");
        let loopback_other_path = format!("http://127.0.0.1:{other_port}{other_path}");
        let named_host = format!("http://{host}:{port}{path}");
        prop_assert!(redirect_uri::matches(&https, &https));
        prop_assert!(!redirect_uri::matches(&https, &https_other_port));
        prop_assert_eq!(redirect_uri::matches(&https, &https_other_path), path == other_path);
        prop_assert!(redirect_uri::matches(&loopback, &loopback_other_port));
        prop_assert_eq!(redirect_uri::matches(&loopback, &loopback_other_path), path == other_path);
        prop_assert!(!redirect_uri::matches(&loopback, &named_host));
    }

    /// What a client is granted is always within what the server offers, and a refresh
    /// never widens a grant.
    #[test]
    fn scopes_stay_within_what_is_offered_and_granted(
        offered in proptest::collection::btree_set(scope_token(), 1..5),
        requested in proptest::collection::vec(scope_token(), 0..6),
        narrowed in proptest::collection::vec(scope_token(), 0..6),
    ) {
        let offered = Scopes::from_list(offered);
        let default = Scopes::from_list(offered.iter().take(1));
        let granted = grant_scope(Some(&requested.join(" ")), &offered, &default).unwrap();
        prop_assert!(granted.is_subset_of(&offered));
        prop_assert!(!granted.is_empty());
        match refresh_scope(Some(&narrowed.join(" ")), &granted) {
            Ok(s) => prop_assert!(s.is_subset_of(&granted)),
            Err(e) => {
                let asked: BTreeSet<&str> = narrowed.iter().map(String::as_str).collect();
                prop_assert!(!asked.iter().all(|s| granted.iter().any(|g| g == *s)), "{e}");
            }
        }
    }

    /// Whatever a metadata document says, the proxy either refuses it or gets a public
    /// client that names the document's URL and has bounded, valid redirect URIs.
    #[test]
    fn metadata_documents_are_refused_or_bounded(
        names_itself in any::<bool>(),
        uris in proptest::collection::vec(prop_oneof![
            Just("https://app.example/cb".to_owned()),
            Just("http://127.0.0.1:9/cb".to_owned()),
            Just("javascript:alert(1)".to_owned()),
            Just("http://evil.example/cb".to_owned()),
            "https://[a-z]{1,5}\\.example/[a-z]{0,5}",
            ".{0,20}",
        ], 0..25),
        method in prop_oneof![Just(None), Just(Some("none")), Just(Some("client_secret_basic")), Just(Some("private_key_jwt"))],
        extra in proptest::collection::btree_map("[a-z_]{1,10}", ".{0,10}", 0..4),
    ) {
        let url = "https://client.example/metadata.json";
        let mut doc = json!({
            "client_id": if names_itself { url } else { "https://other.example/c.json" },
            "redirect_uris": uris,
        });
        if let Some(m) = method {
            doc["token_endpoint_auth_method"] = m.into();
        }
        for (k, v) in extra {
            if doc.get(&k).is_none() {
                doc[k] = Value::String(v);
            }
        }
        if let Ok(m) = metadata_from_document(url, &doc) {
            prop_assert!(names_itself);
            // Public, or signing with keys it publishes: never a secret.
            let keyed = m.jwks.is_some() || m.jwks_uri.is_some();
            prop_assert!(
                m.token_endpoint_auth_method == AuthMethod::None
                    || (m.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt && keyed)
            );
            prop_assert!(!m.redirect_uris.is_empty() && m.redirect_uris.len() <= 20);
            for uri in &m.redirect_uris {
                prop_assert!(redirect_uri::validate_for_registration(uri).is_ok(), "{uri}");
            }
        }
    }
}

/// The token family as a list of events, read the way RFC 9700 §4.14.2 states it: a
/// refresh token works once; within the grace window after its first use it gives the
/// same answer again; used after that, the whole family is ended; nothing in an ended
/// family works; an expired token does not work.
#[derive(Debug, Clone)]
enum Event {
    /// Present refresh token `n` (an index into those issued so far) at time `t`.
    Present { token: usize, advance: i64 },
    /// Present a token as another client.
    PresentAsOther { token: usize },
}

proptest! {
    #![proptest_config(config())]

    /// Only global unicast (2000::/3) can be reachable on the internet; everything else
    /// is refused whatever its low bits.
    #[test]
    fn ipv6_outside_global_unicast_is_forbidden(bits in any::<u128>()) {
        let ip = std::net::Ipv6Addr::from(bits);
        prop_assume!(ip.segments()[0] & 0xe000 != 0x2000);
        prop_assert!(is_forbidden_address(ip.into()), "{ip}");
    }

    /// Every IPv6 form that carries an IPv4 address is refused, whatever that address is.
    #[test]
    fn ipv6_forms_that_embed_ipv4_are_forbidden(v4 in any::<u32>()) {
        let [a, b, c, d] = v4.to_be_bytes();
        let low = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
        for prefix in [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0xffff], [0, 0, 0, 0, 0xffff, 0], [0x64, 0xff9b, 0, 0, 0, 0]] {
            let s = [prefix[0], prefix[1], prefix[2], prefix[3], prefix[4], prefix[5], low[0], low[1]];
            let ip = std::net::Ipv6Addr::from(s);
            prop_assert!(is_forbidden_address(ip.into()), "{ip}");
        }
        let six_to_four = std::net::Ipv6Addr::from([0x2002, low[0], low[1], 0, 0, 0, 0, 1]);
        prop_assert!(is_forbidden_address(six_to_four.into()), "{six_to_four}");
    }
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec(
        prop_oneof![
            4 => (0usize..6, 0i64..50).prop_map(|(token, advance)| Event::Present { token, advance }),
            1 => (0usize..6).prop_map(|token| Event::PresentAsOther { token }),
        ],
        1..30,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_family_follows_its_model(events in events()) {
        const GRACE: i64 = 30;
        const TTL: i64 = 200;
        // What the store keeps: per token, when it was issued and when first used.
        let mut issued: Vec<(i64, Option<i64>)> = vec![(0, None)];
        let mut status = FamilyStatus::Active;
        let mut now = 0;
        // The model: the answers a client gets, computed from the rules above alone.
        let mut first_use: BTreeMap<usize, i64> = BTreeMap::new();
        let mut ended = false;
        for event in events {
            match event {
                Event::PresentAsOther { token } => {
                    let Some(&(issued_at, superseded_at)) = issued.get(token) else { continue };
                    let state = RefreshTokenState { client_id: "c".into(), family_status: status, expires_at: issued_at + TTL, superseded_at };
                    prop_assert_eq!(judge_refresh(&state, "other", now, GRACE), RefreshVerdict::WrongClient);
                }
                Event::Present { token, advance } => {
                    now += advance;
                    let Some(&(issued_at, superseded_at)) = issued.get(token) else { continue };
                    let state = RefreshTokenState { client_id: "c".into(), family_status: status, expires_at: issued_at + TTL, superseded_at };
                    let verdict = judge_refresh(&state, "c", now, GRACE);
                    let expected = if ended {
                        RefreshVerdict::FamilyEnded
                    } else if now >= issued_at + TTL {
                        RefreshVerdict::Expired
                    } else {
                        match first_use.get(&token) {
                            None => RefreshVerdict::Rotate,
                            Some(&t) if now - t <= GRACE => RefreshVerdict::RotateWithinGrace,
                            Some(_) => RefreshVerdict::Reuse,
                        }
                    };
                    prop_assert_eq!(verdict, expected);
                    match verdict {
                        RefreshVerdict::Rotate => {
                            first_use.insert(token, now);
                            issued[token].1 = Some(now);
                            issued.push((now, None));
                        }
                        RefreshVerdict::Reuse => {
                            ended = true;
                            status = FamilyStatus::Revoked;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

mod jwt_grants {
    //! Any one claim of a good ID-JAG, or of a good client assertion, changed to another
    //! value (or removed) is refused: no check can be skipped by what a claim says.

    use mcp_oauth_core::jwt_grant::test_signer::TestSigner;
    use mcp_oauth_core::jwt_grant::{ClientExpected, Expected, ID_JAG_TYPE, verify_client_assertion, verify_id_jag};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000;
    const AS: &str = "https://p.example/oauth/tools";

    fn keys(s: &TestSigner) -> jsonwebtoken::jwk::JwkSet {
        jsonwebtoken::jwk::JwkSet { keys: vec![s.jwk.clone()] }
    }

    /// A value that is not `original`: another string, a number, an array, or nothing.
    fn other_value() -> impl Strategy<Value = Option<Value>> {
        prop_oneof![
            Just(None),
            "[a-z:/.]{0,30}".prop_map(|s| Some(Value::String(s))),
            (-10_000i64..10_000).prop_map(|n| Some(json!(NOW + n * 1000))),
            Just(Some(json!([]))),
            Just(Some(Value::Null)),
        ]
    }

    proptest! {
        // Each case signs and verifies a JWT: fewer cases than the cheap properties above.
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_changed_id_jag_claim_is_refused(claim in 0usize..8, value in other_value()) {
            let names = ["iss", "aud", "resource", "client_id", "exp", "iat", "jti", "sub"];
            let mut claims = json!({
                "iss": "https://acme.okta.com", "sub": "00u1", "aud": AS, "resource": "https://p.example/mcp/tools",
                "client_id": "claude", "jti": "j-1", "iat": NOW - 10, "exp": NOW + 290,
            });
            let name = names[claim];
            let original = claims[name].clone();
            // Values that still mean the same are not changes.
            prop_assume!(value.as_ref() != Some(&original));
            prop_assume!(!(name == "resource" && value.is_none()), "resource is optional");
            if name == "iat" || name == "exp" {
                // Any time within the window and the lifetime is as good as the original.
                if let Some(t) = value.as_ref().and_then(Value::as_i64) {
                    let (iat, exp) = if name == "iat" { (t, NOW + 290) } else { (NOW - 10, t) };
                    prop_assume!(!(exp + 60 > NOW && iat <= NOW + 60 && exp - iat <= 600));
                }
            }
            if name == "jti" || name == "sub" {
                // Any other non-empty string is another (valid) id.
                prop_assume!(!value.as_ref().and_then(Value::as_str).is_some_and(|s| !s.is_empty() && s.len() <= 256));
            }
            match value {
                Some(v) => claims[name] = v,
                None => drop(claims.as_object_mut().unwrap().remove(name)),
            }
            let signer = TestSigner::new([9; 32], "k1");
            let expected = Expected {
                issuer: "https://acme.okta.com", audience: AS, resource: "https://p.example/mcp/tools",
                client_id: "claude", now: NOW, leeway_secs: 60, max_lifetime_secs: 600,
                email_claim: "email", groups_claim: "groups",
            };
            let jwt = signer.sign(ID_JAG_TYPE, &claims);
            prop_assert!(verify_id_jag(&jwt, &keys(&signer), &expected).is_err(), "{name} = {claims}");
        }

        #[test]
        fn any_changed_client_assertion_claim_is_refused(claim in 0usize..4, value in other_value()) {
            let names = ["iss", "sub", "aud", "exp"];
            let token_endpoint = format!("{AS}/token");
            let mut claims = json!({"iss": "ci-bot", "sub": "ci-bot", "aud": token_endpoint, "jti": "c-1", "exp": NOW + 60});
            let name = names[claim];
            prop_assume!(value.as_ref() != Some(&claims[name]));
            if name == "aud" {
                prop_assume!(value != Some(json!(AS)), "the issuer is an accepted audience too");
            }
            if name == "exp" {
                prop_assume!(!value.as_ref().and_then(Value::as_i64).is_some_and(|t| t + 60 > NOW && t - NOW <= 300));
            }
            match value {
                Some(v) => claims[name] = v,
                None => drop(claims.as_object_mut().unwrap().remove(name)),
            }
            let signer = TestSigner::new([9; 32], "k1");
            let audiences = [token_endpoint.as_str(), AS];
            let expected =
                ClientExpected { client_id: "ci-bot", audiences: &audiences, now: NOW, leeway_secs: 60, max_lifetime_secs: 300 };
            let jwt = signer.sign("JWT", &claims);
            prop_assert!(verify_client_assertion(&jwt, &keys(&signer), &expected).is_err(), "{name} = {claims}");
        }
    }
}
