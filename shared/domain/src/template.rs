//! Templates: the one sandboxed minijinja environment flow values are rendered with.
//!
//! A flow's `with:` trees, conditions and loop lists are JSON values whose strings may be templates.
//! [`Compiled`] parses such a tree once per flow version and renders it many times:
//!
//! - a string without `{{`, `{%` or `{#` is a literal and costs nothing to render;
//! - a string that is exactly one `{{ expression }}` (surrounding whitespace allowed) evaluates the
//!   expression and keeps its JSON type (object, list, number, boolean, null);
//! - any other string renders to text.
//!
//! # Sandbox
//! The environment has no loader and `include`, `import`, `extends` and `from` tags are refused when a
//! template is compiled, so a template can never read a file. It has no function that reaches the
//! environment, the network or the wall clock: `now()` returns the step time the engine put in the
//! context under [`NOW_KEY`], and `secret('name')` reads the secrets the engine put under
//! [`SECRETS_KEY`] (see [`secrets_value`]). Every render gets a fuel budget so a runaway loop stops
//! with an error instead of hanging a worker. The `debug()` global is removed because it would dump the
//! whole context.
//!
//! # Secrets are tainted
//! `secret('name')` marks the render it happens in: every leaf of a tree (an expression or a text
//! template) whose evaluation read a secret is *secret-derived*, whatever it did with the value
//! (concatenation, filters, slicing, JSON, a condition). [`Compiled::render_within`] reports those
//! leaves as [`Rendered::secret_paths`] so the engine can send them to the card they were written for
//! and show `[redacted]` everywhere else; [`Compiled::render`] refuses them outright. An error raised
//! by a template that read a secret never carries its details, which could quote the value.
//!
//! # Budgets
//! A render is held to [`Limits`]: fuel bounds instructions, `output_bytes` bounds the size of the
//! rendered value (text is written into a capped buffer, so it stops as soon as it passes), and
//! `alloc_bytes` bounds what the render allocates in all (through [`crate::budget`]'s counting
//! allocator, checked whenever idflow's own code runs during the render: the writer, the formatter,
//! the functions and filters, every item of a loop over the render's data or a `range`, and after
//! each expression). Exceeding one fails the render with a
//! [`TemplateErrorKind::Budget`] error naming the budget, never the process.
//!
//! # Undefined values
//! The environment uses [`UndefinedBehavior::Chainable`] and makes printing strict. Chainable lets the
//! usual Jinja idioms for optional data work at any depth (`steps.lookup.user.manager is defined`,
//! `steps.x.y | default('n/a')`, `{% if steps.x.y %}`), which `Strict` and `SemiStrict` reject as soon
//! as a parent is missing. Strictness comes back where it matters: printing an undefined value in a
//! text template and returning one from a `{{ expression }}` are errors that name the missing path
//! ("undefined value `steps.nope`"), so a typo never turns silently into an empty string in an email
//! or an API call. `null` prints as an empty string.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use minijinja::value::{Kwargs, Object, ObjectRepr, ValueKind};
use minijinja::{
    AutoEscape, Environment, Error, ErrorKind, Expression, Output, State, UndefinedBehavior, Value,
};
use serde::{Deserialize, Serialize};

use crate::budget::{self, format_size};

/// The context key the engine sets to the step time, an RFC 3339 string; `now()` returns it.
pub const NOW_KEY: &str = "__now";
/// The context key holding the secrets a flow may read with `secret('name')` (see [`secrets_value`]).
pub const SECRETS_KEY: &str = "__secrets";
/// Instructions one render may execute. Generous for real flows (a loop over 10 000 items with a few
/// operations each), small enough that an endless loop stops within a fraction of a second.
pub const FUEL: u64 = 2_000_000;

/// The shared environment. Expressions are compiled against it directly; text templates are added to
/// a cheap clone of it (its maps are behind `Arc`s) owned by their [`Compiled`] tree.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(build_environment);

fn build_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Flow values are JSON, text and emails, never HTML: escaping would corrupt them. The callback is
    // per template name, and names here are JSON paths that could well end in `.html`.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // A YAML block scalar (`text: |`) ends with a newline; literal strings keep it, so templated
    // strings must too.
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(FUEL));
    // Debug mode copies the source and the context into every error; we build our own messages.
    env.set_debug(false);
    env.set_formatter(strict_formatter);
    env.remove_global("debug");
    env.add_function("range", range_function);
    env.add_function("now", now_function);
    env.add_function("secret", secret_function);
    env.add_filter("tojson", tojson_filter);
    env.add_filter("fromjson", fromjson_filter);
    env.add_filter("b64encode", b64encode_filter);
    env.add_filter("b64decode", b64decode_filter);
    env.add_filter("urlencode", urlencode_filter);
    env.add_filter("date", date_filter);
    env
}

/// Filter names a did-you-mean may offer: minijinja's built-in filters and idflow's own. Only those
/// the environment really has are offered ([`filter_names`]).
const KNOWN_FILTERS: &[&str] = &[
    "safe",
    "escape",
    "e",
    "lower",
    "upper",
    "title",
    "capitalize",
    "replace",
    "length",
    "count",
    "dictsort",
    "items",
    "reverse",
    "trim",
    "join",
    "split",
    "lines",
    "default",
    "d",
    "round",
    "abs",
    "int",
    "float",
    "attr",
    "first",
    "last",
    "min",
    "max",
    "sort",
    "list",
    "string",
    "bool",
    "batch",
    "slice",
    "sum",
    "indent",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "groupby",
    "unique",
    "chain",
    "zip",
    "pprint",
    "format",
    "tojson",
    "fromjson",
    "b64encode",
    "b64decode",
    "urlencode",
    "date",
];
/// Test names a did-you-mean may offer (see [`test_names`]).
const KNOWN_TESTS: &[&str] = &[
    "undefined",
    "defined",
    "none",
    "safe",
    "escaped",
    "boolean",
    "odd",
    "even",
    "divisibleby",
    "number",
    "integer",
    "int",
    "float",
    "string",
    "sequence",
    "iterable",
    "mapping",
    "startingwith",
    "endingwith",
    "lower",
    "upper",
    "sameas",
    "eq",
    "equalto",
    "ne",
    "lt",
    "lessthan",
    "le",
    "gt",
    "greaterthan",
    "ge",
    "in",
    "true",
    "false",
    "filter",
    "test",
];

/// Whether the template environment has a filter of this name. Asked of the environment itself
/// (minijinja's `is filter` test), so the answer cannot drift from what renders.
pub fn has_filter(name: &str) -> bool {
    ENV.empty_state()
        .perform_test("filter", &[Value::from(name)])
        .unwrap_or(false)
}

/// Whether the template environment has a test of this name (see [`has_filter`]).
pub fn has_test(name: &str) -> bool {
    ENV.empty_state()
        .perform_test("test", &[Value::from(name)])
        .unwrap_or(false)
}

/// Whether the template environment has a global function of this name (`range`, `now`,
/// `secret`, ...).
pub fn has_function(name: &str) -> bool {
    ENV.globals().any(|(global, _)| global == name)
}

/// The filters templates may use, for suggestions.
pub fn filter_names() -> impl Iterator<Item = &'static str> {
    KNOWN_FILTERS
        .iter()
        .copied()
        .filter(|name| has_filter(name))
}

/// The tests templates may use, for suggestions.
pub fn test_names() -> impl Iterator<Item = &'static str> {
    KNOWN_TESTS.iter().copied().filter(|name| has_test(name))
}

/// The global functions templates may call, sorted.
pub fn function_names() -> impl Iterator<Item = &'static str> {
    let mut names: Vec<&'static str> = ENV.globals().map(|(name, _)| name).collect();
    names.sort_unstable();
    names.into_iter()
}

/// Default of [`Limits::output_bytes`]: 10 MiB.
pub const DEFAULT_OUTPUT_BYTES: u64 = 10 << 20;
/// Default of [`Limits::alloc_bytes`]: 256 MiB.
pub const DEFAULT_ALLOC_BYTES: u64 = 256 << 20;

/// What one render may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest value one template produces: the length of a text, or the JSON size of an
    /// expression's value.
    pub output_bytes: u64,
    /// Bytes a render may allocate in all (counted when [`crate::budget::CountingAllocator`] is the
    /// global allocator).
    pub alloc_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            output_bytes: DEFAULT_OUTPUT_BYTES,
            alloc_bytes: DEFAULT_ALLOC_BYTES,
        }
    }
}

/// One step of a JSON path: a key of an object or an index in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathSegment {
    Index(usize),
    Key(String),
}

