//! JWTs presented at the token endpoint by someone else's signature: the enterprise IdP's
//! Identity Assertion JWT Authorization Grant (ID-JAG, `draft-ietf-oauth-identity-assertion-
//! authz-grant`, profiled for MCP by SEP-990), redeemed with the RFC 7523 `jwt-bearer`
//! grant. Every check the profile asks for is here, on the proxy's clock, with no I/O: the
//! caller finds the IdP's key set (and fetches it again, rate-limited, on
//! [`JwtGrantError::UnknownKey`]) and remembers the `jti` in the store until `exp`.
//!
//! `jsonwebtoken` does the JOSE work (parsing, signature); what is ours is the policy around
//! it: the algorithm allow-list (asymmetric only: never `none`, never HMAC, whose "key" in a
//! published set anyone could use), which keys may verify, and every claim.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use crate::jose::{self, KeyError};
use crate::scope::Scopes;
use crate::sealed::UserIdentity;

/// A JWK set, as clients register and IdPs publish them.
pub use jsonwebtoken::jwk::JwkSet as KeySet;

/// The JOSE `typ` of an ID-JAG.
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";
/// The grant type an ID-JAG is presented with (RFC 7523 §2.1).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// What the authorization server metadata lists in `authorization_grant_profiles_supported`.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// The algorithms an assertion may be signed with: asymmetric only.
pub const ACCEPTED: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The longest `jti` kept (its hash is what is stored; this only bounds the input).
const MAX_JTI_LEN: usize = 256;

/// Why an assertion was refused: for the log only (the client is told `invalid_grant`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtGrantError {
    #[error("not a signed JWT")]
    Malformed,
    #[error("JOSE typ is not {ID_JAG_TYPE}")]
    Type,
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    /// No key of the set can have signed it: fetch the set again (rate-limited).
    #[error("no key of the issuer's key set matches (kid)")]
    UnknownKey,
    #[error("signature does not verify")]
    Signature,
    #[error("iss is not a configured issuer")]
    Issuer,
    #[error("aud does not name this authorization server")]
    Audience,
    #[error("resource is not this server's MCP URL")]
    Resource,
    #[error("client_id is not the authenticated client")]
    ClientId,
    #[error("expired")]
    Expired,
    #[error("iat is in the future")]
    IssuedInFuture,
    #[error("lifetime (exp - iat) is longer than allowed")]
    TooLong,
    #[error("claim {0} is missing or malformed")]
    Claim(&'static str),
}

/// What an ID-JAG must say to be accepted.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The IdP's issuer identifier, exactly.
    pub issuer: &'a str,
    /// This authorization server's issuer identifier (the server's `P/oauth/<slug>`).
    pub audience: &'a str,
    /// The server's MCP URL; an ID-JAG naming a `resource` must name this one.
    pub resource: &'a str,
    /// The client that authenticated at the token endpoint.
    pub client_id: &'a str,
    pub now: i64,
    /// Clock skew tolerated on `exp` and `iat`.
    pub leeway_secs: i64,
    /// The longest `exp - iat` accepted: an ID-JAG is short-lived by the profile.
    pub max_lifetime_secs: i64,
    /// The claims that carry the user's email and groups.
    pub email_claim: &'a str,
    pub groups_claim: &'a str,
}

/// An accepted ID-JAG: who it speaks for and what it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdJag {
    pub subject: String,
    pub jti: String,
    pub expires_at: i64,
    /// The scopes the IdP granted; `None` when it said nothing about scopes.
    pub scope: Option<Scopes>,
    pub identity: UserIdentity,
}

