//! The SQLite store: one process's embedded database, on rusqlite.
//!
//! - `pool`: the connections. Reads run on the caller's thread on a connection that
//!   cannot wait, and on tokio's blocking pool when they would have to (see its header);
//!   every write goes to the one writer thread, which commits them in groups.
//! - `statements`: every statement, in SQLite's dialect.
//! - `rows`: reading rusqlite rows (the models are built in `decode`).
//! - the token cache (`cache`), a part of this store: `find_access_token` consults it,
//!   and every write here that can change a cached lookup forgets what it changed;
//!   another process's changes are seen by [`SqliteStore::watch_changes`].

mod pool;
mod rows;
mod statements;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcp_oauth_core::client::Client;
use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::{TokenHash, random_id};
use rusqlite::{Connection, params};

pub(crate) use self::pool::Failure;
use self::pool::{Readers, Writer};
use self::rows::{all, one};
use self::statements as sql;
use crate::cache::TokenCache;
use crate::migrations::MIGRATIONS;
use crate::model::*;
use crate::{AssertionUse, Backend, Retention, Rotation, Store, StoreError, decode};

pub struct SqliteStore {
    readers: Arc<Readers>,
    writer: Writer,
    tokens: TokenCache,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// The file path inside a `sqlite:` URL, and its query (SQLite's URI parameters), if any.
fn sqlite_path(url: &str) -> Option<(&str, Option<&str>)> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    (!path.is_empty() && path != ":memory:").then_some((path, query))
}

/// Creates the SQLite file readable by the proxy's user alone (0600) if it does not exist
/// yet: it holds token hashes and sealed provider credentials, and SQLite would create it
/// 0644 (less the umask). SQLite gives its `-wal` and `-shm` files the database file's
/// mode. A file that exists keeps the mode its operator gave it.
fn create_private(path: &Path) -> Result<(), StoreError> {
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

/// Applies the migrations not yet applied, in one transaction.
fn migrate(conn: &Connection) -> Result<(), Failure> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    conn.execute_batch(sql::CREATE_MIGRATIONS_TABLE)?;
    let applied: i64 = conn.query_row(sql::APPLIED_MIGRATIONS, [], |r| r.get(0))?;
    if applied as usize > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the database schema (version {applied}) is newer than this binary (version {}): upgrade the binary",
            MIGRATIONS.len()
        ))
        .into());
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        let version = i as i64 + 1;
        conn.execute_batch(&Backend::Sqlite.render(migration))?;
        conn.execute(sql::RECORD_MIGRATION, (version, mcp_oauth_core::Clock::now(&mcp_oauth_core::SystemClock)))?;
        tracing::info!(version, "applied database migration");
    }
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// Issues `pair` into `family_id`: its access token, and its refresh token if it has one.
/// A new grant's row: by a login (with its code) or at the token endpoint (with its tokens).
fn insert_family(conn: &Connection, f: &NewFamily) -> Result<(), Failure> {
    conn.prepare_cached(sql::INSERT_FAMILY)?.execute(params![
        f.id,
        f.server,
        f.client_id,
        f.subject,
        f.scope,
        f.resource,
        f.upstream_sealed,
        f.upstream_expires_at,
        f.created_at,
        f.trace_id,
    ])?;
    Ok(())
}

fn insert_pair(conn: &Connection, family_id: &str, pair: &NewTokenPair) -> Result<(), Failure> {
    let access = Some((sql::INSERT_ACCESS_TOKEN, &pair.access_hash, pair.access_expires_at));
    let refresh = pair.refresh.as_ref().map(|(hash, exp)| (sql::INSERT_REFRESH_TOKEN, hash, *exp));
    for (statement, hash, expires_at) in access.into_iter().chain(refresh) {
        conn.prepare_cached(statement)?.execute((
            hash.as_bytes(),
            family_id,
            &pair.client_id,
            &pair.scope,
            pair.issued_at,
            expires_at,
        ))?;
    }
    Ok(())
}

/// Runs one statement; whether it changed exactly one row.
fn changed_one(conn: &Connection, statement: &str, params: impl rusqlite::Params) -> Result<bool, Failure> {
    Ok(conn.prepare_cached(statement)?.execute(params)? == 1)
}

