//! SQLite connections: a pool of readers that never wait on a serving thread, and one
//! writer thread that commits every write of the store, in groups.
//!
//! Why by hand, and not through sqlx: sqlx gives every SQLite connection a thread of its
//! own and sends each statement to it, and its rows back, over a channel: two thread
//! wake-ups per statement, which a profile of the refresh benchmark found to be half of
//! the proxy's CPU time (docs/benchmarks.md).
//!
//! Reads ([`Readers::read`]). The proxy serves on one single-threaded runtime per core, so
//! a read that waits on its thread (for a lock, in SQLite's busy handler) stalls every
//! connection of that core. So:
//! - every lookup (tokens, codes, clients, credentials, the change counter, tool pins,
//!   the operator's listings) first runs on the caller's thread, on an idle connection
//!   opened at start, whose busy timeout is 0: it cannot wait for a lock. In WAL mode a
//!   reader needs no lock that a writer holds (another process's write transaction, our
//!   writer's, a checkpoint), so this is nearly every read, and a lookup by key in a warm
//!   page cache costs a few microseconds, less than the thread hand-off it avoids;
//! - a read that meets SQLITE_BUSY or SQLITE_LOCKED there (only a lock that shuts readers
//!   out causes it: another process opening the database in exclusive locking mode before
//!   this one, the recovery of a WAL index after a crash, the last connection's clean-up),
//!   or that finds no idle connection (opening one reads the schema, which may wait),
//!   runs again on tokio's blocking pool with the busy timeout, where waiting stalls
//!   nobody.
//!
//! What remains on the caller's thread is the read itself: a page not in SQLite's cache
//! is read from the file (the operating system's page cache, as a rule), a wait on the
//! disk, not on another party; and SQLite's own retries when a reader races a writer
//! restarting the log (microseconds, bounded inside SQLite). Tests hold another process's
//! write lock while a single-threaded runtime reads and a ticker on it measures that it
//! was never kept waiting (`sqlite::tests::reads_never_wait_for_another_process_s_write_lock`),
//! and a lock that shuts readers out, which the read waits for off that thread
//! (`tests::a_read_shut_out_by_a_lock_waits_off_the_serving_thread`).
//!
//! Writes ([`Writer::write`]): one writer thread takes every write queued while it was
//! busy and commits them in one transaction (group commit), each in a savepoint of its
//! own so that one failing rolls back alone (an error that rolls back the whole
//! transaction fails the writes it held, and only those: `write_batch`). Under load a
//! wake-up and a commit are shared by many writes; alone, a write costs one hand-off.
//! Results are handed back only after the commit, so no caller sees a write that could
//! still be rolled back. Being the only writer of this process, it meets the write lock
//! only when another process (the admin command line) holds it, and waits for it on its
//! own thread.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::StoreError;

/// Reader connections opened at start, and the most kept idle, at the least. A read holds
/// one while it runs, so as many serving threads as there are cores read at once, and a
/// few blocking-pool threads beside them: opened at start, none of them has to open one.
const MIN_READERS: usize = 8;
/// Prepared statements kept per connection: more than the store has.
const STATEMENT_CACHE: usize = 64;
/// The most writes one transaction takes: a bound on how long the first waits.
const MAX_BATCH: usize = 256;
/// How long a connection off the serving threads (the writer, a retried read) waits for a
/// lock another process holds before the caller hears `Unavailable`.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a statement run on a connection of this module fails with: SQLite's own error,
/// which a read may retry (busy), or the store's (a row that could not be decoded).
#[derive(Debug)]
pub(crate) enum Failure {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Sqlite(e) => e.into(),
            Failure::Store(e) => e,
        }
    }
}

impl Failure {
    /// A lock another connection holds: worth running again where waiting is harmless.
    fn is_busy(&self) -> bool {
        matches!(self, Self::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
    }
}

/// Classifies a SQLite failure by what the caller can do about it, and counts it.
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

/// Opens a connection to the database at `path` with the settings every connection of
/// the store shares, and `busy` as its busy timeout.
///
/// Foreign keys are off by default in SQLite and the schema's cascades need them.
/// synchronous = NORMAL under WAL syncs at checkpoints, not at each commit: a commit is
/// atomic and the database consistent after any crash, and one the operating system had
/// not yet written out when the machine itself lost power is rolled back (a process crash
/// loses nothing); the rolled-back rotation's client still holds its previous refresh
/// token, which the database then still holds as current. A savepoint keeps the original
/// of every page its write changes in a statement journal: temp_store = MEMORY keeps it in
/// memory, not in a temporary file written for each batch (9% of the CPU per refresh in
/// the benchmark).
pub(crate) fn connect(path: &Path, busy: Duration) -> Result<Connection, Failure> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    // Every statement the store runs stays prepared on every connection (rusqlite keeps
    // 16 by default; the store has some 40, the writer runs most of them).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(busy)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;")?;
    Ok(conn)
}

