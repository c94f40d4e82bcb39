//! The identity assertion: a short-lived JWT the proxy signs for an MCP upstream that
//! wants to know *who* the user is rather than hold the user's provider token (the
//! `upstream_auth = "identity"` mode), as Google IAP, Cloudflare Access and Pomerium do.
//!
//! Signing is Ed25519 (`EdDSA`). The signing keys are derived from the encryption keys
//! (the [`KeyRing`]): one per configured key, the current key's signing, every one
//! published in the key set (`P/.well-known/jwks.json`). So replicas sharing the
//! encryption keys agree on the signing keys with nothing more to configure or store,
//! a key rotation rotates the signing key too, and the previous signing key stays
//! published for as long as its encryption key stays among `previous_keys` (which must be
//! at least the assertion lifetime; operators keep it longer for sealed data anyway).
//!
//! Derivation: seed = HMAC-SHA256(key = the 32-byte encryption key, message =
//! [`SIGNING_KEY_LABEL`]), the Ed25519 private key is that seed (RFC 8032). The encryption
//! key is already uniformly random, so no extraction step is needed (as in
//! [`crate::sign`]); the label keeps these keys apart from every other key derived from
//! the same secret. The key id (`kid`) is the key's RFC 7638 JWK thumbprint (SHA-256):
//! stable, public, and derived from the public key alone.
//!
//! `jsonwebtoken` does the JOSE work (headers, encoding, signing); what is ours is which
//! key signs and what the claims say.

use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
use hmac::{Hmac, Mac};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::seal::KeyRing;
use crate::sealed::UserIdentity;

/// The label the signing keys are derived with. Changing it changes every signing key
/// (and so every `kid`): it is versioned, and never changed in place.
pub const SIGNING_KEY_LABEL: &[u8] = b"mcp-oauth-proxy identity assertion signing key v1";

/// The one algorithm assertions are signed with.
pub const ALGORITHM: Algorithm = Algorithm::EdDSA;

#[derive(Debug, thiserror::Error)]
#[error("the identity assertion could not be signed: {0}")]
pub struct SignError(String);

/// The claims of an identity assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The proxy's `public_url`.
    pub iss: String,
    /// The MCP upstream the assertion is for (by default its URL).
    pub aud: String,
    /// The provider's stable id for the user.
    pub sub: String,
    /// Only an address the provider said it verified; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `true` whenever `email` is present (it is never sent unverified); absent with it.
    /// For verifiers written against OpenID Connect, which look for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// From the provider's groups claim; empty when it sends none.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The MCP client the user authorized.
    pub client_id: String,
    /// The scopes the client's token carries (space-separated).
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per assertion signed.
    pub jti: String,
}

/// Who the assertion speaks for: a grant and the client's token in it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub sub: &'a str,
    pub identity: &'a UserIdentity,
    pub client_id: &'a str,
    pub scope: &'a str,
}

impl Claims {
    /// The claims for `subject`, issued by `issuer` for `audience` at `now`, valid for
    /// `lifetime_secs`.
    pub fn new(issuer: &str, audience: &str, subject: Subject<'_>, now: i64, lifetime_secs: i64) -> Self {
        let email = subject.identity.verified_email().map(str::to_owned);
        Self {
            iss: issuer.to_owned(),
            aud: audience.to_owned(),
            sub: subject.sub.to_owned(),
            email_verified: email.as_ref().map(|_| true),
            email,
            name: subject.identity.name.clone(),
            groups: subject.identity.groups.clone(),
            client_id: subject.client_id.to_owned(),
            scope: subject.scope.to_owned(),
            iat: now,
            exp: now + lifetime_secs,
            jti: crate::token::random_b64(16),
        }
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    /// The public half, as published.
    public: Jwk,
}

/// The assertion signing keys, one per configured encryption key, current first.
pub struct AssertionKeys {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for AssertionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("AssertionKeys").field("kids", &kids).finish()
    }
}

impl AssertionKeys {
    pub fn from_key_ring(ring: &KeyRing) -> Self {
        crate::jose::install_crypto_provider();
        Self { keys: ring.raw_keys().map(derive).collect() }
    }

    /// The id of the key that signs.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Every key's public half, current first: what `P/.well-known/jwks.json` serves.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.keys.iter().map(|k| k.public.clone()).collect() }
    }

    /// `claims` signed with the current key, naming it in `kid`.
    pub fn sign(&self, claims: &Claims) -> Result<String, SignError> {
        let key = &self.keys[0];
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| SignError(e.to_string()))
    }
}

