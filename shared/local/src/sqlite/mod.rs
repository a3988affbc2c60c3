//! The embedded store: flows, runs, step records, the run queue and schedules in one SQLite file.
//!
//! # Layout
//! - this file: [`SqliteDb`], the shared handle: the writer thread, the reader pool, pragmas and the
//!   schema with its migrations.
//! - [`flows`], [`runs`], [`queue`], [`schedules`], [`tables`], [`blobs`]: one adapter per port, all built from one
//!   [`SqliteDb`].
//!
//! # Writes: one thread, group commit
//! SQLite allows one writer at a time, and the cost of a write is dominated by the commit. So one
//! dedicated thread owns the only write connection. Adapters send it operations through a channel; it
//! takes everything pending (up to [`MAX_BATCH`]), runs each operation inside its own savepoint within
//! one `BEGIN IMMEDIATE` transaction, commits once, and only then answers each caller through a
//! oneshot channel. An operation that fails (a lost condition, a constraint) rolls back to its
//! savepoint and leaves the rest of the batch alone. Under load, hundreds of API requests share one
//! commit; when idle, a single operation commits at once (no timer delays it).
//!
//! With `journal_mode=WAL` and `synchronous=NORMAL` a commit survives a process crash; only an OS
//! crash or power loss can drop the last commits, never corrupt the file. A commit never waits for
//! the disk: the flushes belong to the checkpoints that copy the log into the database file, and
//! those run on their own thread (`checkpoint.rs`).
//!
//! # Reads
//! Reads run on a small pool of read-only connections through `spawn_blocking`; in WAL mode they never
//! wait for the writer. An in-memory database has a single connection, so there reads go through the
//! writer thread too.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Notify, oneshot};

use domain::ports::{BoxError, QueueError, StoreError};

pub(crate) use checkpoint::WalLimits;

pub mod blobs;
mod checkpoint;
pub mod flows;
pub mod queue;
pub mod runs;
pub mod schedules;
pub mod tables;
#[cfg(test)]
mod tests;

pub use blobs::SqliteBlobStore;
pub use flows::SqliteFlowStore;
pub use queue::{QueueStats, SqliteRunQueue};
pub use runs::SqliteRunStore;
pub use schedules::SqliteSchedules;
pub use tables::SqliteTableStore;

/// Most operations committed in one transaction; bounds the latency a batch adds to its first caller.
pub const MAX_BATCH: usize = 1024;

/// Read connections, and so reads running at once: more would only compete for the same cores, and a
/// bounded number lets every read reuse an open connection instead of opening one.
const MAX_READERS: usize = 8;

