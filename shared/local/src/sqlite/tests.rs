//! The port suites against the SQLite adapters, and what only SQLite promises: durability across
//! reopen, queue timing on a manual clock, batch isolation of the group commit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use domain::clock::ManualClock;
use domain::conformance::{LEASE, at, queued_run, step_record, t0};
use domain::ports::{Checkpoint, Created, FlowStore, QueueMessage, RunQueue, RunStore, StoredFlow};
use domain::run::RunStatus;

fn memory() -> SqliteDb {
    SqliteDb::open_in_memory().expect("in-memory database opens")
}

fn temporary() -> SqliteDb {
    SqliteDb::open_temporary().expect("temporary database opens")
}

/// A clock that stands still unless a test moves it.
fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(t0()))
}

mod memory_run_store {
    domain::run_store_conformance!(super::SqliteRunStore::new(super::memory()));
}

mod file_run_store {
    domain::run_store_conformance!(super::SqliteRunStore::new(super::temporary()));
}

mod memory_blob_store {
    domain::blob_store_conformance!(super::SqliteBlobStore::new(super::memory()));
}

mod file_blob_store {
    domain::blob_store_conformance!(super::SqliteBlobStore::new(super::temporary()));
}

mod memory_flow_store {
    domain::flow_store_conformance!(super::SqliteFlowStore::new(super::memory()));
}

mod file_flow_store {
    domain::flow_store_conformance!(super::SqliteFlowStore::new(super::temporary()));
}

mod memory_run_queue {
    domain::run_queue_conformance!(super::SqliteRunQueue::new(
        super::memory(),
        super::manual_clock(),
        3
    ));
}

mod file_run_queue {
    domain::run_queue_conformance!(super::SqliteRunQueue::new(
        super::temporary(),
        super::manual_clock(),
        3
    ));
}

mod schedules {
    domain::schedules_conformance!(super::SqliteSchedules::new(super::temporary()));
}

/// A path in the temp dir, for tests that reopen a file; `remove` deletes it with its WAL files.
struct TempPath(PathBuf);