/// The `iss` an assertion claims, read before anything is verified, to find which
/// configured issuer's keys to verify it with. Nothing else may be trusted from it.
pub fn claimed_issuer(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Checks an ID-JAG against the IdP's `keys` and `expected`: its type, algorithm and
/// signature, then every claim.
pub fn verify_id_jag(jwt: &str, keys: &JwkSet, expected: &Expected<'_>) -> Result<IdJag, JwtGrantError> {
    let claims = verify_signature(jwt, keys, Some(ID_JAG_TYPE))?;
    let text = |name: &'static str| match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        _ => Err(JwtGrantError::Claim(name)),
    };
    if text("iss").map_err(|_| JwtGrantError::Issuer)? != expected.issuer {
        return Err(JwtGrantError::Issuer);
    }
    if !audience_names(claims.get("aud"), expected.audience) {
        return Err(JwtGrantError::Audience);
    }
    if let Some(resource) = claims.get("resource") {
        let named = match resource {
            Value::String(one) => same_resource(one, expected.resource),
            Value::Array(many) => many.iter().any(|r| r.as_str().is_some_and(|r| same_resource(r, expected.resource))),
            _ => false,
        };
        if !named {
            return Err(JwtGrantError::Resource);
        }
    }
    if text("client_id").map_err(|_| JwtGrantError::ClientId)? != expected.client_id {
        return Err(JwtGrantError::ClientId);
    }
    let expires_at = check_times(&claims, expected.now, expected.leeway_secs, expected.max_lifetime_secs)?;
    let jti = text("jti")?;
    if jti.len() > MAX_JTI_LEN {
        return Err(JwtGrantError::Claim("jti"));
    }
    let subject = text("sub")?.to_owned();
    let scope = match claims.get("scope") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Scopes::parse(s).map_err(|_| JwtGrantError::Claim("scope"))?),
        Some(_) => return Err(JwtGrantError::Claim("scope")),
    };
    Ok(IdJag {
        subject,
        jti: jti.to_owned(),
        expires_at,
        scope,
        identity: identity(&claims, expected.email_claim, expected.groups_claim),
    })
}

/// `client_assertion_type` of a signed client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a client assertion (`private_key_jwt`) must say to be accepted.
#[derive(Debug, Clone)]
pub struct ClientExpected<'a> {
    pub client_id: &'a str,
    /// The audiences that name this authorization server: its token endpoint (RFC 7523
    /// §3) and its issuer identifier (as newer clients send).
    pub audiences: &'a [&'a str],
    pub now: i64,
    pub leeway_secs: i64,
    /// The longest an assertion may live from now (and from its `iat`).
    pub max_lifetime_secs: i64,
}

/// An accepted client assertion: its id (to be spent once) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAssertion {
    pub jti: String,
    pub expires_at: i64,
}

/// Checks a client assertion against the client's `keys`: an asymmetric signature, `iss`
/// and `sub` both the client id, `aud` this server, `exp` near, `jti` present. An ID-JAG
/// is no client assertion, whoever signed it.
pub fn verify_client_assertion(
    jwt: &str,
    keys: &JwkSet,
    expected: &ClientExpected<'_>,
) -> Result<ClientAssertion, JwtGrantError> {
    if jsonwebtoken::decode_header(jwt).is_ok_and(|h| h.typ.as_deref().is_some_and(|t| t.ends_with(ID_JAG_TYPE))) {
        return Err(JwtGrantError::Type);
    }
    let claims = verify_signature(jwt, keys, None)?;
    let text = |name: &'static str| claims.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    if text("iss") != Some(expected.client_id) {
        return Err(JwtGrantError::Issuer);
    }
    if text("sub") != Some(expected.client_id) {
        return Err(JwtGrantError::ClientId);
    }
    if !expected.audiences.iter().any(|aud| audience_names(claims.get("aud"), aud)) {
        return Err(JwtGrantError::Audience);
    }
    let mut with_iat = claims.clone();
    // `iat` is optional here (RFC 7523 §3): without one, the lifetime counts from now.
    with_iat.entry("iat").or_insert(Value::from(expected.now));
    let expires_at = check_times(&with_iat, expected.now, expected.leeway_secs, expected.max_lifetime_secs)?;
    if expires_at.saturating_sub(expected.now) > expected.max_lifetime_secs {
        return Err(JwtGrantError::TooLong);
    }
    let jti = text("jti").filter(|j| j.len() <= MAX_JTI_LEN).ok_or(JwtGrantError::Claim("jti"))?;
    Ok(ClientAssertion { jti: jti.to_owned(), expires_at })
}

