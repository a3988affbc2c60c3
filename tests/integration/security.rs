//! Security findings of the adversarial review, each reproduced end to end against `idflow serve`:
//! secrets never leave (history, results, errors, logs, search, the store at rest), caller data
//! never becomes code, and hostile data is held to budgets.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use base64::Engine;
use serde_json::{Value, json};
use tests::TestServer;

const SECRET: &str = "tok-7f3a9c1e55d2";

/// A local API that echoes every header it gets; with `fail_first`, the first call answers 503.
async fn echo_server(fail_first: bool) -> String {
    let calls = Arc::new(Mutex::new(0u32));
    let app = axum::Router::new().route(
        "/{*path}",
        any(move |headers: HeaderMap| {
            let calls = calls.clone();
            async move {
                let echoed: serde_json::Map<String, Value> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
                    .collect();
                let n = {
                    let mut calls = calls.lock().unwrap_or_else(|p| p.into_inner());
                    *calls += 1;
                    *calls
                };
                let status = if fail_first && n == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                (status, axum::Json(json!({ "headers": echoed }))).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn config(echo: &str) -> String {
    // The echo server listens on loopback, which the egress policy refuses unless allowed.
    let host = echo.trim_start_matches("http://");
    format!(
        "secrets:\n  tok: \"file:./tok.secret\"\nvars:\n  echo: \"{echo}\"\negress:\n  allow: [\"{host}\"]\n"
    )
}

/// Every form of the secret the flows below compute.
fn needles() -> Vec<String> {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("svc:{SECRET}"));
    vec![
        SECRET.to_owned(),
        SECRET.to_uppercase(),
        basic.clone(),
        format!("Basic {basic}"),
    ]
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for needle in needles() {
        assert!(!text.contains(&needle), "{what} leaks `{needle}`: {text}");
    }
}

/// A log sink for the test's thread (every task of a current-thread runtime runs on it).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

/// Everything the server's data directory holds, as text (the SQLite file and its WAL).
fn store_text(server: &TestServer) -> String {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(server.dir.0.join("data"))
        .expect("data dir")
        .flatten()
    {
        if let Ok(bytes) = std::fs::read(entry.path()) {
            out.extend(bytes);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const ECHO_FLOW: &str = r#"
name: echo-secret
trigger:
  api: { auth: public, respond: sync, timeout: 10s }
steps:
  - id: call
    card: http.request
    with:
      url: "{{ vars.echo }}/whoami"
      headers:
        Authorization: "Basic {{ ('svc:' ~ secret('tok')) | b64encode }}"
        X-Upper: "{{ secret('tok') | upper }}"
  - card: flow.return
    with: { body: "{{ steps.call.body }}" }
"#;

#[tokio::test]
async fn secret_derived_values_never_reach_results_history_search_logs_or_the_store() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let echo = echo_server(false).await;
    let server = TestServer::start(&[
        ("idflow.yaml", &config(&echo)),
        ("tok.secret", SECRET),
        ("echo-secret.yaml", ECHO_FLOW),
    ])
    .await;
    let response = server
        .post("/api/flows/echo-secret/invoke", &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("body");
    // The server did get the real credentials; the caller sees them masked.
    assert!(body.contains("[redacted]"), "{body}");
    assert_clean("the sync response", &body);

    let runs: Value = server.get_json("/api/runs?flow=echo-secret").await;
    let id = runs["runs"][0]["id"].as_str().expect("a run").to_owned();
    let detail = server.run_json(&id).await;
    assert_eq!(detail["status"], "succeeded");
    assert_eq!(
        detail["steps"][0]["input"]["headers"],
        json!({ "Authorization": "[redacted]", "X-Upper": "[redacted]" })
    );
    assert_clean("the run", &detail.to_string());
    for needle in needles() {
        let found: Value = server
            .http
            .get(server.url("/api/runs"))
            .query(&[("q", needle.as_str())])
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        assert_eq!(found["runs"], json!([]), "searching `{needle}` finds a run");
    }
    server.stop().await;
    assert_clean("the logs", &logs.text());
}

#[tokio::test]
async fn a_waiting_run_keeps_no_secret_in_its_checkpoint() {
    // Finding: the engine state of a waiting run held the raw secret in SQLite.
    let echo = echo_server(true).await;
    let flow = r#"
name: retrying
steps:
  - id: call
    card: http.request
    retry: { max: 2, backoff: 1h, on: [5xx] }
    with:
      url: "{{ vars.echo }}/x"
      headers: { Authorization: "Basic {{ ('svc:' ~ secret('tok')) | b64encode }}" }
"#;
    let server = TestServer::start(&[
        ("idflow.yaml", &config(&echo)),
        ("tok.secret", SECRET),
        ("retrying.yaml", flow),
    ])
    .await;
    let id = server.start_run("retrying", &json!({})).await;
    let mut detail = server.run_json(&id).await;
    for _ in 0..200 {
        if detail["status"] == "waiting" {
            break;
        }
        detail = server.get_json(&format!("/api/runs/{id}?wait=1")).await;
    }
    assert_eq!(detail["status"], "waiting", "{detail}");
    let run = server
        .runtime()
        .run(domain::run::RunId::parse(&id).expect("id"))
        .await
        .expect("get")
        .expect("run");
    let state = run
        .state
        .expect("a waiting run has a checkpoint")
        .to_string();
    assert!(state.contains("[redacted]"), "{state}");
    assert_clean("the checkpoint", &state);
    assert_clean("the store", &store_text(&server));
    server.stop().await;
}

#[tokio::test]
async fn caller_input_is_never_evaluated_as_an_expression() {
    // Finding: `where: "{{ input.body.where }}"` rendered the caller's text into the predicate the
    // card evaluated; a public endpoint became an oracle that recovered a secret. Such a flow is
    // refused, so the endpoint does not exist.
    let injectable = r#"
name: search
trigger:
  api: { auth: public, respond: sync }
steps:
  - id: found
    card: list.filter
    with: { list: "{{ input.body.users }}", where: "{{ input.body.where }}" }
  - card: flow.return
    with: { body: "{{ steps.found | length }}" }
"#;
    // With the predicate written by the author, the caller's text is only data.
    let fixed = r#"
name: search-fixed
trigger:
  api: { auth: public, respond: sync }
steps:
  - id: found
    card: list.filter
    with: { list: "{{ input.body.users }}", where: "item.name == input.body.where" }
  - card: flow.return
    with: { body: "{{ steps.found | length }}" }
"#;
    let server =
        TestServer::start(&[("search.yaml", injectable), ("search-fixed.yaml", fixed)]).await;
    let refused = server
        .post(
            "/api/flows/search/invoke",
            &json!({ "users": [{ "name": "a" }], "where": "true" }),
        )
        .await;
    assert_eq!(refused.status(), 404, "the invalid flow was not deployed");
    let answer = server
        .post(
            "/api/flows/search-fixed/invoke",
            &json!({ "users": [{ "name": "a" }, { "name": "b" }], "where": "true or item.name" }),
        )
        .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.expect("json"), json!(0));
    server.stop().await;
}

#[tokio::test]
async fn a_caller_cannot_make_a_render_exhaust_the_server() {
    // Finding: one 13 KB request built 90 MB strings and burned 49 CPU-seconds. The render fails at
    // its budget instead, and the step says which budget.
    let flow = r#"
name: amplify
trigger:
  api: { auth: public, respond: async }
steps:
  - id: grow
    card: text.compose
    with: { text: "{% for i in input.body.list %}{{ input.body.s * input.body.n }}{% endfor %}" }
"#;
    let server = TestServer::start(&[("amplify.yaml", flow)]).await;
    let response = server
        .http
        .post(server.url("/api/flows/amplify/invoke"))
        .json(&json!({ "s": "x".repeat(1000), "n": 90_000, "list": vec![1; 1000] }))
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.expect("json")["runId"]
        .as_str()
        .expect("run id")
        .to_owned();
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "failed");
    let detail = server.run_json(&id).await;
    assert_eq!(
        detail["steps"][0]["error"]["code"], "budget_exceeded",
        "{detail}"
    );
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
    server.stop().await;
}
