//! The big run (`domain::conformance::bigrun`) on every set of adapters: a flow holding 5,000 users
//! from okta-sim (about 10 MB), then 300 effectful steps, succeeds on SQLite as under `idflow serve`
//! and on DynamoDB, SQS and S3 as in the Lambdas; and its working-memory budget stops it at the same
//! step on both. Also the blob store suite on S3.

use std::sync::Arc;

use domain::conformance::bigrun::{self, BIG_RUN_USERS, Written};
use okta_sim::Sim;
use tests::TempDir;
use tests::bigrun::{Okta, aws, sqlite};

async fn sim() -> okta_sim::SimHandle {
    Sim::builder()
        .seed_users(BIG_RUN_USERS)
        .start()
        .await
        .expect("okta-sim starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_sized_run_succeeds_on_sqlite() {
    let sim = sim().await;
    let dir = TempDir::new("bigrun-sqlite");
    let written = Arc::new(Written::default());
    let okta = Okta {
        base_url: sim.base_url(),
        token: sim.api_token(),
    };
    let runtime = sqlite(&okta, &dir, true, &written);
    bigrun::big_run_succeeds(&runtime, domain::conformance::t0()).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_sized_run_succeeds_on_dynamodb_sqs_and_s3() {
    let Some(sdk) = super::aws::emulator().await else {
        return;
    };
    let sim = sim().await;
    let dir = TempDir::new("bigrun-aws");
    let written = Arc::new(Written::default());
    let okta = Okta {
        base_url: sim.base_url(),
        token: sim.api_token(),
    };
    let runtime = aws(&sdk, &okta, &dir, true, &written).await;
    bigrun::big_run_succeeds(&runtime, domain::conformance::t0()).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_stops_the_big_run_at_the_same_step_on_sqlite() {
    let sim = sim().await;
    let dir = TempDir::new("bigrun-budget-sqlite");
    let written = Arc::new(Written::default());
    let okta = Okta {
        base_url: sim.base_url(),
        token: sim.api_token(),
    };
    let runtime = sqlite(&okta, &dir, true, &written);
    bigrun::big_run_stops_at_its_memory_budget(&runtime, domain::conformance::t0()).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_stops_the_big_run_at_the_same_step_on_aws() {
    let Some(sdk) = super::aws::emulator().await else {
        return;
    };
    let sim = sim().await;
    let dir = TempDir::new("bigrun-budget-aws");
    let written = Arc::new(Written::default());
    let okta = Okta {
        base_url: sim.base_url(),
        token: sim.api_token(),
    };
    let runtime = aws(&sdk, &okta, &dir, true, &written).await;
    bigrun::big_run_stops_at_its_memory_budget(&runtime, domain::conformance::t0()).await;
    sim.shutdown().await;
}

async fn s3_blob_store() -> Option<::aws::S3BlobStore> {
    let sdk = super::aws::emulator().await?;
    let store = ::aws::S3BlobStore::new(&sdk, super::aws::unique("idflow-values"));
    store.create_bucket().await.expect("create the bucket");
    Some(store)
}

mod s3_blob_store {
    domain::blob_store_conformance!(match super::s3_blob_store().await {
        Some(store) => store,
        None => return,
    });
}

/// One measured big run: what the stores were asked to write, and the step data it produced.
struct Measured {
    written: Arc<Written>,
    outcome: Result<bigrun::BigRun, String>,
}

async fn measure(runtime: domain::runner::Runtime, written: Arc<Written>) -> Measured {
    bigrun::deploy(&runtime, bigrun::BIG_RUN_FLOW, domain::conformance::t0()).await;
    let big = bigrun::drive_to_end(&runtime).await;
    let outcome = match big.run.status {
        domain::run::RunStatus::Succeeded => Ok(big),
        _ => Err(big.run.error.map_or_else(
            || "no error".to_owned(),
            |e| format!("{}: {}", e.code, e.message),
        )),
    };
    Measured { written, outcome }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// The JSON size of every step's output: the data the run produced, written at least once.
fn step_data(big: &bigrun::BigRun) -> u64 {
    big.steps
        .iter()
        .filter_map(|s| s.output.as_ref())
        .map(|o| serde_json::to_vec(o).map_or(0, |v| v.len() as u64))
        .sum()
}

fn report(label: &str, measured: &Measured, data: u64) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let w = &measured.written;
    let total = w.total();
    match &measured.outcome {
        Ok(_) => println!(
            "{label:<34} {:>9.1} MB written ({:>6.1}x the step data): state {:.1} MB, step records {:.1} MB, values out of line {:.1} MB",
            mb(total),
            total as f64 / data.max(1) as f64,
            mb(w.state.load(Relaxed)),
            mb(w.steps.load(Relaxed)),
            mb(w.blobs.load(Relaxed)),
        ),
        Err(error) => println!(
            "{label:<34} failed after {:.1} MB written: {error}",
            mb(total)
        ),
    }
    total
}

/// `bench/bigrun.sh`: the bytes the big run writes with values inline in every checkpoint (how
/// idflow checkpointed before, kept as the runtime without a blob store) and out of line, on
/// SQLite and on DynamoDB+SQS+S3, each printed against the step data's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with bench/bigrun.sh"]
async fn bench_bytes_written_by_the_big_run() {
    let sim = sim().await;
    let okta = Okta {
        base_url: sim.base_url(),
        token: sim.api_token(),
    };
    let run = |with_blobs: bool| {
        let okta = &okta;
        async move {
            let dir = TempDir::new("bigrun-bench");
            let written = Arc::new(Written::default());
            measure(sqlite(okta, &dir, with_blobs, &written), written).await
        }
    };
    let after = run(true).await;
    let before = run(false).await;
    let data = step_data(after.outcome.as_ref().expect("the big run succeeds"));
    println!(
        "\nbig run: {BIG_RUN_USERS} users from okta-sim, then {} reads; step data {:.1} MB\n",
        bigrun::BIG_RUN_READS,
        mb(data)
    );
    let b = report("sqlite, values inline (before)", &before, data);
    let a = report("sqlite, values out of line (after)", &after, data);
    println!(
        "sqlite: {:.1}x fewer bytes written\n",
        b as f64 / a.max(1) as f64
    );
    if let Some(sdk) = super::aws::emulator().await {
        for with_blobs in [false, true] {
            let dir = TempDir::new("bigrun-bench-aws");
            let written = Arc::new(Written::default());
            let measured =
                measure(aws(&sdk, &okta, &dir, with_blobs, &written).await, written).await;
            let label = if with_blobs {
                "dynamodb+s3, out of line (after)"
            } else {
                "dynamodb, values inline (before)"
            };
            report(label, &measured, data);
        }
    }
    sim.shutdown().await;
}