impl SqliteStore {
    /// Opens the database a `sqlite:` URL names, creating its file (and folder) if need
    /// be, and applies pending migrations. The cache does not yet see other processes'
    /// changes: [`crate::open`] starts [`Self::watch_changes`].
    pub async fn open(url: &str) -> Result<Arc<Self>, StoreError> {
        // Each connection would open a database of its own.
        let Some((path, query)) = sqlite_path(url) else {
            return Err(StoreError::Internal(
                "an in-memory SQLite database cannot be shared by the proxy's connections: name a file, \
                 as in sqlite://data/proxy.db"
                    .into(),
            ));
        };
        if let Some(dir) = Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        // The file is created unless the URL's parameters say otherwise; they are given to
        // SQLite as a URI's.
        let target = match query {
            Some(query) if query.contains("mode=") && !query.contains("mode=rwc") => format!("file:{path}?{query}"),
            Some(query) => {
                create_private(Path::new(path))?;
                format!("file:{path}?{query}")
            }
            None => {
                create_private(Path::new(path))?;
                path.to_owned()
            }
        };
        let target = Path::new(&target);
        let writer = pool::connect(target, pool::BUSY_TIMEOUT)?;
        // WAL lets readers proceed during a write; persistent in the file, set once, before
        // the readers connect.
        writer.execute_batch("PRAGMA journal_mode = WAL")?;
        migrate(&writer)?;
        Ok(Arc::new(Self {
            readers: Readers::open(target)?,
            writer: Writer::start(writer)?,
            tokens: TokenCache::default(),
        }))
    }