impl TempPath {
    fn new() -> TempPath {
        TempPath(std::env::temp_dir().join(format!("idflow-test-{}.db", ulid::Ulid::new())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

#[tokio::test]
async fn data_survives_reopen() {
    let path = TempPath::new();
    let run = queued_run("persist", at(0));
    let flow = StoredFlow {
        name: "persist".into(),
        version: "v1".into(),
        source: "name: persist\n".into(),
        path: "flows/persist.yaml".into(),
        deployed_at: at(0),
    };
    {
        let db = SqliteDb::open(&path.0).expect("open");
        let runs = SqliteRunStore::new(db.clone());
        let flows = SqliteFlowStore::new(db.clone());
        let queue = SqliteRunQueue::new(db.clone(), manual_clock(), 3);
        flows.put(&flow).await.expect("put");
        assert_eq!(
            runs.create(&run, Some("key")).await.expect("create"),
            Created::New
        );
        runs.claim(run.id, "w", at(1), LEASE)
            .await
            .expect("claim")
            .expect("claimable");
        let checkpoint = Checkpoint {
            run_id: run.id,
            owner: "w".into(),
            status: RunStatus::Running,
            state: Some(serde_json::json!({ "pc": 1 })),
            steps: vec![step_record(0)],
            wake_at: None,
            output: None,
            error: None,
            finished_at: None,
            drop_input: false,
            release: false,
        };
        runs.checkpoint(&checkpoint).await.expect("checkpoint");
        queue
            .send(&QueueMessage { run_id: run.id }, Duration::ZERO)
            .await
            .expect("send");
    }
    let db = SqliteDb::open(&path.0).expect("reopen");
    let runs = SqliteRunStore::new(db.clone());
    let stored = runs.get(run.id).await.expect("get").expect("run survived");
    assert_eq!(stored.status, RunStatus::Running);
    assert_eq!(stored.state, Some(serde_json::json!({ "pc": 1 })));
    assert_eq!(
        runs.steps(run.id).await.expect("steps"),
        vec![step_record(0)]
    );
    let duplicate = runs
        .create(&queued_run("persist", at(5)), Some("key"))
        .await
        .expect("create");
    assert_eq!(duplicate, Created::Duplicate(run.id), "dedupe keys survive");
    assert_eq!(
        SqliteFlowStore::new(db.clone())
            .current("persist")
            .await
            .expect("current"),
        Some(flow)
    );
    let queue = SqliteRunQueue::new(db, manual_clock(), 3);
    let got = queue
        .receive(10, LEASE, Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(
        got.iter()
            .map(|delivery| delivery.message.run_id)
            .collect::<Vec<_>>(),
        vec![run.id]
    );
}

/// A run's end deletes its values by prefix, and skips the writer while the blob table is known to
/// be empty: values saved before a restart must still be found and deleted after it.
#[tokio::test]
async fn values_saved_before_a_reopen_are_deleted_after_it() {
    use domain::ports::BlobStore;
    let path = TempPath::new();
    {
        let blobs = SqliteBlobStore::new(SqliteDb::open(&path.0).expect("open"));
        assert_eq!(
            blobs.delete_prefix("runs/a/").await.expect("delete"),
            0,
            "nothing to delete in a new file"
        );
        blobs.put("runs/a/1", b"[1]".to_vec()).await.expect("put");
    }
    let blobs = SqliteBlobStore::new(SqliteDb::open(&path.0).expect("reopen"));
    assert_eq!(blobs.delete_prefix("runs/a/").await.expect("delete"), 1);
    assert_eq!(blobs.get("runs/a/1").await.expect("get"), None);
}

/// Pauses are cached for API requests; a pause or resume through any flow store on the same
/// database is seen by every other at once.
#[tokio::test]
async fn a_pause_is_seen_at_once_by_every_flow_store_on_the_database() {
    let db = temporary();
    let (reader, writer) = (SqliteFlowStore::new(db.clone()), SqliteFlowStore::new(db));
    assert_eq!(reader.paused("offboard").await.expect("paused"), None);
    writer
        .set_paused("offboard", Some(at(10)))
        .await
        .expect("pause");
    assert_eq!(
        reader.paused("offboard").await.expect("paused"),
        Some(at(10))
    );
    writer.set_paused("offboard", None).await.expect("resume");
    assert_eq!(reader.paused("offboard").await.expect("paused"), None);
}

#[tokio::test]
async fn refuses_a_database_from_a_newer_version() {
    let path = TempPath::new();
    drop(SqliteDb::open(&path.0).expect("open"));
    let conn = rusqlite::Connection::open(&path.0).expect("raw open");
    conn.pragma_update(None, "user_version", 99)
        .expect("set version");
    drop(conn);
    let error = SqliteDb::open(&path.0).expect_err("newer schema is refused");
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(
        source,
        Some(format!(
            "database schema version 99 is newer than this idflow supports ({})",
            super::SCHEMA_VERSION
        ))
    );
}

#[tokio::test]
async fn queue_redelivers_when_visibility_expires() {
    let clock = manual_clock();
    let queue = SqliteRunQueue::new(memory(), clock.clone(), 3);
    let message = QueueMessage {
        run_id: queued_run("f", at(0)).id,
    };
    queue.send(&message, Duration::ZERO).await.expect("send");
    let first = queue
        .receive(1, Duration::from_secs(30), Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        queue
            .receive(1, LEASE, Duration::ZERO)
            .await
            .expect("receive"),
        Vec::new(),
        "still hidden"
    );
    clock.advance(Duration::from_secs(1));
    let second = queue
        .receive(1, LEASE, Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(second.len(), 1, "visible again after 30 s");
    assert_eq!((second[0].message, second[0].receive_count), (message, 2));
    assert!(matches!(
        queue.delete(&first[0].receipt).await,
        Err(domain::ports::QueueError::StaleReceipt)
    ));
    queue
        .delete(&second[0].receipt)
        .await
        .expect("delete with the current receipt");
}

#[tokio::test]
async fn delayed_message_becomes_visible_when_the_delay_passes() {
    let clock = manual_clock();
    let queue = SqliteRunQueue::new(memory(), clock.clone(), 3);
    let message = QueueMessage {
        run_id: queued_run("f", at(0)).id,
    };
    queue
        .send(&message, Duration::from_secs(60))
        .await
        .expect("send");
    assert_eq!(
        queue
            .receive(1, LEASE, Duration::ZERO)
            .await
            .expect("receive"),
        Vec::new()
    );
    clock.advance(Duration::from_secs(60));
    let got = queue
        .receive(1, LEASE, Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(
        got.iter()
            .map(|delivery| delivery.message)
            .collect::<Vec<_>>(),
        vec![message]
    );
}

#[tokio::test]
async fn long_poll_wakes_when_a_delayed_message_becomes_visible() {
    let clock = manual_clock();
    let queue = SqliteRunQueue::new(memory(), clock.clone(), 3);
    let message = QueueMessage {
        run_id: queued_run("f", at(0)).id,
    };
    queue
        .send(&message, Duration::from_secs(60))
        .await
        .expect("send");
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.receive(1, LEASE, Duration::from_secs(300)).await }
    });
    tokio::task::yield_now().await;
    clock.advance(Duration::from_secs(60));
    let got = waiting.await.expect("receiver finishes").expect("receive");
    assert_eq!(
        got.iter()
            .map(|delivery| delivery.message)
            .collect::<Vec<_>>(),
        vec![message]
    );
}

#[tokio::test]
async fn long_poll_gives_up_when_the_wait_passes() {
    let clock = manual_clock();
    let queue = SqliteRunQueue::new(memory(), clock.clone(), 3);
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.receive(1, LEASE, Duration::from_secs(20)).await }
    });
    tokio::task::yield_now().await;
    clock.advance(Duration::from_secs(20));
    let got = waiting.await.expect("receiver finishes").expect("receive");
    assert_eq!(got, Vec::new());
}

#[tokio::test]
async fn a_failing_operation_does_not_undo_its_batch() {
    let db = temporary();
    let runs = SqliteRunStore::new(db.clone());
    let victim = queued_run("f", at(0));
    runs.create(&victim, None).await.expect("create");
    let bad = Checkpoint {
        run_id: victim.id,
        owner: "nobody".into(),
        status: RunStatus::Succeeded,
        state: None,
        steps: vec![step_record(0)],
        wake_at: None,
        output: None,
        error: None,
        finished_at: Some(at(1)),
        drop_input: true,
        release: true,
    };
    let fresh: Vec<_> = (0..200).map(|i| queued_run("f", at(i + 1))).collect();
    // Issued together, the creates and the refused checkpoint land in the same few batches.
    let creates = futures::future::join_all(fresh.iter().map(|run| runs.create(run, None)));
    let (created, refused) = tokio::join!(creates, runs.checkpoint(&bad));
    assert!(
        matches!(refused, Err(domain::ports::StoreError::Conflict(_))),
        "got {refused:?}"
    );
    assert!(
        created
            .iter()
            .all(|result| matches!(result, Ok(Created::New)))
    );
    for run in &fresh {
        assert_eq!(runs.get(run.id).await.expect("get").as_ref(), Some(run));
    }
    assert_eq!(runs.get(victim.id).await.expect("get"), Some(victim));
}

#[tokio::test]
async fn create_and_send_writes_both_or_neither() {
    let clock = manual_clock();
    let db = temporary();
    let runs = SqliteRunStore::new(db.clone());
    let queue = SqliteRunQueue::new(db, clock, 3);
    let run = queued_run("f", at(0));
    assert_eq!(
        queue
            .create_and_send(&run, Some("k"), Duration::ZERO)
            .await
            .expect("create"),
        Created::New
    );
    let again = queued_run("f", at(1));
    let duplicate = queue
        .create_and_send(&again, Some("k"), Duration::ZERO)
        .await
        .expect("create");
    assert_eq!(duplicate, Created::Duplicate(run.id));
    assert_eq!(runs.get(run.id).await.expect("get"), Some(run.clone()));
    let got = queue
        .receive(10, LEASE, Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(
        got.iter()
            .map(|delivery| delivery.message.run_id)
            .collect::<Vec<_>>(),
        vec![run.id]
    );
    let too_long = queue
        .create_and_send(&queued_run("f", at(2)), None, Duration::from_secs(3600))
        .await;
    assert!(too_long.is_err(), "a delay over 15 minutes is refused");
}

/// Throughput of the API's write path: 8 tasks each creating a run and sending its message.
/// `cargo test --release -p local --lib create_and_send_throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run by hand in release mode"]
async fn create_and_send_throughput() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 5_000;
    for combined in [false, true] {
        let db = temporary();
        let runs = Arc::new(SqliteRunStore::new(db.clone()));
        let queue = Arc::new(SqliteRunQueue::new(
            db,
            Arc::new(domain::clock::SystemClock),
            3,
        ));
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (runs, queue) = (runs.clone(), queue.clone());
                tokio::spawn(async move {
                    for i in 0..PER_TASK {
                        let mut run = queued_run("bench", chrono::Utc::now());
                        run.input = serde_json::json!({ "task": task, "i": i, "user": { "id": "00u1", "email": "a@b.c" } });
                        let key = format!("{task}-{i}");
                        if combined {
                            queue.create_and_send(&run, Some(&key), Duration::ZERO).await.expect("create");
                        } else {
                            runs.create(&run, Some(&key)).await.expect("create");
                            queue.send(&QueueMessage { run_id: run.id }, Duration::ZERO).await.expect("send");
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let elapsed = started.elapsed();
        let pairs = (TASKS * PER_TASK) as f64;
        println!(
            "{}: {} create+send pairs in {:.2?}: {:.0}/s",
            if combined {
                "create_and_send"
            } else {
                "create, then send"
            },
            TASKS * PER_TASK,
            elapsed,
            pairs / elapsed.as_secs_f64()
        );
    }
}

/// Size of a file, 0 when it does not exist.
fn file_len(path: &std::path::Path, suffix: &str) -> u64 {
    let mut file = path.to_path_buf().into_os_string();
    file.push(suffix);
    std::fs::metadata(file).map(|meta| meta.len()).unwrap_or(0)
}

#[tokio::test]
async fn the_log_stays_bounded_and_reaches_the_database_file_under_continuous_writes() {
    // Checkpoints run beside the writer (`checkpoint.rs`); small limits make a few thousand commits
    // cross the reset size many times.
    let limits = WalLimits {
        checkpoint_pages: 16,
        reset_pages: 64,
    };
    let db = SqliteDb::open_temporary_with(limits).expect("temporary database opens");
    let path = db.inner.readers.as_ref().expect("a file").path.clone();
    let page_size: u64 = db
        .read(|conn| Ok(conn.pragma_query_value(None, "page_size", |row| row.get(0))?))
        .await
        .expect("page size");
    let runs = SqliteRunStore::new(db.clone());
    let padding = "x".repeat(2_000);
    let mut largest_log = 0;
    let commits = 3_000;
    for i in 0..commits {
        let mut run = queued_run("bounded", at(i));
        run.input = serde_json::json!({ "padding": padding });
        runs.create(&run, None).await.expect("create");
        largest_log = largest_log.max(file_len(&path, "-wal"));
    }
    // Without checkpoints the log would hold every commit: over 6 MB here. Past the cap the writer
    // waits for a running checkpoint, so the log exceeds it by one commit at most (a few pages, more
    // when a B-tree page splits). A log frame is a page and a 24-byte header.
    let bound = (u64::try_from(limits.cap_pages()).expect("positive") + 32) * (page_size + 24);
    assert!(
        largest_log <= bound,
        "the log grew to {largest_log} bytes (bound {bound})"
    );
    let written = u64::try_from(commits).expect("positive") * 2_000;
    assert!(
        file_len(&path, "") >= written / 2,
        "the database file holds {} bytes of {written} written",
        file_len(&path, "")
    );
    let stored: u64 = db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM runs", [], |row| row.get(0))?))
        .await
        .expect("count");
    assert_eq!(stored, u64::try_from(commits).expect("positive"));
}

/// A write operation of the batch tests.
type Op = Box<dyn FnMut(&Connection) -> Result<(), Fail> + Send>;

/// Runs `ops` in one batch of the writer: a first operation holds the writer until all of them are
/// queued behind it. Returns their results in order.
async fn in_one_batch(db: &SqliteDb, ops: Vec<Op>) -> Vec<Result<(), Fail>> {
    let (started, running) = std::sync::mpsc::channel::<()>();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let blocker = db.write(move |_| {
        let _ = started.send(());
        let _ = held.recv();
        Ok(())
    });
    let mut blocker = std::pin::pin!(blocker);
    assert!(futures::poll!(&mut blocker).is_pending());
    running.recv().expect("the writer runs the blocker");
    let mut pending: Vec<_> = ops.into_iter().map(|op| Box::pin(db.write(op))).collect();
    for op in &mut pending {
        assert!(futures::poll!(op).is_pending());
    }
    release.send(()).expect("release");
    blocker.await.expect("blocker");
    futures::future::join_all(pending).await
}

/// A temporary database with an empty `letters` table.
async fn letters_db() -> SqliteDb {
    let db = temporary();
    db.write(|conn| Ok(conn.execute_batch("CREATE TABLE letters (x TEXT)")?))
        .await
        .expect("table");
    db
}

async fn letters(db: &SqliteDb) -> Vec<String> {
    db.read(|conn| {
        let mut select = conn.prepare("SELECT x FROM letters ORDER BY x")?;
        let rows = select
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    })
    .await
    .expect("letters")
}

fn insert(letter: &'static str) -> impl FnMut(&Connection) -> Result<(), Fail> + Send {
    move |conn| {
        conn.execute("INSERT INTO letters (x) VALUES (?1)", [letter])?;
        Ok(())
    }
}

/// [`insert`], and a count of the times the operation ran.
fn counted_insert(letter: &'static str) -> (Op, Arc<std::sync::atomic::AtomicUsize>) {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    let mut insert = insert(letter);
    let op: Op = Box::new(move |conn: &Connection| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        insert(conn)
    });
    (op, runs)
}

#[tokio::test]
async fn an_operation_failing_after_its_writes_leaves_none_and_its_batch_commits() {
    let db = letters_db().await;
    let (a, runs_of_a) = counted_insert("a");
    let results = in_one_batch(
        &db,
        vec![
            a,
            Box::new(|conn: &Connection| {
                conn.execute("INSERT INTO letters (x) VALUES ('b')", [])?;
                Err(Fail::Conflict("b changed its mind".into()))
            }),
            Box::new(insert("c")),
        ],
    )
    .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(Fail::Conflict(_))), "{results:?}");
    assert_eq!(letters(&db).await, ["a", "c"]);
    // The batch ran once without savepoints, then again with one per operation.
    assert_eq!(runs_of_a.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_operation_refused_before_writing_does_not_rerun_its_batch() {
    let db = letters_db().await;
    let (a, runs_of_a) = counted_insert("a");
    let results = in_one_batch(
        &db,
        vec![
            a,
            Box::new(|_: &Connection| Err(Fail::Conflict("lease lost".into()))),
            Box::new(insert("c")),
        ],
    )
    .await;
    assert!(matches!(results[1], Err(Fail::Conflict(_))), "{results:?}");
    assert_eq!(letters(&db).await, ["a", "c"]);
    assert_eq!(runs_of_a.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_panicking_operation_leaves_no_writes_and_its_batch_commits() {
    let db = letters_db().await;
    let results = in_one_batch(
        &db,
        vec![
            Box::new(insert("a")),
            Box::new(|conn: &Connection| {
                conn.execute("INSERT INTO letters (x) VALUES ('b')", [])?;
                panic!("an operation's bug");
            }),
            Box::new(insert("c")),
        ],
    )
    .await;
    assert!(
        matches!(results[1], Err(Fail::Adapter(SqliteError::Panicked))),
        "{results:?}"
    );
    assert_eq!(letters(&db).await, ["a", "c"]);
}

#[tokio::test]
async fn step_records_written_one_per_row_and_several_per_row_read_back_in_order() {
    let db = memory();
    let store = SqliteRunStore::new(db.clone());
    let run = queued_run("flow", t0());
    store.create(&run, None).await.expect("create");
    store
        .claim(run.id, "w1", t0(), LEASE)
        .await
        .expect("claim")
        .expect("claimed");
    // Records 0 and 1 as an earlier release wrote them: one row each.
    let id = run.id.to_string();
    let old: Vec<String> = (0..2)
        .map(|seq| serde_json::to_string(&step_record(seq)).expect("json"))
        .collect();
    db.write(move |conn| {
        for (seq, record) in old.iter().enumerate() {
            conn.execute(
                "INSERT INTO steps (run_id, seq, record) VALUES (?1, ?2, ?3)",
                rusqlite::params![id, seq, record],
            )?;
        }
        conn.execute("UPDATE runs SET step_count = 2 WHERE id = ?1", [&id])?;
        Ok(())
    })
    .await
    .expect("old rows");
    let checkpoint = |steps: Vec<domain::run::StepRecord>| Checkpoint {
        steps,
        ..domain::conformance::checkpoint(&run, "w1")
    };
    store
        .checkpoint(&checkpoint((2..5).map(step_record).collect()))
        .await
        .expect("three records in one write");
    store
        .checkpoint(&checkpoint(vec![step_record(5)]))
        .await
        .expect("one record");
    let rows: i64 = db
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM steps", [], |row| row.get(0))?))
        .await
        .expect("count");
    assert_eq!(rows, 4, "two old rows, then one row per write");
    let steps = store.steps(run.id).await.expect("steps");
    assert_eq!(steps, (0..6).map(step_record).collect::<Vec<_>>());
    let stored = store.get(run.id).await.expect("get").expect("run");
    assert_eq!(stored.step_count, 6);
    // A write whose records do not go on from the stored count changes nothing.
    let stale = store
        .checkpoint(&checkpoint((4..6).map(step_record).collect()))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    let gap = store
        .checkpoint(&checkpoint(vec![step_record(6), step_record(8)]))
        .await;
    assert!(matches!(gap, Err(StoreError::Conflict(_))), "{gap:?}");
    assert_eq!(store.steps(run.id).await.expect("steps").len(), 6);
}