/// Who the user is, as the IdP says. The enterprise IdP is the authority on its users'
/// addresses, so an email counts as verified unless the IdP says it is not.
fn identity(claims: &Map<String, Value>, email_claim: &str, groups_claim: &str) -> UserIdentity {
    let email = claims.get(email_claim).and_then(Value::as_str).filter(|e| e.contains('@')).map(str::to_owned);
    let unverified = matches!(claims.get("email_verified"), Some(Value::Bool(false)))
        || claims.get("email_verified").and_then(Value::as_str) == Some("false");
    let groups = match claims.get(groups_claim) {
        Some(Value::Array(items)) => items.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => vec![],
    };
    let name = claims.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned);
    UserIdentity { email_verified: email.is_some() && !unverified, email, name, groups }
}

/// A trailing slash names the same resource (as at the authorization endpoint).
fn same_resource(given: &str, ours: &str) -> bool {
    given.trim_end_matches('/') == ours.trim_end_matches('/')
}

/// `aud` is one string or an array of strings; it must name `ours`.
pub fn audience_names(aud: Option<&Value>, ours: &str) -> bool {
    match aud {
        Some(Value::String(one)) => one == ours,
        Some(Value::Array(many)) => many.iter().any(|a| a.as_str() == Some(ours)),
        _ => false,
    }
}

/// `exp` not passed, `iat` not in the future (each with `leeway`), and `exp - iat` at
/// most `max_lifetime`; returns `exp`.
pub fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    leeway: i64,
    max_lifetime: i64,
) -> Result<i64, JwtGrantError> {
    let time = |name: &'static str| {
        let v = claims.get(name).ok_or(JwtGrantError::Claim(name))?;
        v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)).ok_or(JwtGrantError::Claim(name))
    };
    let (exp, iat) = (time("exp")?, time("iat")?);
    if exp.saturating_add(leeway) <= now {
        return Err(JwtGrantError::Expired);
    }
    if iat > now.saturating_add(leeway) {
        return Err(JwtGrantError::IssuedInFuture);
    }
    if exp.saturating_sub(iat) > max_lifetime {
        return Err(JwtGrantError::TooLong);
    }
    Ok(exp)
}

/// Checks the JOSE header (`typ` when one is required, the algorithm) and the signature
/// against the keys that may have made it; returns the claims, none of them yet checked.
/// A token that names its key (`kid`) is checked with that key only.
pub fn verify_signature(
    jwt: &str,
    keys: &JwkSet,
    required_typ: Option<&str>,
) -> Result<Map<String, Value>, JwtGrantError> {
    // `alg: none` and unknown algorithms fail here: the library has no such algorithm.
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| match raw_alg(jwt) {
        Some(alg) => JwtGrantError::Algorithm(alg),
        None => JwtGrantError::Malformed,
    })?;
    if let Some(required) = required_typ {
        // RFC 7515 §4.1.9: the `application/` prefix may be left out; compared without case.
        let typ = header.typ.as_deref().unwrap_or_default();
        let typ = typ.strip_prefix("application/").unwrap_or(typ);
        if !typ.eq_ignore_ascii_case(required) {
            return Err(JwtGrantError::Type);
        }
    }
    let alg = header.alg;
    if !ACCEPTED.contains(&alg) {
        return Err(JwtGrantError::Algorithm(format!("{alg:?}")));
    }
    // Signature only: every claim is checked by the caller, on the proxy's clock.
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    match jose::verify::<Map<String, Value>>(jwt, &header, keys, &validation) {
        Ok(data) => Ok(data.claims),
        Err(KeyError::NoKey) => Err(JwtGrantError::UnknownKey),
        Err(KeyError::BadSignature) => Err(JwtGrantError::Signature),
        Err(KeyError::Token(_)) => Err(JwtGrantError::Malformed),
    }
}

