//! Runs on SQLite whose queue message goes in the write that ends them: a sync invoke's run is
//! created already claimed and its fallback message is deleted with its end, and a worker's
//! delivery is deleted with the run's end. The fallback still brings a worker when the invoker
//! dies, and a receipt that no longer holds its message leaves the message alone.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::clock::ManualClock;
use domain::model::ProjectConfig;
use domain::ports::{
    Checkpoint, Clock, Delivery, FlowStore, RunIntake, RunQueue, RunStore, StoredFlow,
};
use domain::run::{Run, RunId, RunStatus, TriggerInfo};
use domain::runner::{Disposition, RunnerConfig, Runtime};
use local::secrets::LocalSecrets;
use local::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};
use serde_json::{Value, json};
use tokio::sync::Notify;

const SYNC: &str = r#"
name: sync-3
trigger: { api: { auth: public, respond: sync } }
history: all
steps:
  - id: who
    card: text.compose
    with: { text: "{{ input.body.name }}" }
  - id: count
    card: list.length
    with: { list: "{{ input.body.groups }}" }
  - card: flow.return
    with: { body: { who: "{{ steps.who }}", groups: "{{ steps.count }}" } }
"#;

const SYNC_HTTP: &str = r#"
name: sync-http
trigger: { api: { auth: public, respond: sync } }
steps:
  - id: fetch
    card: http.request
    timeout: 10m
    with: { url: "https://example.com/users" }
  - card: flow.return
    with: { body: "{{ steps.fetch.status }}" }
"#;

const SYNC_NONE: &str = r#"
name: sync-none
trigger: { api: { auth: public, respond: sync } }
history: none
steps:
  - card: flow.return
    with: { body: "{{ input.body.name }}" }
"#;

const LEASE: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().expect("time")
}

/// One SQLite deployment on a manual clock; each `process` is a runtime on it, with the queue as
/// its intake, as `idflow serve` assembles it.
struct Deployment {
    db: SqliteDb,
    clock: Arc<ManualClock>,
    flows: Arc<SqliteFlowStore>,
    queue: Arc<SqliteRunQueue>,
}

impl Deployment {
    async fn new() -> Deployment {
        let db = SqliteDb::open_in_memory().expect("database");
        let clock = Arc::new(ManualClock::new(t0()));
        let flows = Arc::new(SqliteFlowStore::new(db.clone()));
        for (name, source) in [
            ("sync-3", SYNC),
            ("sync-http", SYNC_HTTP),
            ("sync-none", SYNC_NONE),
        ] {
            flows
                .put(&StoredFlow::new(
                    name,
                    &format!("{name}.yaml"),
                    source,
                    t0(),
                ))
                .await
                .expect("deploy");
        }
        let queue = Arc::new(SqliteRunQueue::new(db.clone(), clock.clone(), 5));
        Deployment {
            db,
            clock,
            flows,
            queue,
        }
    }

    fn process(&self, owner: &str, http: Option<Arc<dyn CardExecutor>>) -> Arc<Runtime> {
        let clock: Arc<dyn Clock> = self.clock.clone();
        let runtime = Runtime::new(
            self.flows.clone(),
            Arc::new(SqliteRunStore::new(self.db.clone())),
            self.queue.clone(),
            clock,
            Arc::new(LocalSecrets::new(".")),
            ProjectConfig::default(),
            RunnerConfig {
                owner: owner.to_owned(),
                lease: LEASE,
                ..RunnerConfig::default()
            },
        )
        .with_intake(self.queue.clone());
        Arc::new(match http {
            Some(executor) => runtime.with_executor("http", executor),
            None => runtime,
        })
    }

    /// The messages due now, received as a worker would (hidden for the lease).
    async fn receive_due(&self) -> Vec<Delivery> {
        self.queue
            .receive(10, LEASE, Duration::ZERO)
            .await
            .expect("receive")
    }

    /// Messages in the queue, visible or hidden.
    async fn messages(&self) -> u64 {
        let stats = self.queue.stats().await.expect("stats");
        stats.ready + stats.hidden
    }
}

/// Guards a call that would hang if the code under test waited for something that never comes
/// (the manual clock never moves by itself); not a synchronisation.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not return"))
}

