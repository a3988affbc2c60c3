//! Engine tests: a flow in YAML, scripted card answers, and the expected outcome and step trace.
//! Runs go through the one effect driver with test doubles ([`crate::testkit`]), restoring the state from
//! its checkpoint before every step, so every test also proves the run resumes from each of its
//! checkpoints.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cards::{CardCall, CardError};
use crate::flowfile;
use crate::model::{HistoryMode, Step, StepKind};
use crate::run::StepRecord;

use super::advance::{Event, Progress, advance};
use super::compile::CompiledFlow;
use super::context::RunContext;
use super::state::RunState;
use crate::testkit::{Bench, Trace};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

fn compile(yaml: &str) -> CompiledFlow {
    let flow = flowfile::parse_flow("test.yaml", yaml)
        .unwrap_or_else(|e| panic!("flow does not parse: {e:?}"));
    CompiledFlow::new(flow, "test.yaml").unwrap_or_else(|e| panic!("flow does not compile: {e:?}"))
}

type Responder<'a> = dyn FnMut(&str, &Value, u32) -> Result<Value, CardError> + Send + 'a;

/// Runs `flow` with `input` to its end at [`t0`], its card calls answered by `respond` and its
/// helper runs run in-process from `helpers`.
fn execute(
    flow: &CompiledFlow,
    input: Value,
    helpers: &[&CompiledFlow],
    respond: &mut Responder<'_>,
) -> Trace {
    let bench = Bench::new(t0(), helpers, |call: &CardCall| {
        Some(respond(&call.card, &call.input, call.attempt))
    })
    .with_context(
        json!({"org": "acme"}),
        BTreeMap::from([("api".to_owned(), "s3cr3t-value".to_owned())]),
    );
    let ctx = bench.context("01TEST", flow, input);
    let trace = bench.start(flow, &ctx);
    assert_ne!(trace.progress, Progress::Pending, "run did not finish");
    trace
}

