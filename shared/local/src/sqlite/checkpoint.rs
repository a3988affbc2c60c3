//! WAL checkpoints off the writer thread.
//!
//! In WAL mode with `synchronous=NORMAL` a commit appends pages to the log and waits for no disk
//! flush. The flushes happen when a checkpoint copies the log back into the database file: one
//! `fsync` of the log before the copy, one of the database after it. SQLite's automatic checkpoint
//! runs them on the connection that committed, here the one writer thread, so every few thousand
//! pages every caller waiting on the writer also waited for two flushes. Measured with
//! `bench/load.sh` on the 2-core test machine: single flushes up to 18 ms, and the p99 latency of
//! async intake at 15 ms with them against 2.4 ms with no flush at all.
//!
//! So the writer's automatic checkpoint is replaced by:
//! - **a checkpointer thread** with its own connection, woken by the writer each time the log has
//!   grown by [`WalLimits::checkpoint_pages`]. It runs `PASSIVE` checkpoints, which copy what no
//!   reader still needs and never block the writer or the readers.
//! - **a reset by the writer**: the log starts again from its beginning only at a write that finds
//!   every frame already copied, which under continuous writes a concurrent checkpoint seldom leaves
//!   behind (frames committed while it ran are not copied). Once the log holds
//!   [`WalLimits::reset_pages`], the writer checkpoints the rest itself, which copies only what the
//!   checkpointer has not (a few hundred pages at most), and its next write restarts the log.
//!
//!   The log is kept short because its index costs the writer in proportion to its length. SQLite
//!   finds the newest frame of a page, and appends a frame, through hash tables of 4,096 frames
//!   each, in which every frame of a page is an entry of its own; the pages every commit writes
//!   (the right-most leaves of the runs and queue tables and their indexes) pile up in long probe
//!   runs. callgrind on `bench/instructions.sh`'s async flow, with the log restarted at 16,000
//!   pages: 24 % of the writer thread's instructions in `walFindFrame` and `walIndexAppend` (4,500
//!   and 2,700 instructions a call); restarted at 1,000 pages, the writer's instructions per run
//!   went down by 17 %. Under `bench/load.sh` the throughput stayed the same and the p99 latency
//!   of async intake went from 6.5 to 3.3 ms and of sync invokes from 6.2 to 3.5 ms: the
//!   writer's own checkpoints, ten times as frequent, copy little and flush little.
//! - **a cap**: a checkpoint holds SQLite's checkpoint lock for as long as its flushes take (on the
//!   test machine, under load, over 100 ms while the writer committed a thousand batches), and the
//!   writer's own checkpoint cannot run meanwhile. At twice `reset_pages` the writer waits for the
//!   running checkpoint to end and then checkpoints, so the log's size has a hard bound. Only a
//!   disk slower than the writes ever makes the writer wait.
//! - **`journal_size_limit`**: after a restart the log file is truncated to the reset size, so a
//!   burst does not leave a large file behind.
//!
//! If the checkpointer thread is gone (it could not open its connection), the writer checkpoints at
//! every `checkpoint_pages` itself, as SQLite's automatic checkpoint did.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// When the log is checkpointed, in pages (4 KiB each by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalLimits {
    /// Growth of the log after which the checkpointer is woken.
    pub checkpoint_pages: i32,
    /// Size of the log at which the writer checkpoints what is left itself, so the log restarts;
    /// at twice this size it waits for a running checkpoint to do so.
    pub reset_pages: i32,
}

impl Default for WalLimits {
    fn default() -> WalLimits {
        WalLimits {
            // A quarter of the reset size, so the writer's own checkpoint finds most of the log
            // copied already.
            checkpoint_pages: 250,
            // 4 MiB of 4 KiB pages, less than one of the log index's hash tables (see the module
            // documentation).
            reset_pages: 1_000,
        }
    }
}

impl WalLimits {
    /// The `journal_size_limit` matching these limits, in bytes.
    pub fn journal_size_limit(&self, page_size: i64) -> i64 {
        i64::from(self.reset_pages) * page_size
    }

