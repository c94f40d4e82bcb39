//! HMAC signatures for the values the proxy hands to browsers: the consent form's CSRF
//! token and the cookie that remembers a consent.
//!
//! The signing key is derived from the current encryption key, so every replica that
//! shares the encryption key (which they must, to read upstream tokens) also agrees on
//! signatures without any further configuration.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::seal::KeyRing;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn from_key_ring(ring: &KeyRing) -> Self {
        let mut mac = HmacSha256::new_from_slice(ring.current_raw()).expect("HMAC takes any key size");
        mac.update(b"mcp-oauth-proxy signing key v1");
        Self { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, purpose: &str, parts: &[&str]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key size");
        // Length-prefix every part so that ("ab","c") and ("a","bc") sign differently.
        for part in std::iter::once(purpose).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    pub fn sign(&self, purpose: &str, parts: &[&str]) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(purpose, parts))
    }

    pub fn verify(&self, purpose: &str, parts: &[&str], signature: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        bool::from(given.as_slice().ct_eq(&self.mac(purpose, parts)))
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
    fn timed_signatures_expire() {
        let s = signer(1);
        let t = s.sign_until("csrf", &["a"], 100);
        assert!(s.verify_until("csrf", &["a"], &t, 99));
        assert!(!s.verify_until("csrf", &["a"], &t, 100));
        let forged = t.replacen("100", "999", 1);
        assert!(!s.verify_until("csrf", &["a"], &forged, 99));
    }
}
