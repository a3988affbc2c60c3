//! Ports: the narrow traits the core uses for everything outside itself.
//!
//! Adapters are named technology + port (`SqliteRunStore`, later `DynamoRunStore`). Every adapter of
//! a port passes the same suite in [`crate::conformance`]. Only adapters name SDK or driver types; they
//! convert driver errors into the errors below and keep the source.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::SecretRef;
use crate::run::{Run, RunError, RunId, RunPage, RunQuery, RunStatus, StepRecord};

/// A boxed error kept as the source of a port error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the storage ports (flows, runs).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the run is leased by another worker, was cancelled, or already ended.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend could not be reached or was overloaded; try again.
    #[error("storage unavailable")]
    Unavailable(#[source] BoxError),
    /// The backend refused the operation; retrying will not help.
    #[error("storage error")]
    Backend(#[source] BoxError),
    /// A list cursor that this store did not issue.
    #[error("invalid cursor `{0}`")]
    InvalidCursor(String),
    /// A stored record could not be decoded.
    #[error("corrupt record {key}")]
    Corrupt {
        key: String,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Errors of the run queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable")]
    Unavailable(#[source] BoxError),
    #[error("queue error")]
    Backend(#[source] BoxError),
    /// The receipt is unknown or expired (the message was redelivered to someone else).
    #[error("receipt is no longer valid")]
    StaleReceipt,
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

/// Errors resolving a secret reference.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {reference} is not set")]
    Missing { reference: String },
    #[error("secret {reference} cannot be read")]
    Unreadable {
        reference: String,
        #[source]
        source: BoxError,
    },
    #[error("secret scheme of {reference} is not available here")]
    Unsupported { reference: String },
}

/// A flow file as deployed: the source text, so any adapter can store it without knowing the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFlow {
    pub name: String,
    /// Content hash of `source` (see [`crate::flowfile::version_of`]).
    pub version: String,
    /// The file's text (YAML or JSON).
    pub source: String,
    /// The file's path relative to the flows directory, for error messages.
    pub path: String,
    pub deployed_at: DateTime<Utc>,
}

/// What a `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Added,
    Updated,
    Unchanged,
}

/// Deployed flows and their versions.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Stores a version and makes it current. Storing the current version again is `Unchanged`.
    async fn put(&self, flow: &StoredFlow) -> Result<PutOutcome, StoreError>;
    /// The current version of a flow.
    async fn current(&self, name: &str) -> Result<Option<StoredFlow>, StoreError>;
    /// A given version, current or not (runs in flight keep the version they started with).
    async fn version(&self, name: &str, version: &str) -> Result<Option<StoredFlow>, StoreError>;
    /// Current versions of all flows, by name.
    async fn list(&self) -> Result<Vec<StoredFlow>, StoreError>;
    /// Removes a flow from the current set; its versions stay readable. `false` if it was not there.
    async fn remove(&self, name: &str) -> Result<bool, StoreError>;
    /// Pauses the flow `name` since `paused_at` (`Some`), or resumes it (`None`). The pause belongs
    /// to the name, not to a version: it outlasts deploys and removal. Pausing a paused flow keeps
    /// its first time; resuming a running flow changes nothing.
    async fn set_paused(
        &self,
        name: &str,
        paused_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    /// Since when the flow `name` is paused, if it is.
    async fn paused(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
}

/// Result of [`RunStore::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// A run with the same dedupe key exists already: this is its id, and nothing was written.
    Duplicate(RunId),
}

/// What a worker writes after each step. Conditional on `owner` holding the run's lease and the run
/// not being terminal; otherwise [`StoreError::Conflict`] and nothing is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub run_id: RunId,
    pub owner: String,
    pub status: RunStatus,
    /// The engine state to resume from; `None` once the run ends.
    pub state: Option<serde_json::Value>,
    /// Step records completed since the last checkpoint, with consecutive `seq` numbers starting at
    /// the run's current `step_count`.
    pub steps: Vec<StepRecord>,
    pub wake_at: Option<DateTime<Utc>>,
    pub output: Option<serde_json::Value>,
    pub error: Option<RunError>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Drop the run input (history `none` once the run ends).
    pub drop_input: bool,
    /// Give the lease up (the run ends or waits).
    pub release: bool,
}

/// Declares [`RunStore`] and, from the same list of its methods, [`RunStoreLayer`] (a forwarding
/// default for each) and the `RunStore` impl of every layer: a method is written once, and no
/// wrapper of a store can leave it unforwarded.
macro_rules! run_store_with_layer {
    (
        $(#[$trait_doc:meta])*
        pub trait RunStore {
            $(
                $(#[$doc:meta])*
                async fn $method:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
            )*
        }
    ) => {
        $(#[$trait_doc])*
        #[async_trait]
        pub trait RunStore: Send + Sync {
            $(
                $(#[$doc])*
                async fn $method(&self $(, $arg: $ty)*) -> $ret;
            )*
        }

        /// A wrapper of a [`RunStore`] that intercepts some of its calls (to meter, count, or hold
        /// them in a test) and hands every other call to the store it wraps,
        /// [`RunStoreLayer::inner`]. A wrapper implements `inner` and only the methods it
        /// intercepts; every `RunStoreLayer` is a [`RunStore`]. Some methods write the same thing
        /// by different means: a layer that observes checkpoints intercepts `checkpoint`,
        /// `checkpoint_settling` and `park` alike.
        ///
        /// Name the trait in the impl rather than importing it where the concrete wrapper is
        /// called: with both traits in scope, its calls would be ambiguous.
        #[async_trait]
        pub trait RunStoreLayer: Send + Sync {
            /// The store every call this layer does not intercept goes to.
            fn inner(&self) -> &dyn RunStore;
            $(
                #[doc = concat!(
                    "[`RunStore::", stringify!($method), "`]: forwarded to ",
                    "[`RunStoreLayer::inner`] unless the layer intercepts it."
                )]
                async fn $method(&self $(, $arg: $ty)*) -> $ret {
                    self.inner().$method($($arg),*).await
                }
            )*
        }

        #[async_trait]
        impl<L: RunStoreLayer> RunStore for L {
            $(
                async fn $method(&self $(, $arg: $ty)*) -> $ret {
                    RunStoreLayer::$method(self $(, $arg)*).await
                }
            )*
        }
    };
}

run_store_with_layer! {
    /// Runs, their step records, leases and dedupe keys.
    pub trait RunStore {
        /// Creates a run. With a dedupe key, a second create with the same key writes nothing and
        /// returns the first run's id.
        async fn create(&self, run: &Run, dedupe_key: Option<&str>) -> Result<Created, StoreError>;
        async fn get(&self, id: RunId) -> Result<Option<Run>, StoreError>;
        /// Runs newest first, filtered by flow, status and creation time.
        async fn list(&self, query: &RunQuery) -> Result<RunPage, StoreError>;
        /// A run's step records in order.
        async fn steps(&self, id: RunId) -> Result<Vec<StepRecord>, StoreError>;
        /// Takes the lease on a run that is not terminal and not leased by another owner until
        /// after `now`. Sets `running` (and `started_at` the first time). `None` when the run
        /// cannot be claimed.
        async fn claim(
            &self,
            id: RunId,
            owner: &str,
            now: DateTime<Utc>,
            lease: Duration,
        ) -> Result<Option<Run>, StoreError>;
        /// Writes a checkpoint (see [`Checkpoint`]).
        async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError>;
        /// Marks a run cancelled unless it already ended; returns the run as it is afterwards.
        async fn cancel(&self, id: RunId, now: DateTime<Utc>) -> Result<Option<Run>, StoreError>;
        /// Runs that are queued, running or waiting (for recovery after a restart), oldest first.
        async fn unfinished(&self, limit: u32) -> Result<Vec<Run>, StoreError>;
        /// Leaves a notification for the worker that holds a run's lease (a helper run of it
        /// ended), in one conditional write: marked only while the run has not ended and is leased
        /// by an owner other than `owner` until after `now`. A claim clears the mark (the claimer
        /// reads the run afresh); [`RunStore::park`] refuses to release the lease while it is set.
        async fn notify(
            &self,
            id: RunId,
            owner: &str,
            now: DateTime<Utc>,
        ) -> Result<Notified, StoreError>;
        /// Writes a checkpoint that parks the run (`release`, a status that is not terminal),
        /// unless a notification is pending ([`RunStore::notify`]): then, in the same conditional
        /// write, the mark is cleared, the checkpoint's step records are written, the lease is
        /// kept, and [`ParkOutcome::Notified`] tells the worker to look again instead of parking.
        /// Fenced like [`RunStore::checkpoint`].
        async fn park(&self, checkpoint: &Checkpoint) -> Result<ParkOutcome, StoreError>;
        /// Writes a checkpoint that ends the run (see [`RunStore::checkpoint`]) and, in the same
        /// write, deletes the queue message held under `receipt`: the delivery that drove the run,
        /// or the fallback message of a run created by [`RunIntake::enqueue_claimed`]. Returns
        /// whether the message was deleted; the checkpoint stands either way (a receipt that no
        /// longer matches, because the message was received again, leaves the message to its new
        /// holder).
        ///
        /// An adapter whose runs and queue live apart writes the checkpoint alone and answers
        /// `false`: the caller deletes the message through the queue as before. An adapter that
        /// keeps runs and queue in one database saves a write per run.
        async fn checkpoint_settling(
            &self,
            checkpoint: &Checkpoint,
            receipt: &str,
        ) -> Result<bool, StoreError>;
    }
}

/// Result of [`RunStore::notify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// The lease holder will see the notification before it parks: nothing else needs doing.
    Marked,
    /// Nobody else holds the lease (it is free, expired or the caller's): claim the run instead.
    NotLeased,
    /// The run ended or does not exist: nothing waits for the notification.
    Ended,
}

/// Result of [`RunStore::park`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkOutcome {
    /// The run waits and its lease is free.
    Parked,
    /// A notification was pending: nothing but the step records was written, the lease is still
    /// the caller's, and the run must be looked at again.
    Notified,
}

/// Durably accepts a new run: creates it queued and sends its first queue message, both done when
/// this returns, so a trigger may acknowledge. [`StoreThenQueue`] composes any store and queue; an
/// adapter that holds both (SQLite) does it in one write.
#[async_trait]
pub trait RunIntake: Send + Sync {
    /// With a dedupe key, a second enqueue of the same key writes and sends nothing and returns the
    /// first run's id. The run's first message is hidden for `delay` (at most 15 minutes): zero for
    /// a run a worker is to pick up, the fallback's wait for a run the caller drives itself (a sync
    /// invoke, see `Runtime::invoke_sync`).
    async fn enqueue(
        &self,
        run: &Run,
        dedupe_key: Option<&str>,
        delay: Duration,
    ) -> Result<Created, StoreError>;

    /// Durably accepts a run that the caller drives itself (a sync invoke), in one write: the run
    /// is created already claimed by `owner` until `now + lease` (status `running`, started at
    /// `now`), and its fallback message is sent hidden for `delay`, so that a worker takes over
    /// from the last checkpoint if the caller dies. Returns the run as stored and the fallback
    /// message's receipt, with which [`RunStore::checkpoint_settling`] deletes the message in the
    /// write that ends the run.
    ///
    /// `None` (the default) when the adapter cannot do it in one write: nothing was written, and
    /// the caller uses [`RunIntake::enqueue`] and claims the run.
    async fn enqueue_claimed(
        &self,
        run: &Run,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        delay: Duration,
    ) -> Result<Option<ClaimedRun>, StoreError> {
        let _ = (run, owner, now, lease, delay);
        Ok(None)
    }

    /// Durably accepts a run that the caller started driving before storing it, at the run's
    /// first write, in one write (see `Runtime::start_compiled`): the run is created as `run` (as
    /// it was started: `running`, started, step count 0) stands once `checkpoint` is applied to
    /// it, as [`RunStore::checkpoint`] would apply it — ended (a terminal status, its output or
    /// error, no state), or `running` with the state of its first checkpoint — with the step
    /// records of `checkpoint`, numbered from 0. With `lease_until`, the run is created claimed by
    /// `checkpoint.owner` until then; an ended run (the checkpoint releases the lease) has none.
    /// No queue message is sent, since no other process would take the run over: only a process
    /// that recovers its own runs when it starts again (`idflow serve`, see `Runtime::recover`)
    /// creates runs this way.
    ///
    /// `false` (the default) when the adapter cannot do it in one write: nothing was written, and
    /// the caller creates, claims and checkpoints the run.
    async fn create_driven(
        &self,
        run: &Run,
        checkpoint: &Checkpoint,
        lease_until: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let _ = (run, checkpoint, lease_until);
        Ok(false)
    }
}

/// A run created already claimed ([`RunIntake::enqueue_claimed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    /// The run as stored: `running`, leased by the caller.
    pub run: Run,
    /// The receipt of the run's fallback message, for [`RunStore::checkpoint_settling`].
    pub receipt: String,
}

