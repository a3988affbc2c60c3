//! Turns a run, as the admin API returns it (`GET /api/runs/{id}`, see [`crate::api::run_detail`]),
//! into a test case: the run's input and start time, each I/O card step's recorded output (or error)
//! as a stub by step id, helper runs as `flow.call` stubs, and the run's result as the expectation.
//!
//! History already replaces secret values with `[redacted]`; recording also drops credential headers
//! and masks credential-looking fields, since a test file is meant to be committed.

use serde_json::{Map, Value, json};

use super::format::parse_test_file;
use super::yaml::{scalar_text, to_yaml};
use crate::cards::{self, CardKind};

/// Why a run cannot become a test case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The JSON is not a run detail.
    #[error("not a run as `GET /api/runs/{{id}}` returns it: {0}")]
    Malformed(String),
    /// The run has not ended, or was cancelled.
    #[error("run {id} is {status}; only runs that succeeded or failed can be recorded")]
    NotEnded { id: String, status: String },
    /// The flow's history mode dropped the step data a test needs.
    #[error(
        "run {id} kept no step data: its flow has `history: none` or `history: errors`, which drop card inputs and outputs, so they cannot become stubs; set `history: all` on the flow (at least while you capture a run) and record a new run"
    )]
    NoStepData { id: String },
    /// The test file to append to cannot take the case.
    #[error("cannot add the case to {file}: {reason}")]
    CannotAppend { file: String, reason: String },
}

impl RecordError {
    /// Whether asking again may succeed (a run that has not ended yet).
    pub fn is_retryable(&self) -> bool {
        matches!(self, RecordError::NotEnded { status, .. } if status != "cancelled")
    }
}

/// A recorded case.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub flow: String,
    pub case_name: String,
    /// The case as an item of `cases:` (starting with `  - name:`), comment included.
    pub case_yaml: String,
    /// A whole test file holding just this case.
    pub file_yaml: String,
}

/// Header names never written to a test file.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-client-token",
    "x-api-key",
    "x-okta-verification-challenge",
];

/// Field names (compared without case, `-` and `_`) whose values are masked.
const CREDENTIAL_FIELDS: &[&str] = &[
    "password",
    "secret",
    "clientsecret",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "clienttoken",
    "apikey",
    "apitoken",
    "privatekey",
];

/// Builds a test case from a run detail.
pub fn record_case(run: &Value) -> Result<Recorded, RecordError> {
    let text = |key: &str| {
        run.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| RecordError::Malformed(format!("`{key}` is missing")))
    };
    let id = text("id")?;
    let flow = text("flow")?;
    let status = text("status")?;
    if status != "succeeded" && status != "failed" {
        return Err(RecordError::NotEnded { id, status });
    }
    let steps = run
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| RecordError::Malformed("`steps` is missing".into()))?;
    let input = run.get("input").cloned().unwrap_or(Value::Null);
    if lacks_step_data(&input, steps) {
        return Err(RecordError::NoStepData { id });
    }

    let mut case = Map::new();
    let case_name = format!("recorded run {id}");
    case.insert("name".into(), json!(case_name));
    if let Some(started) = run
        .get("startedAt")
        .or_else(|| run.get("createdAt"))
        .and_then(Value::as_str)
    {
        case.insert("now".into(), json!(started));
    }
    let input = scrub(input);
    let is_event = run.pointer("/trigger/kind").and_then(Value::as_str) == Some("event")
        || input
            .as_object()
            .is_some_and(|m| m.len() == 2 && m.contains_key("event") && m.contains_key("delivery"));
    if is_event {
        case.insert(
            "event".into(),
            input.get("event").cloned().unwrap_or(json!({})),
        );
        if let Some(delivery) = input.get("delivery").filter(|d| d.is_object()) {
            case.insert("delivery".into(), delivery.clone());
        }
    } else if !input.is_null() {
        case.insert("input".into(), input);
    }
    let stubs = stubs_of(steps);
    if !stubs.is_empty() {
        case.insert("stubs".into(), Value::Array(stubs));
    }
    let mut expect = Map::new();
    expect.insert("status".into(), json!(status));
    if status == "succeeded" {
        if let Some(output) = run.get("output").filter(|o| !o.is_null()) {
            expect.insert("return".into(), scrub(output.clone()));
        }
    } else if let Some(error) = run.get("error").and_then(Value::as_object) {
        let mut want = Map::new();
        for key in ["code", "message", "step"] {
            if let Some(v) = error.get(key).filter(|v| !v.is_null()) {
                want.insert(key.into(), v.clone());
            }
        }
        expect.insert("error".into(), Value::Object(want));
    }
    case.insert("expect".into(), Value::Object(expect));

    let comment = format!(
        "  # Recorded from run {id} ({status}): card outputs became stubs, the run's result the expectation.\n"
    );
    let item = to_yaml(&Value::Array(vec![Value::Object(case)]), 2);
    let case_yaml = format!("{comment}{item}");
    let file_yaml = format!("flow: {}\ncases:\n{case_yaml}", scalar_text(&flow));
    Ok(Recorded {
        flow,
        case_name,
        case_yaml,
        file_yaml,
    })
}

