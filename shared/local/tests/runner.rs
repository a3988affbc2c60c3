//! The effect driver on the SQLite store: long waits go to wake-ups, short ones stay queue delays;
//! a parked run resumed by another worker reads its out-of-line values back.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::clock::ManualClock;
use domain::model::ProjectConfig;
use domain::ports::{Clock, QueueError, QueueMessage};
use domain::ports::{FlowStore, RunQueue, StoredFlow, Wakeups};
use domain::run::{RunId, RunStatus, TriggerInfo};
use domain::runner::{Disposition, MAX_QUEUE_DELAY, RunnerConfig, Runtime};
use local::secrets::LocalSecrets;
use local::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};
use serde_json::Value;

/// Remembers the wake-ups it was asked for.
#[derive(Default)]
struct Recorded(Mutex<Vec<(RunId, DateTime<Utc>)>>);

#[async_trait::async_trait]
impl Wakeups for Recorded {
    async fn schedule_wakeup(
        &self,
        message: &QueueMessage,
        at: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((message.run_id, at));
        Ok(())
    }
}

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().expect("time")
}

/// A runtime on SQLite with flows `long` (wait 2h) and `short` (wait 10m), and the recorder
/// as its wake-ups when given; with its queue, which the tests consume as a worker does.
async fn runtime(
    clock: &ManualClock,
    wakeups: Option<Arc<Recorded>>,
) -> (Runtime, Arc<SqliteRunQueue>) {
    let db = SqliteDb::open_in_memory().expect("database");
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let flows = Arc::new(SqliteFlowStore::new(db.clone()));
    for (name, wait) in [("long", "2h"), ("short", "10m")] {
        let source = format!(
            "name: {name}\nsteps:\n  - wait: {wait}\n  - {{ id: after, card: text.compose, with: {{ text: woke }} }}\n"
        );
        flows
            .put(&StoredFlow::new(
                name,
                &format!("{name}.yaml"),
                &source,
                t0(),
            ))
            .await
            .expect("deploy");
    }
    let queue = Arc::new(SqliteRunQueue::new(db.clone(), clock.clone(), 5));
    let runtime = Runtime::new(
        flows,
        Arc::new(SqliteRunStore::new(db)),
        queue.clone(),
        clock,
        Arc::new(LocalSecrets::new(".")),
        ProjectConfig::default(),
        RunnerConfig::default(),
    );
    let runtime = match wakeups {
        Some(wakeups) => runtime.with_wakeups(wakeups),
        None => runtime,
    };
    (runtime, queue)
}

/// Processes every visible message; returns how many there were.
async fn drain((runtime, queue): &(Runtime, Arc<SqliteRunQueue>)) -> usize {
    let deliveries = queue
        .receive(10, Duration::from_secs(60), Duration::ZERO)
        .await
        .expect("receive");
    for delivery in &deliveries {
        assert_eq!(runtime.process(delivery).await, Disposition::Done);
        queue.delete(&delivery.receipt).await.expect("delete");
    }
    deliveries.len()
}