/// How long a connection waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Errors of the SQLite adapters themselves, kept as the source of port errors.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// The writer thread is gone (the database was closed or an operation brought it down).
    #[error("the database writer has stopped")]
    WriterStopped,
    /// An operation panicked; it was rolled back and the writer carries on.
    #[error("a database operation panicked")]
    Panicked,
    /// The file was written by a newer idflow.
    #[error("database schema version {found} is newer than this idflow supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    /// A queue delay above the 15-minute limit of SQS.
    #[error("delay of {seconds}s is above the 15-minute limit")]
    DelayTooLong { seconds: u64 },
    /// A value could not be written as JSON.
    #[error("value cannot be encoded as json")]
    Encode(#[source] serde_json::Error),
    /// The shared commit of a batch failed.
    #[error("commit failed")]
    Commit(#[source] Arc<rusqlite::Error>),
}

/// Why an operation failed, before it is turned into the error of the port that ran it.
#[derive(Debug)]
pub(crate) enum Fail {
    Sql(rusqlite::Error),
    /// A conditional write lost ([`StoreError::Conflict`]).
    Conflict(String),
    /// A queue receipt did not match ([`QueueError::StaleReceipt`]).
    StaleReceipt,
    Corrupt {
        key: String,
        source: BoxError,
    },
    Adapter(SqliteError),
}

impl From<rusqlite::Error> for Fail {
    fn from(error: rusqlite::Error) -> Fail {
        Fail::Sql(error)
    }
}

impl From<SqliteError> for Fail {
    fn from(error: SqliteError) -> Fail {
        Fail::Adapter(error)
    }
}

/// Whether a driver error is about contention (worth retrying) rather than the request.
fn is_transient(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

impl Fail {
    fn is_transient(&self) -> bool {
        match self {
            Fail::Sql(error) => is_transient(error),
            Fail::Adapter(SqliteError::WriterStopped) => true,
            Fail::Adapter(SqliteError::Commit(error)) => is_transient(error),
            _ => false,
        }
    }

    pub(crate) fn into_store(self) -> StoreError {
        let transient = self.is_transient();
        let source: BoxError = match self {
            Fail::Conflict(message) => return StoreError::Conflict(message),
            Fail::Corrupt { key, source } => return StoreError::Corrupt { key, source },
            Fail::StaleReceipt => Box::new(QueueError::StaleReceipt),
            Fail::Sql(error) => Box::new(error),
            Fail::Adapter(error) => Box::new(error),
        };
        if transient {
            StoreError::Unavailable(source)
        } else {
            StoreError::Backend(source)
        }
    }

    pub(crate) fn into_queue(self) -> QueueError {
        let transient = self.is_transient();
        let source: BoxError = match self {
            Fail::StaleReceipt => return QueueError::StaleReceipt,
            Fail::Conflict(message) => Box::new(StoreError::Conflict(message)),
            Fail::Corrupt { key, source } => Box::new(StoreError::Corrupt { key, source }),
            Fail::Sql(error) => Box::new(error),
            Fail::Adapter(error) => Box::new(error),
        };
        if transient {
            QueueError::Unavailable(source)
        } else {
            QueueError::Backend(source)
        }
    }
}

/// One operation queued for the writer thread.
trait WriteJob: Send {
    /// Runs the operation inside the open transaction; inside its own savepoint when `isolated`.
    /// May run twice: after a first run without a savepoint, the batch's transaction can be rolled
    /// back and every operation run again, each isolated (see [`run_batch`]).
    fn run(&mut self, conn: &Connection, isolated: bool) -> Ran;
    /// Answers the caller once the batch's fate is known (`Some` when the commit failed).
    fn finish(self: Box<Self>, commit: Option<&Arc<rusqlite::Error>>);
}

/// How an operation's run went, as far as the batch is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ran {
    Ok,
    /// Failed on a condition it checked (a lost lease, a stale receipt) before changing a row.
    FailedClean,
    /// Failed in SQLite, panicked, or after changing rows: its writes must be undone.
    FailedDirty,
}

struct Job<T, F> {
    op: F,
    result: Option<Result<T, Fail>>,
    /// The result, and the operation back with what it holds (the rows it wrote, as text), so
    /// that it is freed by the caller's thread, which allocated it. Freed on the writer thread, it
    /// was a free across threads per value, mimalloc's slow path: under `bench/load.sh`'s async
    /// round, `perf` put mimalloc at 9.0 % of the server's samples before, 7.9 % after.
    reply: oneshot::Sender<(Result<T, Fail>, F)>,
}

/// Runs a prepared statement without arguments (a cached one: no parsing after the first time).
fn exec_cached(conn: &Connection, sql: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> Result<T, Fail> + Send,
{
    fn run(&mut self, conn: &Connection, isolated: bool) -> Ran {
        if isolated && let Err(error) = exec_cached(conn, "SAVEPOINT op") {
            self.result = Some(Err(error.into()));
            return Ran::FailedDirty;
        }
        let changes = conn.total_changes();
        // A panicking operation must not take the writer (and so the whole server) down with it.
        let op = &mut self.op;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(conn)))
            .unwrap_or(Err(Fail::Adapter(SqliteError::Panicked)));
        let ran = match &result {
            Ok(_) => Ran::Ok,
            Err(Fail::Sql(_) | Fail::Adapter(_)) => Ran::FailedDirty,
            Err(_) if conn.total_changes() != changes => Ran::FailedDirty,
            Err(_) => Ran::FailedClean,
        };
        if !isolated {
            self.result = Some(result);
            return ran;
        }
        let undo = match ran {
            Ran::Ok => Ok(()),
            Ran::FailedClean | Ran::FailedDirty => exec_cached(conn, "ROLLBACK TO op"),
        };
        let release = exec_cached(conn, "RELEASE op");
        self.result = Some(match (undo, release) {
            (Ok(()), Ok(())) => result,
            (Err(error), _) | (_, Err(error)) => Err(error.into()),
        });
        ran
    }

    fn finish(self: Box<Self>, commit: Option<&Arc<rusqlite::Error>>) {
        let Job { op, result, reply } = *self;
        let result = match (commit, result) {
            (Some(error), _) => Err(Fail::Adapter(SqliteError::Commit(error.clone()))),
            (None, Some(result)) => result,
            (None, None) => Err(Fail::Adapter(SqliteError::WriterStopped)),
        };
        // The caller may have given up waiting (its future was dropped); the write stands anyway.
        let _ = reply.send((result, op));
    }
}