/// Whether the history mode dropped step data: a succeeded card step always keeps its input under
/// `history: all`, and a run keeps its input unless `history: none` dropped it.
fn lacks_step_data(input: &Value, steps: &[Value]) -> bool {
    let ran: Vec<&Value> = steps
        .iter()
        .filter(|s| s.get("status").and_then(Value::as_str) != Some("skipped"))
        .collect();
    let card_without_input = ran.iter().any(|s| {
        s.get("status").and_then(Value::as_str) == Some("succeeded")
            && s.get("card")
                .and_then(Value::as_str)
                .is_some_and(|c| cards::lookup(c).is_some())
            && s.get("input").is_none_or(Value::is_null)
    });
    let nothing_kept = input.is_null()
        && !ran.is_empty()
        && ran.iter().all(|s| {
            s.get("input").is_none_or(Value::is_null) && s.get("output").is_none_or(Value::is_null)
        });
    card_without_input || nothing_kept
}

fn stubs_of(steps: &[Value]) -> Vec<Value> {
    let mut stubs = Vec::new();
    let names: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.get("step").and_then(Value::as_str))
        .collect();
    for step in steps {
        let (Some(name), Some(card), Some(status)) = (
            step.get("step").and_then(Value::as_str),
            step.get("card").and_then(Value::as_str),
            step.get("status").and_then(Value::as_str),
        ) else {
            continue;
        };
        let io = cards::lookup(card)
            .is_some_and(|spec| matches!(spec.kind, CardKind::Io) || spec.name == "flow.call");
        if io {
            match status {
                "succeeded" => stubs.push(json!({
                    "step": name,
                    "output": scrub(step.get("output").cloned().unwrap_or(Value::Null)),
                })),
                "failed" => {
                    if let Some(error) = step.get("error").and_then(Value::as_object) {
                        stubs.push(json!({ "step": name, "error": stub_error(error) }));
                    }
                }
                _ => {}
            }
            continue;
        }
        // A loop over a helper flow leaves no records of its own iterations; its helper runs become
        // stubs: a `map` returns each one's result, a `for_each` ignores them.
        let is_loop = matches!(card, "map" | "for_each");
        let prefix = format!("{name}[");
        let inline = names.iter().any(|n| n.starts_with(&prefix));
        if !is_loop || inline || status != "succeeded" {
            continue;
        }
        let results: Vec<Value> = match (card, step.get("output")) {
            ("map", Some(Value::Array(results))) => results.clone(),
            ("for_each", Some(output)) => {
                let count = output.get("count").and_then(Value::as_u64).unwrap_or(0);
                (0..count).map(|_| Value::Null).collect()
            }
            _ => Vec::new(),
        };
        for (index, result) in results.into_iter().enumerate() {
            stubs.push(json!({
                "step": format!("{name}[{index}]"),
                "card": "flow.call",
                "output": scrub(result),
            }));
        }
    }
    stubs
}