/// Where a value sits in a rendered tree (`["headers", "Authorization"]`); empty for the root.
pub type JsonPath = Vec<PathSegment>;

/// Renders `path` the way error messages write it: `headers.Authorization`, `items[0]`.
pub fn path_text(path: &[PathSegment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            PathSegment::Index(index) => out.push_str(&format!("[{index}]")),
            PathSegment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
        }
    }
    out
}

/// A rendered tree and the leaves of it that are derived from a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub value: serde_json::Value,
    /// Leaves whose template read a secret, in tree order.
    pub secret_paths: Vec<JsonPath>,
}

/// What kind of problem a [`TemplateError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemplateErrorKind {
    /// Syntax, an undefined value, a failing filter: the template or its data is wrong.
    #[default]
    Invalid,
    /// A budget of [`Limits`] (or fuel) ran out.
    Budget,
    /// A secret was read where secrets may not go.
    Secret,
}

/// A template error, located by its JSON path inside the compiled tree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", path_prefix(.path))]
pub struct TemplateError {
    /// JSON path inside the tree, such as `user` or `headers.Authorization`; empty at the root.
    pub path: String,
    pub message: String,
    /// Line inside the template string (1-based), when known.
    pub line: Option<u32>,
    pub kind: TemplateErrorKind,
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("`{path}`: ")
    }
}

impl TemplateError {
    fn new(path: &str, message: impl Into<String>) -> TemplateError {
        TemplateError {
            path: path.to_owned(),
            message: message.into(),
            line: None,
            kind: TemplateErrorKind::Invalid,
        }
    }
}

thread_local! {
    /// Set by `secret()`; read and reset around every leaf of a render (see [`watch_secrets`]).
    static SECRET_READ: Cell<bool> = const { Cell::new(false) };
    /// While a render runs: the allocation counter at its start and its allocation budget.
    static ALLOC_WINDOW: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    /// The budget that stopped the current render, if one did.
    static BUDGET_HIT: Cell<Option<BudgetHit>> = const { Cell::new(None) };
}

#[derive(Debug, Clone, Copy)]
enum BudgetHit {
    Output(u64),
    Alloc(u64),
}

impl BudgetHit {
    fn message(self) -> String {
        match self {
            BudgetHit::Output(limit) => format!(
                "the rendered value is larger than {} (the render output budget)",
                format_size(limit)
            ),
            BudgetHit::Alloc(limit) => format!(
                "the render allocated more than {} (the render memory budget)",
                format_size(limit)
            ),
        }
    }
}

/// Runs `f` and tells whether it read a secret through `secret()`. Nested calls compose: an outer
/// watcher sees what an inner one saw.
pub fn watch_secrets<R>(f: impl FnOnce() -> R) -> (R, bool) {
    let outer = SECRET_READ.replace(false);
    let result = f();
    let read = SECRET_READ.get();
    SECRET_READ.set(outer || read);
    (result, read)
}

/// Runs one evaluation under an allocation budget, restoring the enclosing one afterwards.
fn within_budget<R>(limits: &Limits, f: impl FnOnce() -> R) -> R {
    let outer = ALLOC_WINDOW.replace(Some((budget::allocated_bytes(), limits.alloc_bytes)));
    let outer_hit = BUDGET_HIT.replace(None);
    let result = f();
    ALLOC_WINDOW.set(outer);
    if BUDGET_HIT.get().is_none() {
        BUDGET_HIT.set(outer_hit);
    }
    result
}

/// Fails once the current render has allocated more than its budget. Called wherever idflow's own
/// code runs during a render.
fn check_alloc() -> Result<(), Error> {
    if let Some((start, limit)) = ALLOC_WINDOW.get()
        && budget::allocated_bytes().saturating_sub(start) > limit
    {
        let hit = BudgetHit::Alloc(limit);
        BUDGET_HIT.set(Some(hit));
        return Err(Error::new(ErrorKind::InvalidOperation, hit.message()));
    }
    Ok(())
}

/// The output of a text template, capped at the output budget: the render stops at the first write
/// past it instead of building the whole text first.
struct CappedWriter {
    buffer: Vec<u8>,
    limit: u64,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if (self.buffer.len() + data.len()) as u64 > self.limit {
            BUDGET_HIT.set(Some(BudgetHit::Output(self.limit)));
            return Err(std::io::Error::other("render output budget"));
        }
        if check_alloc().is_err() {
            return Err(std::io::Error::other("render memory budget"));
        }
        self.buffer.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A JSON tree whose strings may be templates, compiled once and rendered many times.
///
/// Cheap to clone (one `Arc`), `Send` and `Sync`.
#[derive(Clone)]
pub struct Compiled {
    inner: Arc<Inner>,
}

struct Inner {
    root: Node,
    /// Holds the tree's text templates, named by their JSON path. `None` when the tree has none.
    env: Option<Environment<'static>>,
}

enum Node {
    /// No template anywhere below: rendered by cloning.
    Literal(serde_json::Value),
    /// A string that is exactly one `{{ expression }}`: keeps the JSON type of its value.
    Expression {
        expr: Expression<'static, 'static>,
        source: String,
        path: String,
    },
    /// Any other template string: renders to text. `path` is also the template's name.
    Text {
        path: String,
    },
    List(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("literal", &self.is_literal())
            .finish_non_exhaustive()
    }
}

impl Compiled {
    /// Compiles every template string of a JSON tree.
    pub fn new(value: &serde_json::Value) -> Result<Compiled, TemplateError> {
        let mut texts = Vec::new();
        let root = compile_node(value, String::new(), &mut texts)?;
        let env = if texts.is_empty() {
            None
        } else {
            let mut env = ENV.clone();
            for (path, source) in texts {
                let name = path.clone();
                env.add_template_owned(name, source.clone())
                    .map_err(|err| error_from(&err, &path, &source, None))?;
            }
            Some(env)
        };
        Ok(Compiled {
            inner: Arc::new(Inner { root, env }),
        })
    }

    /// Compiles one string (a condition, a loop list, a `wait_until`).
    pub fn text(source: &str) -> Result<Compiled, TemplateError> {
        Compiled::new(&serde_json::Value::String(source.to_owned()))
    }

    /// Renders the tree against a context (see [`to_value`] and [`secrets_value`]) with the default
    /// [`Limits`]. A leaf that reads a secret is an error ([`TemplateErrorKind::Secret`]): use
    /// [`Compiled::render_within`] where secrets may go.
    pub fn render(&self, ctx: &Value) -> Result<serde_json::Value, TemplateError> {
        let rendered = self.render_within(ctx, &Limits::default())?;
        match rendered.secret_paths.first() {
            None => Ok(rendered.value),
            Some(path) => Err(secret_refused(path)),
        }
    }

    /// Renders the tree under `limits`, reporting which leaves are derived from a secret.
    pub fn render_within(&self, ctx: &Value, limits: &Limits) -> Result<Rendered, TemplateError> {
        let mut secret_paths = Vec::new();
        let mut at = Vec::new();
        let value = self.render_node(&self.inner.root, ctx, limits, &mut at, &mut secret_paths)?;
        Ok(Rendered {
            value,
            secret_paths,
        })
    }

    /// Whether the tree holds no template at all.
    pub fn is_literal(&self) -> bool {
        matches!(self.inner.root, Node::Literal(_))
    }

