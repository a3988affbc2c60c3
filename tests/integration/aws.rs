//! The AWS adapters against moto's server (real AWS APIs, no Docker): the same conformance suites
//! as the SQLite adapters, plus what only AWS shows (item size limits, Secrets Manager caching).
//!
//! `.ci/run` starts the emulator on `AWS_ENDPOINT_URL` (default `http://127.0.0.1:5005`). Without it
//! the tests print SKIPPED and pass, except under `CI=true`, where a missing emulator is a failure.
//! Every test creates its own uniquely named tables, queues and schedule groups.

use std::sync::Arc;
use std::time::Duration;

use aws::{
    DynamoFlowStore, DynamoRunStore, DynamoTableStore, S3BlobStore, SchedulerSchedules,
    SecretsManagerSecrets, SqsRunQueue,
};
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use domain::clock::ManualClock;
use domain::conformance::{LEASE, queued_run, step_record, t0};
use domain::model::SecretRef;
use domain::ports::{Checkpoint, RunQueue, RunStore, SecretError, Secrets};
use domain::run::RunStatus;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5005";

/// The emulator's SDK configuration, or `None` (after a loud SKIPPED) when it is not running.
/// Under `CI=true` a missing emulator fails the test instead.
pub async fn emulator() -> Option<SdkConfig> {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned());
    let address = endpoint
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    if tokio::net::TcpStream::connect(&address).await.is_err() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("the AWS emulator is not reachable at {endpoint}, and CI=true requires it");
        }
        eprintln!("SKIPPED: no AWS emulator at {endpoint} (start one with `moto_server -p 5005`)");
        return None;
    }
    let config = aws::sdk_defaults()
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "emulator"))
        .load()
        .await;
    Some(config)
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A run store on a fresh table, without a blob store: values too big for an item are refused
/// (runs) or replaced by a marker (step records).
pub async fn bare_run_store() -> Option<DynamoRunStore> {
    let config = emulator().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("runs");
    DynamoRunStore::create_table(&client, &table)
        .await
        .expect("create runs table");
    Some(DynamoRunStore::new(
        client,
        table,
        Some(Duration::from_secs(86_400)),
    ))
}

/// A fresh S3 bucket on the emulator.
pub async fn blob_bucket() -> Option<Arc<S3BlobStore>> {
    let config = emulator().await?;
    let store = S3BlobStore::new(&config, unique("idflow-history"));
    store.create_bucket().await.expect("create the bucket");
    Some(Arc::new(store))
}

/// A run store as the Lambdas build it: DynamoDB, with S3 for values too big for an item.
pub async fn run_store() -> Option<DynamoRunStore> {
    let store = bare_run_store().await?;
    Some(store.with_history_blobs(blob_bucket().await?))
}

pub async fn flow_store() -> Option<DynamoFlowStore> {
    let config = emulator().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("flows");
    DynamoFlowStore::create_table(&client, &table)
        .await
        .expect("create flows table");
    Some(DynamoFlowStore::new(client, table))
}

pub async fn table_store() -> Option<DynamoTableStore> {
    let config = emulator().await?;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("tables");
    DynamoTableStore::create_table(&client, &table)
        .await
        .expect("create tables table");
    Some(DynamoTableStore::new(client, table))
}

pub async fn run_queue() -> Option<SqsRunQueue> {
    let config = emulator().await?;
    let client = aws_sdk_sqs::Client::new(&config);
    let (queue, dlq) = SqsRunQueue::create_queues(&client, &unique("runs"), 3)
        .await
        .expect("create queues");
    Some(SqsRunQueue::new(client, queue, dlq))
}

pub async fn schedules() -> Option<SchedulerSchedules> {
    let config = emulator().await?;
    let client = aws_sdk_scheduler::Client::new(&config);
    let group = unique("idflow");
    SchedulerSchedules::create_group(&client, &group)
        .await
        .expect("create schedule group");
    Some(SchedulerSchedules::new(
        client,
        group,
        "arn:aws:lambda:us-east-1:123456789012:function:schedule",
        "arn:aws:iam::123456789012:role/idflow-scheduler",
    ))
}

