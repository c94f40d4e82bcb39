//! From a row to a model, once for both backends.
//!
//! Each backend says how to read one column of its rows (`sqlite::rows`,
//! `postgres::rows`: the only driver-specific part); which columns make which model, and
//! how a hash, a status or a JSON column becomes a typed field, is written here once, so
//! that the two backends cannot decode the same row into two different things. Columns
//! are read by name: the statements alias them to these names.

use mcp_oauth_core::client::{Client, ClientMetadata};
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;

use crate::StoreError;
use crate::model::*;

/// One row of a result, as each backend's driver reads it.
pub(crate) trait Columns {
    fn text(&self, name: &str) -> Result<String, StoreError>;
    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError>;
    fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    fn hash(&self, name: &str) -> Result<TokenHash, StoreError> {
        let bytes = self.opt_blob(name)?.ok_or_else(|| corrupt(format!("{name} is NULL")))?;
        TokenHash::try_from(bytes).map_err(|e| corrupt(format!("{name}: {e}")))
    }

    fn status(&self, name: &str) -> Result<FamilyStatus, StoreError> {
        FamilyStatus::try_from(self.text(name)?).map_err(|e| corrupt(format!("{name}: {e}")))
    }
}

/// Implements [`Columns`] for a driver's row type with a `get(name)` that reads a column as
/// any type the driver can decode it to (each backend's `rows`).
macro_rules! columns_by_get {
    ($row:ty) => {
        impl $crate::decode::Columns for $row {
            fn text(&self, name: &str) -> Result<String, StoreError> {
                self.get(name)
            }
            fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
                self.get(name)
            }
            fn int(&self, name: &str) -> Result<i64, StoreError> {
                self.get(name)
            }
            fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
                self.get(name)
            }
            fn opt_blob(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
                self.get(name)
            }
        }
    };
}
pub(crate) use columns_by_get;

/// A stored value this version cannot read: an error, never a guess, and counted like
/// every other database error.
pub(crate) fn corrupt(what: String) -> StoreError {
    let e = StoreError::Internal(format!("unreadable column: {what}"));
    crate::count_error(&e);
    e
}

/// A `clients` row: client_id, secret_hash, metadata (JSON text), created_at.
pub(crate) fn client(r: &dyn Columns) -> Result<Client, StoreError> {
    let metadata: ClientMetadata =
        serde_json::from_str(&r.text("metadata")?).map_err(|e| corrupt(format!("client metadata: {e}")))?;
    // A hash that cannot be read is an error like any other unreadable column: read as
    // "no secret", it would turn a confidential client into a public one.
    let secret_hash = r
        .opt_blob("secret_hash")?
        .map(TokenHash::try_from)
        .transpose()
        .map_err(|e| corrupt(format!("client secret_hash: {e}")))?;
    Ok(Client {
        client_id: r.text("client_id")?,
        secret_hash,
        metadata,
        trusted: false,
        created_at: r.int("created_at")?,
    })
}

pub(crate) fn registered_client(r: &dyn Columns) -> Result<RegisteredClient, StoreError> {
    Ok(RegisteredClient { server: r.text("server")?, client: client(r)? })
}

pub(crate) fn pending(r: &dyn Columns) -> Result<PendingAuthorization, StoreError> {
    Ok(PendingAuthorization {
        state_hash: r.hash("state_hash")?,
        browser_hash: r.hash("browser_hash")?,
        server: r.text("server")?,
        client_id: r.text("client_id")?,
        redirect_uri: r.text("redirect_uri")?,
        scope: r.text("scope")?,
        resource: r.text("resource")?,
        code_challenge: r.text("code_challenge")?,
        client_state: r.opt_text("client_state")?,
        upstream_verifier: r.text("upstream_verifier")?,
        nonce: r.opt_text("nonce")?,
        expires_at: r.int("expires_at")?,
        trace_id: r.opt_text("trace_id")?,
        address: r.opt_text("address")?,
        broker: r.opt_text("broker")?,
    })
}

pub(crate) fn upstream_registration(r: &dyn Columns) -> Result<UpstreamRegistration, StoreError> {
    Ok(UpstreamRegistration {
        server: r.text("server")?,
        issuer: r.text("issuer")?,
        client_id: r.text("client_id")?,
        secret_sealed: r.opt_text("secret_sealed")?,
        created_at: r.int("created_at")?,
    })
}

/// An authorization code joined with its family; `used` is `used_at IS NOT NULL`.
pub(crate) fn code(r: &dyn Columns) -> Result<StoredCode, StoreError> {
    Ok(StoredCode {
        family_id: r.text("family_id")?,
        server: r.text("server")?,
        client_id: r.text("client_id")?,
        redirect_uri: r.text("redirect_uri")?,
        code_challenge: r.text("code_challenge")?,
        scope: r.text("scope")?,
        expires_at: r.int("expires_at")?,
        used: r.opt_int("used_at")?.is_some(),
        trace_id: r.opt_text("trace_id")?,
    })
}

