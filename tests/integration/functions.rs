//! The four Lambda functions' handlers on the payloads in `events/`, against moto's server (real
//! DynamoDB, SQS and Secrets Manager APIs): each event file is decoded exactly as the Lambda
//! runtime decodes it and goes through the function's own router or handler, on the runtime
//! [`LambdaConfig::runtime`] builds at a cold start (project configuration read back from the flows
//! table, as `idflow deploy` stored it).
//!
//! Skipped (loudly) without the emulator, failed under `CI=true`; see [`super::aws::emulator`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws::emf::Sink;
use aws::lambda::LambdaConfig;
use aws::{DynamoFlowStore, DynamoRunStore, DynamoTableStore, SqsRunQueue};
use aws_lambda_events::sqs::SqsEvent;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use axum::body::Body;
use domain::ports::{FlowStore, RunStore, StoredFlow};
use domain::run::{RunId, RunStatus, TriggerInfo};
use domain::runner::Runtime;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::aws::{emulator, unique};

/// The client token in `events/api-invoke.json`.
const CLIENT_TOKEN: &str = "example-client-token-0c5b1f";
/// The `Authorization` header of `events/hook-delivery.json`.
const HOOK_SECRET: &str = "example-hook-secret-5e1d77";

const PROVISION: &str = r#"
name: provision-account
trigger:
  api: { auth: token }
steps:
  - id: greeting
    card: text.compose
    with: { text: "provisioning {{ input.body.login }} from {{ input.query.source }}" }
  - card: table.create_row
    with:
      table: provisioned
      row: { login: "{{ input.body.login }}", source: "{{ input.query.source }}" }
"#;

/// The table PROVISION writes to, as a `tables/*.yaml` project file.
const PROVISIONED_TABLE: &str = "key: login\ncolumns:\n  login: text\n  source: text\n";

const ACTIVATED: &str = r#"
name: user-activated
trigger:
  event:
    okta: [user.lifecycle.activate]
steps:
  - id: who
    card: text.compose
    with: { text: "{{ input.event.target[0].alternateId }}" }
"#;

const NIGHTLY: &str = r#"
name: nightly-access-review
trigger: { schedule: { cron: "0 2 * * ? *" } }
steps:
  - id: when
    card: text.compose
    with: { text: "{{ input.scheduled_for }}" }
"#;

/// One deployment on the emulator: tables, queue and dead-letter queue, secrets, the deployed
/// flows and project file, and the runtime a cold start builds on them.
struct Stack {
    config: LambdaConfig,
    runtime: Arc<Runtime>,
    sqs: aws_sdk_sqs::Client,
    queue_arn: String,
    dead_letter_arn: String,
    /// A run store of its own, to read back what the functions wrote.
    runs: DynamoRunStore,
    /// The DynamoDB table of the idflow tables (`IDFLOW_TABLES_TABLE`), and a client to read it.
    tables_table: String,
    dynamo: aws_sdk_dynamodb::Client,
}

