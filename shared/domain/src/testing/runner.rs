//! Runs one test case: builds the trigger input, runs the flow in-process with the effect driver
//! ([`super::harness`]: stubs for I/O cards, helper flows run to their end, a clock only timers
//! move, a checkpoint written and read back at every step), then compares the run with the
//! expectations.
//!
//! There are no stores and no queue. An effect is answered as soon as it is issued, so the run is
//! deterministic: the same file gives the same result on every machine.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::format::{Case, CaseTrigger, Stub, TestFile};
use super::harness::{Call, CaseError, Finished, Harness, block_on, step_matches};
use super::matching::{Mismatch, diff, matches, preview};
use super::project::TestProject;
use crate::cards;
use crate::engine::{CompiledFlow, Progress};
use crate::model::{EventTrigger, Trigger};
use crate::run::{RunError, StepRecord, StepStatus};
use crate::template::{self, Compiled};

/// The instant a case runs at unless the file or the case sets `now:` (a Monday, 08:00 UTC).
pub const DEFAULT_NOW: &str = "2026-01-05T08:00:00Z";

/// The result of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseReport {
    /// The test file, as labelled.
    pub file: String,
    pub flow: String,
    pub name: String,
    pub outcome: Outcome,
    /// Problems that do not fail the case, such as stubs never used.
    pub warnings: Vec<String>,
    /// The top-level run's step records, to show what happened when the case fails.
    pub steps: Vec<StepRecord>,
    /// How the top-level run ended: its result `{status, headers, body}` or its error. `None` when no
    /// run started or the case could not run to its end.
    pub result: Option<Result<Value, RunError>>,
}

/// Whether a case passed.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    /// The run went through and differed from the expectations.
    Failed(Vec<Mismatch>),
    /// The case could not run to the end (a call without a stub, a helper calling itself forever).
    Error(String),
}

impl CaseReport {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }

    /// What went wrong, as indented lines (empty when the case passed).
    pub fn render_failure(&self, indent: &str) -> String {
        let mut out = String::new();
        match &self.outcome {
            Outcome::Passed => return out,
            Outcome::Error(message) => out.push_str(&format!("{indent}{message}\n")),
            Outcome::Failed(mismatches) => {
                for m in mismatches {
                    out.push_str(&m.render(indent));
                }
            }
        }
        if !self.steps.is_empty() {
            out.push_str(&format!("{indent}steps run:\n"));
            for record in &self.steps {
                out.push_str(&format!("{indent}  {}\n", trace_line(record)));
            }
        }
        out
    }
}

fn trace_line(record: &StepRecord) -> String {
    let status = match record.status {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    };
    let mut line = format!("{} ({}) {status}", record.step, record.card);
    if record.attempts > 1 {
        line.push_str(&format!(" after {} attempts", record.attempts));
    }
    if let Some(error) = &record.error {
        line.push_str(&format!(": {}", error.message));
    }
    line
}

/// Runs one case of a file.
pub fn run_case(project: &TestProject, file: &TestFile, case: &Case) -> CaseReport {
    let mut report = CaseReport {
        file: file.label.clone(),
        flow: file.flow.clone(),
        name: case.name.clone(),
        outcome: Outcome::Passed,
        warnings: Vec::new(),
        steps: Vec::new(),
        result: None,
    };
    let Some(flow) = project.flow(&file.flow) else {
        report.outcome = Outcome::Error(format!("flow `{}` is not loaded", file.flow));
        return report;
    };
    let now = case
        .settings
        .now
        .or(file.defaults.now)
        .unwrap_or_else(default_now);
    let mut vars = project.vars.clone();
    vars.extend(file.defaults.vars.clone());
    vars.extend(case.settings.vars.clone());
    let mut secrets = file.defaults.secrets.clone();
    secrets.extend(case.settings.secrets.clone());

    let input = match trigger_input(flow, case, now, &vars) {
        Ok(Start::Run(input)) => input,
        Ok(Start::Filtered(reason)) => {
            report.outcome = match case.expect.started {
                Some(false) => Outcome::Passed,
                _ => Outcome::Failed(vec![
                    Mismatch::values("started", &json!(true), Some(&json!(false)))
                        .with_note(format!("no run started: {reason}")),
                ]),
            };
            report.warnings = unused_stubs(&case.stubs, &vec![0; case.stubs.len()]);
            return report;
        }
        Err(message) => {
            report.outcome = Outcome::Error(message);
            return report;
        }
    };

    let harness = Harness::new(project, &case.stubs, now, Value::Object(vars), secrets);
    let finished = block_on(harness.run(flow, input, 0)).unwrap_or_else(|| {
        Err(CaseError(format!(
            "run of `{}` waits for something the test cannot answer",
            flow.flow.name
        )))
    });
    let log = harness.log();
    let mut mismatches = Vec::new();
    match finished {
        Err(CaseError(message)) => {
            report.outcome = Outcome::Error(message);
            return report;
        }
        Ok(finished) => {
            if case.expect.started == Some(false) {
                mismatches.push(
                    Mismatch::values("started", &json!(false), Some(&json!(true)))
                        .with_note("the event passed the trigger's filter and a run started"),
                );
            }
            compare(case, &finished, &log.calls, &mut mismatches);
            report.result = match finished.progress {
                Progress::Succeeded(output) => Some(Ok(output)),
                Progress::Failed(error) => Some(Err(error)),
                Progress::Pending => None,
            };
            report.steps = finished.records;
        }
    }
    report.warnings = unused_stubs(&case.stubs, &log.used);
    if !mismatches.is_empty() {
        report.outcome = Outcome::Failed(mismatches);
    }
    report
}

