//! The static checker: proves, before a flow is deployed, that every template and expression in it
//! can run.
//!
//! Each template is read through minijinja's own parser ([`scan`]), and what it reads is judged
//! against the context the field will have when it renders:
//!
//! - syntax, and filters, tests and functions the template environment does not have;
//! - root names: a step field sees `input`, `steps`, `run` and `vars`, plus the item variable (and
//!   `index`) inside a loop's steps and `error` inside `catch:` and `on_error:` steps; an event
//!   `filter` sees `event`, `delivery` and `vars`; expression fields (`where`, `expression`) add
//!   `item` and `index`;
//! - `steps.<id>`: a step that exists and has run by then — earlier on every path, or in an
//!   enclosing scope. A step that ran on some paths only (inside an `if` branch, a `try`, an
//!   `on_error`, or with its own `if:`) is a warning unless the template tests it (`is defined`,
//!   `| default`, a condition);
//! - `vars.<key>` that `idflow.yaml` does not declare, `secret('x')` that is neither declared under
//!   `secrets:` nor a reference such as `env:NAME`, `input.<key>` where the trigger declares its
//!   inputs (delegated, helper with `inputs:`, event: `event` and `delivery`).
//!
//! Every problem is a [`Diagnostic`] at the line and column of the name inside the file, with the
//! field path and a "did you mean" where a close name exists.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::cards;
use crate::diag::Diagnostic;
use crate::flowfile::suggest;
use crate::model::{Flow, Location, LoopBody, OnError, ProjectConfig, Step, StepKind, Trigger};

mod scan;
pub mod shapes;

use scan::{At, Scan};

/// What the checker found: errors make a flow invalid; warnings are suspicious but possible
/// (`--strict` makes them errors).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Findings {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Where a flow file's values are: the field path of every node (`steps[2].with.text`) and the
/// file's text, to place a problem at the name inside a template.
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub locations: &'a BTreeMap<String, Location>,
}

/// Checks every template of a flow. `project` is the project config when it loaded without errors:
/// `vars.*` and `secret()` are checked against it only then.
pub fn check_flow(flow: &Flow, source: &Source<'_>, project: Option<&ProjectConfig>) -> Findings {
    let mut checker = Checker {
        source,
        project,
        flow,
        lines: source.text.lines().collect(),
        findings: Findings::default(),
        ids: HashMap::new(),
        loop_vars: HashMap::new(),
        shapes: HashMap::new(),
        order: 0,
    };
    checker.survey(&flow.steps, "");
    checker.order = 0;
    if let Trigger::Event(event) = &flow.trigger
        && let Some(filter) = &event.filter
    {
        let context = Context {
            kind: ContextKind::Filter,
            locals: Vec::new(),
            definite: HashSet::new(),
            possible: HashSet::new(),
        };
        checker.template(
            &context,
            "trigger.event.filter",
            "trigger.event.filter",
            filter,
            false,
        );
    }
    let mut context = Context {
        kind: ContextKind::Step,
        locals: Vec::new(),
        definite: HashSet::new(),
        possible: HashSet::new(),
    };
    checker.steps(&flow.steps, "steps", &mut context);
    let sort = |list: &mut Vec<Diagnostic>| list.sort_by_key(|d| (d.line, d.column));
    sort(&mut checker.findings.errors);
    sort(&mut checker.findings.warnings);
    checker.findings
}

/// Which names a field's template starts from.
#[derive(Clone, Copy, PartialEq)]
enum ContextKind {
    /// Step fields: `input`, `steps`, `run`, `vars`.
    Step,
    /// The event trigger's `filter`: `event`, `delivery`, `vars`.
    Filter,
}

/// Why a local name is bound.
#[derive(Clone)]
enum Local {
    /// The item variable or `index` of the loop step with this key.
    Loop(String),
    /// `error` in `catch:` or `on_error:` steps.
    Error,
    /// `item`/`index` of an expression field.
    Expression,
}

/// The context a template renders in.
#[derive(Clone)]
struct Context {
    kind: ContextKind,
    locals: Vec<(String, Local)>,
    /// Step ids that have run on every path to here.
    definite: HashSet<String>,
    /// Step ids that have run on some paths to here.
    possible: HashSet<String>,
}

impl Context {
    fn local(&self, name: &str) -> bool {
        self.locals.iter().any(|(n, _)| n == name)
    }
}

/// Where a step id is declared: its step's key, the order it comes in, and the scope it lives in.
struct Declared {
    order: usize,
    /// The loop whose steps it is among, innermost, if any.
    in_loop: Option<String>,
}