    fn render_node(
        &self,
        node: &Node,
        ctx: &Value,
        limits: &Limits,
        at: &mut JsonPath,
        secret_paths: &mut Vec<JsonPath>,
    ) -> Result<serde_json::Value, TemplateError> {
        match node {
            Node::Literal(value) => Ok(value.clone()),
            Node::Expression { expr, source, path } => {
                let (result, read_secret) = watch_secrets(|| {
                    within_budget(limits, || {
                        let value = contain_panic(|| expr.eval(ctx))
                            .and_then(|value| {
                                check_alloc()?;
                                Ok(value)
                            })
                            .map_err(|err| error_from(&err, path, source, Some(ctx)))?;
                        // Lazy sequences are iterated here, still inside minijinja's code.
                        let json = contain_panic(|| value_to_json(&value))
                            .map_err(|err| error_from(&err, path, source, Some(ctx)))?;
                        if budget::json_size(&json, limits.output_bytes) > limits.output_bytes {
                            return Err(budget_error(path, BudgetHit::Output(limits.output_bytes)));
                        }
                        Ok(json)
                    })
                });
                finish_leaf(result, read_secret, at, secret_paths)
            }
            Node::Text { path } => {
                let env = self
                    .inner
                    .env
                    .as_ref()
                    .ok_or_else(|| TemplateError::new(path, "template missing"))?;
                let template = env
                    .get_template(path)
                    .map_err(|err| error_from(&err, path, "", None))?;
                let (result, read_secret) = watch_secrets(|| {
                    within_budget(limits, || {
                        let mut out = CappedWriter {
                            buffer: Vec::new(),
                            limit: limits.output_bytes,
                        };
                        // The last check: a render that wrote nothing after passing its budget.
                        contain_panic(|| {
                            template.render_captured_to(ctx, &mut out)?;
                            check_alloc()
                        })
                        .map(|()| {
                            serde_json::Value::String(
                                String::from_utf8_lossy(&out.buffer).into_owned(),
                            )
                        })
                        .map_err(|err| error_from(&err, path, template.source(), Some(ctx)))
                    })
                });
                finish_leaf(result, read_secret, at, secret_paths)
            }
            Node::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    at.push(PathSegment::Index(index));
                    let value = self.render_node(item, ctx, limits, at, secret_paths);
                    at.pop();
                    out.push(value?);
                }
                Ok(serde_json::Value::Array(out))
            }
            Node::Object(fields) => {
                let mut map = serde_json::Map::with_capacity(fields.len());
                for (key, node) in fields {
                    at.push(PathSegment::Key(key.clone()));
                    let value = self.render_node(node, ctx, limits, at, secret_paths);
                    at.pop();
                    map.insert(key.clone(), value?);
                }
                Ok(serde_json::Value::Object(map))
            }
        }
    }
}

/// Runs one minijinja evaluation, turning a panic inside it into an error. minijinja 2.24 panics on
/// some inputs (a reversed slice of an empty sequence, `{{ [][::-1] | list }}`, indexes an empty
/// vector), and template inputs come from callers: one request must fail its step, not unwind
/// through a worker. Nothing is shared with the evaluation but the context, which it only reads, so
/// no state is left half-changed.
fn contain_panic<R>(evaluate: impl FnOnce() -> Result<R, Error>) -> Result<R, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(evaluate)).unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            "the template engine failed on this value (an internal error, reported to idflow)",
        ))
    })
}

/// Records a leaf that read a secret, and keeps the details of its errors out of sight: a failing
/// filter could quote the value it was given.
fn finish_leaf(
    result: Result<serde_json::Value, TemplateError>,
    read_secret: bool,
    at: &JsonPath,
    secret_paths: &mut Vec<JsonPath>,
) -> Result<serde_json::Value, TemplateError> {
    match result {
        Ok(value) => {
            if read_secret {
                secret_paths.push(at.clone());
            }
            Ok(value)
        }
        Err(mut error) if read_secret && error.kind != TemplateErrorKind::Budget => {
            error.message = "the template failed after reading a secret (details withheld so the secret cannot appear in them)".into();
            Err(error)
        }
        Err(error) => Err(error),
    }
}

fn budget_error(path: &str, hit: BudgetHit) -> TemplateError {
    TemplateError {
        path: path.to_owned(),
        message: hit.message(),
        line: None,
        kind: TemplateErrorKind::Budget,
    }
}

/// The error of a secret read where secrets may not go.
fn secret_refused(path: &[PathSegment]) -> TemplateError {
    TemplateError {
        path: path_text(path),
        message: "reads a secret; secrets may only be sent to a connection (the fields of I/O cards such as `http.request`), never kept in history, outputs or conditions".into(),
        line: None,
        kind: TemplateErrorKind::Secret,
    }
}

/// Replaces the leaves at `paths` with `[redacted]`.
pub fn mask(value: &serde_json::Value, paths: &[JsonPath]) -> serde_json::Value {
    let mut value = value.clone();
    for path in paths {
        if let Some(slot) = pointer_mut(&mut value, path) {
            *slot = serde_json::Value::String(REDACTED.into());
        }
    }
    value
}

/// Copies the leaves at `paths` from `from` into `into` (the unmasked values of a masked tree).
pub fn splice(into: &mut serde_json::Value, from: &serde_json::Value, paths: &[JsonPath]) {
    for path in paths {
        if let (Some(slot), Some(source)) = (pointer_mut(into, path), pointer(from, path)) {
            *slot = source.clone();
        }
    }
}

/// The texts at `paths`, as secret-derived strings to scrub from what a card answers. Objects and
/// lists contribute their string leaves.
pub fn secret_texts(value: &serde_json::Value, paths: &[JsonPath]) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> =
        paths.iter().filter_map(|p| pointer(value, p)).collect();
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(text) => out.push(text.clone()),
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    out
}

/// What secret-derived values are replaced with.
pub const REDACTED: &str = "[redacted]";

fn pointer<'v>(
    value: &'v serde_json::Value,
    path: &[PathSegment],
) -> Option<&'v serde_json::Value> {
    path.iter()
        .try_fold(value, |current, segment| match (segment, current) {
            (PathSegment::Key(key), serde_json::Value::Object(map)) => map.get(key),
            (PathSegment::Index(index), serde_json::Value::Array(items)) => items.get(*index),
            _ => None,
        })
}

fn pointer_mut<'v>(
    value: &'v mut serde_json::Value,
    path: &[PathSegment],
) -> Option<&'v mut serde_json::Value> {
    path.iter()
        .try_fold(value, |current, segment| match (segment, current) {
            (PathSegment::Key(key), serde_json::Value::Object(map)) => map.get_mut(key),
            (PathSegment::Index(index), serde_json::Value::Array(items)) => items.get_mut(*index),
            _ => None,
        })
}

fn compile_node(
    value: &serde_json::Value,
    path: String,
    texts: &mut Vec<(String, String)>,
) -> Result<Node, TemplateError> {
    match value {
        serde_json::Value::String(source) => {
            if !has_template(source) {
                return Ok(Node::Literal(value.clone()));
            }
            check_tags(source).map_err(|(message, line)| TemplateError {
                path: path.clone(),
                message,
                line,
                kind: TemplateErrorKind::Invalid,
            })?;
            if let Some(inner) = single_expression(source) {
                let expr = ENV
                    .compile_expression_owned(inner.to_owned())
                    .map_err(|err| error_from(&err, &path, source, None))?;
                return Ok(Node::Expression {
                    expr,
                    source: source.clone(),
                    path,
                });
            }
            texts.push((path.clone(), source.clone()));
            Ok(Node::Text { path })
        }
        serde_json::Value::Array(items) => {
            let nodes = items
                .iter()
                .enumerate()
                .map(|(index, item)| compile_node(item, format!("{path}[{index}]"), texts))
                .collect::<Result<Vec<_>, _>>()?;
            if nodes.iter().all(|node| matches!(node, Node::Literal(_))) {
                Ok(Node::Literal(value.clone()))
            } else {
                Ok(Node::List(nodes))
            }
        }
        serde_json::Value::Object(map) => {
            let mut fields = Vec::with_capacity(map.len());
            for (key, item) in map {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                fields.push((key.clone(), compile_node(item, child, texts)?));
            }
            if fields
                .iter()
                .all(|(_, node)| matches!(node, Node::Literal(_)))
            {
                Ok(Node::Literal(value.clone()))
            } else {
                Ok(Node::Object(fields))
            }
        }
        _ => Ok(Node::Literal(value.clone())),
    }
}

fn has_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// The expression inside a string that is exactly one `{{ expression }}`, if it is one.
fn single_expression(source: &str) -> Option<&str> {
    let body = source.trim().strip_prefix("{{")?;
    let end = tag_end(body, "}}")?;
    if end + 2 != body.len() {
        return None;
    }
    let inner = &body[..end];
    // Whitespace control markers (`{{- x -}}`) mean nothing for a lone expression.
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    if inner.trim().is_empty() {
        return None;
    }
    Some(inner)
}

/// Whether a JSON value counts as true for `if:`, `continue_if:` and filters: `null`, `false`, `0`,
/// `""`, `[]` and `{}` are false, everything else is true.
pub fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(map) => !map.is_empty(),
    }
}

thread_local! {
    /// Expressions evaluated through [`eval_expression`], such as a `list.filter` predicate run once per
    /// item. Bounded: cleared when full rather than tracking recency, which is enough for the few
    /// distinct predicates a worker sees.
    static EXPRESSIONS: RefCell<HashMap<String, Rc<Expression<'static, 'static>>>> = RefCell::new(HashMap::new());
}
const EXPRESSION_CACHE_SIZE: usize = 256;

