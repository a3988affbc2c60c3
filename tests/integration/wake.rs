//! A parent run woken across worker processes: two independent runtimes, each its own SQS consumer
//! (the worker Lambda's instances), on one DynamoDB table and one queue in the AWS emulator.
//!
//! Worker A drives a parent that `flow.call`s a helper; worker B runs the helper to its end while A
//! still holds the parent's lease, then receives the parent's notification. B leaves it on the
//! parent's run record and drops the message; A sees it when it parks and finishes the parent
//! itself, with no message re-sent and no delay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::clock::ManualClock;
use domain::conformance::t0;
use domain::ports::{
    Checkpoint, Delivery, FlowStore, ParkOutcome, RunQueue, RunStore, RunStoreLayer, StoreError,
    StoredFlow,
};
use domain::run::{RunStatus, TriggerInfo};
use domain::runner::{Disposition, RunnerConfig, Runtime};
use serde_json::json;
use tests::flows::CHILD;
use tokio::sync::Notify;

use aws::{DynamoRunStore, SqsRunQueue};

use super::aws::{FreshStack, emulator, fresh_stack, receive_one};

const PARENT: &str = r#"
name: parent
steps:
  - id: call
    card: flow.call
    with: { flow: child, with: { n: 21 } }
  - card: flow.return
    with: { body: "{{ steps.call }}" }
"#;

/// A run store whose first `park` stops until the test lets it go: the worker holding the run is
/// caught between deciding to park and parking, the moment a notification can be lost.
struct HeldPark {
    inner: Arc<dyn RunStore>,
    reached: Arc<Notify>,
    release: Arc<Notify>,
    /// Outcomes of every park, in order.
    parks: Mutex<Vec<ParkOutcome>>,
}

#[async_trait]
impl RunStoreLayer for HeldPark {
    fn inner(&self) -> &dyn RunStore {
        &*self.inner
    }

    async fn park(&self, checkpoint: &Checkpoint) -> Result<ParkOutcome, StoreError> {
        let first = self.parks.lock().expect("parks").is_empty();
        if first {
            self.reached.notify_one();
            self.release.notified().await;
        }
        let outcome = self.inner.park(checkpoint).await?;
        self.parks.lock().expect("parks").push(outcome);
        Ok(outcome)
    }
}

/// A layer that intercepts nothing is the store it wraps: every call of the run-store suite reaches
/// the store, with its arguments in place. (`HeldPark` above, and the metering and counting stores,
/// rely on exactly this for the calls they do not intercept.)
mod passthrough_run_store {
    use domain::ports::{RunStore, RunStoreLayer};
    use local::sqlite::{SqliteDb, SqliteRunStore};

    struct Passthrough(SqliteRunStore);

    impl RunStoreLayer for Passthrough {
        fn inner(&self) -> &dyn RunStore {
            &self.0
        }
    }

    domain::run_store_conformance!(Passthrough(SqliteRunStore::new(
        SqliteDb::open_in_memory().expect("in-memory database opens")
    )));
}