    /// Forgets every cached lookup when another process (the admin command line) has
    /// changed grants since the last look. Checked every `every` while the store lives,
    /// so such a change is seen within that time; a failed check is retried at the next.
    pub async fn watch_changes(self: &Arc<Self>, every: Duration) {
        // Read now, not at the first tick: a change made before then must count as one.
        let mut seen = self.changes().await.ok();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(store) = weak.upgrade() else { return };
                match store.changes().await {
                    Ok(now) if seen.is_some_and(|s| s != now) => {
                        store.tokens.forget_all();
                        seen = Some(now);
                    }
                    Ok(now) => seen = Some(now),
                    Err(e) => tracing::debug!(error = %e, "checking for outside changes failed; will retry"),
                }
            }
        });
    }

    /// Runs `read` on a reader connection (see `pool` for where).
    pub(crate) async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        self.readers.read(read).await
    }

    /// Runs `write` in the writer's next transaction; returns once it committed.
    async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        self.writer.write(write).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.prepare_cached(sql::PING)?.query_row([], |_| Ok(()))?)).await
    }

    async fn insert_client(&self, server: &str, client: &Client) -> Result<(), StoreError> {
        let metadata = serde_json::to_string(&client.metadata).map_err(|e| StoreError::Internal(e.to_string()))?;
        let (server, client_id, created_at) = (server.to_owned(), client.client_id.clone(), client.created_at);
        let secret_hash = client.secret_hash;
        self.write(move |c| {
            let secret_hash = secret_hash.as_ref().map(TokenHash::as_bytes);
            c.prepare_cached(sql::INSERT_CLIENT)?.execute((server, client_id, secret_hash, metadata, created_at))?;
            Ok(())
        })
        .await
    }

    async fn find_client(&self, server: &str, client_id: &str) -> Result<Option<Client>, StoreError> {
        let (server, client_id) = (server.to_owned(), client_id.to_owned());
        self.read(move |c| one(c, sql::FIND_CLIENT, (&server, &client_id), decode::client)).await
    }

    async fn insert_pending(&self, p: &PendingAuthorization, now: i64, caps: PendingCaps) -> Result<bool, StoreError> {
        let p = p.clone();
        self.write(move |c| {
            let params = params![
                p.state_hash.as_bytes(),
                p.browser_hash.as_bytes(),
                p.server,
                p.client_id,
                p.redirect_uri,
                p.scope,
                p.resource,
                p.code_challenge,
                p.client_state,
                p.upstream_verifier,
                p.nonce,
                p.expires_at,
                now,
                caps.per_browser,
                p.trace_id,
                p.address,
                caps.per_address,
                p.broker,
            ];
            changed_one(c, sql::INSERT_PENDING, params)
        })
        .await
    }

    async fn take_pending(
        &self,
        state_hash: &TokenHash,
        browser_hash: &TokenHash,
        now: i64,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let (state, browser) = (*state_hash, *browser_hash);
        self.write(move |c| one(c, sql::TAKE_PENDING, (state.as_bytes(), browser.as_bytes(), now), decode::pending))
            .await
    }

    async fn insert_upstream_registration(&self, r: &UpstreamRegistration) -> Result<UpstreamRegistration, StoreError> {
        let r = r.clone();
        let params = (r.server, r.issuer, r.client_id, r.secret_sealed, r.created_at);
        let stored = self
            .write(move |c| one(c, sql::INSERT_UPSTREAM_REGISTRATION, params, decode::upstream_registration))
            .await?;
        stored.ok_or_else(|| StoreError::Internal("the registration insert returned no row".into()))
    }

    async fn upstream_registration(
        &self,
        server: &str,
        issuer: &str,
    ) -> Result<Option<UpstreamRegistration>, StoreError> {
        let (server, issuer) = (server.to_owned(), issuer.to_owned());
        self.read(move |c| one(c, sql::FIND_UPSTREAM_REGISTRATION, (&server, &issuer), decode::upstream_registration))
            .await
    }

    async fn create_family(&self, f: &NewFamily, code: &NewCode) -> Result<(), StoreError> {
        let (f, code) = (f.clone(), code.clone());
        self.write(move |c| {
            insert_family(c, &f)?;
            c.prepare_cached(sql::INSERT_CODE)?.execute((
                code.hash.as_bytes(),
                &code.family_id,
                &code.client_id,
                &code.redirect_uri,
                &code.code_challenge,
                code.expires_at,
            ))?;
            Ok(())
        })
        .await
    }

    async fn find_code(&self, hash: &TokenHash) -> Result<Option<StoredCode>, StoreError> {
        let hash = *hash;
        self.read(move |c| one(c, sql::FIND_CODE, [hash.as_bytes()], decode::code)).await
    }

    async fn redeem_code(&self, hash: &TokenHash, now: i64, pair: &NewTokenPair) -> Result<bool, StoreError> {
        let (hash, pair) = (*hash, pair.clone());
        self.write(move |c| {
            let family_id = one(c, sql::REDEEM_CODE, (hash.as_bytes(), now), |r| r.text("family_id"))?;
            let Some(family_id) = family_id else { return Ok(false) };
            insert_pair(c, &family_id, &pair)?;
            Ok(true)
        })
        .await
    }

    async fn issue_grant(&self, f: &NewFamily, pair: &NewTokenPair) -> Result<(), StoreError> {
        let (f, pair) = (f.clone(), pair.clone());
        self.write(move |c| {
            insert_family(c, &f)?;
            insert_pair(c, &f.id, &pair)
        })
        .await
    }

    async fn use_assertion(
        &self,
        issuer: &str,
        jti_hash: &TokenHash,
        expires_at: i64,
        now: i64,
        cap: i64,
    ) -> Result<AssertionUse, StoreError> {
        let (issuer, jti) = (issuer.to_owned(), *jti_hash);
        self.write(move |c| {
            if changed_one(c, sql::USE_ASSERTION, params![issuer, jti.as_bytes(), expires_at, now, cap])? {
                return Ok(AssertionUse::First);
            }
            let used = one(c, sql::ASSERTION_USED, params![issuer, jti.as_bytes()], |_| Ok(()))?;
            Ok(if used.is_some() { AssertionUse::Replay } else { AssertionUse::Full })
        })
        .await
    }

    async fn find_refresh_token(&self, hash: &TokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        let hash = *hash;
        self.read(move |c| one(c, sql::FIND_REFRESH_TOKEN, [hash.as_bytes()], decode::refresh_token)).await
    }

    async fn rotate_refresh_token(&self, rotation: RefreshRotation<'_>) -> Result<Rotation, StoreError> {
        let RefreshRotation { hash, now, grace_secs, .. } = rotation;
        let hash = *hash;
        let (client_id, pair) = (rotation.client_id.to_owned(), rotation.pair.clone());
        let sealed = rotation.successor_sealed.to_owned();
        self.write(move |c| {
            let token = hash.as_bytes();
            let rotated =
                one(c, sql::ROTATE, params![token, now, client_id, sealed, pair.scope], |r| r.text("family_id"))?;
            if let Some(family_id) = rotated {
                insert_pair(c, &family_id, &pair)?;
                return Ok(Rotation::Rotated);
            }
            // Not current: a replay within the grace window, read after the failed write,
            // so that a rotation that raced ours has committed and is seen.
            let replay = one(c, sql::REPLAYED_SUCCESSOR, params![token, now, client_id, grace_secs], |r| {
                Ok((r.text("family_id")?, r.text("successor_sealed")?, r.text("successor_scope")?))
            })?;
            let Some((family_id, successor_sealed, scope)) = replay else {
                return Ok(Rotation::Refused);
            };
            insert_pair(c, &family_id, &NewTokenPair { refresh: None, scope, ..pair })?;
            Ok(Rotation::Replayed { successor_sealed })
        })
        .await
    }

    async fn end_family(&self, family_id: &str, status: FamilyStatus, now: i64) -> Result<bool, StoreError> {
        let id = family_id.to_owned();
        let result = self.write(move |c| changed_one(c, sql::END_FAMILY, (id, status.as_str(), now))).await;
        self.tokens.forget_family(family_id);
        result
    }

    async fn find_access_token(&self, hash: &TokenHash) -> Result<Option<Arc<AccessTokenInfo>>, StoreError> {
        let h = *hash;
        let lookup = self.read(move |c| one(c, sql::FIND_ACCESS_TOKEN, [h.as_bytes()], decode::access_token));
        self.tokens.find(hash, lookup).await
    }

    async fn revoke_access_token(&self, hash: &TokenHash, now: i64) -> Result<bool, StoreError> {
        let h = *hash;
        let result = self.write(move |c| changed_one(c, sql::REVOKE_ACCESS_TOKEN, (h.as_bytes(), now))).await;
        self.tokens.forget(|cached, _| cached == hash);
        result
    }

    async fn upstream_credential(&self, family_id: &str) -> Result<Option<UpstreamCredential>, StoreError> {
        let id = family_id.to_owned();
        self.read(move |c| one(c, sql::UPSTREAM_CREDENTIAL, [&id], decode::upstream)).await
    }

    async fn take_refresh_lease(&self, family_id: &str, lease_secs: i64) -> Result<Option<Lease>, StoreError> {
        let lease = Lease { family_id: family_id.to_owned(), holder: random_id() };
        let (id, holder) = (lease.family_id.clone(), lease.holder.clone());
        let taken = self.write(move |c| changed_one(c, sql::TAKE_REFRESH_LEASE, (id, lease_secs, holder))).await?;
        Ok(taken.then_some(lease))
    }

    async fn store_upstream_credential(
        &self,
        lease: &Lease,
        sealed: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let (id, holder, sealed) = (lease.family_id.clone(), lease.holder.clone(), sealed.to_owned());
        let result =
            self.write(move |c| changed_one(c, sql::STORE_UPSTREAM_CREDENTIAL, (id, holder, sealed, expires_at))).await;
        self.tokens.forget_family(&lease.family_id);
        result
    }

    async fn release_refresh_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let (id, holder) = (lease.family_id.clone(), lease.holder.clone());
        self.write(move |c| changed_one(c, sql::RELEASE_REFRESH_LEASE, (id, holder)).map(drop)).await
    }

    async fn list_clients(&self) -> Result<Vec<RegisteredClient>, StoreError> {
        self.read(|c| all(c, sql::LIST_CLIENTS, [], decode::registered_client)).await
    }

    async fn delete_client(&self, client_id: &str, now: i64) -> Result<u64, StoreError> {
        let id = client_id.to_owned();
        let result = self
            .write(move |c| {
                c.prepare_cached(sql::REVOKE_CLIENT_GRANTS)?.execute((&id, now))?;
                let deleted = c.prepare_cached(sql::DELETE_CLIENT)?.execute([&id])?;
                c.prepare_cached(sql::COUNT_CHANGE)?.execute([])?;
                Ok(deleted as u64)
            })
            .await;
        self.tokens.forget(|_, info| info.client_id == client_id);
        result
    }

    async fn list_grants(&self, filter: &GrantFilter, limit: i64) -> Result<Vec<GrantSummary>, StoreError> {
        let f = filter.clone();
        self.read(move |c| {
            all(c, sql::LIST_GRANTS, (&f.grant_id, &f.subject, &f.client_id, &f.server, limit), decode::grant)
        })
        .await
    }

    async fn record_uses(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        let uses = uses.to_vec();
        self.write(move |c| {
            let mut update = c.prepare_cached(sql::RECORD_USE)?;
            for (id, at) in &uses {
                update.execute((id, at))?;
            }
            Ok(())
        })
        .await
    }

    async fn revoke_grants(&self, filter: &GrantFilter, now: i64) -> Result<u64, StoreError> {
        let f = filter.clone();
        let result = self
            .write(move |c| {
                let revoked = c.prepare_cached(sql::REVOKE_GRANTS)?.execute((
                    f.grant_id,
                    f.subject,
                    f.client_id,
                    f.server,
                    now,
                ))?;
                c.prepare_cached(sql::COUNT_CHANGE)?.execute([])?;
                Ok(revoked as u64)
            })
            .await;
        self.tokens.forget_all();
        result
    }

    async fn revocations_since(&self, since: i64) -> Result<RevokedSince, StoreError> {
        self.read(move |c| {
            // The clock first: what commits after the two reads below is stamped no earlier
            // than (about) this, and so is found by the next call, whose `since` the caller
            // takes from it, less an overlap.
            let now = c.prepare_cached(sql::DB_NOW)?.query_row([], |r| r.get(0))?;
            let grants = all(c, sql::GRANTS_ENDED_SINCE, [since], |r| r.text("id"))?;
            let access_tokens = all(c, sql::TOKENS_REVOKED_SINCE, [since], |r| r.hash("token_hash"))?;
            Ok(RevokedSince { now, grants, access_tokens })
        })
        .await
    }

    async fn changes(&self) -> Result<i64, StoreError> {
        self.read(|c| Ok(c.prepare_cached(sql::CHANGES)?.query_row([], |r| r.get(0))?)).await
    }

    async fn sealed_key_usage(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|c| all(c, sql::SEALED_KEY_USAGE, [], |r| Ok((r.text("key_id")?, r.int("n")?)))).await
    }

    async fn sealed_with_other_keys(&self, current_key_id: &str, limit: i64) -> Result<Vec<SealedValue>, StoreError> {
        let key = current_key_id.to_owned();
        self.read(move |c| {
            let mut out = all(c, sql::FAMILIES_SEALED_WITH_OTHER_KEYS, (&key, limit), decode::sealed_value)?;
            out.extend(all(c, sql::SUCCESSORS_SEALED_WITH_OTHER_KEYS, (&key, limit), decode::sealed_value)?);
            let registrations = sql::REGISTRATIONS_SEALED_WITH_OTHER_KEYS;
            out.extend(all(c, registrations, (&key, limit), decode::registration_sealed_value)?);
            out.truncate(limit.max(0) as usize);
            Ok(out)
        })
        .await
    }

    async fn reseal(&self, value: &SealedValue, resealed: &str) -> Result<bool, StoreError> {
        let (kind, sealed, resealed) = (value.kind.clone(), value.sealed.clone(), resealed.to_owned());
        let result = self
            .write(move |c| match kind {
                SealedKind::ProviderCredential { family_id } => {
                    changed_one(c, sql::RESEAL_FAMILY, (family_id, sealed, resealed))
                }
                SealedKind::RefreshSuccessor { token_hash } => {
                    changed_one(c, sql::RESEAL_SUCCESSOR, (token_hash.as_bytes(), sealed, resealed))
                }
                SealedKind::UpstreamRegistration { server, issuer } => {
                    changed_one(c, sql::RESEAL_REGISTRATION, (server, issuer, sealed, resealed))
                }
            })
            .await;
        // Cached lookups carry the provider credential as it was sealed before.
        if let SealedKind::ProviderCredential { family_id } = &value.kind {
            self.tokens.forget_family(family_id);
        }
        result
    }

    async fn pin_tools(&self, server: &str, seen: &[SeenTool], now: i64) -> Result<Vec<String>, StoreError> {
        let server = server.to_owned();
        let of = server.clone();
        let settled = self.read(move |c| all(c, sql::SETTLED_TOOLS, [&of], decode::settled_tool)).await?;
        let seen: Vec<SeenTool> = crate::unsettled(seen, &settled).into_iter().cloned().collect();
        if seen.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |c| {
            let mut recorded = Vec::new();
            for tool in seen {
                let params = (&server, &tool.name, &tool.digest, &tool.definition, now);
                if let Some(Some(_)) = one(c, sql::PIN_TOOL, params, |r| r.opt_text("changed_digest"))? {
                    recorded.push(tool.name);
                }
            }
            Ok(recorded)
        })
        .await
    }

    async fn tool_pins(&self, server: Option<&str>) -> Result<Vec<ToolPin>, StoreError> {
        let server = server.map(str::to_owned);
        let mut pins = self.read(move |c| all(c, sql::TOOL_PINS, [&server], decode::tool_pin)).await?;
        // Sorted here, by bytes, rather than by ORDER BY, whose order on PostgreSQL is the
        // database's collation: both backends list in the same order.
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
        let (server, tool, expected) = (server.to_owned(), tool.to_owned(), expected_digest.map(str::to_owned));
        self.write(move |c| changed_one(c, sql::ACCEPT_TOOL_CHANGE, (server, tool, expected, now))).await
    }

    async fn purge_expired(&self, now: i64, retention: Retention) -> Result<Purged, StoreError> {
        let cutoffs = retention.cutoffs(now);
        let result = self
            .write(move |c| {
                let mut n = [0u64; 8];
                for ((statement, cutoff), n) in sql::PURGE.iter().zip(cutoffs).zip(&mut n) {
                    *n = c.prepare_cached(statement)?.execute([cutoff])? as u64;
                }
                Ok(Purged::from(n))
            })
            .await;
        self.tokens.forget(|_, info| info.expires_at <= now);
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use mcp_oauth_core::token::{TokenHash, TokenKind, mint, random_id};
    use rusqlite::Connection;

    use super::{SqliteStore, sqlite_path};
    use crate::model::*;
    use crate::{Store, StoreError};

    fn temp_url() -> (String, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mop-sqlite-{}", random_id()));
        (format!("sqlite://{}/t.db", dir.display()), dir.join("t.db"))
    }

    /// A grant with an access and a refresh token; returns (family id, access, refresh).
    async fn grant(store: &SqliteStore) -> (String, TokenHash, TokenHash) {
        let (id, code) = (random_id(), mint(TokenKind::AuthorizationCode));
        let family = NewFamily {
            id: id.clone(),
            server: "s".into(),
            client_id: "c".into(),
            subject: "u".into(),
            scope: "mcp".into(),
            resource: "r".into(),
            upstream_sealed: "v1.x.y".into(),
            upstream_expires_at: None,
            created_at: 0,
            trace_id: None,
        };
        let new_code = NewCode {
            hash: code.hash,
            family_id: id.clone(),
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "x".into(),
            expires_at: 60,
        };
        store.create_family(&family, &new_code).await.unwrap();
        let (access, refresh) = (mint(TokenKind::AccessToken).hash, mint(TokenKind::RefreshToken).hash);
        let pair = NewTokenPair {
            access_hash: access,
            access_expires_at: 3600,
            refresh: Some((refresh, 86_400)),
            client_id: "c".into(),
            scope: "mcp".into(),
            issued_at: 0,
        };
        assert!(store.redeem_code(&code.hash, 0, &pair).await.unwrap());
        (id, access, refresh)
    }

    /// The proxy serves on one single-threaded runtime per core: a read that waited there
    /// would stall every connection of that core. Here another process holds the write
    /// lock while reads run on a current-thread runtime beside a ticker (and a write of
    /// ours waits for that lock on the writer thread): the reads are answered at once, and
    /// the ticker is never kept waiting much longer than one read takes. (The locks that
    /// do shut a WAL reader out are exercised in `pool`'s
    /// `a_read_shut_out_by_a_lock_waits_off_the_serving_thread`.)
    #[test]
    fn reads_never_wait_for_another_process_s_write_lock() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (url, path) = temp_url();
            let store = Arc::new(SqliteStore::open(&url).await.unwrap());
            let (family_id, access, refresh) = grant(&store).await;
            let (worst, ticking) = super::pool::tests::ticker();
            tokio::time::sleep(Duration::from_millis(20)).await;

            let other = Connection::open(&path).unwrap();
            other.execute_batch("BEGIN IMMEDIATE; UPDATE mop_changes SET generation = generation + 1").unwrap();
            let writing = {
                let store = store.clone();
                tokio::spawn(async move { store.revoke_access_token(&access, 1).await })
            };
            let started = Instant::now();
            for _ in 0..100 {
                assert!(store.find_refresh_token(&refresh).await.unwrap().is_some());
                assert!(store.upstream_credential(&family_id).await.unwrap().is_some());
                assert!(store.find_client("s", "nobody").await.unwrap().is_none());
                tokio::task::yield_now().await;
            }
            let reading = started.elapsed();
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(!writing.is_finished(), "our write waits for the other's lock");
            other.execute_batch("COMMIT").unwrap();
            assert!(writing.await.unwrap().unwrap(), "and is done once it is released");
            ticking.abort();

            let worst = worst.load(Ordering::Relaxed);
            assert!(worst < 100_000, "a tick waited {worst} µs while another process wrote");
            assert!(reading < Duration::from_secs(2), "300 reads took {reading:?}");
        });
    }

    /// A stored value this version cannot read is an error, never a guess: a family status
    /// it does not know must not read as some status it does, nor a client secret hash of
    /// the wrong length as "no secret".
    #[tokio::test]
    async fn unreadable_columns_are_internal_errors() {
        let (url, path) = temp_url();
        let store = SqliteStore::open(&url).await.unwrap();
        let token = TokenHash::of("t");
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO families (id, server, client_id, subject, scope, resource, status, upstream_sealed, created_at) \
             VALUES ('f', 's', 'c', 'u', 'mcp', 'r', 'frozen', 'sealed', 0)",
            [],
        )
        .unwrap();
        for table in ["refresh_tokens", "access_tokens"] {
            conn.execute(
                &format!(
                    "INSERT INTO {table} (token_hash, family_id, client_id, scope, issued_at, expires_at) \
                     VALUES (?1, 'f', 'c', 'mcp', 0, 1)"
                ),
                [token.as_bytes()],
            )
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
            conn.execute(
                "INSERT INTO clients (server, client_id, secret_hash, metadata, created_at) VALUES ('s', ?1, ?2, ?3, 0)",
                (client_id, secret_hash, serde_json::to_string(&metadata).unwrap()),
            )
            .unwrap();
        }
        assert!(store.find_client("s", "good").await.unwrap().unwrap().secret_hash.is_some());
        assert!(matches!(store.find_client("s", "short").await, Err(StoreError::Internal(_))));
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Another process's revocation (the admin command line's) reaches the cache within
    /// the watch's period; this process's own writes at once.
    #[tokio::test]
    async fn the_token_cache_follows_writes_here_and_elsewhere() {
        let (url, path) = temp_url();
        let store = SqliteStore::open(&url).await.unwrap();
        store.watch_changes(Duration::from_millis(50)).await;
        let (family_id, access, _) = grant(&store).await;
        assert!(!store.find_access_token(&access).await.unwrap().unwrap().revoked);
        assert!(store.revoke_access_token(&access, 1).await.unwrap());
        assert!(store.find_access_token(&access).await.unwrap().unwrap().revoked, "this process's write");

        let (_, other_access, _) = grant(&store).await;
        let active = store.find_access_token(&other_access).await.unwrap().unwrap();
        assert_eq!(active.upstream.family_status, mcp_oauth_core::family::FamilyStatus::Active);
        // As `revoke_grants` does it, from another process.
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("UPDATE families SET status = 'revoked'; UPDATE mop_changes SET generation = generation + 1")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = store.find_access_token(&other_access).await.unwrap().unwrap();
        assert_eq!(seen.upstream.family_status, mcp_oauth_core::family::FamilyStatus::Revoked, "{family_id}");
    }

    #[test]
    fn sqlite_paths() {
        assert_eq!(sqlite_path("sqlite://./data/proxy.db"), Some(("./data/proxy.db", None)));
        assert_eq!(sqlite_path("sqlite:///var/lib/p.db?mode=rwc"), Some(("/var/lib/p.db", Some("mode=rwc"))));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused_with_what_to_do() {
        match SqliteStore::open("sqlite::memory:").await {
            Err(StoreError::Internal(message)) => assert!(message.contains("name a file"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