/// Runs a batch inside the open transaction.
///
/// Every operation first runs without a savepoint of its own: a savepoint copies each page the
/// operation changes into a journal before the change, which callgrind measured at 13 % of an
/// async request's instructions. An operation that fails on a condition before changing a row (a
/// lost lease, a stale receipt) needs nothing undone. When one fails after changing rows, in
/// SQLite, or by panicking, the transaction is rolled back and every operation runs again in its
/// own savepoint, as each did before this fast path: the failure undoes only its own writes, and
/// the others' results are those of the run that commits. `Err` when the transaction could not be
/// rolled back or begun again (the batch then fails as a whole).
fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> Result<(), rusqlite::Error> {
    let mut dirty = false;
    for job in batch.iter_mut() {
        dirty |= job.run(conn, false) == Ran::FailedDirty;
    }
    if !dirty {
        return Ok(());
    }
    exec_cached(conn, "ROLLBACK")?;
    exec_cached(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        job.run(conn, true);
    }
    Ok(())
}

/// The writer thread: drains the channel in batches, one transaction per batch.
fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Box<dyn WriteJob>>,
    mut checkpoints: checkpoint::Checkpoints,
) {
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcome = match exec_cached(&conn, "BEGIN IMMEDIATE")
            .and_then(|()| run_batch(&conn, &mut batch))
        {
            Err(error) => {
                // Leave no transaction open for the next batch (a failed BEGIN opened none).
                let _ = conn.execute_batch("ROLLBACK");
                Some(Arc::new(error))
            }
            Ok(()) => {
                match exec_cached(&conn, "COMMIT") {
                    Ok(()) => {
                        checkpoints.after_commit(&conn);
                        None
                    }
                    Err(error) => {
                        // Leave no transaction open for the next batch; if the rollback fails too,
                        // the next BEGIN reports it.
                        let _ = conn.execute_batch("ROLLBACK");
                        Some(Arc::new(error))
                    }
                }
            }
        };
        if let Some(error) = &outcome {
            tracing::error!(error = %error, operations = batch.len(), "sqlite batch failed");
        }
        for job in batch.drain(..) {
            job.finish(outcome.as_ref());
        }
    }
}

