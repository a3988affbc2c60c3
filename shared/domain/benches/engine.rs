//! Engine overhead per pure step: a 20-step compose/json/if flow run by the engine, against the same
//! transform written as plain Rust, measured in the same run. Prints µs per step and the ratio.
//!
//!   cargo bench -p domain --bench engine

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::Criterion;
use domain::engine::{self, CompiledFlow, Event, Progress, RunContext, RunState};
use domain::model::HistoryMode;
use serde_json::{Value, json};

/// Twenty steps of text, JSON, object, list, number and branching work on a webhook-like input.
const FLOW: &str = r#"
name: bench-20
history: all
steps:
  - { id: full_name, card: text.compose, with: { text: "{{ input.user.firstName }} {{ input.user.lastName }}" } }
  - { id: raw, card: json.stringify, with: { value: "{{ input.user }}" } }
  - { id: parsed, card: json.parse, with: { text: "{{ steps.raw }}" } }
  - { id: dept, card: object.get, with: { object: "{{ steps.parsed }}", path: department, default: none } }
  - id: is_eng
    if: "{{ steps.dept == 'Engineering' }}"
    then:
      - { id: label, card: text.compose, with: { text: "eng: {{ steps.full_name }}" } }
    else:
      - { id: label_other, card: text.compose, with: { text: "other: {{ steps.full_name }}" } }
  - { id: upper, card: text.upper, with: { text: "{{ steps.label }}" } }
  - { id: groups, card: list.length, with: { list: "{{ input.groups }}" } }
  - { id: more, card: number.add, with: { a: "{{ steps.groups }}", b: 1 } }
  - { id: login_parts, card: text.split, with: { text: "{{ input.user.login }}", separator: "@" } }
  - { id: domain, card: list.last, with: { list: "{{ steps.login_parts }}" } }
  - id: corp
    if: "{{ steps.domain == 'example.com' }}"
    then:
      - { id: corp_user, card: object.merge, with: { objects: ["{{ steps.parsed }}", { corporate: true }] } }
  - { id: joined, card: text.join, with: { list: "{{ input.groups }}", separator: "," } }
  - { id: lower, card: text.lower, with: { text: "{{ steps.joined }}" } }
  - { id: has_ops, card: text.contains, with: { text: "{{ steps.lower }}", find: ops } }
  - { id: summary, card: flow.assign, with: { who: "{{ steps.upper }}", groups: "{{ steps.more }}", ops: "{{ steps.has_ops }}" } }
  - { id: out, card: json.stringify, with: { value: "{{ steps.summary }}" } }
  - { id: size, card: text.length, with: { text: "{{ steps.out }}" } }
  - { card: flow.return, with: { body: { summary: "{{ steps.summary }}", size: "{{ steps.size }}" } } }
"#;

fn input() -> Value {
    json!({
        "user": { "firstName": "Ada", "lastName": "Lovelace", "login": "ada@example.com", "department": "Engineering" },
        "groups": ["eng", "ops", "admins"]
    })
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
}

fn run_engine(flow: &CompiledFlow, ctx: &RunContext) -> (Value, usize) {
    let mut state = RunState::new();
    let decision = engine::advance(flow, &mut state, ctx, vec![Event::Start], t0());
    match decision.progress {
        Progress::Succeeded(out) => (out, decision.records.len()),
        other => panic!("bench flow did not succeed: {other:?}"),
    }
}

/// The same transform by hand: what a developer would write without idflow.
fn run_plain(input: &Value) -> Value {
    let user = &input["user"];
    let full_name = format!(
        "{} {}",
        user["firstName"].as_str().unwrap_or(""),
        user["lastName"].as_str().unwrap_or("")
    );
    let raw = serde_json::to_string(user).unwrap_or_default();
    let parsed: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let dept = parsed.get("department").cloned().unwrap_or(json!("none"));
    let label = if dept == "Engineering" {
        format!("eng: {full_name}")
    } else {
        format!("other: {full_name}")
    };
    let upper = label.to_uppercase();
    let groups: Vec<&str> = input["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let more = groups.len() + 1;
    let login = user["login"].as_str().unwrap_or("");
    let domain = login.split('@').next_back().unwrap_or("");
    let _corp_user = if domain == "example.com" {
        let mut merged = parsed.clone();
        merged["corporate"] = json!(true);
        Some(merged)
    } else {
        None
    };
    let joined = groups.join(",");
    let lower = joined.to_lowercase();
    let has_ops = lower.contains("ops");
    let summary = json!({ "who": upper, "groups": more, "ops": has_ops });
    let out = serde_json::to_string(&summary).unwrap_or_default();
    let size = out.chars().count();
    json!({ "status": 200, "headers": {}, "body": { "summary": summary, "size": size } })
}

fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn main() {
    let flow = domain::flowfile::parse_flow("bench-20.yaml", FLOW).expect("bench flow parses");
    let flow = CompiledFlow::new(flow, "bench-20.yaml").expect("bench flow compiles");
    let ctx = RunContext::new(
        "01BENCH".into(),
        "bench-20".into(),
        t0(),
        input(),
        json!({}),
        BTreeMap::new(),
        HistoryMode::All,
    );
    let (engine_out, steps) = run_engine(&flow, &ctx);
    let plain_out = run_plain(&input());
    assert_eq!(
        engine_out, plain_out,
        "the engine and the plain transform must compute the same result"
    );
    assert_eq!(steps, 20, "the bench flow records 20 steps");

    let mut criterion = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut group = criterion.benchmark_group("20-step flow");
    group.bench_function("engine", |b| b.iter(|| black_box(run_engine(&flow, &ctx))));
    let input = input();
    group.bench_function("plain rust", |b| b.iter(|| black_box(run_plain(&input))));
    group.finish();

    // Criterion reports each side; the ratio needs both from the same run, so time them here too.
    let iterations = 20_000;
    let engine_time = per_call(iterations, || {
        black_box(run_engine(&flow, &ctx));
    });
    let plain_time = per_call(iterations, || {
        black_box(run_plain(&input));
    });
    let per_step = engine_time.as_secs_f64() * 1e6 / steps as f64;
    let overhead = (engine_time.as_secs_f64() - plain_time.as_secs_f64()) * 1e6 / steps as f64;
    println!();
    println!(
        "engine:      {:>8.2} µs per run, {per_step:.2} µs per step (target ≤ 5 µs)",
        engine_time.as_secs_f64() * 1e6
    );
    println!(
        "plain rust:  {:>8.2} µs per run",
        plain_time.as_secs_f64() * 1e6
    );
    println!(
        "ratio engine/plain: {:.1}×, engine overhead {overhead:.2} µs per step",
        engine_time.as_secs_f64() / plain_time.as_secs_f64()
    );
}