    /// Size of the log at which the writer waits for a running checkpoint, then checkpoints.
    pub fn cap_pages(&self) -> i32 {
        self.reset_pages.saturating_mul(2)
    }
}

thread_local! {
    /// Pages in the log after the last commit on this thread, as the WAL hook reported them. Only
    /// the writer thread commits on a connection with the hook.
    static WAL_PAGES: Cell<Option<c_int>> = const { Cell::new(None) };
}

/// The WAL hook of the write connection: notes the size of the log after each commit. Installing
/// a hook also turns off SQLite's automatic checkpoint on that connection (it is a hook itself).
fn note_wal_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(Some(pages));
    Ok(())
}

/// Installs the hook on the write connection. Must come after any `wal_autocheckpoint` pragma,
/// which would replace it.
pub(crate) fn install_hook(conn: &Connection) {
    conn.wal_hook(Some(note_wal_pages));
}

/// What the writer does after a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Nothing,
    /// Wake the checkpointer.
    Wake,
    /// Checkpoint on the writer's own connection unless a checkpoint is running.
    TryHere,
    /// Checkpoint on the writer's own connection, after the running checkpoint if there is one.
    WaitHere,
}

/// The writer's side: decides after each commit, from the size of the log, whether to wake the
/// checkpointer or to checkpoint itself.
#[derive(Debug)]
pub(crate) struct WalPolicy {
    limits: WalLimits,
    /// Size of the log when the checkpointer was last woken (or the writer last checkpointed).
    handed_at: c_int,
}

impl WalPolicy {
    pub fn new(limits: WalLimits) -> WalPolicy {
        WalPolicy {
            limits,
            handed_at: 0,
        }
    }

    /// The action for a log of `pages` pages after a commit, with or without a checkpointer.
    pub fn after_commit(&mut self, pages: c_int, checkpointer: bool) -> Action {
        if pages < self.handed_at {
            // The log restarted since.
            self.handed_at = 0;
        }
        if pages >= self.limits.cap_pages() {
            self.handed_at = pages;
            return Action::WaitHere;
        }
        if pages >= self.limits.reset_pages {
            self.handed_at = pages;
            return Action::TryHere;
        }
        if pages - self.handed_at < self.limits.checkpoint_pages {
            return Action::Nothing;
        }
        self.handed_at = pages;
        if checkpointer {
            Action::Wake
        } else {
            Action::WaitHere
        }
    }
}

/// The writer's handle on the checkpointer thread.
pub(crate) struct Checkpoints {
    policy: WalPolicy,
    wake: Option<mpsc::SyncSender<()>>,
    /// Held while a checkpoint runs, by either thread: SQLite refuses a second checkpoint at once
    /// without waiting, so the writer waits here when it must.
    running: Arc<Mutex<()>>,
}

impl Checkpoints {
    /// Starts the checkpointer thread on its own connection to `path`. Without a thread (the
    /// connection could not be opened), the writer checkpoints itself.
    pub fn start(path: &Path, limits: WalLimits) -> (Checkpoints, Option<JoinHandle<()>>) {
        // One pending wake-up is enough: a checkpoint copies everything committed before it starts.
        let (wake, woken) = mpsc::sync_channel(1);
        let running = Arc::new(Mutex::new(()));
        let held = running.clone();
        let thread = open_checkpointer(path).and_then(|conn| {
            std::thread::Builder::new()
                .name("idflow-sqlite-checkpointer".into())
                .spawn(move || checkpointer_loop(conn, woken, &held))
                .map_err(|error| tracing::warn!(%error, "no checkpointer thread; the writer checkpoints"))
                .ok()
        });
        let checkpoints = Checkpoints {
            policy: WalPolicy::new(limits),
            wake: thread.is_some().then_some(wake),
            running,
        };
        (checkpoints, thread)
    }

    /// The writer's checkpoints for a database without a log (in memory): nothing to do.
    pub fn none() -> Checkpoints {
        Checkpoints {
            policy: WalPolicy::new(WalLimits::default()),
            wake: None,
            running: Arc::new(Mutex::new(())),
        }
    }