/// Messages in the queue: visible, in flight (received, not deleted) and delayed.
async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    attributes
        .values()
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_helper_ending_in_another_worker_wakes_the_busy_parent_at_once() {
    let Some(config) = emulator().await else {
        return;
    };
    let FreshStack {
        dynamo,
        flows,
        runs_table,
        sqs,
        queue_url,
        dlq_url,
    } = fresh_stack(&config, &[("parent", PARENT), ("child", CHILD)]).await;
    let flows = Arc::new(flows);
    let queue = Arc::new(SqsRunQueue::new(sqs.clone(), queue_url.clone(), dlq_url));
    let runs: Arc<dyn RunStore> = Arc::new(DynamoRunStore::new(dynamo, runs_table, None));
    let held = Arc::new(HeldPark {
        inner: runs.clone(),
        reached: Arc::new(Notify::new()),
        release: Arc::new(Notify::new()),
        parks: Mutex::new(Vec::new()),
    });
    // The clock never moves: whatever wakes the parent, it is not time passing.
    let clock = Arc::new(ManualClock::new(t0()));
    let worker = |store: Arc<dyn RunStore>, owner: &str| {
        Arc::new(Runtime::new(
            flows.clone(),
            store,
            queue.clone(),
            clock.clone(),
            Arc::new(local::secrets::LocalSecrets::new(".")),
            domain::model::ProjectConfig::default(),
            RunnerConfig {
                owner: owner.to_owned(),
                ..RunnerConfig::default()
            },
        ))
    };
    let a = worker(held.clone(), "worker-a");
    let b = worker(runs.clone(), "worker-b");

    let (parent, _) = b
        .start_run("parent", json!({}), TriggerInfo::Manual, None)
        .await
        .expect("start");
    // Worker A takes the parent, starts the helper and is about to park the parent.
    let first = receive_one(&queue).await;
    assert_eq!(first.message.run_id, parent);
    let first_receipt = first.receipt.clone();
    let driving = tokio::spawn({
        let a = a.clone();
        async move { a.process(&first).await }
    });
    held.reached.notified().await;

    // Worker B runs the helper to its end; the end notifies the parent through the queue.
    let helper = receive_one(&queue).await;
    assert_ne!(helper.message.run_id, parent, "the helper run's message");
    assert_eq!(b.process(&helper).await, Disposition::Done);
    queue.delete(&helper.receipt).await.expect("delete");
    let child = b.run(helper.message.run_id).await.unwrap().expect("helper");
    assert_eq!(child.status, RunStatus::Succeeded);

    // B cannot claim the parent (A holds it): it leaves the news on the run and drops the message.
    let notification = receive_one(&queue).await;
    assert_eq!(notification.message.run_id, parent);
    assert_eq!(b.process(&notification).await, Disposition::Done);
    queue.delete(&notification.receipt).await.expect("delete");
    assert_eq!(
        queue_depth(&sqs, &queue_url).await,
        1,
        "only A's own delivery is left: nothing was re-sent for later"
    );

    // A parks: the park sees the notification, keeps the lease and A finishes the parent itself.
    held.release.notify_one();
    assert_eq!(driving.await.expect("worker A"), Disposition::Done);
    let run = a.run(parent).await.unwrap().expect("parent");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!(42)),
        "the parent returned the helper's result"
    );
    assert_eq!(
        *held.parks.lock().expect("parks"),
        [ParkOutcome::Notified],
        "A's one park was turned into a second look, and the parent never waited"
    );
    let steps = a.steps(parent).await.expect("steps");
    let call = steps.iter().find(|s| s.step == "call").expect("call step");
    assert_eq!(call.output, Some(json!(42)));
    assert_eq!(
        call.started_at,
        t0(),
        "the helper's result arrived without the clock moving"
    );
    queue.delete(&first_receipt).await.expect("delete");
    assert_eq!(
        queue_depth(&sqs, &queue_url).await,
        0,
        "three deliveries (parent, helper, notification) did it all"
    );
}

// ---------------------------------------------------------------- sync invokes, driven inline

const SYNC: &str = r#"
name: sync-3
trigger: { api: { auth: public, respond: sync } }
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

/// The lease of the runtimes below; a sync run's fallback message is hidden 5 s longer.
const SYNC_LEASE: Duration = Duration::from_secs(60);

/// A local deployment (SQLite) on a manual clock: its store and queue, shared by the runtimes the
/// test builds on it (an invoking process and a worker).
struct Local {
    db: local::sqlite::SqliteDb,
    clock: Arc<ManualClock>,
    flows: Arc<local::sqlite::SqliteFlowStore>,
    queue: Arc<local::sqlite::SqliteRunQueue>,
}

impl Local {
    async fn new(files: &[(&str, &str)]) -> Local {
        let db = local::sqlite::SqliteDb::open_in_memory().expect("database");
        let clock = Arc::new(ManualClock::new(t0()));
        let flows = Arc::new(local::sqlite::SqliteFlowStore::new(db.clone()));
        for (name, source) in files {
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
        let queue = Arc::new(local::sqlite::SqliteRunQueue::new(
            db.clone(),
            clock.clone(),
            5,
        ));
        Local {
            db,
            clock,
            flows,
            queue,
        }
    }

    /// A process on the deployment: its own runtime and lease owner.
    fn process(
        &self,
        owner: &str,
        http: Option<Arc<dyn domain::cards::CardExecutor>>,
    ) -> Arc<Runtime> {
        let runtime = Runtime::new(
            self.flows.clone(),
            Arc::new(local::sqlite::SqliteRunStore::new(self.db.clone())),
            self.queue.clone(),
            self.clock.clone(),
            Arc::new(local::secrets::LocalSecrets::new(".")),
            domain::model::ProjectConfig::default(),
            RunnerConfig {
                owner: owner.to_owned(),
                lease: SYNC_LEASE,
                ..RunnerConfig::default()
            },
        );
        Arc::new(match http {
            Some(executor) => runtime.with_executor("http", executor),
            None => runtime,
        })
    }

    /// The visible queue messages, received now without waiting.
    async fn visible(&self) -> Vec<Delivery> {
        self.queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .expect("receive")
    }
}

/// Guards a call that would hang if the code under test waited for something that never comes
/// (the manual clock never moves by itself); not a synchronisation.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not return"))
}