/// A sync invoke of `flow` on `process` that must end within its timeout.
async fn invoke_to_end(process: &Arc<Runtime>, flow: &str, input: Value) -> (RunId, Run) {
    let compiled = process.current_flow(flow).await.expect("flow");
    let (id, run) = within(
        "the sync invoke",
        process.invoke_sync(&compiled, input, api(), Duration::from_secs(10)),
    )
    .await
    .expect("invoke");
    (id, run.expect("the run ended within the timeout"))
}

fn api() -> TriggerInfo {
    TriggerInfo::Api(domain::run::ApiStart {
        method: "POST".to_owned(),
    })
}

#[tokio::test]
async fn a_sync_invoke_leaves_no_fallback_message_behind_once_its_run_ended() {
    let deployment = Deployment::new().await;
    let api_process = deployment.process("api", None);
    let input = json!({ "body": { "name": "Ada", "groups": ["eng", "ops"] } });
    let (id, run) = invoke_to_end(&api_process, "sync-3", input).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!({ "who": "Ada", "groups": 2 }))
    );
    assert!(run.started_at.is_some(), "the run says when it started");
    assert_eq!(api_process.steps(id).await.expect("steps").len(), 3);
    assert_eq!(
        deployment.messages().await,
        0,
        "the fallback message went with the run's end: no worker receives it later"
    );
    deployment.clock.advance(LEASE + Duration::from_secs(60));
    assert_eq!(deployment.messages().await, 0);
}

#[tokio::test]
async fn a_sync_invoke_answers_with_the_run_as_stored() {
    // The invoker answers with the run its ending write stored, without reading it back: with
    // history, without (the input dropped), and after a checkpoint of an effectful step.
    let deployment = Deployment::new().await;
    let api_process = deployment.process("api", Some(Arc::new(Answers)));
    for flow in ["sync-3", "sync-none", "sync-http"] {
        let input = json!({ "body": { "name": "Ada", "groups": ["eng"] } });
        let (id, run) = invoke_to_end(&api_process, flow, input).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{flow}: {:?}", run.error);
        let stored = api_process.run(id).await.expect("read").expect("stored");
        assert_eq!(run, stored, "{flow}");
    }
}

/// An `http` executor that never answers: for all the store can tell, the invoker died mid-step.
struct Stalled(Arc<Notify>);

#[async_trait]
impl CardExecutor for Stalled {
    async fn execute(&self, _: &CardCall) -> Result<Value, CardError> {
        self.0.notify_one();
        std::future::pending().await
    }
}

/// An `http` executor that answers 200.
struct Answers;

#[async_trait]
impl CardExecutor for Answers {
    async fn execute(&self, _: &CardCall) -> Result<Value, CardError> {
        Ok(json!({ "status": 200, "headers": {}, "body": [] }))
    }
}

#[tokio::test]
async fn a_sync_run_created_claimed_is_finished_by_a_worker_when_its_invoker_dies() {
    let deployment = Deployment::new().await;
    let called = Arc::new(Notify::new());
    let api_process = deployment.process("api", Some(Arc::new(Stalled(called.clone()))));
    let flow = api_process.current_flow("sync-http").await.expect("flow");
    let invoking = tokio::spawn({
        let api_process = api_process.clone();
        async move {
            api_process
                .invoke_sync(&flow, json!({}), api(), Duration::from_secs(10))
                .await
        }
    });
    within("the inline step", called.notified()).await;
    let stored = deployment.queue.stats().await.expect("stats");
    assert_eq!(
        (stored.ready, stored.hidden),
        (0, 1),
        "the fallback message is durable and hidden while the invoker drives the run"
    );
    deployment.clock.advance(Duration::from_secs(10));
    let (id, run) = within("the sync timeout", invoking)
        .await
        .expect("join")
        .expect("invoke");
    assert!(run.is_none(), "the timeout passed: answered 202");

    // The invoker never comes back: once its lease ran out, the fallback message brings a worker.
    deployment
        .clock
        .advance(LEASE - Duration::from_secs(10) + Duration::from_secs(5));
    let fallback = deployment.receive_due().await;
    assert_eq!(fallback.len(), 1, "the fallback message comes due");
    assert_eq!(fallback[0].message.run_id, id);
    let worker = deployment.process("worker", Some(Arc::new(Answers)));
    let (disposition, settled) = worker.process_settling(&fallback[0]).await;
    assert_eq!(disposition, Disposition::Done);
    assert!(settled, "the worker's end of the run deleted the message");
    let run = worker.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!(200))
    );
    assert_eq!(deployment.messages().await, 0);
}