mod dynamo_run_store {
    domain::run_store_conformance!(match super::run_store().await {
        Some(store) => store,
        None => return,
    });
}

mod dynamo_flow_store {
    domain::flow_store_conformance!(match super::flow_store().await {
        Some(store) => store,
        None => return,
    });
}

mod dynamo_table_store {
    domain::table_store_conformance!(match super::table_store().await {
        Some(store) => store,
        None => return,
    });
}

// SQS standard queues deliver at least once (a message can come back while hidden, which moto's
// server also does under concurrent receives): the runner's lease makes that harmless.
mod sqs_run_queue {
    domain::run_queue_conformance!(at_least_once: match super::run_queue().await {
        Some(queue) => queue,
        None => return,
    });
}

mod scheduler_schedules {
    domain::schedules_conformance!(match super::schedules().await {
        Some(schedules) => schedules,
        None => return,
    });
}

#[tokio::test]
async fn dynamo_without_a_blob_store_truncates_step_data_over_the_item_limit() {
    let Some(store) = bare_run_store().await else {
        return;
    };
    let run = queued_run("big", t0());
    store.create(&run, None).await.expect("create");
    store
        .claim(run.id, "w", t0(), LEASE)
        .await
        .expect("claim")
        .expect("claimable");
    let mut record = step_record(0);
    record.output = Some(serde_json::json!({ "body": "x".repeat(500 * 1024) }));
    store
        .checkpoint(&Checkpoint {
            run_id: run.id,
            owner: "w".to_owned(),
            status: RunStatus::Running,
            state: None,
            steps: vec![record],
            wake_at: None,
            output: None,
            error: None,
            finished_at: None,
            drop_input: false,
            release: false,
        })
        .await
        .expect("a 500 KB step record is stored, truncated");
    let steps = store.steps(run.id).await.expect("steps");
    assert_eq!(steps.len(), 1);
    let output = steps[0].output.clone().unwrap_or_default();
    assert_eq!(output["idflow_truncated"], serde_json::json!(true));
    assert!(
        output["bytes"].as_u64().unwrap_or(0) > 500 * 1024,
        "the marker says how big it was"
    );
}

/// A big input goes to S3 under `history/<run id>/`, apart from the engine's values (deleted when
/// the run ends); `history: none` deletes it when the run ends, so nothing of it is kept.
#[tokio::test]
async fn dynamo_keeps_big_inputs_in_s3_until_history_none_drops_them() {
    let (Some(config), Some(bare)) = (emulator().await, bare_run_store().await) else {
        return;
    };
    let blobs = S3BlobStore::new(&config, unique("idflow-history"));
    blobs.create_bucket().await.expect("create the bucket");
    let store = bare.with_history_blobs(Arc::new(blobs.clone()));
    let keys = |prefix: String| {
        let blobs = blobs.clone();
        async move { blobs.list_keys(&prefix).await.expect("list the bucket") }
    };
    let mut run = queued_run("private", t0());
    run.input = domain::conformance::megabyte_value(1024 * 1024, "in");
    store.create(&run, None).await.expect("create");
    let prefix = format!("history/{}/", run.id);
    let stored = keys(prefix.clone()).await;
    assert_eq!(stored.len(), 1, "the input is one object: {stored:?}");
    assert!(
        stored[0].starts_with(&format!("{prefix}input-")),
        "named as the run's input: {stored:?}"
    );
    store
        .claim(run.id, "w", t0(), LEASE)
        .await
        .expect("claim")
        .expect("claimable");
    let done = Checkpoint {
        run_id: run.id,
        owner: "w".to_owned(),
        status: RunStatus::Succeeded,
        state: None,
        steps: Vec::new(),
        wake_at: None,
        output: Some(serde_json::json!({ "ok": true })),
        error: None,
        finished_at: Some(t0()),
        drop_input: true,
        release: true,
    };
    store.checkpoint(&done).await.expect("final checkpoint");
    assert_eq!(
        keys(prefix).await,
        Vec::<String>::new(),
        "nothing of the dropped input is left in the bucket"
    );
}

