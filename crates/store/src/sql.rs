//! The SQL implementation of [`Store`], for SQLite (the embedded default) and PostgreSQL.
//!
//! Both databases run the very same statements through sqlx's `Any` driver: the
//! statements use `$n` parameters, which both understand, and only the DDL differs (see
//! `migrations`). One implementation means the two backends cannot drift apart in
//! semantics, and the behaviour suite proves it on both.
//!
//! Rows are decoded with `sqlx::FromRow`: straight into the model where a result is the
//! model (the queries alias columns to the field names), or through a private row struct
//! here where a column becomes something else (a timestamp read as a flag, JSON text).

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_core::client::{Client, ClientMetadata};
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::{TokenHash, random_id};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, FromRow};

use crate::migrations::MIGRATIONS;
use crate::model::*;
use crate::sqlite_direct::Direct;
use crate::statements;
use crate::{Backend, Retention, Rotation, Store, StoreError};

pub struct SqlStore {
    /// On SQLite (always a file), the refresh grant's statements without sqlx's hand-offs.
    direct: Option<Direct>,
    /// For reads (and everything on PostgreSQL).
    pool: AnyPool,
    /// For writes: on SQLite one connection, so that writers of this process queue in
    /// order for it instead of meeting the database's write lock, where SQLite's busy
    /// handler would make them sleep and retry (the long tail of a write-heavy load);
    /// on PostgreSQL the same pool, whose row locks serialise what must be serialised.
    writer: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("backend", &self.backend).finish_non_exhaustive()
    }
}

/// Classifies a database failure by what the caller can do about it: wait and retry
/// (`Unavailable`, a 503), or not (`Duplicate`, `Internal`).
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let classified = classify(e);
        crate::count_error(&classified);
        classified
    }
}

fn classify(e: sqlx::Error) -> StoreError {
    {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(db) => {
                if db.is_unique_violation() {
                    return StoreError::Duplicate(db.message().to_owned());
                }
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLite: 5 BUSY, 6 LOCKED (the busy timeout ran out), and their extended
                // codes 517 BUSY_SNAPSHOT and 262 LOCKED_SHAREDCACHE.
                // PostgreSQL: class 08 connection exceptions, 57P0x shutdowns, 53 resources.
                if matches!(code.as_str(), "5" | "6" | "517" | "262")
                    || code.starts_with("08")
                    || code.starts_with("57P")
                    || code.starts_with("53")
                {
                    StoreError::Unavailable(e.to_string())
                } else {
                    StoreError::Internal(e.to_string())
                }
            }
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// The file path inside a `sqlite:` URL, to create its folder.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Creates the SQLite file readable by the proxy's user alone (0600) if it does not exist
/// yet: it holds token hashes and sealed provider credentials, and SQLite would create it
/// 0644 (less the umask). SQLite gives its `-wal` and `-shm` files the database file's
/// mode. A file that exists keeps the mode its operator gave it.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))),
    }
}

/// PostgreSQL's rotation as one statement: one round trip instead of five (BEGIN, the
/// UPDATE, two INSERTs, COMMIT), which were most of the proxy's CPU time per refresh on
/// PostgreSQL. One statement is atomic by itself, and its UPDATE still takes the row lock
/// on which racing rotations serialise. SQLite has no data-modifying WITH, and in one
/// process pays no round trips (see `sqlite_direct`): it runs `statements::ROTATE` and the
/// inserts in one transaction. $6.. are the new pair: access hash, client id, scope,
/// issued at, access expiry, refresh hash (NULL for none), refresh expiry.
static PG_ROTATE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH rotated AS ({}), \
         access AS (INSERT INTO access_tokens (token_hash, family_id, client_id, scope, issued_at, expires_at) \
                    SELECT $6, family_id, $7, $8, $9, $10 FROM rotated), \
         refresh AS (INSERT INTO refresh_tokens (token_hash, family_id, client_id, scope, issued_at, expires_at) \
                    SELECT $11, family_id, $7, $8, $9, $12 FROM rotated WHERE $11 IS NOT NULL) \
         SELECT family_id FROM rotated",
        statements::ROTATE
    )
});

/// A replay within the grace window on PostgreSQL, with its new access token (of the
/// successor's scope), in one statement; $5 access hash, $6 client id, $7 issued at,
/// $8 access expiry.
static PG_REPLAY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH replay AS ({}), \
         access AS (INSERT INTO access_tokens (token_hash, family_id, client_id, scope, issued_at, expires_at) \
                    SELECT $5, family_id, $6, successor_scope, $7, $8 FROM replay) \
         SELECT family_id, successor_sealed FROM replay",
        statements::REPLAYED_SUCCESSOR
    )
});