#[tokio::test]
async fn a_worker_ending_a_run_deletes_its_delivery_in_the_same_write() {
    let deployment = Deployment::new().await;
    let starter = deployment.process("api", None);
    let (id, _) = starter
        .start_run(
            "sync-3",
            json!({ "body": { "name": "Ada", "groups": [] } }),
            api(),
            None,
        )
        .await
        .expect("start");
    let deliveries = deployment.receive_due().await;
    assert_eq!(deliveries.len(), 1);
    let worker = deployment.process("worker", None);
    assert_eq!(
        worker.process_settling(&deliveries[0]).await,
        (Disposition::Done, true)
    );
    let run = worker.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(worker.steps(id).await.expect("steps").len(), 3);
    assert_eq!(deployment.messages().await, 0, "nothing left to delete");
    assert!(
        deployment
            .queue
            .delete(&deliveries[0].receipt)
            .await
            .is_err(),
        "the receipt no longer holds a message"
    );
}

#[tokio::test]
async fn a_checkpoint_whose_receipt_was_superseded_is_written_and_leaves_the_message() {
    let deployment = Deployment::new().await;
    let runs = SqliteRunStore::new(deployment.db.clone());
    let run = domain::conformance::queued_run("sync-3", t0());
    let claimed = deployment
        .queue
        .enqueue_claimed(&run, "invoker", t0(), LEASE, LEASE)
        .await
        .expect("enqueue")
        .expect("SQLite creates the run claimed");
    assert_eq!(claimed.run.status, RunStatus::Running);
    // The invoker stalls past its lease; a worker receives the fallback message (a new receipt).
    deployment.clock.advance(LEASE + Duration::from_secs(1));
    let received = deployment.receive_due().await;
    assert_eq!(received.len(), 1);
    let end = Checkpoint {
        run_id: run.id,
        owner: "invoker".to_owned(),
        status: RunStatus::Succeeded,
        state: None,
        steps: Vec::new(),
        wake_at: None,
        output: Some(json!({ "body": 1 })),
        error: None,
        finished_at: Some(t0()),
        drop_input: false,
        release: true,
    };
    let settled = runs
        .checkpoint_settling(&end, &claimed.receipt)
        .await
        .expect("the checkpoint is still the invoker's to write");
    assert!(!settled, "the message is the worker's now");
    assert_eq!(
        runs.get(run.id).await.expect("read").expect("run").status,
        RunStatus::Succeeded
    );
    assert_eq!(deployment.messages().await, 1);
    deployment
        .queue
        .delete(&received[0].receipt)
        .await
        .expect("the worker's receipt still deletes it");
}

/// `process` as `idflow serve` runs it: with a queue worker of `slots` slots, whose receive loop
/// is not started, so a run can only end if it was driven where it started.
fn with_worker_slots(process: &Arc<Runtime>, slots: usize) -> Arc<tokio::sync::Semaphore> {
    process.local_slots(slots)
}

/// Starts `flow` as an async API invoke does.
async fn start(process: &Arc<Runtime>, flow: &str, dedupe_key: Option<&str>) -> RunId {
    let input = json!({ "body": { "name": "Ada", "groups": ["eng", "ops"] } });
    let (id, _) = process
        .start_run(flow, input, api(), dedupe_key)
        .await
        .expect("start");
    id
}

