//! Key rotation for what the store keeps sealed: which keys stored values need, and
//! re-sealing them all with the current key, so that `encryption.previous_keys` can be
//! emptied.
//!
//! Safe while replicas serve: each value is replaced only if it is still as read (a
//! refresh that stored a new credential meanwhile sealed it with the current key anyway).

use mcp_oauth_core::seal::KeyRing;
use mcp_oauth_core::sealed::{RefreshSuccessor, UpstreamSecret, upstream_registration_aad};
use mcp_oauth_store::{SealedKind, SealedValue, Store, StoreError};

/// How many values are read and re-sealed at a time.
const BATCH: i64 = 500;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    pub provider_credentials: u64,
    pub refresh_successors: u64,
    /// Client secrets of the proxy's registrations at brokered upstreams.
    pub upstream_registrations: u64,
    /// Values that changed between the read and the write: already current.
    pub changed_meanwhile: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    MissingKeys(MissingKeys),
    #[error("a stored value does not open with its key (it was tampered with, or sealed for another row): {0}")]
    Unreadable(String),
}

/// Keys that stored values were sealed with and that the configuration lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingKeys(pub Vec<(String, i64)>);

impl std::fmt::Display for MissingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (key_id, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{n} stored credential(s) are sealed with key id {key_id}")?;
        }
        f.write_str(
            ", which the configuration does not have: put that key in encryption.previous_keys \
             (nothing was deleted; once every replica has it, `mcp-oauth-proxy rotate-key` re-seals them)",
        )
    }
}

/// The key ids that stored values need and `keys` lacks, with how many values need each.
pub async fn missing_keys(store: &dyn Store, keys: &KeyRing) -> Result<Option<MissingKeys>, StoreError> {
    let missing: Vec<(String, i64)> =
        store.sealed_key_usage().await?.into_iter().filter(|(key_id, _)| !keys.knows(key_id)).collect();
    Ok((!missing.is_empty()).then_some(MissingKeys(missing)))
}

/// Re-seals every stored value that a previous key sealed.
pub async fn reseal_all(store: &dyn Store, keys: &KeyRing) -> Result<Resealed, RekeyError> {
    if let Some(missing) = missing_keys(store, keys).await? {
        return Err(RekeyError::MissingKeys(missing));
    }
    let mut done = Resealed::default();
    loop {
        let batch = store.sealed_with_other_keys(keys.current_key_id(), BATCH).await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for value in batch {
            let resealed = reseal(keys, &value)?;
            if !store.reseal(&value, &resealed).await? {
                done.changed_meanwhile += 1;
                continue;
            }
            match value.kind {
                SealedKind::ProviderCredential { .. } => done.provider_credentials += 1,
                SealedKind::RefreshSuccessor { .. } => done.refresh_successors += 1,
                SealedKind::UpstreamRegistration { .. } => done.upstream_registrations += 1,
            }
        }
    }
}

/// The same value sealed with the current key, for the same row.
fn reseal(keys: &KeyRing, value: &SealedValue) -> Result<String, RekeyError> {
    let aad = match &value.kind {
        SealedKind::ProviderCredential { family_id } => UpstreamSecret::aad(family_id),
        SealedKind::RefreshSuccessor { token_hash } => RefreshSuccessor::aad(token_hash),
        SealedKind::UpstreamRegistration { server, issuer } => upstream_registration_aad(server, issuer),
    };
    let plain = keys.open(&value.sealed, &aad).map_err(|e| RekeyError::Unreadable(format!("{:?}: {e}", value.kind)))?;
    Ok(keys.seal(&plain, &aad))
}