/// A step error from history as a stub `error`.
fn stub_error(error: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    let code = error.get("code").and_then(Value::as_str).unwrap_or("card");
    let message = error.get("message").cloned();
    match error.get("status").and_then(Value::as_u64) {
        Some(status) => {
            out.insert("status".into(), json!(status));
            if let Some(m) = message {
                out.insert("message".into(), m);
            }
            if let Some(detail) = error.get("detail").filter(|d| !d.is_null()) {
                out.insert("body".into(), scrub(detail.clone()));
            }
        }
        None => {
            out.insert("code".into(), json!(code));
            // A timeout words its own message from the step's timeout, and a network error adds its
            // own prefix to the message it is given.
            let message = match (code, message) {
                ("timeout", _) => None,
                ("network", Some(Value::String(m))) => {
                    Some(json!(m.strip_prefix("network error: ").unwrap_or(&m)))
                }
                (_, m) => m,
            };
            if let Some(m) = message {
                out.insert("message".into(), m);
            }
            if code == "invalid_input"
                && let Some(field) = error
                    .get("detail")
                    .and_then(|d| d.get("field"))
                    .filter(|f| f.is_string())
            {
                out.insert("field".into(), field.clone());
            }
        }
    }
    Value::Object(out)
}

/// Drops credential headers and masks credential-looking fields, at any depth.
fn scrub(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| {
                    let folded: String = key
                        .chars()
                        .filter(|c| *c != '-' && *c != '_')
                        .collect::<String>()
                        .to_ascii_lowercase();
                    if key.eq_ignore_ascii_case("headers")
                        && let Value::Object(headers) = value
                    {
                        let kept: Map<String, Value> = headers
                            .into_iter()
                            .filter(|(name, _)| {
                                !CREDENTIAL_HEADERS.contains(&name.to_ascii_lowercase().as_str())
                            })
                            .map(|(name, v)| (name, scrub(v)))
                            .collect();
                        return (key, Value::Object(kept));
                    }
                    if CREDENTIAL_FIELDS.contains(&folded.as_str()) && value.is_string() {
                        return (key, json!("[redacted]"));
                    }
                    (key, scrub(value))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(scrub).collect()),
        other => other,
    }
}

/// Adds a recorded case at the end of an existing test file's `cases:` list, keeping the file's text
/// (comments included) as it is. The file must test the same flow and end with its `cases:` list.
pub fn append_case(label: &str, source: &str, recorded: &Recorded) -> Result<String, RecordError> {
    let cannot = |reason: String| RecordError::CannotAppend {
        file: label.to_owned(),
        reason,
    };
    let file = parse_test_file(label, source).map_err(|errors| {
        let first = errors.first().map(ToString::to_string).unwrap_or_default();
        cannot(format!("it has errors ({first})"))
    })?;
    if file.flow != recorded.flow {
        return Err(cannot(format!(
            "it tests flow `{}`, and the run is of flow `{}`",
            file.flow, recorded.flow
        )));
    }
    if file.cases.iter().any(|c| c.name == recorded.case_name) {
        return Err(cannot(format!(
            "it already has a case named `{}`",
            recorded.case_name
        )));
    }
    let line_of = |path: &str| file.locations.get(path).map(|l| l.line).unwrap_or(0);
    let cases_line = line_of("cases[0]");
    let last_other = ["flow", "now", "vars", "secrets"]
        .iter()
        .map(|k| {
            // A key's extent ends at its deepest node; compare against every node below it.
            file.locations
                .iter()
                .filter(|(p, _)| {
                    *p == k || p.starts_with(&format!("{k}.")) || p.starts_with(&format!("{k}["))
                })
                .map(|(_, l)| l.line)
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0);
    if last_other > cases_line {
        return Err(cannot(
            "`cases:` is not the file's last key; move it to the end or add the case by hand"
                .into(),
        ));
    }
    let first_line = source
        .lines()
        .nth(usize::try_from(cases_line).unwrap_or(1).saturating_sub(1))
        .unwrap_or("");
    let trimmed = first_line.trim_start();
    if !trimmed.starts_with('-') {
        return Err(cannot(
            "its cases are written inline (`cases: [...]`); add the case by hand".into(),
        ));
    }
    let indent = first_line.len() - trimmed.len();
    let reindented: String = recorded
        .case_yaml
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("  ").unwrap_or(line);
            format!("{}{rest}\n", " ".repeat(indent))
        })
        .collect();
    let mut out = source.to_owned();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&reindented);
    Ok(out)
}
