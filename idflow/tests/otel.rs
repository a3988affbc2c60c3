//! Traces of `idflow serve` over OTLP http/protobuf: a real server process, a local OTLP receiver
//! that decodes what it is sent with the protocol's own message types, and a graceful shutdown
//! (SIGTERM) that must flush the last spans. Without an endpoint nothing is sent anywhere.

use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::mpsc;

mod common;
use common::{ended_run, serve_with, start_run, temp_dir};

/// Two steps: the first succeeds with the caller's input in its output, the second fails the run.
const FLOW: &str = r#"
name: traced
steps:
  - { id: greet, card: text.compose, with: { text: "hello {{ input.name }}" } }
  - { id: refuse, card: flow.fail, with: { message: "not today", code: refused } }
"#;

/// A wait longer than the server awaits in-process (5 s): the run parks and is resumed from the
/// queue, in a second processing slice.
const NAPPING: &str = r#"
name: napping
steps:
  - { id: greet, card: text.compose, with: { text: "hello {{ input.name }}" } }
  - { id: nap, wait: 6s }
  - { id: done, card: text.compose, with: { text: "bye {{ input.name }}" } }
"#;

/// A value the run holds (in its input and in a step's output) that must never reach a span.
const MARKER: &str = "Marker-Value-7f3a";

/// Every variable that configures export, removed from the child's environment so the test sees
/// only what it sets.
const OTEL_VARIABLES: [&str; 5] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
];

/// Starts `idflow serve` with `env` (and no other OpenTelemetry variable) and returns it with its
/// base URL, read from its "listening on" line.
async fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, String) {
    let (child, base, _) = serve_with(
        &dir.join("flows"),
        &dir.join("data"),
        "warn",
        env,
        &OTEL_VARIABLES,
    )
    .await;
    (child, base)
}

/// Starts a run of `flow` and waits for it to end; returns it as the API shows it.
async fn run_to_the_end(base: &str, flow: &str) -> Value {
    let http = reqwest::Client::new();
    let run_id = start_run(&http, base, flow, &json!({ "name": MARKER })).await;
    let run = ended_run(&http, base, &run_id).await;
    assert!(
        run["status"] == "failed" || run["status"] == "succeeded",
        "{run:#}"
    );
    run
}

/// Stops the server as an operator does (SIGTERM) and waits for it to exit: its graceful
/// shutdown flushes the spans still batched before the process ends.
async fn stop(mut child: Child) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("idflow exits within 30 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "idflow exited with {exit}");
}

/// A local OTLP/HTTP receiver: its endpoint, and the raw body of every request it accepted, in
/// order.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Bytes>) {
    let (bodies_tx, bodies) = mpsc::unbounded_channel::<Bytes>();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let _ = bodies_tx.send(body);
            // An empty ExportTraceServiceResponse: everything accepted.
            async {
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, bodies)
}

/// The spans of every request received so far, and the service name of each batch; checks that
/// no value of a run was sent.
fn received(bodies: &mut mpsc::UnboundedReceiver<Bytes>) -> (Vec<Span>, Vec<String>) {
    let mut spans = Vec::new();
    let mut service_names = Vec::new();
    while let Ok(body) = bodies.try_recv() {
        assert!(
            !String::from_utf8_lossy(&body).contains(MARKER),
            "a value of the run reached a span"
        );
        let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
        for resource_spans in request.resource_spans {
            if let Some(resource) = &resource_spans.resource {
                service_names.push(text(&resource.attributes, "service.name").to_owned());
            }
            for scope_spans in resource_spans.scope_spans {
                spans.extend(scope_spans.spans);
            }
        }
    }
    (spans, service_names)
}

fn fresh_project() -> std::path::PathBuf {
    let dir = temp_dir("otel");
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows").join("traced.yaml"), FLOW).unwrap();
    std::fs::write(dir.join("flows").join("napping.yaml"), NAPPING).unwrap();
    dir
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|AnyValue { value }| value.as_ref())
}

fn text<'a>(attributes: &'a [KeyValue], key: &str) -> &'a str {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(text)) => text,
        other => panic!("attribute `{key}` is not text: {other:?}"),
    }
}

fn status_code(span: &Span) -> StatusCode {
    let code = span.status.as_ref().map_or(0, |status| status.code);
    StatusCode::try_from(code).expect("a known status code")
}

