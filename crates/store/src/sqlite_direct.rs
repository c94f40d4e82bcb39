//! The refresh grant's statements on SQLite, run without sqlx's per-statement hand-off.
//!
//! Why by hand: sqlx gives every SQLite connection a thread of its own and sends each
//! statement to it, and its rows back, over a channel: two thread wake-ups per statement.
//! A refresh grant was seven statements (two reads; BEGIN, the rotating UPDATE, two
//! INSERTs, COMMIT), and a profile of the refresh benchmark put half of the proxy's CPU
//! time in those wake-ups (futex waits and wakes under flume's channel), not in SQLite
//! (docs/benchmarks.md). Here:
//!
//! - reads run on the calling thread, on a connection taken from a small pool: in WAL
//!   mode a reader never waits for a writer, and a lookup by primary key in a warm page
//!   cache costs a few microseconds, less than the wake-up it replaces;
//! - writes go to one writer thread, which takes every write queued while it was busy
//!   and commits them in one transaction (group commit), each in a savepoint of its own
//!   so that one failing rolls back alone (an error that rolls back the whole
//!   transaction fails the writes it held, and only those: `write_batch`). Under load a
//!   wake-up and a commit are shared by many writes; alone, a write costs what it did
//!   before. Results are handed back only after the commit, so no caller sees a write
//!   that could still be rolled back.
//!
//! The statements are the sqlx implementation's (constants in `statements`; PostgreSQL
//! wraps the rotation's UPDATE and INSERTs into one statement), so the backends keep one
//! meaning; the behaviour suite runs them on SQLite through this module. Other, rarer writes stay on sqlx's single writer connection; the two
//! writers meet at SQLite's write lock, where the busy timeout makes either wait.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

use mcp_oauth_core::family::FamilyStatus;
use mcp_oauth_core::token::TokenHash;
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, named_params};

use crate::model::{NewTokenPair, StoredRefreshToken, UpstreamCredential};
use crate::statements;
use crate::{Rotation, StoreError};

/// Idle reader connections kept; more are opened when more readers run at once.
const IDLE_READERS: usize = 8;
/// The most writes one transaction takes: a bound on how long the first waits.
const MAX_BATCH: usize = 256;

/// A queued write: run inside the batch's transaction, then told how the batch ended.
trait Write: Send {
    /// Runs the write; whether it succeeded (else its savepoint is rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Hands the caller the write's result, or `failed` when the transaction did not
    /// commit.
    fn deliver(self: Box<Self>, failed: Option<StoreError>);
}

struct Pending<T, F> {
    write: Option<F>,
    result: Option<Result<T, StoreError>>,
    done: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Write for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = self.write.take().map(|write| write(conn));
        let ok = matches!(result, Some(Ok(_)));
        self.result = result;
        ok
    }

    fn deliver(self: Box<Self>, failed: Option<StoreError>) {
        let result = match (failed, self.result) {
            (Some(e), _) => Err(e),
            (None, Some(result)) => result,
            (None, None) => Err(StoreError::Internal("a write was delivered before it ran".into())),
        };
        // The caller may have gone (a cancelled request): what it wrote stays written,
        // as with any statement whose answer nobody waited for.
        let _ = self.done.send(result);
    }
}

pub(crate) struct Direct {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writes: Mutex<mpsc::Sender<Box<dyn Write>>>,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").field("path", &self.path).finish_non_exhaustive()
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    // The same settings as the sqlx connections (see `SqlStore::connect` for why).
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    Ok(conn)
}

impl Direct {
    /// Opens the database file at `path` (created and migrated by sqlx before) and
    /// starts the writer thread, which ends when this value is dropped.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = open(path)?;
        // A savepoint keeps the original of every page its write changes in a statement
        // journal: in memory, not in a temporary file written for each batch (9% of the
        // CPU per refresh in the benchmark).
        writer.execute_batch("PRAGMA temp_store = MEMORY")?;
        let (tx, rx) = mpsc::channel::<Box<dyn Write>>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_batches(&writer, &rx))
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self { path: path.to_owned(), readers: Mutex::default(), writes: Mutex::new(tx) })
    }

    /// Runs `read` on a reader connection, on this thread.
    pub(crate) fn read<T>(&self, read: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let taken = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(c) => c,
            None => open(&self.path)?,
        };
        let result = read(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        result
    }

    /// Runs `write` in the writer thread's next transaction; returns once it committed.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let stopped = || StoreError::Internal("the SQLite writer thread has stopped".into());
        let (done, outcome) = tokio::sync::oneshot::channel();
        let job = Box::new(Pending { write: Some(write), result: None, done });
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).send(job).map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

