//! Checking an OpenID Connect id_token (OpenID Connect Core §3.1.3.7): its signature against
//! the provider's published keys, then issuer, audience, expiry, the nonce we sent and the
//! subject. `jsonwebtoken` does the JOSE work (parsing, signature, iss and aud); what is ours
//! is the policy around it: which algorithms and keys may sign, and the checks on our clock.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Validation};
use mcp_oauth_core::jose::{self, KeyError};
use serde::Deserialize;
use serde_json::Value;

/// The algorithms an id_token may be signed with: asymmetric only, so that only the provider
/// can sign. HS* would let anyone holding a shared secret (or a symmetric key slipped into
/// the key set) sign tokens; `none` cannot even be parsed as an algorithm by the library.
const ACCEPTED: [Algorithm; 6] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA];

/// Clock skew between us and the provider tolerated on `exp`.
const LEEWAY_SECS: i64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum IdTokenError {
    #[error("id_token is not a signed JWT")]
    Malformed,
    #[error("id_token algorithm {0} is not accepted")]
    Algorithm(String),
    /// No published key could have signed the token: after a key rotation, the keys are
    /// fetched again.
    #[error("no published key matches the id_token")]
    NoKey,
    #[error("id_token signature does not verify")]
    BadSignature,
    #[error("id_token issuer is not the configured issuer")]
    WrongIssuer,
    #[error("id_token audience does not include our client id")]
    WrongAudience,
    #[error("id_token has expired")]
    Expired,
    #[error("id_token nonce does not match the one sent")]
    WrongNonce,
    #[error("id_token has no subject")]
    NoSubject,
    #[error("id_token claim {0} is missing or malformed")]
    Claim(String),
}

pub(crate) struct Expectations<'a> {
    /// When configured, the token must name it exactly.
    pub issuer: Option<&'a str>,
    pub client_id: &'a str,
    /// The nonce we sent in the authorization request, if we sent one.
    pub nonce: Option<&'a str>,
    pub now: i64,
}

/// The claims the library does not check for us. Loosely typed, so that a wrong type is our
/// refusal with its name rather than a parse error.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Value,
    #[serde(default)]
    nonce: Value,
    #[serde(default)]
    exp: Value,
    /// Every claim, for what the caller reads about the user (email, groups).
    #[serde(flatten)]
    all: serde_json::Map<String, Value>,
}

/// Returns the subject (`sub`) and the claims of an id_token once its signature and every
/// claim check out.
pub(crate) fn verify(
    id_token: &str,
    keys: &JwkSet,
    expect: &Expectations<'_>,
) -> Result<(String, Value), IdTokenError> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| IdTokenError::Malformed)?;
    let alg = header.alg;
    if !ACCEPTED.contains(&alg) {
        return Err(IdTokenError::Algorithm(format!("{alg:?}")));
    }
    match jose::verify::<Claims>(id_token, &header, keys, &validation(alg, expect)) {
        Ok(data) => {
            let subject = check_claims(&data.claims, expect)?;
            Ok((subject, Value::Object(data.claims.all)))
        }
        Err(KeyError::NoKey) => Err(IdTokenError::NoKey),
        Err(KeyError::BadSignature) => Err(IdTokenError::BadSignature),
        Err(KeyError::Token(e)) => Err(refusal(e.kind())),
    }
}

/// What the library checks: the algorithm (this one only: a `Validation` holds algorithms
/// of one family), the audience, the issuer when configured, and that `exp`, `aud`, `sub`
/// (and `iss`) are present with the right types. `exp` itself is compared in
/// [`check_claims`], on the proxy's clock like every other expiry.
fn validation(alg: Algorithm, expect: &Expectations<'_>) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.set_audience(&[expect.client_id]);
    let mut required = vec!["exp", "aud", "sub"];
    if let Some(issuer) = expect.issuer {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);
    v
}

fn refusal(kind: &ErrorKind) -> IdTokenError {
    match kind {
        ErrorKind::InvalidIssuer => IdTokenError::WrongIssuer,
        ErrorKind::InvalidAudience => IdTokenError::WrongAudience,
        ErrorKind::ExpiredSignature => IdTokenError::Expired,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
            "iss" => IdTokenError::WrongIssuer,
            "aud" => IdTokenError::WrongAudience,
            "sub" => IdTokenError::NoSubject,
            other => IdTokenError::Claim(other.to_owned()),
        },
        _ => IdTokenError::Malformed,
    }
}

