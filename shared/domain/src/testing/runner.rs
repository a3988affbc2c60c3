//! Runs one test case: builds the trigger input, drives [`engine::advance`] in-process, answers card
//! calls from stubs, runs helper flows recursively, advances the frozen clock only through timers,
//! then compares the run with the expectations.
//!
//! There are no stores and no queue: a case is a loop over `advance`. An effect is answered as soon as
//! it is issued, so the run is deterministic: the same file gives the same result on every machine.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::base_step;
use super::format::{Answer, Case, CaseTrigger, Stub, TestFile};
use super::matching::{Mismatch, diff, matches, preview};
use super::project::TestProject;
use crate::cards::{self, CardError, CardKind};
use crate::engine::{self, CompiledFlow, Effect, Event, Progress, RunContext, RunState};
use crate::model::{EventTrigger, HistoryMode, Trigger};
use crate::run::{RunError, RunId, StepRecord, StepStatus};
use crate::template::{self, Compiled};

/// The instant a case runs at unless the file or the case sets `now:` (a Monday, 08:00 UTC).
pub const DEFAULT_NOW: &str = "2026-01-05T08:00:00Z";

/// Helper flows may call helper flows this deep before a case stops (a flow that calls itself).
pub const MAX_DEPTH: usize = 32;

/// `advance` calls one run may take before the case stops as endless.
const MAX_ROUNDS: usize = 100_000;

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

/// One call a run made: an I/O card attempt, a helper run (`flow.call`), or a pure card.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    /// The step's history name (`each[2].call`).
    step: String,
    card: String,
    input: Value,
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

    let mut harness = Harness {
        project,
        stubs: &case.stubs,
        used: vec![0; case.stubs.len()],
        calls: Vec::new(),
        now,
        vars: Value::Object(vars),
        secrets,
        runs: 0,
    };
    let finished = harness.run(flow, input, 0);
    let mut mismatches = Vec::new();
    match finished {
        Err(message) => {
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
            compare(case, &finished, &harness.calls, &mut mismatches);
            report.result = match finished.progress {
                Progress::Succeeded(output) => Some(Ok(output)),
                Progress::Failed(error) => Some(Err(error)),
                Progress::Pending => None,
            };
            report.steps = finished.records;
        }
    }
    report.warnings = unused_stubs(&case.stubs, &harness.used);
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

/// A run that ended.
struct Finished {
    flow: String,
    progress: Progress,
    records: Vec<StepRecord>,
}

struct Harness<'p> {
    project: &'p TestProject,
    stubs: &'p [Stub],
    /// Calls answered by each stub.
    used: Vec<usize>,
    calls: Vec<Call>,
    /// The frozen clock, shared by the whole run tree; only timers move it.
    now: DateTime<Utc>,
    vars: Value,
    secrets: BTreeMap<String, String>,
    /// Runs started so far (for deterministic run ids).
    runs: u64,
}

