//! Storage for mcp-oauth-proxy.
//!
//! One trait, [`Store`], whose operations are phrased as intents ("redeem this code",
//! "rotate this refresh token") rather than as reads and writes. Each operation is atomic
//! in the database: a code is consumed, or a refresh token rotated, by one conditional
//! statement, so two requests racing on two replicas cannot both win. The read-only
//! `find_*` operations exist so that the caller can decide (with the rules in
//! `mcp_oauth_core`) before it acts; they never stand in for the condition of a write.
//!
//! Where things are:
//! - here: the [`Store`] trait, [`StoreError`], [`Backend`], [`Retention`], and [`open`],
//!   which turns a `storage.url` into a ready store of the backend it names;
//! - [`model`]: what the operations take and return, free of any database driver;
//! - `sqlite`: [`SqliteStore`], one process's embedded database on rusqlite: a reader pool
//!   whose reads never wait on a serving thread, one group-commit writer thread for every
//!   write, and the token cache (`cache`) as a part of it;
//! - `postgres`: [`PgStore`], the database replicas share, on `sqlx::PgPool`, uncached;
//! - each backend has its statements in its own dialect (`statements.rs`) and reads its
//!   driver's rows (`rows.rs`); `decode` builds the models from either, once;
//! - `migrations`: the schema, one list of migrations rendered for each backend;
//! - [`copy`]: moving a SQLite database's state into PostgreSQL.
//!
//! The behaviour suite (tests/behaviour.rs) holds both backends to the same promises.

mod cache;
pub mod copy;
mod decode;
mod migrations;
pub mod model;
mod postgres;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;

pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; the request may succeed later (503).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A row would duplicate an existing one (a random id collided, which is an error
    /// in the random source, or a caller bug).
    #[error("duplicate row: {0}")]
    Duplicate(String),
    /// Anything else: a bug or a corrupted database.
    #[error("storage error: {0}")]
    Internal(String),
}

/// The database behind a store, chosen by the scheme of `storage.url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One process's embedded database (`sqlite:`).
    Sqlite,
    /// A server that replicas share (`postgres://` or `postgresql://`).
    Postgres,
}

impl Backend {
    /// The backend a storage URL names, or `None` for a scheme the store does not speak.
    pub fn for_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// Its name in logs and `check-config` output.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Database errors seen by this process, by kind: counted where every one is born (the
/// conversion from the driver's error), read by the metrics endpoint.
static UNAVAILABLE: AtomicU64 = AtomicU64::new(0);
static INTERNAL: AtomicU64 = AtomicU64::new(0);

fn count_error(e: &StoreError) {
    let counter = if matches!(e, StoreError::Unavailable(_)) { &UNAVAILABLE } else { &INTERNAL };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// (unavailable, other) database errors seen by this process since it started.
pub fn error_counts() -> (u64, u64) {
    (UNAVAILABLE.load(Ordering::Relaxed), INTERNAL.load(Ordering::Relaxed))
}

/// How long to keep rows that no longer grant anything but still carry meaning.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Used codes are kept this long past their expiry, so that a late replay is still
    /// recognised and revokes what the code issued.
    pub used_code_secs: i64,
    /// Dynamically registered clients with no grant are removed after this long: anyone
    /// may register, so what never led to a login must not be kept for long.
    pub idle_client_secs: i64,
    /// A rotated refresh token's sealed successor is forgotten this long after the
    /// rotation (the grace window), so it exists only while a replay may need it.
    pub refresh_grace_secs: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self { used_code_secs: 24 * 3600, idle_client_secs: 24 * 3600, refresh_grace_secs: 30 }
    }
}

impl Retention {
    /// The cut-off of each kind of row a purge at `now` deletes, in the order of
    /// [`Purged`]'s fields (and of each backend's `PURGE` statements): a row of that kind
    /// which expired at or before it (for successors, was superseded before it) goes.
    pub(crate) fn cutoffs(self, now: i64) -> [i64; 8] {
        [now, now - self.used_code_secs, now, now, now - self.refresh_grace_secs, now, now - self.idle_client_secs, now]
    }
}