fn check_claims(claims: &Claims, expect: &Expectations<'_>) -> Result<String, IdTokenError> {
    // The library made sure `exp` is a non-negative number; NumericDate may have a fraction.
    let exp = claims.exp.as_i64().or_else(|| claims.exp.as_f64().map(|f| f as i64));
    match exp {
        Some(exp) if exp.saturating_add(LEEWAY_SECS) > expect.now => {}
        Some(_) => return Err(IdTokenError::Expired),
        None => return Err(IdTokenError::Claim("exp".into())),
    }
    if let Some(nonce) = expect.nonce
        && claims.nonce.as_str() != Some(nonce)
    {
        return Err(IdTokenError::WrongNonce);
    }
    match claims.sub.as_str() {
        Some(sub) if !sub.is_empty() => Ok(sub.to_owned()),
        _ => Err(IdTokenError::NoSubject),
    }
}

#[cfg(test)]
mod tests {
    //! Tokens are signed here with ring, independently of the library under test, as the
    //! development identity provider signs them.

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_000_000;

    fn subject_of(token: &str, keys: &JwkSet, expect: &Expectations<'_>) -> Result<String, IdTokenError> {
        verify(token, keys, expect).map(|(subject, _)| subject)
    }

    fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    enum Signer {
        Es256(EcdsaKeyPair),
        Ed25519(Ed25519KeyPair),
    }