/// A `clients` row; the metadata is stored as JSON text.
#[derive(FromRow)]
struct ClientRow {
    client_id: String,
    secret_hash: Option<Vec<u8>>,
    metadata: String,
    created_at: i64,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        let metadata: ClientMetadata =
            serde_json::from_str(&row.metadata).map_err(|e| StoreError::Internal(format!("client metadata: {e}")))?;
        // A hash that cannot be read is an error like any other unreadable column: read as
        // "no secret", it would turn a confidential client into a public one.
        let secret_hash = row
            .secret_hash
            .map(TokenHash::try_from)
            .transpose()
            .map_err(|e| StoreError::Internal(format!("client secret_hash: {e}")))?;
        Ok(Client { client_id: row.client_id, secret_hash, metadata, trusted: false, created_at: row.created_at })
    }
}

// The two flags below are computed here and not in SQL (`used_at IS NOT NULL AS used`)
// because the Any driver decodes a value by the type the database reports for it:
// PostgreSQL reports a BOOLEAN, SQLite an INTEGER, which Any refuses to read as a bool.

/// An authorization code joined with its family.
#[derive(FromRow)]
struct CodeRow {
    family_id: String,
    server: String,
    client_id: String,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    expires_at: i64,
    used_at: Option<i64>,
    trace_id: Option<String>,
}

impl From<CodeRow> for StoredCode {
    fn from(row: CodeRow) -> Self {
        StoredCode {
            family_id: row.family_id,
            server: row.server,
            client_id: row.client_id,
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            scope: row.scope,
            expires_at: row.expires_at,
            used: row.used_at.is_some(),
            trace_id: row.trace_id,
        }
    }
}

/// An access token joined with its family.
#[derive(FromRow)]
struct AccessTokenRow {
    family_id: String,
    server: String,
    client_id: String,
    subject: String,
    scope: String,
    resource: String,
    expires_at: i64,
    revoked_at: Option<i64>,
    #[sqlx(try_from = "String")]
    family_status: FamilyStatus,
    upstream_sealed: String,
    upstream_expires_at: Option<i64>,
    trace_id: Option<String>,
}

impl From<AccessTokenRow> for AccessTokenInfo {
    fn from(row: AccessTokenRow) -> Self {
        AccessTokenInfo {
            family_id: row.family_id,
            server: row.server,
            client_id: row.client_id,
            subject: row.subject,
            scope: row.scope,
            resource: row.resource,
            expires_at: row.expires_at,
            revoked: row.revoked_at.is_some(),
            family_status: row.family_status,
            upstream_sealed: row.upstream_sealed,
            upstream_expires_at: row.upstream_expires_at,
            trace_id: row.trace_id,
        }
    }
}

/// Records what one tool's sighting changes, as one conditional statement: pins a tool seen
/// for the first time; records a definition that differs from the pin and from the pending
/// change as the pending change; clears the pending change of a tool seen with its pinned
/// definition again. Anything else (the pin again with nothing pending, the pending change
/// again) writes nothing and returns no row. Racing sightings of one change serialise on the
/// row (the SQLite write lock, the PostgreSQL row lock that ON CONFLICT takes), and the later
/// finds the change already recorded: exactly one statement returns it.
/// Returns the row's `changed_digest`: non-NULL exactly when this statement recorded a change.
/// $1 server, $2 tool, $3 digest, $4 definition, $5 now.
const PIN_TOOL: &str = "INSERT INTO tool_pins (server, tool, digest, definition, pinned_at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (server, tool) DO UPDATE SET \
     changed_digest = CASE WHEN tool_pins.digest = excluded.digest THEN NULL ELSE excluded.digest END, \
     changed_definition = CASE WHEN tool_pins.digest = excluded.digest THEN NULL ELSE excluded.definition END, \
     changed_at = CASE WHEN tool_pins.digest = excluded.digest THEN NULL ELSE excluded.pinned_at END \
     WHERE (tool_pins.digest = excluded.digest AND tool_pins.changed_digest IS NOT NULL) \
     OR (tool_pins.digest <> excluded.digest \
         AND (tool_pins.changed_digest IS NULL OR tool_pins.changed_digest <> excluded.digest)) \
     RETURNING changed_digest";

/// A `tool_pins` row; the three `changed_*` columns are written and cleared together.
#[derive(FromRow)]
struct ToolPinRow {
    server: String,
    tool: String,
    digest: String,
    definition: String,
    pinned_at: i64,
    changed_digest: Option<String>,
    changed_definition: Option<String>,
    changed_at: Option<i64>,
}

impl TryFrom<ToolPinRow> for ToolPin {
    type Error = StoreError;

    fn try_from(row: ToolPinRow) -> Result<Self, StoreError> {
        let changed = match (row.changed_digest, row.changed_definition, row.changed_at) {
            (Some(digest), Some(definition), Some(seen_at)) => Some(ToolChange { digest, definition, seen_at }),
            (None, None, None) => None,
            _ => {
                return Err(StoreError::Internal(format!(
                    "tool pin {}/{}: a pending change with some of its columns missing",
                    row.server, row.tool
                )));
            }
        };
        Ok(ToolPin {
            server: row.server,
            tool: row.tool,
            digest: row.digest,
            definition: row.definition,
            pinned_at: row.pinned_at,
            changed,
        })
    }
}

fn blob(h: &TokenHash) -> Vec<u8> {
    h.as_bytes().to_vec()
}