/// Reader connections; see the module's header for where a read runs.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// The most kept idle (more are closed when given back).
    keep: usize,
}

impl Readers {
    /// Opens the idle readers now, at start, so that no serving thread has to.
    pub(crate) fn open(path: &Path) -> Result<Arc<Self>, StoreError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let keep = MIN_READERS.max(2 * cores);
        let idle = (0..keep).map(|_| connect(path, Duration::ZERO)).collect::<Result<_, _>>()?;
        Ok(Arc::new(Self { path: path.to_owned(), idle: Mutex::new(idle), keep }))
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.keep {
            idle.push(conn);
        }
    }

    /// Runs `read` on this thread if it can without waiting, else on the blocking pool.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        if let Some(conn) = self.take() {
            let result = read(&conn);
            self.give_back(conn);
            match result {
                Err(f) if f.is_busy() => {}
                done => return done.map_err(StoreError::from),
            }
        }
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.read_waiting(read))
            .await
            .map_err(|e| StoreError::Internal(format!("a SQLite read did not finish: {e}")))?
    }

    /// Runs `read` with the busy timeout, on a thread where waiting stalls nobody.
    fn read_waiting<T>(&self, read: impl Fn(&Connection) -> Result<T, Failure>) -> Result<T, StoreError> {
        let conn = match self.take() {
            Some(conn) => conn,
            None => connect(&self.path, Duration::ZERO)?,
        };
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let result = read(&conn);
        // Back to a connection that cannot wait, for the serving threads.
        if conn.busy_timeout(Duration::ZERO).is_ok() {
            self.give_back(conn);
        }
        Ok(result?)
    }
}

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
    F: FnOnce(&Connection) -> Result<T, Failure> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = self.write.take().map(|write| write(conn).map_err(StoreError::from));
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

/// The one writer of the store: a thread, and the queue to it.
pub(crate) struct Writer {
    writes: Mutex<mpsc::Sender<Box<dyn Write>>>,
}