impl From<[u64; 8]> for Purged {
    /// The rows each of a purge's statements removed, in the order of `Retention::cutoffs`.
    fn from(n: [u64; 8]) -> Self {
        let [pending, codes, access_tokens, refresh_tokens, successors, families, clients, assertions] = n;
        Self { pending, codes, access_tokens, refresh_tokens, successors, families, clients, assertions }
    }
}

/// What of `seen` [`Store::pin_tools`] must write: one sighting per name (the first), in
/// one order for every caller (a write that takes several rows takes them in that order,
/// so that two callers cannot deadlock), less those `settled` (tool, digest pairs read
/// first: the pin with nothing pending, or the pending change) records already.
///
/// Nearly every answer lists only what is recorded, for which the pinning statement would
/// write nothing: leaving those out makes the common case a read instead of a write.
/// Leaving out a tool read as settled is the same as running its no-op statement at the
/// time of the read; every write decides by itself.
pub(crate) fn unsettled<'a>(seen: &'a [SeenTool], settled: &[(String, String)]) -> Vec<&'a SeenTool> {
    let mut seen: Vec<&SeenTool> = seen.iter().collect();
    seen.sort_by(|a, b| a.name.cmp(&b.name));
    seen.dedup_by(|later, first| later.name == first.name);
    let settled: std::collections::HashSet<(&str, &str)> =
        settled.iter().map(|(tool, digest)| (tool.as_str(), digest.as_str())).collect();
    seen.retain(|t| !settled.contains(&(t.name.as_str(), t.digest.as_str())));
    seen
}

/// What remembering an assertion id found; see [`Store::use_assertion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionUse {
    First,
    Replay,
    Full,
}