/// Runs every case of a file whose name (or flow name) contains `filter`.
pub fn run_file(project: &TestProject, file: &TestFile, filter: Option<&str>) -> Vec<CaseReport> {
    file.cases
        .iter()
        .filter(|case| selected(&file.flow, &case.name, filter))
        .map(|case| run_case(project, file, case))
        .collect()
}

/// Whether `--filter` selects a case: a case-insensitive substring of its name or of its flow's name.
pub fn selected(flow: &str, case: &str, filter: Option<&str>) -> bool {
    match filter {
        None => true,
        Some(f) => {
            let f = f.to_lowercase();
            case.to_lowercase().contains(&f) || flow.to_lowercase().contains(&f)
        }
    }
}

fn default_now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(DEFAULT_NOW)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn unused_stubs(stubs: &[Stub], used: &[usize]) -> Vec<String> {
    stubs
        .iter()
        .zip(used)
        .enumerate()
        .filter(|(_, (_, n))| **n == 0)
        .map(|(i, (stub, _))| {
            format!(
                "{} was never used; the call it answers did not happen, or an earlier stub answered it",
                stub.describe(i)
            )
        })
        .collect()
}

/// Whether a run starts, and with what input.
enum Start {
    Run(Value),
    /// An event flow's types or filter turned the event away.
    Filtered(String),
}

fn trigger_input(
    flow: &CompiledFlow,
    case: &Case,
    now: DateTime<Utc>,
    vars: &serde_json::Map<String, Value>,
) -> Result<Start, String> {
    let now_text = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    match (&flow.flow.trigger, &case.trigger) {
        (Trigger::Event(trigger), CaseTrigger::Event { event, delivery }) => {
            let (event, delivery) = event_envelope(trigger, event, delivery, &now_text);
            match event_filter(trigger, &event, &delivery, vars, &now_text)? {
                Some(reason) => Ok(Start::Filtered(reason)),
                None => Ok(Start::Run(json!({ "event": event, "delivery": delivery }))),
            }
        }
        (Trigger::Event(_), CaseTrigger::Input(_)) => Err(format!(
            "flow `{}` is started by Okta events: give the case an `event`",
            flow.flow.name
        )),
        (_, CaseTrigger::Event { .. }) => Err(format!(
            "flow `{}` is not an event flow: give the case an `input`",
            flow.flow.name
        )),
        (Trigger::Schedule(_), CaseTrigger::Input(input)) => Ok(Start::Run(merged(
            json!({ "scheduled_for": now.to_rfc3339() }),
            input.as_ref(),
        )?)),
        (Trigger::Api(_), CaseTrigger::Input(input)) => Ok(Start::Run(merged(
            json!({ "method": "POST", "body": null, "query": {}, "headers": {} }),
            input.as_ref(),
        )?)),
        (Trigger::Delegated(trigger), CaseTrigger::Input(input)) => {
            let input = input.clone().unwrap_or_else(|| json!({}));
            for (name, declared) in &trigger.inputs {
                let given = input.get(name).is_some_and(|v| !v.is_null());
                if declared.required && !given {
                    return Err(format!(
                        "delegated input `{name}` is required; a caller could not start this run without it"
                    ));
                }
            }
            Ok(Start::Run(input))
        }
        (Trigger::Manual | Trigger::Helper(_), CaseTrigger::Input(input)) => {
            Ok(Start::Run(input.clone().unwrap_or_else(|| json!({}))))
        }
    }
}

