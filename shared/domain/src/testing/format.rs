//! Test files (`<flow>.test.yaml`) to [`TestFile`], with file, line, column and field path on every
//! problem, exactly like flow files.
//!
//! Parsing happens in two passes. [`parse_test_file`] reads the file on its own: keys, types, answer
//! shapes. [`TestFile::check`] then reads it against the loaded project: the flow exists, stubbed
//! steps and cards exist and do I/O, expectations name real steps, `event`/`started` only on event
//! flows.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::matching::base_step;
use super::project::{StepInfo, TestProject};
use crate::cards::{self, CardError, CardKind};
use crate::diag::Diagnostic;
use crate::flowfile::{self, Document};
use crate::model::{Location, Trigger};

/// A parsed test file.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFile {
    /// The file as named in diagnostics and reports.
    pub label: String,
    /// The flow under test: `flow:`, or the file name before `.test.yaml`.
    pub flow: String,
    /// File-wide defaults that cases may override.
    pub defaults: Defaults,
    /// The cases, in file order.
    pub cases: Vec<Case>,
    /// Position of every node, by field path (`cases[1].stubs[0].step`).
    pub locations: BTreeMap<String, Location>,
}

/// Settings shared by the cases of a file; a case's own value wins.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Defaults {
    /// The frozen time runs start at.
    pub now: Option<DateTime<Utc>>,
    /// Merged over the project's `vars` (top-level keys replace).
    pub vars: Map<String, Value>,
    /// Values of `secret('name')`.
    pub secrets: BTreeMap<String, String>,
}

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Unique in its file; `--filter` matches it.
    pub name: String,
    /// Field path of the case in its file (`cases[2]`).
    pub path: String,
    /// What starts the run.
    pub trigger: CaseTrigger,
    /// The case's own settings (`now`, `vars`, `secrets`).
    pub settings: Defaults,
    pub stubs: Vec<Stub>,
    pub expect: Expect,
}

/// The trigger input of a case.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseTrigger {
    /// `input:` (or nothing: `{}`), completed per trigger kind (see the crate docs).
    Input(Option<Value>),
    /// `event:` for event flows, with optional `delivery:` overrides of the envelope.
    Event {
        /// The System Log event, completed with `uuid`, `eventType` and `published` when missing.
        event: Map<String, Value>,
        /// Keys laid over the default delivery envelope.
        delivery: Map<String, Value>,
    },
}

/// An answer for card calls (or helper runs) that match it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stub {
    /// Field path of the stub (`cases[0].stubs[1]`).
    pub path: String,
    /// Matches calls made by this step (its id, or its history name such as `each[2].call`).
    pub step: Option<String>,
    /// Matches calls of this card (`http.request`, `flow.call` for helper runs).
    pub card: Option<String>,
    /// Matches calls whose input contains this (partial match).
    pub input: Option<Value>,
    /// The answers, in order. A stub with one `output` or `error` answers every call the same.
    pub answers: Vec<Answer>,
    /// Whether answers run out (`sequence:`) or the single answer repeats.
    pub sequence: bool,
}

impl Stub {
    /// How the stub reads in a warning: `stub #2 (step probe, card http.request)`.
    pub fn describe(&self, index: usize) -> String {
        let mut what = Vec::new();
        if let Some(step) = &self.step {
            what.push(format!("step {step}"));
        }
        if let Some(card) = &self.card {
            what.push(format!("card {card}"));
        }
        format!("stub #{} ({})", index + 1, what.join(", "))
    }
}

/// One stubbed answer: the card's output, or the error it fails with.
pub type Answer = Result<Value, CardError>;

/// What a case checks. Everything is optional; see [`Expect::status`] for the default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Expect {
    /// `succeeded` or `failed`. Defaults to `failed` when `error` is given, else `succeeded`.
    pub status: Option<String>,
    /// Event flows: whether the event passed the trigger's types and filter.
    pub started: Option<bool>,
    /// Partial match against the run's result `{status, headers, body}`.
    pub result: Option<Value>,
    /// Partial match against the run error `{code, message, step}`.
    pub error: Option<Value>,
    /// Step expectations by step name, in file order.
    pub steps: Vec<(String, StepExpect)>,
    pub calls: Vec<CallExpect>,
    /// Cards or steps that must not be called.
    pub not_called: Vec<String>,
}

/// Expectations on one step's history record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepExpect {
    /// `succeeded`, `failed` or `skipped`.
    pub status: Option<String>,
    /// Partial match against the recorded output.
    pub output: Option<Value>,
    /// Partial match against the rendered input.
    pub input: Option<Value>,
    /// Partial match against the step error `{code, message, status, detail}`.
    pub error: Option<Value>,
    /// Exact number of attempts (1 without retries).
    pub attempts: Option<u32>,
}