pub(crate) fn refresh_token(r: &dyn Columns) -> Result<StoredRefreshToken, StoreError> {
    Ok(StoredRefreshToken {
        family_id: r.text("family_id")?,
        server: r.text("server")?,
        client_id: r.text("client_id")?,
        scope: r.text("scope")?,
        expires_at: r.int("expires_at")?,
        superseded_at: r.opt_int("superseded_at")?,
        family_status: r.status("family_status")?,
        upstream: UpstreamCredential {
            family_id: r.text("family_id")?,
            sealed: r.text("upstream_sealed")?,
            expires_at: r.opt_int("upstream_expires_at")?,
            family_status: r.status("family_status")?,
        },
    })
}

/// A family's provider credential: family_id, sealed, expires_at, family_status.
pub(crate) fn upstream(r: &dyn Columns) -> Result<UpstreamCredential, StoreError> {
    Ok(UpstreamCredential {
        family_id: r.text("family_id")?,
        sealed: r.text("sealed")?,
        expires_at: r.opt_int("expires_at")?,
        family_status: r.status("family_status")?,
    })
}

/// An access token joined with its family; the family's credential under `upstream`'s
/// names (its `expires_at` as `upstream_expires_at`, beside the token's own).
pub(crate) fn access_token(r: &dyn Columns) -> Result<AccessTokenInfo, StoreError> {
    Ok(AccessTokenInfo {
        server: r.text("server")?,
        client_id: r.text("client_id")?,
        subject: r.text("subject")?,
        scope: r.text("scope")?,
        resource: r.text("resource")?,
        expires_at: r.int("expires_at")?,
        revoked: r.opt_int("revoked_at")?.is_some(),
        upstream: UpstreamCredential {
            family_id: r.text("family_id")?,
            sealed: r.text("sealed")?,
            expires_at: r.opt_int("upstream_expires_at")?,
            family_status: r.status("family_status")?,
        },
        trace_id: r.opt_text("trace_id")?,
    })
}

pub(crate) fn grant(r: &dyn Columns) -> Result<GrantSummary, StoreError> {
    Ok(GrantSummary {
        id: r.text("id")?,
        server: r.text("server")?,
        client_id: r.text("client_id")?,
        subject: r.text("subject")?,
        scope: r.text("scope")?,
        created_at: r.int("created_at")?,
        last_issued_at: r.opt_int("last_issued_at")?,
        last_used_at: r.opt_int("last_used_at")?,
        upstream_expires_at: r.opt_int("upstream_expires_at")?,
        status: r.status("status")?,
    })
}

/// A `tool_pins` row; the three `changed_*` columns are written and cleared together.
pub(crate) fn tool_pin(r: &dyn Columns) -> Result<ToolPin, StoreError> {
    let (server, tool) = (r.text("server")?, r.text("tool")?);
    let changed = match (r.opt_text("changed_digest")?, r.opt_text("changed_definition")?, r.opt_int("changed_at")?) {
        (Some(digest), Some(definition), Some(seen_at)) => Some(ToolChange { digest, definition, seen_at }),
        (None, None, None) => None,
        _ => {
            return Err(corrupt(format!(
                "tool pin {server}/{tool}: a pending change with some of its columns missing"
            )));
        }
    };
    Ok(ToolPin {
        server,
        tool,
        digest: r.text("digest")?,
        definition: r.text("definition")?,
        pinned_at: r.int("pinned_at")?,
        changed,
    })
}

/// A sealed value of either kind, as `sealed_with_other_keys` reads them: `kind` is
/// 'family' (with `family_id`) or 'successor' (with `token_hash`).
pub(crate) fn sealed_value(r: &dyn Columns) -> Result<SealedValue, StoreError> {
    let kind = match r.opt_text("family_id")? {
        Some(family_id) => SealedKind::ProviderCredential { family_id },
        None => SealedKind::RefreshSuccessor { token_hash: r.hash("token_hash")? },
    };
    Ok(SealedValue { kind, sealed: r.text("sealed")? })
}

/// A registration's sealed secret, as `sealed_with_other_keys` reads them.
pub(crate) fn registration_sealed_value(r: &dyn Columns) -> Result<SealedValue, StoreError> {
    let kind = SealedKind::UpstreamRegistration { server: r.text("server")?, issuer: r.text("issuer")? };
    Ok(SealedValue { kind, sealed: r.text("sealed")? })
}

/// What `pin_tools` reads first: a tool and the definition it is settled on (the pending
/// change if there is one, else the pin).
pub(crate) fn settled_tool(r: &dyn Columns) -> Result<(String, String), StoreError> {
    let settled = match r.opt_text("changed_digest")? {
        Some(changed) => changed,
        None => r.text("digest")?,
    };
    Ok((r.text("tool")?, settled))
}
