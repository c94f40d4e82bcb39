//! Opaque tokens: minting and hashing.
//!
//! A token is a recognisable prefix followed by 256 random bits in base64url. The prefix
//! tells a human (and a secret scanner) what leaked; the random part is what makes it
//! unguessable. Only the SHA-256 of a token is ever stored, so a copy of the database
//! cannot be replayed against the proxy.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// What a token is for. The prefix is part of the token, and hence of its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    AccessToken,
    RefreshToken,
    AuthorizationCode,
    /// The proxy's `state` towards the upstream provider.
    UpstreamState,
    ClientSecret,
}

impl TokenKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::AccessToken => "mop_at_",
            Self::RefreshToken => "mop_rt_",
            Self::AuthorizationCode => "mop_ac_",
            Self::UpstreamState => "mop_st_",
            Self::ClientSecret => "mop_cs_",
        }
    }
}

/// The SHA-256 of a token: what the database stores and looks up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// Bytes read back as a [`TokenHash`] that are not 32 long: a corrupted row, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token hash is 32 bytes, not {0}")]
pub struct NotATokenHash(pub usize);

/// Owned bytes, because that is what a database column decodes to (the storage layer
/// converts each hash column with this).
impl TryFrom<Vec<u8>> for TokenHash {
    type Error = NotATokenHash;

    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        Self::from_slice(&bytes).ok_or(NotATokenHash(bytes.len()))
    }
}

impl std::fmt::Debug for TokenHash {
    // A short fingerprint is enough to correlate log lines, and is not the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// A freshly minted token and its hash. `Debug` does not print the secret.
pub struct Minted {
    pub secret: String,
    pub hash: TokenHash,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted").field("hash", &self.hash).finish_non_exhaustive()
    }
}

pub fn mint(kind: TokenKind) -> Minted {
    let secret = format!("{}{}", kind.prefix(), random_b64(32));
    let hash = TokenHash::of(&secret);
    Minted { secret, hash }
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS random source failing is not something a server can carry on from.
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    buf
}

/// `n` random bytes, base64url without padding.
pub fn random_b64(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random identifier for rows (families, clients): 128 bits, hex.
pub fn random_id() -> String {
    random_bytes::<16>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_have_prefix_and_256_bits() {
        let t = mint(TokenKind::AccessToken);
        assert!(t.secret.starts_with("mop_at_"));
        let random = &t.secret["mop_at_".len()..];
        assert_eq!(URL_SAFE_NO_PAD.decode(random).unwrap().len(), 32);
        assert_eq!(t.hash, TokenHash::of(&t.secret));
    }

    #[test]
    fn hashes_differ_per_token_and_debug_hides_secrets() {
        let a = mint(TokenKind::RefreshToken);
        let b = mint(TokenKind::RefreshToken);
        assert_ne!(a.hash, b.hash);
        assert!(!format!("{a:?}").contains(&a.secret));
    }

    #[test]
    fn sha256_of_known_input() {
        let h = TokenHash::of("abc");
        assert_eq!(h.0[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn hashes_read_back_must_be_32_bytes() {
        let h = TokenHash::of("abc");
        assert_eq!(TokenHash::try_from(h.as_bytes().to_vec()), Ok(h));
        assert_eq!(TokenHash::try_from(vec![0; 31]), Err(NotATokenHash(31)));
        assert_eq!(TokenHash::try_from(Vec::new()), Err(NotATokenHash(0)));
    }
}
