//! Decoding a flow file's tree into [`Flow`], reporting every problem with its field path.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::check::{
    Ctx, Fields, boolean, choice, duration, fields, flow_name_problem, identifier_problem, integer,
    is_template, list, mapping, nonempty_text, number, one_of_message, size, suggest, template,
    text, unknown_key,
};
use super::tree::{Node, NodeValue, index_path, key_path, preview};
use crate::cards::{CardSpec, FieldSpec};
use crate::model::{
    DelegatedInput, Flow, FlowLimits, HistoryMode, InputType, Location, LoopBody, LoopStep,
    OnError, RetryOn, RetryPolicy, ScheduleTrigger, Step, StepKind, Trigger,
};

pub(crate) const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "trigger",
    "history",
    "timeout",
    "limits",
    "steps",
];
pub(crate) const INPUT_TYPES: &[&str] = &[
    "text", "number", "datetime", "boolean", "object", "list", "any",
];
const SCALAR_INPUT_TYPES: &[&str] = &["text", "number", "datetime", "boolean"];

/// Every key a step may have, whatever its kind.
pub(crate) const STEP_KEYS: &[&str] = &[
    "id",
    "card",
    "with",
    "if",
    "then",
    "else",
    "continue_if",
    "for_each",
    "map",
    "as",
    "concurrency",
    "steps",
    "flow",
    "try",
    "catch",
    "wait",
    "wait_until",
    "retry",
    "timeout",
    "on_error",
];

/// The keys that decide what a step is. `then`/`else` both mean an `if` step.
const STEP_KINDS: &[&str] = &[
    "card",
    "then",
    "else",
    "continue_if",
    "for_each",
    "map",
    "try",
    "wait",
    "wait_until",
];

/// A name another file must provide, and where this file mentions it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reference {
    pub(crate) name: String,
    pub(crate) location: Location,
    pub(crate) path: String,
}

/// What the cross-file checks need from a flow file, gathered even when the file has errors.
#[derive(Debug, Default)]
pub(crate) struct FlowFacts {
    pub(crate) name: Option<Reference>,
    /// The trigger kind as written (`manual` when absent).
    pub(crate) trigger_kind: Option<String>,
    /// Flows this one calls (`flow.call` with a literal `flow`, loops with `flow:`).
    pub(crate) calls: Vec<Reference>,
    /// Delegated `callers`.
    pub(crate) callers: Vec<Reference>,
    /// `auth: token` with no `token:`, which needs `api.tokens.<flow>` in `idflow.yaml`.
    pub(crate) config_token: Option<Reference>,
}

/// Decodes a whole flow. Returns the flow only when nothing was reported.
pub(crate) fn decode_flow(
    ctx: &mut Ctx,
    root: &Node,
    version: String,
) -> (Option<Flow>, FlowFacts) {
    let mut decoder = FlowDecoder {
        ctx,
        facts: FlowFacts::default(),
        ids: HashMap::new(),
    };
    let flow = decoder.flow(root, version);
    let flow = flow.filter(|_| decoder.ctx.is_clean());
    (flow, decoder.facts)
}

/// Reads one flow file's tree; the trigger kinds' modules read their `trigger:` settings through it
/// ([`crate::triggers`]), reporting to its diagnostics and facts.
pub(crate) struct FlowDecoder<'c> {
    pub(crate) ctx: &'c mut Ctx,
    pub(crate) facts: FlowFacts,
    /// Step ids seen so far, across every nested list, with where each was first written.
    ids: HashMap<String, Location>,
}