/// The writer thread: waits for a write, takes whatever else is queued, and commits it
/// all in one transaction. Ends when every sender is gone.
fn write_batches(conn: &Connection, queue: &mpsc::Receiver<Box<dyn Write>>) {
    while let Ok(first) = queue.recv() {
        let batch = std::iter::once(first).chain(queue.try_iter().take(MAX_BATCH - 1)).collect();
        write_batch(conn, batch);
    }
}

/// Runs `batch`'s writes in one transaction, each in a savepoint of its own so that one
/// failing is rolled back alone, and tells each caller how its own write ended.
///
/// Some errors make SQLite roll back the whole transaction, not just the statement
/// (SQLITE_FULL, IOERR, NOMEM, a constraint with ON CONFLICT ROLLBACK): the writes that
/// ran before in it are undone, and the later ones would run in autocommit, each
/// committed at once, while the final COMMIT failed for all. So after every write the
/// transaction is checked: when it is gone, the writes it held are reported failed (they
/// are undone), and the rest of the batch continues in a new transaction.
fn write_batch(conn: &Connection, batch: Vec<Box<dyn Write>>) {
    // The writes run in the transaction now open, and whether each succeeded, reported
    // once it commits or is lost. One that failed reports its own error either way.
    let mut open: Vec<(Box<dyn Write>, bool)> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(mut job) = jobs.next() {
        if conn.is_autocommit() {
            // IMMEDIATE: take the write lock now (waiting for another process's writer
            // under the busy timeout), so that no statement of the batch meets it
            // half-way. Failing, it fails the whole rest of the batch: waiting the busy
            // timeout again for each write would only make them all wait longer.
            if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                let e = StoreError::from(e);
                std::iter::once(job).chain(jobs).for_each(|job| job.deliver(Some(e.clone())));
                return;
            }
        }
        if let Err(e) = conn.execute_batch("SAVEPOINT write") {
            job.deliver(Some(e.into()));
            continue;
        }
        let ran = job.run(conn);
        if conn.is_autocommit() {
            // The transaction is gone, and with it every write it held. This one is
            // reported by its own error; one that claims success is not believed, as
            // what it wrote was rolled back (or, after its statement rolled back, ran
            // in autocommit: no longer one atomic write).
            let lost = rolled_back();
            std::iter::once((job, ran)).chain(open.drain(..)).for_each(|(job, ran)| {
                job.deliver(ran.then(|| lost.clone()));
            });
            continue;
        }
        let end = if ran { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
        if let Err(e) = conn.execute_batch(end) {
            tracing::error!(error = %e, "SQLite savepoint could not be ended");
        }
        open.push((job, ran));
    }
    if conn.is_autocommit() {
        // The last transaction was lost, and its writes already told so.
        return;
    }
    let failed = conn.execute_batch("COMMIT").err().map(StoreError::from);
    if failed.is_some() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    open.into_iter().for_each(|(job, ran)| job.deliver(if ran { failed.clone() } else { None }));
}

/// What a write hears when another write's error rolled back the transaction it ran in:
/// nothing of it was kept, and run again it may well succeed.
fn rolled_back() -> StoreError {
    let e = StoreError::Unavailable("the transaction was rolled back by another write's error; retry".into());
    crate::count_error(&e);
    e
}