async fn stack(max_receive_count: u32) -> Option<Stack> {
    let sdk = emulator().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let runs_table = unique("runs");
    let flows_table = unique("flows");
    DynamoRunStore::create_table(&dynamo, &runs_table)
        .await
        .expect("runs table");
    DynamoFlowStore::create_table(&dynamo, &flows_table)
        .await
        .expect("flows table");
    let tables_table = unique("tables");
    DynamoTableStore::create_table(&dynamo, &tables_table)
        .await
        .expect("data tables table");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let (queue_url, dlq_url) = SqsRunQueue::create_queues(&sqs, &unique("runs"), max_receive_count)
        .await
        .expect("queues");
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let token_secret = unique("idflow/provision-token");
    let hook_secret = unique("idflow/okta-hook");
    for (name, value) in [(&token_secret, CLIENT_TOKEN), (&hook_secret, HOOK_SECRET)] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("secret");
    }

    // What `idflow deploy` writes: the flows and the project file.
    let flows = DynamoFlowStore::new(dynamo.clone(), &flows_table);
    for (path, source) in [
        ("provision-account.yaml", PROVISION),
        ("user-activated.yaml", ACTIVATED),
        ("nightly-access-review.yaml", NIGHTLY),
    ] {
        let flow = domain::flowfile::parse_flow(path, source).expect("valid flow");
        flows
            .put(&StoredFlow::new(
                &flow.name,
                path,
                source,
                chrono::Utc::now(),
            ))
            .await
            .expect("deploy flow");
    }
    let project = format!(
        "api:\n  tokens:\n    provision-account: \"aws-secretsmanager:{token_secret}\"\nhooks:\n  okta: {{ secret: \"aws-secretsmanager:{hook_secret}\" }}\n"
    );
    flows
        .put_project(&BTreeMap::from([
            ("idflow.yaml".to_owned(), project),
            (
                "tables/provisioned.yaml".to_owned(),
                PROVISIONED_TABLE.to_owned(),
            ),
        ]))
        .await
        .expect("deploy project");

    let env = HashMap::from([
        ("IDFLOW_RUNS_TABLE", runs_table.clone()),
        ("IDFLOW_FLOWS_TABLE", flows_table),
        ("IDFLOW_QUEUE_URL", queue_url.clone()),
        ("IDFLOW_DLQ_URL", dlq_url.clone()),
        ("IDFLOW_TABLES_TABLE", tables_table.clone()),
        ("IDFLOW_MAX_RECEIVE_COUNT", max_receive_count.to_string()),
        // What Lambda sets, pointed at the emulator.
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        (
            "AWS_ENDPOINT_URL",
            sdk.endpoint_url()
                .expect("the emulator's endpoint")
                .to_owned(),
        ),
    ]);
    let config = LambdaConfig::from_lookup(|name| env.get(name).cloned()).expect("configuration");
    // The functions' own SDK configuration, read from that environment as at a cold start.
    let lambda_sdk =
        aws::sdk::sdk_config_from(|name| env.get(name).cloned()).expect("SDK configuration");
    // One runtime for every handler here, equipped as the worker's (the only one that runs cards).
    let runtime = config.runtime(&lambda_sdk).await.expect("cold start");
    let runtime = Arc::new(worker::equip(runtime, &config, &lambda_sdk).expect("worker runtime"));
    let queue_arn = queue_arn(&sqs, &queue_url).await;
    let dead_letter_arn = queue_arn_of_dlq(&sqs, &dlq_url).await;
    Some(Stack {
        config,
        runtime,
        sqs,
        queue_arn,
        dead_letter_arn,
        runs: DynamoRunStore::new(dynamo.clone(), runs_table, None),
        tables_table,
        dynamo,
    })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue ARN")
}

async fn queue_arn_of_dlq(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    queue_arn(sqs, url).await
}

/// An event file of `events/`, as JSON.
fn event(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Sends an API Gateway HTTP API event through a function's router, decoded as `lambda_http`
/// decodes it in Lambda. Returns the status and the JSON body.
async fn call(app: axum::Router, event: &Value) -> (u16, Value) {
    let request = lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event");
    let response = app
        .oneshot(request.map(|body| Body::from(body.to_vec())))
        .await
        .expect("infallible router");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// A worker whose EMF lines are kept for inspection.
fn worker(
    stack: &Stack,
    dead_letter_arn: Option<String>,
) -> (worker::Worker, Arc<Mutex<Vec<Value>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let captured = lines.clone();
    let sink: Sink = Arc::new(move |line: &str| {
        captured
            .lock()
            .unwrap()
            .push(serde_json::from_str(line).expect("EMF lines are JSON"))
    });
    let worker = worker::Worker {
        runtime: stack.runtime.clone(),
        dead_letter_arn,
        metrics: sink,
    };
    (worker, lines)
}

/// Receives what is visible on `url` and builds the SQS event Lambda would deliver for it.
async fn receive_event(sqs: &aws_sdk_sqs::Client, url: &str, source_arn: &str) -> Value {
    let mut records = Vec::new();
    // SQS may answer an empty receive while the message is in flight to it; a bounded poll.
    for _ in 0..20 {
        let output = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        for message in output.messages.unwrap_or_default() {
            let attributes: serde_json::Map<String, Value> = message
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            records.push(json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": "us-east-1",
            }));
        }
        if !records.is_empty() {
            break;
        }
    }
    json!({ "Records": records })
}

