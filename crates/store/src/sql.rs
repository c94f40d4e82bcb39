//! The SQL implementation of [`Store`], for SQLite (the embedded default) and PostgreSQL.
//!
//! Both databases run the very same statements through sqlx's `Any` driver: the
//! statements use `$n` parameters, which both understand, and only the DDL differs (see
//! `migrations`). One implementation means the two backends cannot drift apart in
//! semantics, and the behaviour suite proves it on both.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_core::client::{Client, ClientMetadata};
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use crate::migrations::{Dialect, MIGRATIONS};
use crate::model::*;
use crate::{Retention, Store, StoreError};

pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

/// Classifies a database failure by what the caller can do about it: wait and retry
/// (`Unavailable`, a 503), or not (`Duplicate`, `Internal`).
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
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

fn hash_col(row: &AnyRow, col: &str) -> Result<TokenHash, StoreError> {
    let bytes: Vec<u8> = row.try_get(col)?;
    TokenHash::from_slice(&bytes).ok_or_else(|| StoreError::Internal(format!("{col} is not a 32-byte hash")))
}

fn status_col(row: &AnyRow, col: &str) -> Result<FamilyStatus, StoreError> {
    let s: String = row.try_get(col)?;
    FamilyStatus::parse(&s).ok_or_else(|| StoreError::Internal(format!("unknown family status {s:?}")))
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>>(
    row: &'r AnyRow,
    col: &str,
) -> Result<T, StoreError> {
    Ok(row.try_get(col)?)
}

fn blob(h: &TokenHash) -> Vec<u8> {
    h.as_bytes().to_vec()
}

impl SqlStore {
    /// Connects to `url` (`sqlite://path` or `postgres://…`), creating the database
    /// file if needed, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if url.starts_with("sqlite:") {
            if let Some(dir) = sqlite_path(url).and_then(|p| std::path::Path::new(p).parent())
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
            }
            // Create the file on first start unless the URL says otherwise.
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_owned())
        } else {
            return Err(StoreError::Internal(format!(
                "unsupported storage URL scheme in {:?}: use sqlite:// or postgres://",
                url.split(':').next().unwrap_or("")
            )));
        };
        let options = sqlx::any::AnyConnectOptions::from_str(&url)?;

        let mut pool = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(5));
        pool = match dialect {
            Dialect::Sqlite => pool.max_connections(8).after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL lets readers proceed during a write; the busy timeout makes a
                    // writer wait for the lock instead of failing; foreign keys are off
                    // by default in SQLite and our cascades need them.
                    conn.execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                        .await?;
                    Ok(())
                })
            }),
            Dialect::Postgres => pool.max_connections(16),
        };
        let pool = pool.connect_with(options).await?;
        if dialect == Dialect::Sqlite {
            // Persistent in the file; set once.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        let store = Self { pool, dialect };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.dialect == Dialect::Postgres {
            // Replicas starting together: one migrates, the others wait and then see
            // the migrations applied.
            tx.execute("SELECT pg_advisory_xact_lock(7243610283746)").await?;
        }
        tx.execute(
            self.dialect
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
            tx.execute(self.dialect.render(migration).as_str()).await?;
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
    async fn row_by_hash(&self, sql: &str, hash: &TokenHash) -> Result<Option<AnyRow>, StoreError> {
        Ok(sqlx::query(sql).bind(blob(hash)).fetch_optional(&self.pool).await?)
    }

    async fn insert_pair(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        family_id: &str,
        pair: &NewTokenPair,
    ) -> Result<(), StoreError> {
        let access = Some(("access_tokens", &pair.access_hash, pair.access_expires_at));
        let refresh = pair.refresh.as_ref().map(|(hash, exp)| ("refresh_tokens", hash, *exp));
        for (table, hash, expires_at) in access.into_iter().chain(refresh) {
            sqlx::query(&format!(
                "INSERT INTO {table} (token_hash, family_id, client_id, scope, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)"
            ))
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
    fn backend(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_client(&self, server: &str, client_id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, secret_hash, metadata, created_at FROM clients WHERE server = $1 AND client_id = $2",
        )
        .bind(server)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let secret: Option<Vec<u8>> = get(&row, "secret_hash")?;
        let metadata: String = get(&row, "metadata")?;
        let metadata: ClientMetadata =
            serde_json::from_str(&metadata).map_err(|e| StoreError::Internal(format!("client metadata: {e}")))?;
        Ok(Some(Client {
            client_id: get(&row, "client_id")?,
            secret_hash: secret.as_deref().and_then(TokenHash::from_slice),
            metadata,
            trusted: false,
            created_at: get(&row, "created_at")?,
        }))
    }

    async fn insert_pending(&self, p: &PendingAuthorization) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pending_authorizations (state_hash, browser_hash, server, client_id, redirect_uri, scope, resource, \
             code_challenge, client_state, upstream_verifier, nonce, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_pending(
        &self,
        state_hash: &TokenHash,
        browser_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM pending_authorizations WHERE state_hash = $1 AND browser_hash = $2 AND expires_at > $3 \
             RETURNING state_hash, browser_hash, server, client_id, redirect_uri, scope, resource, code_challenge, \
             client_state, upstream_verifier, nonce, expires_at",
        )
        .bind(blob(state_hash))
        .bind(blob(browser_hash))
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(PendingAuthorization {
            state_hash: hash_col(&row, "state_hash")?,
            browser_hash: hash_col(&row, "browser_hash")?,
            server: get(&row, "server")?,
            client_id: get(&row, "client_id")?,
            redirect_uri: get(&row, "redirect_uri")?,
            scope: get(&row, "scope")?,
            resource: get(&row, "resource")?,
            code_challenge: get(&row, "code_challenge")?,
            client_state: get(&row, "client_state")?,
            upstream_verifier: get(&row, "upstream_verifier")?,
            nonce: get(&row, "nonce")?,
            expires_at: get(&row, "expires_at")?,
        }))
    }

    async fn create_family(&self, f: &NewFamily, code: &NewCode) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO families (id, server, client_id, subject, scope, resource, status, upstream_sealed, \
             upstream_expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $9)",
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
        let row = self
            .row_by_hash(
            "SELECT c.family_id, f.server, c.client_id, c.redirect_uri, c.code_challenge, f.scope, c.expires_at, c.used_at \
             FROM authorization_codes c JOIN families f ON f.id = c.family_id WHERE c.code_hash = $1",
                hash,
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let used_at: Option<i64> = get(&row, "used_at")?;
        Ok(Some(StoredCode {
            family_id: get(&row, "family_id")?,
            server: get(&row, "server")?,
            client_id: get(&row, "client_id")?,
            redirect_uri: get(&row, "redirect_uri")?,
            code_challenge: get(&row, "code_challenge")?,
            scope: get(&row, "scope")?,
            expires_at: get(&row, "expires_at")?,
            used: used_at.is_some(),
        }))
    }

    async fn redeem_code(&self, hash: &TokenHash, now: i64, pair: &NewTokenPair) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The write comes first in the transaction, so SQLite takes its write lock at
        // once and two redemptions serialise here; exactly one sees `used_at IS NULL`.
        let row = sqlx::query(
            "UPDATE authorization_codes SET used_at = $2 \
             WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             AND EXISTS (SELECT 1 FROM families f WHERE f.id = authorization_codes.family_id AND f.status = 'active') \
             RETURNING family_id",
        )
        .bind(blob(hash))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let family_id: String = get(&row, "family_id")?;
        Self::insert_pair(&mut tx, &family_id, pair).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_refresh_token(&self, hash: &TokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        let row = self
            .row_by_hash(
                "SELECT r.family_id, f.server, r.client_id, r.scope, r.expires_at, r.superseded_at, f.status \
             FROM refresh_tokens r JOIN families f ON f.id = r.family_id WHERE r.token_hash = $1",
                hash,
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(StoredRefreshToken {
            family_id: get(&row, "family_id")?,
            server: get(&row, "server")?,
            client_id: get(&row, "client_id")?,
            scope: get(&row, "scope")?,
            expires_at: get(&row, "expires_at")?,
            superseded_at: get(&row, "superseded_at")?,
            family_status: status_col(&row, "status")?,
        }))
    }

    async fn rotate_refresh_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: i64,
        grace_secs: i64,
        pair: &NewTokenPair,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The condition is `judge_refresh(..).rotates()`, written in SQL. COALESCE keeps
        // the first supersession time, so the grace window never slides.
        let row = sqlx::query(
            "UPDATE refresh_tokens SET superseded_at = COALESCE(superseded_at, $2) \
             WHERE token_hash = $1 AND client_id = $3 AND expires_at > $2 \
             AND (superseded_at IS NULL OR superseded_at >= $2 - $4) \
             AND EXISTS (SELECT 1 FROM families f WHERE f.id = refresh_tokens.family_id AND f.status = 'active') \
             RETURNING family_id",
        )
        .bind(blob(hash))
        .bind(now)
        .bind(client_id)
        .bind(grace_secs)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let family_id: String = get(&row, "family_id")?;
        Self::insert_pair(&mut tx, &family_id, pair).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn end_family(&self, family_id: &str, status: FamilyStatus, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE families SET status = $2, ended_at = $3 WHERE id = $1 AND status = 'active'")
            .bind(family_id)
            .bind(status.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_access_token(&self, hash: &TokenHash) -> Result<Option<AccessTokenInfo>, StoreError> {
        let row = self
            .row_by_hash(
            "SELECT a.family_id, f.server, a.client_id, f.subject, a.scope, f.resource, a.expires_at, a.revoked_at, f.status, \
             f.upstream_sealed, f.upstream_expires_at \
             FROM access_tokens a JOIN families f ON f.id = a.family_id WHERE a.token_hash = $1",
                hash,
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let revoked_at: Option<i64> = get(&row, "revoked_at")?;
        Ok(Some(AccessTokenInfo {
            family_id: get(&row, "family_id")?,
            server: get(&row, "server")?,
            client_id: get(&row, "client_id")?,
            subject: get(&row, "subject")?,
            scope: get(&row, "scope")?,
            resource: get(&row, "resource")?,
            expires_at: get(&row, "expires_at")?,
            revoked: revoked_at.is_some(),
            family_status: status_col(&row, "status")?,
            upstream_sealed: get(&row, "upstream_sealed")?,
            upstream_expires_at: get(&row, "upstream_expires_at")?,
        }))
    }

    async fn revoke_access_token(&self, hash: &TokenHash, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE access_tokens SET revoked_at = $2 WHERE token_hash = $1 AND revoked_at IS NULL")
            .bind(blob(hash))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn upstream_credential(&self, family_id: &str) -> Result<Option<UpstreamCredential>, StoreError> {
        let row = sqlx::query("SELECT id, upstream_sealed, upstream_expires_at, status FROM families WHERE id = $1")
            .bind(family_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(UpstreamCredential {
            family_id: get(&row, "id")?,
            sealed: get(&row, "upstream_sealed")?,
            expires_at: get(&row, "upstream_expires_at")?,
            family_status: status_col(&row, "status")?,
        }))
    }

    async fn take_refresh_lease(&self, family_id: &str, now: i64, lease_secs: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE families SET refresh_lease_until = $2 + $3 \
             WHERE id = $1 AND status = 'active' AND (refresh_lease_until IS NULL OR refresh_lease_until <= $2)",
        )
        .bind(family_id)
        .bind(now)
        .bind(lease_secs)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn store_upstream_credential(
        &self,
        family_id: &str,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE families SET upstream_sealed = $2, upstream_expires_at = $3, refresh_lease_until = NULL WHERE id = $1",
        )
        .bind(family_id)
        .bind(sealed)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_refresh_lease(&self, family_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE families SET refresh_lease_until = NULL WHERE id = $1")
            .bind(family_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_expired(&self, now: i64, retention: Retention) -> Result<Purged, StoreError> {
        let run = |sql: &'static str, at: i64| {
            let pool = self.pool.clone();
            async move { Ok::<_, StoreError>(sqlx::query(sql).bind(at).execute(&pool).await?.rows_affected()) }
        };
        Ok(Purged {
            pending: run("DELETE FROM pending_authorizations WHERE expires_at <= $1", now).await?,
            codes: run("DELETE FROM authorization_codes WHERE expires_at <= $1", now - retention.used_code_secs).await?,
            access_tokens: run("DELETE FROM access_tokens WHERE expires_at <= $1", now).await?,
            refresh_tokens: run("DELETE FROM refresh_tokens WHERE expires_at <= $1", now).await?,
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
    use super::sqlite_path;
    use crate::StoreError;

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

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://./data/proxy.db"), Some("./data/proxy.db"));
        assert_eq!(sqlite_path("sqlite:///var/lib/p.db?mode=rwc"), Some("/var/lib/p.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