#[tokio::test]
async fn a_run_started_while_a_worker_slot_is_free_is_driven_at_once_without_a_receive() {
    let deployment = Deployment::new().await;
    let process = deployment.process("serve", None);
    with_worker_slots(&process, 2);
    let mut ended = process.subscribe();
    let id = start(&process, "sync-3", None).await;
    let stats = deployment.queue.stats().await.expect("stats");
    assert_eq!(
        stats.ready, 0,
        "no message for a worker to receive: the run is driven where it started"
    );
    let run = within(
        "the run's end",
        process.wait_for_end(&mut ended, id, Duration::from_secs(10)),
    )
    .await
    .expect("wait")
    .expect("the run ended without any receive");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(process.steps(id).await.expect("steps").len(), 3);
    assert_eq!(
        deployment.messages().await,
        0,
        "the fallback message went with the run's end"
    );
}

#[tokio::test]
async fn a_run_started_while_every_worker_slot_is_taken_or_with_a_dedupe_key_waits_in_the_queue() {
    let deployment = Deployment::new().await;
    let process = deployment.process("serve", None);
    let slots = with_worker_slots(&process, 1);
    let busy = slots.clone().acquire_owned().await.expect("slot");
    let first = start(&process, "sync-3", None).await;
    drop(busy);
    let second = start(&process, "sync-3", Some("order-42")).await;
    for id in [first, second] {
        let run = process.run(id).await.expect("read").expect("run");
        assert_eq!(run.status, RunStatus::Queued, "{id} waits for the worker");
    }
    let stats = deployment.queue.stats().await.expect("stats");
    assert_eq!((stats.ready, stats.hidden), (2, 0));
    assert_eq!(slots.available_permits(), 1, "no slot is held for them");

    let deliveries = deployment.receive_due().await;
    assert_eq!(deliveries.len(), 2);
    for delivery in &deliveries {
        assert_eq!(
            process.process_settling(delivery).await,
            (Disposition::Done, true)
        );
    }
    for id in [first, second] {
        let run = process.run(id).await.expect("read").expect("run");
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    }
}

#[tokio::test]
async fn a_run_driven_where_it_started_is_driven_again_when_its_process_starts_again() {
    let deployment = Deployment::new().await;
    let called = Arc::new(Notify::new());
    let process = deployment.process("serve", Some(Arc::new(Stalled(called.clone()))));
    let slots = with_worker_slots(&process, 1);
    let id = start(&process, "sync-http", None).await;
    within("the step driven where the run started", called.notified()).await;
    assert_eq!(
        slots.available_permits(),
        0,
        "the run holds the worker's slot"
    );
    assert_eq!(
        deployment.messages().await,
        0,
        "no queue message: only this process could drive the run"
    );
    let run = process.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Running, "durable before the answer");

    // The process dies mid-step and starts again (`idflow serve` keeps its lease owner): recovery
    // queues the run, and the worker drives it from its last checkpoint.
    let restarted = deployment.process("serve", Some(Arc::new(Answers)));
    assert_eq!(restarted.recover().await.expect("recover"), 1);
    let deliveries = deployment.receive_due().await;
    assert_eq!(deliveries.len(), 1, "recovery queued the run");
    assert_eq!(deliveries[0].message.run_id, id);
    assert_eq!(
        restarted.process_settling(&deliveries[0]).await,
        (Disposition::Done, true)
    );
    let run = restarted.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!(200))
    );
    assert_eq!(deployment.messages().await, 0);
}

/// An `http` executor that panics, after saying so.
struct Panics(Arc<Notify>);

#[async_trait]
impl CardExecutor for Panics {
    async fn execute(&self, _: &CardCall) -> Result<Value, CardError> {
        self.0.notify_one();
        panic!("the executor broke");
    }
}

#[tokio::test]
async fn a_run_whose_driving_panicked_where_it_started_is_retried_through_the_queue() {
    let deployment = Deployment::new().await;
    let called = Arc::new(Notify::new());
    let process = deployment.process("serve", Some(Arc::new(Panics(called.clone()))));
    let slots = with_worker_slots(&process, 1);
    let id = start(&process, "sync-http", None).await;
    within("the panicking step", called.notified()).await;
    // The slot comes back once the driving task has settled the run.
    let permit = within("the slot's return", slots.acquire())
        .await
        .expect("slot");
    drop(permit);
    let stats = deployment.queue.stats().await.expect("stats");
    assert_eq!(
        (stats.ready, stats.hidden),
        (0, 1),
        "the run is queued for another try, after a pause"
    );
    deployment.clock.advance(domain::runner::RETRY_AFTER);
    let deliveries = deployment.receive_due().await;
    assert_eq!(deliveries.len(), 1);
    let worker = deployment.process("serve", Some(Arc::new(Answers)));
    assert_eq!(
        worker.process_settling(&deliveries[0]).await,
        (Disposition::Done, true)
    );
    let run = worker.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
}