#[tokio::test]
async fn a_sync_invoke_answers_from_its_own_process_with_no_worker_and_no_clock_moving() {
    let local = Local::new(&[("sync-3", SYNC)]).await;
    let api = local.process("api", None);
    let flow = api.current_flow("sync-3").await.expect("flow");
    let input = json!({ "body": { "name": "Ada", "groups": ["eng", "ops"] } });
    let trigger = TriggerInfo::Api(domain::run::ApiStart {
        method: "POST".to_owned(),
    });
    // Nobody consumes the queue and time stands still: only driving the steps here can answer.
    let (id, run) = within(
        "the sync invoke",
        api.invoke_sync(&flow, input, trigger, Duration::from_secs(10)),
    )
    .await
    .expect("invoke");
    let run = run.expect("the run ended within the timeout");
    assert_eq!(run.id, id);
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!({ "who": "Ada", "groups": 2 }))
    );
    assert_eq!(api.steps(id).await.expect("steps").len(), 3);

    // The run's message is durable but hidden: the fallback, due once the lease could have expired.
    assert!(
        local.visible().await.is_empty(),
        "no worker is asked to run it"
    );
    local.clock.advance(SYNC_LEASE + Duration::from_secs(5));
    let fallback = local.visible().await;
    assert_eq!(fallback.len(), 1, "the fallback message comes due");
    assert_eq!(fallback[0].message.run_id, id);
    let worker = local.process("worker", None);
    assert_eq!(worker.process(&fallback[0]).await, Disposition::Done);
    let after = worker.run(id).await.expect("read").expect("run");
    assert_eq!(after, run, "the ended run is left as it was");
    assert_eq!(
        worker.steps(id).await.expect("steps").len(),
        3,
        "no step ran twice"
    );
}

/// An `http` executor that never answers: for all the store can tell, the invoking process died
/// mid-step (the step's timeout is longer than the lease, so the invoker writes nothing more).
struct Stalled(Arc<Notify>);

#[async_trait]
impl domain::cards::CardExecutor for Stalled {
    async fn execute(
        &self,
        _: &domain::cards::CardCall,
    ) -> Result<serde_json::Value, domain::cards::CardError> {
        self.0.notify_one();
        std::future::pending().await
    }
}

/// An `http` executor that answers 200.
struct Answers;

#[async_trait]
impl domain::cards::CardExecutor for Answers {
    async fn execute(
        &self,
        _: &domain::cards::CardCall,
    ) -> Result<serde_json::Value, domain::cards::CardError> {
        Ok(json!({ "status": 200, "headers": {}, "body": [] }))
    }
}

#[tokio::test]
async fn a_sync_run_whose_invoker_stalls_is_answered_202_and_finished_by_a_worker_after_the_lease()
{
    let local = Local::new(&[("sync-http", SYNC_HTTP)]).await;
    let called = Arc::new(Notify::new());
    let api = local.process("api", Some(Arc::new(Stalled(called.clone()))));
    let flow = api.current_flow("sync-http").await.expect("flow");
    let trigger = TriggerInfo::Api(domain::run::ApiStart {
        method: "GET".to_owned(),
    });
    let invoking = tokio::spawn({
        let api = api.clone();
        async move {
            api.invoke_sync(&flow, json!({}), trigger, Duration::from_secs(10))
                .await
        }
    });
    within("the inline step", called.notified()).await;
    local.clock.advance(Duration::from_secs(10));
    let (id, run) = within("the sync timeout", invoking)
        .await
        .expect("join")
        .expect("invoke");
    assert!(
        run.is_none(),
        "the timeout passed: the API answers 202 with the run id"
    );
    assert_eq!(
        api.run(id).await.expect("read").expect("run").status,
        RunStatus::Running
    );

    // The invoker never comes back. Its lease runs out, and the fallback message brings a worker.
    assert!(
        local.visible().await.is_empty(),
        "hidden while the lease holds"
    );
    local
        .clock
        .advance(SYNC_LEASE - Duration::from_secs(10) + Duration::from_secs(5));
    let fallback = local.visible().await;
    assert_eq!(
        fallback.len(),
        1,
        "the fallback message comes due after the lease"
    );
    let worker = local.process("worker", Some(Arc::new(Answers)));
    assert_eq!(worker.process(&fallback[0]).await, Disposition::Done);
    let run = worker.run(id).await.expect("read").expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.output.as_ref().and_then(|o| o.get("body")),
        Some(&json!(200))
    );
}