    /// Called by the writer after each successful commit.
    pub fn after_commit(&mut self, conn: &Connection) {
        let Some(pages) = WAL_PAGES.take() else {
            return;
        };
        match self.policy.after_commit(pages, self.wake.is_some()) {
            Action::Nothing => {}
            Action::Wake => {
                let gone = self.wake.as_ref().is_some_and(|wake| {
                    matches!(wake.try_send(()), Err(mpsc::TrySendError::Disconnected(())))
                });
                if gone {
                    tracing::warn!("the checkpointer stopped; the writer checkpoints");
                    self.wake = None;
                    self.wait_and_checkpoint(conn);
                }
            }
            Action::TryHere => {
                if let Ok(_running) = self.running.try_lock() {
                    checkpoint(conn);
                }
            }
            Action::WaitHere => self.wait_and_checkpoint(conn),
        }
    }

    fn wait_and_checkpoint(&self, conn: &Connection) {
        let _running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        checkpoint(conn);
    }
}

fn open_checkpointer(path: &Path) -> Option<Connection> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
        | rusqlite::OpenFlags::SQLITE_OPEN_URI;
    Connection::open_with_flags(path, flags)
        .and_then(|conn| super::configure(&conn).map(|()| conn))
        .map_err(
            |error| tracing::warn!(%error, "no checkpointer connection; the writer checkpoints"),
        )
        .ok()
}

fn checkpointer_loop(conn: Connection, woken: mpsc::Receiver<()>, running: &Mutex<()>) {
    // Ends when the writer drops its sender, that is when the database closes.
    while woken.recv().is_ok() {
        let _running = running.lock().unwrap_or_else(PoisonError::into_inner);
        checkpoint(&conn);
    }
}

/// A `PASSIVE` checkpoint: copies what it can without waiting for anyone. `busy` means another
/// checkpoint was running or a reader still needs part of the log; the next one takes the rest.
fn checkpoint(conn: &Connection) {
    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    });
    match outcome {
        Ok((busy, log, copied)) => tracing::trace!(busy, log, copied, "wal checkpoint"),
        Err(error) => tracing::warn!(%error, "wal checkpoint failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Action, WalLimits, WalPolicy};

    const LIMITS: WalLimits = WalLimits {
        checkpoint_pages: 10,
        reset_pages: 50,
    };

    #[test]
    fn the_checkpointer_is_woken_once_per_growth_step() {
        let mut policy = WalPolicy::new(LIMITS);
        let actions: Vec<Action> = [3, 9, 10, 12, 19, 20, 31]
            .into_iter()
            .map(|pages| policy.after_commit(pages, true))
            .collect();
        assert_eq!(
            actions,
            [
                Action::Nothing,
                Action::Nothing,
                Action::Wake,
                Action::Nothing,
                Action::Nothing,
                Action::Wake,
                Action::Wake,
            ]
        );
    }

    #[test]
    fn the_writer_checkpoints_itself_at_the_reset_size_and_again_until_the_log_restarts() {
        let mut policy = WalPolicy::new(LIMITS);
        assert_eq!(policy.after_commit(45, true), Action::Wake);
        assert_eq!(policy.after_commit(50, true), Action::TryHere);
        // A checkpoint was running, or a reader held part of the log: the writer tries again.
        assert_eq!(policy.after_commit(52, true), Action::TryHere);
        // At the cap it waits for the running checkpoint instead of skipping.
        assert_eq!(policy.after_commit(100, true), Action::WaitHere);
        // The log restarted: counting starts over.
        assert_eq!(policy.after_commit(4, true), Action::Nothing);
        assert_eq!(policy.after_commit(14, true), Action::Wake);
    }

    #[test]
    fn without_a_checkpointer_the_writer_checkpoints_at_every_step() {
        let mut policy = WalPolicy::new(LIMITS);
        assert_eq!(policy.after_commit(9, false), Action::Nothing);
        assert_eq!(policy.after_commit(11, false), Action::WaitHere);
        assert_eq!(policy.after_commit(21, false), Action::WaitHere);
    }
}
