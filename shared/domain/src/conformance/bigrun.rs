//! The big run: a flow that holds a directory, driven end to end through a [`Runtime`] on the
//! adapters under test. Identity flows routinely read every user of an org, then act on some; such a
//! run must succeed wherever idflow runs, and what it writes must follow its data, not its data
//! times its steps.
//!
//! The flow ([`BIG_RUN_FLOW`]) reads [`BIG_RUN_USERS`] users with `okta.find_users` (about 10 MB of
//! JSON), maps them to their logins, then reads [`BIG_RUN_READS`] of them one by one with
//! `okta.read_user`: one effectful step, and so one checkpoint, each. The caller equips the runtime:
//! its run store, queue and blob store are the adapters under test, and its `okta` connection points
//! at okta-sim seeded with [`BIG_RUN_USERS`] active users (okta-sim is the one fake of an outside
//! service, and this crate cannot start it).
//!
//! [`CountingRunStore`] and [`CountingBlobStore`] wrap any adapter to count the bytes a run writes;
//! `bench/bigrun.sh` prints them against the step data's size.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::ports::{
    BlobStore, Checkpoint, Created, ParkOutcome, RunStore, RunStoreLayer, StoreError, StoredFlow,
};
use crate::run::{Run, RunStatus, StepRecord, TriggerInfo};
use crate::runner::Runtime;

/// Users the big run reads.
pub const BIG_RUN_USERS: usize = 5_000;
/// Users it then reads one by one: one effectful step each.
pub const BIG_RUN_READS: usize = 300;

/// The big run's flow.
pub const BIG_RUN_FLOW: &str = r#"name: directory
steps:
  - id: users
    card: okta.find_users
    with: { filter: 'status eq "ACTIVE"' }
  - id: logins
    card: list.map
    with: { list: "{{ steps.users }}", key: profile.login }
  - id: each
    for_each: "{{ steps.users[:300] }}"
    as: user
    steps:
      - { id: read, card: okta.read_user, with: { user: "{{ user.id }}" } }
  - card: flow.return
    with:
      body:
        users: "{{ steps.users | length }}"
        logins: "{{ steps.logins | length }}"
        read: "{{ steps.each.count }}"
"#;

/// The big run's flow with a working-memory budget below what it holds.
pub fn budgeted_flow(memory: &str) -> String {
    BIG_RUN_FLOW.replacen(
        "name: directory\n",
        &format!("name: directory\nlimits: {{ memory: {memory} }}\n"),
        1,
    )
}

/// What a finished big run looked like.
#[derive(Debug, Clone)]
pub struct BigRun {
    pub run: Run,
    pub steps: Vec<StepRecord>,
}

/// Deploys `source` (a flow named `directory`) on the runtime's flow store at `now`.
pub async fn deploy(runtime: &Runtime, source: &str, now: DateTime<Utc>) {
    runtime
        .flows
        .put(&StoredFlow::new("directory", "directory.yaml", source, now))
        .await
        .expect("the flow deploys");
    runtime.invalidate_flows();
}

/// Starts a run of `directory` and works its queue like a worker until the run ends.
pub async fn drive_to_end(runtime: &Runtime) -> BigRun {
    let (id, _) = runtime
        .start_run("directory", json!({}), TriggerInfo::Manual, None)
        .await
        .expect("the run starts");
    // Each delivery advances the run until it parks; it parks only between pages of work, so a
    // few deliveries end it. The bound turns a run that never ends into a failure, not a hang.
    for _ in 0..1_000 {
        let run = runtime
            .run(id)
            .await
            .expect("get succeeds")
            .expect("the run exists");
        if run.status.is_terminal() {
            let steps = runtime.steps(id).await.expect("steps succeed");
            return BigRun { run, steps };
        }
        let deliveries = runtime
            .queue
            .receive(10, Duration::from_secs(300), Duration::from_secs(1))
            .await
            .expect("receive succeeds");
        for delivery in deliveries {
            runtime.process(&delivery).await;
            runtime
                .queue
                .delete(&delivery.receipt)
                .await
                .expect("delete succeeds");
        }
    }
    panic!("the big run {id} did not end");
}

