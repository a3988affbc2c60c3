//! Helper flows (`flow.call`, `map` over a helper) and `http.request` through the real queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::get;
use serde_json::{Value, json};
use tests::TestServer;
use tests::flows::CHILD;

const PARENT: &str = r#"
name: parent
steps:
  - id: one
    card: flow.call
    with: { flow: child, with: { n: 1 } }
  - id: many
    map: "{{ input.items }}"
    as: n
    concurrency: 2
    flow: child
    with: { n: "{{ n }}" }
  - card: flow.return
    with: { body: { one: "{{ steps.one }}", many: "{{ steps.many }}" } }
"#;

#[tokio::test]
async fn flow_call_and_map_run_helper_runs_and_collect_their_results() {
    let server = TestServer::start(&[("parent.yaml", PARENT), ("child.yaml", CHILD)]).await;
    let id = server
        .start_run("parent", &json!({"items": [1, 2, 3, 4]}))
        .await;
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    assert_eq!(
        run.output.unwrap()["body"],
        json!({"one": 2, "many": [2, 4, 6, 8]})
    );
    let children: Value = server.get_json("/api/runs?flow=child").await;
    let children = children["runs"].as_array().unwrap();
    assert_eq!(children.len(), 5);
    assert!(
        children
            .iter()
            .all(|c| c["parent"] == json!(id) && c["root"] == json!(id))
    );
    assert!(children.iter().all(|c| c["trigger"]["kind"] == "helper"));
    server.stop().await;
}

#[tokio::test]
async fn http_request_retries_server_errors_then_succeeds() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/flaky",
        get(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"error": "busy"})),
                    )
                } else {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"ok": true, "attempt": n + 1})),
                    )
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let flow = r#"
name: probe
steps:
  - id: call
    card: http.request
    retry: { max: 3, backoff: 10ms, on: [5xx] }
    with: { url: "{{ input.url }}" }
"#;
    // The flaky service is on loopback, which flows reach only when idflow.yaml allows it.
    let config = format!("egress: {{ allow: [\"{addr}\"] }}\n");
    let server = TestServer::start(&[("idflow.yaml", &config), ("probe.yaml", flow)]).await;
    let id = server
        .start_run("probe", &json!({"url": format!("http://{addr}/flaky")}))
        .await;
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    let detail = server.run_json(&id).await;
    assert_eq!(detail["steps"][0]["attempts"], 3);
    assert_eq!(
        detail["steps"][0]["output"]["body"],
        json!({"ok": true, "attempt": 3})
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    server.stop().await;
}

#[tokio::test]
async fn flow_start_goes_on_without_waiting_and_a_failing_helper_does_not_fail_the_starter() {
    let starter = r#"
name: starter
steps:
  - { id: slow, card: flow.start, with: { flow: sleeper, with: { who: "{{ input.who }}" } } }
  - { id: broken, card: flow.start, with: { flow: breaker } }
  - card: flow.return
    with: { body: { slow: "{{ steps.slow.run_id }}", broken: "{{ steps.broken.run_id }}" } }
"#;
    // An hour-long wait: the starter can only have ended before it if it did not wait.
    let sleeper = r#"
name: sleeper
trigger: { helper: { inputs: { who: text } } }
steps:
  - wait: 1h
  - { card: flow.return, with: { body: "{{ input.who }}" } }
"#;
    let breaker = r#"
name: breaker
trigger: { helper: {} }
steps:
  - { card: flow.fail, with: { message: "broken on purpose" } }
"#;
    let server = TestServer::start(&[
        ("starter.yaml", starter),
        ("sleeper.yaml", sleeper),
        ("breaker.yaml", breaker),
    ])
    .await;
    let id = server.start_run("starter", &json!({"who": "ada"})).await;
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    let body = run.output.unwrap()["body"].clone();
    let slow = body["slow"]
        .as_str()
        .expect("the sleeper's run id")
        .to_owned();
    let broken = body["broken"]
        .as_str()
        .expect("the breaker's run id")
        .to_owned();
    let failed = server.wait_run(&broken).await;
    assert_eq!(failed.status.as_str(), "failed");
    let sleeping = server.run_json(&slow).await;
    assert!(
        !matches!(
            sleeping["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ),
        "{sleeping}"
    );
    assert_eq!(sleeping["input"], json!({"who": "ada"}));
    assert_eq!(sleeping["trigger"]["kind"], "helper");
    assert_eq!(sleeping["trigger"]["parent"], json!(id));
    // Not a child: its end does not concern the starter, which has long ended.
    assert_eq!(sleeping["parent"], Value::Null);
    server.stop().await;
}