/// `calls: [{ card, step, input, count }]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallExpect {
    /// Calls of this card.
    pub card: Option<String>,
    /// Calls made by this step (id or history name).
    pub step: Option<String>,
    /// Calls whose input contains this (partial match).
    pub input: Option<Value>,
    /// Exact number of matching calls; `None` means at least one.
    pub count: Option<u64>,
}

pub(crate) const FILE_KEYS: &[&str] = &["flow", "now", "vars", "secrets", "cases"];
pub(crate) const CASE_KEYS: &[&str] = &[
    "name", "input", "event", "delivery", "now", "vars", "secrets", "stubs", "expect",
];
pub(crate) const STUB_KEYS: &[&str] = &["step", "card", "input", "output", "error", "sequence"];
pub(crate) const ANSWER_KEYS: &[&str] = &["output", "error"];
pub(crate) const ERROR_KEYS: &[&str] = &[
    "status",
    "code",
    "message",
    "body",
    "retry_after",
    "field",
    "retryable",
];
pub(crate) const EXPECT_KEYS: &[&str] = &[
    "status",
    "started",
    "return",
    "error",
    "steps",
    "calls",
    "not_called",
];
pub(crate) const STEP_EXPECT_KEYS: &[&str] = &["status", "output", "input", "error", "attempts"];
pub(crate) const CALL_KEYS: &[&str] = &["card", "step", "input", "count"];
pub(crate) const RETURN_KEYS: &[&str] = &["status", "headers", "body"];
pub(crate) const RUN_ERROR_KEYS: &[&str] = &["code", "message", "step"];
const RUN_STATUSES: &[&str] = &["succeeded", "failed"];
const STEP_STATUSES: &[&str] = &["succeeded", "failed", "skipped"];

/// The flow a test file tests by its name: `greet.test.yaml` tests `greet`.
pub fn flow_name_from_file(file: &str) -> Option<String> {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let lower = name.to_ascii_lowercase();
    [".test.yaml", ".test.yml", ".test.json"]
        .iter()
        .find(|ext| lower.ends_with(*ext))
        .map(|ext| name[..name.len() - ext.len()].to_owned())
        .filter(|stem| !stem.is_empty())
}

/// Parses one test file's text. `label` names the file in diagnostics and picks the format: JSON when
/// it ends in `.json`, YAML otherwise. Every problem is reported, not just the first.
pub fn parse_test_file(label: &str, source: &str) -> Result<TestFile, Vec<Diagnostic>> {
    let document = flowfile::parse_document(label, source)?;
    let mut reader = Reader {
        file: label,
        source: source.strip_prefix('\u{feff}').unwrap_or(source),
        doc: &document,
        errors: Vec::new(),
    };
    let file = reader.file(label);
    let mut errors = reader.errors;
    match file {
        Some(file) if errors.is_empty() => Ok(file),
        _ => {
            errors.sort_by_key(|d| (d.line, d.column));
            Err(errors)
        }
    }
}