/// Evaluates one expression (written with or without the surrounding `{{ }}`) and converts the result
/// to JSON. Compiled expressions are cached per thread.
pub fn eval_expression(expr: &str, ctx: &Value) -> Result<serde_json::Value, TemplateError> {
    let source = single_expression(expr).unwrap_or(expr);
    let compiled = EXPRESSIONS.with(|cache| -> Result<_, TemplateError> {
        if let Some(found) = cache.borrow().get(source) {
            return Ok(found.clone());
        }
        check_tags(&format!("{{{{{source}}}}}")).map_err(|(message, line)| TemplateError {
            path: String::new(),
            message,
            line,
            kind: TemplateErrorKind::Invalid,
        })?;
        let compiled = Rc::new(
            ENV.compile_expression_owned(source.to_owned())
                .map_err(|err| error_from(&err, "", expr, None))?,
        );
        let mut cache = cache.borrow_mut();
        if cache.len() >= EXPRESSION_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(source.to_owned(), compiled.clone());
        Ok(compiled)
    })?;
    // Errors are explained against the `{{ }}` form so the undefined-path search reads it as an
    // expression.
    let explain = |err: Error| error_from(&err, "", &format!("{{{{ {source} }}}}"), Some(ctx));
    let (result, read_secret) = watch_secrets(|| {
        within_budget(&Limits::default(), || {
            let value = contain_panic(|| compiled.eval(ctx)).map_err(explain)?;
            check_alloc().map_err(explain)?;
            contain_panic(|| value_to_json(&value)).map_err(explain)
        })
    });
    // As for a leaf of a tree: a failing filter could quote the secret it was given.
    finish_leaf(result, read_secret, &Vec::new(), &mut Vec::new())
}

/// Adds variables (a loop's `item`, a predicate's `index`) on top of a context.
pub fn with_bindings(ctx: &Value, bindings: &[(&str, &serde_json::Value)]) -> Value {
    let overlay: BTreeMap<&str, Value> = bindings
        .iter()
        .map(|(name, value)| (*name, to_value(value)))
        .collect();
    minijinja::value::merge_maps([Value::from_serialize(&overlay), ctx.clone()])
}

/// The names passed to `secret('…')` in a template string, in order of appearance, without
/// duplicates. A name that is not a string literal is an error: the engine must know before a run
/// which secrets it reads.
pub fn secret_names(source: &str) -> Result<Vec<String>, TemplateError> {
    let mut names: Vec<String> = Vec::new();
    for region in code_regions(source) {
        let tokens = lex(region.code);
        for (index, token) in tokens.iter().enumerate() {
            if *token != Token::Ident("secret") {
                continue;
            }
            if index > 0 && tokens[index - 1] == Token::Punct(".") {
                continue; // an attribute such as `steps.x.secret`
            }
            if tokens.get(index + 1) == Some(&Token::Punct("=")) {
                continue; // a keyword argument named `secret`
            }
            let literal = match (
                tokens.get(index + 1),
                tokens.get(index + 2),
                tokens.get(index + 3),
            ) {
                (Some(Token::Punct("(")), Some(Token::Str(name)), Some(Token::Punct(")"))) => {
                    Some(name.clone())
                }
                _ => None,
            };
            match literal {
                Some(name) => {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
                None => {
                    return Err(TemplateError {
                        path: String::new(),
                        message: "secret() takes one literal name, such as secret('okta-token')"
                            .into(),
                        line: Some(region.line),
                        kind: TemplateErrorKind::Invalid,
                    });
                }
            }
        }
    }
    Ok(names)
}

/// Converts JSON into a template value. Integers stay integers and key order is kept.
///
/// Lists become [`CheckedList`]s: a loop over data that came from a caller checks the render's
/// memory budget at every item, so a template that builds text item by item stops at the budget
/// instead of after the whole list.
pub fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Array(items) => {
            Value::from_object(CheckedList(items.iter().map(to_value).collect()))
        }
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, item)| (Value::from(key.as_str()), to_value(item)))
            .collect(),
        scalar => Value::from_serialize(scalar),
    }
}

/// A list of the render's data. It reads like minijinja's own lists, but hands out each item only
/// while the render is within its memory budget: minijinja runs no idflow code between the
/// iterations of a loop, and `{% set ns.s = ns.s ~ item %}` copies the whole text on each one, so
/// without this check a long list made a render copy gigabytes before the budget was looked at
/// (found by fuzzing). Past the budget the item is an invalid value, which stops the loop with
/// the budget's error.
#[derive(Debug)]
pub struct CheckedList(Vec<Value>);

impl Object for CheckedList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if let Err(error) = check_alloc() {
            return Some(Value::from(error));
        }
        self.0.get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Seq(self.0.len())
    }
}

/// `range(…)`: minijinja's, checking the memory budget at every step as a [`CheckedList`] does.
fn range_function(lower: isize, upper: Option<isize>, step: Option<isize>) -> Result<Value, Error> {
    let range = minijinja::functions::range(lower, upper, step)?;
    Ok(Value::from_object(CheckedRange(range)))
}

/// minijinja's lazy `range`, handing out each number only while the render is within its memory
/// budget.
#[derive(Debug)]
struct CheckedRange(Value);

impl Object for CheckedRange {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Iterable
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        match self.0.try_iter() {
            Ok(numbers) => {
                minijinja::value::Enumerator::Iter(Box::new(numbers.map(
                    |number| match check_alloc() {
                        Ok(()) => number,
                        Err(error) => Value::from(error),
                    },
                )))
            }
            Err(_) => minijinja::value::Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        self.0.len()
    }
}

/// Converts a template value into JSON. Undefined values are an error.
pub fn to_json(value: &Value) -> Result<serde_json::Value, TemplateError> {
    contain_panic(|| value_to_json(value))
        .map_err(|err| TemplateError::new("", error_message(&err)))
}

/// The value to put in the context under [`SECRETS_KEY`]: readable one name at a time through
/// `secret('name')`, printed as `[secrets]`, never listed.
pub fn secrets_value(secrets: BTreeMap<String, String>) -> Value {
    Value::from_object(Secrets(secrets))
}

struct Secrets(BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Secrets")
            .field(&self.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Object for Secrets {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    // No `get_value`: the values are reachable only through `secret('name')`, which marks the render
    // as secret-derived. `__secrets.name` is undefined.

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[secrets]")
    }
}

fn value_to_json(value: &Value) -> Result<serde_json::Value, Error> {
    Ok(match value.kind() {
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "the value is undefined",
            ));
        }
        ValueKind::None => serde_json::Value::Null,
        ValueKind::Bool => serde_json::Value::Bool(value.is_true()),
        ValueKind::Number => number_to_json(value)?,
        ValueKind::String => {
            serde_json::Value::String(value.as_str().unwrap_or_default().to_owned())
        }
        ValueKind::Bytes => serde_json::Value::String(
            String::from_utf8_lossy(value.as_bytes().unwrap_or_default()).into_owned(),
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = value.try_iter()?;
            serde_json::Value::Array(
                items
                    .map(|item| value_to_json(&item))
                    .collect::<Result<_, _>>()?,
            )
        }
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            let pairs = value.as_object().and_then(|object| object.try_iter_pairs());
            if let Some(pairs) = pairs {
                for (key, item) in pairs {
                    let key = key.as_str().map_or_else(|| key.to_string(), str::to_owned);
                    map.insert(key, value_to_json(&item)?);
                }
            } else {
                for key in value.try_iter()? {
                    let item = value.get_item(&key)?;
                    let key = key.as_str().map_or_else(|| key.to_string(), str::to_owned);
                    map.insert(key, value_to_json(&item)?);
                }
            }
            serde_json::Value::Object(map)
        }
        ValueKind::Plain => serde_json::Value::String(value.to_string()),
        ValueKind::Invalid => {
            return Err(Error::new(ErrorKind::InvalidOperation, value.to_string()));
        }
        _ => serde_json::Value::String(value.to_string()),
    })
}

fn number_to_json(value: &Value) -> Result<serde_json::Value, Error> {
    if value.is_integer() {
        if let Some(int) = value.as_i64() {
            return Ok(serde_json::Value::from(int));
        }
        if let Ok(int) = u64::try_from(value.clone()) {
            return Ok(serde_json::Value::from(int));
        }
    }
    let float = f64::try_from(value.clone())?;
    serde_json::Number::from_f64(float)
        .map(serde_json::Value::Number)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("{float} is not a JSON number"),
            )
        })
}

// ----- errors -----