#[tokio::test]
async fn waits_beyond_the_queue_delay_go_to_wakeups_and_shorter_ones_to_the_queue() {
    let clock = ManualClock::new(t0());
    let recorded = Arc::new(Recorded::default());
    let deployment = runtime(&clock, Some(recorded.clone())).await;
    let (runtime, queue) = &deployment;
    let start = |flow: &'static str| async move {
        runtime
            .start_run(flow, Value::Null, TriggerInfo::Manual, None)
            .await
            .expect("start")
            .0
    };
    let long = start("long").await;
    let short = start("short").await;
    assert_eq!(drain(&deployment).await, 2);
    let wake = t0() + chrono::Duration::hours(2);
    assert_eq!(
        *recorded.0.lock().expect("lock"),
        [(long, wake)],
        "only the 2-hour wait is scheduled"
    );
    clock.advance(Duration::from_secs(10 * 60));
    assert_eq!(
        drain(&deployment).await,
        1,
        "the 10-minute wait was a queue delay"
    );
    let short_run = runtime.run(short).await.expect("get").expect("run");
    assert_eq!(short_run.status, RunStatus::Succeeded);
    clock.advance(Duration::from_secs(6 * 60));
    assert_eq!(
        drain(&deployment).await,
        0,
        "no 15-minute hop for the long wait"
    );
    // The wake-up arrives as the run's queue message.
    clock.advance(Duration::from_secs(2 * 3600));
    queue
        .send(&QueueMessage { run_id: long }, Duration::ZERO)
        .await
        .expect("send");
    assert_eq!(drain(&deployment).await, 1);
    let long_run = runtime.run(long).await.expect("get").expect("run");
    assert_eq!(long_run.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn without_wakeups_long_waits_hop_through_the_queue() {
    let clock = ManualClock::new(t0());
    let deployment = runtime(&clock, None).await;
    let runtime = &deployment.0;
    let (long, _) = runtime
        .start_run("long", Value::Null, TriggerInfo::Manual, None)
        .await
        .expect("start");
    assert_eq!(drain(&deployment).await, 1);
    clock.advance(MAX_QUEUE_DELAY);
    assert_eq!(drain(&deployment).await, 1, "a hop after 15 minutes");
    let run = runtime.run(long).await.expect("get").expect("run");
    assert_eq!(
        run.status,
        RunStatus::Waiting,
        "still waiting after the hop"
    );
}

/// A blob store that counts what it is asked, over the SQLite one.
struct Counted {
    inner: local::sqlite::SqliteBlobStore,
    puts: Mutex<Vec<String>>,
    gets: Mutex<usize>,
}

#[async_trait::async_trait]
impl domain::ports::BlobStore for Counted {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), domain::ports::StoreError> {
        self.puts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(key.to_owned());
        self.inner.put(key, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, domain::ports::StoreError> {
        *self.gets.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.inner.get(key).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, domain::ports::StoreError> {
        self.inner.delete_prefix(prefix).await
    }
}

#[tokio::test]
async fn a_parked_run_resumed_by_another_worker_reads_its_large_values_back_from_the_blob_store() {
    use domain::ports::BlobStore;
    let clock = ManualClock::new(t0());
    let db = SqliteDb::open_in_memory().expect("database");
    let shared_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let source = "name: big\nsteps:\n  - id: make\n    card: text.compose\n    with: { text: \"{{ input.text }}\" }\n  - wait: 10m\n  - card: flow.return\n    with: { body: \"{{ steps.make | length }} {{ steps.make[:3] }}\" }\n".to_owned();
    SqliteFlowStore::new(db.clone())
        .put(&StoredFlow::new("big", "big.yaml", &source, t0()))
        .await
        .expect("deploy");
    let queue = Arc::new(SqliteRunQueue::new(db.clone(), shared_clock.clone(), 5));
    let blobs = Arc::new(Counted {
        inner: local::sqlite::SqliteBlobStore::new(db.clone()),
        puts: Mutex::new(Vec::new()),
        gets: Mutex::new(0),
    });
    // Two workers on one database, as two processes would be: neither shares memory with the other.
    let worker = || {
        Runtime::new(
            Arc::new(SqliteFlowStore::new(db.clone())),
            Arc::new(SqliteRunStore::new(db.clone())),
            queue.clone(),
            shared_clock.clone(),
            Arc::new(LocalSecrets::new(".")),
            ProjectConfig::default(),
            RunnerConfig::default(),
        )
        .with_blobs(blobs.clone())
    };
    let first = (worker(), queue.clone());
    let text = "abc".repeat(2000);
    let run = first
        .0
        .start_run(
            "big",
            serde_json::json!({ "text": text }),
            TriggerInfo::Manual,
            None,
        )
        .await
        .expect("start")
        .0;
    assert_eq!(drain(&first).await, 1);
    let parked = first.0.run(run).await.expect("get").expect("run");
    assert_eq!(parked.status, RunStatus::Waiting);
    let stored = blobs.puts.lock().expect("lock").clone();
    assert!(
        stored
            .iter()
            .any(|key| key.starts_with(&format!("runs/{run}/"))),
        "the 6,000-character output went out of line: {stored:?}"
    );
    let gets_before = *blobs.gets.lock().expect("lock");

    clock.advance(Duration::from_secs(10 * 60));
    let second = (worker(), queue.clone());
    assert_eq!(drain(&second).await, 1);
    let done = second.0.run(run).await.expect("get").expect("run");
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let body = done.output.as_ref().and_then(|o| o.get("body")).cloned();
    assert_eq!(body, Some(Value::from("6000 abc")), "{:?}", done.output);
    assert!(
        *blobs.gets.lock().expect("lock") > gets_before,
        "the second worker read the value from the blob store"
    );
    // Ended: the run's values are gone.
    assert_eq!(
        blobs
            .inner
            .delete_prefix(&format!("runs/{run}/"))
            .await
            .expect("delete"),
        0
    );
}
