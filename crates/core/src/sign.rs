//! HMAC signatures for the values the proxy hands to browsers: the consent form's CSRF
//! token and the cookie that remembers a consent.
//!
//! The signing keys are derived from the encryption keys, so every replica that shares
//! the encryption keys (which they must, to read upstream tokens) also agrees on
//! signatures without any further configuration. The current key signs; previous keys
//! still verify, so a key rotation does not void consent cookies and forms already handed
//! out: they stay valid until they expire.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::seal::KeyRing;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    /// Current first.
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn from_key_ring(ring: &KeyRing) -> Self {
        let derive = |raw: &[u8; 32]| -> [u8; 32] {
            let mut mac = HmacSha256::new_from_slice(raw).expect("HMAC takes any key size");
            mac.update(b"mcp-oauth-proxy signing key v1");
            mac.finalize().into_bytes().into()
        };
        Self { keys: ring.raw_keys().map(derive).collect() }
    }

    fn mac(&self, key: &[u8; 32], purpose: &str, parts: &[&str]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key size");
        // Length-prefix every part so that ("ab","c") and ("a","bc") sign differently.
        for part in std::iter::once(purpose).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    pub fn sign(&self, purpose: &str, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(&self.keys[0], purpose, parts))
    }

    pub fn verify(&self, purpose: &str, parts: &[&str], signature: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.keys.iter().any(|key| bool::from(given.as_slice().ct_eq(&self.mac(key, purpose, parts))))
    }

    /// A signature that stops being valid at `expires_at` (epoch seconds):
    /// `<expires_at>.<signature>`.
    pub fn sign_until(&self, purpose: &str, parts: &[&str], expires_at: i64) -> String {
        let exp = expires_at.to_string();
        let mut all = parts.to_vec();
        all.push(&exp);
        format!("{exp}.{}", self.sign(purpose, &all))
    }

    pub fn verify_until(&self, purpose: &str, parts: &[&str], token: &str, now: i64) -> bool {
        let Some((exp, sig)) = token.split_once('.') else {
            return false;
        };
        let Ok(expires_at) = exp.parse::<i64>() else {
            return false;
        };
        let mut all = parts.to_vec();
        all.push(exp);
        now < expires_at && self.verify(purpose, &all, sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(k: u8) -> Signer {
        Signer::from_key_ring(&KeyRing::new([k; 32], &[]))
    }

    #[test]
    fn signatures_bind_purpose_parts_and_key() {
        let s = signer(1);
        let sig = s.sign("consent", &["client", "browser"]);
        assert!(s.verify("consent", &["client", "browser"], &sig));
        assert!(!s.verify("csrf", &["client", "browser"], &sig));
        assert!(!s.verify("consent", &["clien", "tbrowser"], &sig));
        assert!(!signer(2).verify("consent", &["client", "browser"], &sig));
        assert!(!s.verify("consent", &["client", "browser"], "garbage"));
    }

    #[test]
    fn previous_keys_still_verify_and_only_the_current_one_signs() {
        let old = signer(1);
        let rotated = Signer::from_key_ring(&KeyRing::new([2; 32], &[[1; 32]]));
        let before = old.sign_until("consent", &["c"], 100);
        assert!(rotated.verify_until("consent", &["c"], &before, 99), "valid until it expires");
        assert!(!rotated.verify_until("consent", &["c"], &before, 100));
        let after = rotated.sign("consent", &["c"]);
        assert!(!old.verify("consent", &["c"], &after));
        assert!(signer(2).verify("consent", &["c"], &after));
    }

    #[test]
    fn timed_signatures_expire() {
        let s = signer(1);
        let t = s.sign_until("csrf", &["a"], 100);
        assert!(s.verify_until("csrf", &["a"], &t, 99));
        assert!(!s.verify_until("csrf", &["a"], &t, 100));
        let forged = t.replacen("100", "999", 1);
        assert!(!s.verify_until("csrf", &["a"], &forged, 99));
    }
}
