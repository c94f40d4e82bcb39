//! The PostgreSQL store: the database replicas share, on `sqlx::PgPool`.
//!
//! - `statements`: every statement, in PostgreSQL's dialect; the refresh rotation and a
//!   replay are one statement each (a data-modifying `WITH`): one round trip, atomic by
//!   itself, serialised on the refresh token's row lock.
//! - `rows`: reading sqlx rows (the models are built in `decode`).
//!
//! No token cache: another replica's revocation must be seen at once. No group commit
//! either: a write here is one round trip on a pooled connection, and its commit is the
//! server's work, which PostgreSQL already groups across connections (WAL flushes
//! serve every commit waiting for them); batching writes from one process into one
//! transaction would save no round trip, hold row locks across unrelated callers, and
//! make one caller's failure everyone's.

mod rows;
mod statements;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::{TokenHash, random_id};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use self::rows::decode as row;
use self::statements as sql;
use crate::decode;
use crate::migrations::MIGRATIONS;
use crate::model::*;
use crate::{AssertionUse, Backend, Retention, Rotation, Store, StoreError};

pub struct PgStore {
    pool: PgPool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

/// Classifies a database failure by what the caller can do about it: wait and retry
/// (`Unavailable`, a 503), or not (`Duplicate`, `Internal`); and counts it.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let classified = classify(e);
        crate::count_error(&classified);
        classified
    }
}

fn classify(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(e.to_string())
        }
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Duplicate(db.message().to_owned());
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // Class 08 connection exceptions, 57P0x shutdowns, 53 resources.
            if code.starts_with("08") || code.starts_with("57P") || code.starts_with("53") {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Internal(e.to_string())
            }
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

fn blob(h: &TokenHash) -> &[u8] {
    h.as_bytes()
}