    impl Signer {
        fn es256() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            Self::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap())
        }

        fn ed25519() -> Self {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        }

        /// The public key as the provider would publish it.
        fn jwk(&self, kid: &str) -> Value {
            match self {
                Self::Es256(pair) => {
                    let point = pair.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                           "x": b64(&point[1..33]), "y": b64(&point[33..65])})
                }
                Self::Ed25519(pair) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid, "x": b64(pair.public_key())})
                }
            }
        }

        fn sign(&self, header: Value, claims: &Value) -> String {
            let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
            let sig = match self {
                Self::Es256(pair) => pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap().as_ref().to_vec(),
                Self::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            };
            format!("{input}.{}", b64(sig))
        }

        fn sign_es256(&self, kid: Option<&str>, claims: &Value) -> String {
            let mut header = json!({"alg": "ES256", "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            self.sign(header, claims)
        }
    }

    fn set(keys: &[Value]) -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    }

    fn claims() -> Value {
        json!({"iss": "https://idp", "aud": "proxy", "exp": NOW + 600, "iat": NOW, "nonce": "n", "sub": "u1"})
    }

    fn expect(nonce: Option<&str>) -> Expectations<'_> {
        Expectations { issuer: Some("https://idp"), client_id: "proxy", nonce, now: NOW }
    }

    #[test]
    fn a_valid_es256_token_yields_its_subject() {
        let key = Signer::es256();
        let token = key.sign_es256(Some("k1"), &claims());
        assert_eq!(subject_of(&token, &set(&[key.jwk("k1")]), &expect(Some("n"))), Ok("u1".into()));
    }

    #[test]
    fn a_valid_eddsa_token_yields_its_subject() {
        let key = Signer::ed25519();
        let token = key.sign(json!({"alg": "EdDSA", "kid": "ed"}), &claims());
        assert_eq!(subject_of(&token, &set(&[key.jwk("ed")]), &expect(Some("n"))), Ok("u1".into()));
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let key = Signer::es256();
        let token = key.sign_es256(Some("k1"), &claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged["sub"] = "admin".into();
        parts[1] = b64(forged.to_string());
        assert_eq!(
            subject_of(&parts.join("."), &set(&[key.jwk("k1")]), &expect(None)),
            Err(IdTokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_is_refused() {
        let published = Signer::es256();
        let forger = Signer::es256();
        let keys = set(&[published.jwk("k1")]);
        let token = forger.sign_es256(Some("k1"), &claims());
        assert_eq!(subject_of(&token, &keys, &expect(None)), Err(IdTokenError::BadSignature));
        let unnamed = forger.sign_es256(None, &claims());
        assert_eq!(subject_of(&unnamed, &keys, &expect(None)), Err(IdTokenError::BadSignature));
    }

    #[test]
    fn an_unknown_kid_is_no_key_which_makes_the_caller_refetch() {
        let key = Signer::es256();
        let token = key.sign_es256(Some("rotated"), &claims());
        assert_eq!(subject_of(&token, &set(&[key.jwk("k1")]), &expect(None)), Err(IdTokenError::NoKey));
        assert_eq!(subject_of(&token, &set(&[]), &expect(None)), Err(IdTokenError::NoKey));
    }

    #[test]
    fn without_a_kid_every_fitting_key_is_tried() {
        let other = Signer::es256();
        let key = Signer::es256();
        let keys = set(&[other.jwk("a"), Signer::ed25519().jwk("b"), key.jwk("c")]);
        assert_eq!(subject_of(&key.sign_es256(None, &claims()), &keys, &expect(None)), Ok("u1".into()));
    }

    #[test]
    fn keys_for_another_use_or_algorithm_do_not_count() {
        let key = Signer::es256();
        let token = key.sign_es256(Some("k1"), &claims());
        let mut for_encryption = key.jwk("k1");
        for_encryption["use"] = "enc".into();
        assert_eq!(subject_of(&token, &set(&[for_encryption]), &expect(None)), Err(IdTokenError::NoKey));
        let mut for_es384 = key.jwk("k1");
        for_es384["alg"] = "ES384".into();
        assert_eq!(subject_of(&token, &set(&[for_es384]), &expect(None)), Err(IdTokenError::NoKey));
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused() {
        let key = Signer::es256();
        let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(claims().to_string()));
        assert_eq!(subject_of(&none, &set(&[key.jwk("k1")]), &expect(None)), Err(IdTokenError::Malformed));

        // An HS256 token whose MAC is right for a symmetric key in the set: the signature
        // would verify, and the algorithm alone refuses it.
        let secret = b"a shared secret of thirty-two by";
        let input = format!("{}.{}", b64(r#"{"alg":"HS256","kid":"oct"}"#), b64(claims().to_string()));
        let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), input.as_bytes());
        let hs256 = format!("{input}.{}", b64(mac.as_ref()));
        let keys = set(&[json!({"kty": "oct", "kid": "oct", "k": b64(secret)}), key.jwk("k1")]);
        assert_eq!(subject_of(&hs256, &keys, &expect(None)), Err(IdTokenError::Algorithm("HS256".into())));
    }

    #[test]
    fn each_claim_is_checked() {
        let key = Signer::es256();
        let keys = set(&[key.jwk("k1")]);
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            key.sign_es256(Some("k1"), &c)
        };
        let without = |k: &str| {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(k);
            key.sign_es256(Some("k1"), &c)
        };
        let check = |token: String, nonce| subject_of(&token, &keys, &expect(nonce));

        assert_eq!(check(with("iss", "https://evil".into()), None), Err(IdTokenError::WrongIssuer));
        assert_eq!(check(without("iss"), None), Err(IdTokenError::WrongIssuer));
        let any_issuer = Expectations { issuer: None, ..expect(None) };
        assert_eq!(subject_of(&with("iss", "https://other".into()), &keys, &any_issuer), Ok("u1".into()));

        assert_eq!(check(with("aud", "other".into()), None), Err(IdTokenError::WrongAudience));
        assert_eq!(check(with("aud", json!(["other", "proxy"])), None), Ok("u1".into()));
        assert_eq!(check(without("aud"), None), Err(IdTokenError::WrongAudience));

        assert_eq!(check(with("exp", (NOW - LEEWAY_SECS).into()), None), Err(IdTokenError::Expired));
        assert_eq!(check(with("exp", (NOW - LEEWAY_SECS + 1).into()), None), Ok("u1".into()), "within the leeway");
        assert_eq!(check(with("exp", "never".into()), None), Err(IdTokenError::Claim("exp".into())));
        assert_eq!(check(without("exp"), None), Err(IdTokenError::Claim("exp".into())));

        assert_eq!(check(with("nonce", "m".into()), Some("n")), Err(IdTokenError::WrongNonce));
        assert_eq!(check(without("nonce"), Some("n")), Err(IdTokenError::WrongNonce));
        assert_eq!(check(without("nonce"), None), Ok("u1".into()), "no nonce sent, none checked");

        assert_eq!(check(with("sub", "".into()), None), Err(IdTokenError::NoSubject));
        assert_eq!(check(with("sub", 42.into()), None), Err(IdTokenError::NoSubject));
        assert_eq!(check(without("sub"), None), Err(IdTokenError::NoSubject));

        assert_eq!(verify("not-a-jwt", &keys, &expect(None)), Err(IdTokenError::Malformed));
    }
}