fn sqs_event(value: Value) -> SqsEvent {
    serde_json::from_value(value).expect("an SQS event")
}

fn queue_url_of(stack: &Stack) -> &str {
    &stack.config.queue_url
}

#[tokio::test]
async fn an_api_invoke_event_runs_through_sqs_and_the_worker_into_dynamodb() {
    let Some(stack) = stack(5).await else {
        return;
    };
    let api = api::app(api::state(stack.runtime.clone()).await.expect("api state"));
    let (status, body) = call(api.clone(), &event("api-invoke.json")).await;
    assert_eq!(status, 202, "{body}");
    let run_id = RunId::parse(body["runId"].as_str().expect("runId")).expect("a run id");

    let batch = receive_event(&stack.sqs, queue_url_of(&stack), &stack.queue_arn).await;
    assert_eq!(
        batch["Records"].as_array().map(Vec::len),
        Some(1),
        "{batch}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(batch["Records"][0]["body"].as_str().unwrap()).unwrap(),
        json!({ "run_id": run_id.to_string() })
    );
    let (worker, metrics) = worker(&stack, None);
    let response = worker.handle(sqs_event(batch)).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");

    // Read back from DynamoDB with a store of our own.
    let run = stack.runs.get(run_id).await.unwrap().expect("the run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.flow, "provision-account");
    assert!(
        matches!(run.trigger, TriggerInfo::Api(domain::run::ApiStart { ref method }) if method == "POST")
    );
    let steps = stack.runs.steps(run_id).await.unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(
        steps[0].output,
        Some(json!("provisioning ada.lovelace@example.com from hr"))
    );
    // The `table` cards run on DynamoDB (IDFLOW_TABLES_TABLE): the row is in the data table.
    let item = stack
        .dynamo
        .get_item()
        .table_name(&stack.tables_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("TABLE#provisioned".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("ada.lovelace@example.com".into()),
        )
        .send()
        .await
        .expect("get item")
        .item
        .expect("the provisioned row is in DynamoDB");
    let data = item["data"].as_s().expect("row data as JSON text");
    assert!(data.contains("\"source\":\"hr\""), "{data}");
    let age = {
        let metrics = metrics.lock().unwrap();
        metrics
            .iter()
            .find(|line| line.get("QueueAge").is_some())
            .expect("a QueueAge metric")
            .clone()
    };
    assert_eq!(age["run_id"], run_id.to_string());
    assert!(age["QueueAge"].as_f64().unwrap() >= 0.0);

    // The admin API behind the JWT authorizer lists it.
    let (status, body) = call(api, &event("admin-list-runs.json")).await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [run_id.to_string()], "{body}");
}

#[tokio::test]
async fn the_api_refuses_a_wrong_client_token_and_admin_calls_the_authorizer_did_not_verify() {
    let Some(stack) = stack(5).await else {
        return;
    };
    let api = api::app(api::state(stack.runtime.clone()).await.expect("api state"));
    let mut invoke = event("api-invoke.json");
    invoke["headers"]["x-api-client-token"] = json!("guessed");
    let (status, body) = call(api.clone(), &invoke).await;
    assert_eq!(status, 401, "{body}");

    // Without the authorizer's claims and without `admin.token`, the admin API stays closed.
    let mut admin = event("admin-list-runs.json");
    admin["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let (status, body) = call(api, &admin).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JWT authorizer"),
        "{body}"
    );
    assert!(
        stack
            .runs
            .list(&domain::run::RunQuery::default())
            .await
            .unwrap()
            .runs
            .is_empty(),
        "nothing was started"
    );
}