/// What a rotation did; see [`Store::rotate_refresh_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    Replayed { successor_sealed: String },
    Refused,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Whether the database answers (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;

    async fn insert_client(&self, server: &str, client: &Client) -> Result<(), StoreError>;
    async fn find_client(&self, server: &str, client_id: &str) -> Result<Option<Client>, StoreError>;

    /// Stores a pending authorization unless its browser or its address already has as
    /// many unexpired ones as `caps` allow (anyone can start logins; each is a row).
    /// `false` when refused.
    async fn insert_pending(
        &self,
        pending: &PendingAuthorization,
        now: i64,
        caps: PendingCaps,
    ) -> Result<bool, StoreError>;
    /// Consumes a pending authorization exactly once. `None` when it does not exist, has
    /// expired, or was started in another browser (a different binding cookie) — in the
    /// last case it is left in place for its rightful browser.
    async fn take_pending(
        &self,
        state_hash: &TokenHash,
        browser_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StoreError>;

    /// Brokered OAuth: stores the proxy's registration at an MCP upstream's authorization
    /// server unless one for the same server and issuer exists, and returns the one stored
    /// (ours, or the one another replica stored first: every replica then uses it).
    async fn insert_upstream_registration(
        &self,
        registration: &UpstreamRegistration,
    ) -> Result<UpstreamRegistration, StoreError>;
    /// The registration stored for `server` at `issuer`, if any.
    async fn upstream_registration(
        &self,
        server: &str,
        issuer: &str,
    ) -> Result<Option<UpstreamRegistration>, StoreError>;

    /// Stores a new family together with the authorization code that will start it.
    async fn create_family(&self, family: &NewFamily, code: &NewCode) -> Result<(), StoreError>;
    async fn find_code(&self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError>;
    /// Marks the code used and issues the family's first token pair, atomically.
    /// `false` when the code was already used or has expired: another request won.
    async fn redeem_code(&self, hash: &TokenHash, now: i64, pair: &NewTokenPair) -> Result<bool, StoreError>;
    /// Stores a new family together with its first token pair, atomically: a grant made
    /// at the token endpoint alone (client credentials, an ID-JAG), with no code between.
    async fn issue_grant(&self, family: &NewFamily, pair: &NewTokenPair) -> Result<(), StoreError>;

    /// Remembers that the assertion `jti_hash` of `issuer` (an ID-JAG's IdP, a client
    /// assertion's client) was used, until `expires_at`: [`AssertionUse::First`] for
    /// exactly one caller across replicas, [`AssertionUse::Replay`] for every later one.
    /// [`AssertionUse::Full`] when `issuer` already has `cap` unexpired ones remembered:
    /// the table is bounded, so the assertion is refused rather than the table grown.
    async fn use_assertion(
        &self,
        issuer: &str,
        jti_hash: &TokenHash,
        expires_at: i64,
        now: i64,
        cap: i64,
    ) -> Result<AssertionUse, StoreError>;

    async fn find_refresh_token(&self, hash: &TokenHash) -> Result<Option<StoredRefreshToken>, StoreError>;
    /// Rotates a refresh token (`rotation.hash`, presented by `rotation.client_id`) exactly
    /// once, atomically, when `mcp_oauth_core::family::judge_refresh` would allow it:
    /// - the token is current: it is superseded, `pair` is issued into its family, and
    ///   `successor_sealed` (the caller's sealed copy of `pair`'s refresh token) is kept
    ///   with it for the grace window: [`Rotation::Rotated`];
    /// - the token was superseded within the grace window: only `pair`'s access token is
    ///   issued, and the successor the first rotation kept is returned:
    ///   [`Rotation::Replayed`]; no second refresh token (no second branch) exists;
    /// - otherwise nothing changes: [`Rotation::Refused`] (the caller reads the token back
    ///   to learn why).
    async fn rotate_refresh_token(&self, rotation: RefreshRotation<'_>) -> Result<Rotation, StoreError>;

    /// Ends an active family; every token in it stops working at once.
    /// `false` if it was not active.
    async fn end_family(&self, family_id: &str, status: FamilyStatus, now: i64) -> Result<bool, StoreError>;

    async fn find_access_token(&self, hash: &TokenHash) -> Result<Option<Arc<AccessTokenInfo>>, StoreError>;
    async fn revoke_access_token(&self, hash: &TokenHash, now: i64) -> Result<bool, StoreError>;

    async fn upstream_credential(&self, family_id: &str) -> Result<Option<UpstreamCredential>, StoreError>;

    /// Takes the right to refresh a family's provider credential for `lease_secs`, if
    /// nobody (on any replica) holds it. This is what makes an upstream refresh happen
    /// once when many requests, on many replicas, need it at the same moment. The lease
    /// runs on the database's clock, which replicas share (their own clocks may drift),
    /// and expires by itself, so a crashed holder cannot block the grant for long.
    async fn take_refresh_lease(&self, family_id: &str, lease_secs: i64) -> Result<Option<Lease>, StoreError>;
    /// Stores a refreshed provider credential and gives the lease back, if `lease` is
    /// still held. `false` when it ran out and another holder took over: this result must
    /// not overwrite theirs.
    async fn store_upstream_credential(
        &self,
        lease: &Lease,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Gives the lease back without a new credential (the refresh failed transiently).
    async fn release_refresh_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Records that grants were used at the given times (the MCP path's uses, batched and
    /// coarse): a grant's `last_used_at` moves forward, never back. Unknown grants are
    /// skipped.
    async fn record_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError>;

    /// Every dynamically registered client, newest first.
    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError>;
    /// Deletes a registration and ends its grants; the number of registrations deleted.
    async fn delete_client(&self, client_id: &str, now: i64) -> Result<u64, StoreError>;
    /// Grants matching `filter`, newest first (at most `limit`).
    async fn list_grants(&self, filter: &GrantFilter, limit: i64) -> Result<Vec<GrantSummary>, StoreError>;
    /// Ends the active grants matching `filter` (an operator's revocation); how many.
    /// Counted as a change from outside, so every process sees it (see `changes`).
    async fn revoke_grants(&self, filter: &GrantFilter, now: i64) -> Result<u64, StoreError>;
    /// The grants ended and access tokens revoked at or after `since`, and `now`, on the
    /// database's clock: replicas share it (their own clocks may drift apart), and each
    /// asks with the `now` of its previous call (less an overlap, for a revocation that
    /// committed during that call) to learn what to cut off that it holds open.
    async fn revocations_since(&self, since: i64) -> Result<RevokedSince, StoreError>;
    /// A counter that changes whenever another process (the admin command line) changed
    /// grants: a process that caches lookups forgets them when it moves.
    async fn changes(&self) -> Result<i64, StoreError>;

    /// How many stored values each encryption key sealed, by key id.
    async fn sealed_key_usage(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Up to `limit` stored sealed values whose key is not `current_key_id`.
    async fn sealed_with_other_keys(&self, current_key_id: &str, limit: i64) -> Result<Vec<SealedValue>, StoreError>;
    /// Replaces a sealed value by the same value sealed anew, if it is still as read:
    /// `false` when it changed meanwhile (a refresh stored a new credential, with the
    /// current key), which is as good.
    async fn reseal(&self, value: &SealedValue, resealed: &str) -> Result<bool, StoreError>;

    /// Pins the tools of `server` seen for the first time, and records a definition that
    /// differs from a tool's pin as its pending change. A tool seen again with its pinned
    /// definition has any pending change cleared (it is again what was approved). Returns the
    /// names of the tools whose change this call recorded (a new change, or a change to yet
    /// another definition), so that exactly one caller across replicas reports each change.
    /// A name listed twice counts once, with its first definition. Tools not in `seen` are
    /// left as they are (a server may list its tools in pages).
    async fn pin_tools(&self, server: &str, seen: &[SeenTool], now: i64) -> Result<Vec<String>, StoreError>;
    /// The pinned tools of `server` (every server when `None`), ordered by server then tool.
    async fn tool_pins(&self, server: Option<&str>) -> Result<Vec<ToolPin>, StoreError>;
    /// An operator's approval: the pending change becomes the pin, at `now`. With
    /// `expected_digest`, only if the pending change is still that definition (the one the
    /// operator looked at: the server may have changed the tool again meanwhile). `false`
    /// when the tool has no pending change, or another one than expected.
    async fn accept_tool_change(
        &self,
        server: &str,
        tool: &str,
        expected_digest: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Deletes what has expired. Safe to run on several replicas at once.
    async fn purge_expired(&self, now: i64, retention: Retention) -> Result<Purged, StoreError>;
}

/// How often a caching store looks for changes another process made (an operator's
/// revocation is honoured within this).
const OUTSIDE_CHANGES_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Opens the store a `storage.url` names, creating and migrating the database.
///
/// SQLite is one process's database, so its token lookups are cached in memory (see
/// `cache`), and another process's changes looked for every second; PostgreSQL is shared
/// by replicas, each of which must see another's revocation at once, so every lookup goes
/// to the database.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    match Backend::for_url(url) {
        Some(Backend::Sqlite) => {
            let store = SqliteStore::open(url).await?;
            store.watch_changes(OUTSIDE_CHANGES_CHECK).await;
            Ok(store as std::sync::Arc<dyn Store>)
        }
        Some(Backend::Postgres) => Ok(std::sync::Arc::new(PgStore::connect(url).await?)),
        None => Err(StoreError::Internal(format!(
            "unsupported storage URL scheme in {:?}: use sqlite:// or postgres://",
            url.split(':').next().unwrap_or("")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn the_url_scheme_names_the_backend() {
        assert_eq!(Backend::for_url("sqlite://./data/proxy.db"), Some(Backend::Sqlite));
        assert_eq!(Backend::for_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::for_url("postgres://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::for_url("postgresql://u@h/db"), Some(Backend::Postgres));
        assert_eq!(Backend::for_url("mysql://u@h/db"), None);
        // The names that logs and check-config print.
        assert_eq!(Backend::Sqlite.to_string(), "sqlite");
        assert_eq!(Backend::Postgres.as_str(), "postgres");
    }
}
