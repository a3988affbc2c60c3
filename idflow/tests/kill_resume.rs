//! A run whose `idflow serve` process is killed with SIGKILL mid-run resumes after its last
//! completed step when the server restarts: the completed step is not repeated, the step in flight is.
//! And a run the API accepted survives a SIGKILL that comes while other invokes are in flight.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinSet;

mod common;
use common::{ended_run, serve, start_run};

const FLOW: &str = r#"
name: durable
steps:
  - { id: first, card: http.request, with: { url: "{{ input.base }}/first" } }
  - { id: second, card: http.request, timeout: 2m, with: { url: "{{ input.base }}/second" } }
  - { id: third, card: text.compose, with: { text: "done after {{ steps.first.body.n }}" } }
"#;

#[tokio::test]
async fn sigkilled_run_resumes_after_its_last_completed_step() {
    let dir = std::env::temp_dir().join(format!("idflow-kill-{}", ulid::Ulid::new()));
    let flows = dir.join("flows");
    let data = dir.join("data");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("durable.yaml"), FLOW).unwrap();

    // The outside world: /first counts calls, /second hangs the first time (so the process dies with
    // the step in flight) and answers afterwards.
    let first_calls = Arc::new(AtomicUsize::new(0));
    let second_calls = Arc::new(AtomicUsize::new(0));
    let (reached_tx, mut reached_rx) = mpsc::channel::<()>(4);
    let reached_tx = Arc::new(Mutex::new(reached_tx));
    let app = {
        let first_calls = first_calls.clone();
        let second_calls = second_calls.clone();
        axum::Router::new()
            .route(
                "/first",
                get(move || {
                    let n = first_calls.fetch_add(1, Ordering::SeqCst) + 1;
                    async move { axum::Json(json!({ "n": n })) }
                }),
            )
            .route(
                "/second",
                get(move || {
                    let n = second_calls.fetch_add(1, Ordering::SeqCst) + 1;
                    let reached = reached_tx.clone();
                    async move {
                        if n == 1 {
                            let _ = reached.lock().await.send(()).await;
                            std::future::pending::<()>().await;
                        }
                        axum::Json(json!({ "ok": true }))
                    }
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let outside = format!("http://{address}");
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The outside world is on loopback here, which flows may only reach when idflow.yaml allows it.
    std::fs::write(
        flows.join("idflow.yaml"),
        format!("egress: {{ allow: [\"{address}\"] }}\n"),
    )
    .unwrap();

    let http = reqwest::Client::new();
    let (mut child, base) = serve(&flows, &data).await;
    let run_id = start_run(&http, &base, "durable", &json!({ "base": outside })).await;

    // Step `first` is done and checkpointed, `second` is in flight: kill the server now.
    reached_rx.recv().await.expect("second step reached");
    child.kill().await.expect("SIGKILL");
    child.wait().await.unwrap();

    let (mut child, base) = serve(&flows, &data).await;
    let run = ended_run(&http, &base, &run_id).await;
    child.kill().await.ok();

    assert_eq!(run["status"], "succeeded", "{run:#}");
    let steps: Vec<(String, u64)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("first".to_owned(), 0),
            ("second".to_owned(), 1),
            ("third".to_owned(), 2)
        ]
    );
    assert_eq!(run["steps"][2]["output"], "done after 1");
    assert_eq!(
        first_calls.load(Ordering::SeqCst),
        1,
        "a completed step is never repeated"
    );
    assert_eq!(
        second_calls.load(Ordering::SeqCst),
        2,
        "the step in flight runs again after the restart"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// A run the API accepted (202) is in the store: the SQLite writer batches concurrent invokes into one
// transaction and answers each only after the batch commits. So when the server is killed with
// SIGKILL while invokes are still arriving, every run that got its 202 is there after a restart,
// and runs to its end.
const INTAKE_FLOW: &str = r#"
name: intake
trigger:
  api: { auth: public, respond: async }
history: all
steps:
  - { id: echo, card: text.compose, with: { text: "n={{ input.body.n }}" } }
"#;

/// Invokes sent at once, so that the writer commits them in shared batches.
const CONCURRENT: usize = 32;
/// The server is killed once this many invokes were accepted; the others are in flight or unsent.
const KILL_AFTER: usize = 150;

#[tokio::test]
async fn every_accepted_invoke_survives_a_sigkill_under_concurrent_load() {
    let dir = std::env::temp_dir().join(format!("idflow-intake-{}", ulid::Ulid::new()));
    let flows = dir.join("flows");
    let data = dir.join("data");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(flows.join("intake.yaml"), INTAKE_FLOW).unwrap();

    let http = reqwest::Client::new();
    let (mut child, base) = serve(&flows, &data).await;
    let url = format!("{base}/api/flows/intake/invoke");
    let mut accepted: Vec<(String, u64)> = Vec::new();
    let mut in_flight = JoinSet::new();
    let mut sent = 0u64;
    // Keep CONCURRENT invokes in flight until enough were accepted, then kill the server with the
    // rest still in flight.
    while accepted.len() < KILL_AFTER {
        assert!(
            sent < 10 * KILL_AFTER as u64,
            "the server refuses invokes: {} of {sent} accepted",
            accepted.len()
        );
        while in_flight.len() < CONCURRENT {
            let (http, url, n) = (http.clone(), url.clone(), sent);
            sent += 1;
            in_flight.spawn(async move {
                let response = http.post(url).json(&json!({ "n": n })).send().await.ok()?;
                if response.status() != reqwest::StatusCode::ACCEPTED {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                Some((body["runId"].as_str()?.to_owned(), n))
            });
        }
        if let Some(Ok(Some(run))) = in_flight.join_next().await {
            accepted.push(run);
        }
    }
    child.kill().await.expect("SIGKILL");
    child.wait().await.unwrap();
    // Invokes answered before the kill took effect were accepted too.
    while let Some(done) = in_flight.join_next().await {
        if let Ok(Some(run)) = done {
            accepted.push(run);
        }
    }

    let (mut child, base) = serve(&flows, &data).await;
    let mut missing = BTreeSet::new();
    for (run_id, n) in &accepted {
        let run = ended_run(&http, &base, run_id).await;
        if run["status"] != "succeeded" {
            missing.insert(run_id.clone());
            continue;
        }
        assert_eq!(run["steps"][0]["output"], format!("n={n}"), "{run:#}");
    }
    child.kill().await.ok();
    assert!(
        missing.is_empty(),
        "{} of {} accepted runs did not survive the kill: {missing:?}",
        missing.len(),
        accepted.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
