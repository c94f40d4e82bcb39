//! A JWS checked against someone else's published key set: which keys may verify it, and
//! trying them. Shared by the provider's id_tokens (`mcp_oauth_upstream::id_token`) and
//! the JWTs presented at the token endpoint (`jwt_grant`); each keeps its own algorithm
//! allow-list and checks its own claims.
//!
//! `jsonwebtoken` does the JOSE work (parsing, signature); what is ours is which keys may
//! be tried: a token that names its key (`kid`) is checked with that key only, one that
//! does not with every key that fits its algorithm, and a key fits only if it is meant for
//! signatures (or does not say), for this algorithm (or does not say), and of the kind and
//! size the algorithm needs (RSA moduli of 2048 bits at least).

use std::sync::Once;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, TokenData, Validation};
use serde::de::DeserializeOwned;

/// RSA keys shorter than 2048 bits are refused (RFC 7518 §3.3).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// Why no key verified a token.
#[derive(Debug)]
pub enum KeyError {
    /// No key in the set may verify it (none with its `kid`, or none that fits its `alg`).
    NoKey,
    /// Keys fit, and none verified the signature.
    BadSignature,
    /// A key verified the signature, or the token is malformed: the library's word.
    Token(jsonwebtoken::errors::Error),
}

/// `jwt`, whose header is `header`, verified with the keys of `keys` that may verify it,
/// and checked as `validation` says.
pub fn verify<T: DeserializeOwned>(
    jwt: &str,
    header: &Header,
    keys: &JwkSet,
    validation: &Validation,
) -> Result<TokenData<T>, KeyError> {
    install_crypto_provider();
    let mut candidates = keys
        .keys
        .iter()
        .filter(|k| header.kid.as_ref().is_none_or(|kid| k.common.key_id.as_ref() == Some(kid)) && fits(k, header.alg))
        .peekable();
    if candidates.peek().is_none() {
        return Err(KeyError::NoKey);
    }
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
        match jsonwebtoken::decode::<T>(jwt, &key, validation) {
            Ok(data) => return Ok(data),
            Err(e) if is_wrong_key(e.kind()) => continue,
            Err(e) => return Err(KeyError::Token(e)),
        }
    }
    Err(KeyError::BadSignature)
}

/// Whether `key` may verify a token signed with `alg` (see the module's comment).
fn fits(key: &Jwk, alg: Algorithm) -> bool {
    let for_signing = matches!(key.common.public_key_use, None | Some(PublicKeyUse::Signature));
    let for_alg = key.common.key_algorithm.is_none_or(|a| a == KeyAlgorithm::from(alg));
    let kind = match (&key.algorithm, alg) {
        (AlgorithmParameters::RSA(rsa), Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256) => {
            URL_SAFE_NO_PAD
                .decode(rsa.n.trim_end_matches('='))
                .is_ok_and(|n| n.iter().skip_while(|b| **b == 0).count() >= MIN_RSA_MODULUS_BYTES)
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => ec.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => okp.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    for_signing && for_alg && kind
}

/// Errors that mean "not this key", so the next candidate is tried. The library verifies
/// the signature before it looks at any claim, so every other error is about a token whose
/// signature checked out, or about the token's shape.
fn is_wrong_key(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::InvalidAlgorithm
    )
}

/// jsonwebtoken picks its crypto backend from its features, and panics at the first
/// verification if it cannot tell (both backends on, through another crate's features).
/// Naming it once removes that doubt.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if a provider was installed first, which serves as well.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_keys_under_2048_bits_do_not_count() {
        let rsa = |modulus_bytes: usize| -> Jwk {
            let n = std::iter::once(0u8).chain(std::iter::repeat_n(0xc5, modulus_bytes)).collect::<Vec<u8>>();
            serde_json::from_value(serde_json::json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": "AQAB"}))
                .unwrap()
        };
        assert!(fits(&rsa(256), Algorithm::RS256), "2048 bits, with a leading zero byte");
        assert!(fits(&rsa(256), Algorithm::PS256));
        assert!(!fits(&rsa(255), Algorithm::RS256));
        assert!(!fits(&rsa(128), Algorithm::RS512));
        assert!(!fits(&rsa(256), Algorithm::ES256), "an RSA key is no EC key");
    }
}
