//! Streaming benchmark (not a test): `okta.find_users` streams every user of an okta-sim org to a
//! helper flow that reads the user back (`okta.read_user`), through an in-process `idflow serve`,
//! with the simulator's users endpoints limited to a fixed rate. Okta's rate limit is the bottleneck
//! by design, so the figure of merit is wall time ÷ (requests ÷ rate): 1.0 means idflow kept the
//! budget fully used (target ≤ 1.15), and no helper run may fail because of a 429.
//!
//! ```sh
//! cargo run --release -p tests --example stream_bench                 # 20,000 users at 500 req/s
//! RECORDS=2000 RATE=200 CONCURRENCY=50 cargo run --release -p tests --example stream_bench
//! ```

use std::time::{Duration, Instant};

use domain::run::RunId;
use okta_sim::{Family, RateLimit, Sim};
use serde_json::{Value, json};
use tests::TestServer;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let records = env("RECORDS", 20_000);
    let rate = env("RATE", 500);
    let concurrency = env("CONCURRENCY", 50);
    let sim = Sim::builder()
        .seed_users(usize::try_from(records)?)
        .rate_limit(
            Family::Users,
            RateLimit::new(u32::try_from(rate)?, Duration::from_secs(1)),
        )
        .journal_capacity(1)
        .start()
        .await?;
    let config = format!(
        "connections:\n  okta:\n    domain: \"{}\"\n    auth: {{ type: ssws, token: \"file:./okta.token\" }}\n    concurrency: {concurrency}\n",
        sim.base_url()
    );
    let stream = format!(
        r#"
name: stream-users
history: all
steps:
  - id: each
    card: okta.find_users
    with:
      stream: {{ flow: read-back, state: {{}}, concurrency: {concurrency} }}
"#
    );
    let helper = r#"
name: read-back
trigger: { helper: { inputs: { record: object, state: object } } }
history: errors
steps:
  - id: user
    card: okta.read_user
    with: { user: "{{ input.record.id }}" }
"#;
    let server = TestServer::start(&[
        ("idflow.yaml", &config),
        ("okta.token", sim.api_token()),
        ("stream.yaml", &stream),
        ("read-back.yaml", helper),
    ])
    .await;
    let runtime = server.runtime();
    let mut ended = runtime.subscribe();
    let started = Instant::now();
    let answer: Value = server
        .http
        .post(server.url("/api/flows/stream-users/runs"))
        .json(&json!({}))
        .send()
        .await?
        .json()
        .await?;
    let id = RunId::parse(answer["runId"].as_str().unwrap_or_default())
        .ok_or_else(|| anyhow::anyhow!("no run id: {answer}"))?;
    let timeout = Duration::from_secs(3600);
    let run = runtime
        .wait_for_end(&mut ended, id, timeout)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {id} did not end within {timeout:?}"))?;
    let wall = started.elapsed().as_secs_f64();

    let detail = server.run_json(&id.to_string()).await;
    let output = detail["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == "each"))
        .map(|s| s["output"].clone())
        .unwrap_or(Value::Null);
    // Failed helper runs, and those whose error is a 429.
    let (mut failed, mut failed_429) = (0u64, 0u64);
    let mut cursor = String::new();
    loop {
        let page: Value = server
            .http
            .get(server.url(&format!(
                "/api/runs?flow=read-back&status=failed&limit=500&cursor={cursor}"
            )))
            .send()
            .await?
            .json()
            .await?;
        for run in page["runs"].as_array().cloned().unwrap_or_default() {
            failed += 1;
            let detail = server
                .run_json(run["id"].as_str().unwrap_or_default())
                .await;
            if detail.to_string().contains("429") {
                failed_429 += 1;
            }
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    // Requests the users endpoints had to answer: one per page (200 users) plus one per record.
    let requests = records + records.div_ceil(200);
    let ideal = requests as f64 / rate as f64;
    println!(
        "stream of {records} users, okta-sim users endpoints at {rate} req/s, concurrency {concurrency}"
    );
    println!("run {}: step output {output}", run.status.as_str());
    println!(
        "wall {wall:.1} s, ideal {ideal:.1} s ({requests} requests / {rate} per s): ratio {:.3} (target <= 1.15)",
        wall / ideal
    );
    println!(
        "helper runs per second {:.0}; helper runs failed: {failed}, failed by 429: {failed_429} (target 0)",
        records as f64 / wall
    );
    server.stop().await;
    sim.shutdown().await;
    Ok(())
}