/// `defaults` with the case's input laid over it, key by key.
fn merged(defaults: Value, input: Option<&Value>) -> Result<Value, String> {
    let mut out = defaults;
    match input {
        None => {}
        Some(Value::Object(given)) => {
            if let Value::Object(base) = &mut out {
                for (k, v) in given {
                    base.insert(k.clone(), v.clone());
                }
            }
        }
        Some(other) => {
            return Err(format!(
                "the input of this trigger is a mapping (its fields complete {}), got {}",
                preview(&out),
                super::matching::kind(other)
            ));
        }
    }
    Ok(out)
}

/// The event as Okta sends it (with `uuid`, `eventType` and `published` filled in when the test
/// leaves them out) and the delivery envelope around it.
fn event_envelope(
    trigger: &EventTrigger,
    event: &Map<String, Value>,
    delivery: &Map<String, Value>,
    now: &str,
) -> (Value, Value) {
    let mut full = Map::new();
    full.insert("uuid".into(), json!("00000000-0000-4000-8000-000000000001"));
    if let Some(first) = trigger.okta.first() {
        full.insert("eventType".into(), json!(first));
    }
    full.insert("published".into(), json!(now));
    full.extend(event.clone());
    let mut envelope = json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "contentType": "application/json",
        "source": "https://example.okta.com/api/v1/eventHooks/test",
        "eventId": "00000000-0000-4000-8000-000000000002",
        "eventTime": now,
    });
    if let Value::Object(base) = &mut envelope {
        base.extend(delivery.clone());
    }
    (Value::Object(full), envelope)
}

/// `None` when the event starts a run, or why it does not.
fn event_filter(
    trigger: &EventTrigger,
    event: &Value,
    delivery: &Value,
    vars: &serde_json::Map<String, Value>,
    now: &str,
) -> Result<Option<String>, String> {
    let event_type = event.get("eventType").and_then(Value::as_str).unwrap_or("");
    if !trigger.okta.is_empty() && !trigger.okta.iter().any(|t| t == event_type) {
        return Ok(Some(format!(
            "event type `{event_type}` is not one the flow subscribes to ({})",
            trigger.okta.join(", ")
        )));
    }
    let Some(filter) = &trigger.filter else {
        return Ok(None);
    };
    let compiled = Compiled::text(filter)
        .map_err(|e| format!("the trigger's filter does not compile: {e}"))?;
    let ctx = template::to_value(&json!({
        "event": event,
        "delivery": delivery,
        // As `POST /hooks/okta` does: the filter sees the project's vars (with the test's overrides).
        "vars": vars,
        template::NOW_KEY: now,
    }));
    let value = compiled
        .render(&ctx)
        .map_err(|e| format!("the trigger's filter failed: {e}"))?;
    if template::truthy(&value) {
        Ok(None)
    } else {
        Ok(Some(format!("the trigger's filter is {}", preview(&value))))
    }
}