impl Harness<'_> {
    fn run(&mut self, flow: &CompiledFlow, input: Value, depth: usize) -> Result<Finished, String> {
        self.runs += 1;
        let millis = u64::try_from(self.now.timestamp_millis()).unwrap_or(0);
        let run_id = RunId(ulid::Ulid::from_parts(millis, u128::from(self.runs)));
        let secrets = flow
            .secret_names
            .iter()
            .map(|name| {
                let value = self
                    .secrets
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("test-secret-{name}"));
                (name.clone(), value)
            })
            .collect();
        let ctx = RunContext::new(
            run_id.to_string(),
            flow.flow.name.clone(),
            self.now,
            input,
            self.vars.clone(),
            secrets,
            // Tests look at every step, whatever the flow keeps in production.
            HistoryMode::All,
        );
        let mut state = RunState::new();
        let mut events = vec![Event::Start];
        let mut timers: Vec<(DateTime<Utc>, u64)> = Vec::new();
        let mut records = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let decision = engine::advance(
                flow,
                &mut state,
                &ctx,
                std::mem::take(&mut events),
                self.now,
            );
            for record in &decision.records {
                self.note_record(record);
            }
            records.extend(decision.records);
            if decision.progress != Progress::Pending {
                return Ok(Finished {
                    flow: flow.flow.name.clone(),
                    progress: decision.progress,
                    records,
                });
            }
            for effect in decision.effects {
                match effect {
                    Effect::Card {
                        effect,
                        step,
                        card,
                        input,
                        timeout,
                        ..
                    } => {
                        let result = self.card(&flow.flow.name, &step, &card, input, depth)?;
                        let result = match result {
                            Err(CardError::Timeout(_)) => Err(CardError::Timeout(timeout)),
                            other => other,
                        };
                        events.push(Event::CardDone { effect, result });
                    }
                    Effect::StartChild {
                        effect,
                        step,
                        flow: helper,
                        input,
                    } => {
                        let result = self.child(&flow.flow.name, &step, &helper, input, depth)?;
                        events.push(Event::ChildDone { effect, result });
                    }
                    Effect::StartDetached {
                        effect,
                        step,
                        flow: helper,
                        input,
                    } => {
                        // The helper runs to its end here (a test sees what it does), but as in
                        // `idflow serve` only a helper that cannot start fails the step.
                        let result =
                            match self.child(&flow.flow.name, &step, &helper, input, depth)? {
                                Err(error)
                                    if matches!(
                                        error.code.as_str(),
                                        "flow_unavailable" | "not_a_helper"
                                    ) =>
                                {
                                    Err(error)
                                }
                                _ => Ok(json!({ "run_id": format!("test-run-of-{helper}") })),
                            };
                        events.push(Event::ChildDone { effect, result });
                    }
                    Effect::Timer { effect, until } => timers.push((until, effect)),
                }
            }
            if events.is_empty() {
                // Nothing to answer: move the frozen clock to the next timer and fire every due one.
                let Some(next) = timers.iter().map(|(until, _)| *until).min() else {
                    return Err(format!(
                        "run of `{}` is stuck: it waits for nothing the test can answer",
                        flow.flow.name
                    ));
                };
                self.now = self.now.max(next);
                let now = self.now;
                timers.sort();
                let (due, later): (Vec<_>, Vec<_>) =
                    timers.into_iter().partition(|(until, _)| *until <= now);
                timers = later;
                events.extend(
                    due.into_iter()
                        .map(|(_, effect)| Event::TimerFired { effect }),
                );
            }
        }
        Err(format!(
            "run of `{}` did not end after {MAX_ROUNDS} engine rounds",
            flow.flow.name
        ))
    }

    /// Pure and engine-handled cards show up only as records; note them as calls.
    fn note_record(&mut self, record: &StepRecord) {
        if record.status == StepStatus::Skipped {
            return;
        }
        let kind = cards::lookup(&record.card).map(|c| (c.name, c.kind));
        let counted = match kind {
            Some((_, CardKind::Pure(_))) => true,
            Some((name, CardKind::Flow)) => name != "flow.call",
            _ => false,
        };
        if counted {
            self.calls.push(Call {
                step: record.step.clone(),
                card: record.card.clone(),
                input: record.input.clone().unwrap_or(Value::Null),
            });
        }
    }

    fn card(
        &mut self,
        flow: &str,
        step: &str,
        card: &str,
        input: Value,
        depth: usize,
    ) -> Result<Answer, String> {
        self.calls.push(Call {
            step: step.to_owned(),
            card: card.to_owned(),
            input: input.clone(),
        });
        match self.stubbed(step, card, &input)? {
            Some(answer) => Ok(answer),
            None => Err(format!(
                "no stub for card `{card}` at step `{step}`{}; add one under `stubs:` (tests never call the network)",
                in_helper(flow, depth)
            )),
        }
    }

    fn child(
        &mut self,
        flow: &str,
        step: &str,
        helper: &str,
        with: Value,
        depth: usize,
    ) -> Result<Result<Value, RunError>, String> {
        let call_input = json!({ "flow": helper, "with": with });
        self.calls.push(Call {
            step: step.to_owned(),
            card: "flow.call".to_owned(),
            input: call_input.clone(),
        });
        if let Some(answer) = self.stubbed(step, "flow.call", &call_input)? {
            return Ok(answer.map_err(|error| {
                let error = error.to_step_error();
                RunError {
                    code: error.code,
                    message: error.message,
                    step: None,
                }
            }));
        }
        let project = self.project;
        let Some(compiled) = project.flow(helper) else {
            return Ok(Err(RunError {
                code: "flow_unavailable".into(),
                message: format!("flow `{helper}` is not deployed"),
                step: None,
            }));
        };
        if !matches!(compiled.flow.trigger, Trigger::Helper(_) | Trigger::Manual) {
            return Ok(Err(RunError {
                code: "not_a_helper".into(),
                message: format!(
                    "flow `{helper}` has a {} trigger; only helper flows can be called",
                    compiled.flow.trigger.kind()
                ),
                step: None,
            }));
        }
        if depth + 1 >= MAX_DEPTH {
            return Err(format!(
                "helper flows call each other more than {MAX_DEPTH} levels deep (at step `{step}`{}); stub the `flow.call`",
                in_helper(flow, depth)
            ));
        }
        let finished = self.run(compiled, with, depth + 1)?;
        Ok(match finished.progress {
            Progress::Succeeded(output) => Ok(output.get("body").cloned().unwrap_or(Value::Null)),
            Progress::Failed(error) => Err(error),
            Progress::Pending => Err(RunError {
                code: "internal".into(),
                message: format!("helper run of `{}` did not end", finished.flow),
                step: None,
            }),
        })
    }

    /// The answer of the first stub that matches the call, if any.
    fn stubbed(&mut self, step: &str, card: &str, input: &Value) -> Result<Option<Answer>, String> {
        for (index, stub) in self.stubs.iter().enumerate() {
            if !stub_matches(stub, step, card, input) {
                continue;
            }
            let n = self.used[index];
            self.used[index] += 1;
            if !stub.sequence {
                return Ok(stub.answers.first().cloned());
            }
            return match stub.answers.get(n) {
                Some(answer) => Ok(Some(answer.clone())),
                None => Err(format!(
                    "{} gave all {} answer(s) of its sequence; call {} of `{card}` at step `{step}` has no answer",
                    stub.describe(index),
                    stub.answers.len(),
                    n + 1
                )),
            };
        }
        Ok(None)
    }
}

fn in_helper(flow: &str, depth: usize) -> String {
    if depth == 0 {
        String::new()
    } else {
        format!(" in helper flow `{flow}`")
    }
}

/// Whether a stub answers a call made by `step` (history name) to `card` with `input`.
pub fn stub_matches(stub: &Stub, step: &str, card: &str, input: &Value) -> bool {
    if let Some(want) = &stub.step
        && !step_matches(want, step)
    {
        return false;
    }
    if let Some(want) = &stub.card
        && want != card
    {
        return false;
    }
    match &stub.input {
        Some(want) => matches(want, input),
        None => true,
    }
}

/// Whether a step named in a test (`call`, or `each[2].call`) names the step whose history name is
/// `actual`.
pub fn step_matches(wanted: &str, actual: &str) -> bool {
    wanted == actual || wanted == base_step(actual)
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