#[tokio::test]
async fn a_run_of_pure_steps_started_where_a_slot_is_free_is_stored_once_already_ended() {
    let deployment = Deployment::new().await;
    let process = deployment.process("serve", None);
    with_worker_slots(&process, 1);
    let id = start(&process, "sync-3", None).await;
    // No wait: the start answered once the run's one write was durable, and that write ended it.
    let run = process.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.trigger, api());
    assert!(run.started_at.is_some() && run.finished_at.is_some());
    assert_eq!(
        run.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!({ "who": "Ada", "groups": 2 }))
    );
    let steps = process.steps(id).await.expect("steps");
    let seqs: Vec<u32> = steps.iter().map(|step| step.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(steps[0].output, Some(json!("Ada")));
    assert_eq!(run.step_count, 3);
    assert_eq!(deployment.messages().await, 0, "no queue message at all");
    assert!(
        SqliteRunStore::new(deployment.db.clone())
            .unfinished(10)
            .await
            .expect("unfinished")
            .is_empty(),
        "nothing for a restart to recover"
    );
}

#[tokio::test]
async fn a_run_with_history_none_started_where_it_runs_keeps_no_input_once_ended() {
    let deployment = Deployment::new().await;
    let process = deployment.process("serve", None);
    with_worker_slots(&process, 1);
    let id = start(&process, "sync-none", None).await;
    let run = process.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.input, Value::Null, "history: none keeps no input");
    let steps = process.steps(id).await.expect("steps");
    assert!(
        steps
            .iter()
            .all(|step| step.input.is_none() && step.output.is_none()),
        "history: none keeps no step values: {steps:?}"
    );
}

/// What the store held of a run (its status, or nothing) at each call of its `http` step.
type Seen = Arc<std::sync::Mutex<Vec<Option<RunStatus>>>>;

/// An `http` executor that looks the run up in the store when it is called, and answers 200.
struct SeesItsRun {
    runs: Arc<SqliteRunStore>,
    seen: Seen,
}

#[async_trait]
impl CardExecutor for SeesItsRun {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        let stored = self.runs.get(call.run_id).await.expect("read");
        self.seen
            .lock()
            .expect("lock")
            .push(stored.map(|run| run.status));
        Ok(json!({ "status": 200, "headers": {}, "body": null }))
    }
}

/// A process of `deployment` as `idflow serve` runs it (one worker slot), whose `http` executor
/// records what the store held of the run at each call.
fn watching_its_runs(deployment: &Deployment) -> (Arc<Runtime>, Seen) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let executor = SeesItsRun {
        runs: Arc::new(SqliteRunStore::new(deployment.db.clone())),
        seen: seen.clone(),
    };
    let process = deployment.process("serve", Some(Arc::new(executor)));
    with_worker_slots(&process, 1);
    (process, seen)
}

#[tokio::test]
async fn a_run_started_where_it_runs_is_stored_before_its_first_effect() {
    let deployment = Deployment::new().await;
    let (process, seen) = watching_its_runs(&deployment);
    let mut ended = process.subscribe();
    let id = start(&process, "sync-http", None).await;
    let run = within(
        "the run's end",
        process.wait_for_end(&mut ended, id, Duration::from_secs(10)),
    )
    .await
    .expect("wait")
    .expect("ended");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        *seen.lock().expect("lock"),
        [Some(RunStatus::Running)],
        "the HTTP call went out once, with the run stored and running"
    );
}

/// An intake whose every write fails, as a full disk or a locked database would.
struct Broken;

#[async_trait]
impl RunIntake for Broken {
    async fn enqueue(
        &self,
        _: &Run,
        _: Option<&str>,
        _: Duration,
    ) -> Result<domain::ports::Created, domain::ports::StoreError> {
        Err(domain::ports::StoreError::Unavailable("disk full".into()))
    }