/// The `alg` a header the library could not read names (`none`, an unknown one), for the log.
fn raw_alg(jwt: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(jwt.split('.').next()?.trim_end_matches('=')).ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header.get("alg")?.as_str().map(|a| a.chars().take(16).collect())
}

/// An Ed25519 key that signs JWTs, for tests of verifiers (here, the HTTP layer's and the
/// development IdP's): the private half from a 32-byte seed, the public half as a JWK.
pub mod test_signer {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
    use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::Value;

    pub struct TestSigner {
        pub kid: String,
        encoding: EncodingKey,
        pub jwk: Jwk,
    }

    impl TestSigner {
        pub fn new(seed: [u8; 32], kid: &str) -> Self {
            crate::jose::install_crypto_provider();
            let der = KeypairBytes { secret_key: seed, public_key: None }.to_pkcs8_der().expect("an Ed25519 key");
            let encoding = EncodingKey::from_ed_der(der.as_bytes());
            let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA).expect("a public half");
            jwk.common.key_id = Some(kid.to_owned());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            Self { kid: kid.to_owned(), encoding, jwk }
        }

        /// `claims` signed (EdDSA) with this key, with `typ` and this key's `kid`.
        pub fn sign(&self, typ: &str, claims: &Value) -> String {
            let mut header = Header::new(Algorithm::EdDSA);
            header.typ = Some(typ.to_owned());
            header.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing a JSON object")
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::test_signer::TestSigner;
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const IDP: &str = "https://acme.okta.com";
    const AS: &str = "https://p.example/oauth/tools";
    const MCP: &str = "https://p.example/mcp/tools";

    fn expected() -> Expected<'static> {
        Expected {
            issuer: IDP,
            audience: AS,
            resource: MCP,
            client_id: "claude",
            now: NOW,
            leeway_secs: 60,
            max_lifetime_secs: 600,
            email_claim: "email",
            groups_claim: "groups",
        }
    }

    fn claims() -> Value {
        json!({
            "iss": IDP, "sub": "00u1", "aud": AS, "resource": MCP, "client_id": "claude",
            "jti": "j-1", "iat": NOW - 10, "exp": NOW + 290, "scope": "tools:read tools:write",
            "email": "ada@acme.com", "groups": ["eng"], "name": "Ada",
        })
    }

    fn signer() -> TestSigner {
        TestSigner::new([9; 32], "k1")
    }

    fn keys(s: &TestSigner) -> JwkSet {
        JwkSet { keys: vec![s.jwk.clone()] }
    }

    fn with(f: impl FnOnce(&mut Map<String, Value>)) -> Value {
        let mut c = claims();
        f(c.as_object_mut().unwrap());
        c
    }

    fn check(jwt: &str) -> Result<IdJag, JwtGrantError> {
        verify_id_jag(jwt, &keys(&signer()), &expected())
    }

    #[test]
    fn a_good_id_jag_is_accepted_with_who_and_what() {
        let jag = check(&signer().sign(ID_JAG_TYPE, &claims())).unwrap();
        assert_eq!((jag.subject.as_str(), jag.jti.as_str(), jag.expires_at), ("00u1", "j-1", NOW + 290));
        assert_eq!(jag.scope.unwrap().to_string(), "tools:read tools:write");
        assert_eq!(jag.identity.verified_email(), Some("ada@acme.com"));
        assert_eq!((jag.identity.groups, jag.identity.name.as_deref()), (vec!["eng".to_owned()], Some("Ada")));
        // The media-type form of typ, an audience array, a resource with a slash, no scope.
        let c = with(|c| {
            c.insert("aud".into(), json!(["x", AS]));
            c.insert("resource".into(), json!(format!("{MCP}/")));
            c.remove("scope");
        });
        let jag = check(&signer().sign("application/oauth-id-jag+jwt", &c)).unwrap();
        assert_eq!(jag.scope, None);
        assert_eq!(claimed_issuer(&signer().sign(ID_JAG_TYPE, &c)).as_deref(), Some(IDP));
    }