impl Writer {
    /// Starts the writer thread on `conn` (the database already migrated); it ends when
    /// this value is dropped.
    pub(crate) fn start(conn: Connection) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Box<dyn Write>>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_batches(&conn, &rx))
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self { writes: Mutex::new(tx) })
    }

    /// Runs `write` in the writer thread's next transaction; returns once it committed.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Failure> + Send + 'static,
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

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    /// The longest a task of this thread's runtime waited for its turn, in µs: the ticker
    /// sleeps a millisecond at a time and records the longest gap between its turns.
    pub(crate) fn ticker() -> (Arc<std::sync::atomic::AtomicU64>, tokio::task::JoinHandle<()>) {
        let worst = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = worst.clone();
        let ticking = tokio::spawn(async move {
            let mut last = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = std::time::Instant::now();
                seen.fetch_max((now - last).as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
                last = now;
            }
        });
        (worst, ticking)
    }

    /// A lock that shuts readers out (in WAL mode: another process's exclusive locking
    /// mode, the recovery of the WAL index, the last connection's clean-up; here, simplest
    /// to hold, a rollback-journal database's exclusive lock) makes a read on the serving
    /// thread fail at once with SQLITE_BUSY, as its busy timeout is 0: it is run again on
    /// the blocking pool, which waits for the lock, while the serving thread goes on.
    #[test]
    fn a_read_shut_out_by_a_lock_waits_off_the_serving_thread() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let path = std::env::temp_dir().join(format!("mop-pool-{}.db", mcp_oauth_core::token::random_id()));
            Connection::open(&path)
                .unwrap()
                .execute_batch(
                    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); INSERT INTO t VALUES (1, 'x')",
                )
                .unwrap();
            let readers = Readers::open(&path).unwrap();
            let (worst, ticking) = ticker();
            tokio::time::sleep(Duration::from_millis(20)).await;

            let (locked, is_locked) = std::sync::mpsc::channel();
            let holder = {
                let path = path.clone();
                std::thread::spawn(move || {
                    let exclusive = Connection::open(&path).unwrap();
                    exclusive.execute_batch("BEGIN EXCLUSIVE; UPDATE t SET v = 'y'").unwrap();
                    locked.send(()).unwrap();
                    std::thread::sleep(Duration::from_millis(400));
                    exclusive.execute_batch("COMMIT").unwrap();
                })
            };
            is_locked.recv().unwrap();
            let serving = std::thread::current().id();
            let started = std::time::Instant::now();
            let (value, ran_on) = readers
                .read(|c| {
                    let v: String = c.query_row("SELECT v FROM t WHERE id = 1", [], |r| r.get(0))?;
                    Ok((v, std::thread::current().id()))
                })
                .await
                .unwrap();
            let waited = started.elapsed();
            holder.join().unwrap();
            ticking.abort();

            assert_eq!(value, "y", "read once the lock was released");
            assert_ne!(ran_on, serving, "answered off the serving thread");
            assert!(waited >= Duration::from_millis(300), "the read did meet the lock: {waited:?}");
            let worst = worst.load(std::sync::atomic::Ordering::Relaxed);
            // A stall would show as a gap of the lock's 400 ms.
            assert!(worst < 100_000, "a tick waited {worst} µs while a read waited for a lock");
            // The connection went back to the pool able to answer on the serving thread again.
            let here = readers.read(|_| Ok(std::thread::current().id())).await.unwrap();
            assert_eq!(here, serving);
            remove(&path);
        });
    }

    #[test]
    fn busy_and_locked_are_unavailable_and_retried() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED, 517, 262] {
            let e = || rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            assert!(Failure::from(e()).is_busy(), "{code}");
            assert!(matches!(StoreError::from(e()), StoreError::Unavailable(_)), "{code}");
        }
        let unique = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(2067), None);
        assert!(matches!(StoreError::from(unique), StoreError::Duplicate(_)));
        let other = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(1), None);
        assert!(!Failure::from(rusqlite::Error::InvalidQuery).is_busy());
        assert!(matches!(StoreError::from(other), StoreError::Internal(_)));
    }

    /// The readers and the writer of one database, as the store holds them.
    struct Db {
        readers: Arc<Readers>,
        writer: Writer,
    }

    impl Db {
        async fn write<T: Send + 'static>(
            &self,
            write: impl FnOnce(&Connection) -> Result<T, Failure> + Send + 'static,
        ) -> Result<T, StoreError> {
            self.writer.write(write).await
        }

        async fn read<T: Send + 'static>(
            &self,
            read: impl Fn(&Connection) -> Result<T, Failure> + Send + 'static,
        ) -> Result<T, StoreError> {
            self.readers.read(read).await
        }
    }

    fn database() -> (Arc<Db>, PathBuf) {
        let path = std::env::temp_dir().join(format!("mop-pool-{}.db", mcp_oauth_core::token::random_id()));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        let writer = Writer::start(connect(&path, BUSY_TIMEOUT).unwrap()).unwrap();
        (Arc::new(Db { readers: Readers::open(&path).unwrap(), writer }), path)
    }

    fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    /// Holds the writer thread in a write of its own until `release` is sent, so that the
    /// writes queued meanwhile are taken as one batch, in one transaction.
    async fn hold_writer(
        direct: &Arc<Db>,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<Result<bool, StoreError>>) {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let direct = direct.clone();
        let holding = tokio::spawn(async move { direct.write(move |_| Ok(held.recv().is_ok())).await });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (release, holding)
    }

    async fn count(db: &Db, v: &str) -> i64 {
        let v = v.to_owned();
        db.read(move |c| Ok(c.query_row("SELECT COUNT(*) FROM t WHERE v = ?1", [&v], |r| r.get(0))?)).await.unwrap()
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
                    let seen = direct
                        .read(move |c| {
                            Ok(c.query_row("SELECT COUNT(*) FROM t WHERE id = ?1", [i], |r| r.get::<_, i64>(0))?)
                        })
                        .await;
                    assert_eq!(seen.unwrap(), 1);
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        assert_eq!(count(&direct, "w").await, 300);
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
        assert_eq!(count(&direct, "failing").await, 0, "the failed write's first insert was rolled back");
        assert_eq!(count(&direct, "ok").await, 1);
        assert_eq!(count(&direct, "first").await, 1);
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
        async fn queue(direct: &Arc<Db>, sql: &'static str) -> tokio::task::JoinHandle<Result<usize, StoreError>> {
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
        assert_eq!(count(&direct, "before").await, 0);
        let rolling_back = rolling_back.await.unwrap();
        assert!(matches!(rolling_back, Err(StoreError::Duplicate(_))), "its own error: {rolling_back:?}");
        assert_eq!(after.await.unwrap().unwrap(), 1, "committed, and told so");
        assert_eq!(last.await.unwrap().unwrap(), 1);
        assert_eq!((count(&direct, "after").await, count(&direct, "last").await), (1, 1));
        // The writer goes on as usual.
        direct.write(|c| Ok(c.execute("INSERT INTO t (id, v) VALUES (5, 'later')", [])?)).await.unwrap();
        assert_eq!((count(&direct, "later").await, count(&direct, "first").await), (1, 1));
        remove(&path);
    }
}