#[tokio::test]
async fn a_run_is_exported_as_a_trace_with_a_span_per_step() {
    let (endpoint, mut bodies) = receiver().await;
    let dir = fresh_project();
    let (child, base) = serve(
        &dir,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            // A batch is due only after ten minutes: what arrives was sent by the shutdown flush.
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    )
    .await;
    let outcome = run_to_the_end(&base, "traced").await;
    assert_eq!(outcome["status"], "failed");
    let run_id = outcome["id"].as_str().expect("the run's id").to_owned();
    stop(child).await;

    // The process has exited, so everything it sent is in.
    let (spans, service_names) = received(&mut bodies);
    assert!(!spans.is_empty(), "the shutdown flush sent no span");
    assert!(
        service_names.iter().all(|name| name == "idflow"),
        "{service_names:?}"
    );

    // One slice (the run never waited): its span is named after the flow, carries the run's
    // identity and outcome, and its trace is the run id.
    let runs: Vec<&Span> = spans.iter().filter(|s| s.name == "run traced").collect();
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let run = runs[0];
    assert_eq!(text(&run.attributes, "run_id"), run_id);
    assert_eq!(text(&run.attributes, "flow"), "traced");
    assert_eq!(text(&run.attributes, "trigger"), "manual");
    assert_eq!(text(&run.attributes, "slice"), "start");
    assert_eq!(text(&run.attributes, "status"), "failed");
    assert_eq!(
        text(&run.attributes, "error_kind"),
        outcome["error"]["code"].as_str().expect("an error code")
    );
    assert!(!text(&run.attributes, "flow_version").is_empty());
    assert_eq!(status_code(run), StatusCode::Error);
    let run_ulid = ulid::Ulid::from_string(&run_id).unwrap();
    assert_eq!(run.trace_id, run_ulid.to_bytes().to_vec());
    assert!(
        run.parent_span_id.iter().all(|b| *b == 0),
        "a slice is a root span of the run's trace"
    );

    // One child span per step, in the run's trace, under the slice that ran it.
    let mut steps: Vec<&Span> = spans.iter().filter(|s| s.name != "run traced").collect();
    steps.sort_by_key(|s| s.start_time_unix_nano);
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["text.compose greet", "flow.fail refuse"]);
    for step in &steps {
        assert_eq!(step.trace_id, run.trace_id);
        assert_eq!(step.parent_span_id, run.span_id);
        assert!(step.start_time_unix_nano >= run.start_time_unix_nano);
        assert!(step.end_time_unix_nano <= run.end_time_unix_nano);
    }
    let (greet, refuse) = (steps[0], steps[1]);
    assert_eq!(text(&greet.attributes, "step"), "greet");
    assert_eq!(text(&greet.attributes, "card"), "text.compose");
    assert_eq!(text(&greet.attributes, "status"), "succeeded");
    assert_eq!(
        attribute(&greet.attributes, "attempts"),
        Some(&any_value::Value::IntValue(1))
    );
    assert!(matches!(
        attribute(&greet.attributes, "duration_ms"),
        Some(any_value::Value::IntValue(_))
    ));
    assert_ne!(status_code(greet), StatusCode::Error);
    assert_eq!(text(&refuse.attributes, "card"), "flow.fail");
    assert_eq!(text(&refuse.attributes, "status"), "failed");
    assert_eq!(text(&refuse.attributes, "error_kind"), "refused");
    assert_eq!(status_code(refuse), StatusCode::Error);

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_sent() {
    // Listen where an exporter sends by default (OTLP/HTTP's port on this host), so one that
    // exported regardless of the configuration would be seen; if the port is taken, any port
    // still catches an exporter pointed elsewhere by a leftover default.
    let listener = std::net::TcpListener::bind("127.0.0.1:4318")
        .or_else(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();

    let dir = fresh_project();
    // Other OpenTelemetry settings alone do not switch export on.
    let (child, base) = serve(
        &dir,
        &[
            ("OTEL_SERVICE_NAME", "idflow-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "1"),
        ],
    )
    .await;
    run_to_the_end(&base, "traced").await;
    stop(child).await;

    // The process has exited: any connection it opened waits in the listener's backlog.
    listener.set_nonblocking(true).unwrap();
    let connection = listener.accept();
    assert!(
        matches!(&connection, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "idflow connected to an OTLP port without an endpoint configured: {connection:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_slice_of_a_run_that_waits_lands_in_the_run_trace() {
    let (endpoint, mut bodies) = receiver().await;
    let dir = fresh_project();
    let (child, base) = serve(
        &dir,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_SERVICE_NAME", "idflow-napping"),
        ],
    )
    .await;
    let outcome = run_to_the_end(&base, "napping").await;
    assert_eq!(outcome["status"], "succeeded", "{outcome:#}");
    let run_id = outcome["id"].as_str().expect("the run's id").to_owned();
    stop(child).await;

    let (spans, service_names) = received(&mut bodies);
    assert!(
        service_names.iter().all(|name| name == "idflow-napping"),
        "OTEL_SERVICE_NAME names the service: {service_names:?}"
    );
    let trace = ulid::Ulid::from_string(&run_id)
        .unwrap()
        .to_bytes()
        .to_vec();
    let mut slices: Vec<&Span> = spans.iter().filter(|s| s.name == "run napping").collect();
    slices.sort_by_key(|s| s.start_time_unix_nano);
    let described: Vec<(&str, &str)> = slices
        .iter()
        .map(|s| (text(&s.attributes, "slice"), text(&s.attributes, "status")))
        .collect();
    assert_eq!(
        described,
        [("start", "waiting"), ("resume", "succeeded")],
        "{spans:#?}"
    );
    for slice in &slices {
        assert_eq!(slice.trace_id, trace, "every slice is in the run's trace");
        assert_eq!(text(&slice.attributes, "run_id"), run_id);
    }
    // Each step is a child of the slice that completed it: the wait ends in the second one.
    let parent_of = |name: &str| {
        let step = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span `{name}`: {spans:#?}"));
        assert_eq!(step.trace_id, trace);
        slices
            .iter()
            .position(|slice| slice.span_id == step.parent_span_id)
    };
    assert_eq!(parent_of("text.compose greet"), Some(0));
    assert_eq!(parent_of("wait nap"), Some(1));
    assert_eq!(parent_of("text.compose done"), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
