//! Helper flows (`flow.call`, `map` over a helper) and `http.request` through the real queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::get;
use serde_json::{Value, json};
use tests::TestServer;

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

const CHILD: &str = r#"
name: child
trigger: { helper: { inputs: { n: number } } }
steps:
  - id: double
    card: number.multiply
    with: { a: "{{ input.n }}", b: 2 }
  - card: flow.return
    with: { body: "{{ steps.double }}" }
"#;

#[tokio::test]
async fn flow_call_and_map_run_helper_runs_and_collect_their_results() {
    let server = TestServer::start(&[("parent.yaml", PARENT), ("child.yaml", CHILD)]).await;
    let response = server
        .http
        .post(server.url("/api/flows/parent/runs"))
        .json(&json!({"items": [1, 2, 3, 4]}))
        .send()
        .await
        .unwrap();
    let id = response.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    assert_eq!(
        run.output.unwrap()["body"],
        json!({"one": 2, "many": [2, 4, 6, 8]})
    );
    let children: Value = server
        .http
        .get(server.url("/api/runs?flow=child"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    let response = server
        .http
        .post(server.url("/api/flows/probe/runs"))
        .json(&json!({"url": format!("http://{addr}/flaky")}))
        .send()
        .await
        .unwrap();
    let id = response.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
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
