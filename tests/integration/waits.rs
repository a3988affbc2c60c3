//! Durable waits: a waiting run is parked in the store (no worker held), its wake-up is a delayed
//! queue message in SQLite, and it survives a restart of `idflow serve`. Time is a manual clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::clock::ManualClock;
use domain::ports::Clock;
use domain::run::{Run, RunId, RunStatus, TriggerInfo};
use idflow::serve::{ServeOptions, Server};
use serde_json::json;
use tests::TempDir;

const PAUSE: &str = "name: pause\nsteps:\n  - wait: 2h\n  - { id: after, card: text.compose, with: { text: woke } }\n";
const UNTIL: &str = "name: until\nsteps:\n  - { id: w, wait_until: \"{{ input.at }}\" }\n  - { id: after, card: text.compose, with: { text: done } }\n";
const QUICK: &str = "name: quick\nsteps:\n  - { id: a, card: text.compose, with: { text: hi } }\n";

fn start_time() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().expect("time")
}

/// `idflow serve` on `dir` (flows in `dir/flows`, data in `dir/data`) with one worker.
async fn serve(dir: &Path, clock: &ManualClock) -> Server {
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).expect("flows dir");
    for (name, source) in [
        ("pause.yaml", PAUSE),
        ("until.yaml", UNTIL),
        ("quick.yaml", QUICK),
    ] {
        std::fs::write(flows.join(name), source).expect("write flow");
    }
    let options = ServeOptions {
        flows_dir: flows,
        addr: "127.0.0.1:0".parse().expect("addr"),
        data_dir: dir.join("data"),
        body_limit: 64 * 1024,
        workers: 1,
        hot_reload: false,
        ..ServeOptions::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    Server::start(options, clock).await.expect("server starts")
}

async fn start(server: &Server, flow: &str, input: serde_json::Value) -> RunId {
    let (id, _) = server
        .runtime
        .start_run(flow, input, TriggerInfo::Manual, None)
        .await
        .expect("run starts");
    id
}

/// Polls the store until the run has `status` (a parked run sends no event).
async fn until_status(server: &Server, id: RunId, status: RunStatus) -> Run {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let run = server.runtime.run(id).await.expect("get").expect("run");
        if run.status == status {
            return run;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} is {} and never became {status}",
            run.status
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for a run to end, through the runtime's end events.
async fn ended(server: &Server, id: RunId) -> Run {
    let mut events = server.runtime.subscribe();
    let wait = server
        .runtime
        .wait_for_end(&mut events, id, Duration::from_secs(20));
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the run ends in time")
        .expect("the run ends")
        .expect("the run ends in time")
}

#[tokio::test]
async fn waiting_runs_hold_no_worker() {
    let dir = TempDir::new("waits");
    let clock = ManualClock::new(start_time());
    let server = serve(&dir.0, &clock).await;
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let id = start(&server, "pause", json!({})).await;
        let run = until_status(&server, id, RunStatus::Waiting).await;
        assert_eq!(run.wake_at, Some(start_time() + chrono::Duration::hours(2)));
        waiting.push(id);
    }
    // One worker and three waiting runs: a new run still goes through at once.
    let quick = start(&server, "quick", json!({})).await;
    assert_eq!(ended(&server, quick).await.status, RunStatus::Succeeded);
    for id in &waiting {
        let run = server.runtime.run(*id).await.expect("get").expect("run");
        assert_eq!(run.status, RunStatus::Waiting, "still waiting, nothing due");
    }
    clock.advance(Duration::from_secs(2 * 3600));
    for id in waiting {
        let run = ended(&server, id).await;
        assert_eq!(run.status, RunStatus::Succeeded);
        let steps = server.runtime.steps(id).await.expect("steps");
        let after = steps
            .iter()
            .find(|s| s.step == "after")
            .expect("after step");
        assert_eq!(
            after.started_at,
            start_time() + chrono::Duration::hours(2),
            "the run went on at its wake time"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn waits_survive_a_restart() {
    let dir = TempDir::new("waits-restart");
    let clock = ManualClock::new(start_time());
    let first = serve(&dir.0, &clock).await;
    let id = start(&first, "pause", json!({})).await;
    until_status(&first, id, RunStatus::Waiting).await;
    first.stop().await;

    // A new process on the same data directory: the due time is in SQLite, not in memory.
    let second = serve(&dir.0, &clock).await;
    let run = second.runtime.run(id).await.expect("get").expect("run");
    assert_eq!(run.status, RunStatus::Waiting);
    clock.advance(Duration::from_secs(2 * 3600));
    let run = ended(&second, id).await;
    assert_eq!(run.status, RunStatus::Succeeded);
    second.stop().await;

    // Down while the wake time passed: the run goes on as soon as the server is back.
    let third = serve(&dir.0, &clock).await;
    let late = start(&third, "pause", json!({})).await;
    until_status(&third, late, RunStatus::Waiting).await;
    third.stop().await;
    clock.advance(Duration::from_secs(3 * 3600));
    let fourth = serve(&dir.0, &clock).await;
    assert_eq!(ended(&fourth, late).await.status, RunStatus::Succeeded);
    fourth.stop().await;
}

#[tokio::test]
async fn wait_until_in_the_past_goes_on_at_once_and_too_far_fails() {
    let dir = TempDir::new("waits-until");
    let clock = ManualClock::new(start_time());
    let server = serve(&dir.0, &clock).await;
    let past = start(&server, "until", json!({ "at": "2026-03-01T00:00:00Z" })).await;
    let run = ended(&server, past).await;
    assert_eq!(run.status, RunStatus::Succeeded, "no time had to pass");
    let far = start(&server, "until", json!({ "at": "2026-05-01T00:00:00Z" })).await;
    let run = ended(&server, far).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.expect("error");
    assert!(
        error.message.contains("more than 30 days ahead"),
        "{}",
        error.message
    );
    server.stop().await;
}