/// [`RunIntake`] as `create` then `send`. A crash between the two leaves a queued run without a
/// message; `Runtime::recover` re-queues unfinished runs for that reason.
pub struct StoreThenQueue {
    pub runs: std::sync::Arc<dyn RunStore>,
    pub queue: std::sync::Arc<dyn RunQueue>,
}

#[async_trait]
impl RunIntake for StoreThenQueue {
    async fn enqueue(
        &self,
        run: &Run,
        dedupe_key: Option<&str>,
        delay: Duration,
    ) -> Result<Created, StoreError> {
        let created = self.runs.create(run, dedupe_key).await?;
        if created == Created::New {
            self.queue
                .send(&QueueMessage { run_id: run.id }, delay)
                .await
                .map_err(|error| match error {
                    QueueError::Unavailable(source) => StoreError::Unavailable(source),
                    other => StoreError::Backend(Box::new(other)),
                })?;
        }
        Ok(created)
    }
}

/// The body of a queue message: which run to advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMessage {
    pub run_id: RunId,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Handle for `delete` / `change_visibility`, valid until the message becomes visible again.
    pub receipt: String,
    pub message: QueueMessage,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// An at-least-once queue with visibility timeouts, delays and a dead-letter queue (SQS semantics).
#[async_trait]
pub trait RunQueue: Send + Sync {
    /// Sends a message, invisible for `delay` (at most 15 minutes, as on SQS).
    async fn send(&self, message: &QueueMessage, delay: Duration) -> Result<(), QueueError>;
    /// Receives up to `max` visible messages, hiding each for `visibility`. Waits up to `wait` when none
    /// is visible. A message received more than the queue's max receive count moves to the DLQ instead.
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;
    /// Deletes a received message.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Changes how long a received message stays hidden (0 makes it visible now).
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError>;
    /// Messages in the dead-letter queue, oldest first.
    async fn dead_letters(&self, max: u32) -> Result<Vec<QueueMessage>, QueueError>;
}