/// The signing key derived from one encryption key (see the module's documentation).
fn derive(raw: &[u8; 32]) -> SigningKey {
    let mut mac = Hmac::<Sha256>::new_from_slice(raw).expect("HMAC takes any key size");
    mac.update(SIGNING_KEY_LABEL);
    let seed: [u8; 32] = mac.finalize().into_bytes().into();
    // PKCS#8 v1 (the private key alone), the form `jsonwebtoken` reads Ed25519 keys in.
    let der = KeypairBytes { secret_key: seed, public_key: None }
        .to_pkcs8_der()
        .expect("a 32-byte Ed25519 key always encodes");
    let encoding = EncodingKey::from_ed_der(der.as_bytes());
    let mut public =
        Jwk::from_encoding_key(&encoding, ALGORITHM).expect("an Ed25519 PKCS#8 key always has a public half");
    let kid = public.thumbprint(ThumbprintHash::SHA256).expect("Ed25519 keys have a thumbprint");
    public.common.key_id = Some(kid.clone());
    public.common.public_key_use = Some(PublicKeyUse::Signature);
    SigningKey { kid, encoding, public }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn identity(verified: bool) -> UserIdentity {
        UserIdentity {
            email: Some("ada@example.com".into()),
            email_verified: verified,
            name: Some("Ada".into()),
            groups: vec!["staff".into(), "admins".into()],
        }
    }

    fn claims(identity: &UserIdentity) -> Claims {
        let subject = Subject { sub: "u1", identity, client_id: "c1", scope: "mcp files:read" };
        Claims::new("https://proxy.example", "http://127.0.0.1:9000/mcp", subject, 1_000, 300)
    }

    /// Decodes `jwt` with the key the set publishes under its `kid`, as a verifier would.
    fn verify(jwt: &str, set: &JwkSet, audience: &str) -> Result<Claims, jsonwebtoken::errors::Error> {
        let kid = jsonwebtoken::decode_header(jwt)?.kid.expect("a kid");
        let jwk = set.find(&kid).ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[audience]);
        validation.set_issuer(&["https://proxy.example"]);
        validation.validate_exp = false; // the claims are dated 1970
        Ok(jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
    }

    #[test]
    fn claims_carry_the_grant_and_its_lifetime() {
        let c = claims(&identity(true));
        assert_eq!(
            (c.iss.as_str(), c.aud.as_str(), c.sub.as_str()),
            ("https://proxy.example", "http://127.0.0.1:9000/mcp", "u1")
        );
        assert_eq!((c.client_id.as_str(), c.scope.as_str()), ("c1", "mcp files:read"));
        assert_eq!((c.iat, c.exp), (1_000, 1_300));
        assert_eq!(c.name.as_deref(), Some("Ada"));
        assert_eq!(c.groups, ["staff", "admins"]);
        assert_eq!((c.email.as_deref(), c.email_verified), (Some("ada@example.com"), Some(true)));
        assert_ne!(c.jti, claims(&identity(true)).jti, "every assertion has its own id");
    }

    #[test]
    fn an_unverified_email_is_never_asserted() {
        let c = claims(&identity(false));
        assert_eq!((c.email, c.email_verified), (None, None));
        let json = serde_json::to_value(claims(&identity(false))).unwrap();
        assert!(json.get("email").is_none() && json.get("email_verified").is_none(), "{json}");
        // Groups are always a list, so that verifiers need not tell absent from empty.
        let json = serde_json::to_value(claims(&UserIdentity::default())).unwrap();
        assert_eq!(json["groups"], serde_json::json!([]));
        assert!(json.get("name").is_none());
    }

    #[test]
    fn signing_keys_are_stable_per_encryption_key_and_differ_between_keys() {
        let a = AssertionKeys::from_key_ring(&KeyRing::new([1; 32], &[]));
        let again = AssertionKeys::from_key_ring(&KeyRing::new([1; 32], &[]));
        let b = AssertionKeys::from_key_ring(&KeyRing::new([2; 32], &[]));
        assert_eq!(a.current_kid(), again.current_kid());
        assert_eq!(a.jwks(), again.jwks());
        assert_ne!(a.current_kid(), b.current_kid());
        // The kid is the RFC 7638 thumbprint: 43 characters of base64url SHA-256.
        assert_eq!(a.current_kid().len(), 43);
        let jwk = serde_json::to_value(&a.jwks().keys[0]).unwrap();
        assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
        assert_eq!((jwk["alg"].as_str(), jwk["use"].as_str()), (Some("EdDSA"), Some("sig")));
        assert!(jwk.get("d").is_none(), "only the public half is published: {jwk}");
    }

    #[test]
    fn a_rotated_ring_signs_with_the_new_key_and_publishes_both() {
        let old = AssertionKeys::from_key_ring(&KeyRing::new([1; 32], &[]));
        let rotated = AssertionKeys::from_key_ring(&KeyRing::new([2; 32], &[[1; 32]]));
        let kids: Vec<_> = rotated.jwks().keys.iter().map(|k| k.common.key_id.clone().unwrap()).collect();
        assert_eq!(kids, [rotated.current_kid(), old.current_kid()]);
        // An assertion signed before the rotation still verifies against the new set.
        let before = old.sign(&claims(&identity(true))).unwrap();
        assert_eq!(verify(&before, &rotated.jwks(), "http://127.0.0.1:9000/mcp").unwrap().sub, "u1");
    }

    #[test]
    fn a_signed_assertion_verifies_against_its_published_key_only() {
        let keys = AssertionKeys::from_key_ring(&KeyRing::new([1; 32], &[]));
        let jwt = keys.sign(&claims(&identity(true))).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::EdDSA, Some(keys.current_kid())));
        let decoded = verify(&jwt, &keys.jwks(), "http://127.0.0.1:9000/mcp").unwrap();
        let mut expected = claims(&identity(true));
        expected.jti.clone_from(&decoded.jti);
        assert_eq!(decoded, expected);
        assert!(verify(&jwt, &keys.jwks(), "http://elsewhere/mcp").is_err(), "another audience");
        // Another key published under this kid: the signature does not verify.
        let other = AssertionKeys::from_key_ring(&KeyRing::new([2; 32], &[]));
        let mut forged = other.jwks();
        forged.keys[0].common.key_id = Some(keys.current_kid().to_owned());
        let err = verify(&jwt, &forged, "http://127.0.0.1:9000/mcp").unwrap_err();
        assert_eq!(err.kind(), &jsonwebtoken::errors::ErrorKind::InvalidSignature);
        assert!(verify(&jwt, &other.jwks(), "http://127.0.0.1:9000/mcp").is_err(), "no key with its kid");
    }
}