    async fn create_driven(
        &self,
        _: &Run,
        _: &Checkpoint,
        _: Option<DateTime<Utc>>,
    ) -> Result<bool, domain::ports::StoreError> {
        Err(domain::ports::StoreError::Unavailable("disk full".into()))
    }
}

#[tokio::test]
async fn a_run_started_where_it_runs_that_cannot_be_stored_fails_its_start_and_leaves_nothing() {
    let deployment = Deployment::new().await;
    let process = Arc::new(
        Arc::into_inner(deployment.process("serve", None))
            .expect("one owner")
            .with_intake(Arc::new(Broken)),
    );
    let slots = with_worker_slots(&process, 1);
    let input = json!({ "body": { "name": "Ada", "groups": ["eng"] } });
    let error = within("the start", process.start_run("sync-3", input, api(), None))
        .await
        .expect_err("the start must fail");
    assert!(error.is_retryable(), "a 503 the caller may retry: {error}");
    let page = SqliteRunStore::new(deployment.db.clone())
        .list(&domain::run::RunQuery {
            limit: 50,
            ..domain::run::RunQuery::default()
        })
        .await
        .expect("list");
    assert!(page.runs.is_empty(), "nothing stored: {:?}", page.runs);
    assert_eq!(deployment.messages().await, 0);
    let permit = within("the slot's return", slots.acquire())
        .await
        .expect("slot");
    drop(permit);
}

#[tokio::test]
async fn a_run_started_where_it_runs_through_an_intake_without_one_write_creation_still_runs() {
    // Runtime::new's own intake (the run store, then the queue) cannot create a run at its first
    // write: the run is created, claimed and checkpointed instead.
    let deployment = Deployment::new().await;
    let clock: Arc<dyn Clock> = deployment.clock.clone();
    let process = Arc::new(Runtime::new(
        deployment.flows.clone(),
        Arc::new(SqliteRunStore::new(deployment.db.clone())),
        deployment.queue.clone(),
        clock,
        Arc::new(LocalSecrets::new(".")),
        ProjectConfig::default(),
        RunnerConfig {
            owner: "serve".to_owned(),
            lease: LEASE,
            ..RunnerConfig::default()
        },
    ));
    with_worker_slots(&process, 1);
    let id = start(&process, "sync-3", None).await;
    let run = process.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(process.steps(id).await.expect("steps").len(), 3);
    assert_eq!(deployment.messages().await, 0);
}

#[tokio::test]
async fn a_sync_invoke_where_runs_are_recovered_stores_a_pure_run_once_and_answers_with_it() {
    let deployment = Deployment::new().await;
    let process = deployment.process("serve", None);
    with_worker_slots(&process, 1);
    let input = json!({ "body": { "name": "Ada", "groups": ["eng", "ops"] } });
    let (id, answered) = invoke_to_end(&process, "sync-3", input).await;
    assert_eq!(
        answered.status,
        RunStatus::Succeeded,
        "{:?}",
        answered.error
    );
    assert_eq!(
        answered.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!({ "who": "Ada", "groups": 2 }))
    );
    let stored = process.run(id).await.expect("read").expect("run");
    assert_eq!(answered, stored, "the answer is the run as stored");
    assert_eq!(
        deployment.messages().await,
        0,
        "no fallback message: a restart recovers the process's own runs"
    );
    assert_eq!(process.steps(id).await.expect("steps").len(), 3);
}

#[tokio::test]
async fn a_sync_invoke_where_runs_are_recovered_stores_its_run_before_its_first_effect() {
    let deployment = Deployment::new().await;
    let (process, seen) = watching_its_runs(&deployment);
    let (id, answered) = invoke_to_end(&process, "sync-http", json!({})).await;
    assert_eq!(
        answered.status,
        RunStatus::Succeeded,
        "{:?}",
        answered.error
    );
    assert_eq!(
        answered.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!(200))
    );
    assert_eq!(*seen.lock().expect("lock"), [Some(RunStatus::Running)]);
    let stored = process.run(id).await.expect("read").expect("run");
    assert_eq!(answered, stored);
    assert_eq!(deployment.messages().await, 0);
}