/// The refresh grant's operations, with the statements of `statements`. Parameters are
/// bound by their `$n` names: SQLite numbers named parameters in the order they first
/// appear in a statement, not by the digits in their names.
impl Direct {
    pub(crate) fn find_refresh_token(&self, hash: &TokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(statements::FIND_REFRESH_TOKEN)?;
            let row = statement.query_row(named_params! { "$1": hash.0.as_slice() }, |r| {
                Ok(StoredRefreshToken {
                    family_id: r.get("family_id")?,
                    server: r.get("server")?,
                    client_id: r.get("client_id")?,
                    scope: r.get("scope")?,
                    expires_at: r.get("expires_at")?,
                    superseded_at: r.get("superseded_at")?,
                    family_status: status(r.get("family_status")?)?,
                    upstream_sealed: r.get("upstream_sealed")?,
                    upstream_expires_at: r.get("upstream_expires_at")?,
                })
            });
            Ok(row.optional()?)
        })
    }

    pub(crate) fn upstream_credential(&self, family_id: &str) -> Result<Option<UpstreamCredential>, StoreError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(statements::UPSTREAM_CREDENTIAL)?;
            let row = statement.query_row(named_params! { "$1": family_id }, |r| {
                Ok(UpstreamCredential {
                    family_id: r.get("family_id")?,
                    sealed: r.get("sealed")?,
                    expires_at: r.get("expires_at")?,
                    family_status: status(r.get("family_status")?)?,
                })
            });
            Ok(row.optional()?)
        })
    }

    /// `Store::rotate_refresh_token`, as the sqlx implementation does it, in the writer's
    /// next transaction.
    pub(crate) async fn rotate_refresh_token(
        &self,
        hash: &TokenHash,
        client_id: &str,
        now: i64,
        grace_secs: i64,
        pair: &NewTokenPair,
        successor_sealed: &str,
    ) -> Result<Rotation, StoreError> {
        let (hash, client_id, pair, sealed) = (*hash, client_id.to_owned(), pair.clone(), successor_sealed.to_owned());
        self.write(move |conn| {
            let token = hash.0.as_slice();
            let rotated: Option<String> = conn
                .prepare_cached(statements::ROTATE)?
                .query_row(
                    named_params! { "$1": token, "$2": now, "$3": client_id, "$5": sealed, "$8": pair.scope },
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(family_id) = rotated {
                insert_pair(conn, &family_id, &pair)?;
                return Ok(Rotation::Rotated);
            }
            let replay: Option<(String, String, String)> = conn
                .prepare_cached(statements::REPLAYED_SUCCESSOR)?
                .query_row(named_params! { "$1": token, "$2": now, "$3": client_id, "$4": grace_secs }, |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            let Some((family_id, successor_sealed, scope)) = replay else {
                return Ok(Rotation::Refused);
            };
            insert_pair(conn, &family_id, &NewTokenPair { refresh: None, scope, ..pair })?;
            Ok(Rotation::Replayed { successor_sealed })
        })
        .await
    }
}

fn insert_pair(conn: &Connection, family_id: &str, pair: &NewTokenPair) -> Result<(), StoreError> {
    let access = Some(("access_tokens", &pair.access_hash, pair.access_expires_at));
    let refresh = pair.refresh.as_ref().map(|(hash, exp)| ("refresh_tokens", hash, *exp));
    for (table, hash, expires_at) in access.into_iter().chain(refresh) {
        conn.prepare_cached(&statements::insert_token(table))?.execute((
            hash.0.as_slice(),
            family_id,
            &pair.client_id,
            &pair.scope,
            pair.issued_at,
            expires_at,
        ))?;
    }
    Ok(())
}

fn status(text: String) -> rusqlite::Result<FamilyStatus> {
    FamilyStatus::try_from(text).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let classified = match &e {
            // BUSY and LOCKED: the busy timeout ran out; the request may succeed later.
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            rusqlite::Error::SqliteFailure(f, _)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                StoreError::Duplicate(e.to_string())
            }
            _ => StoreError::Internal(e.to_string()),
        };
        crate::count_error(&classified);
        classified
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn database() -> (Arc<Direct>, PathBuf) {
        let path = std::env::temp_dir().join(format!("mop-direct-{}.db", mcp_oauth_core::token::random_id()));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        (Arc::new(Direct::open(&path).unwrap()), path)
    }

    fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// Holds the writer thread in a write of its own until `release` is sent, so that the
    /// writes queued meanwhile are taken as one batch, in one transaction.
    async fn hold_writer(
        direct: &Arc<Direct>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<Result<bool, StoreError>>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let direct = direct.clone();
        let holding = tokio::spawn(async move { direct.write(move |_| Ok(held.recv().is_ok())).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (release, holding)
    }

    fn count(direct: &Direct, v: &str) -> i64 {
        direct.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t WHERE v = ?1", [v], |r| r.get(0))?)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_concurrent_write_is_committed_before_its_caller_hears_of_it() {
        let (direct, path) = database();
        let writers: Vec<_> = (0..300)
            .map(|i| {
                let direct = direct.clone();
                tokio::spawn(async move {
                    direct.write(move |c| Ok(c.execute("INSERT INTO t (id, v) VALUES (?1, 'w')", [i])?)).await.unwrap();
                    // Committed: a reader on another connection sees it at once.
                    let seen = direct.read(|c| {
                        Ok(c.query_row("SELECT COUNT(*) FROM t WHERE id = ?1", [i], |r| r.get::<_, i64>(0))?)
                    });
                    assert_eq!(seen.unwrap(), 1);
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(count(&direct, "w"), 300);
        remove(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_is_rolled_back_alone_within_its_batch() {
        let (direct, path) = database();
        direct.write(|c| Ok(c.execute("INSERT INTO t (id, v) VALUES (1, 'first')", [])?)).await.unwrap();

        // Hold the writer until the next two are queued, so that they are taken together.
        let (release, holding) = hold_writer(&direct).await;
        let failing = {
            let direct = direct.clone();
            tokio::spawn(async move {
                direct
                    .write(|c| {
                        c.execute("INSERT INTO t (id, v) VALUES (2, 'failing')", [])?;
                        Ok(c.execute("INSERT INTO t (id, v) VALUES (1, 'failing')", [])?)
                    })
                    .await
            })
        };
        let succeeding = {
            let direct = direct.clone();
            tokio::spawn(
                async move { direct.write(|c| Ok(c.execute("INSERT INTO t (id, v) VALUES (3, 'ok')", [])?)).await },
            )
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        release.send(()).unwrap();
        assert!(holding.await.unwrap().unwrap());

        assert!(matches!(failing.await.unwrap(), Err(StoreError::Duplicate(_))));
        assert_eq!(succeeding.await.unwrap().unwrap(), 1);
        assert_eq!(count(&direct, "failing"), 0, "the failed write's first insert was rolled back");
        assert_eq!(count(&direct, "ok"), 1);
        assert_eq!(count(&direct, "first"), 1);
        remove(&path);
    }

    /// A statement error that makes SQLite roll back the whole transaction (here a
    /// constraint with ON CONFLICT ROLLBACK; in life SQLITE_FULL, IOERR, NOMEM) undoes
    /// every write of the batch that ran before it: those callers hear that their write
    /// failed, and the writes after it still run, in a transaction of their own, and are
    /// reported committed because they are.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_rolls_back_the_transaction_is_told_apart_from_the_rest_of_its_batch() {
        let (direct, path) = database();
        direct.write(|c| Ok(c.execute("INSERT INTO t (id, v) VALUES (1, 'first')", [])?)).await.unwrap();

        let (release, holding) = hold_writer(&direct).await;
        // Queued in this order, behind the held write, and so taken as one batch.
        async fn queue(direct: &Arc<Direct>, sql: &'static str) -> tokio::task::JoinHandle<Result<usize, StoreError>> {
            let direct = direct.clone();
            let job = tokio::spawn(async move { direct.write(move |c| Ok(c.execute(sql, [])?)).await });
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            job
        }
        let before = queue(&direct, "INSERT INTO t (id, v) VALUES (2, 'before')").await;
        let rolling_back = queue(&direct, "INSERT OR ROLLBACK INTO t (id, v) VALUES (1, 'rolling back')").await;
        let after = queue(&direct, "INSERT INTO t (id, v) VALUES (3, 'after')").await;
        let last = queue(&direct, "INSERT INTO t (id, v) VALUES (4, 'last')").await;
        release.send(()).unwrap();
        assert!(holding.await.unwrap().unwrap());

        let before = before.await.unwrap();
        assert!(
            matches!(before, Err(StoreError::Unavailable(_))),
            "undone with the transaction, worth a retry: {before:?}"
        );
        assert_eq!(count(&direct, "before"), 0);
        let rolling_back = rolling_back.await.unwrap();
        assert!(matches!(rolling_back, Err(StoreError::Duplicate(_))), "its own error: {rolling_back:?}");
        assert_eq!(after.await.unwrap().unwrap(), 1, "committed, and told so");
        assert_eq!(last.await.unwrap().unwrap(), 1);
        assert_eq!((count(&direct, "after"), count(&direct, "last")), (1, 1));
        // The writer goes on as usual.
        direct.write(|c| Ok(c.execute("INSERT INTO t (id, v) VALUES (5, 'later')", [])?)).await.unwrap();
        assert_eq!((count(&direct, "later"), count(&direct, "first")), (1, 1));
        remove(&path);
    }
}