/// S3 keys are sent percent-encoded segment by segment and listed back as XML: characters that
/// need encoding or escaping (spaces, `+`, `=`, `&`, `<`, unicode) name the same object throughout.
#[tokio::test]
async fn s3_keys_that_need_encoding_round_trip_list_and_delete() {
    let Some(store) = blob_bucket().await else {
        return;
    };
    use domain::ports::BlobStore;
    let keys = [
        "runs/r1/a b",
        "runs/r1/a+b",
        "runs/r1/k=v&w",
        "runs/r1/<é ü 🦀>",
        "runs/r1/sub dir/x~y.json",
    ];
    for (index, key) in keys.iter().enumerate() {
        store
            .put(key, format!("{{\"n\":{index}}}").into_bytes())
            .await
            .expect("stored");
    }
    for (index, key) in keys.iter().enumerate() {
        assert_eq!(
            store.get(key).await.expect("read"),
            Some(format!("{{\"n\":{index}}}").into_bytes()),
            "{key}"
        );
    }
    let mut listed = store.list_keys("runs/r1/").await.expect("listed");
    listed.sort();
    let mut expected = keys.map(str::to_owned).to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(
        store.delete_prefix("runs/r1/").await.expect("deleted"),
        keys.len() as u64
    );
    for key in keys {
        assert_eq!(store.get(key).await.expect("read"), None, "{key}");
    }
}

/// More keys than one `ListObjectsV2` page and one `DeleteObjects` batch hold (1000 each): every
/// page is read and every batch sent.
#[tokio::test]
async fn s3_deletes_a_prefix_of_more_than_a_thousand_keys() {
    let Some(store) = blob_bucket().await else {
        return;
    };
    use domain::ports::BlobStore;
    let count = 1_005;
    for n in 0..count {
        store
            .put(&format!("runs/many/{n:04}"), b"{}".to_vec())
            .await
            .expect("stored");
    }
    store
        .put("runs/other/kept", b"{}".to_vec())
        .await
        .expect("stored");
    assert_eq!(
        store.list_keys("runs/many/").await.expect("listed").len(),
        count
    );
    assert_eq!(
        store.delete_prefix("runs/many/").await.expect("deleted"),
        count as u64
    );
    assert_eq!(
        store.list_keys("runs/many/").await.expect("listed"),
        Vec::<String>::new()
    );
    assert_eq!(
        store.get("runs/other/kept").await.expect("read"),
        Some(b"{}".to_vec()),
        "another prefix is left alone"
    );
}

/// A bucket that does not exist is S3's `NoSuchBucket`, not retried, and the error a log would
/// show holds nothing of the request's signature or the secret key it was computed from.
#[tokio::test]
async fn s3_a_missing_bucket_is_a_refusal_naming_the_code_and_nothing_secret() {
    let Some(config) = emulator().await else {
        return;
    };
    use domain::ports::BlobStore;
    // Credentials of its own, so the secret key is a string no error would hold by chance.
    let secret = "s3-test-secret-7Yq2Zr";
    let config = config
        .to_builder()
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            Credentials::new("AKIDS3TEST", secret, None, None, "test"),
        ))
        .build();
    let store = S3BlobStore::new(&config, unique("idflow-missing"));
    let error = store
        .put("runs/r/k", b"{}".to_vec())
        .await
        .expect_err("no bucket");
    assert!(!error.is_retryable(), "{error:?}");
    let mut text = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(next) = source {
        text.push_str(&format!(" {next}"));
        source = next.source();
    }
    assert!(text.contains("NoSuchBucket"), "{text}");
    assert!(!text.contains("Signature="), "{text}");
    assert!(!text.contains("AWS4-HMAC"), "{text}");
    assert!(!text.contains(secret), "{text}");
    assert!(!text.contains("aws4_request"), "{text}");
    assert!(
        store.get("runs/r/k").await.is_err(),
        "a read fails the same way"
    );
}