struct Inner {
    jobs: Option<mpsc::Sender<Box<dyn WriteJob>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The WAL checkpointer (`checkpoint.rs`); `None` in memory. It stops once the writer has.
    checkpointer: Option<std::thread::JoinHandle<()>>,
    /// `None` for an in-memory database: reads go through the writer.
    readers: Option<Readers>,
    /// Signalled after a commit that may have made queue messages visible, to wake long polls. Lives
    /// here so that every queue handle on the same database hears every send.
    queue_changed: Notify,
    /// Set by [`SqliteDb::open_temporary`]: the file to delete once closed.
    remove_on_drop: Option<PathBuf>,
    /// Whether the blob table may hold a row: it did when the file was opened, or a blob was put
    /// since. Until then a delete by prefix has nothing to find and skips the writer (every run's
    /// end deletes its values, and most runs never had any). Puts by another process on the same
    /// file are not seen; `idflow serve` keeps its data directory to itself (`serve.lock`).
    blobs_maybe: AtomicBool,
    /// Pauses read recently (see `flows.rs`): every API request asks whether its flow is paused.
    pauses: Mutex<flows::PauseCache>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish what is queued and stop; joining makes "dropped"
        // mean "file closed", which reopening in tests relies on.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            // The last handle can be dropped by the writer itself (inside a finished operation); it
            // cannot wait for itself.
            if writer.thread().id() != std::thread::current().id() {
                let _ = writer.join();
                // The writer held the checkpointer's wake-up sender, so it has stopped or is
                // finishing its last checkpoint.
                if let Some(checkpointer) = self.checkpointer.take() {
                    let _ = checkpointer.join();
                }
            }
        }
        if let Some(path) = self.remove_on_drop.take() {
            // Idle readers still hold the file open; Unix lets it go anyway, and Windows only
            // leaves a stray file in the temp dir.
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    fn take(&self) -> Result<Connection, rusqlite::Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn put(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_READERS
        {
            idle.push(conn);
        }
    }
}

/// A handle on one SQLite database, shared by its adapters. Cloning is cheap and shares the writer.
#[derive(Clone)]
pub struct SqliteDb {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self
            .inner
            .readers
            .as_ref()
            .map(|readers| readers.path.as_path());
        f.debug_struct("SqliteDb").field("path", &path).finish()
    }
}

/// Current schema version, kept in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 5;

/// Migrations, in order: entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE flow_versions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE flows_current (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES flow_versions (name, version)
) WITHOUT ROWID;

-- Times are RFC 3339 text with exactly nine fractional digits, so text order is time order.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    flow TEXT NOT NULL,
    flow_version TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    parent TEXT,
    root TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    wake_at TEXT,
    output TEXT,
    error TEXT,
    state TEXT,
    step_count INTEGER NOT NULL,
    dedupe_key TEXT UNIQUE,
    lease_owner TEXT,
    lease_until TEXT
);
CREATE INDEX runs_flow ON runs (flow, id);
CREATE INDEX runs_status ON runs (status, id);

CREATE TABLE steps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Queue times are Unix milliseconds of the queue's clock.
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX queue_visible ON queue (visible_at, id);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    moved_at INTEGER NOT NULL
);

CREATE TABLE schedules (
    flow TEXT PRIMARY KEY,
    expression TEXT NOT NULL,
    timezone TEXT
) WITHOUT ROWID;
"#,
    r#"
-- Rows of the tables declared in idflow.yaml (see `tables.rs`): one JSON object per row, under its
-- key (the key column's value as text, or a generated ULID).
CREATE TABLE table_rows (
    tbl TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tbl, id)
) WITHOUT ROWID;
"#,
    r#"