    #[test]
    fn each_claim_wrong_in_turn_is_refused() {
        use JwtGrantError::*;
        let cases: Vec<(&str, Value, JwtGrantError)> = vec![
            ("iss", with(|c| drop(c.insert("iss".into(), json!("https://evil.okta.com")))), Issuer),
            ("no iss", with(|c| drop(c.remove("iss"))), Issuer),
            ("aud", with(|c| drop(c.insert("aud".into(), json!("https://p.example/oauth/other")))), Audience),
            ("no aud", with(|c| drop(c.remove("aud"))), Audience),
            ("resource", with(|c| drop(c.insert("resource".into(), json!("https://p.example/mcp/other")))), Resource),
            ("client_id", with(|c| drop(c.insert("client_id".into(), json!("cursor")))), ClientId),
            ("no client_id", with(|c| drop(c.remove("client_id"))), ClientId),
            ("expired", with(|c| drop(c.insert("exp".into(), json!(NOW - 61)))), Expired),
            ("iat ahead", with(|c| drop(c.insert("iat".into(), json!(NOW + 61)))), IssuedInFuture),
            ("too long", with(|c| drop(c.insert("exp".into(), json!(NOW + 600)))), TooLong),
            ("no iat", with(|c| drop(c.remove("iat"))), Claim("iat")),
            ("no exp", with(|c| drop(c.remove("exp"))), Claim("exp")),
            ("no jti", with(|c| drop(c.remove("jti"))), Claim("jti")),
            ("long jti", with(|c| drop(c.insert("jti".into(), json!("j".repeat(257))))), Claim("jti")),
            ("no sub", with(|c| drop(c.remove("sub"))), Claim("sub")),
            ("bad scope", with(|c| drop(c.insert("scope".into(), json!(["a"])))), Claim("scope")),
        ];
        for (what, c, refusal) in cases {
            assert_eq!(check(&signer().sign(ID_JAG_TYPE, &c)), Err(refusal), "{what}");
        }
        // Within the skew, still fine.
        let skewed = with(|c| {
            c.insert("exp".into(), json!(NOW - 59));
            c.insert("iat".into(), json!(NOW - 100));
        });
        assert!(check(&signer().sign(ID_JAG_TYPE, &skewed)).is_ok());
    }