#[tokio::test]
async fn secrets_manager_secrets_are_cached_until_the_ttl_passes() {
    let Some(config) = emulator().await else {
        return;
    };
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let name = unique("okta-token");
    client
        .create_secret()
        .name(&name)
        .secret_string("first")
        .send()
        .await
        .expect("create secret");
    let clock = Arc::new(ManualClock::new(t0()));
    let secrets =
        SecretsManagerSecrets::new(client.clone(), clock.clone(), Duration::from_secs(300));
    let reference = SecretRef::AwsSecretsManager(name.clone());
    let read = || async {
        secrets
            .resolve(&reference)
            .await
            .expect("resolve")
            .expose()
            .to_owned()
    };
    assert_eq!(read().await, "first");
    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string("rotated")
        .send()
        .await
        .expect("rotate");
    assert_eq!(
        read().await,
        "first",
        "served from the cache within the TTL"
    );
    clock.advance(Duration::from_secs(301));
    assert_eq!(read().await, "rotated", "read again after the TTL");
    let missing = secrets
        .resolve(&SecretRef::AwsSecretsManager(unique("nope")))
        .await;
    assert!(
        matches!(missing, Err(SecretError::Missing { .. })),
        "got {missing:?}"
    );
    let env = secrets.resolve(&SecretRef::Env("HOME".to_owned())).await;
    assert!(
        matches!(env, Err(SecretError::Unsupported { .. })),
        "got {env:?}"
    );
}