-- Values runs hold out of line (see `blobs.rs`), under `runs/<run id>/<sha-256>`.
CREATE TABLE blobs (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"#,
    r#"
-- Paused flows (`FlowStore::set_paused`), by name: a pause outlasts deploys and removal.
CREATE TABLE flow_pauses (
    name TEXT PRIMARY KEY,
    paused_at TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- A notification left for the worker holding a run's lease (`RunStore::notify`): 1 while pending.
ALTER TABLE runs ADD COLUMN notified INTEGER NOT NULL DEFAULT 0;
"#,
];

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Plans that never depend on the values bound to a statement. Without this guarantee SQLite
    // marks a cached statement whose plan could depend on a bound value (a `LIMIT ?`, a range on
    // an indexed column) and compiles it again each time that value is bound: measured with
    // callgrind under bench/instructions.sh, 8 % of every async request's instructions went to
    // re-preparing statements. The adapters' queries have one good plan each.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // SQLite's default page cache (2 MiB), and a memory map for the pages that are not in the WAL.
    // Measured under bench/load.sh with `perf`: with a 64 MiB cache the writer thread spent about
    // a fifth of its time in `pcache1TruncateUnsafe`, called at every commit
    // (`pager_end_transaction` truncates the cache to the database's size) and walking the hash
    // chains of every cached page there while the database grows; with the default cache the walk
    // is short, and async intake went from 10 % to 12 % of bare axum in the same run.
    conn.pragma_update(None, "cache_size", -2_000)?;
    conn.pragma_update(None, "mmap_size", 268_435_456)?;
    // Every query of the adapters is a fixed text (list queries have a few variants), so a modest cache
    // holds them all and nothing is parsed twice.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), Fail> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(SqliteError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        }
        .into());
    }
    for (from, script) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        tx.execute_batch(script)?;
        tx.pragma_update(None, "user_version", from as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteDb {
    /// Opens (creating it and its directory if needed) the database file at `path` and brings its
    /// schema up to date.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteDb, StoreError> {
        SqliteDb::open_file(path.as_ref().to_path_buf(), false, WalLimits::default())
    }

    fn open_file(
        path: PathBuf,
        temporary: bool,
        limits: WalLimits,
    ) -> Result<SqliteDb, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|error| StoreError::Backend(Box::new(error)))?;
        }
        let mut conn = Connection::open(&path).map_err(|e| Fail::from(e).into_store())?;
        let setup = (|| -> Result<(), Fail> {
            configure(&conn)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
            conn.pragma_update(
                None,
                "journal_size_limit",
                limits.journal_size_limit(page_size),
            )?;
            migrate(&mut conn)?;
            // Checkpoints run on their own thread (`checkpoint.rs`); the hook replaces SQLite's
            // automatic checkpoint on this connection.
            checkpoint::install_hook(&conn);
            Ok(())
        })();
        setup.map_err(Fail::into_store)?;
        let remove_on_drop = temporary.then(|| path.clone());
        let (checkpoints, checkpointer) = checkpoint::Checkpoints::start(&path, limits);
        SqliteDb::start(
            conn,
            checkpoints,
            checkpointer,
            Some(Readers {
                path,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
            }),
            remove_on_drop,
        )
    }

    /// A database in a new file under the system temp dir, deleted when the last handle is dropped.
    /// For tests that need the real file setup (WAL, separate readers).
    pub fn open_temporary() -> Result<SqliteDb, StoreError> {
        SqliteDb::open_temporary_with(WalLimits::default())
    }

    /// [`SqliteDb::open_temporary`] with other checkpoint limits, for tests of the log's size.
    pub(crate) fn open_temporary_with(limits: WalLimits) -> Result<SqliteDb, StoreError> {
        let path = std::env::temp_dir().join(format!("idflow-{}.db", ulid::Ulid::new()));
        SqliteDb::open_file(path, true, limits)
    }

    /// A private in-memory database, gone when the last handle is dropped. For tests.
    pub fn open_in_memory() -> Result<SqliteDb, StoreError> {
        let mut conn = Connection::open_in_memory().map_err(|e| Fail::from(e).into_store())?;
        let setup = (|| -> Result<(), Fail> {
            configure(&conn)?;
            migrate(&mut conn)
        })();
        setup.map_err(Fail::into_store)?;
        SqliteDb::start(conn, checkpoint::Checkpoints::none(), None, None, None)
    }

    fn start(
        conn: Connection,
        checkpoints: checkpoint::Checkpoints,
        checkpointer: Option<std::thread::JoinHandle<()>>,
        readers: Option<Readers>,
        remove_on_drop: Option<PathBuf>,
    ) -> Result<SqliteDb, StoreError> {
        let blobs_maybe = conn
            .query_row("SELECT EXISTS (SELECT 1 FROM blobs)", [], |row| {
                row.get::<_, bool>(0)
            })
            .map_err(|e| Fail::from(e).into_store())?;
        let (jobs, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("idflow-sqlite-writer".into())
            .spawn(move || writer_loop(conn, receiver, checkpoints))
            .map_err(|error| StoreError::Backend(Box::new(error)))?;
        Ok(SqliteDb {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                writer: Some(writer),
                checkpointer,
                readers,
                queue_changed: Notify::new(),
                remove_on_drop,
                blobs_maybe: AtomicBool::new(blobs_maybe),
                pauses: Mutex::new(flows::PauseCache::default()),
            }),
        })
    }

    /// Runs `op` on the writer thread inside the next batch's transaction and returns its result
    /// once the batch is committed. An `Err` from `op` undoes only `op`'s writes. `op` may run twice
    /// (see [`run_batch`]): it must do nothing but statements on `conn` and build its result.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, Fail>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, Fail> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job {
            op,
            result: None,
            reply,
        });
        let sent = self
            .inner
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            return Err(SqliteError::WriterStopped.into());
        }
        match answer.await {
            Ok((result, op)) => {
                drop(op);
                result
            }
            Err(_) => Err(Fail::Adapter(SqliteError::WriterStopped)),
        }
    }

    /// Runs `op` on a read connection: a committed snapshot that never waits for the writer.
    pub(crate) async fn read<T, F>(&self, mut op: F) -> Result<T, Fail>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T, Fail> + Send + 'static,
    {
        let Some(readers) = &self.inner.readers else {
            return self.write(op).await;
        };
        // The semaphore is never closed, so acquiring cannot fail; if it ever did, read anyway.
        let permit = readers.permits.clone().acquire_owned().await.ok();
        let inner = self.inner.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let readers = inner
                .readers
                .as_ref()
                .ok_or(Fail::Adapter(SqliteError::WriterStopped))?;
            let conn = readers.take()?;
            let result = op(&conn);
            readers.put(conn);
            result
        });
        task.await
            .unwrap_or(Err(Fail::Adapter(SqliteError::Panicked)))
    }

    fn queue_changed(&self) -> &Notify {
        &self.inner.queue_changed
    }

    /// Notes that the blob table may now hold a row (before the row is written, so a delete that
    /// runs after the put never skips it).
    fn blob_put(&self) {
        self.inner.blobs_maybe.store(true, Ordering::Release);
    }

    /// The pause cache shared by every flow store on this database.
    fn pauses(&self) -> std::sync::MutexGuard<'_, flows::PauseCache> {
        self.inner
            .pauses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the blob table may hold a row (see [`Inner::blobs_maybe`]).
    fn blobs_maybe(&self) -> bool {
        self.inner.blobs_maybe.load(Ordering::Acquire)
    }
}

/// Fixed-width RFC 3339 (nine fractional digits, `Z`), so that text order is time order.
pub(crate) fn time_text(time: DateTime<Utc>) -> String {
    domain::datetime::rfc3339_utc(time, SecondsFormat::Nanos)
}

pub(crate) fn parse_time(key: &str, text: &str) -> Result<DateTime<Utc>, Fail> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.to_utc())
        .map_err(|source| Fail::Corrupt {
            key: key.to_owned(),
            source: Box::new(source),
        })
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, Fail> {
    serde_json::from_str(text).map_err(|source| Fail::Corrupt {
        key: key.to_owned(),
        source: Box::new(source),
    })
}

/// Serialises a value for a JSON column.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, Fail> {
    serde_json::to_string(value).map_err(|source| Fail::Adapter(SqliteError::Encode(source)))
}