impl SqlStore {
    /// The connection pool, for whole-database work beside the `Store` operations
    /// (moving to another database).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Connects to `url` (`sqlite://path` or `postgres://…`), creating the database
    /// file if needed, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::for_url(url).ok_or_else(|| {
            StoreError::Internal(format!(
                "unsupported storage URL scheme in {:?}: use sqlite:// or postgres://",
                url.split(':').next().unwrap_or("")
            ))
        })?;
        let url = match backend {
            Backend::Sqlite => {
                // Each connection would open a database of its own.
                if sqlite_path(url).is_none() {
                    return Err(StoreError::Internal(
                        "an in-memory SQLite database cannot be shared by the proxy's connections: name a file, \
                         as in sqlite://data/proxy.db"
                            .into(),
                    ));
                }
                if let Some(dir) = sqlite_path(url).and_then(|p| std::path::Path::new(p).parent())
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
                }
                // The file is created (below, with mode=rwc) unless the URL says otherwise.
                let creates = !url.contains("mode=") || url.contains("mode=rwc");
                if let Some(path) = sqlite_path(url).filter(|_| creates) {
                    create_private(std::path::Path::new(path))?;
                }
                // Create the file on first start unless the URL says otherwise.
                if url.contains("mode=") {
                    url.to_owned()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            Backend::Postgres => url.to_owned(),
        };
        let options = sqlx::any::AnyConnectOptions::from_str(&url)?;

        let pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        let (pool, writer) = match backend {
            Backend::Sqlite => {
                let sqlite = |pool: AnyPoolOptions, connections| {
                    pool.max_connections(connections).after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL lets readers proceed during a write. The busy timeout
                            // makes a writer from another process (the admin command
                            // line) wait for the lock instead of failing. Foreign keys
                            // are off by default in SQLite and our cascades need them.
                            // synchronous = NORMAL under WAL syncs at checkpoints, not at
                            // each commit: a commit is atomic and the database consistent
                            // after any crash, and one the operating system had not yet
                            // written out when the machine itself lost power is rolled
                            // back (a process crash loses nothing). The rolled-back
                            // rotation's client still holds its previous refresh token,
                            // which the database then still holds as current.
                            conn.execute(
                                "PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                };
                let writer = sqlite(pool.clone(), 1).connect_with(options.clone()).await?;
                // Persistent in the file; set once, before the readers connect.
                writer.execute("PRAGMA journal_mode = WAL").await?;
                (sqlite(pool, 4).connect_with(options).await?, writer)
            }
            Backend::Postgres => {
                let pool = pool.max_connections(16).connect_with(options).await?;
                (pool.clone(), pool)
            }
        };
        let direct = match backend {
            Backend::Sqlite => sqlite_path(&url).map(|path| Direct::open(std::path::Path::new(path))).transpose()?,
            Backend::Postgres => None,
        };
        let store = Self { direct, pool, writer, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        if self.backend == Backend::Postgres {
            // Replicas starting together: one migrates, the others wait and then see
            // the migrations applied.
            tx.execute("SELECT pg_advisory_xact_lock(7243610283746)").await?;
        }
        tx.execute(
            self.backend
                .render("CREATE TABLE IF NOT EXISTS mop_schema_migrations (version {int} PRIMARY KEY, applied_at {int} NOT NULL)")
                .as_str(),
        )
        .await?;
        let applied: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM mop_schema_migrations")
            .fetch_one(&mut *tx)
            .await?;
        if applied as usize > MIGRATIONS.len() {
            return Err(StoreError::Internal(format!(
                "the database schema (version {applied}) is newer than this binary (version {}): upgrade the binary",
                MIGRATIONS.len()
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let version = i as i64 + 1;
            tx.execute(self.backend.render(migration).as_str()).await?;
            sqlx::query("INSERT INTO mop_schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(mcp_oauth_core::Clock::now(&mcp_oauth_core::SystemClock))
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "applied database migration");
        }
        Ok(tx.commit().await?)
    }

    /// The one row a token-hash lookup finds, if any.
    async fn row_by_hash<T>(&self, sql: &str, hash: &TokenHash) -> Result<Option<T>, StoreError>
    where
        T: for<'r> FromRow<'r, AnyRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(sql).bind(blob(hash)).fetch_optional(&self.pool).await?)
    }

    async fn insert_pair(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        family_id: &str,
        pair: &NewTokenPair,
    ) -> Result<(), StoreError> {
        let access = Some(("access_tokens", &pair.access_hash, pair.access_expires_at));
        let refresh = pair.refresh.as_ref().map(|(hash, exp)| ("refresh_tokens", hash, *exp));
        for (table, hash, expires_at) in access.into_iter().chain(refresh) {
            sqlx::query(&statements::insert_token(table))
                .bind(blob(hash))
                .bind(family_id)
                .bind(&pair.client_id)
                .bind(&pair.scope)
                .bind(pair.issued_at)
                .bind(expires_at)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_client(&self, server: &str, client: &Client) -> Result<(), StoreError> {
        let metadata = serde_json::to_string(&client.metadata).map_err(|e| StoreError::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO clients (server, client_id, secret_hash, metadata, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(server)
        .bind(&client.client_id)
        .bind(client.secret_hash.as_ref().map(blob))
        .bind(metadata)
        .bind(client.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_client(&self, server: &str, client_id: &str) -> Result<Option<Client>, StoreError> {
        let row: Option<ClientRow> = sqlx::query_as(
            "SELECT client_id, secret_hash, metadata, created_at FROM clients WHERE server = $1 AND client_id = $2",
        )
        .bind(server)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(Client::try_from).transpose()
    }

    async fn insert_pending(&self, p: &PendingAuthorization, now: i64, caps: PendingCaps) -> Result<bool, StoreError> {
        // One statement: the counts and the insert cannot be told apart by another writer
        // on SQLite; on PostgreSQL two concurrent logins may both pass, which bounds the
        // overshoot by the concurrency of one browser or address.
        let done = sqlx::query(
            "INSERT INTO pending_authorizations (state_hash, browser_hash, server, client_id, redirect_uri, scope, resource, \
             code_challenge, client_state, upstream_verifier, nonce, expires_at, trace_id, address) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $15, $16 \
             WHERE (SELECT COUNT(*) FROM pending_authorizations WHERE browser_hash = $2 AND expires_at > $13) < $14 \
             AND (SELECT COUNT(*) FROM pending_authorizations WHERE address = $16 AND expires_at > $13) < $17",
        )
        .bind(blob(&p.state_hash))
        .bind(blob(&p.browser_hash))
        .bind(&p.server)
        .bind(&p.client_id)
        .bind(&p.redirect_uri)
        .bind(&p.scope)
        .bind(&p.resource)
        .bind(&p.code_challenge)
        .bind(p.client_state.as_deref())
        .bind(&p.upstream_verifier)
        .bind(p.nonce.as_deref())
        .bind(p.expires_at)
        .bind(now)
        .bind(caps.per_browser)
        .bind(p.trace_id.as_deref())
        .bind(p.address.as_deref())
        .bind(caps.per_address)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_pending(
        &self,
        state_hash: &TokenHash,
        browser_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        Ok(sqlx::query_as(
            "DELETE FROM pending_authorizations WHERE state_hash = $1 AND browser_hash = $2 AND expires_at > $3 \
             RETURNING state_hash, browser_hash, server, client_id, redirect_uri, scope, resource, code_challenge, \
             client_state, upstream_verifier, nonce, expires_at, trace_id",
        )
        .bind(blob(state_hash))
        .bind(blob(browser_hash))
        .bind(now)
        .fetch_optional(&self.writer)
        .await?)
    }

    async fn create_family(&self, f: &NewFamily, code: &NewCode) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO families (id, server, client_id, subject, scope, resource, status, upstream_sealed, \
             upstream_expires_at, created_at, trace_id) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9, $10)",
        )
        .bind(&f.id)
        .bind(&f.server)
        .bind(&f.client_id)
        .bind(&f.subject)
        .bind(&f.scope)
        .bind(&f.resource)
        .bind(&f.upstream_sealed)
        .bind(f.upstream_expires_at)
        .bind(f.created_at)
        .bind(f.trace_id.as_deref())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO authorization_codes (code_hash, family_id, client_id, redirect_uri, code_challenge, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(blob(&code.hash))
        .bind(&code.family_id)
        .bind(&code.client_id)
        .bind(&code.redirect_uri)
        .bind(&code.code_challenge)
        .bind(code.expires_at)
        .execute(&mut *tx)
        .await?;
        Ok(tx.commit().await?)
    }

    async fn find_code(&self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        let row: Option<CodeRow> = self
            .row_by_hash(
                "SELECT c.family_id, f.server, c.client_id, c.redirect_uri, c.code_challenge, f.scope, c.expires_at, \
                 c.used_at, f.trace_id FROM authorization_codes c JOIN families f ON f.id = c.family_id \
                 WHERE c.code_hash = $1",
                hash,
            )
            .await?;
        Ok(row.map(StoredCode::from))
    }

    async fn redeem_code(&self, hash: &TokenHash, now: i64, pair: &NewTokenPair) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        // The write comes first in the transaction, so SQLite takes its write lock at
        // once and two redemptions serialise here; exactly one sees `used_at IS NULL`.
        let family_id: Option<String> = sqlx::query_scalar(
            "UPDATE authorization_codes SET used_at = $2 \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND EXISTS (SELECT 1 FROM families f WHERE f.id = authorization_codes.family_id AND f.status = 'active') \
             RETURNING family_id",
        )
        .bind(blob(hash))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(family_id) = family_id else {
            return Ok(false);
        };
        Self::insert_pair(&mut tx, &family_id, pair).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_refresh_token(&self, hash: &TokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        if let Some(direct) = &self.direct {
            return direct.find_refresh_token(hash);
        }
        self.row_by_hash(statements::FIND_REFRESH_TOKEN, hash).await
    }

    async fn rotate_refresh_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: i64,
        grace_secs: i64,
        pair: &NewTokenPair,
        successor_sealed: &str,
    ) -> Result<Rotation, StoreError> {
        if let Some(direct) = &self.direct {
            return direct.rotate_refresh_token(hash, client_id, now, grace_secs, pair, successor_sealed).await;
        }
        // PostgreSQL (SQLite goes through `direct`, always there for a file database).
        let (refresh_hash, refresh_expires_at) = pair.refresh.as_ref().map(|(h, e)| (blob(h), *e)).unzip();
        let rotated: Option<String> = sqlx::query_scalar(&PG_ROTATE)
            .bind(blob(hash))
            .bind(now)
            .bind(client_id)
            .bind(grace_secs)
            .bind(successor_sealed)
            .bind(blob(&pair.access_hash))
            .bind(&pair.client_id)
            .bind(&pair.scope)
            .bind(pair.issued_at)
            .bind(pair.access_expires_at)
            .bind(refresh_hash)
            .bind(refresh_expires_at)
            .fetch_optional(&self.writer)
            .await?;
        if rotated.is_some() {
            return Ok(Rotation::Rotated);
        }
        // A replay within the grace window, and a new access token beside it. A statement
        // of its own, so that it sees a rotation that raced ours and has committed.
        let replay: Option<(String, String)> = sqlx::query_as(&PG_REPLAY)
            .bind(blob(hash))
            .bind(now)
            .bind(client_id)
            .bind(grace_secs)
            .bind(blob(&pair.access_hash))
            .bind(&pair.client_id)
            .bind(pair.issued_at)
            .bind(pair.access_expires_at)
            .fetch_optional(&self.writer)
            .await?;
        Ok(match replay {
            Some((_, successor_sealed)) => Rotation::Replayed { successor_sealed },
            None => Rotation::Refused,
        })
    }

    async fn end_family(&self, family_id: &str, status: FamilyStatus, now: i64) -> Result<bool, StoreError> {
        let sql = self.backend.render(
            "UPDATE families SET status = $2, ended_at = $3, ended_db_at = {db_now} WHERE id = $1 AND status = 'active'",
        );
        let done = sqlx::query(&sql).bind(family_id).bind(status.as_str()).bind(now).execute(&self.writer).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_access_token(&self, hash: &TokenHash) -> Result<Option<AccessTokenInfo>, StoreError> {
        let row: Option<AccessTokenRow> = self
            .row_by_hash(
                "SELECT a.family_id, f.server, a.client_id, f.subject, a.scope, f.resource, a.expires_at, a.revoked_at, \
                 f.status AS family_status, f.upstream_sealed, f.upstream_expires_at, f.trace_id \
                 FROM access_tokens a JOIN families f ON f.id = a.family_id WHERE a.token_hash = $1",
                hash,
            )
            .await?;
        Ok(row.map(AccessTokenInfo::from))
    }

    async fn revoke_access_token(&self, hash: &TokenHash, now: i64) -> Result<bool, StoreError> {
        let sql = self.backend.render(
            "UPDATE access_tokens SET revoked_at = $2, revoked_db_at = {db_now} WHERE token_hash = $1 AND revoked_at IS NULL",
        );
        let done = sqlx::query(&sql).bind(blob(hash)).bind(now).execute(&self.writer).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn upstream_credential(&self, family_id: &str) -> Result<Option<UpstreamCredential>, StoreError> {
        if let Some(direct) = &self.direct {
            return direct.upstream_credential(family_id);
        }
        Ok(sqlx::query_as(statements::UPSTREAM_CREDENTIAL).bind(family_id).fetch_optional(&self.pool).await?)
    }

    async fn take_refresh_lease(&self, family_id: &str, lease_secs: i64) -> Result<Option<Lease>, StoreError> {
        let holder = random_id();
        let sql = self.backend.render(
            "UPDATE families SET refresh_lease_until = {db_now} + $2, refresh_lease_holder = $3 \
             WHERE id = $1 AND status = 'active' AND (refresh_lease_until IS NULL OR refresh_lease_until <= {db_now})",
        );
        let done = sqlx::query(&sql).bind(family_id).bind(lease_secs).bind(&holder).execute(&self.writer).await?;
        Ok((done.rows_affected() == 1).then(|| Lease { family_id: family_id.to_owned(), holder }))
    }

    async fn store_upstream_credential(
        &self,
        lease: &Lease,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE families SET upstream_sealed = $3, upstream_expires_at = $4, \
             refresh_lease_until = NULL, refresh_lease_holder = NULL WHERE id = $1 AND refresh_lease_holder = $2",
        )
        .bind(&lease.family_id)
        .bind(&lease.holder)
        .bind(sealed)
        .bind(expires_at)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_refresh_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE families SET refresh_lease_until = NULL, refresh_lease_holder = NULL \
             WHERE id = $1 AND refresh_lease_holder = $2",
        )
        .bind(&lease.family_id)
        .bind(&lease.holder)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            server: String,
            #[sqlx(flatten)]
            client: ClientRow,
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT server, client_id, secret_hash, metadata, created_at FROM clients ORDER BY created_at DESC, client_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| Ok(RegisteredClient { server: r.server, client: Client::try_from(r.client)? }))
            .collect()
    }

    async fn delete_client(&self, client_id: &str, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let sql = self.backend.render(
            "UPDATE families SET status = 'revoked', ended_at = $2, ended_db_at = {db_now} \
             WHERE client_id = $1 AND status = 'active'",
        );
        sqlx::query(&sql).bind(client_id).bind(now).execute(&mut *tx).await?;
        let deleted = sqlx::query("DELETE FROM clients WHERE client_id = $1").bind(client_id).execute(&mut *tx).await?;
        sqlx::query("UPDATE mop_changes SET generation = generation + 1 WHERE id = 1").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(deleted.rows_affected())
    }

    async fn list_grants(&self, filter: &GrantFilter, limit: i64) -> Result<Vec<GrantSummary>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT f.id, f.server, f.client_id, f.subject, f.created_at, f.upstream_expires_at, f.status, \
             (SELECT MAX(a.issued_at) FROM access_tokens a WHERE a.family_id = f.id) AS last_issued_at \
             FROM families f \
             WHERE ($1 IS NULL OR f.id = $1) AND ($2 IS NULL OR f.subject = $2) \
             AND ($3 IS NULL OR f.client_id = $3) AND ($4 IS NULL OR f.server = $4) \
             ORDER BY f.created_at DESC, f.id LIMIT $5",
        )
        .bind(filter.grant_id.as_deref())
        .bind(filter.subject.as_deref())
        .bind(filter.client_id.as_deref())
        .bind(filter.server.as_deref())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revoke_grants(&self, filter: &GrantFilter, now: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let sql = self.backend.render(
            "UPDATE families SET status = 'revoked', ended_at = $5, ended_db_at = {db_now} WHERE status = 'active' \
             AND ($1 IS NULL OR id = $1) AND ($2 IS NULL OR subject = $2) \
             AND ($3 IS NULL OR client_id = $3) AND ($4 IS NULL OR server = $4)",
        );
        let done = sqlx::query(&sql)
            .bind(filter.grant_id.as_deref())
            .bind(filter.subject.as_deref())
            .bind(filter.client_id.as_deref())
            .bind(filter.server.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE mop_changes SET generation = generation + 1 WHERE id = 1").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn revocations_since(&self, since: i64) -> Result<RevokedSince, StoreError> {
        // The clock first: what commits after the two reads below is stamped no earlier
        // than (about) this, and so is found by the next call, whose `since` the caller
        // takes from it, less an overlap.
        let now: i64 = sqlx::query_scalar(&self.backend.render("SELECT {db_now}")).fetch_one(&self.pool).await?;
        let grants: Vec<String> = sqlx::query_scalar("SELECT id FROM families WHERE ended_db_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM access_tokens WHERE revoked_db_at >= $1")
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        let access_tokens = hashes
            .into_iter()
            .map(|h| TokenHash::try_from(h).map_err(|e| StoreError::Internal(format!("access token hash: {e}"))))
            .collect::<Result<_, _>>()?;
        Ok(RevokedSince { now, grants, access_tokens })
    }

    async fn changes(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT generation FROM mop_changes WHERE id = 1").fetch_one(&self.pool).await?)
    }

    async fn pin_tools(&self, server: &str, seen: &[SeenTool], now: i64) -> Result<Vec<String>, StoreError> {
        // One sighting per name, in one order for every caller: the transaction below holds
        // each row it writes until it commits, and two callers taking the same rows in
        // different orders could deadlock on PostgreSQL.
        let mut seen: Vec<&SeenTool> = seen.iter().collect();
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        seen.dedup_by(|later, first| later.name == first.name);

        // Nearly every answer lists what is already recorded (the pin with nothing pending, or
        // the pending change again), for which `PIN_TOOL` writes nothing: read first and leave
        // those out, so that the common case costs a read instead of a write transaction (on
        // SQLite, a turn of the one writer). Leaving out a tool read as settled is the same as
        // running its no-op statement at the time of the read; every write decides by itself.
        let pins: Vec<(String, String, Option<String>)> =
            sqlx::query_as("SELECT tool, digest, changed_digest FROM tool_pins WHERE server = $1")
                .bind(server)
                .fetch_all(&self.pool)
                .await?;
        let settled: std::collections::HashSet<(&str, &str)> =
            pins.iter().map(|(tool, digest, changed)| (tool.as_str(), changed.as_deref().unwrap_or(digest))).collect();
        seen.retain(|t| !settled.contains(&(t.name.as_str(), t.digest.as_str())));
        if seen.is_empty() {
            return Ok(Vec::new());
        }

        let mut recorded = Vec::new();
        let mut tx = self.writer.begin().await?;
        for tool in seen {
            let changed: Option<Option<String>> = sqlx::query_scalar(PIN_TOOL)
                .bind(server)
                .bind(&tool.name)
                .bind(&tool.digest)
                .bind(&tool.definition)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(Some(_)) = changed {
                recorded.push(tool.name.clone());
            }
        }
        tx.commit().await?;
        Ok(recorded)
    }

    async fn tool_pins(&self, server: Option<&str>) -> Result<Vec<ToolPin>, StoreError> {
        let rows: Vec<ToolPinRow> = sqlx::query_as(
            "SELECT server, tool, digest, definition, pinned_at, changed_digest, changed_definition, changed_at \
             FROM tool_pins WHERE ($1 IS NULL OR server = $1)",
        )
        .bind(server)
        .fetch_all(&self.pool)
        .await?;
        let mut pins = rows.into_iter().map(ToolPin::try_from).collect::<Result<Vec<_>, _>>()?;
        // Sorted here, by bytes, rather than by ORDER BY, whose order on PostgreSQL is the
        // database's collation: both backends list in the same order.
        pins.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        Ok(pins)
    }

    async fn changed_tools(&self, server: &str) -> Result<Vec<String>, StoreError> {
        let mut tools: Vec<String> =
            sqlx::query_scalar("SELECT tool FROM tool_pins WHERE server = $1 AND changed_digest IS NOT NULL")
                .bind(server)
                .fetch_all(&self.pool)
                .await?;
        tools.sort();
        Ok(tools)
    }

    async fn accept_tool_change(
        &self,
        server: &str,
        tool: &str,
        expected_digest: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        // The right-hand sides read the row as it was: the pending change moves into the pin.
        let done = sqlx::query(
            "UPDATE tool_pins SET digest = changed_digest, definition = changed_definition, pinned_at = $4, \
             changed_digest = NULL, changed_definition = NULL, changed_at = NULL \
             WHERE server = $1 AND tool = $2 AND changed_digest IS NOT NULL AND ($3 IS NULL OR changed_digest = $3)",
        )
        .bind(server)
        .bind(tool)
        .bind(expected_digest)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn sealed_key_usage(&self) -> Result<Vec<(String, i64)>, StoreError> {
        // Sealed values read `v1.<8 hex digits of key id>.<body>`.
        Ok(sqlx::query_as(
            "SELECT key_id, COUNT(*) AS n FROM ( \
               SELECT SUBSTR(upstream_sealed, 4, 8) AS key_id FROM families \
               UNION ALL SELECT SUBSTR(successor_sealed, 4, 8) FROM refresh_tokens WHERE successor_sealed IS NOT NULL \
             ) sealed GROUP BY key_id ORDER BY key_id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn sealed_with_other_keys(&self, current_key_id: &str, limit: i64) -> Result<Vec<SealedValue>, StoreError> {
        let families: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, upstream_sealed FROM families WHERE SUBSTR(upstream_sealed, 4, 8) <> $1 LIMIT $2",
        )
        .bind(current_key_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let successors: Vec<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT token_hash, successor_sealed FROM refresh_tokens \
             WHERE successor_sealed IS NOT NULL AND SUBSTR(successor_sealed, 4, 8) <> $1 LIMIT $2",
        )
        .bind(current_key_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<SealedValue> = families
            .into_iter()
            .map(|(family_id, sealed)| SealedValue { kind: SealedKind::ProviderCredential { family_id }, sealed })
            .collect();
        for (hash, sealed) in successors {
            let token_hash = TokenHash::try_from(hash).map_err(|e| StoreError::Internal(e.to_string()))?;
            out.push(SealedValue { kind: SealedKind::RefreshSuccessor { token_hash }, sealed });
        }
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }

    async fn reseal(&self, value: &SealedValue, resealed: &str) -> Result<bool, StoreError> {
        let done =
            match &value.kind {
                SealedKind::ProviderCredential { family_id } => {
                    sqlx::query("UPDATE families SET upstream_sealed = $3 WHERE id = $1 AND upstream_sealed = $2")
                        .bind(family_id)
                        .bind(&value.sealed)
                        .bind(resealed)
                        .execute(&self.writer)
                        .await?
                }
                SealedKind::RefreshSuccessor { token_hash } => sqlx::query(
                    "UPDATE refresh_tokens SET successor_sealed = $3 WHERE token_hash = $1 AND successor_sealed = $2",
                )
                .bind(blob(token_hash))
                .bind(&value.sealed)
                .bind(resealed)
                .execute(&self.writer)
                .await?,
            };
        Ok(done.rows_affected() == 1)
    }

    async fn purge_expired(&self, now: i64, retention: Retention) -> Result<Purged, StoreError> {
        let run = |sql: &'static str, at: i64| {
            let pool = self.writer.clone();
            async move { Ok::<_, StoreError>(sqlx::query(sql).bind(at).execute(&pool).await?.rows_affected()) }
        };
        Ok(Purged {
            pending: run("DELETE FROM pending_authorizations WHERE expires_at <= $1", now).await?,
            codes: run("DELETE FROM authorization_codes WHERE expires_at <= $1", now - retention.used_code_secs).await?,
            access_tokens: run("DELETE FROM access_tokens WHERE expires_at <= $1", now).await?,
            refresh_tokens: run("DELETE FROM refresh_tokens WHERE expires_at <= $1", now).await?,
            successors: run(
                "UPDATE refresh_tokens SET successor_sealed = NULL, successor_scope = NULL \
                 WHERE successor_sealed IS NOT NULL AND superseded_at < $1",
                now - retention.refresh_grace_secs,
            )
            .await?,
            // A family lives while anything refers to it; it is created together with
            // its code, so there is no moment at which a new family looks orphaned.
            families: run(
                "DELETE FROM families WHERE created_at <= $1 \
                 AND NOT EXISTS (SELECT 1 FROM authorization_codes c WHERE c.family_id = families.id) \
                 AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = families.id) \
                 AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = families.id)",
                now,
            )
            .await?,
            clients: run(
                "DELETE FROM clients WHERE created_at <= $1 \
                 AND NOT EXISTS (SELECT 1 FROM families f WHERE f.server = clients.server AND f.client_id = clients.client_id)",
                now - retention.idle_client_secs,
            )
            .await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use mcp_oauth_core::token::{TokenHash, random_id};

    use super::{SqlStore, blob, sqlite_path};
    use crate::{Store, StoreError};

    /// A database error with a given code, as a driver would report it.
    #[derive(Debug)]
    struct Coded(&'static str, bool);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "code {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            if self.1 { sqlx::error::ErrorKind::UniqueViolation } else { sqlx::error::ErrorKind::Other }
        }
    }

    fn classify(code: &'static str, unique: bool) -> StoreError {
        sqlx::Error::Database(Box::new(Coded(code, unique))).into()
    }

    #[test]
    fn errors_are_classified_by_what_the_caller_can_do() {
        // SQLite BUSY/LOCKED and their extended codes; PostgreSQL connection, shutdown
        // and resource classes: the database will answer again, so a 503.
        for code in ["5", "6", "517", "262", "08006", "57P01", "53300"] {
            assert!(matches!(classify(code, false), StoreError::Unavailable(_)), "{code}");
        }
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(std::io::ErrorKind::Other.into())]
        {
            assert!(matches!(StoreError::from(e), StoreError::Unavailable(_)));
        }
        assert!(matches!(classify("2067", true), StoreError::Duplicate(_)));
        assert!(matches!(classify("23505", true), StoreError::Duplicate(_)));
        for code in ["1", "19", "42P01", "23503"] {
            assert!(matches!(classify(code, false), StoreError::Internal(_)), "{code}");
        }
        assert!(matches!(StoreError::from(sqlx::Error::RowNotFound), StoreError::Internal(_)));
    }

    /// A stored value this version cannot read is an error, never a guess: a family status
    /// it does not know must not read as some status it does, nor a client secret hash of
    /// the wrong length as "no secret".
    #[tokio::test]
    async fn unreadable_columns_are_internal_errors() {
        let dir = std::env::temp_dir().join(format!("mop-sql-{}", random_id()));
        let store = SqlStore::connect(&format!("sqlite://{}/t.db", dir.display())).await.unwrap();
        let token = TokenHash::of("t");
        sqlx::query(
            "INSERT INTO families (id, server, client_id, subject, scope, resource, status, upstream_sealed, created_at) \
             VALUES ('f', 's', 'c', 'u', 'mcp', 'r', 'frozen', 'sealed', 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        for table in ["refresh_tokens", "access_tokens"] {
            sqlx::query(&format!(
                "INSERT INTO {table} (token_hash, family_id, client_id, scope, issued_at, expires_at) \
                 VALUES ($1, 'f', 'c', 'mcp', 0, 1)"
            ))
            .bind(blob(&token))
            .execute(&store.pool)
            .await
            .unwrap();
        }
        assert!(matches!(store.find_refresh_token(&token).await, Err(StoreError::Internal(_))));
        assert!(matches!(store.find_access_token(&token).await, Err(StoreError::Internal(_))));
        assert!(matches!(store.upstream_credential("f").await, Err(StoreError::Internal(_))));

        let metadata = mcp_oauth_core::client::ClientMetadata::from_registration(
            &serde_json::json!({"redirect_uris": ["https://a.example/cb"]}),
        )
        .unwrap();
        for (client_id, secret_hash) in [("good", vec![0u8; 32]), ("short", vec![0u8; 5])] {
            sqlx::query(
                "INSERT INTO clients (server, client_id, secret_hash, metadata, created_at) VALUES ('s', $1, $2, $3, 0)",
            )
            .bind(client_id)
            .bind(secret_hash)
            .bind(serde_json::to_string(&metadata).unwrap())
            .execute(&store.pool)
            .await
            .unwrap();
        }
        assert!(store.find_client("s", "good").await.unwrap().unwrap().secret_hash.is_some());
        assert!(matches!(store.find_client("s", "short").await, Err(StoreError::Internal(_))));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://./data/proxy.db"), Some("./data/proxy.db"));
        assert_eq!(sqlite_path("sqlite:///var/lib/p.db?mode=rwc"), Some("/var/lib/p.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused_with_what_to_do() {
        match SqlStore::connect("sqlite::memory:").await {
            Err(StoreError::Internal(message)) => assert!(message.contains("name a file"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