#[tokio::test]
async fn the_event_hook_verifies_and_starts_one_run_per_event() {
    let Some(stack) = stack(5).await else {
        return;
    };
    let app = event_hook::app(event_hook::state(stack.runtime.clone()));
    let (status, body) = call(app.clone(), &event("hook-verification.json")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "verification": "rFS7nVs2sX8pHoMtYKmYbTqxOu6NxdPzZE6pA4Ol" })
    );

    let delivery = event("hook-delivery.json");
    let (status, body) = call(app.clone(), &delivery).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "events": 1, "started": 1, "duplicates": 0 }));
    // Okta's retry of the same delivery starts nothing more.
    let (status, body) = call(app.clone(), &delivery).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "events": 1, "started": 0, "duplicates": 1 }));

    let mut forged = delivery.clone();
    forged["headers"]["authorization"] = json!("not-the-secret");
    let (status, _) = call(app, &forged).await;
    assert_eq!(status, 401);

    let page = stack
        .runs
        .list(&domain::run::RunQuery::default())
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 1);
    assert_eq!(page.runs[0].flow, "user-activated");
    assert!(matches!(
        &page.runs[0].trigger,
        TriggerInfo::Event(domain::run::EventStart { event_uuid, event_type })
            if event_uuid == "9a7f2d50-a98c-11f1-8b6e-9b1c1d2e3f40" && event_type == "user.lifecycle.activate"
    ));
}

#[tokio::test]
async fn the_schedule_input_starts_one_run_per_fire_time() {
    let Some(stack) = stack(5).await else {
        return;
    };
    let input = event("schedule.json");
    let first = schedule::handle(&stack.runtime, input.clone())
        .await
        .expect("started");
    assert!(!first.duplicate);
    // Scheduler delivers at least once: the same fire time again is the same run.
    let again = schedule::handle(&stack.runtime, input.clone())
        .await
        .expect("answered");
    assert_eq!(again.run_id, first.run_id);
    assert!(again.duplicate);

    let run_id = RunId::parse(&first.run_id).expect("a run id");
    let run = stack.runs.get(run_id).await.unwrap().expect("the run");
    assert_eq!(run.flow, "nightly-access-review");
    assert_eq!(
        run.input,
        json!({ "scheduled_for": "2026-11-23T02:00:00+00:00" })
    );
    assert_eq!(run.status, RunStatus::Queued);

    let mut next = input.clone();
    next["scheduled_time"] = json!("2026-11-24T02:00:00Z");
    let next = schedule::handle(&stack.runtime, next)
        .await
        .expect("started");
    assert_ne!(next.run_id, first.run_id, "another fire time, another run");

    let mut raw = input.clone();
    raw["scheduled_time"] = json!("<aws.scheduler.scheduled-time>");
    let error = schedule::handle(&stack.runtime, raw).await.unwrap_err();
    assert!(
        error.to_string().starts_with(
            "`scheduled_time` must be an RFC 3339 time such as 2026-01-01T09:00:00Z, got `<aws.scheduler.scheduled-time>`"
        ),
        "{error}"
    );
    let error = schedule::handle(&stack.runtime, json!({ "flow": "nightly-access-review" }))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("missing field `scheduled_time`"),
        "{error}"
    );
    let mut gone = input;
    gone["flow"] = json!("removed-flow");
    let error = schedule::handle(&stack.runtime, gone).await.unwrap_err();
    assert_eq!(error.to_string(), "flow `removed-flow` is not deployed");
}

#[tokio::test]
async fn an_sqs_batch_retries_only_its_bad_record_and_fails_the_over_received_one() {
    let Some(stack) = stack(5).await else {
        return;
    };
    let start = |login: &str| {
        let runtime = stack.runtime.clone();
        let input = json!({ "body": { "login": login }, "query": { "source": "batch" } });
        async move {
            runtime
                .start_run("provision-account", input, TriggerInfo::Manual, None)
                .await
                .expect("run started")
                .0
        }
    };
    let good = start("grace@example.com").await;
    let poisoned = start("mallory@example.com").await;
    // The fixture's records name runs of another deployment: point them at this one's.
    let mut batch = event("sqs-batch.json");
    batch["Records"][0]["body"] = json!(json!({ "run_id": good.to_string() }).to_string());
    batch["Records"][2]["body"] = json!(json!({ "run_id": poisoned.to_string() }).to_string());
    let bad_message_id = batch["Records"][1]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();

    let (worker, _) = worker(&stack, None);
    let response = worker.handle(sqs_event(batch)).await;
    let failures: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failures,
        [bad_message_id.as_str()],
        "only the bad record is retried"
    );
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json,
        json!({ "batchItemFailures": [{ "itemIdentifier": bad_message_id }] }),
        "the shape Lambda reads with ReportBatchItemFailures"
    );

    let run = stack.runs.get(good).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let run = stack.runs.get(poisoned).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.expect("a reason");
    assert_eq!(error.code, "poison_message");
    assert_eq!(
        error.message,
        "the run's queue message was received 6 times, more than the limit of 5"
    );
}