#[tokio::test]
async fn dynamo_keeps_the_deployed_project_files() {
    let Some(store) = flow_store().await else {
        return;
    };
    assert_eq!(store.project().await.unwrap(), None);
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "idflow.yaml".to_owned(),
        "vars: { org: Example }\n".to_owned(),
    );
    assert_eq!(
        store.put_project(&files).await.unwrap(),
        domain::ports::PutOutcome::Added
    );
    assert_eq!(
        store.put_project(&files).await.unwrap(),
        domain::ports::PutOutcome::Unchanged
    );
    files.insert(
        "idflow.yaml".to_owned(),
        "vars: { org: Other }\n".to_owned(),
    );
    assert_eq!(
        store.put_project(&files).await.unwrap(),
        domain::ports::PutOutcome::Updated
    );
    let stored = store.project().await.unwrap().expect("project files");
    let config = domain::flowfile::parse_project_files(&stored).unwrap();
    assert_eq!(config.vars["org"], "Other");
    // The project item is not a flow.
    assert!(
        domain::ports::FlowStore::list(&store)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn dynamo_refuses_a_table_row_over_the_item_limit_naming_table_and_size() {
    use domain::tables::{OnDuplicate, TableError, TableStore};
    let Some(store) = table_store().await else {
        return;
    };
    let project = domain::conformance::tables_fixture();
    let logins = domain::tables::schema(&project, "logins").expect("fixture table");
    let big = serde_json::json!({ "id": "big", "raw": { "blob": "x".repeat(420 * 1024) } });
    let result = store
        .insert(
            &logins,
            big.as_object().expect("an object"),
            OnDuplicate::Fail,
        )
        .await;
    match result {
        Err(error @ TableError::RowTooLarge { .. }) => {
            let message = error.to_string();
            assert!(message.contains("`logins`"), "{message}");
            assert!(message.contains("430"), "the size in bytes: {message}");
        }
        other => panic!("a 420 KB row must be refused before DynamoDB sees it: {other:?}"),
    }
    assert_eq!(store.count(&logins).await.expect("count"), 0);
    let fits = serde_json::json!({ "id": "fits", "raw": { "blob": "x".repeat(300 * 1024) } });
    store
        .insert(
            &logins,
            fits.as_object().expect("an object"),
            OnDuplicate::Fail,
        )
        .await
        .expect("a 300 KB row is stored");
    let row = store.get(&logins, "fits").await.expect("get").expect("row");
    assert_eq!(
        row.values["raw"]["blob"].as_str().map(str::len),
        Some(300 * 1024)
    );
}

/// A runtime on the AWS adapters (DynamoDB, SQS, and Scheduler wake-ups) with a manual clock, and
/// what the wake-up tests look at behind it.
struct AwsRuntime {
    runtime: domain::runner::Runtime,
    /// The runtime's queue, consumed here as the worker Lambda's event source does.
    queue: Arc<SqsRunQueue>,
    clock: Arc<ManualClock>,
    scheduler: aws_sdk_scheduler::Client,
    group: String,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_arn: String,
}

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/idflow-scheduler";

/// Fresh DynamoDB flow and run tables with `flows` deployed, and a fresh SQS run queue with its
/// dead-letter queue: the stack every runtime test on the AWS adapters starts from.
pub struct FreshStack {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub flows: DynamoFlowStore,
    pub runs_table: String,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dlq_url: String,
}

/// Builds a [`FreshStack`] on the emulator `config` points at.
pub async fn fresh_stack(config: &SdkConfig, flows: &[(&str, &str)]) -> FreshStack {
    use domain::ports::{FlowStore, StoredFlow};
    let dynamo = aws_sdk_dynamodb::Client::new(config);
    let (flows_table, runs_table) = (unique("flows"), unique("runs"));
    DynamoFlowStore::create_table(&dynamo, &flows_table)
        .await
        .expect("create flows table");
    DynamoRunStore::create_table(&dynamo, &runs_table)
        .await
        .expect("create runs table");
    let flow_store = DynamoFlowStore::new(dynamo.clone(), flows_table);
    for (name, source) in flows {
        flow_store
            .put(&StoredFlow::new(
                name,
                &format!("{name}.yaml"),
                source,
                t0(),
            ))
            .await
            .expect("deploy");
    }
    let sqs = aws_sdk_sqs::Client::new(config);
    let (queue_url, dlq_url) = SqsRunQueue::create_queues(&sqs, &unique("runs"), 5)
        .await
        .expect("create queues");
    FreshStack {
        dynamo,
        flows: flow_store,
        runs_table,
        sqs,
        queue_url,
        dlq_url,
    }
}

/// Receives the one message that must be visible on `queue`.
pub async fn receive_one(queue: &SqsRunQueue) -> domain::ports::Delivery {
    let mut deliveries = queue
        .receive(1, Duration::from_secs(60), Duration::from_secs(1))
        .await
        .expect("receive");
    assert_eq!(deliveries.len(), 1, "one message is visible");
    deliveries.remove(0)
}

/// `flows` deployed on fresh tables and a fresh queue, with [`SchedulerWakeups`] on a fresh group.
async fn aws_runtime(flows: &[(&str, &str)]) -> Option<AwsRuntime> {
    use aws::SchedulerWakeups;
    let config = emulator().await?;
    let FreshStack {
        dynamo,
        flows: flow_store,
        runs_table,
        sqs,
        queue_url,
        dlq_url,
    } = fresh_stack(&config, flows).await;
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .expect("queue ARN");
    let scheduler = aws_sdk_scheduler::Client::new(&config);
    let group = unique("idflow");
    SchedulerSchedules::create_group(&scheduler, &group)
        .await
        .expect("create schedule group");
    let clock = Arc::new(ManualClock::new(t0()));
    let queue = Arc::new(SqsRunQueue::new(sqs.clone(), queue_url.clone(), dlq_url));
    let runtime = domain::runner::Runtime::new(
        Arc::new(flow_store),
        Arc::new(DynamoRunStore::new(dynamo, runs_table, None)),
        queue.clone(),
        clock.clone(),
        Arc::new(local::secrets::LocalSecrets::new(".")),
        domain::model::ProjectConfig::default(),
        domain::runner::RunnerConfig::default(),
    )
    .with_wakeups(Arc::new(SchedulerWakeups::new(
        scheduler.clone(),
        group.clone(),
        queue_arn.clone(),
        ROLE_ARN,
    )));
    Some(AwsRuntime {
        runtime,
        queue,
        clock,
        scheduler,
        group,
        sqs,
        queue_url,
        queue_arn,
    })
}

impl AwsRuntime {
    /// Receives the one visible message, processes it and settles it as a worker does.
    async fn process_next(&self) {
        let delivery = receive_one(&self.queue).await;
        assert_eq!(
            self.runtime.process(&delivery).await,
            domain::runner::Disposition::Done
        );
        self.queue.delete(&delivery.receipt).await.expect("delete");
    }

    async fn delayed_messages(&self) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName;
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::ApproximateNumberOfMessagesDelayed))
            .and_then(|n| n.parse().ok())
            .expect("delayed count")
    }

    async fn schedule_names(&self) -> Vec<String> {
        self.scheduler
            .list_schedules()
            .group_name(&self.group)
            .send()
            .await
            .expect("list schedules")
            .schedules
            .iter()
            .filter_map(|s| s.name().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn a_two_hour_wait_is_a_scheduler_wakeup_that_resumes_the_run() {
    use aws::SchedulerWakeups;
    use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindowMode};
    const PAUSE: &str = "name: pause\nsteps:\n  - wait: 2h\n  - { id: after, card: text.compose, with: { text: woke } }\n";
    let Some(aws) = aws_runtime(&[("pause", PAUSE)]).await else {
        return;
    };
    let (id, _) = aws
        .runtime
        .start_run(
            "pause",
            serde_json::json!({}),
            domain::run::TriggerInfo::Manual,
            None,
        )
        .await
        .expect("start");
    aws.process_next().await;
    let run = aws.runtime.run(id).await.unwrap().expect("run");
    let wake = t0() + chrono::Duration::hours(2);
    assert_eq!((run.status, run.wake_at), (RunStatus::Waiting, Some(wake)));
    assert_eq!(
        aws.delayed_messages().await,
        0,
        "no 15-minute hop was queued"
    );
    let name = SchedulerWakeups::schedule_name(id, wake);
    assert_eq!(aws.schedule_names().await, std::slice::from_ref(&name));
    let schedule = aws
        .scheduler
        .get_schedule()
        .name(&name)
        .group_name(&aws.group)
        .send()
        .await
        .expect("the wake-up schedule exists");
    assert_eq!(
        schedule.schedule_expression(),
        Some(format!("at({})", wake.format("%Y-%m-%dT%H:%M:%S")).as_str())
    );
    assert_eq!(schedule.schedule_expression_timezone(), Some("UTC"));
    assert_eq!(
        schedule.action_after_completion(),
        Some(&ActionAfterCompletion::Delete)
    );
    assert_eq!(
        schedule.flexible_time_window().map(|w| w.mode()),
        Some(&FlexibleTimeWindowMode::Off)
    );
    let target = schedule.target().expect("a target");
    assert_eq!(target.arn(), aws.queue_arn);
    assert_eq!(target.role_arn(), ROLE_ARN);
    let input = target.input().expect("an input").to_owned();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&input).expect("JSON input"),
        serde_json::json!({ "run_id": id.to_string() })
    );
    // The flows' schedules in the same group do not mistake the wake-up for a flow.
    let flows = SchedulerSchedules::new(
        aws.scheduler.clone(),
        aws.group.clone(),
        "arn:aws:lambda:us-east-1:123456789012:function:schedule",
        ROLE_ARN,
    );
    assert!(
        domain::ports::Schedules::list(&flows)
            .await
            .expect("list")
            .is_empty()
    );
    // Re-queueing waiting runs after a restart finds the schedule instead of adding another.
    aws.runtime.recover().await.expect("recover");
    assert_eq!(aws.schedule_names().await, [name]);
    // Moto never fires schedules: deliver the target's input to the queue as Scheduler would.
    aws.clock.advance(Duration::from_secs(2 * 3600));
    aws.sqs
        .send_message()
        .queue_url(&aws.queue_url)
        .message_body(input)
        .send()
        .await
        .expect("send the schedule's input");
    aws.process_next().await;
    let run = aws.runtime.run(id).await.unwrap().expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let steps = aws.runtime.steps(id).await.expect("steps");
    let after = steps
        .iter()
        .find(|s| s.step == "after")
        .expect("the step after the wait ran");
    assert_eq!(after.output, Some(serde_json::json!("woke")));
}