/// Wakes parked runs at a time further away than a queue delay reaches (SQS: 15 minutes).
///
/// Optional: without it the runner re-queues a long wait in hops of
/// [`MAX_QUEUE_DELAY`](crate::runner::MAX_QUEUE_DELAY) (and `idflow serve` drains its SQLite due-time
/// index). In AWS a one-time EventBridge Scheduler schedule sends the message to the run queue at
/// `at` (`adapters::aws::wakeups::SchedulerWakeups`, with the `aws` feature).
#[async_trait]
pub trait Wakeups: Send + Sync {
    /// Arranges for `message` to reach the run queue at `at` (not before; a little after is fine).
    /// Scheduling the same message for the same time twice must not deliver it twice.
    async fn schedule_wakeup(
        &self,
        message: &QueueMessage,
        at: DateTime<Utc>,
    ) -> Result<(), QueueError>;
}

/// Values kept out of line: large step outputs and loop items that the engine state references by
/// content hash instead of repeating them in every checkpoint (S3 in AWS, SQLite locally).
///
/// Keys are opaque text chosen by the caller (`runs/<run id>/<sha-256>`); a value is written once and
/// never changed, so `put` of an existing key may overwrite it with the same bytes.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` under `key`.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// The bytes under `key`, or `None` when there are none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes every value whose key starts with `prefix`; returns how many there were.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError>;
}