/// Builds a [`TemplateError`] from a minijinja error, naming the undefined path when that is what
/// went wrong.
fn error_from(err: &Error, path: &str, source: &str, ctx: Option<&Value>) -> TemplateError {
    let line = err.line().and_then(|line| u32::try_from(line).ok());
    if let Some(hit) = BUDGET_HIT.get() {
        return TemplateError {
            line,
            ..budget_error(path, hit)
        };
    }
    if err.kind() == ErrorKind::OutOfFuel {
        return TemplateError {
            path: path.to_owned(),
            message: format!(
                "the render ran out of fuel after {FUEL} instructions (the render CPU budget)"
            ),
            line,
            kind: TemplateErrorKind::Budget,
        };
    }
    let message = if err.kind() == ErrorKind::UndefinedError {
        match ctx
            .map(|ctx| undefined_paths(source, ctx))
            .unwrap_or_default()
        {
            missing if missing.is_empty() => format!("undefined value in `{}`", preview(source)),
            missing if missing.len() == 1 => format!("undefined value `{}`", missing[0]),
            missing => format!(
                "undefined values {}",
                missing
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    } else {
        let message = error_message(err);
        if source.is_empty() {
            message
        } else {
            format!("{message} in `{}`", preview(source))
        }
    };
    TemplateError {
        path: path.to_owned(),
        message,
        line,
        kind: TemplateErrorKind::Invalid,
    }
}

fn error_message(err: &Error) -> String {
    match (err.kind(), err.detail()) {
        // Our own functions and filters phrase their errors completely.
        (ErrorKind::InvalidOperation, Some(detail)) => detail.to_owned(),
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    }
}

pub(crate) fn preview(source: &str) -> Cow<'_, str> {
    const MAX: usize = 120;
    let source = source.trim();
    if source.chars().count() <= MAX {
        Cow::Borrowed(source)
    } else {
        Cow::Owned(format!("{}…", source.chars().take(MAX).collect::<String>()))
    }
}

/// The dotted paths a template reads that are undefined in `ctx`, each cut at its first missing
/// part (`steps.nope` for `steps.nope.user.id`), sorted. Names bound inside the template (loop
/// variables, `set`) are not reported.
fn undefined_paths(source: &str, ctx: &Value) -> Vec<String> {
    let names = match single_expression(source) {
        Some(expr) => match ENV.compile_expression(expr) {
            Ok(expr) => expr.undeclared_variables(true),
            Err(_) => return Vec::new(),
        },
        None => match ENV.template_from_str(source) {
            Ok(template) => template.undeclared_variables(true),
            Err(_) => return Vec::new(),
        },
    };
    let mut missing: Vec<String> = Vec::new();
    for name in names {
        let mut current = ctx.clone();
        let mut seen = Vec::new();
        for part in name.split('.') {
            seen.push(part);
            if ENV.globals().any(|(global, _)| global == part) && seen.len() == 1 {
                break;
            }
            let next = current.get_attr(part).unwrap_or(Value::UNDEFINED);
            if next.is_undefined() {
                if !matches!(current.kind(), ValueKind::Map | ValueKind::Undefined)
                    && seen.len() > 1
                {
                    break; // a method or attribute of a string or list, not a data path
                }
                let path = seen.join(".");
                if !missing.contains(&path) {
                    missing.push(path);
                }
                break;
            }
            current = next;
        }
    }
    missing.sort();
    missing
}

// ----- scanning template source -----

struct Region<'a> {
    code: &'a str,
    /// Line of the region's start, 1-based.
    line: u32,
    /// `{% %}` rather than `{{ }}`.
    block: bool,
}

/// The code inside `{{ }}` and `{% %}` tags. Comments and `{% raw %}` blocks are skipped.
fn code_regions(source: &str) -> Vec<Region<'_>> {
    let mut regions = Vec::new();
    let mut rest = 0;
    while let Some(found) = source[rest..].find('{') {
        let start = rest + found;
        let opener = source.get(start..start + 2).unwrap_or("");
        let (closer, block) = match opener {
            "{{" => ("}}", false),
            "{%" => ("%}", true),
            "{#" => ("#}", false),
            _ => {
                rest = start + 1;
                continue;
            }
        };
        let body_start = start + 2;
        let Some(length) = tag_end(&source[body_start..], closer) else {
            break;
        };
        let body_end = body_start + length;
        rest = body_end + 2;
        if opener == "{#" {
            continue;
        }
        let code = &source[body_start..body_end];
        let line = 1 + source[..start].matches('\n').count() as u32;
        if block && first_word(code) == "raw" {
            match source[rest..].find("endraw") {
                Some(end) => {
                    rest += end;
                    rest += source[rest..]
                        .find("%}")
                        .map_or(source.len() - rest, |close| close + 2);
                }
                None => break,
            }
            continue;
        }
        regions.push(Region { code, line, block });
    }
    regions
}

/// Where the closer of a tag is in `body` (the text after `{{`, `{%` or `{#`), skipping string
/// literals and, for `}}`, nested brackets: `{{ {'a': {'b': '}}'}} }}` is one expression, as
/// minijinja reads it.
fn tag_end(body: &str, closer: &str) -> Option<usize> {
    if closer == "#}" {
        return body.find(closer);
    }
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if let Some(open) = quote {
            if byte == b'\\' {
                at += 2;
                continue;
            }
            if byte == open {
                quote = None;
            }
            at += 1;
            continue;
        }
        // Bytes, not `body[at..]`: `at` steps one byte at a time and may sit inside a character.
        if depth == 0 && bytes[at..].starts_with(closer.as_bytes()) {
            return Some(at);
        }
        match byte {
            b'\'' | b'"' => quote = Some(byte),
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    None
}

fn first_word(code: &str) -> &str {
    let code = code.trim_start_matches(['-', '+', '~']).trim_start();
    let end = code
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(code.len());
    &code[..end]
}

/// Refuses tags that would load other templates: idflow templates are self-contained.
fn check_tags(source: &str) -> Result<(), (String, Option<u32>)> {
    for region in code_regions(source) {
        if !region.block {
            continue;
        }
        let word = first_word(region.code);
        if matches!(word, "include" | "import" | "extends" | "from") {
            return Err((
                format!(
                    "`{word}` is not available in idflow templates: a template cannot load another"
                ),
                Some(region.line),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Str(String),
    Punct(&'a str),
    Other,
}

/// A tokenizer just good enough to find `secret('…')` calls.
fn lex(code: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let c = bytes[at];
        if c.is_ascii_whitespace() {
            at += 1;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = at;
            while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                at += 1;
            }
            tokens.push(Token::Ident(&code[start..at]));
        } else if c == b'\'' || c == b'"' {
            let mut text = String::new();
            at += 1;
            let mut closed = false;
            while let Some(ch) = code[at..].chars().next() {
                at += ch.len_utf8();
                if ch == '\\' {
                    if let Some(escaped) = code[at..].chars().next() {
                        at += escaped.len_utf8();
                        text.push(escaped);
                    }
                } else if ch as u32 == c as u32 {
                    closed = true;
                    break;
                } else {
                    text.push(ch);
                }
            }
            tokens.push(if closed {
                Token::Str(text)
            } else {
                Token::Other
            });
        } else if c.is_ascii_digit() {
            while at < bytes.len()
                && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'.' || bytes[at] == b'_')
            {
                at += 1;
            }
            tokens.push(Token::Other);
        } else {
            let two = code.get(at..at + 2).unwrap_or("");
            if matches!(two, "==" | "!=" | "<=" | ">=" | "//" | "**") {
                tokens.push(Token::Punct(two));
                at += 2;
            } else {
                let ch_len = code[at..].chars().next().map_or(1, char::len_utf8);
                tokens.push(Token::Punct(&code[at..at + ch_len]));
                at += ch_len;
            }
        }
    }
    tokens
}

// ----- formatter, functions and filters -----

fn strict_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    check_alloc()?;
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "cannot print an undefined value",
        ));
    }
    if value.is_none() {
        return Ok(());
    }
    minijinja::escape_formatter(out, state, value)
}