    #[test]
    fn the_header_and_signature_are_checked_before_any_claim() {
        let s = signer();
        assert_eq!(check(&s.sign("JWT", &claims())), Err(JwtGrantError::Type), "an id_token is no ID-JAG");
        assert_eq!(check(&s.sign("at+jwt", &claims())), Err(JwtGrantError::Type));
        // Another key, with the same kid: the signature fails; another kid: unknown key.
        let other = TestSigner::new([7; 32], "k1");
        assert_eq!(check(&other.sign(ID_JAG_TYPE, &claims())), Err(JwtGrantError::Signature));
        let rotated = TestSigner::new([7; 32], "k2");
        assert_eq!(check(&rotated.sign(ID_JAG_TYPE, &claims())), Err(JwtGrantError::UnknownKey));
        // HMAC, even with the public key's bytes as the secret.
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ID_JAG_TYPE.into());
        header.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"k1").unwrap()).unwrap();
        assert_eq!(check(&hs), Err(JwtGrantError::Algorithm("HS256".into())));
        // alg none, unsigned.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"oauth-id-jag+jwt","kid":"k1"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert_eq!(check(&format!("{none_header}.{body}.")), Err(JwtGrantError::Algorithm("none".into())));
        // A tampered payload.
        let good = s.sign(ID_JAG_TYPE, &claims());
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(with(|c| drop(c.insert("sub".into(), json!("admin")))).to_string());
        parts[1] = &forged;
        assert_eq!(check(&parts.join(".")), Err(JwtGrantError::Signature));
        assert_eq!(check("not.a.jwt"), Err(JwtGrantError::Malformed));
    }

    fn client_claims() -> Value {
        json!({"iss": "ci-bot", "sub": "ci-bot", "aud": format!("{AS}/token"), "jti": "c-1", "exp": NOW + 60, "iat": NOW})
    }

    fn check_client(jwt: &str) -> Result<ClientAssertion, JwtGrantError> {
        let audiences = [format!("{AS}/token"), AS.to_owned()];
        let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
        let expected = ClientExpected {
            client_id: "ci-bot",
            audiences: &audiences,
            now: NOW,
            leeway_secs: 60,
            max_lifetime_secs: 300,
        };
        verify_client_assertion(jwt, &keys(&signer()), &expected)
    }

    #[test]
    fn client_assertions_name_the_client_twice_and_this_server() {
        use JwtGrantError::*;
        let good = check_client(&signer().sign("JWT", &client_claims())).unwrap();
        assert_eq!(good, ClientAssertion { jti: "c-1".into(), expires_at: NOW + 60 });
        let mut issuer_aud = client_claims();
        issuer_aud["aud"] = json!([AS]);
        issuer_aud.as_object_mut().unwrap().remove("iat");
        assert!(check_client(&signer().sign("JWT", &issuer_aud)).is_ok(), "the issuer as aud, no iat");
        let wrong = |k: &str, v: Value| {
            let mut c = client_claims();
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v;
            }
            check_client(&signer().sign("JWT", &c))
        };
        assert_eq!(wrong("iss", json!("other")), Err(Issuer));
        assert_eq!(wrong("sub", json!("other")), Err(ClientId));
        assert_eq!(wrong("aud", json!("https://p.example/oauth/other/token")), Err(Audience));
        assert_eq!(wrong("exp", json!(NOW - 61)), Err(Expired));
        assert_eq!(wrong("exp", json!(NOW + 3600)), Err(TooLong));
        assert_eq!(wrong("exp", Value::Null), Err(Claim("exp")));
        assert_eq!(wrong("iat", json!(NOW + 120)), Err(IssuedInFuture));
        assert_eq!(wrong("jti", Value::Null), Err(Claim("jti")));
        // Not an ID-JAG, not another key, not HMAC.
        assert_eq!(check_client(&signer().sign(ID_JAG_TYPE, &client_claims())), Err(Type));
        assert_eq!(check_client(&TestSigner::new([3; 32], "k1").sign("JWT", &client_claims())), Err(Signature));
        let hs = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &client_claims(),
            &EncodingKey::from_secret(b"s").unwrap(),
        )
        .unwrap();
        assert_eq!(check_client(&hs), Err(Algorithm("HS256".into())));
    }

    #[test]
    fn an_email_the_idp_says_it_did_not_verify_is_kept_unverified() {
        let c = with(|c| drop(c.insert("email_verified".into(), json!(false))));
        let jag = check(&signer().sign(ID_JAG_TYPE, &c)).unwrap();
        assert_eq!(jag.identity.verified_email(), None);
        let mut e = expected();
        e.email_claim = "upn";
        e.groups_claim = "roles";
        let c = with(|c| {
            c.insert("upn".into(), json!("ada@corp.example"));
            c.insert("roles".into(), json!("admins"));
        });
        let jag = verify_id_jag(&signer().sign(ID_JAG_TYPE, &c), &keys(&signer()), &e).unwrap();
        assert_eq!(jag.identity.verified_email(), Some("ada@corp.example"));
        assert_eq!(jag.identity.groups, ["admins"]);
    }
}