impl FlowDecoder<'_> {
    fn flow(&mut self, root: &Node, version: String) -> Option<Flow> {
        if root.value == NodeValue::Null {
            self.ctx.error(
                root.location,
                "",
                "the file is empty; a flow needs at least `name:` and `steps:`",
            );
            return None;
        }
        let top = fields(self.ctx, root, "", TOP_KEYS)?;
        let name = top
            .required(self.ctx, "name", "a flow name such as `badge-access`")
            .and_then(|node| {
                let name = text(self.ctx, node, "name")?;
                if let Some(problem) = flow_name_problem(&name) {
                    self.ctx.error(node.location, "name", problem);
                    return None;
                }
                self.facts.name = Some(Reference {
                    name: name.clone(),
                    location: node.location,
                    path: "name".into(),
                });
                Some(name)
            });
        let description = match top.get("description") {
            None => Some(None),
            Some(node) => text(self.ctx, node, "description").map(Some),
        };
        let trigger = match top.get("trigger") {
            None => {
                self.facts.trigger_kind = Some("manual".into());
                Some(Trigger::Manual)
            }
            Some(node) => self.trigger(node),
        };
        let history = match top.get("history") {
            None => Some(HistoryMode::All),
            Some(node) => {
                choice(self.ctx, node, "history", &["all", "errors", "none"]).map(|h| match h {
                    "errors" => HistoryMode::Errors,
                    "none" => HistoryMode::None,
                    _ => HistoryMode::All,
                })
            }
        };
        let timeout = match top.get("timeout") {
            None => Some(None),
            Some(node) => {
                duration(self.ctx, node, "timeout", Duration::from_secs(1), None).map(Some)
            }
        };
        let limits = match top.get("limits") {
            None => Some(FlowLimits::default()),
            Some(node) => self.limits(node),
        };
        let steps = top
            .required(self.ctx, "steps", "a list of steps")
            .and_then(|node| self.steps(node, "steps", "s", true));
        match (name, description, trigger, history, timeout, limits, steps) {
            (
                Some(name),
                Some(description),
                Some(trigger),
                Some(history),
                Some(timeout),
                Some(limits),
                Some(steps),
            ) => Some(Flow {
                name,
                description,
                trigger,
                history,
                timeout,
                limits,
                steps,
                version,
            }),
            _ => None,
        }
    }

    /// `limits: { memory, render }`.
    fn limits(&mut self, node: &Node) -> Option<FlowLimits> {
        let limits = fields(self.ctx, node, "limits", &["memory", "render"])?;
        let clean = self.ctx.diagnostics.len();
        let mut read = |key: &str, min: u64, max: u64| {
            limits
                .get(key)
                .and_then(|node| size(self.ctx, node, &limits.path_of(key), min, max))
        };
        let memory = read("memory", 1 << 20, 4 << 30);
        let render = read("render", 1 << 10, 1 << 30);
        (self.ctx.diagnostics.len() == clean).then_some(FlowLimits { memory, render })
    }

    fn trigger(&mut self, node: &Node) -> Option<Trigger> {
        if node.value == NodeValue::String("manual".into()) {
            self.facts.trigger_kind = Some("manual".into());
            return Some(Trigger::Manual);
        }
        // The kinds written as `trigger: { <kind>: ... }`: every kind but manual, which is the
        // absence of `trigger:` (or `trigger: manual`).
        let names: Vec<&str> = Trigger::KINDS
            .iter()
            .map(|kind| kind.name)
            .filter(|name| *name != Trigger::Manual.kind())
            .collect();
        let trigger = fields(self.ctx, node, "trigger", &names)?;
        let kinds: Vec<_> = trigger
            .entries
            .iter()
            .filter(|e| names.contains(&e.key.as_str()))
            .collect();
        let Some(first) = kinds.first() else {
            if trigger.entries.is_empty() {
                let message = format!(
                    "expected one trigger: one of {} (or no `trigger:` for manual runs)",
                    names.join(", ")
                );
                self.ctx.error(node.location, "trigger", message);
            }
            return None;
        };
        if let Some(second) = kinds.get(1) {
            let message = format!(
                "a flow has one trigger, this one has `{}` and `{}`",
                first.key, second.key
            );
            self.ctx
                .error(second.key_location, &trigger.path_of(&second.key), message);
            return None;
        }
        self.facts.trigger_kind = Some(first.key.clone());
        let path = trigger.path_of(&first.key);
        let body = &first.value;
        match Trigger::decode(self, &first.key, body, &path) {
            Some(trigger) => trigger,
            // A kind in `Trigger::KINDS` this parser cannot read yet: refuse it rather than guess.
            None => {
                let message = format!("trigger `{}` cannot be written in flow files", first.key);
                self.ctx.error(first.key_location, &path, message);
                None
            }
        }
    }

    fn schedule(&mut self, node: &Node, path: &str) -> Option<ScheduleTrigger> {
        const KINDS: &[&str] = &["cron", "rate", "at"];
        let schedule = fields(self.ctx, node, path, &["cron", "rate", "at", "timezone"])?;
        let timezone = match schedule.get("timezone") {
            None => Some(None),
            Some(node) => {
                let path = schedule.path_of("timezone");
                nonempty_text(self.ctx, node, &path).and_then(|zone| {
                    if zone.parse::<crate::datetime::Zone>().is_ok() {
                        Some(Some(zone))
                    } else {
                        let mut message = format!(
                            "unknown time zone `{}`, expected an IANA name such as Europe/Paris",
                            preview(&zone)
                        );
                        let names = crate::datetime::Zone::names();
                        if let Some(close) = suggest(&zone, names.iter().map(String::as_str)) {
                            message.push_str(&format!("; did you mean `{close}`?"));
                        }
                        self.ctx.error(node.location, &path, message);
                        None
                    }
                })
            }
        };
        let written: Vec<_> = schedule
            .entries
            .iter()
            .filter(|e| KINDS.contains(&e.key.as_str()))
            .collect();
        let Some(entry) = written.first() else {
            self.ctx.error(
                schedule.location,
                path,
                "missing the schedule: one of `cron`, `rate` or `at`",
            );
            return None;
        };
        if let Some(second) = written.get(1) {
            let message = format!(
                "use one of `cron`, `rate` or `at`, not both `{}` and `{}`",
                entry.key, second.key
            );
            self.ctx
                .error(second.key_location, &schedule.path_of(&second.key), message);
            return None;
        }
        let value_path = schedule.path_of(&entry.key);
        let value = nonempty_text(self.ctx, &entry.value, &value_path)?;
        let value = value.trim();
        let prefix = format!("{}(", entry.key);
        let expression = if value.starts_with(&prefix) && value.ends_with(')') {
            value.to_owned()
        } else {
            format!("{}({value})", entry.key)
        };
        let zone = timezone.as_ref().and_then(|z| z.as_deref());
        if let Err(error) = crate::schedule::Schedule::parse(&expression, zone) {
            self.ctx.error(
                entry.value.location,
                &value_path,
                format!("invalid schedule `{expression}`: {error}"),
            );
            return None;
        }
        Some(ScheduleTrigger {
            expression,
            timezone: timezone?,
        })
    }

    /// Reads `trigger: { schedule: ... }` for [`crate::triggers::schedule`].
    pub(crate) fn schedule_trigger(&mut self, node: &Node, path: &str) -> Option<ScheduleTrigger> {
        self.schedule(node, path)
    }

    /// `name: type` or `name: { type, required, description }`: the inputs a helper or delegated
    /// trigger declares (`scalar_only` for delegated ones).
    pub(crate) fn inputs(
        &mut self,
        node: &Node,
        path: &str,
        scalar_only: bool,
    ) -> Option<BTreeMap<String, DelegatedInput>> {
        let inputs = mapping(self.ctx, node, path)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for entry in inputs.entries {
            let input_path = inputs.path_of(&entry.key);
            if let Some(problem) = identifier_problem(&entry.key, "input name") {
                self.ctx.error(entry.key_location, &input_path, problem);
                ok = false;
                continue;
            }
            match self.input(&entry.value, &input_path, scalar_only) {
                Some(input) => {
                    out.insert(entry.key.clone(), input);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn input(&mut self, node: &Node, path: &str, scalar_only: bool) -> Option<DelegatedInput> {
        let (type_node, type_path, declaration) = match &node.value {
            NodeValue::Map(_) => {
                let declaration =
                    fields(self.ctx, node, path, &["type", "required", "description"])?;
                let type_node =
                    declaration.required(self.ctx, "type", "an input type such as `text`")?;
                (type_node, declaration.path_of("type"), Some(declaration))
            }
            _ => (node, path.to_owned(), None),
        };
        let kind = self.input_type(type_node, &type_path, scalar_only);
        let required = match declaration.as_ref().and_then(|d| d.get("required")) {
            None => Some(true),
            Some(node) => boolean(self.ctx, node, &key_path(path, "required")),
        };
        let description = match declaration.as_ref().and_then(|d| d.get("description")) {
            None => Some(None),
            Some(node) => text(self.ctx, node, &key_path(path, "description")).map(Some),
        };
        Some(DelegatedInput {
            kind: kind?,
            required: required?,
            description: description?,
        })
    }

    fn input_type(&mut self, node: &Node, path: &str, scalar_only: bool) -> Option<InputType> {
        if scalar_only
            && let NodeValue::String(text) = &node.value
            && matches!(text.as_str(), "object" | "list" | "any")
        {
            let message = format!(
                "delegated inputs take scalar types only (text, number, datetime, boolean), got `{text}`"
            );
            self.ctx.error(node.location, path, message);
            return None;
        }
        let options = if scalar_only {
            SCALAR_INPUT_TYPES
        } else {
            INPUT_TYPES
        };
        Some(match choice(self.ctx, node, path, options)? {
            "text" => InputType::Text,
            "number" => InputType::Number,
            "datetime" => InputType::Datetime,
            "boolean" => InputType::Boolean,
            "object" => InputType::Object,
            "list" => InputType::List,
            _ => InputType::Any,
        })
    }

    /// A list of steps. `key_base` prefixes generated keys: `s` at the top, `s2.then.` below.
    fn steps(
        &mut self,
        node: &Node,
        path: &str,
        key_base: &str,
        nonempty: bool,
    ) -> Option<Vec<Step>> {
        let items = list(self.ctx, node, path, "a list of steps")?;
        if nonempty && items.is_empty() {
            self.ctx
                .error(node.location, path, "expected at least one step");
            return None;
        }
        let mut steps = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            match self.step(item, &index_path(path, index), format!("{key_base}{index}")) {
                Some(step) => steps.push(step),
                None => ok = false,
            }
        }
        ok.then_some(steps)
    }

    /// One step. `position` is its index path (`s2.then.0`), the key when it has no `id`.
    fn step(&mut self, node: &Node, path: &str, position: String) -> Option<Step> {
        let step = mapping(self.ctx, node, path)?;
        for entry in step.entries {
            if !STEP_KEYS.contains(&entry.key.as_str()) {
                self.ctx.error(
                    entry.key_location,
                    &step.path_of(&entry.key),
                    unknown_key(&entry.key, STEP_KEYS),
                );
            }
        }
        let id = step
            .get("id")
            .and_then(|node| self.step_id(node, &step.path_of("id")));
        let (key, has_id) = match id {
            Some(id) => (id, true),
            None => (position.clone(), false),
        };
        let markers: Vec<_> = step
            .entries
            .iter()
            .filter(|e| STEP_KINDS.contains(&e.key.as_str()))
            .collect();
        let Some(marker) = markers.first() else {
            let message = if step.has("if") {
                "an `if:` step needs `then:` (and optionally `else:`); to skip a single card, put `if:` beside `card:`"
            } else if step.has("steps") {
                "a `steps:` list needs `for_each:` or `map:` in the same step"
            } else {
                "a step needs one of card, if/then, continue_if, for_each, map, try, wait, wait_until"
            };
            self.ctx.error(step.location, path, message);
            return None;
        };
        let kind_name = if marker.key == "else" {
            "then"
        } else {
            marker.key.as_str()
        };
        if let Some(second) = markers.iter().find(|m| {
            let name = if m.key == "else" {
                "then"
            } else {
                m.key.as_str()
            };
            name != kind_name
        }) {
            let message = format!(
                "a step does one thing, and this one has both `{}` and `{}`; split it into two steps",
                marker.key, second.key
            );
            self.ctx
                .error(second.key_location, &step.path_of(&second.key), message);
            return None;
        }
        let allowed: &[&str] = match kind_name {
            "card" => &["id", "card", "with", "if", "retry", "timeout", "on_error"],
            "then" => &["id", "if", "then", "else"],
            "for_each" | "map" => &[
                "id",
                "for_each",
                "map",
                "as",
                "concurrency",
                "steps",
                "flow",
                "with",
                "timeout",
                "on_error",
            ],
            "try" => &["id", "try", "catch"],
            other => &["id", other][..],
        };
        let label = if kind_name == "then" { "if" } else { kind_name };
        let mut misplaced = false;
        for entry in step.entries {
            if STEP_KEYS.contains(&entry.key.as_str()) && !allowed.contains(&entry.key.as_str()) {
                let message = if entry.key == "if" {
                    "`if:` without `then:` guards card steps only; wrap this step as `if:` + `then: [ ... ]`".to_owned()
                } else {
                    format!("`{}` does not apply to a `{label}` step", entry.key)
                };
                self.ctx
                    .error(entry.key_location, &step.path_of(&entry.key), message);
                misplaced = true;
            }
        }
        let kind = match kind_name {
            "card" => self.card_step(&step),
            "then" => self.if_step(&step, &position),
            "continue_if" => step
                .required(self.ctx, "continue_if", "a template")
                .and_then(|node| {
                    template(
                        self.ctx,
                        node,
                        &step.path_of("continue_if"),
                        "{{ input.active }}",
                    )
                })
                .map(|condition| StepKind::ContinueIf { condition }),
            "for_each" | "map" => self.loop_step(&step, kind_name, &position),
            "try" => {
                let steps = step
                    .required(self.ctx, "try", "a list of steps")
                    .and_then(|node| {
                        self.steps(
                            node,
                            &step.path_of("try"),
                            &format!("{position}.try."),
                            true,
                        )
                    });
                let catch = step
                    .required(
                        self.ctx,
                        "catch",
                        "a list of steps to run when a step in `try` fails",
                    )
                    .and_then(|node| {
                        self.steps(
                            node,
                            &step.path_of("catch"),
                            &format!("{position}.catch."),
                            false,
                        )
                    });
                match (steps, catch) {
                    (Some(steps), Some(catch)) => Some(StepKind::Try { steps, catch }),
                    _ => None,
                }
            }
            "wait" => step
                .required(self.ctx, "wait", "a duration such as `10m`")
                .and_then(|node| {
                    duration(
                        self.ctx,
                        node,
                        &step.path_of("wait"),
                        Duration::from_secs(1),
                        Some(Duration::from_secs(30 * 86_400)),
                    )
                })
                .map(|duration| StepKind::Wait { duration }),
            _ => step
                .required(self.ctx, "wait_until", "a template that yields a time")
                .and_then(|node| {
                    template(
                        self.ctx,
                        node,
                        &step.path_of("wait_until"),
                        "{{ input.endDate }}",
                    )
                })
                .map(|until| StepKind::WaitUntil { until }),
        };
        let guard = match (kind_name, step.get("if")) {
            ("card", Some(node)) => {
                template(self.ctx, node, &step.path_of("if"), "{{ input.active }}").map(Some)
            }
            _ => Some(None),
        };
        let retry = match (kind_name, step.get("retry")) {
            ("card", Some(node)) => self.retry(node, &step.path_of("retry")).map(Some),
            _ => Some(None),
        };
        let timeout = match (allowed.contains(&"timeout"), step.get("timeout")) {
            (true, Some(node)) => duration(
                self.ctx,
                node,
                &step.path_of("timeout"),
                Duration::from_millis(1),
                None,
            )
            .map(Some),
            _ => Some(None),
        };
        let on_error = match (allowed.contains(&"on_error"), step.get("on_error")) {
            (true, Some(node)) => self.on_error(node, &step.path_of("on_error"), &position),
            _ => Some(OnError::Fail),
        };
        if misplaced {
            return None;
        }
        Some(Step {
            key,
            has_id,
            kind: kind?,
            guard: guard?,
            retry: retry?,
            timeout: timeout?,
            on_error: on_error?,
            location: step.location,
        })
    }

    fn step_id(&mut self, node: &Node, path: &str) -> Option<String> {
        let id = text(self.ctx, node, path)?;
        if let Some(problem) = identifier_problem(&id, "step id") {
            self.ctx.error(node.location, path, problem);
            return None;
        }
        // Generated keys are `s<index>`; a written id of that shape could name another step.
        if id.len() > 1 && id.starts_with('s') && id[1..].bytes().all(|b| b.is_ascii_digit()) {
            let message =
                format!("step id `{id}` is reserved for generated step keys; pick another name");
            self.ctx.error(node.location, path, message);
            return None;
        }
        if let Some(first) = self.ids.get(&id) {
            let message = format!(
                "duplicate step id `{id}` (first at line {}); ids are unique across the whole flow",
                first.line
            );
            self.ctx.error(node.location, path, message);
            return None;
        }
        self.ids.insert(id.clone(), node.location);
        Some(id)
    }

    fn card_step(&mut self, step: &Fields<'_>) -> Option<StepKind> {
        let card_path = step.path_of("card");
        let name_node = step.required(self.ctx, "card", "a card name such as `okta.read_user`")?;
        let name = nonempty_text(self.ctx, name_node, &card_path);
        let with_path = step.path_of("with");
        let with_node = step.get("with");
        let with_fields = with_node.and_then(|node| mapping(self.ctx, node, &with_path));
        let name = name?;
        let Some(spec) = crate::cards::lookup(&name) else {
            let mut message = format!("unknown card `{}`", preview(&name));
            if let Some(close) = suggest(&name, crate::cards::registry().iter().map(|c| c.name)) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            self.ctx.error(name_node.location, &card_path, message);
            return None;
        };
        if with_node.is_some() && with_fields.is_none() {
            return None;
        }
        let clean_before = self.ctx.diagnostics.len();
        if let Some(with) = &with_fields {
            for entry in with.entries {
                let field_path = with.path_of(&entry.key);
                match spec.fields.iter().find(|f| f.name == entry.key) {
                    Some(field) => self.card_field(spec, field, &entry.value, &field_path),
                    None if spec.open => {}
                    None => {
                        let names: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
                        let mut message = format!(
                            "card `{}` has no field `{}`; its fields are {}",
                            spec.name,
                            preview(&entry.key),
                            if names.is_empty() {
                                "none".to_owned()
                            } else {
                                names.join(", ")
                            }
                        );
                        if let Some(close) = suggest(&entry.key, names.iter().copied()) {
                            message.push_str(&format!("; did you mean `{close}`?"));
                        }
                        self.ctx.error(entry.key_location, &field_path, message);
                    }
                }
            }
        }
        for field in spec.fields.iter().filter(|f| f.required) {
            if with_fields
                .as_ref()
                .and_then(|w| w.get(field.name))
                .is_none()
            {
                let location = with_node.map_or(step.location, |n| n.location);
                let message = format!(
                    "card `{}` requires `{}` ({})",
                    spec.name, field.name, field.doc
                );
                self.ctx.error(location, &with_path, message);
            }
        }
        if self.ctx.diagnostics.len() > clean_before {
            return None;
        }
        let with = with_node.map_or_else(
            || serde_json::Value::Object(serde_json::Map::new()),
            Node::to_json,
        );
        Some(StepKind::Card { card: name, with })
    }

    /// Checks a literal field value against the field's kind. Templates are checked when they render.
    fn card_field(&mut self, spec: &CardSpec, field: &FieldSpec, node: &Node, path: &str) {
        if let NodeValue::String(text) = &node.value
            && is_template(text)
        {
            if field.kind == "expression" {
                // The card evaluates this text itself, once per item: a template here would let
                // whoever supplies the data it renders write the code that runs.
                let message = format!(
                    "`{}` is an expression the card evaluates itself, written without `{{{{ }}}}` (such as `item.status == 'ACTIVE'`); it cannot be a template, so no input can change the code it runs",
                    field.name
                );
                self.ctx.error(node.location, path, message);
            }
            return;
        }
        if node.value == NodeValue::Null {
            if field.required {
                self.ctx.error(
                    node.location,
                    path,
                    format!(
                        "card `{}` requires `{}`, got nothing",
                        spec.name, field.name
                    ),
                );
            }
            return;
        }
        let fits = match (field.kind, &node.value) {
            ("text" | "datetime" | "expression", NodeValue::String(_)) => true,
            // Cards turn numbers and booleans into text, and read numbers as Unix times.
            ("text", NodeValue::Number(_) | NodeValue::Bool(_)) => true,
            ("datetime", NodeValue::Number(_)) => true,
            ("number", NodeValue::Number(_)) => true,
            ("integer", NodeValue::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            ("boolean", NodeValue::Bool(_)) => true,
            ("object", NodeValue::Map(_)) => true,
            ("list", NodeValue::List(_)) => true,
            ("duration", NodeValue::String(text)) => crate::duration::parse(text).is_ok(),
            ("duration", NodeValue::Number(n)) => n.is_u64(),
            (
                "text" | "datetime" | "expression" | "number" | "integer" | "boolean" | "object"
                | "list" | "duration",
                _,
            ) => false,
            // `any` and kinds this reader does not know take anything.
            _ => true,
        };
        if !fits {
            let expected = match field.kind {
                "text" => "text",
                "datetime" => "a date and time",
                "expression" => "an expression",
                "number" => "a number",
                "integer" => "a whole number",
                "boolean" => "true or false",
                "object" => "a mapping",
                "list" => "a list",
                _ => "a duration such as `30s`",
            };
            let message = format!("expected {expected}, got {}", node.describe());
            self.ctx.error(node.location, path, message);
            return;
        }
        match (spec.name, field.name) {
            ("flow.return", "status") => {
                let status = match &node.value {
                    NodeValue::Number(n) => n.as_f64(),
                    _ => None,
                };
                if !status.is_some_and(|s| s.fract() == 0.0 && (100.0..=599.0).contains(&s)) {
                    let message = format!(
                        "expected an HTTP status from 100 to 599, got {}",
                        node.describe()
                    );
                    self.ctx.error(node.location, path, message);
                }
            }
            ("flow.call" | "flow.start", "flow") => {
                if let NodeValue::String(target) = &node.value {
                    match flow_name_problem(target) {
                        Some(problem) => self.ctx.error(node.location, path, problem),
                        None => self.facts.calls.push(Reference {
                            name: target.clone(),
                            location: node.location,
                            path: path.to_owned(),
                        }),
                    }
                }
            }
            _ => {}
        }
    }

    fn if_step(&mut self, step: &Fields<'_>, position: &str) -> Option<StepKind> {
        let condition = step
            .required(self.ctx, "if", "the condition, a template")
            .and_then(|node| template(self.ctx, node, &step.path_of("if"), "{{ input.active }}"));
        let then = step
            .required(self.ctx, "then", "a list of steps")
            .and_then(|node| {
                self.steps(
                    node,
                    &step.path_of("then"),
                    &format!("{position}.then."),
                    true,
                )
            });
        let otherwise = match step.get("else") {
            None => Some(Vec::new()),
            Some(node) => self.steps(
                node,
                &step.path_of("else"),
                &format!("{position}.else."),
                false,
            ),
        };
        Some(StepKind::If {
            condition: condition?,
            then: then?,
            otherwise: otherwise?,
        })
    }

    fn loop_step(&mut self, step: &Fields<'_>, kind: &str, position: &str) -> Option<StepKind> {
        let items = step
            .required(self.ctx, kind, "a template that yields a list")
            .and_then(|node| template(self.ctx, node, &step.path_of(kind), "{{ steps.users }}"));
        let var =
            match step.get("as") {
                None => Some("item".to_owned()),
                Some(node) => text(self.ctx, node, &step.path_of("as")).and_then(|name| {
                    match identifier_problem(&name, "loop variable") {
                        Some(problem) => {
                            self.ctx.error(node.location, &step.path_of("as"), problem);
                            None
                        }
                        None => Some(name),
                    }
                }),
            };
        let body = match (step.get("steps"), step.get("flow")) {
            (Some(_), Some(_)) => {
                let entry = step.entry("flow");
                let location = entry.map_or(step.location, |e| e.key_location);
                self.ctx.error(
                    location,
                    &step.path_of("flow"),
                    "a loop runs either inline `steps:` or a helper `flow:`, not both",
                );
                None
            }
            (None, None) => {
                let message = format!(
                    "a `{kind}` step needs `steps:` (inline) or `flow:` (a helper flow run per item)"
                );
                self.ctx.error(step.location, step.path.as_str(), message);
                None
            }
            (Some(node), None) => {
                if let Some(entry) = step.entry("with") {
                    let message = "`with` applies to loops over a helper `flow:`; inline steps see the item as a variable";
                    self.ctx
                        .error(entry.key_location, &step.path_of("with"), message);
                }
                self.steps(
                    node,
                    &step.path_of("steps"),
                    &format!("{position}.steps."),
                    true,
                )
                .map(LoopBody::Steps)
            }
            (None, Some(node)) => {
                let flow_path = step.path_of("flow");
                let flow = nonempty_text(self.ctx, node, &flow_path).and_then(|name| {
                    match flow_name_problem(&name) {
                        Some(problem) => {
                            self.ctx.error(node.location, &flow_path, problem);
                            None
                        }
                        None => {
                            self.facts.calls.push(Reference {
                                name: name.clone(),
                                location: node.location,
                                path: flow_path,
                            });
                            Some(name)
                        }
                    }
                });
                let with = match step.get("with") {
                    None => Some(None),
                    Some(node) => match &node.value {
                        NodeValue::Map(_) => Some(Some(node.to_json())),
                        NodeValue::String(text) if is_template(text) => Some(Some(node.to_json())),
                        _ => {
                            let message = format!(
                                "expected a mapping of the helper's inputs, got {}",
                                node.describe()
                            );
                            self.ctx
                                .error(node.location, &step.path_of("with"), message);
                            None
                        }
                    },
                };
                match (flow, with) {
                    (Some(flow), Some(with)) => Some(LoopBody::Flow { flow, with }),
                    _ => None,
                }
            }
        };
        let default_concurrency = if step.get("flow").is_some() { 10 } else { 1 };
        let concurrency = match step.get("concurrency") {
            None => Some(default_concurrency),
            Some(node) => integer(self.ctx, node, &step.path_of("concurrency"), 1, 100)
                .and_then(|c| u32::try_from(c).ok()),
        };
        Some(StepKind::Loop(LoopStep {
            collect: kind == "map",
            items: items?,
            var: var?,
            concurrency: concurrency?,
            body: body?,
        }))
    }

    fn retry(&mut self, node: &Node, path: &str) -> Option<RetryPolicy> {
        let retry = fields(self.ctx, node, path, &["max", "backoff", "factor", "on"])?;
        let max = retry
            .required(self.ctx, "max", "the number of attempts, 1 to 10")
            .and_then(|node| integer(self.ctx, node, &retry.path_of("max"), 1, 10))
            .and_then(|max| u32::try_from(max).ok());
        let backoff = match retry.get("backoff") {
            None => Some(Duration::from_secs(1)),
            Some(node) => duration(
                self.ctx,
                node,
                &retry.path_of("backoff"),
                Duration::from_millis(1),
                Some(Duration::from_secs(3_600)),
            ),
        };
        let factor = match retry.get("factor") {
            None => Some(2.0),
            Some(node) => number(self.ctx, node, &retry.path_of("factor"), 1.0, 10.0),
        };
        let on = match retry.get("on") {
            None => Some(Vec::new()),
            Some(node) => {
                let on_path = retry.path_of("on");
                list(
                    self.ctx,
                    node,
                    &on_path,
                    "a list such as [429, 5xx, timeout]",
                )
                .and_then(|items| {
                    let mut on = Vec::new();
                    let mut ok = true;
                    for (index, item) in items.iter().enumerate() {
                        match retry_on(item) {
                            Ok(class) => on.push(class),
                            Err(message) => {
                                self.ctx.error(
                                    item.location,
                                    &index_path(&on_path, index),
                                    message,
                                );
                                ok = false;
                            }
                        }
                    }
                    ok.then_some(on)
                })
            }
        };
        Some(RetryPolicy {
            max: max?,
            backoff: backoff?,
            factor: factor?,
            on: on?,
        })
    }

    fn on_error(&mut self, node: &Node, path: &str, position: &str) -> Option<OnError> {
        match &node.value {
            NodeValue::List(_) => self
                .steps(node, path, &format!("{position}.on_error."), true)
                .map(OnError::Steps),
            NodeValue::String(_) => match choice(self.ctx, node, path, &["fail", "continue"])? {
                "continue" => Some(OnError::Continue),
                _ => Some(OnError::Fail),
            },
            _ => {
                let message = format!(
                    "expected `fail`, `continue` or a list of steps, got {}",
                    node.describe()
                );
                self.ctx.error(node.location, path, message);
                None
            }
        }
    }
}

/// One entry of `retry.on`.
fn retry_on(node: &Node) -> Result<RetryOn, String> {
    const WORDS: &[&str] = &["4xx", "5xx", "timeout", "network", "any"];
    let status = match &node.value {
        NodeValue::Number(n) => n.as_u64(),
        NodeValue::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().ok()
        }
        NodeValue::String(text) => {
            return match text.as_str() {
                "4xx" => Ok(RetryOn::Class(4)),
                "5xx" => Ok(RetryOn::Class(5)),
                "timeout" => Ok(RetryOn::Timeout),
                "network" => Ok(RetryOn::Network),
                "any" => Ok(RetryOn::Any),
                _ => Err(format!(
                    "expected a status such as 429, or one of {}, got {}",
                    WORDS.join(", "),
                    node.describe()
                ) + &suggest(text, WORDS.iter().copied())
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default()),
            };
        }
        _ => None,
    };
    match status.and_then(|s| u16::try_from(s).ok()) {
        Some(status) if (400..=599).contains(&status) => Ok(RetryOn::Status(status)),
        Some(status) => Err(format!(
            "expected an error status from 400 to 599, got {status}"
        )),
        None => Err(one_of_message(
            &[
                "429 (any status)",
                "4xx",
                "5xx",
                "timeout",
                "network",
                "any",
            ],
            node,
        )),
    }
}