fn invalid(message: impl Into<Cow<'static, str>>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

/// `now()`: the step time as RFC 3339, from the context.
fn now_function(state: &State) -> Result<Value, Error> {
    check_alloc()?;
    state
        .lookup(NOW_KEY)
        .filter(|value| !value.is_undefined() && !value.is_none())
        .ok_or_else(|| invalid("now() is not available here"))
}

/// `secret('name')`: a secret the engine resolved for this flow.
fn secret_function(state: &State, name: &str) -> Result<Value, Error> {
    check_alloc()?;
    let missing = || invalid(format!("secret `{name}` is not available"));
    let secrets = state.lookup(SECRETS_KEY).ok_or_else(missing)?;
    let value = secrets
        .downcast_object_ref::<Secrets>()
        .and_then(|secrets| secrets.0.get(name))
        .ok_or_else(missing)?;
    SECRET_READ.set(true);
    Ok(Value::from(value.as_str()))
}

/// `tojson(indent=None)`: plain JSON (no HTML escaping), integers kept.
fn tojson_filter(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    check_alloc()?;
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = value_to_json(value)?;
    let text = match indent {
        None => serde_json::to_string(&json),
        Some(width) => {
            let spaces = " ".repeat(width.min(16));
            let mut buffer = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(spaces.as_bytes());
            let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, formatter);
            serde::Serialize::serialize(&json, &mut serializer)
                .map(|()| String::from_utf8_lossy(&buffer).into_owned())
        }
    }
    .map_err(|err| invalid(format!("tojson: {err}")))?;
    Ok(Value::from(text))
}

/// `fromjson`: parses JSON text.
fn fromjson_filter(text: &str) -> Result<Value, Error> {
    check_alloc()?;
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|err| invalid(format!("fromjson: {err}")))?;
    Ok(to_value(&json))
}

/// `b64encode`: standard base64 with padding.
fn b64encode_filter(value: &Value) -> Result<Value, Error> {
    check_alloc()?;
    let bytes: Cow<'_, [u8]> = match (value.as_str(), value.as_bytes()) {
        (Some(text), _) => Cow::Borrowed(text.as_bytes()),
        (None, Some(bytes)) => Cow::Borrowed(bytes),
        _ if value.is_undefined() => {
            return Err(Error::new(
                ErrorKind::UndefinedError,
                "b64encode of an undefined value",
            ));
        }
        _ => Cow::Owned(value.to_string().into_bytes()),
    };
    Ok(Value::from(
        base64::engine::general_purpose::STANDARD.encode(bytes),
    ))
}

/// `b64decode`: standard or URL-safe base64, padded or not, to UTF-8 text.
fn b64decode_filter(text: &str) -> Result<Value, Error> {
    check_alloc()?;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| invalid("b64decode: the text is not base64"))?;
    String::from_utf8(bytes)
        .map(Value::from)
        .map_err(|_| invalid("b64decode: the decoded bytes are not UTF-8 text"))
}

/// `urlencode`: percent-encodes text; a mapping becomes a query string (`a=1&b=x%20y`).
fn urlencode_filter(value: &Value) -> Result<Value, Error> {
    check_alloc()?;
    match value.kind() {
        ValueKind::Map => {
            let mut parts = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                if item.is_none() || item.is_undefined() {
                    continue;
                }
                parts.push(format!(
                    "{}={}",
                    percent_encode(&key.to_string()),
                    percent_encode(&plain_text(&item))
                ));
            }
            Ok(Value::from(parts.join("&")))
        }
        ValueKind::Undefined => Err(Error::new(
            ErrorKind::UndefinedError,
            "urlencode of an undefined value",
        )),
        _ => Ok(Value::from(percent_encode(&plain_text(value)))),
    }
}