#[tokio::test]
async fn a_message_that_keeps_failing_lands_in_the_dead_letter_queue_and_fails_its_run() {
    let Some(stack) = stack(2).await else {
        return;
    };
    let (run_id, _) = stack
        .runtime
        .start_run(
            "provision-account",
            json!({ "body": { "login": "eve@example.com" }, "query": {} }),
            TriggerInfo::Manual,
            None,
        )
        .await
        .expect("run started");
    // A worker that never answers (killed by its timeout, out of memory) leaves the message to
    // come back; received with a zero visibility timeout, it comes back at once. After
    // maxReceiveCount (2) receives, SQS's redrive policy moves it to the dead-letter queue.
    let dlq_url = stack.config.dead_letter_url.clone();
    let mut receives = 0;
    let mut moved = false;
    for _ in 0..20 {
        let output = stack
            .sqs
            .receive_message()
            .queue_url(queue_url_of(&stack))
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if output.messages.unwrap_or_default().is_empty() {
            let attributes = stack
                .sqs
                .get_queue_attributes()
                .queue_url(&dlq_url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .expect("attributes");
            let depth = attributes
                .attributes
                .and_then(|mut a| a.remove(&QueueAttributeName::ApproximateNumberOfMessages))
                .unwrap_or_default();
            if depth == "1" {
                moved = true;
                break;
            }
        } else {
            receives += 1;
        }
    }
    assert!(moved, "the message reached the dead-letter queue");
    assert_eq!(receives, 2, "after maxReceiveCount receives");
    assert_eq!(
        stack.runs.get(run_id).await.unwrap().unwrap().status,
        RunStatus::Queued,
        "nothing processed it"
    );

    // The dead-letter queue is an event source of the worker too (IDFLOW_DLQ_ARN).
    let batch = receive_event(&stack.sqs, &dlq_url, &stack.dead_letter_arn).await;
    assert_eq!(
        batch["Records"].as_array().map(Vec::len),
        Some(1),
        "{batch}"
    );
    let (worker, _) = worker(&stack, Some(stack.dead_letter_arn.clone()));
    let response = worker.handle(sqs_event(batch)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a dead letter is consumed once its run is failed"
    );
    let run = stack.runs.get(run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.expect("a reason");
    assert_eq!(error.code, "poison_message");
    assert_eq!(
        error.message,
        "the run's queue message was moved to the dead-letter queue after the worker failed to process it 2 times"
    );
}

#[tokio::test]
async fn a_broken_deployed_idflow_yaml_stops_the_cold_start_with_the_problem() {
    let Some(stack) = stack(5).await else {
        return;
    };
    let sdk = emulator().await.expect("emulator");
    let flows = DynamoFlowStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        &stack.config.flows_table,
    );
    flows
        .put_project(&BTreeMap::from([(
            "idflow.yaml".to_owned(),
            "hooks:\n  okta: { secret: \"plaintext\" }\n".to_owned(),
        )]))
        .await
        .unwrap();
    let error = stack.config.runtime(&sdk).await.err().expect("refused");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "the idflow.yaml deployed to the flows table `{}` is invalid (fix it and run `idflow deploy` again): idflow.yaml",
            stack.config.flows_table
        )),
        "{message}"
    );
    assert!(message.contains("secret reference"), "{message}");
    assert!(
        !message.contains("plaintext"),
        "secrets never in messages: {message}"
    );

    let missing = LambdaConfig {
        flows_table: unique("no-such-table"),
        ..stack.config.clone()
    };
    let error = missing.runtime(&sdk).await.err().expect("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "cannot read the deployed project configuration from the flows table `{}`",
            missing.flows_table
        )
    );
}