#[tokio::test]
async fn a_ten_minute_wait_is_a_queue_delay_not_a_schedule() {
    const SHORT: &str = "name: short\nsteps:\n  - wait: 10m\n  - { id: after, card: text.compose, with: { text: woke } }\n";
    let Some(aws) = aws_runtime(&[("short", SHORT)]).await else {
        return;
    };
    let (id, _) = aws
        .runtime
        .start_run(
            "short",
            serde_json::json!({}),
            domain::run::TriggerInfo::Manual,
            None,
        )
        .await
        .expect("start");
    aws.process_next().await;
    let run = aws.runtime.run(id).await.unwrap().expect("run");
    assert_eq!(run.status, RunStatus::Waiting);
    assert!(
        aws.schedule_names().await.is_empty(),
        "no schedule for a wait SQS can delay"
    );
    assert_eq!(
        aws.delayed_messages().await,
        1,
        "the wake-up is a delayed message"
    );
}

/// The raw messages moto's SES backend accepted (`GET /moto-api/data.json`, `ses.RawMessage`).
async fn moto_raw_messages() -> Vec<serde_json::Value> {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned());
    let data: serde_json::Value = reqwest::get(format!(
        "{}/moto-api/data.json",
        endpoint.trim_end_matches('/')
    ))
    .await
    .expect("moto's model data")
    .json()
    .await
    .expect("JSON model data");
    data["ses"]["RawMessage"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn email_call(from: &str, input: serde_json::Value) -> domain::cards::CardCall {
    let mut project = domain::model::ProjectConfig::default();
    project.connections.insert(
        "email".into(),
        serde_json::json!({ "from": format!("idflow <{from}>"), "ses": {} }),
    );
    domain::cards::CardCall {
        card: "email.send".into(),
        input,
        timeout: Duration::from_secs(20),
        run_id: domain::run::RunId::new_at(t0()),
        step: "mail".into(),
        attempt: 1,
        project: Arc::new(project),
    }
}

#[tokio::test]
async fn ses_sends_the_email_card_with_a_csv_attachment() {
    use aws::SesEmail;
    use base64::Engine as _;
    use connectors::cards::email::EmailExecutor;
    use domain::cards::{CardError, CardExecutor};
    let Some(config) = emulator().await else {
        return;
    };
    let client = aws_sdk_sesv2::Client::new(&config);
    // Moto keeps identities verified for as long as it runs: each run of the test has its own.
    let sender = format!("{}@example.com", unique("idflow"));
    let executor = EmailExecutor::new(Arc::new(local::secrets::LocalSecrets::new(".")))
        .with_ses(Arc::new(SesEmail::new(client.clone(), &sender)));
    let subject = unique("Failed logins");
    let csv = "user,count\nada@example.com,7\nbob@example.com,3\n";
    let input = serde_json::json!({
        "to": "Security <security@example.com>",
        "cc": ["audit@example.com"],
        "bcc": "hidden@example.com",
        "subject": subject,
        "body": "Attached: failed logins of the last day.",
        "attachments": { "filename": "failed-logins.csv", "content": csv },
    });
    // Not verified yet: SES refuses, and retrying would not help.
    match executor.execute(&email_call(&sender, input.clone())).await {
        Err(CardError::Failed {
            code,
            message,
            retryable,
        }) => {
            assert_eq!(code, "email_rejected");
            assert!(!retryable, "an unverified sender is not retried");
            assert!(
                message.contains(&sender),
                "SES's message names the sender: {message}"
            );
        }
        other => panic!("an unverified identity must be refused: {other:?}"),
    }
    client
        .create_email_identity()
        .email_identity(&sender)
        .send()
        .await
        .expect("verify the identity");
    let output = executor
        .execute(&email_call(&sender, input))
        .await
        .expect("sent through SES");
    assert_eq!(output["recipients"], 3);
    let id = output["message_id"]
        .as_str()
        .expect("SES's message id")
        .to_owned();
    let messages = moto_raw_messages().await;
    let sent = messages
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap_or_else(|| panic!("moto holds message {id}"));
    let destinations: Vec<&str> = sent["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    for address in [
        "security@example.com",
        "audit@example.com",
        "hidden@example.com",
    ] {
        assert!(
            destinations.iter().any(|d| d.contains(address)),
            "{address} is a recipient: {destinations:?}"
        );
    }
    let raw = sent["raw_data"].as_str().expect("raw message");
    assert!(raw.contains(&format!("Subject: {subject}")), "{raw}");
    assert!(raw.contains(&format!("From: idflow <{sender}>")), "{raw}");
    assert!(
        !raw.contains("hidden@example.com"),
        "Bcc stays out of the headers"
    );
    assert!(raw.contains("failed-logins.csv"), "the attachment is named");
    assert!(raw.contains("text/csv"), "the attachment is CSV");
    let encoded = base64::engine::general_purpose::STANDARD.encode(csv);
    let unfolded: String = raw.split("\r\n").collect();
    assert!(
        unfolded.contains(&encoded) || raw.contains("ada@example.com,7"),
        "the CSV content is in the message: {raw}"
    );
}

#[tokio::test]
async fn dynamo_tables_import_and_export_csv_across_pages() {
    use domain::tables::csv::{ExportOptions, export, import};
    use domain::tables::{OnDuplicate, RowQuery, TableStore};
    let Some(store) = table_store().await else {
        return;
    };
    let project = domain::conformance::tables_fixture();
    let events = domain::tables::schema(&project, "events").expect("fixture table");
    let mut csv = String::from("kind,n\n");
    for n in 0..600 {
        csv.push_str(&format!("login,{n}\n"));
    }
    let imported = import(&store, &events, csv.as_bytes(), OnDuplicate::Fail, |_| {})
        .await
        .expect("import");
    assert_eq!(imported.rows, 600);
    assert_eq!(store.count(&events).await.expect("count"), 600);
    // Filtered here across DynamoDB reads of 501 rows, exported 500 rows a page.
    let query = RowQuery::parse(
        &events,
        Some(&serde_json::json!({ "n": { "gte": 50 } })),
        None,
        None,
    )
    .expect("query");
    let mut out = Vec::new();
    let report = export(&store, &events, &query, &ExportOptions::default(), &mut out)
        .await
        .expect("export");
    assert_eq!(report.rows, 550);
    let text = String::from_utf8(out).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 551, "a header and one line per matching row");
    assert_eq!(lines[0], "kind,n");
    assert_eq!(lines[1], "login,50", "insertion order");
    assert_eq!(lines[550], "login,599");
    assert_eq!(store.clear(&events).await.expect("clear"), 600);
    assert_eq!(store.count(&events).await.expect("count"), 0);
}
