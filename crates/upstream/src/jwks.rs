//! Signature checks for id_tokens, against the provider's published keys (JWKS).
//!
//! Supported: RS256/RS384/RS512 and PS256 (RSA), ES256 (P-256) and EdDSA (Ed25519), through
//! `ring`, which rustls already brings in. `none` and the HMAC algorithms are refused: an
//! id_token must be signed with a key only the provider holds.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JwkSet {
    #[serde(default)]
    pub keys: Vec<Jwk>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the token is not a signed JWT")]
    Malformed,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    #[error("no published key matches the token")]
    NoKey,
    #[error("the signature does not verify")]
    Invalid,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn b64(s: &str) -> Result<Vec<u8>, SignatureError> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| SignatureError::Malformed)
}

/// Verifies a compact JWS against a key set.
pub fn verify(jwt: &str, keys: &JwkSet) -> Result<(), SignatureError> {
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(SignatureError::Malformed);
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| SignatureError::Malformed)?;
    let signature = b64(sig)?;
    let message = &jwt[..h.len() + 1 + p.len()];
    let candidates = keys.keys.iter().filter(|k| {
        header.kid.as_ref().is_none_or(|kid| k.kid.as_ref() == Some(kid))
            && k.use_.as_deref().is_none_or(|u| u == "sig")
            && k.alg.as_ref().is_none_or(|a| *a == header.alg)
    });
    let mut any = false;
    for key in candidates {
        any = true;
        if verify_with(&header.alg, key, message.as_bytes(), &signature)? {
            return Ok(());
        }
    }
    if any { Err(SignatureError::Invalid) } else { Err(SignatureError::NoKey) }
}

/// `Ok(true)` if `key` verifies; `Ok(false)` if it is the wrong key (or kind of key).
fn verify_with(alg: &str, key: &Jwk, message: &[u8], sig: &[u8]) -> Result<bool, SignatureError> {
    let rsa = |params: &'static signature::RsaParameters| -> Result<bool, SignatureError> {
        if key.kty != "RSA" {
            return Ok(false);
        }
        let (Some(n), Some(e)) = (&key.n, &key.e) else { return Ok(false) };
        let public = signature::RsaPublicKeyComponents { n: b64(n)?, e: b64(e)? };
        Ok(public.verify(params, message, sig).is_ok())
    };
    match alg {
        "RS256" => rsa(&signature::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => rsa(&signature::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => rsa(&signature::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => rsa(&signature::RSA_PSS_2048_8192_SHA256),
        "ES256" => {
            if key.kty != "EC" || key.crv.as_deref() != Some("P-256") {
                return Ok(false);
            }
            let (Some(x), Some(y)) = (&key.x, &key.y) else { return Ok(false) };
            let mut point = vec![0x04];
            point.extend(b64(x)?);
            point.extend(b64(y)?);
            Ok(signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
                .is_ok())
        }
        "EdDSA" => {
            if key.kty != "OKP" || key.crv.as_deref() != Some("Ed25519") {
                return Ok(false);
            }
            let Some(x) = &key.x else { return Ok(false) };
            Ok(signature::UnparsedPublicKey::new(&signature::ED25519, b64(x)?).verify(message, sig).is_ok())
        }
        other => Err(SignatureError::Algorithm(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    fn es256_key() -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let public = pair.public_key().as_ref();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some("k1".into()),
            alg: Some("ES256".into()),
            use_: Some("sig".into()),
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&public[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&public[33..65])),
        };
        (pair, jwk)
    }

    fn sign(pair: &EcdsaKeyPair, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn es256_signatures_verify_and_tampering_does_not() {
        let (pair, jwk) = es256_key();
        let keys = JwkSet { keys: vec![jwk] };
        let jwt = sign(&pair, r#"{"alg":"ES256","kid":"k1"}"#, r#"{"sub":"u"}"#);
        assert_eq!(verify(&jwt, &keys), Ok(()));
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#);
        parts[1] = &forged_payload;
        assert_eq!(verify(&parts.join("."), &keys), Err(SignatureError::Invalid));
        let (other, _) = es256_key();
        assert_eq!(verify(&sign(&other, r#"{"alg":"ES256","kid":"k1"}"#, "{}"), &keys), Err(SignatureError::Invalid));
        assert_eq!(verify(&sign(&pair, r#"{"alg":"ES256","kid":"k2"}"#, "{}"), &keys), Err(SignatureError::NoKey));
    }

    #[test]
    fn unsigned_and_hmac_tokens_are_refused() {
        let (_, jwk) = es256_key();
        let keys = JwkSet { keys: vec![Jwk { alg: None, ..jwk }] };
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert!(matches!(verify(&none, &keys), Err(SignatureError::Algorithm(_))));
        let hs = format!("{}.{}.c2ln", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert!(matches!(verify(&hs, &keys), Err(SignatureError::Algorithm(_))));
    }
}