/// The big run succeeds: every user read, mapped and counted, the 300 reads recorded, and nothing
/// of its state (or the values it held out of line) left once it ended.
pub async fn big_run_succeeds(runtime: &Runtime, now: DateTime<Utc>) -> BigRun {
    deploy(runtime, BIG_RUN_FLOW, now).await;
    let big = drive_to_end(runtime).await;
    assert_eq!(
        big.run.status,
        RunStatus::Succeeded,
        "the big run succeeds: {:?}",
        big.run.error
    );
    assert_eq!(
        big.run.output.as_ref().map(|o| o["body"].clone()),
        Some(json!({ "users": BIG_RUN_USERS, "logins": BIG_RUN_USERS, "read": BIG_RUN_READS })),
        "every user read and mapped, {BIG_RUN_READS} read one by one"
    );
    let reads = big
        .steps
        .iter()
        .filter(|s| s.card == "okta.read_user")
        .count();
    assert_eq!(reads, BIG_RUN_READS, "one step record per read");
    assert_eq!(
        big.steps.len(),
        BIG_RUN_READS + 4,
        "users, logins, the reads, the loop and the return"
    );
    assert!(
        big.run.state.is_none(),
        "the engine state is dropped when the run ends"
    );
    if let Some(blobs) = &runtime.blobs {
        let left = blobs
            .delete_prefix(&crate::values::run_prefix(big.run.id))
            .await
            .expect("delete succeeds");
        assert_eq!(left, 0, "the values the run held out of line are deleted");
    }
    big
}

/// The working-memory budget holds the same on every store: the run that would hold more step
/// data than `limits.memory` fails at the step that would pass it, naming it.
pub async fn big_run_stops_at_its_memory_budget(runtime: &Runtime, now: DateTime<Utc>) {
    deploy(runtime, &budgeted_flow("1MiB"), now).await;
    let big = drive_to_end(runtime).await;
    assert_eq!(big.run.status, RunStatus::Failed, "the run fails");
    let error = big.run.error.clone().expect("a run error");
    assert_eq!(error.step.as_deref(), Some("users"), "{error:?}");
    let record = big.steps.last().expect("the failed step's record");
    let step_error = record.error.clone().expect("a step error");
    assert_eq!(step_error.code, "budget_exceeded", "{step_error:?}");
    assert!(step_error.message.contains("1 MiB"), "{step_error:?}");
}

/// Bytes written through a store, by kind.
#[derive(Debug, Default)]
pub struct Written {
    /// Engine state in checkpoints.
    pub state: AtomicU64,
    /// Step records.
    pub steps: AtomicU64,
    /// Run inputs and outputs.
    pub runs: AtomicU64,
    /// Values written out of line.
    pub blobs: AtomicU64,
}

impl Written {
    /// Everything written, in bytes.
    pub fn total(&self) -> u64 {
        self.state.load(Ordering::Relaxed)
            + self.steps.load(Ordering::Relaxed)
            + self.runs.load(Ordering::Relaxed)
            + self.blobs.load(Ordering::Relaxed)
    }
}

fn json_len<T: serde::Serialize>(value: &T) -> u64 {
    serde_json::to_vec(value).map_or(0, |v| v.len() as u64)
}

/// A [`RunStore`] that counts the JSON bytes of what it is asked to write (and forwards every
/// other call).
pub struct CountingRunStore {
    pub inner: Arc<dyn RunStore>,
    pub written: Arc<Written>,
}

impl CountingRunStore {
    /// Adds what a checkpoint asks to write: its state, step records and output.
    fn count(&self, checkpoint: &Checkpoint) {
        if let Some(state) = &checkpoint.state {
            self.written
                .state
                .fetch_add(json_len(state), Ordering::Relaxed);
        }
        let steps: u64 = checkpoint.steps.iter().map(json_len).sum();
        self.written.steps.fetch_add(steps, Ordering::Relaxed);
        if let Some(output) = &checkpoint.output {
            self.written
                .runs
                .fetch_add(json_len(output), Ordering::Relaxed);
        }
    }
}

#[async_trait]
impl RunStoreLayer for CountingRunStore {
    fn inner(&self) -> &dyn RunStore {
        &*self.inner
    }
    async fn create(&self, run: &Run, dedupe_key: Option<&str>) -> Result<Created, StoreError> {
        self.written
            .runs
            .fetch_add(json_len(&run.input), Ordering::Relaxed);
        self.inner.create(run, dedupe_key).await
    }
    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.count(checkpoint);
        self.inner.checkpoint(checkpoint).await
    }
    async fn checkpoint_settling(
        &self,
        checkpoint: &Checkpoint,
        receipt: &str,
    ) -> Result<bool, StoreError> {
        self.count(checkpoint);
        self.inner.checkpoint_settling(checkpoint, receipt).await
    }
    async fn park(&self, checkpoint: &Checkpoint) -> Result<ParkOutcome, StoreError> {
        if let Some(state) = &checkpoint.state {
            self.written
                .state
                .fetch_add(json_len(state), Ordering::Relaxed);
        }
        self.inner.park(checkpoint).await
    }
}

/// A [`BlobStore`] that counts the bytes it is asked to write.
pub struct CountingBlobStore {
    pub inner: Arc<dyn BlobStore>,
    pub written: Arc<Written>,
}

#[async_trait]
impl BlobStore for CountingBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.written
            .blobs
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.inner.put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        self.inner.delete_prefix(prefix).await
    }
}
