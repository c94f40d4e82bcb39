//! Encryption at rest for upstream credentials.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per value (random nonces are safe at
//! this size). Each sealed value names the key that sealed it, so keys can rotate: the
//! newest key seals, every listed key can open. The additional data binds a value to the
//! row it belongs to, so a ciphertext copied into another row does not decrypt.
//!
//! Sealed form: `v1.<key id>.<base64url(nonce || ciphertext)>`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("encryption key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with key {0}, which is not configured")]
    UnknownKey(String),
    #[error("sealed value does not authenticate (wrong key or wrong row)")]
    Forged,
}

struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
    raw: [u8; 32],
}

/// The configured encryption keys: the first seals, all of them open.
pub struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

/// Decodes a configured key: base64 (standard or url-safe, padding optional) of 32 bytes.
pub fn decode_key(b64: &str) -> Result<[u8; 32], SealError> {
    let b64 = b64.trim();
    let bytes = STANDARD
        .decode(b64)
        .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64.trim_end_matches('=')))
        .map_err(|_| SealError::BadKey)?;
    bytes.try_into().map_err(|_| SealError::BadKey)
}

/// A new random key, base64 — what `mcp-oauth-proxy keygen` prints.
pub fn generate_key() -> String {
    STANDARD.encode(crate::token::random_bytes::<32>())
}

impl KeyRing {
    /// `current` seals; `previous` keys only open values sealed before a rotation.
    pub fn new(current: [u8; 32], previous: &[[u8; 32]]) -> Self {
        let keys = std::iter::once(&current)
            .chain(previous)
            .map(|raw| Key { id: key_id(raw), cipher: XChaCha20Poly1305::new(raw.into()), raw: *raw })
            .collect();
        Self { keys }
    }

    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Whether `key_id` names one of the configured keys.
    pub fn knows(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// The raw keys, current first, for deriving other keys (see [`crate::sign`]).
    pub(crate) fn raw_keys(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.keys.iter().map(|k| &k.raw)
    }

    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let key = &self.keys[0];
        let nonce_bytes = crate::token::random_bytes::<24>();
        let ct = key
            .cipher
            .encrypt(XNonce::from_slice(&nonce_bytes), Payload { msg: plaintext, aad: aad.as_bytes() })
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut blob = nonce_bytes.to_vec();
        blob.extend_from_slice(&ct);
        format!("v1.{}.{}", key.id, URL_SAFE_NO_PAD.encode(blob))
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealError::Malformed);
        };
        let key = self.keys.iter().find(|k| k.id == kid).ok_or_else(|| SealError::UnknownKey(kid.to_owned()))?;
        let blob = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Malformed)?;
        if blob.len() < 24 + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = blob.split_at(24);
        key.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: aad.as_bytes() })
            .map_err(|_| SealError::Forged)
    }
}

/// The id of the key that sealed `sealed`, if it is a sealed value at all.
pub fn key_id_of(sealed: &str) -> Option<&str> {
    let mut parts = sealed.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some(kid), Some(_)) => Some(kid),
        _ => None,
    }
}

/// A short public name for a key: it identifies the key without revealing it.
fn key_id(raw: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"mcp-oauth-proxy key id\0");
    h.update(raw);
    h.finalize()[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_row_binding() {
        let ring = KeyRing::new([7; 32], &[]);
        let sealed = ring.seal(b"upstream-token", "grant:a");
        assert!(!sealed.contains("upstream-token"));
        assert_eq!(ring.open(&sealed, "grant:a").unwrap(), b"upstream-token");
        assert_eq!(ring.open(&sealed, "grant:b"), Err(SealError::Forged));
    }

    #[test]
    fn rotation_opens_old_values_and_seals_with_the_new_key() {
        let old = KeyRing::new([1; 32], &[]);
        let sealed = old.seal(b"x", "r");
        let rotated = KeyRing::new([2; 32], &[[1; 32]]);
        assert_eq!(rotated.open(&sealed, "r").unwrap(), b"x");
        assert_ne!(key_id_of(&rotated.seal(b"x", "r")), key_id_of(&sealed));
        assert_eq!(key_id_of(&rotated.seal(b"x", "r")), Some(rotated.current_key_id()));
        assert!(rotated.knows(key_id_of(&sealed).unwrap()));
        assert!(!KeyRing::new([2; 32], &[]).knows(key_id_of(&sealed).unwrap()));
        let without_old = KeyRing::new([2; 32], &[]);
        assert!(matches!(without_old.open(&sealed, "r"), Err(SealError::UnknownKey(_))));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = KeyRing::new([3; 32], &[]);
        let mut sealed = ring.seal(b"secret", "r").into_bytes();
        let last = sealed.len() - 2;
        sealed[last] = if sealed[last] == b'A' { b'B' } else { b'A' };
        let sealed = String::from_utf8(sealed).unwrap();
        assert!(ring.open(&sealed, "r").is_err());
        assert_eq!(ring.open("v2.x.y", "r"), Err(SealError::Malformed));
    }

    #[test]
    fn keys_decode_from_base64_of_32_bytes_only() {
        let k = generate_key();
        assert!(decode_key(&k).is_ok());
        assert_eq!(decode_key("c2hvcnQ="), Err(SealError::BadKey));
        assert_eq!(decode_key("not base64!"), Err(SealError::BadKey));
    }
}