fn plain_text(value: &Value) -> String {
    if value.is_none() {
        String::new()
    } else {
        value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `date(format='%Y-%m-%dT%H:%M:%S%:z', tz=None)`: formats an RFC 3339 date (or Unix seconds) with
/// strftime, optionally in an IANA time zone.
fn date_filter(value: &Value, format: Option<&str>, tz: Option<&str>) -> Result<Value, Error> {
    check_alloc()?;
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            "date of an undefined value",
        ));
    }
    let json = value_to_json(value)?;
    let date =
        crate::datetime::parse_datetime(&json).map_err(|err| invalid(format!("date: {err}")))?;
    let zone = tz
        .map(crate::datetime::parse_timezone)
        .transpose()
        .map_err(|err| invalid(format!("date: {err}")))?;
    crate::datetime::format_datetime(&date, format, zone)
        .map(Value::from)
        .map_err(|err| invalid(format!("date: {err}")))
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Value {
        let mut ctx = to_value(&json!({
            "input": { "n": "Ada", "count": 3, "big": 9_007_199_254_740_993_u64, "ratio": 0.5, "tags": ["a", "b"], "nothing": null },
            "steps": { "x": { "y": { "id": 7, "ok": true }, "list": [1, 2, 3] } },
            "__now": "2024-05-01T08:30:00Z",
        }));
        let mut secrets = BTreeMap::new();
        secrets.insert("okta-token".to_owned(), "s3cr3t".to_owned());
        ctx = minijinja::value::merge_maps([
            minijinja::context! { __secrets => secrets_value(secrets) },
            ctx,
        ]);
        ctx
    }

    /// Compiles `template` and renders it against [`context`]; `expected` is the JSON result or an
    /// error fragment.
    fn check(template: serde_json::Value, expected: Result<serde_json::Value, &str>) {
        let got = Compiled::new(&template).and_then(|compiled| compiled.render(&context()));
        match expected {
            Ok(value) => assert_eq!(got, Ok(value), "{template}"),
            Err(fragment) => {
                let err = got.expect_err(&template.to_string()).to_string();
                assert!(
                    err.contains(fragment),
                    "{template}: `{err}` lacks `{fragment}`"
                );
            }
        }
    }

    #[test]
    fn text_outside_ascii_inside_a_tag_is_read_not_a_panic() {
        // Found by fuzzing: the tag scanner sliced text inside a multi-byte character.
        assert!(eval_expression("ଅ", &context()).is_err());
        check(
            json!("{{ input.n ~ 'é' }}{{ é }}"),
            Err("syntax error: unexpected character"),
        );
        check(json!("{{ {'é': 1} }}"), Ok(json!({ "é": 1 })));
    }

    #[test]
    fn building_a_string_in_a_loop_over_caller_data_is_held_to_the_memory_budget() {
        // Found by fuzzing: each `~` copies the whole string so far, and no idflow code ran between
        // iterations, so a list from the caller made the render copy gigabytes before any check.
        let users: Vec<String> = (0..20_000).map(|i| format!("user{i:05}")).collect();
        let ctx = to_value(&json!({ "input": { "users": users } }));
        let limits = Limits {
            output_bytes: 1 << 20,
            alloc_bytes: 16 << 20,
        };
        for source in [
            "{% set ns = namespace(s='') %}{% for u in input.users %}{% set ns.s = ns.s ~ u ~ ',' %}{% endfor %}{{ ns.s | length }}",
            "{% set ns = namespace(s='') %}{% for i in range(input.users | length) %}{% set ns.s = ns.s ~ input.users[i] %}{% endfor %}{{ ns.s | length }}",
        ] {
            let before = budget::allocated_bytes();
            let result = Compiled::text(source)
                .expect("compiles")
                .render_within(&ctx, &limits);
            let used = budget::allocated_bytes() - before;
            let error = result.expect_err(source);
            assert_eq!(error.kind, TemplateErrorKind::Budget, "{source}: {error}");
            assert!(
                used < 2 * limits.alloc_bytes,
                "{source}: {}",
                format_size(used)
            );
        }
    }

    #[test]
    fn an_expression_that_fails_after_reading_a_secret_keeps_it_out_of_the_error() {
        // Found by fuzzing: `date` quotes the text it cannot read, and eval_expression passed
        // that message on.
        for expr in [
            "secret('okta-token') | date",
            "(secret('okta-token') | trim) | date",
            "secret('okta-token') | fromjson",
            "{{ secret('okta-token') ~ 'x' | date }}",
        ] {
            let (result, read) = watch_secrets(|| eval_expression(expr, &context()));
            let error = result.expect_err(expr);
            assert!(read, "{expr}");
            assert!(!error.to_string().contains("s3cr3t"), "{expr}: {error}");
            assert!(
                error.message.contains("details withheld"),
                "{expr}: {error}"
            );
        }
        // Errors that read no secret keep their details.
        let error = eval_expression("'soon' | date", &context()).expect_err("not a date");
        assert!(error.message.contains("soon"), "{error}");
    }

    #[test]
    fn a_panic_inside_minijinja_fails_the_render_not_the_worker() {
        // Found by fuzzing: minijinja 2.24 panics iterating a reversed slice of an empty sequence.
        let message = "the template engine failed on this value";
        check(json!("{{ [][::-1] | list }}"), Err(message));
        check(json!("{{ steps.nope[::-1][::-1] }}"), Err(message));
        check(
            json!("{% for x in [][::-1] %}{{ x }}{% endfor %}"),
            Err(message),
        );
        assert!(
            eval_expression("[][::-1] | list", &context())
                .expect_err("panics inside")
                .message
                .contains(message)
        );
        // A reversed slice with items is unaffected.
        check(json!("{{ input.tags[::-1] }}"), Ok(json!(["b", "a"])));
    }

    #[test]
    fn single_expressions_keep_their_json_type() {
        check(json!("{{ steps.x.y }}"), Ok(json!({ "id": 7, "ok": true })));
        check(json!("  {{ steps.x.list }} "), Ok(json!([1, 2, 3])));
        check(json!("{{ input.count }}"), Ok(json!(3)));
        check(json!("{{ input.count + 1 }}"), Ok(json!(4)));
        check(
            json!("{{ input.big }}"),
            Ok(json!(9_007_199_254_740_993_u64)),
        );
        check(json!("{{ input.ratio }}"), Ok(json!(0.5)));
        check(json!("{{ steps.x.y.ok }}"), Ok(json!(true)));
        check(json!("{{ input.nothing }}"), Ok(json!(null)));
        check(json!("{{- input.count -}}"), Ok(json!(3)));
        check(
            json!("{{ {'a': input.count, 'b': [input.n]} }}"),
            Ok(json!({ "a": 3, "b": ["Ada"] })),
        );
        check(
            json!("{{ {'a': {'b': '}}'}} }}"),
            Ok(json!({ "a": { "b": "}}" } })),
        );
    }

    #[test]
    fn other_strings_render_to_text() {
        check(json!("Hi {{ input.n }}"), Ok(json!("Hi Ada")));
        check(json!("{{ input.count }}{{ input.count }}"), Ok(json!("33")));
        check(json!("{{ input.count }} items"), Ok(json!("3 items")));
        check(json!("[{{ input.nothing }}]"), Ok(json!("[]")));
        check(
            json!("{% for t in input.tags %}{{ t }},{% endfor %}"),
            Ok(json!("a,b,")),
        );
        check(json!("line {{ input.n }}\n"), Ok(json!("line Ada\n")));
        check(json!("<b>{{ '&' }}</b>"), Ok(json!("<b>&</b>")));
        check(json!("plain text"), Ok(json!("plain text")));
        check(
            json!({ "a": "{{ steps.x.y.id }}", "b": ["x", "Hi {{ input.n }}"], "c": 1 }),
            Ok(json!({ "a": 7, "b": ["x", "Hi Ada"], "c": 1 })),
        );
    }

    #[test]
    fn undefined_values_are_errors_that_name_the_path() {
        check(
            json!("{{ steps.nope }}"),
            Err("undefined value `steps.nope`"),
        );
        check(
            json!("{{ steps.nope.user.id }}"),
            Err("undefined value `steps.nope`"),
        );
        check(
            json!("Hi {{ input.nmae }}"),
            Err("undefined value `input.nmae`"),
        );
        check(
            json!({ "headers": { "Authorization": "{{ steps.x.token }}" } }),
            Err("`headers.Authorization`: undefined value `steps.x.token`"),
        );
        check(json!("{{ inptu }}"), Err("undefined value `inptu`"));
        check(
            json!("{{ [steps.x.nope] }}"),
            Err("undefined value `steps.x.nope`"),
        );
    }

    #[test]
    fn optional_data_idioms_still_work() {
        check(json!("{{ steps.nope.y is defined }}"), Ok(json!(false)));
        check(json!("{{ steps.x.y is defined }}"), Ok(json!(true)));
        check(
            json!("{{ steps.nope.y | default('n/a') }}"),
            Ok(json!("n/a")),
        );
        check(
            json!("{% if steps.nope.deep %}yes{% else %}no{% endif %}"),
            Ok(json!("no")),
        );
        check(
            json!("{{ input.nothing or 'fallback' }}"),
            Ok(json!("fallback")),
        );
    }

    #[test]
    fn the_sandbox_refuses_loading_and_stops_runaway_loops() {
        check(
            json!("{% include 'x' %}"),
            Err("`include` is not available"),
        );
        check(
            json!("{% import 'x' as y %}"),
            Err("`import` is not available"),
        );
        check(
            json!("{% extends 'base' %}"),
            Err("`extends` is not available"),
        );
        check(
            json!(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
            ),
            // Every inner loop allocates its iterator; whichever budget runs out first stops it.
            Err("budget)"),
        );
        check(
            json!(
                "{% for i in range(100000) %}{{ i + i + i + i + i + i + i + i + i + i + i + i + i + i + i + i + i + i + i + i }}{% endfor %}"
            ),
            Err("fuel"),
        );
        check(json!("{{ debug() }}"), Err("unknown function"));
    }

    #[test]
    fn now_and_secret_read_the_context() {
        check(json!("{{ now() }}"), Ok(json!("2024-05-01T08:30:00Z")));
        let rendered = Compiled::text("Bearer {{ secret('okta-token') }}")
            .unwrap()
            .render_within(&context(), &Limits::default())
            .unwrap();
        assert_eq!(rendered.value, json!("Bearer s3cr3t"));
        assert_eq!(rendered.secret_paths, vec![Vec::<PathSegment>::new()]);
        check(
            json!("{{ secret('other') }}"),
            Err("secret `other` is not available"),
        );
        check(json!("{{ __secrets }}"), Ok(json!("[secrets]")));
        check(
            json!("{{ __secrets['okta-token'] }}"),
            Err("undefined value"),
        );
        let no_now = Compiled::text("{{ now() }}")
            .unwrap()
            .render(&to_value(&json!({})));
        assert!(
            no_now
                .unwrap_err()
                .message
                .contains("now() is not available")
        );
    }

    #[test]
    fn filters() {
        check(
            json!("{{ steps.x.y | tojson }}"),
            Ok(json!(r#"{"id":7,"ok":true}"#)),
        );
        check(json!("{{ '<&>' | tojson }}"), Ok(json!(r#""<&>""#)));
        check(
            json!("{{ steps.x.list | tojson(indent=2) }}"),
            Ok(json!("[\n  1,\n  2,\n  3\n]")),
        );
        check(
            json!("{{ '{\"a\": [1, 2]}' | fromjson }}"),
            Ok(json!({ "a": [1, 2] })),
        );
        check(json!("{{ 'not json' | fromjson }}"), Err("fromjson:"));
        check(
            json!("{{ 'user:pass' | b64encode }}"),
            Ok(json!("dXNlcjpwYXNz")),
        );
        check(
            json!("{{ 'dXNlcjpwYXNz' | b64decode }}"),
            Ok(json!("user:pass")),
        );
        check(json!("{{ '!!' | b64decode }}"), Err("not base64"));
        check(
            json!("{{ 'a b&c/é' | urlencode }}"),
            Ok(json!("a%20b%26c%2F%C3%A9")),
        );
        check(
            json!("{{ {'q': 'a b', 'n': 2} | urlencode }}"),
            Ok(json!("q=a%20b&n=2")),
        );
        check(
            json!("{{ input.n | upper }} {{ 'X' | lower }}"),
            Ok(json!("ADA x")),
        );
        check(
            json!("{{ now() | date('%Y-%m-%d %H:%M', 'Europe/Paris') }}"),
            Ok(json!("2024-05-01 10:30")),
        );
        check(
            json!("{{ now() | date }}"),
            Ok(json!("2024-05-01T08:30:00Z")),
        );
        check(json!("{{ 0 | date('%Y') }}"), Ok(json!("1970")));
        check(json!("{{ now() | date('%Q') }}"), Err("date:"));
        check(
            json!("{{ now() | date('%Y', 'Mars/Base') }}"),
            Err("unknown time zone"),
        );
    }

    #[test]
    fn literals_cost_nothing_and_are_reported() {
        assert!(
            Compiled::new(&json!({ "a": ["x", 1, { "b": "no template" }] }))
                .unwrap()
                .is_literal()
        );
        assert!(
            !Compiled::new(&json!({ "a": ["{{ x }}"] }))
                .unwrap()
                .is_literal()
        );
        assert!(Compiled::text("50% off {not a tag}").unwrap().is_literal());
    }

    #[test]
    fn syntax_errors_name_the_path_and_line() {
        let err = Compiled::new(&json!({ "body": "a\n{{ x + }}" })).unwrap_err();
        assert_eq!(err.path, "body");
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("syntax error"), "{err}");
    }

    #[test]
    fn truthiness_follows_json_emptiness() {
        for (value, expected) in [
            (json!(null), false),
            (json!(false), false),
            (json!(0), false),
            (json!(0.0), false),
            (json!(""), false),
            (json!([]), false),
            (json!({}), false),
            (json!(true), true),
            (json!(-1), true),
            (json!("0"), true),
            (json!([0]), true),
            (json!({ "a": null }), true),
        ] {
            assert_eq!(truthy(&value), expected, "{value}");
        }
    }

    #[test]
    fn eval_expression_binds_extra_variables() {
        let ctx = with_bindings(
            &context(),
            &[("item", &json!({ "status": "ACTIVE", "n": 2 }))],
        );
        assert_eq!(
            eval_expression("item.status == 'ACTIVE'", &ctx),
            Ok(json!(true))
        );
        assert_eq!(
            eval_expression("{{ item.n * input.count }}", &ctx),
            Ok(json!(6))
        );
        assert_eq!(eval_expression("item.n * input.count", &ctx), Ok(json!(6)));
        let err = eval_expression("item.nope", &ctx).unwrap_err();
        assert_eq!(err.message, "undefined value `item.nope`");
    }

    #[test]
    fn secret_names_lists_literal_names() {
        let check_names = |source: &str, expected: Result<Vec<&str>, &str>| match expected {
            Ok(names) => assert_eq!(
                secret_names(source),
                Ok(names.into_iter().map(String::from).collect()),
                "{source}"
            ),
            Err(fragment) => assert!(
                secret_names(source).unwrap_err().message.contains(fragment),
                "{source}"
            ),
        };
        check_names("Bearer {{ secret('okta') }}", Ok(vec!["okta"]));
        check_names(
            "{{ secret(\"a\") }} {{ secret( 'b' ) ~ secret('a') }}",
            Ok(vec!["a", "b"]),
        );
        check_names("no templates, secret('x') is just text", Ok(vec![]));
        check_names(
            "{{ steps.x.secret }} {{ 'secret(y)' }} {# secret(z) #}",
            Ok(vec![]),
        );
        check_names(
            "{% if x %}{{ secret('in-block') }}{% endif %}",
            Ok(vec!["in-block"]),
        );
        check_names(
            "{{ '}}' ~ secret('after-brace') }}",
            Ok(vec!["after-brace"]),
        );
        check_names("{{ secret(input.name) }}", Err("literal name"));
        check_names("{% set s = secret %}", Err("literal name"));
    }

    /// Renders `template` with secrets allowed; returns the value and the secret-derived leaves.
    fn render_secrets(template: serde_json::Value) -> (serde_json::Value, Vec<String>) {
        let rendered = Compiled::new(&template)
            .unwrap()
            .render_within(&context(), &Limits::default())
            .unwrap_or_else(|e| panic!("{template}: {e}"));
        let paths = rendered.secret_paths.iter().map(|p| path_text(p)).collect();
        (rendered.value, paths)
    }

    #[test]
    fn whatever_is_computed_from_a_secret_is_secret_derived() {
        // The reported findings: derived forms that plain-value redaction missed.
        let (value, paths) = render_secrets(json!({
            "headers": {
                "Authorization": "Basic {{ ('svc:' ~ secret('okta-token')) | b64encode }}",
                "X-Upper": "{{ secret('okta-token') | upper }}",
                "X-Slice": "{{ secret('okta-token')[1:4] }}",
                "X-Json": "{{ {'k': secret('okta-token')} | tojson }}",
                "X-Public": "{{ input.n }}",
            },
            "body": ["plain", "{% if secret('okta-token') == input.n %}yes{% else %}no{% endif %}"],
        }));
        assert_eq!(
            paths,
            vec![
                "headers.Authorization",
                "headers.X-Upper",
                "headers.X-Slice",
                "headers.X-Json",
                "body[1]"
            ]
        );
        assert_eq!(value["headers"]["X-Upper"], json!("S3CR3T"));
        assert_eq!(value["headers"]["X-Public"], json!("Ada"));
        // Masking hides exactly those leaves; splicing puts them back.
        let paths = Compiled::new(
            &json!({ "a": "{{ secret('okta-token') }}", "b": ["x", "{{ input.n }}"] }),
        )
        .unwrap()
        .render_within(&context(), &Limits::default())
        .unwrap();
        let masked = mask(&paths.value, &paths.secret_paths);
        assert_eq!(masked, json!({ "a": "[redacted]", "b": ["x", "Ada"] }));
        let mut restored = masked.clone();
        splice(&mut restored, &paths.value, &paths.secret_paths);
        assert_eq!(restored, paths.value);
        assert_eq!(
            secret_texts(&paths.value, &paths.secret_paths),
            vec!["s3cr3t".to_owned()]
        );
    }

    #[test]
    fn plain_render_refuses_secrets_and_failures_after_a_secret_hide_their_details() {
        let err = Compiled::new(&json!({ "text": "key={{ secret('okta-token') }}" }))
            .unwrap()
            .render(&context())
            .unwrap_err();
        assert_eq!(err.kind, TemplateErrorKind::Secret);
        assert_eq!(err.path, "text");
        // `int` of a non-number quotes the value in its error; it must not reach the message.
        let err = Compiled::text("{{ (secret('okta-token') ~ 'x') | fromjson }}")
            .unwrap()
            .render_within(&context(), &Limits::default())
            .unwrap_err();
        assert!(!err.message.contains("s3cr3t"), "{err}");
        assert!(err.message.contains("withheld"), "{err}");
    }

    #[test]
    fn budgets_stop_a_render_that_grows_too_large() {
        let limits = Limits {
            output_bytes: 1 << 20,
            alloc_bytes: 8 << 20,
        };
        let render = |template: serde_json::Value, ctx: &Value| {
            Compiled::new(&template)
                .unwrap()
                .render_within(ctx, &limits)
        };
        let big = to_value(&json!({ "s": "x".repeat(1000), "n": 50_000, "list": vec![1; 5000] }));
        // One expression: 50 MB of text from 1 KB of input.
        let err = render(
            json!("{{ input.s * input.n }}"),
            &to_value(&json!({ "input": { "s": "x".repeat(1000), "n": 50_000 } })),
        )
        .unwrap_err();
        assert_eq!(err.kind, TemplateErrorKind::Budget, "{err}");
        assert!(err.message.contains("budget"), "{err}");
        // A text template stops writing as soon as it passes the output budget.
        let err = render(
            json!("{% for i in input.list %}{{ input.s }}{% endfor %}"),
            &to_value(&json!({ "input": big })),
        )
        .unwrap_err();
        assert_eq!(err.kind, TemplateErrorKind::Budget, "{err}");
        assert!(err.message.contains("output budget"), "{err}");
        // Allocations that never reach the output are counted too.
        let err = render(
            json!("{% for i in input.list %}{{ (input.s * 1000) | length }}{% endfor %}"),
            &to_value(&json!({ "input": big })),
        )
        .unwrap_err();
        assert_eq!(err.kind, TemplateErrorKind::Budget, "{err}");
        assert!(err.message.contains("memory budget"), "{err}");
        // Within budget, the same templates work.
        assert_eq!(
            render(
                json!("{{ (input.s * 3) | length }}"),
                &to_value(&json!({ "input": big }))
            )
            .unwrap()
            .value,
            json!(3000)
        );
        let fuel = render(
            json!(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
            ),
            &context(),
        )
        .unwrap_err();
        assert_eq!(fuel.kind, TemplateErrorKind::Budget);
        // Each inner loop allocates its iterator, and a range checks the memory budget at every
        // step: the memory budget may run out before the fuel does.
        assert!(
            fuel.message.contains("fuel") || fuel.message.contains("memory budget"),
            "{fuel}"
        );
    }

    #[test]
    fn compiled_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Compiled>();
    }

    /// Throwaway measurement: `cargo test --release -p domain --lib template::tests::render_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn render_speed() {
        let mut steps = serde_json::Map::new();
        for i in 0..20 {
            steps.insert(format!("s{i}"), json!({ "id": i, "profile": { "login": format!("u{i}@example.com"), "firstName": "Ada" }, "groups": [1, 2, 3] }));
        }
        steps.insert("x".into(), json!({ "y": { "id": 7 } }));
        let ctx = to_value(
            &json!({ "input": { "n": "Ada" }, "steps": steps, "run": { "id": "r1" }, "__now": "2024-05-01T00:00:00Z" }),
        );
        let compiled =
            Compiled::new(&json!({ "a": "{{ steps.x.y }}", "b": "Hi {{ input.n }}" })).unwrap();
        let rounds = 200_000;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(compiled.render(&ctx).unwrap());
        }
        let per = started.elapsed() / rounds;
        println!("render: {per:?} per call");
    }
}