struct Reader<'a> {
    file: &'a str,
    source: &'a str,
    doc: &'a Document,
    errors: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn location(&self, path: &str) -> Location {
        // A missing key has no position; its parent mapping does.
        let mut path = path;
        loop {
            if let Some(location) = self.doc.locations.get(path) {
                return *location;
            }
            match path.rfind(['.', '[']) {
                Some(cut) => path = &path[..cut],
                None => return self.doc.locations.get("").copied().unwrap_or_default(),
            }
        }
    }

    /// Where a key is written. The document keeps positions of values only, so the key is looked for
    /// before its value: on the value's line, or on the lines above it (a block value).
    fn key_location(&self, path: &str, key: &str) -> Location {
        let value = self.location(path);
        let lines: Vec<&str> = self.source.lines().collect();
        let first = usize::try_from(value.line).unwrap_or(0);
        for line_number in (1..=first).rev().take(20) {
            let Some(text) = lines.get(line_number - 1) else {
                continue;
            };
            let end = if line_number == first {
                let column = usize::try_from(value.column).unwrap_or(1).saturating_sub(1);
                text.char_indices()
                    .nth(column)
                    .map_or(text.len(), |(i, _)| i)
            } else {
                text.len()
            };
            let head = &text[..end];
            let found = [
                format!("{key}:"),
                format!("\"{key}\":"),
                format!("'{key}':"),
            ]
            .iter()
            .filter_map(|needle| head.rfind(needle.as_str()))
            .max();
            if let Some(at) = found {
                let column = head[..at].chars().count() + 1;
                return Location {
                    line: u32::try_from(line_number).unwrap_or(value.line),
                    column: u32::try_from(column).unwrap_or(1),
                };
            }
        }
        value
    }

    fn error(&mut self, path: &str, message: impl Into<String>) {
        let location = self.location(path);
        self.push(location, path, message);
    }

    /// An error about a key itself (unknown, or in conflict with another), placed at the key.
    fn key_error(&mut self, parent: &str, key: &str, message: impl Into<String>) {
        let path = key_path(parent, key);
        let location = self.key_location(&path, key);
        self.push(location, &path, message);
    }

    fn push(&mut self, location: Location, path: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            file: self.file.to_owned(),
            line: location.line,
            column: location.column,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// A mapping whose keys are all in `allowed`.
    fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = value else {
            self.error(path, format!("expected a mapping, got {}", describe(value)));
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let mut message = format!(
                    "unknown key `{key}`, expected one of {}",
                    allowed.join(", ")
                );
                if let Some(close) = flowfile::suggest(key, allowed.iter().copied()) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                self.key_error(path, key, message);
            }
        }
        Some(map)
    }

    fn text(&mut self, value: &Value, path: &str, what: &str) -> Option<String> {
        match value {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            other => {
                self.error(path, format!("expected {what}, got {}", describe(other)));
                None
            }
        }
    }

    fn choice(&mut self, value: &Value, path: &str, options: &[&str]) -> Option<String> {
        match value {
            Value::String(s) if options.contains(&s.as_str()) => Some(s.clone()),
            other => {
                let mut message = format!(
                    "expected one of {}, got {}",
                    options.join(", "),
                    describe(other)
                );
                if let Some(close) = other
                    .as_str()
                    .and_then(|s| flowfile::suggest(s, options.iter().copied()))
                {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                self.error(path, message);
                None
            }
        }
    }

    fn integer(&mut self, value: &Value, path: &str, min: u64) -> Option<u64> {
        match value.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                self.error(
                    path,
                    format!("expected a whole number ≥ {min}, got {}", describe(value)),
                );
                None
            }
        }
    }

    fn time(&mut self, value: &Value, path: &str) -> Option<DateTime<Utc>> {
        let parsed = value
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok());
        if parsed.is_none() {
            self.error(
                path,
                format!(
                    "expected an RFC 3339 date-time such as `2026-01-05T08:00:00Z`, got {}",
                    describe(value)
                ),
            );
        }
        parsed.map(|t| t.with_timezone(&Utc))
    }

    fn list<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match value {
            Value::Array(items) => Some(items),
            other => {
                self.error(path, format!("expected a list, got {}", describe(other)));
                None
            }
        }
    }

    fn file(&mut self, label: &str) -> Option<TestFile> {
        let root = self.object(&self.doc.value, "", FILE_KEYS)?;
        let flow = match root.get("flow") {
            Some(value) => self.text(value, "flow", "the name of the flow under test"),
            None => {
                let inferred = flow_name_from_file(label);
                if inferred.is_none() {
                    self.error(
                        "",
                        "missing required key `flow` (the name of the flow under test); it can be left out only in files named `<flow>.test.yaml`",
                    );
                }
                inferred
            }
        };
        let defaults = self.settings(root, "");
        let cases = match root.get("cases") {
            None => {
                self.error("", "missing required key `cases` (a list of test cases)");
                None
            }
            Some(value) => self.list(value, "cases").map(|items| {
                if items.is_empty() {
                    self.error("cases", "expected at least one case");
                }
                let mut names: BTreeMap<String, String> = BTreeMap::new();
                let mut cases = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    let path = format!("cases[{index}]");
                    if let Some(case) = self.case(item, &path) {
                        if let Some(first) = names.get(&case.name) {
                            let message = format!(
                                "duplicate case name `{}` (first at {first}); names pick cases with --filter and in reports",
                                case.name
                            );
                            self.error(&key_path(&path, "name"), message);
                        } else {
                            let line = self.location(&path).line;
                            names.insert(case.name.clone(), format!("line {line}"));
                        }
                        cases.push(case);
                    }
                }
                cases
            }),
        };
        Some(TestFile {
            label: label.to_owned(),
            flow: flow?,
            defaults: defaults?,
            cases: cases?,
            locations: self.doc.locations.clone(),
        })
    }

    fn settings(&mut self, map: &Map<String, Value>, path: &str) -> Option<Defaults> {
        let mut ok = true;
        let mut settings = Defaults::default();
        if let Some(value) = map.get("now") {
            settings.now = self.time(value, &key_path(path, "now"));
            ok &= settings.now.is_some();
        }
        if let Some(value) = map.get("vars") {
            match value {
                Value::Object(vars) => settings.vars = vars.clone(),
                other => {
                    let message =
                        format!("expected a mapping of variables, got {}", describe(other));
                    self.error(&key_path(path, "vars"), message);
                    ok = false;
                }
            }
        }
        if let Some(value) = map.get("secrets") {
            let secrets_path = key_path(path, "secrets");
            match value {
                Value::Object(secrets) => {
                    for (name, value) in secrets {
                        match value {
                            Value::String(text) => {
                                settings.secrets.insert(name.clone(), text.clone());
                            }
                            other => {
                                let message = format!(
                                    "expected the secret's test value as text, got {}",
                                    describe(other)
                                );
                                self.error(&key_path(&secrets_path, name), message);
                                ok = false;
                            }
                        }
                    }
                }
                other => {
                    let message = format!(
                        "expected a mapping of secret names to test values, got {}",
                        describe(other)
                    );
                    self.error(&secrets_path, message);
                    ok = false;
                }
            }
        }
        ok.then_some(settings)
    }

    fn case(&mut self, value: &Value, path: &str) -> Option<Case> {
        let map = self.object(value, path, CASE_KEYS)?;
        let errors_before = self.errors.len();
        let name = match map.get("name") {
            Some(value) => self.text(value, &key_path(path, "name"), "a case name"),
            None => {
                self.error(path, "missing required key `name` (what the case checks)");
                None
            }
        };
        let trigger = match (map.get("input"), map.get("event")) {
            (Some(_), Some(_)) => {
                self.key_error(
                    path,
                    "event",
                    "a case has `input` or `event`, not both: `event` is for event flows, whose input is built from it",
                );
                None
            }
            (_, Some(event)) => {
                let event = match event {
                    Value::Object(event) => Some(event.clone()),
                    other => {
                        let message = format!(
                            "expected the Okta System Log event as a mapping, got {}",
                            describe(other)
                        );
                        self.error(&key_path(path, "event"), message);
                        None
                    }
                };
                let delivery = match map.get("delivery") {
                    None => Some(Map::new()),
                    Some(Value::Object(d)) => Some(d.clone()),
                    Some(other) => {
                        let message = format!(
                            "expected a mapping of envelope fields, got {}",
                            describe(other)
                        );
                        self.error(&key_path(path, "delivery"), message);
                        None
                    }
                };
                match (event, delivery) {
                    (Some(event), Some(delivery)) => Some(CaseTrigger::Event { event, delivery }),
                    _ => None,
                }
            }
            (input, None) => {
                if map.contains_key("delivery") {
                    self.key_error(
                        path,
                        "delivery",
                        "`delivery` goes with `event` (event flows only)",
                    );
                }
                Some(CaseTrigger::Input(input.cloned()))
            }
        };
        let settings = self.settings(map, path);
        let stubs = match map.get("stubs") {
            None | Some(Value::Null) => Some(Vec::new()),
            Some(value) => {
                let stubs_path = key_path(path, "stubs");
                self.list(value, &stubs_path).map(|items| {
                    items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, item)| self.stub(item, &format!("{stubs_path}[{i}]")))
                        .collect::<Vec<_>>()
                })
            }
        };
        let expect = match map.get("expect") {
            None | Some(Value::Null) => Some(Expect::default()),
            Some(value) => self.expect(value, &key_path(path, "expect")),
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Case {
            name: name?,
            path: path.to_owned(),
            trigger: trigger?,
            settings: settings?,
            stubs: stubs?,
            expect: expect?,
        })
    }

    fn stub(&mut self, value: &Value, path: &str) -> Option<Stub> {
        let map = self.object(value, path, STUB_KEYS)?;
        let errors_before = self.errors.len();
        let step = map
            .get("step")
            .and_then(|v| self.text(v, &key_path(path, "step"), "a step id"));
        let card = map
            .get("card")
            .and_then(|v| self.text(v, &key_path(path, "card"), "a card name"));
        if !map.contains_key("step") && !map.contains_key("card") {
            self.error(
                path,
                "a stub needs `step` (a step id) or `card` (a card name) to say which calls it answers",
            );
        }
        let input = map.get("input").cloned();
        let given: Vec<&str> = ["output", "error", "sequence"]
            .into_iter()
            .filter(|k| map.contains_key(*k))
            .collect();
        let mut sequence = false;
        let answers = match given.as_slice() {
            [] => {
                self.error(
                    path,
                    "a stub needs one answer: `output`, `error` or `sequence` (answers for successive calls)",
                );
                None
            }
            [_, second, ..] => {
                self.key_error(
                    path,
                    second,
                    format!(
                        "a stub has one of `output`, `error` or `sequence`, not both `{}` and `{second}`",
                        given[0]
                    ),
                );
                None
            }
            ["sequence"] => {
                sequence = true;
                let seq_path = key_path(path, "sequence");
                self.list(&map["sequence"], &seq_path).and_then(|items| {
                    if items.is_empty() {
                        self.error(&seq_path, "expected at least one answer");
                        return None;
                    }
                    let answers: Vec<Option<Answer>> = items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.answer(item, &format!("{seq_path}[{i}]")))
                        .collect();
                    answers.into_iter().collect::<Option<Vec<_>>>()
                })
            }
            _ => self.answer_of(map, path).map(|a| vec![a]),
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Stub {
            path: path.to_owned(),
            step,
            card,
            input,
            answers: answers?,
            sequence,
        })
    }

    /// One item of a `sequence`: `{ output: ... }` or `{ error: ... }`.
    fn answer(&mut self, value: &Value, path: &str) -> Option<Answer> {
        let map = self.object(value, path, ANSWER_KEYS)?;
        if map.len() != 1 {
            self.error(
                path,
                "each answer of a sequence has exactly one of `output` or `error`",
            );
            return None;
        }
        self.answer_of(map, path)
    }

    fn answer_of(&mut self, map: &Map<String, Value>, path: &str) -> Option<Answer> {
        if let Some(output) = map.get("output") {
            return Some(Ok(output.clone()));
        }
        let error = map.get("error")?;
        self.card_error(error, &key_path(path, "error")).map(Err)
    }

    fn card_error(&mut self, value: &Value, path: &str) -> Option<CardError> {
        let map = self.object(value, path, ERROR_KEYS)?;
        let message = match map.get("message") {
            None => None,
            Some(v) => Some(self.text(v, &key_path(path, "message"), "a message")?),
        };
        let retry_after = match map.get("retry_after") {
            None => None,
            Some(v) => {
                let p = key_path(path, "retry_after");
                let parsed = match v {
                    Value::String(s) => crate::duration::parse(s),
                    Value::Number(n) => n
                        .as_f64()
                        .filter(|f| *f >= 0.0 && f.is_finite())
                        .map(std::time::Duration::from_secs_f64)
                        .ok_or_else(|| "expected a duration".to_owned()),
                    other => Err(format!(
                        "expected a duration such as `2s`, got {}",
                        describe(other)
                    )),
                };
                match parsed {
                    Ok(d) => Some(d),
                    Err(problem) => {
                        self.error(&p, problem);
                        return None;
                    }
                }
            }
        };
        if let Some(status) = map.get("status") {
            let status_path = key_path(path, "status");
            let status = match status.as_u64().and_then(|s| u16::try_from(s).ok()) {
                Some(s) if (100..=599).contains(&s) => s,
                _ => {
                    let message = format!(
                        "expected an HTTP status between 100 and 599, got {}",
                        describe(status)
                    );
                    self.error(&status_path, message);
                    return None;
                }
            };
            if let Some(code) = map.get("code").and_then(Value::as_str)
                && code != "http_status"
            {
                let message = format!(
                    "an error with `status` is an HTTP error (code `http_status`); leave out `code: {code}` or `status`"
                );
                self.key_error(path, "code", message);
                return None;
            }
            for key in ["field", "retryable"] {
                if map.contains_key(key) {
                    self.key_error(
                        path,
                        key,
                        format!("`{key}` does not apply to an HTTP error (`status`)"),
                    );
                    return None;
                }
            }
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            return Some(CardError::Status {
                status,
                message: message.unwrap_or_else(|| {
                    format!("stub answered {status} {reason}").trim().to_owned()
                }),
                detail: map.get("body").cloned(),
                retry_after,
            });
        }
        let Some(code) = map.get("code") else {
            self.error(
                path,
                "an error needs `status` (an HTTP error, such as 429) or `code` (`network`, `timeout`, `invalid_input` or your own)",
            );
            return None;
        };
        let code = self.text(code, &key_path(path, "code"), "an error code")?;
        let only_for = |key: &str| -> Option<&'static str> {
            match key {
                "body" | "retry_after" => Some("an HTTP error (`status`)"),
                "field" if code != "invalid_input" => Some("`code: invalid_input`"),
                "retryable" if matches!(code.as_str(), "network" | "timeout" | "invalid_input") => {
                    Some("errors with your own `code`")
                }
                _ => None,
            }
        };
        for key in map.keys() {
            if let Some(applies) = only_for(key) {
                self.key_error(path, key, format!("`{key}` applies only to {applies}"));
                return None;
            }
        }
        Some(match code.as_str() {
            "network" => {
                CardError::Network(message.unwrap_or_else(|| "stubbed network error".into()))
            }
            // The step's own timeout goes in when the stub answers (see the runner).
            "timeout" => CardError::Timeout(std::time::Duration::ZERO),
            "invalid_input" => CardError::InvalidInput {
                field: match map.get("field") {
                    None => String::new(),
                    Some(v) => self.text(v, &key_path(path, "field"), "a field name")?,
                },
                message: message.unwrap_or_else(|| "stubbed invalid input".into()),
            },
            "http_status" => {
                self.error(
                    path,
                    "an error with code `http_status` needs `status` (such as 404)",
                );
                return None;
            }
            _ => CardError::Failed {
                message: message.unwrap_or_else(|| format!("stubbed {code} error")),
                code,
                retryable: match map.get("retryable") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        let message = format!("expected true or false, got {}", describe(other));
                        self.error(&key_path(path, "retryable"), message);
                        return None;
                    }
                },
            },
        })
    }

    fn expect(&mut self, value: &Value, path: &str) -> Option<Expect> {
        let map = self.object(value, path, EXPECT_KEYS)?;
        let errors_before = self.errors.len();
        let mut expect = Expect::default();
        if let Some(v) = map.get("status") {
            expect.status = self.choice(v, &key_path(path, "status"), RUN_STATUSES);
        }
        if let Some(v) = map.get("started") {
            match v {
                Value::Bool(b) => expect.started = Some(*b),
                other => {
                    let message = format!("expected true or false, got {}", describe(other));
                    self.error(&key_path(path, "started"), message);
                }
            }
        }
        if let Some(v) = map.get("return") {
            let p = key_path(path, "return");
            if self.object(v, &p, RETURN_KEYS).is_some() {
                expect.result = Some(v.clone());
            }
        }
        if let Some(v) = map.get("error") {
            let p = key_path(path, "error");
            if self.object(v, &p, RUN_ERROR_KEYS).is_some() {
                expect.error = Some(v.clone());
            }
        }
        if let Some(v) = map.get("steps") {
            let p = key_path(path, "steps");
            if let Value::Object(steps) = v {
                for (name, value) in steps {
                    if let Some(step) = self.step_expect(value, &key_path(&p, name)) {
                        expect.steps.push((name.clone(), step));
                    }
                }
            } else {
                let message = format!(
                    "expected a mapping of step ids to expectations, got {}",
                    describe(v)
                );
                self.error(&p, message);
            }
        }
        if let Some(v) = map.get("calls") {
            let p = key_path(path, "calls");
            if let Some(items) = self.list(v, &p) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(call) = self.call_expect(item, &format!("{p}[{i}]")) {
                        expect.calls.push(call);
                    }
                }
            }
        }
        if let Some(v) = map.get("not_called") {
            let p = key_path(path, "not_called");
            if let Some(items) = self.list(v, &p) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(name) =
                        self.text(item, &format!("{p}[{i}]"), "a card name or step id")
                    {
                        expect.not_called.push(name);
                    }
                }
            }
        }
        if expect.started == Some(false) {
            for key in ["status", "return", "error", "steps", "calls", "not_called"] {
                if map.contains_key(key) {
                    self.key_error(
                        path,
                        key,
                        format!("`{key}` cannot be checked with `started: false`: no run starts"),
                    );
                }
            }
        }
        if let (Some(status), Some(_)) = (&expect.status, &expect.error)
            && status != "failed"
        {
            self.key_error(
                path,
                "error",
                format!("`error` describes a failed run, but `status` is `{status}`"),
            );
        }
        if let (Some(_), Some(_)) = (&expect.result, &expect.error) {
            self.key_error(
                path,
                "return",
                "`return` describes a run that succeeded and `error` one that failed; keep one",
            );
        }
        (self.errors.len() == errors_before).then_some(expect)
    }

    fn step_expect(&mut self, value: &Value, path: &str) -> Option<StepExpect> {
        let map = self.object(value, path, STEP_EXPECT_KEYS)?;
        let mut step = StepExpect {
            output: map.get("output").cloned(),
            input: map.get("input").cloned(),
            error: map.get("error").cloned(),
            ..StepExpect::default()
        };
        if let Some(v) = map.get("status") {
            step.status = Some(self.choice(v, &key_path(path, "status"), STEP_STATUSES)?);
        }
        if let Some(v) = map.get("attempts") {
            let n = self.integer(v, &key_path(path, "attempts"), 1)?;
            step.attempts = Some(u32::try_from(n).unwrap_or(u32::MAX));
        }
        Some(step)
    }

    fn call_expect(&mut self, value: &Value, path: &str) -> Option<CallExpect> {
        let map = self.object(value, path, CALL_KEYS)?;
        let mut call = CallExpect {
            input: map.get("input").cloned(),
            ..CallExpect::default()
        };
        if let Some(v) = map.get("card") {
            call.card = Some(self.text(v, &key_path(path, "card"), "a card name")?);
        }
        if let Some(v) = map.get("step") {
            call.step = Some(self.text(v, &key_path(path, "step"), "a step id")?);
        }
        if call.card.is_none() && call.step.is_none() {
            self.error(path, "a call needs `card` or `step`");
            return None;
        }
        if let Some(v) = map.get("count") {
            call.count = Some(self.integer(v, &key_path(path, "count"), 0)?);
        }
        Some(call)
    }
}

fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => {
            let head: String = s.chars().take(40).collect();
            if s.chars().count() > 40 {
                format!("`{head}…`")
            } else {
                format!("`{head}`")
            }
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

impl TestFile {
    /// The diagnostic for a field path of this file.
    pub fn diagnostic(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let mut probe = path;
        let location = loop {
            if let Some(l) = self.locations.get(probe) {
                break *l;
            }
            match probe.rfind(['.', '[']) {
                Some(cut) => probe = &probe[..cut],
                None => break self.locations.get("").copied().unwrap_or_default(),
            }
        };
        Diagnostic {
            file: self.label.clone(),
            line: location.line,
            column: location.column,
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// Checks the file against the project: the flow exists and loads, stubs name steps and cards that
    /// do I/O, expectations name steps that exist, and event-only keys are used on event flows.
    pub fn check(&self, project: &TestProject) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let flow_path = if self.locations.contains_key("flow") {
            "flow"
        } else {
            ""
        };
        let Some(flow) = project.flow(&self.flow) else {
            let message = if project.failed_to_load(&self.flow) {
                format!(
                    "flow `{}` has errors (shown above); fix them to run its tests",
                    self.flow
                )
            } else {
                let mut message = format!("unknown flow `{}`", self.flow);
                if let Some(close) = flowfile::suggest(&self.flow, project.flow_names()) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                } else if flow_path.is_empty() {
                    message.push_str(" (named after the file; set `flow:` to test another flow)");
                }
                message
            };
            out.push(self.diagnostic(flow_path, message));
            return out;
        };
        let is_event = matches!(flow.flow.trigger, Trigger::Event(_));
        let steps = project.steps_reachable_from(&self.flow);
        let own_steps = project.steps_of(&self.flow);
        for case in &self.cases {
            match (&case.trigger, is_event) {
                (CaseTrigger::Event { .. }, false) => out.push(self.diagnostic(
                    &key_path(&case.path, "event"),
                    format!(
                        "`event` is for event flows; flow `{}` has a `{}` trigger, so give its `input`",
                        self.flow,
                        flow.flow.trigger.kind()
                    ),
                )),
                (CaseTrigger::Input(_), true) => out.push(self.diagnostic(
                    &case.path,
                    format!(
                        "flow `{}` is started by Okta events: give the System Log `event` (its input is built from it)",
                        self.flow
                    ),
                )),
                _ => {}
            }
            if let (Trigger::Api(_), CaseTrigger::Input(Some(input))) =
                (&flow.flow.trigger, &case.trigger)
            {
                let request_keys = ["method", "body", "query", "headers"];
                let stray: Vec<&str> = match input {
                    Value::Object(map) => map
                        .keys()
                        .map(String::as_str)
                        .filter(|k| !request_keys.contains(k))
                        .collect(),
                    _ => vec!["(not a mapping)"],
                };
                if !stray.is_empty() {
                    out.push(self.diagnostic(
                        &key_path(&case.path, "input"),
                        format!(
                            "flow `{}` is an API endpoint: its input is the request (`method`, `body`, `query`, `headers`), not `{}`; put the request body under `body`",
                            self.flow,
                            stray.join("`, `")
                        ),
                    ));
                }
            }
            if case.expect.started.is_some() && !is_event {
                out.push(self.diagnostic(
                    &format!("{}.expect.started", case.path),
                    "`started` applies to event flows, whose filter decides whether a run starts",
                ));
            }
            for stub in &case.stubs {
                self.check_stub(stub, &steps, &mut out);
            }
            for (name, _) in &case.expect.steps {
                if !own_steps.contains_key(base_step(name)) {
                    let path = format!("{}.expect.steps.{name}", case.path);
                    out.push(self.diagnostic(
                        &path,
                        unknown_step_message(name, &self.flow, own_steps.keys(), false),
                    ));
                }
            }
            for (i, call) in case.expect.calls.iter().enumerate() {
                let path = format!("{}.expect.calls[{i}]", case.path);
                if let Some(card) = &call.card
                    && let Some(message) = unknown_card_message(card)
                {
                    out.push(self.diagnostic(&key_path(&path, "card"), message));
                }
                if let Some(step) = &call.step
                    && !steps.contains_key(base_step(step))
                {
                    out.push(self.diagnostic(
                        &key_path(&path, "step"),
                        unknown_step_message(step, &self.flow, steps.keys(), true),
                    ));
                }
            }
            for (i, name) in case.expect.not_called.iter().enumerate() {
                let is_card = cards::lookup(name).is_some();
                if !is_card && !steps.contains_key(base_step(name)) {
                    let path = format!("{}.expect.not_called[{i}]", case.path);
                    let mut message = format!(
                        "`{name}` is neither a card nor a step of flow `{}`",
                        self.flow
                    );
                    let names: Vec<&str> = steps
                        .keys()
                        .map(String::as_str)
                        .chain(cards::registry().iter().map(|c| c.name))
                        .collect();
                    if let Some(close) = flowfile::suggest(name, names) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    out.push(self.diagnostic(&path, message));
                }
            }
        }
        out
    }

    fn check_stub(
        &self,
        stub: &Stub,
        steps: &BTreeMap<String, StepInfo>,
        out: &mut Vec<Diagnostic>,
    ) {
        if let Some(card) = &stub.card {
            let path = key_path(&stub.path, "card");
            match cards::lookup(card) {
                None => {
                    out.push(self.diagnostic(&path, unknown_card_message(card).unwrap_or_default()))
                }
                Some(spec) => match spec.kind {
                    CardKind::Io => {}
                    CardKind::Flow if spec.name == "flow.call" => {}
                    CardKind::Flow => out.push(self.diagnostic(
                        &path,
                        format!("`{card}` is handled by the engine itself and cannot be stubbed"),
                    )),
                    CardKind::Pure(_) => out.push(self.diagnostic(&path, pure_card_message(card))),
                },
            }
        }
        if let Some(step) = &stub.step {
            let path = key_path(&stub.path, "step");
            match steps.get(base_step(step)) {
                None => out.push(self.diagnostic(
                    &path,
                    unknown_step_message(step, &self.flow, steps.keys(), true),
                )),
                Some(StepInfo::Card(card)) => match cards::lookup(card).map(|c| c.kind) {
                    Some(CardKind::Pure(_)) => out.push(self.diagnostic(
                        &path,
                        format!("step `{step}` runs {}", pure_card_message(card)),
                    )),
                    Some(CardKind::Flow) if card != "flow.call" => out.push(self.diagnostic(
                        &path,
                        format!("step `{step}` is `{card}`, which the engine handles itself; only card calls and helper runs can be stubbed"),
                    )),
                    _ => {
                        if let Some(stub_card) = &stub.card
                            && stub_card != card
                        {
                            out.push(self.diagnostic(
                                &key_path(&stub.path, "card"),
                                format!("step `{step}` calls `{card}`, not `{stub_card}`"),
                            ));
                        }
                    }
                },
                Some(StepInfo::HelperLoop) => {
                    if let Some(stub_card) = &stub.card
                        && stub_card != "flow.call"
                    {
                        out.push(self.diagnostic(
                            &key_path(&stub.path, "card"),
                            format!("step `{step}` runs a helper flow per item (card `flow.call`), not `{stub_card}`"),
                        ));
                    }
                }
                Some(StepInfo::Control(keyword)) => out.push(self.diagnostic(
                    &path,
                    format!("step `{step}` is a `{keyword}` step; stubs answer card calls and helper runs"),
                )),
            }
        }
    }
}

fn pure_card_message(card: &str) -> String {
    format!(
        "`{card}`, a pure card: it always runs for real, since it only computes from its input and the time (set `now:` to fix the time, stub the cards that feed it)"
    )
}

fn unknown_card_message(card: &str) -> Option<String> {
    if cards::lookup(card).is_some() {
        return None;
    }
    let mut message = format!("unknown card `{card}`");
    if let Some(close) = flowfile::suggest(card, cards::registry().iter().map(|c| c.name)) {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    Some(message)
}

fn unknown_step_message<'a>(
    step: &str,
    flow: &str,
    known: impl Iterator<Item = &'a String>,
    with_helpers: bool,
) -> String {
    let known: BTreeSet<&str> = known.map(String::as_str).collect();
    let mut message = if with_helpers {
        format!("no step `{step}` in flow `{flow}` or the helper flows it runs")
    } else {
        format!("no step `{step}` in flow `{flow}`")
    };
    if let Some(close) = flowfile::suggest(base_step(step), known.iter().copied()) {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    message
}