/// Time, injected so that tests are instant and deterministic. Nothing outside a clock adapter
/// reads the system's clocks: wall time, ages and deadlines all come from here.
#[async_trait]
pub trait Clock: Send + Sync {
    /// Wall time: what a run records, what a token's `exp` and a server's `Date` are compared
    /// with, when a schedule fires.
    fn now(&self) -> DateTime<Utc>;
    /// Time elapsed since an arbitrary origin fixed by the clock. It never goes backwards, whatever
    /// happens to the wall clock (NTP steps, a manual clock set back), so ages and cache lifetimes are
    /// measured with it; readings of different clocks are not comparable.
    fn monotonic(&self) -> Duration;
    /// Returns once `now() >= deadline`.
    async fn sleep_until(&self, deadline: DateTime<Utc>);
}

/// A secret value. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(value.into())
    }
    /// The secret itself. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

/// Resolves secret references.
#[async_trait]
pub trait Secrets: Send + Sync {
    async fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError>;
}

/// A schedule as deployed: one per schedule flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub flow: String,
    /// EventBridge Scheduler expression (`cron(...)`, `rate(...)`, `at(...)`).
    pub expression: String,
    pub timezone: Option<String>,
}

/// Where schedules live: EventBridge Scheduler in AWS, the local scheduler in `idflow serve`.
#[async_trait]
pub trait Schedules: Send + Sync {
    /// Creates or updates the schedule of `spec.flow`.
    async fn put(&self, spec: &ScheduleSpec) -> Result<(), StoreError>;
    /// Deletes a flow's schedule; `false` if there was none.
    async fn delete(&self, flow: &str) -> Result<bool, StoreError>;
    async fn list(&self) -> Result<Vec<ScheduleSpec>, StoreError>;
}