struct Checker<'a> {
    source: &'a Source<'a>,
    project: Option<&'a ProjectConfig>,
    flow: &'a Flow,
    lines: Vec<&'a str>,
    findings: Findings,
    ids: HashMap<String, Declared>,
    /// Loop variable name → the key of the loop that binds it.
    loop_vars: HashMap<String, String>,
    /// Step id → the shape of its output, where the checker knows it.
    shapes: HashMap<String, shapes::Shape>,
    order: usize,
}

const STEP_ROOTS: &[&str] = &["input", "steps", "run", "vars"];
const FILTER_ROOTS: &[&str] = &["event", "delivery", "vars"];

impl Checker<'_> {
    /// First pass: every step id and loop variable, in document order.
    fn survey(&mut self, steps: &[Step], in_loop: &str) {
        for step in steps {
            self.order += 1;
            if step.has_id {
                self.ids.entry(step.key.clone()).or_insert(Declared {
                    order: self.order,
                    in_loop: (!in_loop.is_empty()).then(|| in_loop.to_owned()),
                });
                if let StepKind::Card { card, with } = &step.kind
                    && let Some(shape) = shapes::card_output_in(card, with, self.project)
                {
                    self.shapes.insert(step.key.clone(), shape);
                }
            }
            match &step.kind {
                StepKind::If {
                    then, otherwise, ..
                } => {
                    self.survey(then, in_loop);
                    self.survey(otherwise, in_loop);
                }
                StepKind::Loop(l) => {
                    self.loop_vars
                        .entry(l.var.clone())
                        .or_insert_with(|| step.key.clone());
                    if let LoopBody::Steps(body) = &l.body {
                        self.survey(body, &step.key);
                    }
                }
                StepKind::Try { steps, catch } => {
                    self.survey(steps, in_loop);
                    self.survey(catch, in_loop);
                }
                _ => {}
            }
            if let OnError::Steps(steps) = &step.on_error {
                self.survey(steps, in_loop);
            }
        }
    }

    fn steps(&mut self, steps: &[Step], path: &str, context: &mut Context) {
        for (index, step) in steps.iter().enumerate() {
            self.step(step, &format!("{path}[{index}]"), context);
        }
    }

    fn step(&mut self, step: &Step, path: &str, context: &mut Context) {
        self.order += 1;
        let label = format!("step `{}`", step.key);
        if let Some(guard) = &step.guard {
            self.template(
                context,
                &format!("{path}.if"),
                &format!("{label}: if"),
                guard,
                false,
            );
        }
        // Whether the step's own output exists after it on every path.
        let mut runs_always = step.guard.is_none();
        match &step.kind {
            StepKind::Card { card, with } => {
                let spec = cards::lookup(card);
                self.value(
                    context,
                    &format!("{path}.with"),
                    &format!("{label}: with"),
                    with,
                    &|field| {
                        let expression = spec
                            .and_then(|s| s.fields.iter().find(|f| f.name == field))
                            .is_some_and(|f| f.kind == "expression");
                        // What the card binds while it evaluates the expression.
                        match (expression, card.as_str()) {
                            (false, _) => None,
                            (true, "list.reduce") => Some(&["item", "index", "memo"][..]),
                            (true, _) => Some(&["item", "index"][..]),
                        }
                    },
                );
            }
            StepKind::If {
                condition,
                then,
                otherwise,
            } => {
                self.template(
                    context,
                    &format!("{path}.if"),
                    &format!("{label}: if"),
                    condition,
                    false,
                );
                let mut then_context = context.clone();
                self.steps(then, &format!("{path}.then"), &mut then_context);
                let mut else_context = context.clone();
                self.steps(otherwise, &format!("{path}.else"), &mut else_context);
                merge_branches(context, &[then_context, else_context]);
            }
            StepKind::ContinueIf { condition } => {
                self.template(
                    context,
                    &format!("{path}.continue_if"),
                    &format!("{label}: continue_if"),
                    condition,
                    false,
                );
            }
            StepKind::Loop(l) => {
                let field = if l.collect { "map" } else { "for_each" };
                self.template(
                    context,
                    &format!("{path}.{field}"),
                    &format!("{label}: {field}"),
                    &l.items,
                    false,
                );
                let mut inner = context.clone();
                inner
                    .locals
                    .push((l.var.clone(), Local::Loop(step.key.clone())));
                inner
                    .locals
                    .push(("index".into(), Local::Loop(step.key.clone())));
                match &l.body {
                    LoopBody::Steps(body) => self.steps(body, &format!("{path}.steps"), &mut inner),
                    LoopBody::Flow {
                        with: Some(with), ..
                    } => {
                        self.value(
                            &inner,
                            &format!("{path}.with"),
                            &format!("{label}: with"),
                            with,
                            &|_| None,
                        );
                    }
                    LoopBody::Flow { with: None, .. } => {}
                }
            }
            StepKind::Try { steps, catch } => {
                let before = context.clone();
                let mut tried = context.clone();
                self.steps(steps, &format!("{path}.try"), &mut tried);
                let mut caught = before.clone();
                // The catch runs after any step of `try` failed: some of them may have run.
                caught
                    .possible
                    .extend(tried.definite.difference(&before.definite).cloned());
                caught.possible.extend(tried.possible.iter().cloned());
                caught.locals.push(("error".into(), Local::Error));
                self.steps(catch, &format!("{path}.catch"), &mut caught);
                caught.locals.pop();
                merge_branches(context, &[tried, caught]);
            }
            StepKind::Wait { .. } => {}
            StepKind::WaitUntil { until } => {
                self.template(
                    context,
                    &format!("{path}.wait_until"),
                    &format!("{label}: wait_until"),
                    until,
                    false,
                );
            }
        }
        if let OnError::Steps(handlers) = &step.on_error {
            let mut handling = context.clone();
            handling.locals.push(("error".into(), Local::Error));
            self.steps(handlers, &format!("{path}.on_error"), &mut handling);
            handling.locals.pop();
            // The handlers ran on the failing path only.
            let new: Vec<String> = handling
                .definite
                .difference(&context.definite)
                .chain(handling.possible.difference(&context.possible))
                .cloned()
                .collect();
            context.possible.extend(new);
            runs_always = false;
        }
        if step.has_id {
            if runs_always {
                context.definite.insert(step.key.clone());
            } else {
                context.possible.insert(step.key.clone());
            }
        }
    }

    /// A JSON tree whose strings may be templates (`with:`). `expression_field` tells which
    /// top-level fields are expressions the card evaluates itself, and the names it binds there.
    fn value(
        &mut self,
        context: &Context,
        path: &str,
        label: &str,
        value: &Value,
        expression_field: &dyn Fn(&str) -> Option<&'static [&'static str]>,
    ) {
        match value {
            Value::String(text) => self.template(context, path, label, text, false),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.value(
                        context,
                        &format!("{path}[{index}]"),
                        &format!("{label}[{index}]"),
                        item,
                        &|_| None,
                    );
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let item_path = format!("{path}.{key}");
                    let item_label = format!("{label}.{key}");
                    match item {
                        Value::String(text) if let Some(bound) = expression_field(key) => {
                            let mut inner = context.clone();
                            for name in bound {
                                inner.locals.push(((*name).into(), Local::Expression));
                            }
                            self.template(&inner, &item_path, &item_label, text, true);
                        }
                        _ => self.value(context, &item_path, &item_label, item, &|_| None),
                    }
                }
            }
            _ => {}
        }
    }

    /// Checks one template (or, with `expression`, one expression written without `{{ }}`).
    fn template(
        &mut self,
        context: &Context,
        path: &str,
        label: &str,
        text: &str,
        expression: bool,
    ) {
        // A string without a tag is a literal, as `template::Compiled` reads it.
        let templated = ["{{", "{%", "{#"].iter().any(|tag| text.contains(tag));
        if !expression && !templated {
            return;
        }
        let scan: Scan = if expression {
            scan::scan_expression(text)
        } else {
            scan::scan_template(text)
        };
        let place = |checker: &Checker<'_>, at: At| checker.place(path, text, at);
        for problem in &scan.problems {
            let location = place(self, problem.at);
            self.error(location, label, problem.message.clone());
        }
        for read in &scan.reads {
            let location = place(self, read.at);
            self.read(context, label, location, read);
        }
        if let Some(project) = self.project {
            for secret in &scan.secrets {
                if project.secrets.contains_key(&secret.name)
                    || crate::model::SecretRef::parse(&secret.name).is_ok()
                {
                    continue;
                }
                let location = place(self, secret.at);
                let mut message = format!(
                    "unknown secret `{}`: declare it under `secrets:` in idflow.yaml, or name a reference such as `env:NAME`",
                    secret.name
                );
                if let Some(close) =
                    suggest(&secret.name, project.secrets.keys().map(String::as_str))
                {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                self.error(location, label, message);
            }
        }
    }

    fn read(&mut self, context: &Context, label: &str, at: Location, read: &scan::Read) {
        let root = read.root.as_str();
        if context.local(root) {
            return;
        }
        if crate::template::has_function(root) {
            return;
        }
        let roots: &[&str] = match context.kind {
            ContextKind::Step => STEP_ROOTS,
            ContextKind::Filter => FILTER_ROOTS,
        };
        if !roots.contains(&root) {
            let message = self.unknown_root(context, roots, root);
            self.error(at, label, message);
            return;
        }
        match root {
            "steps" => self.step_read(context, label, at, read),
            "vars" => {
                let (Some(project), Some(key)) = (self.project, read.path.first()) else {
                    return;
                };
                if !project.vars.contains_key(key) {
                    let mut message =
                        format!("unknown var `{key}`: idflow.yaml declares no `vars.{key}`");
                    if let Some(close) = suggest(key, project.vars.keys().map(String::as_str)) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    self.error(at, label, message);
                }
            }
            "event" => {
                self.shape_read(label, at, "`event`", Some(shapes::log_event()), &read.path);
            }
            "input" => {
                let Some(key) = read.path.first() else { return };
                if key == "event" && matches!(self.flow.trigger, Trigger::Event(_)) {
                    self.shape_read(
                        label,
                        at,
                        "`input.event`",
                        Some(shapes::log_event()),
                        &read.path[1..],
                    );
                }
                let Some(declared) = self.declared_inputs() else {
                    return;
                };
                if !declared.iter().any(|d| d == key) {
                    let mut message = format!(
                        "unknown input `{key}`: the {} trigger declares {}",
                        self.flow.trigger.kind(),
                        declared
                            .iter()
                            .map(|d| format!("`{d}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    if let Some(close) = suggest(key, declared.iter().map(String::as_str)) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    }
                    self.error(at, label, message);
                }
            }
            _ => {}
        }
    }

    /// The input keys a run of this flow can have, when its trigger declares them.
    fn declared_inputs(&self) -> Option<Vec<String>> {
        self.flow.trigger.declared_inputs()
    }

    /// Warns about a read below a value whose shape is known and has no such field.
    fn shape_read(
        &mut self,
        label: &str,
        at: Location,
        what: &str,
        shape: Option<shapes::Shape>,
        path: &[String],
    ) {
        let Some(shape) = shape else { return };
        if let Some(problem) = shapes::check_path(&shape, path) {
            self.warning(at, label, format!("{what}: {problem}"));
        }
    }

    fn unknown_root(&self, context: &Context, roots: &[&str], root: &str) -> String {
        if root == "error" {
            return "`error` is only defined in `catch:` and `on_error:` steps".into();
        }
        if let Some(owner) = self.loop_vars.get(root) {
            return format!(
                "`{root}` is the item variable of loop `{owner}`; it is only defined inside that loop's steps"
            );
        }
        if context.kind == ContextKind::Filter && matches!(root, "input" | "steps" | "run") {
            return format!(
                "an event filter sees `event`, `delivery` and `vars`, not `{root}` (it runs before the run exists); write `event.…` instead of `input.event.…`"
            );
        }
        let mut available: Vec<&str> = roots.to_vec();
        available.extend(context.locals.iter().map(|(n, _)| n.as_str()));
        let mut message = format!("unknown name `{root}`");
        if let Some(close) = suggest(root, available.iter().copied()) {
            message.push_str(&format!("; did you mean `{close}`?"));
        }
        message.push_str(&format!(
            " (this field reads {})",
            available
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        message
    }

    fn step_read(&mut self, context: &Context, label: &str, at: Location, read: &scan::Read) {
        let Some(id) = read.path.first() else { return };
        if context.definite.contains(id) || context.possible.contains(id) {
            self.shape_read(
                label,
                at,
                &format!("step `{id}`"),
                self.shapes.get(id).cloned(),
                &read.path[1..],
            );
        }
        if context.definite.contains(id) {
            return;
        }
        if context.possible.contains(id) {
            if !read.guarded {
                let message = format!(
                    "step `{id}` may not have run here (it is in an `if` branch, a `try`, an `on_error`, or has its own `if:`); test it with `steps.{id} is defined` or add `| default(...)`"
                );
                self.warning(at, label, message);
            }
            return;
        }
        let message = match self.ids.get(id) {
            Some(declared) => match &declared.in_loop {
                Some(owner)
                    if !context
                        .locals
                        .iter()
                        .any(|(_, l)| matches!(l, Local::Loop(k) if k == owner)) =>
                {
                    format!(
                        "step `{id}` is inside the steps of loop `{owner}` and only visible there; after the loop, read `steps.{owner}`"
                    )
                }
                _ if declared.order == self.order => {
                    format!("step `{id}` is this step; a step cannot read its own output")
                }
                _ if declared.order > self.order => format!(
                    "step `{id}` runs after this one; a step can only read steps that come before it"
                ),
                _ => format!("step `{id}` has not run at this point (it is in another branch)"),
            },
            None => {
                let mut visible: Vec<&str> = context
                    .definite
                    .iter()
                    .chain(context.possible.iter())
                    .map(String::as_str)
                    .collect();
                visible.sort_unstable();
                let mut message = format!("unknown step `{id}`");
                let all = self.ids.keys().map(String::as_str);
                if let Some(close) =
                    suggest(id, visible.iter().copied()).or_else(|| suggest(id, all))
                {
                    message.push_str(&format!("; did you mean `{close}`?"));
                } else if visible.is_empty() {
                    message.push_str("; no step with an `id` runs before this one");
                } else {
                    message.push_str(&format!(
                        "; steps readable here: {}",
                        visible
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                message
            }
        };
        self.error(at, label, message);
    }

    fn error(&mut self, at: Location, label: &str, message: String) {
        let diagnostic = self.diagnostic(at, label, message);
        self.findings.errors.push(diagnostic);
    }

    fn warning(&mut self, at: Location, label: &str, message: String) {
        let diagnostic = self.diagnostic(at, label, message);
        self.findings.warnings.push(diagnostic);
    }

    fn diagnostic(&self, at: Location, label: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.source.file.to_owned(),
            line: at.line,
            column: at.column,
            path: label.to_owned(),
            message,
        }
    }

    /// The file position of `at` inside the template at field `path`.
    fn place(&self, path: &str, text: &str, at: At) -> Location {
        let Some(node) = self.source.locations.get(path).copied() else {
            return Location::default();
        };
        let Some(line) = self.lines.get(node.line.saturating_sub(1) as usize) else {
            return node;
        };
        let start: String = line
            .chars()
            .skip(node.column.saturating_sub(1) as usize)
            .collect();
        let first = start.chars().next();
        let on_line = |column: u32| Location {
            line: node.line.saturating_add(at.line.saturating_sub(1)),
            column,
        };
        match first {
            // A block scalar whose position is its `|` or `>`: the text starts on the next line.
            Some('|' | '>') => {
                let line_index = node.line.saturating_add(at.line.saturating_sub(1));
                let indent = self
                    .lines
                    .get(line_index as usize)
                    .map_or(0, |l| l.chars().take_while(|c| *c == ' ').count());
                Location {
                    line: line_index.saturating_add(1),
                    column: u32::try_from(indent).unwrap_or(0) + at.column + 1,
                }
            }
            // A quoted scalar: one column for the quote (escapes inside are rare in templates).
            Some('"' | '\'')
                if start
                    .get(1..)
                    .is_some_and(|rest| rest.starts_with(first_line(text))) =>
            {
                if at.line == 1 {
                    on_line(node.column + 1 + at.column)
                } else {
                    on_line(at.column + 1)
                }
            }
            // Plain text, or a block scalar positioned at its first line of text, whose later lines
            // are indented as far as the first.
            _ if start.starts_with(first_line(text)) => on_line(node.column + at.column),
            _ => node,
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// After branches that each ran from `context`: what ran on every branch is definite, what ran on
/// any is possible.
fn merge_branches(context: &mut Context, branches: &[Context]) {
    let mut definite: Option<HashSet<String>> = None;
    for branch in branches {
        let new: HashSet<String> = branch
            .definite
            .difference(&context.definite)
            .cloned()
            .collect();
        definite = Some(match definite {
            None => new,
            Some(so_far) => so_far.intersection(&new).cloned().collect(),
        });
    }
    let mut possible: Vec<String> = Vec::new();
    for branch in branches {
        possible.extend(branch.definite.iter().cloned());
        possible.extend(branch.possible.iter().cloned());
    }
    let definite = definite.unwrap_or_default();
    for id in possible {
        if !definite.contains(&id) && !context.definite.contains(&id) {
            context.possible.insert(id);
        }
    }
    context.definite.extend(definite);
}
