//! Runtimes for the big run (`domain::conformance::bigrun`) on each set of adapters: SQLite as
//! `idflow serve` has them, and DynamoDB, SQS and S3 as the Lambdas have them (on the emulator).
//! Each counts the bytes it writes; `with_blobs: false` keeps every value in the checkpoints, as
//! idflow did before values went out of line (the benchmark's baseline).

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::clock::ManualClock;
use domain::conformance::bigrun::{CountingBlobStore, CountingRunStore, Written};
use domain::ports::{BlobStore, Clock, RunStore};
use domain::runner::{RunnerConfig, Runtime};

use crate::TempDir;

/// okta-sim as the big run's `okta` connection: its base URL and API token.
pub struct Okta<'a> {
    pub base_url: &'a str,
    pub token: &'a str,
}

/// A runtime without its ports: the project (an `okta` connection whose token is a file in `dir`).
fn project(okta: &Okta<'_>, dir: &TempDir) -> domain::model::ProjectConfig {
    std::fs::write(dir.0.join("okta.token"), okta.token).expect("write the token");
    let files = BTreeMap::from([(
        "idflow.yaml".to_owned(),
        format!(
            "connections:\n  okta:\n    domain: \"{}\"\n    auth: {{ type: ssws, token: \"file:./okta.token\" }}\n",
            okta.base_url
        ),
    )]);
    domain::flowfile::parse_project_files(&files).expect("the project parses")
}

fn equip(runtime: Runtime, blobs: Option<Arc<dyn BlobStore>>, written: &Arc<Written>) -> Runtime {
    use connectors::StandardExecutors;
    let runtime = runtime
        .with_standard_executors()
        .expect("the executors build");
    match blobs {
        Some(inner) => runtime.with_blobs(Arc::new(CountingBlobStore {
            inner,
            written: written.clone(),
        })),
        None => runtime,
    }
}

/// The big run's runtime on SQLite (a file, as `idflow serve` keeps it).
pub fn sqlite(okta: &Okta<'_>, dir: &TempDir, with_blobs: bool, written: &Arc<Written>) -> Runtime {
    use local::sqlite::{
        SqliteBlobStore, SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore,
    };
    let db = SqliteDb::open(dir.0.join("idflow.db")).expect("the database opens");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(domain::conformance::t0()));
    let runs: Arc<dyn RunStore> = Arc::new(CountingRunStore {
        inner: Arc::new(SqliteRunStore::new(db.clone())),
        written: written.clone(),
    });
    let runtime = Runtime::new(
        Arc::new(SqliteFlowStore::new(db.clone())),
        runs,
        Arc::new(SqliteRunQueue::new(db.clone(), clock.clone(), 5)),
        clock,
        Arc::new(local::secrets::LocalSecrets::new(&dir.0)),
        project(okta, dir),
        RunnerConfig::default(),
    );
    let blobs: Option<Arc<dyn BlobStore>> =
        with_blobs.then(|| Arc::new(SqliteBlobStore::new(db)) as Arc<dyn BlobStore>);
    equip(runtime, blobs, written)
}

/// The big run's runtime on DynamoDB, SQS and S3 (fresh tables, queue and bucket named `name-…`).
pub async fn aws(
    sdk: &aws_config::SdkConfig,
    okta: &Okta<'_>,
    dir: &TempDir,
    with_blobs: bool,
    written: &Arc<Written>,
) -> Runtime {
    use aws::{DynamoFlowStore, DynamoRunStore, S3BlobStore, SqsRunQueue};
    let unique =
        |prefix: &str| format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase());
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let (flows_table, runs_table) = (unique("flows"), unique("runs"));
    DynamoFlowStore::create_table(&dynamo, &flows_table)
        .await
        .expect("create the flows table");
    DynamoRunStore::create_table(&dynamo, &runs_table)
        .await
        .expect("create the runs table");
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let (queue, dlq) = SqsRunQueue::create_queues(&sqs, &unique("runs"), 5)
        .await
        .expect("create the queues");
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(domain::conformance::t0()));
    let runs: Arc<dyn RunStore> = Arc::new(CountingRunStore {
        inner: Arc::new(DynamoRunStore::new(dynamo.clone(), runs_table, None)),
        written: written.clone(),
    });
    let runtime = Runtime::new(
        Arc::new(DynamoFlowStore::new(dynamo, flows_table)),
        runs,
        Arc::new(SqsRunQueue::new(sqs, queue, dlq)),
        clock,
        Arc::new(local::secrets::LocalSecrets::new(&dir.0)),
        project(okta, dir),
        RunnerConfig::default(),
    );
    let blobs = if with_blobs {
        let store = S3BlobStore::new(sdk, unique("idflow-values"));
        store.create_bucket().await.expect("create the bucket");
        Some(Arc::new(store) as Arc<dyn BlobStore>)
    } else {
        None
    };
    equip(runtime, blobs, written)
}