impl PgStore {
    /// The connection pool, for whole-database work beside the `Store` operations
    /// (moving into this database).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connects to a `postgres://` URL and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .max_connections(16)
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        tx.execute(sql::MIGRATION_LOCK).await?;
        tx.execute(sql::CREATE_MIGRATIONS_TABLE).await?;
        let applied: i64 = sqlx::query_scalar(sql::APPLIED_MIGRATIONS).fetch_one(&mut *tx).await?;
        if applied as usize > MIGRATIONS.len() {
            return Err(StoreError::Internal(format!(
                "the database schema (version {applied}) is newer than this binary (version {}): upgrade the binary",
                MIGRATIONS.len()
            )));
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
            let version = i as i64 + 1;
            tx.execute(Backend::Postgres.render(migration).as_str()).await?;
            sqlx::query(sql::RECORD_MIGRATION)
                .bind(version)
                .bind(mcp_oauth_core::Clock::now(&mcp_oauth_core::SystemClock))
                .execute(&mut *tx)
                .await?;
            tracing::info!(version, "applied database migration");
        }
        Ok(tx.commit().await?)
    }

    /// Issues `pair` into `family_id` within `tx`.
    /// A new grant's row: by a login (with its code) or at the token endpoint (with its
    /// tokens).
    async fn insert_family(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, f: &NewFamily) -> Result<(), StoreError> {
        sqlx::query(sql::INSERT_FAMILY)
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
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn insert_pair(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        family_id: &str,
        pair: &NewTokenPair,
    ) -> Result<(), StoreError> {
        let access = Some((sql::INSERT_ACCESS_TOKEN, &pair.access_hash, pair.access_expires_at));
        let refresh = pair.refresh.as_ref().map(|(hash, exp)| (sql::INSERT_REFRESH_TOKEN, hash, *exp));
        for (statement, hash, expires_at) in access.into_iter().chain(refresh) {
            sqlx::query(statement)
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

    /// Runs a counted change (see `Store::changes`) with its statement, in one transaction.
    async fn counted_change<'q>(
        &self,
        statements: Vec<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>>,
    ) -> Result<Vec<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut affected = Vec::with_capacity(statements.len());
        for statement in statements {
            affected.push(statement.execute(&mut *tx).await?.rows_affected());
        }
        sqlx::query(sql::COUNT_CHANGE).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(affected)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql::PING).execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_client(&self, server: &str, client: &Client) -> Result<(), StoreError> {
        let metadata = serde_json::to_string(&client.metadata).map_err(|e| StoreError::Internal(e.to_string()))?;
        sqlx::query(sql::INSERT_CLIENT)
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
        let found = sqlx::query(sql::FIND_CLIENT).bind(server).bind(client_id).fetch_optional(&self.pool).await?;
        found.map(|r| row(&r, decode::client)).transpose()
    }

    async fn insert_pending(&self, p: &PendingAuthorization, now: i64, caps: PendingCaps) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::INSERT_PENDING)
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
            .bind(p.broker.as_deref())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_pending(
        &self,
        state_hash: &TokenHash,
        browser_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let taken = sqlx::query(sql::TAKE_PENDING)
            .bind(blob(state_hash))
            .bind(blob(browser_hash))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        taken.map(|r| row(&r, decode::pending)).transpose()
    }

    async fn insert_upstream_registration(&self, r: &UpstreamRegistration) -> Result<UpstreamRegistration, StoreError> {
        let stored = sqlx::query(sql::INSERT_UPSTREAM_REGISTRATION)
            .bind(&r.server)
            .bind(&r.issuer)
            .bind(&r.client_id)
            .bind(r.secret_sealed.as_deref())
            .bind(r.created_at)
            .fetch_one(&self.pool)
            .await?;
        row(&stored, decode::upstream_registration)
    }

    async fn upstream_registration(
        &self,
        server: &str,
        issuer: &str,
    ) -> Result<Option<UpstreamRegistration>, StoreError> {
        let found =
            sqlx::query(sql::FIND_UPSTREAM_REGISTRATION).bind(server).bind(issuer).fetch_optional(&self.pool).await?;
        found.map(|r| row(&r, decode::upstream_registration)).transpose()
    }

    async fn create_family(&self, f: &NewFamily, code: &NewCode) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::insert_family(&mut tx, f).await?;
        sqlx::query(sql::INSERT_CODE)
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
        let found = sqlx::query(sql::FIND_CODE).bind(blob(hash)).fetch_optional(&self.pool).await?;
        found.map(|r| row(&r, decode::code)).transpose()
    }

    async fn redeem_code(&self, hash: &TokenHash, now: i64, pair: &NewTokenPair) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The write comes first in the transaction, so two redemptions serialise on the
        // code's row lock; exactly one sees `used_at IS NULL`.
        let family_id: Option<String> =
            sqlx::query_scalar(sql::REDEEM_CODE).bind(blob(hash)).bind(now).fetch_optional(&mut *tx).await?;
        let Some(family_id) = family_id else {
            return Ok(false);
        };
        Self::insert_pair(&mut tx, &family_id, pair).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn issue_grant(&self, f: &NewFamily, pair: &NewTokenPair) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::insert_family(&mut tx, f).await?;
        Self::insert_pair(&mut tx, &f.id, pair).await?;
        Ok(tx.commit().await?)
    }

    async fn use_assertion(
        &self,
        issuer: &str,
        jti_hash: &TokenHash,
        expires_at: i64,
        now: i64,
        cap: i64,
    ) -> Result<AssertionUse, StoreError> {
        let done = sqlx::query(sql::USE_ASSERTION)
            .bind(issuer)
            .bind(blob(jti_hash))
            .bind(expires_at)
            .bind(now)
            .bind(cap)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 1 {
            return Ok(AssertionUse::First);
        }
        let used: Option<i32> = sqlx::query_scalar(sql::ASSERTION_USED)
            .bind(issuer)
            .bind(blob(jti_hash))
            .fetch_optional(&self.pool)
            .await?;
        Ok(if used.is_some() { AssertionUse::Replay } else { AssertionUse::Full })
    }

    async fn find_refresh_token(&self, hash: &TokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        let found = sqlx::query(sql::FIND_REFRESH_TOKEN).bind(blob(hash)).fetch_optional(&self.pool).await?;
        found.map(|r| row(&r, decode::refresh_token)).transpose()
    }

    async fn rotate_refresh_token(&self, r: RefreshRotation<'_>) -> Result<Rotation, StoreError> {
        let (refresh_hash, refresh_expires_at) = r.pair.refresh.as_ref().map(|(h, e)| (blob(h), *e)).unzip();
        let rotated: Option<String> = sqlx::query_scalar(sql::ROTATE)
            .bind(blob(r.hash))
            .bind(r.now)
            .bind(r.client_id)
            .bind(r.successor_sealed)
            .bind(&r.pair.scope)
            .bind(blob(&r.pair.access_hash))
            .bind(&r.pair.client_id)
            .bind(r.pair.issued_at)
            .bind(r.pair.access_expires_at)
            .bind(refresh_hash)
            .bind(refresh_expires_at)
            .fetch_optional(&self.pool)
            .await?;
        if rotated.is_some() {
            return Ok(Rotation::Rotated);
        }
        // A replay within the grace window, and a new access token beside it. A statement
        // of its own, so that it sees a rotation that raced ours and has committed.
        let replay: Option<String> = sqlx::query_scalar(sql::REPLAY)
            .bind(blob(r.hash))
            .bind(r.now)
            .bind(r.client_id)
            .bind(r.grace_secs)
            .bind(blob(&r.pair.access_hash))
            .bind(&r.pair.client_id)
            .bind(r.pair.issued_at)
            .bind(r.pair.access_expires_at)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match replay {
            Some(successor_sealed) => Rotation::Replayed { successor_sealed },
            None => Rotation::Refused,
        })
    }

    async fn end_family(&self, family_id: &str, status: FamilyStatus, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query(sql::END_FAMILY).bind(family_id).bind(status.as_str()).bind(now).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_access_token(&self, hash: &TokenHash) -> Result<Option<Arc<AccessTokenInfo>>, StoreError> {
        let found = sqlx::query(sql::FIND_ACCESS_TOKEN).bind(blob(hash)).fetch_optional(&self.pool).await?;
        Ok(found.map(|r| row(&r, decode::access_token)).transpose()?.map(Arc::new))
    }

    async fn revoke_access_token(&self, hash: &TokenHash, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::REVOKE_ACCESS_TOKEN).bind(blob(hash)).bind(now).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn upstream_credential(&self, family_id: &str) -> Result<Option<UpstreamCredential>, StoreError> {
        let found = sqlx::query(sql::UPSTREAM_CREDENTIAL).bind(family_id).fetch_optional(&self.pool).await?;
        found.map(|r| row(&r, decode::upstream)).transpose()
    }

    async fn take_refresh_lease(&self, family_id: &str, lease_secs: i64) -> Result<Option<Lease>, StoreError> {
        let holder = random_id();
        let done = sqlx::query(sql::TAKE_REFRESH_LEASE)
            .bind(family_id)
            .bind(lease_secs)
            .bind(&holder)
            .execute(&self.pool)
            .await?;
        Ok((done.rows_affected() == 1).then(|| Lease { family_id: family_id.to_owned(), holder }))
    }

    async fn store_upstream_credential(
        &self,
        lease: &Lease,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::STORE_UPSTREAM_CREDENTIAL)
            .bind(&lease.family_id)
            .bind(&lease.holder)
            .bind(sealed)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_refresh_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(sql::RELEASE_REFRESH_LEASE).bind(&lease.family_id).bind(&lease.holder).execute(&self.pool).await?;
        Ok(())
    }

    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        let rows = sqlx::query(sql::LIST_CLIENTS).fetch_all(&self.pool).await?;
        rows.iter().map(|r| row(r, decode::registered_client)).collect()
    }

    async fn delete_client(&self, client_id: &str, now: i64) -> Result<u64, StoreError> {
        let affected = self
            .counted_change(vec![
                sqlx::query(sql::REVOKE_CLIENT_GRANTS).bind(client_id).bind(now),
                sqlx::query(sql::DELETE_CLIENT).bind(client_id),
            ])
            .await?;
        Ok(affected[1])
    }

    async fn list_grants(&self, filter: &GrantFilter, limit: i64) -> Result<Vec<GrantSummary>, StoreError> {
        let rows = sqlx::query(sql::LIST_GRANTS)
            .bind(filter.grant_id.as_deref())
            .bind(filter.subject.as_deref())
            .bind(filter.client_id.as_deref())
            .bind(filter.server.as_deref())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| row(r, decode::grant)).collect()
    }

    async fn record_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        let (ids, times): (Vec<&str>, Vec<i64>) = uses.iter().map(|(id, at)| (id.as_str(), *at)).unzip();
        sqlx::query(sql::RECORD_USES).bind(ids).bind(times).execute(&self.pool).await?;
        Ok(())
    }

    async fn revoke_grants(&self, filter: &GrantFilter, now: i64) -> Result<u64, StoreError> {
        let affected = self
            .counted_change(vec![
                sqlx::query(sql::REVOKE_GRANTS)
                    .bind(filter.grant_id.as_deref())
                    .bind(filter.subject.as_deref())
                    .bind(filter.client_id.as_deref())
                    .bind(filter.server.as_deref())
                    .bind(now),
            ])
            .await?;
        Ok(affected[0])
    }

    async fn revocations_since(&self, since: i64) -> Result<RevokedSince, StoreError> {
        // The clock first: what commits after the two reads below is stamped no earlier
        // than (about) this, and so is found by the next call, whose `since` the caller
        // takes from it, less an overlap.
        let now: i64 = sqlx::query_scalar(sql::DB_NOW).fetch_one(&self.pool).await?;
        let grants: Vec<String> = sqlx::query_scalar(sql::GRANTS_ENDED_SINCE).bind(since).fetch_all(&self.pool).await?;
        let hashes = sqlx::query(sql::TOKENS_REVOKED_SINCE).bind(since).fetch_all(&self.pool).await?;
        let access_tokens = hashes.iter().map(|r| row(r, |r| r.hash("token_hash"))).collect::<Result<_, _>>()?;
        Ok(RevokedSince { now, grants, access_tokens })
    }

    async fn changes(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(sql::CHANGES).fetch_one(&self.pool).await?)
    }

    async fn sealed_key_usage(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(sql::SEALED_KEY_USAGE).fetch_all(&self.pool).await?)
    }

    async fn sealed_with_other_keys(&self, current_key_id: &str, limit: i64) -> Result<Vec<SealedValue>, StoreError> {
        let mut out = Vec::new();
        for statement in [sql::FAMILIES_SEALED_WITH_OTHER_KEYS, sql::SUCCESSORS_SEALED_WITH_OTHER_KEYS] {
            let rows = sqlx::query(statement).bind(current_key_id).bind(limit).fetch_all(&self.pool).await?;
            for r in &rows {
                out.push(row(r, decode::sealed_value)?);
            }
        }
        let rows = sqlx::query(sql::REGISTRATIONS_SEALED_WITH_OTHER_KEYS)
            .bind(current_key_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            out.push(row(r, decode::registration_sealed_value)?);
        }
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }

    async fn reseal(&self, value: &SealedValue, resealed: &str) -> Result<bool, StoreError> {
        let statement = match &value.kind {
            SealedKind::ProviderCredential { family_id } => sqlx::query(sql::RESEAL_FAMILY).bind(family_id.as_str()),
            SealedKind::RefreshSuccessor { token_hash } => sqlx::query(sql::RESEAL_SUCCESSOR).bind(blob(token_hash)),
            SealedKind::UpstreamRegistration { server, issuer } => {
                sqlx::query(sql::RESEAL_REGISTRATION).bind(server.as_str()).bind(issuer.as_str())
            }
        };
        let done = statement.bind(&value.sealed).bind(resealed).execute(&self.pool).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn pin_tools(&self, server: &str, seen: &[SeenTool], now: i64) -> Result<Vec<String>, StoreError> {
        let settled = sqlx::query(sql::SETTLED_TOOLS).bind(server).fetch_all(&self.pool).await?;
        let settled = settled.iter().map(|r| row(r, decode::settled_tool)).collect::<Result<Vec<_>, _>>()?;
        // In one order for every caller: the transaction below holds each row it writes
        // until it commits.
        let seen = crate::unsettled(seen, &settled);
        if seen.is_empty() {
            return Ok(Vec::new());
        }

        let mut recorded = Vec::new();
        let mut tx = self.pool.begin().await?;
        for tool in seen {
            let changed: Option<Option<String>> = sqlx::query_scalar(sql::PIN_TOOL)
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
        let rows = sqlx::query(sql::TOOL_PINS).bind(server).fetch_all(&self.pool).await?;
        let mut pins = rows.iter().map(|r| row(r, decode::tool_pin)).collect::<Result<Vec<_>, _>>()?;
        // Sorted here, by bytes, rather than by ORDER BY, whose order is the database's
        // collation: both backends list in the same order.
        pins.sort_by(|a, b| (&a.server, &a.tool).cmp(&(&b.server, &b.tool)));
        Ok(pins)
    }

    async fn accept_tool_change(
        &self,
        server: &str,
        tool: &str,
        expected_digest: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::ACCEPT_TOOL_CHANGE)
            .bind(server)
            .bind(tool)
            .bind(expected_digest)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_expired(&self, now: i64, retention: Retention) -> Result<Purged, StoreError> {
        // Each statement commits by itself, so that no purge holds many rows locked for long.
        let cutoffs = retention.cutoffs(now);
        let mut n = [0u64; 8];
        for ((statement, cutoff), n) in sql::PURGE.iter().zip(cutoffs).zip(&mut n) {
            *n = sqlx::query(statement).bind(cutoff).execute(&self.pool).await?.rows_affected();
        }
        Ok(Purged::from(n))
    }
}

#[cfg(test)]
mod tests {
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
        // Connection, shutdown and resource classes: the database will answer again, so a
        // 503.
        for code in ["08006", "57P01", "53300"] {
            assert!(matches!(classify(code, false), StoreError::Unavailable(_)), "{code}");
        }
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed, sqlx::Error::Io(std::io::ErrorKind::Other.into())]
        {
            assert!(matches!(StoreError::from(e), StoreError::Unavailable(_)));
        }
        assert!(matches!(classify("23505", true), StoreError::Duplicate(_)));
        for code in ["1", "19", "42P01", "23503"] {
            assert!(matches!(classify(code, false), StoreError::Internal(_)), "{code}");
        }
        assert!(matches!(StoreError::from(sqlx::Error::RowNotFound), StoreError::Internal(_)));
    }
}
