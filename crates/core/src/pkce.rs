//! PKCE (RFC 7636), S256 only.
//!
//! `plain` is refused outright: OAuth 2.1 and the MCP specification require S256, and a
//! server that accepts `plain` lets an intercepted authorization request be redeemed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::OAuthError;

/// RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
fn is_valid_verifier_or_challenge(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks the `code_challenge` and `code_challenge_method` of an authorization request.
pub fn validate_challenge(challenge: Option<&str>, method: Option<&str>) -> Result<String, OAuthError> {
    let challenge =
        challenge.ok_or_else(|| OAuthError::invalid_request("code_challenge is required (PKCE with S256)"))?;
    match method {
        Some("S256") => {}
        None => {
            // RFC 7636 defaults a missing method to `plain`, which we do not accept.
            return Err(OAuthError::invalid_request("code_challenge_method is required and must be S256"));
        }
        Some(_) => {
            return Err(OAuthError::invalid_request("code_challenge_method must be S256"));
        }
    }
    // An S256 challenge is the base64url of a SHA-256 digest: exactly 43 characters.
    if challenge.len() != 43 || !is_valid_verifier_or_challenge(challenge) {
        return Err(OAuthError::invalid_request("code_challenge is not a base64url SHA-256 digest"));
    }
    Ok(challenge.to_owned())
}

/// The S256 challenge of a verifier.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Checks a `code_verifier` against the challenge stored with the code, in constant time.
pub fn verify(verifier: Option<&str>, challenge: &str) -> Result<(), OAuthError> {
    let verifier = verifier.ok_or_else(|| OAuthError::invalid_grant("code_verifier is required"))?;
    if !is_valid_verifier_or_challenge(verifier) {
        return Err(OAuthError::invalid_grant("code_verifier is malformed"));
    }
    let computed = s256_challenge(verifier);
    if bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant("code_verifier does not match the code_challenge"))
    }
}

/// A fresh verifier: 32 random bytes, base64url (43 characters).
pub fn new_verifier() -> String {
    crate::token::random_b64(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_example() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        assert!(verify(Some(VERIFIER), CHALLENGE).is_ok());
    }

    #[test]
    fn wrong_or_missing_verifier_is_invalid_grant() {
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
        assert_eq!(verify(Some(other), CHALLENGE).unwrap_err().code, crate::OAuthErrorCode::InvalidGrant);
        assert!(verify(None, CHALLENGE).is_err());
        assert!(verify(Some("short"), CHALLENGE).is_err());
    }

    #[test]
    fn only_s256_challenges_are_accepted() {
        assert!(validate_challenge(Some(CHALLENGE), Some("S256")).is_ok());
        assert!(validate_challenge(Some(CHALLENGE), Some("plain")).is_err());
        assert!(validate_challenge(Some(CHALLENGE), None).is_err());
        assert!(validate_challenge(None, Some("S256")).is_err());
        assert!(validate_challenge(Some("abc"), Some("S256")).is_err());
        assert!(validate_challenge(Some(&format!("{CHALLENGE}=")), Some("S256")).is_err());
    }

    #[test]
    fn new_verifiers_are_valid_and_distinct() {
        let a = new_verifier();
        assert!(is_valid_verifier_or_challenge(&a));
        assert_ne!(a, new_verifier());
    }
}