fn summary(records: &[StepRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {:?}", r.step, r.card, r.status).to_lowercase())
        .collect()
}

fn no_io(card: &str, _: &Value, _: u32) -> Result<Value, CardError> {
    panic!("unexpected card call {card}")
}

#[test]
fn single_expression_keeps_json_types_and_text_renders() {
    let flow = compile(
        r#"
name: types
steps:
  - id: greeting
    card: text.compose
    with: { text: "Hello {{ input.user.name }} from {{ vars.org }}" }
  - id: answer
    card: flow.return
    with:
      status: 201
      body: { user: "{{ input.user }}", count: "{{ input.items | length }}", text: "{{ steps.greeting }}" }
"#,
    );
    let trace = execute(
        &flow,
        json!({"user": {"name": "Ada"}, "items": [1, 2, 3]}),
        &[],
        &mut no_io,
    );
    assert_eq!(
        trace.progress,
        Progress::Succeeded(json!({
            "status": 201, "headers": {},
            "body": { "user": {"name": "Ada"}, "count": 3, "text": "Hello Ada from acme" }
        }))
    );
}

#[test]
fn if_else_and_guards_choose_the_right_steps() {
    let flow = compile(
        r#"
name: branches
steps:
  - id: check
    if: "{{ input.n > 2 }}"
    then:
      - { id: big, card: text.compose, with: { text: big } }
    else:
      - { id: small, card: text.compose, with: { text: small } }
  - { id: maybe, card: text.compose, if: "{{ input.n == 5 }}", with: { text: five } }
"#,
    );
    let trace = execute(&flow, json!({"n": 3}), &[], &mut no_io);
    assert_eq!(
        summary(&trace.records),
        [
            "check if succeeded",
            "big text.compose succeeded",
            "maybe text.compose skipped"
        ]
    );
    let trace = execute(&flow, json!({"n": 1}), &[], &mut no_io);
    assert_eq!(
        summary(&trace.records),
        [
            "check if succeeded",
            "small text.compose succeeded",
            "maybe text.compose skipped"
        ]
    );
}

#[test]
fn continue_if_false_ends_the_run_quietly() {
    let flow = compile(
        r#"
name: gate
steps:
  - { id: a, card: text.compose, with: { text: a } }
  - continue_if: "{{ input.go }}"
  - { id: b, card: text.compose, with: { text: b } }
"#,
    );
    let trace = execute(&flow, json!({"go": false}), &[], &mut no_io);
    assert!(matches!(trace.progress, Progress::Succeeded(_)));
    assert_eq!(
        summary(&trace.records).len(),
        2,
        "b must not run: {:?}",
        summary(&trace.records)
    );
}

#[test]
fn retry_policy_retries_then_succeeds_with_backoff() {
    let flow = compile(
        r#"
name: retries
steps:
  - id: call
    card: http.request
    retry: { max: 3, backoff: 5s, on: [429, 5xx] }
    with: { url: "https://example.test/x" }
"#,
    );
    let mut respond = |_: &str, _: &Value, attempt: u32| {
        if attempt < 3 {
            Err(CardError::Status {
                status: 503,
                message: "unavailable".into(),
                detail: None,
                retry_after: None,
            })
        } else {
            Ok(json!({"status": 200, "headers": {}, "body": "ok"}))
        }
    };
    let trace = execute(&flow, json!({}), &[], &mut respond);
    assert!(matches!(trace.progress, Progress::Succeeded(_)));
    assert_eq!(
        trace.calls,
        ["http.request#1", "http.request#2", "http.request#3"]
    );
    assert_eq!(trace.records.len(), 1);
    assert_eq!(trace.records[0].attempts, 3);
    // 5 s then 10 s of backoff.
    assert_eq!(trace.now - t0(), chrono::Duration::seconds(15));
}

#[test]
fn non_matching_errors_are_not_retried_and_fail_the_run() {
    let flow = compile(
        r#"
name: noretry
steps:
  - id: call
    card: http.request
    retry: { max: 3, on: [429] }
    with: { url: "https://example.test/x" }
"#,
    );
    let mut respond = |_: &str, _: &Value, _: u32| {
        Err(CardError::Status {
            status: 404,
            message: "not found".into(),
            detail: None,
            retry_after: None,
        })
    };
    let trace = execute(&flow, json!({}), &[], &mut respond);
    let Progress::Failed(error) = trace.progress else {
        panic!("expected failure")
    };
    assert_eq!(error.step.as_deref(), Some("call"));
    assert_eq!(trace.calls, ["http.request#1"]);
}

#[test]
fn try_catch_exposes_the_error_and_goes_on() {
    let flow = compile(
        r#"
name: trycatch
steps:
  - try:
      - { id: call, card: http.request, with: { url: "https://example.test/x" } }
      - { id: never, card: text.compose, with: { text: never } }
    catch:
      - { id: handled, card: text.compose, with: { text: "caught {{ error.status }} at {{ error.step }}" } }
  - { id: after, card: flow.return, with: { body: "{{ steps.handled }}" } }
"#,
    );
    let mut respond = |_: &str, _: &Value, _: u32| {
        Err(CardError::Status {
            status: 500,
            message: "boom".into(),
            detail: None,
            retry_after: None,
        })
    };
    let trace = execute(&flow, json!({}), &[], &mut respond);
    assert_eq!(
        trace.progress,
        Progress::Succeeded(json!({"status": 200, "headers": {}, "body": "caught 500 at call"}))
    );
    assert!(
        !summary(&trace.records)
            .iter()
            .any(|s| s.starts_with("never"))
    );
}

#[test]
fn unnamed_nested_steps_are_named_after_their_parent_in_history() {
    let flow = compile(
        r#"
name: names
steps:
  - { card: text.compose, with: { text: first } }
  - id: printed
    for_each: "{{ input.names }}"
    steps:
      - { card: text.compose, with: { text: "{{ item }}" } }
      - if: "{{ true }}"
        then:
          - { card: text.compose, with: { text: deep } }
  - if: "{{ true }}"
    then:
      - { card: text.compose, with: { text: unnamed parent } }
"#,
    );
    let trace = execute(&flow, json!({"names": ["a"]}), &[], &mut no_io);
    assert_eq!(
        summary(&trace.records),
        [
            "s0 text.compose succeeded",
            "printed[0].printed.steps.0 text.compose succeeded",
            "printed[0].printed.steps.1 if succeeded",
            "printed[0].printed.steps.1.then.0 text.compose succeeded",
            "printed for_each succeeded",
            "s2 if succeeded",
            "s2.then.0 text.compose succeeded",
        ]
    );
}

#[test]
fn a_named_try_has_its_own_record_and_an_unnamed_one_does_not() {
    let flow = compile(
        r#"
name: tries
steps:
  - id: guarded
    try:
      - { id: call, card: http.request, with: { url: "https://example.test/x" } }
    catch:
      - { id: handled, card: text.compose, with: { text: "{{ error.code }}" } }
  - try:
      - { id: fine, card: text.compose, with: { text: ok } }
    catch: []
  - id: rethrown
    try:
      - { id: again, card: http.request, with: { url: "https://example.test/y" } }
    catch:
      - { id: give_up, card: flow.fail, with: { message: "gave up" } }
"#,
    );
    let mut respond = |_: &str, _: &Value, _: u32| Err(CardError::Network("refused".into()));
    let trace = execute(&flow, json!({}), &[], &mut respond);
    assert_eq!(
        summary(&trace.records),
        [
            "call http.request failed",
            "handled text.compose succeeded",
            "guarded try succeeded",
            "fine text.compose succeeded",
            "again http.request failed",
            "give_up flow.fail failed",
            "rethrown try failed",
        ]
    );
    let guarded = trace.records.iter().find(|r| r.step == "guarded");
    assert_eq!(
        guarded.and_then(|r| r.output.clone()),
        Some(
            json!({"caught": {"step": "call", "code": "network", "message": "network error: refused"}})
        )
    );
}

#[test]
fn on_error_continue_records_the_error_as_output() {
    let flow = compile(
        r#"
name: onerror
steps:
  - { id: call, card: http.request, on_error: continue, with: { url: "https://example.test/x" } }
  - { id: next, card: flow.return, with: { body: "{{ steps.call.error.code }}" } }
"#,
    );
    let mut respond = |_: &str, _: &Value, _: u32| Err(CardError::Network("refused".into()));
    let trace = execute(&flow, json!({}), &[], &mut respond);
    assert_eq!(
        trace.progress,
        Progress::Succeeded(json!({"status": 200, "headers": {}, "body": "network"}))
    );
}

#[test]
fn map_over_inline_steps_collects_results_in_order_with_concurrency() {
    let flow = compile(
        r#"
name: mapper
steps:
  - id: shout
    map: "{{ input.names }}"
    as: name
    concurrency: 3
    steps:
      - { id: up, card: text.compose, with: { text: "{{ name | upper }}!" } }
  - { card: flow.return, with: { body: "{{ steps.shout }}" } }
"#,
    );
    let trace = execute(
        &flow,
        json!({"names": ["a", "b", "c", "d"]}),
        &[],
        &mut no_io,
    );
    assert_eq!(
        trace.progress,
        Progress::Succeeded(
            json!({"status": 200, "headers": {}, "body": ["A!", "B!", "C!", "D!"]})
        )
    );
    assert!(summary(&trace.records).contains(&"shout[2].up text.compose succeeded".to_owned()));
}

#[test]
fn for_each_with_a_helper_flow_starts_one_child_per_item() {
    let helper = compile(
        r#"
name: greet-one
trigger: { helper: { inputs: { user: text } } }
steps:
  - { card: flow.return, with: { body: "hi {{ input.user }}" } }
"#,
    );
    let flow = compile(
        r#"
name: greet-all
steps:
  - id: all
    map: "{{ input.users }}"
    as: user
    flow: greet-one
"#,
    );
    let trace = execute(&flow, json!({"users": ["x", "y"]}), &[&helper], &mut no_io);
    assert_eq!(trace.calls, ["child:greet-one", "child:greet-one"]);
    assert_eq!(
        trace.progress,
        Progress::Succeeded(json!({"status": 200, "headers": {}, "body": ["hi x", "hi y"]}))
    );
}

#[test]
fn a_failing_iteration_fails_the_loop_and_the_run() {
    let flow = compile(
        r#"
name: loopfail
steps:
  - id: each
    for_each: "{{ input.items }}"
    steps:
      - { id: call, card: http.request, with: { url: "https://example.test/{{ item }}" } }
"#,
    );
    let mut respond = |_: &str, input: &Value, _: u32| {
        if input["url"].as_str().is_some_and(|u| u.ends_with("/2")) {
            Err(CardError::Status {
                status: 404,
                message: "missing".into(),
                detail: None,
                retry_after: None,
            })
        } else {
            Ok(json!({"status": 200}))
        }
    };
    let trace = execute(&flow, json!({"items": [1, 2, 3]}), &[], &mut respond);
    let Progress::Failed(error) = trace.progress else {
        panic!("expected failure")
    };
    assert_eq!(error.step.as_deref(), Some("each"));
    assert_eq!(
        trace.calls.len(),
        2,
        "iteration 3 must not start after 2 failed: {:?}",
        trace.calls
    );
}

#[test]
fn flow_fail_fails_with_its_message_and_template_errors_name_the_field() {
    let flow = compile(
        "name: f\nsteps:\n  - { card: flow.fail, with: { message: \"no {{ input.x }}\" } }\n",
    );
    let trace = execute(&flow, json!({"x": "way"}), &[], &mut no_io);
    let Progress::Failed(error) = trace.progress else {
        panic!("expected failure")
    };
    assert_eq!(error.message, "no way");

    let flow = compile(
        "name: g\nsteps:\n  - { id: bad, card: text.compose, with: { text: \"{{ input.missing.deeper }}\" } }\n",
    );
    let trace = execute(&flow, json!({}), &[], &mut no_io);
    let Progress::Failed(error) = trace.progress else {
        panic!("expected failure")
    };
    assert!(error.message.starts_with("with.text"), "{}", error.message);
    assert_eq!(error.step.as_deref(), Some("bad"));
}

#[test]
fn history_modes_keep_or_drop_step_data_and_secrets_are_redacted() {
    let yaml = |mode: &str| {
        format!(
            "name: h\nhistory: {mode}\nsteps:\n  - {{ id: a, card: http.request, with: {{ url: https://x.example, headers: {{ X-Key: \"key={{{{ secret('api') }}}}\" }} }} }}\n"
        )
    };
    let mut echo = |_: &str, input: &Value, _: u32| Ok(json!({ "sent": input }));
    let all = execute(&compile(&yaml("all")), json!({}), &[], &mut echo);
    assert_eq!(
        all.records[0].input,
        Some(json!({ "url": "https://x.example", "headers": { "X-Key": "[redacted]" } }))
    );
    assert_eq!(
        all.records[0].output,
        Some(
            json!({ "sent": { "url": "https://x.example", "headers": { "X-Key": "[redacted]" } } })
        )
    );
    let none = execute(&compile(&yaml("none")), json!({}), &[], &mut echo);
    assert_eq!(none.records[0].output, None);
    assert_eq!(none.records[0].input, None);
    let errors = execute(&compile(&yaml("errors")), json!({}), &[], &mut echo);
    assert_eq!(errors.records[0].output, None);
}

/// Everything a run leaves behind, as text: step records, the run's result, every checkpoint and
/// every value saved out of line.
fn everything_kept(trace: &Trace) -> String {
    format!(
        "{}\n{:?}\n{}\n{}",
        serde_json::to_string(&trace.records).expect("records serialize"),
        trace.progress,
        trace
            .states
            .iter()
            .map(|saved| saved.text.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        trace
            .values
            .values()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn secret_derived_values_reach_the_card_and_nothing_else() {
    // The reported leak: derived forms (base64 of `svc:<secret>`, upper case) were stored raw.
    let flow = compile(
        r#"
name: derived
history: all
steps:
  - id: call
    card: http.request
    retry: { max: 2, backoff: 1h }
    with:
      url: https://api.example.com/x
      headers:
        Authorization: "Basic {{ ('svc:' ~ secret('api')) | b64encode }}"
        X-Upper: "{{ secret('api') | upper }}"
        X-Request: "{{ input.id }}"
  - { id: next, card: text.compose, with: { text: "got {{ steps.call.echo }}" } }
"#,
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "svc:s3cr3t-value"
        )
    );
    let mut sent = Vec::new();
    let mut respond = |_: &str, input: &Value, attempt: u32| {
        sent.push(input.clone());
        if attempt == 1 {
            // A retry waits an hour: the pending call sits in a checkpoint meanwhile.
            return Err(CardError::Status {
                status: 503,
                message: format!("upstream refused {}", input["headers"]["Authorization"]),
                detail: Some(input.clone()),
                retry_after: None,
            });
        }
        // An echoing server answers with what it was sent.
        Ok(
            json!({ "echo": input["headers"]["Authorization"], "upper": input["headers"]["X-Upper"] }),
        )
    };
    let trace = execute(&flow, json!({ "id": "r-1" }), &[], &mut respond);
    assert!(
        matches!(trace.progress, Progress::Succeeded(_)),
        "{:?}",
        trace.progress
    );
    // The card got the real values, on the first attempt and on the retry.
    assert_eq!(sent.len(), 2);
    for input in &sent {
        assert_eq!(input["headers"]["Authorization"], json!(basic));
        assert_eq!(input["headers"]["X-Upper"], json!("S3CR3T-VALUE"));
        assert_eq!(input["headers"]["X-Request"], json!("r-1"));
    }
    // History shows where they went, not what they were.
    assert_eq!(
        trace.records[0].input.as_ref().map(|i| &i["headers"]),
        Some(
            &json!({ "Authorization": "[redacted]", "X-Upper": "[redacted]", "X-Request": "r-1" })
        )
    );
    let kept = everything_kept(&trace);
    assert!(trace.states.len() >= 2, "the retry wait was checkpointed");
    for needle in ["s3cr3t-value", "S3CR3T-VALUE", basic.as_str(), &basic[6..]] {
        assert!(!kept.contains(needle), "`{needle}` leaked into: {kept}");
    }
    assert!(kept.contains("got [redacted]"), "{kept}");
}

/// Compiles a flow skipping the file checks, with `vars.SECRET_PLACEHOLDER` in its strings replaced by a
/// `secret('api')` call: what a flow that bypassed `idflow validate` would do.
fn compile_unchecked(yaml: &str) -> CompiledFlow {
    fn swap(value: &mut Value) {
        match value {
            Value::String(text) => *text = text.replace("vars.SECRET_PLACEHOLDER", "secret('api')"),
            Value::Array(items) => items.iter_mut().for_each(swap),
            Value::Object(map) => map.values_mut().for_each(swap),
            _ => {}
        }
    }
    fn walk(steps: &mut [Step]) {
        for step in steps {
            if let Some(guard) = &mut step.guard {
                *guard = guard.replace("vars.SECRET_PLACEHOLDER", "secret('api')");
            }
            match &mut step.kind {
                StepKind::Card { with, .. } => swap(with),
                StepKind::If {
                    condition,
                    then,
                    otherwise,
                } => {
                    *condition = condition.replace("vars.SECRET_PLACEHOLDER", "secret('api')");
                    walk(then);
                    walk(otherwise);
                }
                _ => {}
            }
        }
    }
    let mut flow = flowfile::parse_flow("test.yaml", yaml)
        .unwrap_or_else(|e| panic!("flow does not parse: {e:?}"));
    walk(&mut flow.steps);
    CompiledFlow::new(flow, "test.yaml").unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn a_flow_that_bypassed_validation_still_cannot_leak_a_secret() {
    for (yaml, what) in [
        (
            "name: f\nsteps:\n  - { id: a, card: text.compose, with: { text: \"k={{ vars.SECRET_PLACEHOLDER }}\" } }\n",
            "text.compose",
        ),
        (
            "name: f\nsteps:\n  - { card: flow.return, with: { body: \"{{ vars.SECRET_PLACEHOLDER | upper }}\" } }\n",
            "flow.return",
        ),
        (
            "name: f\nsteps:\n  - { card: flow.fail, with: { message: \"{{ vars.SECRET_PLACEHOLDER }}\" } }\n",
            "flow.fail",
        ),
        (
            "name: f\nsteps:\n  - if: \"{{ vars.SECRET_PLACEHOLDER < input.guess }}\"\n    then: [{ id: t, card: text.compose, with: { text: yes } }]\n",
            "condition",
        ),
        (
            "name: f\nsteps:\n  - { id: l, card: list.filter, with: { list: [1], where: \"vars.SECRET_PLACEHOLDER == 's3cr3t-value'\" } }\n",
            "expression",
        ),
    ] {
        let trace = execute(
            &compile_unchecked(yaml),
            json!({ "guess": "m" }),
            &[],
            &mut no_io,
        );
        let Progress::Failed(error) = &trace.progress else {
            panic!("{what}: {:?}", trace.progress);
        };
        let record = trace.records.last().expect("a record");
        assert_eq!(
            record.error.as_ref().map(|e| e.code.as_str()),
            Some("secret_not_allowed"),
            "{what}: {record:?}"
        );
        let kept = everything_kept(&trace);
        assert!(!kept.to_lowercase().contains("s3cr3t"), "{what}: {kept}");
        assert!(!error.message.contains("s3cr3t"), "{what}: {error:?}");
    }
}

#[test]
fn the_flow_timeout_fails_the_run_and_abandons_the_step_in_flight() {
    let flow = compile(
        "name: t\ntimeout: 1m\nsteps:\n  - { id: first, card: text.compose, with: { text: a } }\n  - { id: nap, wait: 10m }\n  - { id: after, card: text.compose, with: { text: b } }\n",
    );
    let trace = execute(&flow, json!({}), &[], &mut no_io);
    let Progress::Failed(error) = &trace.progress else {
        panic!("{:?}", trace.progress);
    };
    assert_eq!(error.code, "timeout");
    assert_eq!(error.step.as_deref(), Some("nap"));
    assert!(error.message.contains("1m"), "{error:?}");
    assert_eq!(
        trace.now - t0(),
        chrono::Duration::minutes(1),
        "woke at the deadline"
    );
    assert_eq!(
        summary(&trace.records),
        ["first text.compose succeeded", "nap wait failed"]
    );
    // A try cannot swallow it.
    let caught = compile(
        "name: t\ntimeout: 1m\nsteps:\n  - try: [{ id: nap, wait: 10m }]\n    catch: [{ id: c, card: text.compose, with: { text: caught } }]\n",
    );
    let trace = execute(&caught, json!({}), &[], &mut no_io);
    assert!(
        matches!(&trace.progress, Progress::Failed(e) if e.code == "timeout"),
        "{:?}",
        trace.progress
    );
}

#[test]
fn a_run_cannot_hold_more_step_data_than_its_memory_budget() {
    let flow = compile(
        "name: m\nlimits: { memory: 1MiB }\nsteps:\n  - { id: small, card: text.compose, with: { text: \"{{ 'x' * 600000 }}\" } }\n  - { id: big, card: text.compose, with: { text: \"{{ 'y' * 600000 }}\" } }\n  - { id: never, card: text.compose, with: { text: z } }\n",
    );
    let trace = execute(&flow, json!({}), &[], &mut no_io);
    let Progress::Failed(error) = &trace.progress else {
        panic!("{:?}", trace.progress);
    };
    assert_eq!(error.step.as_deref(), Some("big"));
    let record = trace.records.last().expect("record");
    let step_error = record.error.as_ref().expect("error");
    assert_eq!(step_error.code, "budget_exceeded");
    assert!(step_error.message.contains("1 MiB"), "{step_error:?}");
    // Within the default budget the same flow runs.
    let roomy = compile(
        "name: m\nsteps:\n  - { id: small, card: text.compose, with: { text: \"{{ 'x' * 600000 }}\" } }\n  - { id: big, card: text.compose, with: { text: \"{{ 'y' * 600000 }}\" } }\n",
    );
    assert!(matches!(
        execute(&roomy, json!({}), &[], &mut no_io).progress,
        Progress::Succeeded(_)
    ));
}

#[test]
fn a_template_over_the_render_budget_fails_its_step_with_the_budget_named() {
    let flow = compile(
        "name: r\nlimits: { render: 1KiB }\nsteps:\n  - { id: grow, card: text.compose, with: { text: \"{{ input.s * input.n }}\" } }\n",
    );
    let trace = execute(&flow, json!({ "s": "ab", "n": 10_000 }), &[], &mut no_io);
    let record = trace.records.last().expect("record");
    let error = record.error.as_ref().expect("error");
    assert_eq!(error.code, "budget_exceeded", "{error:?}");
    assert!(error.message.contains("1 KiB"), "{error:?}");
}

#[test]
fn wait_parks_until_the_timer() {
    let flow = compile(
        "name: w\nsteps:\n  - wait: 10m\n  - { id: after, card: text.compose, with: { text: done } }\n",
    );
    let trace = execute(&flow, json!({}), &[], &mut no_io);
    assert!(matches!(trace.progress, Progress::Succeeded(_)));
    assert_eq!(trace.now - t0(), chrono::Duration::minutes(10));
}

#[test]
fn wait_until_in_the_past_continues_at_once_and_beyond_30_days_fails() {
    let flow = compile(
        "name: w\nsteps:\n  - { id: until, wait_until: \"{{ input.at }}\" }\n  - { id: after, card: text.compose, with: { text: done } }\n",
    );
    let past = execute(
        &flow,
        json!({ "at": "2000-01-01T00:00:00Z" }),
        &[],
        &mut no_io,
    );
    assert!(matches!(past.progress, Progress::Succeeded(_)));
    assert_eq!(past.now, t0(), "no time passed");
    let soon = (t0() + chrono::Duration::days(30)).to_rfc3339();
    let thirty = execute(&flow, json!({ "at": soon }), &[], &mut no_io);
    assert!(matches!(thirty.progress, Progress::Succeeded(_)));
    assert_eq!(thirty.now - t0(), chrono::Duration::days(30));
    let late = (t0() + chrono::Duration::days(31)).to_rfc3339();
    let too_far = execute(&flow, json!({ "at": late }), &[], &mut no_io);
    let Progress::Failed(error) = too_far.progress else {
        panic!("a wait beyond 30 days must fail");
    };
    assert!(
        error.message.contains("more than 30 days ahead"),
        "{}",
        error.message
    );
    assert_eq!(error.step.as_deref(), Some("until"));
}

#[test]
fn throttling_waits_without_counting_an_attempt() {
    let flow = compile(
        "name: throttled\nsteps:\n  - { id: call, card: http.request, with: { url: \"https://example.test/x\" } }\n",
    );
    let mut respond = |_: &str, _: &Value, attempt: u32| {
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        if CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Err(CardError::Throttled {
                after: Duration::from_secs(40),
                message: "rate limited".into(),
            })
        } else {
            Ok(json!({ "attempt": attempt }))
        }
    };
    let trace = execute(&flow, json!({}), &[], &mut respond);
    assert!(matches!(trace.progress, Progress::Succeeded(_)));
    assert_eq!(trace.calls, ["http.request#1", "http.request#1"]);
    assert_eq!(trace.records[0].attempts, 1);
    assert_eq!(trace.now - t0(), chrono::Duration::seconds(40));
}

#[test]
fn resume_reissues_only_pending_effects() {
    let flow = compile(
        r#"
name: resume
steps:
  - { id: first, card: http.request, with: { url: "https://example.test/1" } }
  - { id: second, card: http.request, with: { url: "https://example.test/2" } }
"#,
    );
    let ctx = RunContext::new(
        "r".into(),
        "resume".into(),
        t0(),
        json!({}),
        json!({}),
        BTreeMap::new(),
        HistoryMode::All,
    );
    // The first call answers; the second is in flight when the process dies.
    let first_only =
        |call: &CardCall| (call.input["url"] == "https://example.test/1").then(|| Ok(json!(1)));
    let before = Bench::new(t0(), &[], first_only).start(&flow, &ctx);
    assert_eq!(before.records.len(), 1);
    // The checkpoint holds the state; a worker resumes the run from it.
    let mut sent = Vec::new();
    let resumed = Bench::new(t0(), &[], |call: &CardCall| {
        sent.push(call.input.clone());
        None
    })
    .resume(&flow, &ctx, before.checkpoint.expect("a checkpoint"));
    assert!(resumed.records.is_empty(), "completed steps are not re-run");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["url"], "https://example.test/2");
}

/// A `for_each` of two inline iterations, each parked on a card call: the state of a checkpoint
/// written right after it started, as JSON. Nodes: `call` is #0, `each` is #1.
fn parked_loop() -> (CompiledFlow, RunContext, Value) {
    let flow = compile(
        r#"
name: parked
steps:
  - id: each
    for_each: "{{ input.items }}"
    concurrency: 2
    steps:
      - { id: call, card: http.request, with: { url: "https://example.test/{{ item }}" } }
  - { id: nap, wait: 1h }
"#,
    );
    let ctx = RunContext::new(
        "r".into(),
        "parked".into(),
        t0(),
        json!({ "items": ["a", "b", "c"] }),
        json!({}),
        BTreeMap::new(),
        HistoryMode::All,
    );
    // The calls stay in flight: the process dies with them, and the checkpoint is what is left.
    let trace = Bench::new(t0(), &[], |_: &CardCall| None).start(&flow, &ctx);
    assert_eq!(trace.calls.len(), 2, "two iterations call their card");
    let saved = trace.checkpoint.expect("a checkpoint");
    (flow, ctx, saved)
}

/// Restores a state and runs it to its end: card calls answer `{}`, timers fire when due.
fn finish(flow: &CompiledFlow, ctx: &RunContext, state: Value) -> (Progress, Vec<StepRecord>) {
    let trace = Bench::new(t0(), &[], |_: &CardCall| Some(Ok(json!({})))).resume(flow, ctx, state);
    (trace.progress, trace.records)
}

/// A change to a saved state: the JSON pointer of a field, and its new value (`None` removes it).
type Change = (&'static str, Option<Value>);

/// Changes the parked loop's saved state and expects its run to fail with `corrupt_state` saying
/// `expected`.
#[track_caller]
fn check_corrupt(changes: &[Change], expected: &str) {
    let (flow, ctx, mut state) = parked_loop();
    for (pointer, value) in changes {
        let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
        let target = state
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{parent} is not in the state"));
        match (target, value) {
            (Value::Object(map), Some(value)) => {
                map.insert(key.to_owned(), value.clone());
            }
            (Value::Object(map), None) => {
                map.shift_remove(key);
            }
            (Value::Array(items), Some(value)) => {
                items[key.parse::<usize>().expect("an index")] = value.clone();
            }
            (other, _) => panic!("cannot change {pointer} in {other}"),
        }
    }
    let (progress, records) = finish(&flow, &ctx, state);
    let Progress::Failed(error) = progress else {
        panic!("expected corrupt_state, got {progress:?} after {records:?}");
    };
    assert_eq!(error.code, "corrupt_state", "{error:?}");
    assert!(
        error.message.contains(expected),
        "`{}` does not say `{expected}`",
        error.message
    );
}

#[test]
fn the_parked_loop_resumes_untouched() {
    let (flow, ctx, state) = parked_loop();
    let (progress, records) = finish(&flow, &ctx, state);
    assert!(matches!(progress, Progress::Succeeded(_)), "{progress:?}");
    assert_eq!(
        summary(&records),
        [
            "each[0].call http.request succeeded",
            "each[1].call http.request succeeded",
            "each[2].call http.request succeeded",
            "each for_each succeeded",
            "nap wait succeeded"
        ]
    );
}

/// Restored data that named a step, a list entry or a fiber the run does not have used to be
/// indexed directly (a panic); now every such state fails its run with what is wrong.
#[test]
fn corrupt_restored_state_fails_the_run_with_what_is_wrong() {
    let cases: &[(&[Change], &str)] = &[
        // A pending effect naming a step the flow does not have.
        (
            &[("/pending/0/node", Some(json!(99)))],
            "pending effect 0: it names step #99, which the flow does not have",
        ),
        // A step list of a step that does not exist, or of the wrong kind.
        (
            &[(
                "/fibers/1/frames/0/list",
                Some(json!({ "in": "then", "node": 99 })),
            )],
            "fiber 1: the `then` steps of step #99 is not a step list of the flow",
        ),
        (
            &[(
                "/fibers/1/frames/0/list",
                Some(json!({ "in": "catch", "node": 1 })),
            )],
            "the `catch` steps of step `each` (#1) is not a step list",
        ),
        // A cursor past the end of its list.
        (
            &[("/fibers/1/frames/0/index", Some(json!(5)))],
            "its cursor 5 is past the end of the loop steps of step `each` (#1), which has 1 step(s)",
        ),
        // Frames pointing at the wrong kind of step.
        (
            &[("/fibers/0/frames/1/node", Some(json!(0)))],
            "a loop frame names step `call` (#0), which is not a loop",
        ),
        (
            &[(
                "/fibers/0/frames/0",
                Some(json!({ "frame": "try", "node": 1, "catching": false })),
            )],
            "a try frame names step `each` (#1), which is not a `try`",
        ),
        // A loop whose counters do not fit its items.
        (
            &[("/fibers/0/frames/1/next", Some(json!(7)))],
            "the loop of step `each` (#1) has 3 items, started 7 and runs 2",
        ),
        (
            &[(
                "/fibers/0/frames/1/results",
                Some(json!({ "9": { "inline": 1 } })),
            )],
            "has 3 items and a result for item 9",
        ),
        // Fibers whose parent is missing, younger, or not looping.
        (
            &[("/fibers/0", None)],
            "fiber 1: its parent fiber 0 does not exist",
        ),
        (
            &[("/fibers/1/parent", Some(json!([2, 0])))],
            "fiber 1: its parent fiber 2 is not older",
        ),
        (
            &[("/fibers/2/parent", Some(json!([1, 1])))],
            "fiber 2: its parent fiber 1 is not looping over item 1 of inline steps",
        ),
        (
            &[("/fibers/1/parent", Some(json!([0, 9])))],
            "its parent fiber 0 is not looping over item 9",
        ),
        // Pending effects of fibers that are gone, or of the wrong kind for their step.
        (
            &[("/pending/1/fiber", Some(json!(9)))],
            "pending effect 1: its fiber 9 does not exist",
        ),
        (
            &[(
                "/pending/0/kind",
                Some(json!({ "kind": "wait", "until": "2026-01-05T09:00:00Z" })),
            )],
            "a wait timer does not belong to step `call` (#0) (http.request)",
        ),
        // Ids that a new fiber or effect would reuse.
        (
            &[("/next_effect", Some(json!(1)))],
            "pending effect 1 is not below the next effect id 1",
        ),
        (
            &[("/next_fiber", Some(json!(2)))],
            "fiber 2 is not below the next fiber id 2",
        ),
        // Counters at their limit: the next one would overflow.
        (
            &[("/seq", Some(json!(u32::MAX)))],
            "step records are numbered up to the limit",
        ),
        (
            &[("/next_effect", Some(json!(u64::MAX)))],
            "effect ids are used up",
        ),
        (
            &[("/next_fiber", Some(json!(u32::MAX)))],
            "fiber ids are used up",
        ),
        // Every fiber waits and nothing is pending: the run would never move again.
        (
            &[("/pending", Some(json!({})))],
            "every fiber waits and no effect is pending",
        ),
    ];
    for (changes, expected) in cases {
        check_corrupt(changes, expected);
    }
}

#[test]
fn a_state_of_a_newer_format_or_of_no_known_format_is_refused_not_guessed() {
    let (flow, ctx, mut state) = parked_loop();
    assert_eq!(
        state["v"],
        json!(super::state::STATE_VERSION),
        "written with its version"
    );
    state["v"] = json!(99);
    let error = RunState::decode(state.clone()).expect_err("a newer version");
    assert!(
        error.to_string().contains(&format!(
            "format version 99, newer than this release reads (up to {})",
            super::state::STATE_VERSION
        )),
        "{error}"
    );
    let (progress, records) = finish(&flow, &ctx, state.clone());
    assert!(records.is_empty());
    assert!(
        matches!(&progress, Progress::Failed(e) if e.code == "unsupported_state" && e.message == error.to_string()),
        "{progress:?}"
    );
    for (v, code) in [
        (json!(0), "corrupt_state"),
        (json!("2"), "corrupt_state"),
        (json!(-1), "corrupt_state"),
    ] {
        state["v"] = v.clone();
        let (progress, _) = finish(&flow, &ctx, state.clone());
        assert!(
            matches!(&progress, Progress::Failed(e) if e.code == code && e.message.contains("invalid format version")),
            "{v}: {progress:?}"
        );
    }
    let (progress, _) = finish(&flow, &ctx, json!([1, 2]));
    assert!(
        matches!(&progress, Progress::Failed(e) if e.code == "corrupt_state" && e.message.contains("not a JSON object")),
        "{progress:?}"
    );
    let mut missing = parked_loop().2;
    missing.as_object_mut().map(|m| m.shift_remove("pending"));
    let (progress, _) = finish(&flow, &ctx, missing);
    assert!(
        matches!(&progress, Progress::Failed(e) if e.code == "corrupt_state" && e.message.contains("missing field `pending`")),
        "{progress:?}"
    );
}

/// A current state (its values inline) as version 1 wrote it: no `"v"`, and held values bare (a
/// loop's items a plain list).
fn version_1_of(state: &Value) -> Value {
    let unwrap = |held: &mut Value| {
        let inner = held.get("inline").cloned().expect("an inline value");
        *held = inner;
    };
    let mut v1 = state.clone();
    v1.as_object_mut().map(|m| m.shift_remove("v"));
    for fiber in v1["fibers"].as_object_mut().expect("fibers").values_mut() {
        for output in fiber["outputs"]
            .as_object_mut()
            .expect("outputs")
            .values_mut()
        {
            unwrap(output);
        }
        unwrap(&mut fiber["last"]);
        for frame in fiber["frames"].as_array_mut().expect("frames") {
            if frame["frame"] == "loop" {
                unwrap(&mut frame["items"]);
                let count = frame["items"].as_array().map_or(0, Vec::len);
                let mut results = vec![Value::Null; count];
                for (slot, held) in frame["results"].as_object().expect("results") {
                    let slot: usize = slot.parse().expect("an item index");
                    results[slot] = held["inline"].clone();
                }
                frame["results"] = Value::Array(results);
            }
        }
    }
    v1
}

#[test]
fn a_state_without_a_version_is_version_1_and_is_written_back_as_the_current_one() {
    let (flow, ctx, state) = parked_loop();
    let v1 = version_1_of(&state);
    let restored = RunState::decode(v1).expect("version 1 decodes");
    assert_eq!(serde_json::to_value(&restored).expect("serializes"), state);
    let (progress, _) = finish(&flow, &ctx, serde_json::to_value(&restored).expect("state"));
    assert!(matches!(progress, Progress::Succeeded(_)), "{progress:?}");
}

/// A helper flow named `helper`.
fn helper_flow() -> CompiledFlow {
    compile(
        "name: helper\ntrigger: { helper: { inputs: {} } }\nsteps:\n  - { card: flow.return, with: { body: 1 } }\n",
    )
}

/// Starts a run of `flow` (or resumes it from `saved`) with `helper` deployed, where no card call,
/// helper run or detached start ever answers: it goes as far as it can and stops where a worker
/// would leave it waiting.
fn until_waiting(
    flow: &CompiledFlow,
    ctx: &RunContext,
    helper: &CompiledFlow,
    saved: Option<Value>,
) -> Trace {
    let bench = Bench::new(t0(), &[helper], |_: &CardCall| None).with_helper_runs(|_| None);
    match saved {
        None => bench.start(flow, ctx),
        Some(saved) => bench.resume(flow, ctx, saved),
    }
}

#[test]
fn resume_reissues_a_flow_call_with_its_with_and_loop_helpers_under_their_item() {
    let flow = compile(
        r#"
name: calls
steps:
  - id: each
    map: "{{ input.items }}"
    flow: helper
    concurrency: 1
  - { id: one, card: flow.call, with: { flow: helper, with: { n: 1 } } }
"#,
    );
    let ctx = RunContext::new(
        "r".into(),
        "calls".into(),
        t0(),
        json!({ "items": ["a"] }),
        json!({}),
        BTreeMap::new(),
        HistoryMode::All,
    );
    let helper = helper_flow();
    // Every helper run is still going: the run waits, and its checkpoint is what a worker resumes.
    let waiting = |saved| until_waiting(&flow, &ctx, &helper, saved);
    let first = waiting(None);
    let resumed = waiting(first.checkpoint.clone());
    assert_eq!(
        resumed.helper_runs, first.helper_runs,
        "re-issued as first issued"
    );
    let [call] = &first.helper_runs[..] else {
        panic!("{:?}", first.helper_runs)
    };
    assert_eq!(call.step, "each[0]");
    // The loop's helper run ends; the run goes on to the `flow.call` and waits for it.
    let second = Bench::new(t0(), &[&helper], |_: &CardCall| None)
        .with_helper_runs(|run| (run.step == "each[0]").then(|| Ok(json!("done"))))
        .resume(&flow, &ctx, first.checkpoint.clone().expect("a checkpoint"));
    let again = waiting(second.checkpoint.clone());
    assert_eq!(again.helper_runs[..], second.helper_runs[1..]);
    assert!(
        matches!(&again.helper_runs[..], [run] if run.input == json!({ "n": 1 })),
        "{:?}",
        again.helper_runs
    );
}

/// A large step output is handed out to be saved once, then only referenced: later checkpoints
/// carry its hash, not its data, and a state restored with the value loaded finishes as before.
#[test]
fn a_large_output_is_saved_once_out_of_line_and_then_only_referenced() {
    let flow = compile(
        r#"
name: big
steps:
  - { id: big, card: text.compose, with: { text: "{{ 'x' * 5000 }}" } }
  - { id: small, card: text.compose, with: { text: ok } }
  - { id: nap, wait: 1h }
  - { id: after, card: flow.return, with: { body: "{{ steps.big | length }} {{ steps.small }}" } }
"#,
    );
    let ctx = RunContext::new(
        "r".into(),
        "big".into(),
        t0(),
        json!({}),
        json!({}),
        BTreeMap::new(),
        HistoryMode::All,
    );
    let mut state = RunState::new();
    advance(&flow, &mut state, &ctx, vec![Event::Start], t0());
    let blobs = state.take_unsaved(1024);
    assert_eq!(blobs.len(), 1, "only the large output goes out of line");
    let blob = &blobs[0];
    assert!(blob.json.len() > 5000, "the value's whole JSON");
    assert!(
        state.take_unsaved(1024).is_empty(),
        "a value is handed out once, not at every checkpoint"
    );
    let saved = serde_json::to_value(&state).expect("state serializes");
    let text = saved.to_string();
    assert!(
        text.contains(&blob.sha256),
        "the checkpoint references the value"
    );
    assert!(!text.contains(&"x".repeat(5000)), "and does not repeat it");
    assert!(
        text.contains(r#"{"inline":"ok"}"#),
        "small values stay inline"
    );

    let mut restored = RunState::restore(saved.clone());
    assert_eq!(restored.missing_blobs(), vec![blob.sha256.clone()]);
    assert!(
        restored.load_blob(&blob.sha256, b"\"tampered\"").is_err(),
        "bytes that do not hash to the reference are refused"
    );
    restored
        .load_blob(&blob.sha256, &blob.json)
        .expect("the saved value loads");
    assert!(restored.missing_blobs().is_empty());
    let (progress, _) = finish(&flow, &ctx, serde_json::to_value(&restored).expect("state"));
    // `finish` restores from JSON, which references the value: load it as a runner would.
    assert!(
        matches!(&progress, Progress::Failed(e) if e.code == "corrupt_state"),
        "a state whose value was not loaded fails, not guesses: {progress:?}"
    );
    // Resumed two hours later, past the wait, by a worker that loaded the value from the store.
    let later = t0() + chrono::Duration::hours(2);
    let progress = Bench::new(later, &[], |_: &CardCall| None)
        .with_values(&blobs)
        .drive(&flow, &ctx, restored, Event::Resume)
        .progress;
    assert!(
        matches!(&progress, Progress::Succeeded(out) if out["body"] == "5000 ok"),
        "{progress:?}"
    );
}

#[test]
fn flow_start_goes_on_once_the_helper_is_queued_and_is_reissued_as_detached() {
    let flow = compile(
        r#"
name: starter
steps:
  - { id: kick, card: flow.start, with: { flow: helper, with: { n: "{{ input.n }}" } } }
  - { id: after, card: flow.assign, with: { started: "{{ steps.kick.run_id }}" } }
"#,
    );
    let ctx = RunContext::new(
        "r".into(),
        "starter".into(),
        t0(),
        json!({ "n": 7 }),
        json!({}),
        BTreeMap::new(),
        HistoryMode::All,
    );
    let helper = helper_flow();
    // The start is never confirmed: the process dies while it waits.
    let unconfirmed = |saved| until_waiting(&flow, &ctx, &helper, saved);
    let first = unconfirmed(None);
    let [run] = &first.helper_runs[..] else {
        panic!("expected one detached start: {:?}", first.helper_runs)
    };
    assert!(run.detached, "{run:?}");
    assert_eq!(
        (run.step.as_str(), run.flow.as_str(), &run.input),
        ("kick", "helper", &json!({ "n": 7 }))
    );
    // A process that died before the start was confirmed starts it again, detached again (the
    // runner's key makes the second start the same run).
    let resumed = unconfirmed(first.checkpoint.clone());
    assert_eq!(resumed.helper_runs, first.helper_runs);
    let done = Bench::new(t0(), &[&helper], |_: &CardCall| None)
        .with_helper_runs(|_| Some(Ok(json!({ "run_id": "01HELPER" }))))
        .resume(&flow, &ctx, first.checkpoint.clone().expect("a checkpoint"));
    assert_eq!(
        done.progress,
        Progress::Succeeded(
            json!({ "status": 200, "headers": {}, "body": { "started": "01HELPER" } })
        )
    );
    let kick = &done.records[0];
    assert_eq!(kick.output, Some(json!({ "run_id": "01HELPER" })));
}

/// The doubles' host saves large values out of line as a store does, and the driver loads them back
/// into every state it rereads: a run whose later step reads a large output finishes, across an
/// in-process retry backoff and a parked wait, and no checkpoint repeats the value.
#[test]
fn large_values_go_out_of_line_and_come_back_at_every_step() {
    let flow = compile(
        r#"
name: big
steps:
  - { id: big, card: text.compose, with: { text: "{{ 'x' * 5000 }}" } }
  - id: call
    card: http.request
    retry: { max: 2, backoff: 5s }
    with: { url: "https://example.test/x" }
  - { id: nap, wait: 1h }
  - { id: after, card: flow.return, with: { body: "{{ steps.big | length }}" } }
"#,
    );
    let mut respond = |_: &str, _: &Value, attempt: u32| {
        if attempt == 1 {
            Err(CardError::Network("refused".into()))
        } else {
            Ok(json!({ "status": 200 }))
        }
    };
    let trace = execute(&flow, json!({}), &[], &mut respond);
    assert_eq!(
        trace.progress,
        Progress::Succeeded(json!({ "status": 200, "headers": {}, "body": 5000 }))
    );
    assert_eq!(trace.calls, ["http.request#1", "http.request#2"]);
    assert_eq!(
        trace.now - t0(),
        chrono::Duration::hours(1) + chrono::Duration::seconds(5)
    );
    assert_eq!(
        trace.values.values().collect::<Vec<_>>(),
        [&format!("\"{}\"", "x".repeat(5000))]
    );
    assert!(
        trace.states.len() >= 3,
        "checkpoints after each step: {}",
        trace.states.len()
    );
    for saved in &trace.states {
        assert!(!saved.text.contains(&"x".repeat(5000)), "{}", saved.text);
    }
}