fn compare(case: &Case, run: &Finished, calls: &[Call], out: &mut Vec<Mismatch>) {
    let expect = &case.expect;
    let expected_status = expect.status.clone().unwrap_or_else(|| {
        if expect.error.is_some() {
            "failed".into()
        } else {
            "succeeded".into()
        }
    });
    let (actual_status, output, error) = match &run.progress {
        Progress::Succeeded(output) => ("succeeded", Some(output), None),
        Progress::Failed(error) => ("failed", None, Some(error)),
        Progress::Pending => ("pending", None, None),
    };
    if expected_status != actual_status {
        let mut mismatch = Mismatch::values(
            "status",
            &json!(expected_status),
            Some(&json!(actual_status)),
        );
        if let Some(error) = error {
            let at = error
                .step
                .as_deref()
                .map(|s| format!(" at step `{s}`"))
                .unwrap_or_default();
            mismatch = mismatch.with_note(format!("the run failed{at}: {}", error.message));
        }
        out.push(mismatch);
    }
    if let Some(want) = &expect.result {
        match output {
            Some(output) => diff(want, output, "return", out),
            None => out.push(Mismatch::note(
                "return",
                "the run failed, so it returned nothing",
            )),
        }
    }
    if let Some(want) = &expect.error {
        match error {
            Some(error) => {
                let actual = serde_json::to_value(error).unwrap_or(Value::Null);
                diff(want, &actual, "error", out);
            }
            None => out.push(Mismatch::note("error", "the run did not fail")),
        }
    }
    for (name, want) in &expect.steps {
        let path = format!("steps.{name}");
        let record = run
            .records
            .iter()
            .rfind(|r| r.step == *name)
            .or_else(|| run.records.iter().rfind(|r| step_matches(name, &r.step)));
        let Some(record) = record else {
            out.push(Mismatch::note(&path, "the step did not run"));
            continue;
        };
        if let Some(status) = &want.status {
            let actual = json!(record.status);
            diff(&json!(status), &actual, &format!("{path}.status"), out);
        }
        if let Some(attempts) = want.attempts {
            diff(
                &json!(attempts),
                &json!(record.attempts),
                &format!("{path}.attempts"),
                out,
            );
        }
        let fields = [
            ("output", &want.output, record.output.clone()),
            ("input", &want.input, record.input.clone()),
            (
                "error",
                &want.error,
                record
                    .error
                    .as_ref()
                    .and_then(|e| serde_json::to_value(e).ok()),
            ),
        ];
        for (field, want, actual) in fields {
            let Some(want) = want else { continue };
            let field_path = format!("{path}.{field}");
            match actual {
                Some(actual) => diff(want, &actual, &field_path, out),
                None => out.push(Mismatch::values(&field_path, want, None)),
            }
        }
    }
    for (index, want) in expect.calls.iter().enumerate() {
        let matching = calls
            .iter()
            .filter(|c| want.card.as_ref().is_none_or(|card| *card == c.card))
            .filter(|c| want.step.as_ref().is_none_or(|s| step_matches(s, &c.step)))
            .filter(|c| want.input.as_ref().is_none_or(|i| matches(i, &c.input)))
            .count();
        let ok = match want.count {
            Some(count) => matching as u64 == count,
            None => matching > 0,
        };
        if ok {
            continue;
        }
        let mut what = Vec::new();
        if let Some(card) = &want.card {
            what.push(format!("card `{card}`"));
        }
        if let Some(step) = &want.step {
            what.push(format!("step `{step}`"));
        }
        let with_input = want
            .input
            .as_ref()
            .map(|i| format!(" with input {}", preview(i)))
            .unwrap_or_default();
        let expected = match want.count {
            Some(count) => format!("{count} call(s)"),
            None => "at least one call".to_owned(),
        };
        let mut note = format!(
            "expected {expected} of {}{with_input}, got {matching}",
            what.join(" at ")
        );
        let related: Vec<&Call> = calls
            .iter()
            .filter(|c| want.card.as_ref().is_none_or(|card| *card == c.card))
            .filter(|c| want.step.as_ref().is_none_or(|s| step_matches(s, &c.step)))
            .collect();
        if want.input.is_some() && !related.is_empty() {
            note.push_str("; the calls made had these inputs:");
            for call in related.iter().take(5) {
                note.push_str(&format!("\n    {} {}", call.step, preview(&call.input)));
            }
            if related.len() > 5 {
                note.push_str(&format!("\n    … and {} more", related.len() - 5));
            }
        }
        out.push(Mismatch::note(&format!("calls[{index}]"), note));
    }
    for (index, name) in expect.not_called.iter().enumerate() {
        let is_card = cards::lookup(name).is_some();
        let made = calls
            .iter()
            .filter(|c| {
                if is_card {
                    c.card == *name
                } else {
                    step_matches(name, &c.step)
                }
            })
            .count();
        // Control steps (an `if`, a loop) never make calls; their records say whether they ran.
        let ran = !is_card
            && run
                .records
                .iter()
                .any(|r| r.status != StepStatus::Skipped && step_matches(name, &r.step));
        if made > 0 {
            out.push(Mismatch::note(
                &format!("not_called[{index}]"),
                format!("`{name}` was called {made} time(s)"),
            ));
        } else if ran {
            out.push(Mismatch::note(
                &format!("not_called[{index}]"),
                format!("step `{name}` ran"),
            ));
        }
    }
}
