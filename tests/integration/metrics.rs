//! `/metrics` of `idflow serve`: scraped after real runs, it counts them by flow, trigger and
//! status, times their steps by card, shows the queue, and counts the starts a paused flow refused;
//! it asks for the admin token when the server has one.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tests::TestServer;
use tests::flows::HELLO;

const TOKEN: &str = "metrics-test-admin-token-0123456789abcdef";

const BOOM: &str = r#"
name: boom
trigger:
  api: { auth: public, respond: sync }
steps:
  - card: flow.fail
    with: { message: "on purpose" }
"#;

async fn start(server: &TestServer, flow: &str) -> Value {
    let response = server
        .http
        .post(server.url(&format!("/api/flows/{flow}/runs")))
        .bearer_auth(TOKEN)
        .json(&json!({ "name": "Ada" }))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap_or(Value::Null)
}

/// The samples of an OpenMetrics text, by series (`name{labels}`).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_count_runs_steps_queue_and_paused_starts_after_real_runs() {
    let server = TestServer::start(&[
        ("hello.yaml", HELLO),
        ("boom.yaml", BOOM),
        ("idflow.yaml", "admin: { token: \"file:admin-token\" }\n"),
        ("admin-token", TOKEN),
    ])
    .await;
    for _ in 0..2 {
        let id = start(&server, "hello").await["runId"]
            .as_str()
            .unwrap()
            .to_owned();
        server.wait_run(&id).await;
    }
    let failed = server.post("/api/flows/boom/invoke", &json!({})).await;
    assert_eq!(failed.status().as_u16(), 502, "the sync flow failed");
    server
        .http
        .post(server.url("/api/flows/hello/pause"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(start(&server, "hello").await["error"]["code"], "conflict");

    let anonymous = server.get("/metrics").await;
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "the admin token guards /metrics"
    );

    let response = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    let get = |series: &str| {
        s.get(series)
            .copied()
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        get(r#"idflow_runs_started_total{flow="hello",trigger="manual"}"#),
        2.0
    );
    assert_eq!(
        get(r#"idflow_runs_finished_total{flow="hello",trigger="manual",status="succeeded"}"#),
        2.0
    );
    assert_eq!(
        get(r#"idflow_runs_started_total{flow="boom",trigger="api"}"#),
        1.0
    );
    assert_eq!(
        get(r#"idflow_runs_finished_total{flow="boom",trigger="api",status="failed"}"#),
        1.0
    );
    assert_eq!(
        get(r#"idflow_runs_skipped_total{flow="hello",trigger="manual",reason="paused"}"#),
        1.0
    );
    assert_eq!(
        get(r#"idflow_step_duration_seconds_count{card="text.compose"}"#),
        2.0
    );
    assert_eq!(
        get(r#"idflow_step_duration_seconds_count{card="flow.fail"}"#),
        1.0
    );
    assert_eq!(
        get(r#"idflow_step_duration_seconds_bucket{le="+Inf",card="text.compose"}"#),
        2.0
    );
    assert_eq!(get(r#"idflow_queue_depth{state="ready"}"#), 0.0);
    assert_eq!(get("idflow_queue_oldest_age_seconds"), 0.0);
    assert_eq!(get("idflow_queue_dead_letters"), 0.0);
    // Process-wide (other tests of this binary may wait on Okta's limits): present, not exact.
    get(r#"idflow_rate_limit_waits_total{outcome="held"}"#);
    get("idflow_rate_limit_wait_seconds_total");
    server.stop().await;
}
