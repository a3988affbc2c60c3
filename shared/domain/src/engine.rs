//! The engine: a pure state machine that decides what a run does next.
//!
//! Given a compiled flow, a run's [`RunState`] and what happened since the last call ([`Event`]s), the
//! engine advances every fiber as far as it can without I/O, records completed steps, and returns the
//! [`Effect`]s the runner must perform (card calls, helper runs, timers). It reads no clock (time comes
//! in as `now`), touches no network or disk, and never panics on input: a broken template or a failing
//! card becomes a step error that `try`/`on_error` can handle.
//!
//! # Model
//! - A *fiber* is one sequential thread of steps. A run starts with fiber 0 on the top-level steps;
//!   an inline `for_each`/`map` starts one fiber per item (at most `concurrency` at a time).
//! - A fiber holds a stack of frames: a step list with a cursor, a loop waiting for its iterations, a
//!   `try` block, an `on_error` block.
//! - An effect stays *pending* in the state until its result arrives, so a run restored from a
//!   checkpoint re-issues exactly the effects whose results were lost ([`Event::Resume`]). Completed
//!   steps are never re-run.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::cards::{self, CardError, CardKind, CardSpec, PureContext};
use crate::diag::Diagnostic;
use crate::model::{Flow, HistoryMode, LoopBody, OnError, RetryOn, RetryPolicy, Step, StepKind};
use crate::run::{RunError, StepError, StepRecord, StepStatus};
use crate::template::{self, Compiled, JsonPath, TemplateError, TemplateErrorKind};

/// Default timeout of a card call when the step sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `wait` / `wait_until`, in days.
pub const MAX_WAIT_DAYS: i64 = 30;

/// Index of a step in [`CompiledFlow::nodes`].
type NodeId = usize;

/// A flow with every template compiled, ready for the engine. Built once per flow version.
pub struct CompiledFlow {
    pub flow: Flow,
    nodes: Vec<Node>,
    root: Vec<NodeId>,
    /// Names passed to `secret('…')` anywhere in the flow; the runner resolves exactly these.
    pub secret_names: Vec<String>,
    /// Budgets of every render (from `limits.render`).
    render_limits: template::Limits,
}

struct Node {
    key: String,
    kind: NodeKind,
    guard: Option<Compiled>,
    retry: Option<RetryPolicy>,
    timeout: Duration,
    on_error: ErrorPlan,
}

enum ErrorPlan {
    Fail,
    Continue,
    Steps(Vec<NodeId>),
}

enum NodeKind {
    Card {
        spec: &'static CardSpec,
        with: Compiled,
    },
    If {
        condition: Compiled,
        then: Vec<NodeId>,
        otherwise: Vec<NodeId>,
    },
    ContinueIf {
        condition: Compiled,
    },
    Loop {
        collect: bool,
        items: Compiled,
        var: String,
        concurrency: u32,
        body: Body,
    },
    Try {
        steps: Vec<NodeId>,
        catch: Vec<NodeId>,
    },
    Wait {
        duration: Duration,
    },
    WaitUntil {
        until: Compiled,
    },
}

enum Body {
    Steps(Vec<NodeId>),
    Flow {
        flow: String,
        with: Option<Compiled>,
    },
}

impl NodeKind {
    fn label(&self) -> &'static str {
        match self {
            NodeKind::Card { spec, .. } => spec.name,
            NodeKind::If { .. } => "if",
            NodeKind::ContinueIf { .. } => "continue_if",
            NodeKind::Loop { collect: true, .. } => "map",
            NodeKind::Loop { collect: false, .. } => "for_each",
            NodeKind::Try { .. } => "try",
            NodeKind::Wait { .. } => "wait",
            NodeKind::WaitUntil { .. } => "wait_until",
        }
    }
}

/// Which step list a sequence frame walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", content = "node", rename_all = "snake_case")]
enum ListRef {
    Root,
    Then(NodeId),
    Else(NodeId),
    Body(NodeId),
    Try(NodeId),
    Catch(NodeId),
    OnError(NodeId),
}

impl CompiledFlow {
    /// Compiles every template of a flow. Errors name the step and field.
    pub fn new(flow: Flow, file: &str) -> Result<CompiledFlow, Vec<Diagnostic>> {
        let mut builder = Builder {
            nodes: Vec::new(),
            errors: Vec::new(),
            secrets: Vec::new(),
            file,
        };
        let root = builder.list(&flow.steps);
        if !builder.errors.is_empty() {
            return Err(builder.errors);
        }
        let mut secret_names = builder.secrets;
        secret_names.sort();
        secret_names.dedup();
        let render_limits = template::Limits {
            output_bytes: flow.limits.render_bytes(),
            ..template::Limits::default()
        };
        Ok(CompiledFlow {
            flow,
            nodes: builder.nodes,
            root,
            secret_names,
            render_limits,
        })
    }

    /// When a run started at `started_at` must have ended (`timeout:`), if the flow sets one.
    pub fn deadline(&self, started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let timeout = chrono::Duration::from_std(self.flow.timeout?).ok()?;
        started_at.checked_add_signed(timeout)
    }

    fn list(&self, list: ListRef) -> &[NodeId] {
        match list {
            ListRef::Root => &self.root,
            ListRef::Then(n) => match &self.nodes[n].kind {
                NodeKind::If { then, .. } => then,
                _ => &[],
            },
            ListRef::Else(n) => match &self.nodes[n].kind {
                NodeKind::If { otherwise, .. } => otherwise,
                _ => &[],
            },
            ListRef::Body(n) => match &self.nodes[n].kind {
                NodeKind::Loop {
                    body: Body::Steps(steps),
                    ..
                } => steps,
                _ => &[],
            },
            ListRef::Try(n) => match &self.nodes[n].kind {
                NodeKind::Try { steps, .. } => steps,
                _ => &[],
            },
            ListRef::Catch(n) => match &self.nodes[n].kind {
                NodeKind::Try { catch, .. } => catch,
                _ => &[],
            },
            ListRef::OnError(n) => match &self.nodes[n].on_error {
                ErrorPlan::Steps(steps) => steps,
                _ => &[],
            },
        }
    }
}

struct Builder<'a> {
    nodes: Vec<Node>,
    errors: Vec<Diagnostic>,
    secrets: Vec<String>,
    file: &'a str,
}

impl Builder<'_> {
    fn list(&mut self, steps: &[Step]) -> Vec<NodeId> {
        steps.iter().map(|s| self.step(s)).collect()
    }

    fn compile(&mut self, step: &Step, field: &str, value: &Value) -> Compiled {
        self.collect_secrets(step, field, value);
        match Compiled::new(value) {
            Ok(compiled) => compiled,
            Err(error) => {
                self.error(step, field, &error);
                Compiled::new(&Value::Null).unwrap_or_else(|_| unreachable_literal())
            }
        }
    }

    fn compile_text(&mut self, step: &Step, field: &str, text: &str) -> Compiled {
        self.compile(step, field, &Value::String(text.to_owned()))
    }

    fn collect_secrets(&mut self, step: &Step, field: &str, value: &Value) {
        match value {
            Value::String(text) if text.contains("secret") => match template::secret_names(text) {
                Ok(names) => self.secrets.extend(names),
                Err(error) => self.error(step, field, &error),
            },
            Value::Array(items) => items
                .iter()
                .for_each(|v| self.collect_secrets(step, field, v)),
            Value::Object(map) => map
                .values()
                .for_each(|v| self.collect_secrets(step, field, v)),
            _ => {}
        }
    }

    fn error(&mut self, step: &Step, field: &str, error: &TemplateError) {
        let path = if error.path.is_empty() {
            field.to_owned()
        } else {
            format!("{field}.{}", error.path)
        };
        self.errors.push(Diagnostic {
            file: self.file.to_owned(),
            line: step.location.line,
            column: step.location.column,
            path: format!("step `{}`: {path}", step.key),
            message: error.message.clone(),
        });
    }

    fn step(&mut self, step: &Step) -> NodeId {
        let guard = step
            .guard
            .as_ref()
            .map(|g| self.compile_text(step, "if", g));
        let kind = match &step.kind {
            StepKind::Card { card, with } => match cards::lookup(card) {
                Some(spec) => NodeKind::Card {
                    spec,
                    with: self.compile(step, "with", with),
                },
                None => {
                    self.errors.push(Diagnostic {
                        file: self.file.to_owned(),
                        line: step.location.line,
                        column: step.location.column,
                        path: format!("step `{}`: card", step.key),
                        message: format!("unknown card `{card}`"),
                    });
                    NodeKind::Wait {
                        duration: Duration::ZERO,
                    }
                }
            },
            StepKind::If {
                condition,
                then,
                otherwise,
            } => {
                let condition = self.compile_text(step, "if", condition);
                NodeKind::If {
                    condition,
                    then: self.list(then),
                    otherwise: self.list(otherwise),
                }
            }
            StepKind::ContinueIf { condition } => NodeKind::ContinueIf {
                condition: self.compile_text(step, "continue_if", condition),
            },
            StepKind::Loop(l) => {
                let field = if l.collect { "map" } else { "for_each" };
                let items = self.compile_text(step, field, &l.items);
                let body = match &l.body {
                    LoopBody::Steps(steps) => Body::Steps(self.list(steps)),
                    LoopBody::Flow { flow, with } => Body::Flow {
                        flow: flow.clone(),
                        with: with.as_ref().map(|w| self.compile(step, "with", w)),
                    },
                };
                NodeKind::Loop {
                    collect: l.collect,
                    items,
                    var: l.var.clone(),
                    concurrency: l.concurrency.max(1),
                    body,
                }
            }
            StepKind::Try { steps, catch } => NodeKind::Try {
                steps: self.list(steps),
                catch: self.list(catch),
            },
            StepKind::Wait { duration } => NodeKind::Wait {
                duration: *duration,
            },
            StepKind::WaitUntil { until } => NodeKind::WaitUntil {
                until: self.compile_text(step, "wait_until", until),
            },
        };
        let on_error = match &step.on_error {
            OnError::Fail => ErrorPlan::Fail,
            OnError::Continue => ErrorPlan::Continue,
            OnError::Steps(steps) => ErrorPlan::Steps(self.list(steps)),
        };
        self.nodes.push(Node {
            key: step.key.clone(),
            kind,
            guard,
            retry: step.retry.clone(),
            timeout: step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT),
            on_error,
        });
        self.nodes.len() - 1
    }
}

/// `Compiled::new(&Value::Null)` cannot fail; this keeps the builder free of `unwrap`.
fn unreachable_literal() -> Compiled {
    match Compiled::text("") {
        Ok(c) => c,
        Err(_) => unreachable!("an empty literal always compiles"),
    }
}

/// Everything about a run that templates may read and that does not change while it runs.
pub struct RunContext {
    pub run_id: String,
    pub flow: String,
    pub started_at: DateTime<Utc>,
    pub input: Value,
    pub vars: Value,
    /// Resolved values of [`CompiledFlow::secret_names`].
    pub secrets: BTreeMap<String, String>,
    pub history: HistoryMode,
    /// Caches of the above as template values, built once.
    input_value: minijinja::Value,
    vars_value: minijinja::Value,
    run_value: minijinja::Value,
    secrets_value: minijinja::Value,
}

impl RunContext {
    pub fn new(
        run_id: String,
        flow: String,
        started_at: DateTime<Utc>,
        input: Value,
        vars: Value,
        secrets: BTreeMap<String, String>,
        history: HistoryMode,
    ) -> RunContext {
        let input_value = minijinja::Value::from_serialize(&input);
        let vars_value = minijinja::Value::from_serialize(&vars);
        let run_value = minijinja::Value::from_serialize(json!({
            "id": run_id,
            "flow": flow,
            "started_at": started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }));
        let secrets_value = template::secrets_value(secrets.clone());
        RunContext {
            run_id,
            flow,
            started_at,
            input,
            vars,
            secrets,
            history,
            input_value,
            vars_value,
            run_value,
            secrets_value,
        }
    }
}

/// What happened since the engine last decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The run starts now.
    Start,
    /// The run is restored from a checkpoint: re-issue every pending effect.
    Resume,
    /// A card call finished.
    CardDone {
        effect: u64,
        result: Result<Value, CardError>,
    },
    /// A helper run ended: its output body, or its error.
    ChildDone {
        effect: u64,
        result: Result<Value, RunError>,
    },
    /// A timer is due.
    TimerFired { effect: u64 },
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call an I/O card through its executor, then send [`Event::CardDone`].
    Card {
        effect: u64,
        step: String,
        card: String,
        input: Value,
        timeout: Duration,
        attempt: u32,
    },
    /// Create (idempotently, keyed by run and effect) and enqueue a helper run; send
    /// [`Event::ChildDone`] once it ends.
    StartChild {
        effect: u64,
        step: String,
        flow: String,
        input: Value,
    },
    /// Send [`Event::TimerFired`] at `until`.
    Timer { effect: u64, until: DateTime<Utc> },
}

impl Effect {
    pub fn id(&self) -> u64 {
        match self {
            Effect::Card { effect, .. }
            | Effect::StartChild { effect, .. }
            | Effect::Timer { effect, .. } => *effect,
        }
    }
}

/// Where the run stands after [`advance`].
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Effects are pending; the run goes on when their results arrive.
    Pending,
    /// The run ended well: `{status, headers, body}`.
    Succeeded(Value),
    /// The run failed.
    Failed(RunError),
}

/// The outcome of one [`advance`] call.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub effects: Vec<Effect>,
    /// Steps completed by this call, numbered from the state's previous step count.
    pub records: Vec<StepRecord>,
    pub progress: Progress,
}

/// A run's resumable state. Serialized into every checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    fibers: BTreeMap<u32, Fiber>,
    next_fiber: u32,
    next_effect: u64,
    /// Step records written so far (the next record's `seq`).
    pub seq: u32,
    pending: BTreeMap<u64, Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done: Option<Done>,
    /// Template values of step outputs, rebuilt lazily after a restore.
    #[serde(skip)]
    cache: HashMap<(u32, String), minijinja::Value>,
    /// Secret-derived texts sent with each pending card call, to scrub from what it answers. Kept in
    /// memory only: secrets never reach a checkpoint. A restore re-issues pending calls, which
    /// rebuilds them.
    #[serde(skip)]
    derived: HashMap<u64, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Done {
    Succeeded(Value),
    Failed(RunError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fiber {
    /// The fiber whose loop started this one, and the item index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<(u32, usize)>,
    /// Prefix of step record names, such as `each_user[3].`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    prefix: String,
    frames: Vec<Frame>,
    /// Step outputs visible in this fiber (parents' outputs are visible too).
    outputs: Map<String, Value>,
    /// Loop variable and `error`.
    locals: Map<String, Value>,
    /// Output of the last step this fiber completed (a `map` iteration's result).
    last: Value,
    /// Set while the fiber waits on an effect or on its loop.
    blocked: bool,
    /// Approximate JSON size of `outputs`, for the run's working-memory budget.
    #[serde(default, skip_serializing_if = "is_zero")]
    bytes: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
enum Frame {
    Seq { list: ListRef, index: usize },
    Loop(LoopFrame),
    Try { node: NodeId, catching: bool },
    OnError { node: NodeId, error: Value },
    Stream(Box<StreamFrame>),
}

/// A card called page by page (`stream:`), each record handed to a helper run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StreamFrame {
    node: NodeId,
    card: String,
    /// The card input without `__page`, secret-derived leaves masked.
    input: Value,
    /// Where `input` had secret-derived leaves (re-rendered for every page).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<JsonPath>,
    flow: String,
    state: Value,
    concurrency: usize,
    /// Records fetched and not yet handed to a helper run.
    buffer: std::collections::VecDeque<Value>,
    /// Cursor of the next page (the previous answer's `next`).
    next: Value,
    fetching: bool,
    exhausted: bool,
    running: usize,
    count: u64,
    failed: u64,
    started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoopFrame {
    node: NodeId,
    items: Vec<Value>,
    next: usize,
    running: usize,
    results: Vec<Value>,
    started_at: DateTime<Utc>,
    /// Set when an iteration failed: no new iteration starts and the loop fails once the running
    /// ones are accounted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    fiber: u32,
    node: NodeId,
    kind: PendingKind,
    started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PendingKind {
    /// A card call in flight. `input` is what history shows: secret-derived leaves (at `secrets`)
    /// are masked, so no checkpoint holds a secret; they are rendered again when the call is
    /// re-issued.
    Card {
        input: Value,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secrets: Vec<JsonPath>,
    },
    /// A retry delay; the card is called again with `input` when it fires.
    Retry {
        input: Value,
        attempt: u32,
        until: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secrets: Vec<JsonPath>,
    },
    Child {
        flow: String,
        input: Value,
        slot: Option<usize>,
    },
    Wait {
        until: DateTime<Utc>,
    },
}

/// The engine's failure value while unwinding: what `error` holds in `catch` and `on_error` steps.
fn error_value(step: &str, error: &StepError) -> Value {
    let mut v = json!({ "step": step, "code": error.code, "message": error.message });
    if let Some(status) = error.status {
        v["status"] = json!(status);
    }
    if let Some(detail) = &error.detail {
        v["detail"] = detail.clone();
    }
    v
}

impl RunState {
    /// A fresh state for a run that has not started.
    pub fn new() -> RunState {
        RunState::default()
    }

    /// Whether the run has ended.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// Ids of effects still waiting for a result.
    pub fn pending_effects(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.keys().copied()
    }

    /// Earliest due time among pending timers, if every pending effect is a timer or a helper run.
    pub fn idle_until(&self) -> Option<Option<DateTime<Utc>>> {
        let mut earliest: Option<DateTime<Utc>> = None;
        for p in self.pending.values() {
            match &p.kind {
                PendingKind::Card { .. } => return None,
                PendingKind::Retry { until, .. } | PendingKind::Wait { until } => {
                    earliest = Some(earliest.map_or(*until, |e| e.min(*until)));
                }
                PendingKind::Child { .. } => {}
            }
        }
        Some(earliest)
    }
}

/// Advances a run: applies `events`, then runs every ready fiber until it blocks or ends.
pub fn advance(
    flow: &CompiledFlow,
    state: &mut RunState,
    ctx: &RunContext,
    events: Vec<Event>,
    now: DateTime<Utc>,
) -> Decision {
    let mut run = Advance {
        flow,
        state,
        ctx,
        now,
        effects: Vec::new(),
        records: Vec::new(),
    };
    // Past the deadline, results that arrive now come too late: the run times out first.
    if run.state.done.is_none()
        && !run.state.fibers.is_empty()
        && let Some(deadline) = flow.deadline(ctx.started_at)
        && now >= deadline
    {
        run.time_out();
    }
    for event in events {
        run.apply(event);
    }
    run.drive();
    run.scrub_done();
    let progress = match &run.state.done {
        Some(Done::Succeeded(output)) => Progress::Succeeded(output.clone()),
        Some(Done::Failed(error)) => Progress::Failed(error.clone()),
        None => Progress::Pending,
    };
    Decision {
        effects: run.effects,
        records: run.records,
        progress,
    }
}

struct Advance<'a> {
    flow: &'a CompiledFlow,
    state: &'a mut RunState,
    ctx: &'a RunContext,
    now: DateTime<Utc>,
    effects: Vec<Effect>,
    records: Vec<StepRecord>,
}

/// What running one step did to its fiber.
enum StepOutcome {
    /// Completed; move to the next step.
    Next,
    /// The fiber now waits (effect or loop).
    Blocked,
    /// The frame stack changed (a nested list was pushed); keep going.
    Pushed,
}

impl Advance<'_> {
    fn apply(&mut self, event: Event) {
        match event {
            Event::Start => {
                if self.state.fibers.is_empty() && self.state.done.is_none() {
                    self.state.fibers.insert(
                        0,
                        Fiber {
                            parent: None,
                            prefix: String::new(),
                            frames: vec![Frame::Seq {
                                list: ListRef::Root,
                                index: 0,
                            }],
                            outputs: Map::new(),
                            locals: Map::new(),
                            last: Value::Null,
                            blocked: false,
                            bytes: 0,
                        },
                    );
                    self.state.next_fiber = 1;
                }
            }
            Event::Resume => {
                let ids: Vec<u64> = self.state.pending.keys().copied().collect();
                for id in ids {
                    self.reissue(id);
                }
            }
            Event::CardDone { effect, result } => {
                let Some(p) = self.state.pending.remove(&effect) else {
                    return;
                };
                let PendingKind::Card {
                    input,
                    attempt,
                    secrets,
                } = p.kind
                else {
                    return;
                };
                let derived = match self.state.derived.remove(&effect) {
                    Some(texts) => texts,
                    // Issued before a restore that was not followed by `Resume`: render them again.
                    None if !secrets.is_empty() => self
                        .unmask(p.fiber, p.node, &input, &secrets)
                        .map(|real| template::secret_texts(&real, &secrets))
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                let call = Call {
                    fiber: p.fiber,
                    node: p.node,
                    input,
                    secrets,
                    attempt,
                    started_at: p.started_at,
                };
                self.card_finished(call, &derived, result);
            }
            Event::ChildDone { effect, result } => {
                let Some(p) = self.state.pending.remove(&effect) else {
                    return;
                };
                let PendingKind::Child { input, slot, .. } = p.kind else {
                    return;
                };
                match slot {
                    Some(slot) => self.loop_child_finished(p.fiber, p.node, slot, result),
                    None if self.streaming(p.fiber, p.node) => {
                        self.stream_child_done(p.fiber, result.is_ok())
                    }
                    None => {
                        let result = result.map_err(|e| CardError::Failed {
                            code: "helper_failed".into(),
                            message: format!("helper run failed: {}", e.message),
                            retryable: false,
                        });
                        let call = Call {
                            fiber: p.fiber,
                            node: p.node,
                            input,
                            secrets: Vec::new(),
                            attempt: 1,
                            started_at: p.started_at,
                        };
                        self.card_finished(call, &[], result);
                    }
                }
            }
            Event::TimerFired { effect } => {
                let Some(p) = self.state.pending.remove(&effect) else {
                    return;
                };
                match p.kind {
                    PendingKind::Retry {
                        input,
                        attempt,
                        secrets,
                        ..
                    } => {
                        let node = &self.flow.nodes[p.node];
                        let card = match &node.kind {
                            NodeKind::Card { spec, .. } => spec.name,
                            _ => return,
                        };
                        let call = Call {
                            fiber: p.fiber,
                            node: p.node,
                            input,
                            secrets,
                            attempt,
                            started_at: p.started_at,
                        };
                        self.issue_card(card, call, None);
                    }
                    PendingKind::Wait { until } => {
                        let output = json!({ "waited_until": until.to_rfc3339() });
                        self.complete(p.fiber, p.node, None, output, 1, p.started_at);
                        self.unblock(p.fiber);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Re-emits the effect of a pending entry (after a restore).
    fn reissue(&mut self, id: u64) {
        let Some(p) = self.state.pending.get(&id) else {
            return;
        };
        let node = &self.flow.nodes[p.node];
        let step = self.step_name(p.fiber, p.node);
        let effect = match &p.kind {
            PendingKind::Card {
                input,
                attempt,
                secrets,
            } => {
                let NodeKind::Card { spec, .. } = &node.kind else {
                    return;
                };
                let (fiber, node_id, attempt) = (p.fiber, p.node, *attempt);
                let (input, secrets) = (input.clone(), secrets.clone());
                let timeout = node.timeout;
                let input = match self.unmask(fiber, node_id, &input, &secrets) {
                    Ok(real) => {
                        if !secrets.is_empty() {
                            let texts = template::secret_texts(&real, &secrets);
                            self.state.derived.insert(id, texts);
                        }
                        real
                    }
                    Err(error) => {
                        // The call cannot be rebuilt (its template now fails): answer it as failed.
                        self.state.pending.remove(&id);
                        let call = Call {
                            fiber,
                            node: node_id,
                            input,
                            secrets,
                            attempt,
                            started_at: self.now,
                        };
                        self.unblock(fiber);
                        self.fail_step(
                            call.fiber,
                            call.node,
                            Some(call.input),
                            template_step_error("with", error),
                            attempt,
                            call.started_at,
                        );
                        return;
                    }
                };
                Effect::Card {
                    effect: id,
                    step,
                    card: spec.name.to_owned(),
                    input,
                    timeout,
                    attempt,
                }
            }
            PendingKind::Retry { until, .. } | PendingKind::Wait { until } => Effect::Timer {
                effect: id,
                until: *until,
            },
            PendingKind::Child { flow, input, slot } => {
                let (step, input) = match (slot, &node.kind) {
                    // An iteration's helper run is named after its item, as when it was first issued.
                    (Some(slot), _) => (format!("{step}[{slot}]"), input.clone()),
                    // `flow.call` keeps its whole card input (for the step record); the helper run
                    // gets its `with`, as when it was first issued.
                    (None, NodeKind::Card { spec, .. }) if spec.name == "flow.call" => (
                        step,
                        input.get("with").cloned().unwrap_or_else(|| json!({})),
                    ),
                    (None, _) => (step, input.clone()),
                };
                Effect::StartChild {
                    effect: id,
                    step,
                    flow: flow.clone(),
                    input,
                }
            }
        };
        self.effects.push(effect);
    }

    /// Runs ready fibers until none can move.
    fn drive(&mut self) {
        loop {
            if self.state.done.is_some() {
                return;
            }
            let ready: Vec<u32> = self
                .state
                .fibers
                .iter()
                .filter(|(_, f)| !f.blocked)
                .map(|(id, _)| *id)
                .collect();
            if ready.is_empty() {
                return;
            }
            for id in ready {
                self.run_fiber(id);
                if self.state.done.is_some() {
                    return;
                }
            }
        }
    }

    fn run_fiber(&mut self, id: u32) {
        loop {
            if self.state.done.is_some() {
                return;
            }
            let Some(fiber) = self.state.fibers.get_mut(&id) else {
                return;
            };
            if fiber.blocked {
                return;
            }
            let Some(frame) = fiber.frames.last_mut() else {
                self.fiber_finished(id);
                return;
            };
            match frame {
                Frame::Seq { list, index } => {
                    let list_ref = *list;
                    let steps = self.flow.list(list_ref);
                    if *index >= steps.len() {
                        fiber.frames.pop();
                        self.frame_finished(id, list_ref);
                        continue;
                    }
                    let node = steps[*index];
                    *index += 1;
                    match self.run_step(id, node) {
                        StepOutcome::Next | StepOutcome::Pushed => continue,
                        StepOutcome::Blocked => return,
                    }
                }
                // A loop frame on top means the fiber waits for its iterations.
                Frame::Loop(_) | Frame::Stream(_) => {
                    fiber.blocked = true;
                    return;
                }
                // Try/OnError markers are popped by `frame_finished` when their list ends.
                Frame::Try { .. } | Frame::OnError { .. } => {
                    fiber.frames.pop();
                }
            }
        }
    }

    /// A step list ended; close the construct that pushed it.
    fn frame_finished(&mut self, fiber_id: u32, list: ListRef) {
        let Some(fiber) = self.state.fibers.get_mut(&fiber_id) else {
            return;
        };
        match list {
            ListRef::Try(_) | ListRef::Catch(_) => {
                if matches!(fiber.frames.last(), Some(Frame::Try { .. })) {
                    fiber.frames.pop();
                }
                fiber.locals.remove("error");
            }
            ListRef::OnError(node) => {
                if let Some(Frame::OnError { error, .. }) = fiber.frames.last().cloned() {
                    fiber.frames.pop();
                    fiber.locals.remove("error");
                    let key = self.flow.nodes[node].key.clone();
                    fiber.outputs.insert(key.clone(), json!({ "error": error }));
                    self.state.cache.remove(&(fiber_id, key));
                }
            }
            ListRef::Root | ListRef::Then(_) | ListRef::Else(_) | ListRef::Body(_) => {}
        }
    }

    /// A fiber ran out of frames.
    fn fiber_finished(&mut self, id: u32) {
        let Some(fiber) = self.state.fibers.remove(&id) else {
            return;
        };
        self.state.cache.retain(|(f, _), _| *f != id);
        match fiber.parent {
            None => {
                self.state.done = Some(Done::Succeeded(
                    json!({ "status": 200, "headers": {}, "body": fiber.last }),
                ));
            }
            Some((parent, slot)) => self.iteration_finished(parent, slot, Ok(fiber.last)),
        }
    }

    fn step_name(&self, fiber: u32, node: NodeId) -> String {
        let prefix = self
            .state
            .fibers
            .get(&fiber)
            .map(|f| f.prefix.as_str())
            .unwrap_or("");
        format!("{prefix}{}", self.flow.nodes[node].key)
    }

    /// The template context of a fiber: input, steps (own and parents'), run, vars, locals.
    fn context(&mut self, fiber_id: u32) -> minijinja::Value {
        let mut steps: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        let mut locals: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        let mut chain = Vec::new();
        let mut cursor = Some(fiber_id);
        while let Some(id) = cursor {
            chain.push(id);
            cursor = self
                .state
                .fibers
                .get(&id)
                .and_then(|f| f.parent.map(|(p, _)| p));
        }
        // Outermost first so inner scopes override.
        for id in chain.into_iter().rev() {
            let Some(fiber) = self.state.fibers.get(&id) else {
                continue;
            };
            for (key, value) in &fiber.outputs {
                let cached = self
                    .state
                    .cache
                    .entry((id, key.clone()))
                    .or_insert_with(|| minijinja::Value::from_serialize(value))
                    .clone();
                steps.insert(key.clone(), cached);
            }
            for (key, value) in &fiber.locals {
                locals.insert(key.clone(), minijinja::Value::from_serialize(value));
            }
        }
        let mut map: BTreeMap<String, minijinja::Value> = locals;
        map.insert("input".into(), self.ctx.input_value.clone());
        map.insert("steps".into(), minijinja::Value::from(steps));
        map.insert("run".into(), self.ctx.run_value.clone());
        map.insert("vars".into(), self.ctx.vars_value.clone());
        map.insert(
            "__now".into(),
            minijinja::Value::from(
                self.now
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        );
        map.insert("__secrets".into(), self.ctx.secrets_value.clone());
        minijinja::Value::from(map)
    }

    /// Renders a field where secrets may not go (conditions, loop lists, pure and flow cards).
    fn render(&mut self, fiber: u32, compiled: &Compiled) -> Result<Value, TemplateError> {
        let rendered = self.render_secret(fiber, compiled)?;
        match rendered.secret_paths.first() {
            None => Ok(rendered.value),
            Some(path) => Err(TemplateError {
                path: template::path_text(path),
                message: "reads a secret; secrets may only be sent to a connection (the fields of I/O cards such as `http.request`), never kept in history, outputs or conditions".into(),
                line: None,
                kind: TemplateErrorKind::Secret,
            }),
        }
    }

    /// Renders a field that may carry secret-derived leaves (an I/O card's `with`).
    fn render_secret(
        &mut self,
        fiber: u32,
        compiled: &Compiled,
    ) -> Result<template::Rendered, TemplateError> {
        let limits = self.flow.render_limits;
        if compiled.is_literal() {
            return compiled.render_within(&minijinja::Value::UNDEFINED, &limits);
        }
        let ctx = self.context(fiber);
        compiled.render_within(&ctx, &limits)
    }

    /// The card input of `node` with its secret-derived leaves rendered again (they are masked in
    /// the state).
    fn unmask(
        &mut self,
        fiber: u32,
        node: NodeId,
        masked: &Value,
        secrets: &[JsonPath],
    ) -> Result<Value, TemplateError> {
        if secrets.is_empty() {
            return Ok(masked.clone());
        }
        let flow = self.flow;
        let NodeKind::Card { with, .. } = &flow.nodes[node].kind else {
            return Ok(masked.clone());
        };
        let rendered = self.render_secret(fiber, with)?;
        let mut real = masked.clone();
        template::splice(&mut real, &rendered.value, secrets);
        Ok(real)
    }

    fn run_step(&mut self, fiber: u32, node_id: NodeId) -> StepOutcome {
        let flow = self.flow;
        let node = &flow.nodes[node_id];
        if let Some(guard) = &node.guard {
            match self.render(fiber, guard) {
                Ok(value) if !template::truthy(&value) => {
                    self.record(
                        fiber,
                        node_id,
                        StepStatus::Skipped,
                        None,
                        None,
                        None,
                        0,
                        self.now,
                    );
                    return StepOutcome::Next;
                }
                Ok(_) => {}
                Err(error) => return self.template_failed(fiber, node_id, "if", error),
            }
        }
        match &node.kind {
            NodeKind::Card { spec, with } if spec.may_receive_secrets() => {
                let rendered = match self.render_secret(fiber, with) {
                    Ok(rendered) => rendered,
                    Err(error) => return self.template_failed(fiber, node_id, "with", error),
                };
                if let Some(path) = rendered
                    .secret_paths
                    .iter()
                    .find(|p| p.first() == Some(&template::PathSegment::Key("stream".into())))
                {
                    // `stream.state` becomes every helper run's input: no place for a secret.
                    let error = TemplateError {
                        path: template::path_text(path),
                        message: "reads a secret; a stream's settings are passed to helper runs, where secrets may not go".into(),
                        line: None,
                        kind: TemplateErrorKind::Secret,
                    };
                    return self.template_failed(fiber, node_id, "with", error);
                }
                self.run_card(fiber, node_id, spec, rendered.value, rendered.secret_paths)
            }
            NodeKind::Card { spec, with } => {
                let input = match self.render(fiber, with) {
                    Ok(input) => input,
                    Err(error) => return self.template_failed(fiber, node_id, "with", error),
                };
                self.run_card(fiber, node_id, spec, input, Vec::new())
            }
            NodeKind::If { condition, .. } => {
                let value = match self.render(fiber, condition) {
                    Ok(v) => v,
                    Err(error) => return self.template_failed(fiber, node_id, "if", error),
                };
                let branch = template::truthy(&value);
                let output = json!({ "branch": if branch { "then" } else { "else" } });
                self.complete(
                    fiber,
                    node_id,
                    Some(json!({ "condition": value })),
                    output,
                    1,
                    self.now,
                );
                let list = if branch {
                    ListRef::Then(node_id)
                } else {
                    ListRef::Else(node_id)
                };
                self.push(fiber, Frame::Seq { list, index: 0 });
                StepOutcome::Pushed
            }
            NodeKind::ContinueIf { condition } => {
                let value = match self.render(fiber, condition) {
                    Ok(v) => v,
                    Err(error) => {
                        return self.template_failed(fiber, node_id, "continue_if", error);
                    }
                };
                let go_on = template::truthy(&value);
                // The iteration's (or run's) result stays the output of the step before `continue_if`.
                let previous = self
                    .state
                    .fibers
                    .get(&fiber)
                    .map(|f| f.last.clone())
                    .unwrap_or(Value::Null);
                self.complete(
                    fiber,
                    node_id,
                    Some(json!({ "condition": value })),
                    json!({ "continue": go_on }),
                    1,
                    self.now,
                );
                if let Some(f) = self.state.fibers.get_mut(&fiber) {
                    f.last = previous;
                }
                if !go_on {
                    self.stop_quietly(fiber);
                    return StepOutcome::Blocked;
                }
                StepOutcome::Next
            }
            NodeKind::Loop { items, .. } => {
                let items = match self.render(fiber, items) {
                    Ok(Value::Array(items)) => items,
                    Ok(Value::Null) => Vec::new(),
                    Ok(other) => {
                        let error = StepError {
                            code: "invalid_input".into(),
                            message: format!(
                                "expected a list to loop over, got {}",
                                json_kind(&other)
                            ),
                            status: None,
                            detail: None,
                        };
                        return self.fail_step(fiber, node_id, None, error, 1, self.now);
                    }
                    Err(error) => return self.template_failed(fiber, node_id, "items", error),
                };
                self.start_loop(fiber, node_id, items)
            }
            NodeKind::Try { .. } => {
                self.push(
                    fiber,
                    Frame::Try {
                        node: node_id,
                        catching: false,
                    },
                );
                self.push(
                    fiber,
                    Frame::Seq {
                        list: ListRef::Try(node_id),
                        index: 0,
                    },
                );
                StepOutcome::Pushed
            }
            NodeKind::Wait { duration } => {
                let until = self.now
                    + chrono::Duration::from_std(*duration).unwrap_or(chrono::Duration::zero());
                self.wait(fiber, node_id, until)
            }
            NodeKind::WaitUntil { until } => {
                let value = match self.render(fiber, until) {
                    Ok(v) => v,
                    Err(error) => return self.template_failed(fiber, node_id, "wait_until", error),
                };
                match value
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                {
                    // The same bound as `wait:`, which the validator checks; a time only known at
                    // run time is checked here.
                    Some(t)
                        if t.with_timezone(&Utc)
                            > self.now + chrono::Duration::days(MAX_WAIT_DAYS) =>
                    {
                        let error = StepError {
                            code: "invalid_input".into(),
                            message: format!(
                                "wait_until: {value} is more than {MAX_WAIT_DAYS} days ahead"
                            ),
                            status: None,
                            detail: None,
                        };
                        self.fail_step(fiber, node_id, None, error, 1, self.now)
                    }
                    Some(t) => self.wait(fiber, node_id, t.with_timezone(&Utc)),
                    None => {
                        let error = StepError {
                            code: "invalid_input".into(),
                            message: format!(
                                "wait_until: expected an RFC 3339 date-time, got {value}"
                            ),
                            status: None,
                            detail: None,
                        };
                        self.fail_step(fiber, node_id, None, error, 1, self.now)
                    }
                }
            }
        }
    }

    fn wait(&mut self, fiber: u32, node: NodeId, until: DateTime<Utc>) -> StepOutcome {
        if until <= self.now {
            self.complete(
                fiber,
                node,
                None,
                json!({ "waited_until": until.to_rfc3339() }),
                1,
                self.now,
            );
            return StepOutcome::Next;
        }
        let id = self.new_effect();
        self.state.pending.insert(
            id,
            Pending {
                fiber,
                node,
                kind: PendingKind::Wait { until },
                started_at: self.now,
            },
        );
        self.effects.push(Effect::Timer { effect: id, until });
        self.block(fiber);
        StepOutcome::Blocked
    }

    fn run_card(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        spec: &'static CardSpec,
        input: Value,
        secrets: Vec<JsonPath>,
    ) -> StepOutcome {
        match spec.kind {
            CardKind::Pure(function) => {
                let Value::Object(map) = &input else {
                    let error = StepError {
                        code: "invalid_input".into(),
                        message: "`with` must be an object".into(),
                        status: None,
                        detail: None,
                    };
                    return self.fail_step(fiber, node_id, Some(input), error, 1, self.now);
                };
                let base = self.context(fiber);
                let eval = |expr: &str, bindings: &[(&str, &Value)]| -> Result<Value, String> {
                    let mut extra: BTreeMap<String, minijinja::Value> = BTreeMap::new();
                    for (name, value) in bindings {
                        extra.insert((*name).to_owned(), minijinja::Value::from_serialize(value));
                    }
                    let ctx =
                        minijinja::context! { ..minijinja::Value::from(extra), ..base.clone() };
                    template::eval_expression(expr, &ctx).map_err(|e| e.message)
                };
                let pure = PureContext {
                    now: self.now,
                    eval: &eval,
                };
                let (result, read_secret) = template::watch_secrets(|| function(map, &pure));
                if read_secret {
                    // An expression field called `secret()`: its result would land in history.
                    let error = StepError {
                        code: "secret_not_allowed".into(),
                        message: "an expression of this card reads a secret; secrets may only be sent to a connection (the fields of I/O cards such as `http.request`)".into(),
                        status: None,
                        detail: None,
                    };
                    return self.fail_step(fiber, node_id, Some(input), error, 1, self.now);
                }
                match result {
                    Ok(output) => {
                        self.complete(fiber, node_id, Some(input), output, 1, self.now);
                        StepOutcome::Next
                    }
                    Err(error) => self.fail_step(
                        fiber,
                        node_id,
                        Some(input),
                        error.to_step_error(),
                        1,
                        self.now,
                    ),
                }
            }
            CardKind::Io if input.get("stream").is_some_and(|s| !s.is_null()) => {
                self.start_stream(fiber, node_id, spec, input, secrets)
            }
            CardKind::Io => {
                let masked = template::mask(&input, &secrets);
                let call = Call {
                    fiber,
                    node: node_id,
                    input: masked,
                    secrets,
                    attempt: 1,
                    started_at: self.now,
                };
                self.issue_card(spec.name, call, Some(input));
                StepOutcome::Blocked
            }
            CardKind::Flow => self.run_flow_card(fiber, node_id, spec, input),
        }
    }

    fn run_flow_card(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        spec: &'static CardSpec,
        input: Value,
    ) -> StepOutcome {
        match spec.name {
            "flow.return" => {
                let status = input.get("status").and_then(Value::as_u64).unwrap_or(200);
                let headers = input.get("headers").cloned().unwrap_or_else(|| json!({}));
                let body = input.get("body").cloned().unwrap_or(Value::Null);
                let output = json!({ "status": status, "headers": headers, "body": body });
                self.complete(fiber, node_id, Some(input), output.clone(), 1, self.now);
                self.state.done = Some(Done::Succeeded(output));
                StepOutcome::Blocked
            }
            "flow.fail" => {
                let message = input
                    .get("message")
                    .map(text_of)
                    .unwrap_or_else(|| "flow failed".into());
                let code = input
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("flow_failed")
                    .to_owned();
                let error = StepError {
                    code,
                    message,
                    status: None,
                    detail: None,
                };
                self.fail_step(fiber, node_id, Some(input), error, 1, self.now)
            }
            "flow.call" => {
                let flow = input
                    .get("flow")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let with = input.get("with").cloned().unwrap_or_else(|| json!({}));
                let id = self.new_effect();
                let step = self.step_name(fiber, node_id);
                self.state.pending.insert(
                    id,
                    Pending {
                        fiber,
                        node: node_id,
                        kind: PendingKind::Child {
                            flow: flow.clone(),
                            input: input.clone(),
                            slot: None,
                        },
                        started_at: self.now,
                    },
                );
                self.effects.push(Effect::StartChild {
                    effect: id,
                    step,
                    flow,
                    input: with,
                });
                self.block(fiber);
                StepOutcome::Blocked
            }
            other => {
                let error = StepError {
                    code: "card".into(),
                    message: format!("card `{other}` is not handled by the engine"),
                    status: None,
                    detail: None,
                };
                self.fail_step(fiber, node_id, Some(input), error, 1, self.now)
            }
        }
    }

    /// Issues a card call. `call.input` is the masked input kept in the state; `real` is the input
    /// with its secret-derived leaves, rendered again from the step's template when not given.
    fn issue_card(&mut self, card: &str, call: Call, real: Option<Value>) {
        let Call {
            fiber,
            node: node_id,
            input,
            secrets,
            attempt,
            started_at,
        } = call;
        let real = match real {
            Some(real) => real,
            None => match self.unmask(fiber, node_id, &input, &secrets) {
                Ok(real) => real,
                Err(error) => {
                    self.unblock(fiber);
                    self.fail_step(
                        fiber,
                        node_id,
                        Some(input),
                        template_step_error("with", error),
                        attempt,
                        started_at,
                    );
                    return;
                }
            },
        };
        let id = self.new_effect();
        if !secrets.is_empty() {
            self.state
                .derived
                .insert(id, template::secret_texts(&real, &secrets));
        }
        let step = self.step_name(fiber, node_id);
        self.effects.push(Effect::Card {
            effect: id,
            step,
            card: card.to_owned(),
            input: real,
            timeout: self.flow.nodes[node_id].timeout,
            attempt,
        });
        self.state.pending.insert(
            id,
            Pending {
                fiber,
                node: node_id,
                kind: PendingKind::Card {
                    input,
                    attempt,
                    secrets,
                },
                started_at,
            },
        );
        self.block(fiber);
    }

    /// A card call answered. Whatever it answered is scrubbed of the run's secrets and of the
    /// secret-derived texts it was sent (`derived`: an echoing server must not put them in history).
    fn card_finished(&mut self, call: Call, derived: &[String], result: Result<Value, CardError>) {
        let fiber = call.fiber;
        let node_id = call.node;
        if !self.state.fibers.contains_key(&fiber) {
            return;
        }
        let scrubber = Scrubber::new(&self.ctx.secrets, derived);
        let streaming = self.streaming(fiber, node_id);
        match result {
            Ok(output) if streaming => self.stream_page(fiber, scrubber.value(output)),
            Ok(output) => {
                self.complete(
                    fiber,
                    node_id,
                    Some(call.input),
                    scrubber.value(output),
                    call.attempt,
                    call.started_at,
                );
                self.unblock(fiber);
            }
            Err(CardError::Throttled { after, .. }) => {
                // Throttling is not an attempt: call again after the wait with the same attempt.
                self.schedule_retry(call, after);
            }
            Err(error) => {
                if let Some(delay) = self.retry_delay(node_id, call.attempt, &error) {
                    let call = Call {
                        attempt: call.attempt + 1,
                        ..call
                    };
                    self.schedule_retry(call, delay);
                    return;
                }
                let input = if streaming {
                    self.end_stream(fiber).unwrap_or(call.input)
                } else {
                    call.input
                };
                self.unblock(fiber);
                self.fail_step(
                    fiber,
                    node_id,
                    Some(input),
                    scrubber.error(error.to_step_error()),
                    call.attempt,
                    call.started_at,
                );
            }
        }
    }

    /// Calls the card again (`call.attempt`) once `delay` has passed.
    fn schedule_retry(&mut self, call: Call, delay: Duration) {
        let until =
            self.now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
        let id = self.new_effect();
        let kind = PendingKind::Retry {
            input: call.input,
            attempt: call.attempt,
            until,
            secrets: call.secrets,
        };
        self.state.pending.insert(
            id,
            Pending {
                fiber: call.fiber,
                node: call.node,
                kind,
                started_at: call.started_at,
            },
        );
        self.effects.push(Effect::Timer { effect: id, until });
    }

    /// The delay before the next attempt, or `None` when the policy says stop.
    fn retry_delay(&self, node_id: NodeId, attempt: u32, error: &CardError) -> Option<Duration> {
        let policy = self.flow.nodes[node_id].retry.as_ref()?;
        if attempt >= policy.max {
            return None;
        }
        let covered = if policy.on.is_empty() {
            error.is_retryable()
        } else {
            policy.on.iter().any(|on| match (on, error) {
                (RetryOn::Any, _) => true,
                (RetryOn::Status(s), CardError::Status { status, .. }) => s == status,
                (RetryOn::Class(c), CardError::Status { status, .. }) => {
                    u16::from(*c) == status / 100
                }
                (RetryOn::Timeout, CardError::Timeout(_)) => true,
                (RetryOn::Network, CardError::Network(_)) => true,
                _ => false,
            })
        };
        if !covered {
            return None;
        }
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let scaled = policy.backoff.as_secs_f64() * policy.factor.max(1.0).powi(exponent);
        let mut delay = Duration::from_secs_f64(scaled.clamp(0.0, 86_400.0));
        if let CardError::Status {
            retry_after: Some(after),
            ..
        } = error
        {
            delay = delay.max(*after);
        }
        Some(delay)
    }

    /// Whether `fiber` is streaming the card of `node`.
    fn streaming(&self, fiber: u32, node: NodeId) -> bool {
        matches!(
            self.state.fibers.get(&fiber).and_then(|f| f.frames.last()),
            Some(Frame::Stream(frame)) if frame.node == node
        )
    }

    fn start_stream(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        spec: &'static CardSpec,
        input: Value,
        secrets: Vec<JsonPath>,
    ) -> StepOutcome {
        let stream = input.get("stream").cloned().unwrap_or(Value::Null);
        let Some(flow) = stream
            .get("flow")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            let error = StepError {
                code: "invalid_input".into(),
                message: "field `stream.flow`: expected the name of a helper flow".into(),
                status: None,
                detail: None,
            };
            return self.fail_step(fiber, node_id, Some(input), error, 1, self.now);
        };
        let concurrency = stream
            .get("concurrency")
            .and_then(Value::as_u64)
            .unwrap_or(10)
            .clamp(1, 100);
        let frame = StreamFrame {
            node: node_id,
            card: spec.name.to_owned(),
            state: stream.get("state").cloned().unwrap_or(Value::Null),
            input: template::mask(&input, &secrets),
            secrets,
            flow,
            concurrency: usize::try_from(concurrency).unwrap_or(10),
            buffer: std::collections::VecDeque::new(),
            next: Value::Null,
            fetching: false,
            exhausted: false,
            running: 0,
            count: 0,
            failed: 0,
            started_at: self.now,
        };
        self.push(fiber, Frame::Stream(Box::new(frame)));
        self.block(fiber);
        self.pump_stream(fiber);
        StepOutcome::Blocked
    }

    /// Hands buffered records to helper runs up to the bound, fetches the next page ahead, and ends
    /// the step when every page is fetched and every helper run has ended.
    fn pump_stream(&mut self, fiber_id: u32) {
        let Some(Frame::Stream(mut frame)) = self
            .state
            .fibers
            .get_mut(&fiber_id)
            .and_then(|f| f.frames.pop())
        else {
            return;
        };
        let prefix = self.step_name(fiber_id, frame.node);
        while frame.running < frame.concurrency {
            let Some(record) = frame.buffer.pop_front() else {
                break;
            };
            let id = self.new_effect();
            let input = json!({ "record": record, "state": frame.state });
            self.state.pending.insert(
                id,
                Pending {
                    fiber: fiber_id,
                    node: frame.node,
                    kind: PendingKind::Child {
                        flow: frame.flow.clone(),
                        input: input.clone(),
                        slot: None,
                    },
                    started_at: self.now,
                },
            );
            self.effects.push(Effect::StartChild {
                effect: id,
                step: format!("{prefix}[{}]", frame.count + frame.running as u64),
                flow: frame.flow.clone(),
                input,
            });
            frame.running += 1;
        }
        if !frame.fetching && !frame.exhausted && frame.buffer.len() < frame.concurrency {
            frame.fetching = true;
            let mut page_input = frame.input.clone();
            if let Value::Object(map) = &mut page_input {
                map.insert("__page".into(), frame.next.clone());
            }
            let call = Call {
                fiber: fiber_id,
                node: frame.node,
                input: page_input,
                secrets: frame.secrets.clone(),
                attempt: 1,
                started_at: frame.started_at,
            };
            let card = frame.card.clone();
            if let Some(fiber) = self.state.fibers.get_mut(&fiber_id) {
                fiber.frames.push(Frame::Stream(frame));
            }
            self.issue_card(&card, call, None);
            return;
        }
        if frame.exhausted && !frame.fetching && frame.buffer.is_empty() && frame.running == 0 {
            let output = json!({ "count": frame.count, "failed": frame.failed });
            self.unblock(fiber_id);
            self.complete(
                fiber_id,
                frame.node,
                Some(frame.input),
                output,
                1,
                frame.started_at,
            );
            return;
        }
        if let Some(fiber) = self.state.fibers.get_mut(&fiber_id) {
            fiber.frames.push(Frame::Stream(frame));
        }
    }

    /// One page arrived: `{records, next}`.
    fn stream_page(&mut self, fiber_id: u32, output: Value) {
        let Some(Value::Array(records)) = output.get("records").cloned() else {
            let popped = self
                .state
                .fibers
                .get_mut(&fiber_id)
                .and_then(|f| f.frames.pop());
            if let Some(Frame::Stream(frame)) = popped {
                self.unblock(fiber_id);
                let error = StepError {
                    code: "card".into(),
                    message: "a streamed page must be `{records: [...], next}`".into(),
                    status: None,
                    detail: None,
                };
                self.fail_step(
                    fiber_id,
                    frame.node,
                    Some(frame.input),
                    error,
                    1,
                    frame.started_at,
                );
            }
            return;
        };
        if let Some(Frame::Stream(frame)) = self
            .state
            .fibers
            .get_mut(&fiber_id)
            .and_then(|f| f.frames.last_mut())
        {
            frame.fetching = false;
            frame.next = output.get("next").cloned().unwrap_or(Value::Null);
            frame.exhausted = frame.next.is_null();
            frame.buffer.extend(records);
        }
        self.pump_stream(fiber_id);
    }

    fn stream_child_done(&mut self, fiber_id: u32, succeeded: bool) {
        if let Some(Frame::Stream(frame)) = self
            .state
            .fibers
            .get_mut(&fiber_id)
            .and_then(|f| f.frames.last_mut())
        {
            frame.running = frame.running.saturating_sub(1);
            frame.count += 1;
            if !succeeded {
                frame.failed += 1;
            }
        }
        self.pump_stream(fiber_id);
    }

    /// Pops a stream frame (the stream failed); returns the card input for the step record.
    fn end_stream(&mut self, fiber_id: u32) -> Option<Value> {
        let fiber = self.state.fibers.get_mut(&fiber_id)?;
        match fiber.frames.pop() {
            Some(Frame::Stream(frame)) => {
                // Helper runs still going are no longer awaited; their ends are ignored.
                self.state
                    .pending
                    .retain(|_, p| !(p.fiber == fiber_id && p.node == frame.node));
                Some(frame.input)
            }
            Some(other) => {
                fiber.frames.push(other);
                None
            }
            None => None,
        }
    }

    fn start_loop(&mut self, fiber: u32, node_id: NodeId, items: Vec<Value>) -> StepOutcome {
        let count = items.len();
        let frame = LoopFrame {
            node: node_id,
            results: vec![Value::Null; count],
            items,
            next: 0,
            running: 0,
            started_at: self.now,
            failed: None,
        };
        self.push(fiber, Frame::Loop(frame));
        self.block(fiber);
        self.pump_loop(fiber);
        StepOutcome::Blocked
    }

    /// Starts iterations up to the concurrency bound; completes the loop when all are done.
    fn pump_loop(&mut self, fiber_id: u32) {
        let flow = self.flow;
        loop {
            let Some(fiber) = self.state.fibers.get_mut(&fiber_id) else {
                return;
            };
            let Some(Frame::Loop(frame)) = fiber.frames.last_mut() else {
                return;
            };
            let node_id = frame.node;
            let NodeKind::Loop {
                concurrency,
                var,
                body,
                ..
            } = &flow.nodes[node_id].kind
            else {
                return;
            };
            if frame.failed.is_some() {
                if frame.running == 0 {
                    let error = frame.failed.take().unwrap_or(Value::Null);
                    let started_at = frame.started_at;
                    fiber.frames.pop();
                    fiber.blocked = false;
                    let step_error = StepError {
                        code: error
                            .get("code")
                            .and_then(Value::as_str)
                            .unwrap_or("iteration_failed")
                            .to_owned(),
                        message: format!(
                            "an iteration failed: {}",
                            error
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("unknown error")
                        ),
                        status: error
                            .get("status")
                            .and_then(Value::as_u64)
                            .and_then(|s| u16::try_from(s).ok()),
                        detail: Some(error),
                    };
                    self.fail_step(fiber_id, node_id, None, step_error, 1, started_at);
                }
                return;
            }
            if frame.next >= frame.items.len() {
                if frame.running == 0 {
                    let started_at = frame.started_at;
                    let count = frame.items.len();
                    let results = std::mem::take(&mut frame.results);
                    let collect = matches!(
                        flow.nodes[node_id].kind,
                        NodeKind::Loop { collect: true, .. }
                    );
                    fiber.frames.pop();
                    fiber.blocked = false;
                    let output = if collect {
                        Value::Array(results)
                    } else {
                        json!({ "count": count })
                    };
                    self.complete(
                        fiber_id,
                        node_id,
                        Some(json!({ "count": count })),
                        output,
                        1,
                        started_at,
                    );
                }
                return;
            }
            if frame.running >= *concurrency as usize {
                return;
            }
            let slot = frame.next;
            frame.next += 1;
            frame.running += 1;
            let item = frame.items[slot].clone();
            let prefix = format!("{}{}[{slot}].", fiber.prefix, flow.nodes[node_id].key);
            match body {
                Body::Steps(_) => {
                    let id = self.state.next_fiber;
                    self.state.next_fiber += 1;
                    let mut locals = Map::new();
                    locals.insert(var.clone(), item);
                    locals.insert("index".into(), json!(slot));
                    self.state.fibers.insert(
                        id,
                        Fiber {
                            parent: Some((fiber_id, slot)),
                            prefix,
                            frames: vec![Frame::Seq {
                                list: ListRef::Body(node_id),
                                index: 0,
                            }],
                            outputs: Map::new(),
                            locals,
                            last: Value::Null,
                            blocked: false,
                            bytes: 0,
                        },
                    );
                }
                Body::Flow { flow: helper, with } => {
                    let input = match with {
                        None => json!({ var.clone(): item }),
                        Some(with) => {
                            if let Some(fiber) = self.state.fibers.get_mut(&fiber_id) {
                                fiber.locals.insert(var.clone(), item.clone());
                                fiber.locals.insert("index".into(), json!(slot));
                            }
                            let rendered = self.render(fiber_id, with);
                            if let Some(fiber) = self.state.fibers.get_mut(&fiber_id) {
                                fiber.locals.remove(var);
                                fiber.locals.remove("index");
                            }
                            match rendered {
                                Ok(v) => v,
                                Err(error) => {
                                    self.loop_child_finished_err(
                                        fiber_id,
                                        slot,
                                        template_step_error("with", error),
                                    );
                                    continue;
                                }
                            }
                        }
                    };
                    let id = self.new_effect();
                    let step = prefix.trim_end_matches('.').to_owned();
                    self.state.pending.insert(
                        id,
                        Pending {
                            fiber: fiber_id,
                            node: node_id,
                            kind: PendingKind::Child {
                                flow: helper.clone(),
                                input: input.clone(),
                                slot: Some(slot),
                            },
                            started_at: self.now,
                        },
                    );
                    self.effects.push(Effect::StartChild {
                        effect: id,
                        step,
                        flow: helper.clone(),
                        input,
                    });
                }
            }
        }
    }

    fn loop_child_finished(
        &mut self,
        fiber: u32,
        _node: NodeId,
        slot: usize,
        result: Result<Value, RunError>,
    ) {
        match result {
            Ok(output) => self.iteration_finished(fiber, slot, Ok(output)),
            Err(error) => {
                let value = json!({ "code": "helper_failed", "message": error.message, "step": error.step });
                self.iteration_finished(fiber, slot, Err(value));
            }
        }
    }

    fn loop_child_finished_err(&mut self, fiber: u32, slot: usize, error: StepError) {
        let value = json!({ "code": error.code, "message": error.message });
        self.iteration_finished(fiber, slot, Err(value));
    }

    /// One iteration of the loop on top of `fiber`'s frames ended.
    fn iteration_finished(&mut self, fiber_id: u32, slot: usize, result: Result<Value, Value>) {
        let Some(fiber) = self.state.fibers.get_mut(&fiber_id) else {
            return;
        };
        let Some(Frame::Loop(frame)) = fiber.frames.last_mut() else {
            return;
        };
        frame.running = frame.running.saturating_sub(1);
        match result {
            Ok(value) => {
                if let Some(r) = frame.results.get_mut(slot) {
                    *r = value;
                }
            }
            Err(error) => {
                if frame.failed.is_none() {
                    frame.failed = Some(error);
                }
                // Abandon sibling iterations that have not finished: their fibers stop here.
                let siblings: Vec<u32> = self
                    .state
                    .fibers
                    .iter()
                    .filter(|(_, f)| f.parent.map(|(p, _)| p) == Some(fiber_id))
                    .map(|(id, _)| *id)
                    .collect();
                for id in siblings {
                    self.drop_fiber(id);
                    if let Some(Frame::Loop(frame)) = self
                        .state
                        .fibers
                        .get_mut(&fiber_id)
                        .and_then(|f| f.frames.last_mut())
                    {
                        frame.running = frame.running.saturating_sub(1);
                    }
                }
            }
        }
        self.pump_loop(fiber_id);
    }

    /// Removes a fiber, its descendants and their pending effects.
    fn drop_fiber(&mut self, id: u32) {
        let children: Vec<u32> = self
            .state
            .fibers
            .iter()
            .filter(|(_, f)| f.parent.map(|(p, _)| p) == Some(id))
            .map(|(c, _)| *c)
            .collect();
        for child in children {
            self.drop_fiber(child);
        }
        self.state.fibers.remove(&id);
        self.state.pending.retain(|_, p| p.fiber != id);
        self.state.cache.retain(|(f, _), _| *f != id);
    }

    /// The flow's `timeout:` passed: every step still in flight is abandoned (recorded as failed) and
    /// the run fails with `timeout`. No `try` or `on_error` catches it.
    fn time_out(&mut self) {
        let pending: Vec<(u64, Pending)> = std::mem::take(&mut self.state.pending)
            .into_iter()
            .collect();
        self.state.derived.clear();
        let limit = self
            .flow
            .flow
            .timeout
            .map(crate::duration::format)
            .unwrap_or_default();
        let mut first = None;
        for (_, p) in pending {
            if !self.state.fibers.contains_key(&p.fiber) {
                continue;
            }
            let input = match p.kind {
                PendingKind::Card { input, .. } | PendingKind::Retry { input, .. } => Some(input),
                PendingKind::Child { input, .. } => Some(input),
                PendingKind::Wait { .. } => None,
            };
            let error = StepError {
                code: "timeout".into(),
                message: format!("abandoned: the run reached its timeout of {limit}"),
                status: None,
                detail: None,
            };
            first.get_or_insert_with(|| self.step_name(p.fiber, p.node));
            self.record(
                p.fiber,
                p.node,
                StepStatus::Failed,
                input,
                None,
                Some(error),
                1,
                p.started_at,
            );
        }
        self.state.fibers.clear();
        self.state.cache.clear();
        self.state.done = Some(Done::Failed(RunError {
            code: "timeout".into(),
            message: format!("the run did not finish within its timeout of {limit}"),
            step: first,
        }));
    }

    /// The run's output and error leave the engine without any secret value in them.
    fn scrub_done(&mut self) {
        let scrubber = Scrubber::new(&self.ctx.secrets, &[]);
        if scrubber.needles.is_empty() {
            return;
        }
        match self.state.done.take() {
            Some(Done::Succeeded(output)) => {
                self.state.done = Some(Done::Succeeded(scrubber.value(output)));
            }
            Some(Done::Failed(mut error)) => {
                error.message = scrubber.text(&error.message);
                self.state.done = Some(Done::Failed(error));
            }
            None => {}
        }
    }

    /// `continue_if` was false: end this iteration, or the whole run at top level.
    fn stop_quietly(&mut self, fiber_id: u32) {
        let Some(fiber) = self.state.fibers.get(&fiber_id) else {
            return;
        };
        match fiber.parent {
            None => {
                let last = fiber.last.clone();
                self.state.done = Some(Done::Succeeded(
                    json!({ "status": 200, "headers": {}, "body": last }),
                ));
            }
            Some((parent, slot)) => {
                let last = fiber.last.clone();
                self.drop_fiber(fiber_id);
                self.iteration_finished(parent, slot, Ok(last));
            }
        }
    }

    fn template_failed(
        &mut self,
        fiber: u32,
        node: NodeId,
        field: &str,
        error: TemplateError,
    ) -> StepOutcome {
        self.fail_step(
            fiber,
            node,
            None,
            template_step_error(field, error),
            1,
            self.now,
        )
    }

    /// A step failed for good: record it, then apply `on_error` or unwind to the nearest `try`.
    fn fail_step(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        input: Option<Value>,
        error: StepError,
        attempts: u32,
        started_at: DateTime<Utc>,
    ) -> StepOutcome {
        // The error travels on (into `catch`, the run's error, logs): it leaves here clean.
        let error = Scrubber::new(&self.ctx.secrets, &[]).error(error);
        self.record(
            fiber,
            node_id,
            StepStatus::Failed,
            input,
            None,
            Some(error.clone()),
            attempts,
            started_at,
        );
        let step_name = self.step_name(fiber, node_id);
        let value = error_value(&step_name, &error);
        match &self.flow.nodes[node_id].on_error {
            ErrorPlan::Continue => {
                let key = self.flow.nodes[node_id].key.clone();
                if let Some(f) = self.state.fibers.get_mut(&fiber) {
                    let output = json!({ "error": value });
                    f.outputs.insert(key.clone(), output.clone());
                    f.last = output;
                }
                self.state.cache.remove(&(fiber, key));
                StepOutcome::Next
            }
            ErrorPlan::Steps(_) => {
                if let Some(f) = self.state.fibers.get_mut(&fiber) {
                    f.locals.insert("error".into(), value.clone());
                }
                self.push(
                    fiber,
                    Frame::OnError {
                        node: node_id,
                        error: value,
                    },
                );
                self.push(
                    fiber,
                    Frame::Seq {
                        list: ListRef::OnError(node_id),
                        index: 0,
                    },
                );
                StepOutcome::Pushed
            }
            ErrorPlan::Fail => {
                self.raise(fiber, &step_name, error, value);
                StepOutcome::Pushed
            }
        }
    }

    /// Unwinds a fiber to its innermost `try` not yet catching; otherwise fails the loop or the run.
    fn raise(&mut self, fiber_id: u32, step: &str, error: StepError, value: Value) {
        let Some(fiber) = self.state.fibers.get_mut(&fiber_id) else {
            return;
        };
        while let Some(frame) = fiber.frames.pop() {
            if let Frame::Try {
                node,
                catching: false,
            } = frame
            {
                fiber.frames.push(Frame::Try {
                    node,
                    catching: true,
                });
                fiber.frames.push(Frame::Seq {
                    list: ListRef::Catch(node),
                    index: 0,
                });
                fiber.locals.insert("error".into(), value);
                fiber.blocked = false;
                return;
            }
        }
        match fiber.parent {
            None => {
                self.state.done = Some(Done::Failed(RunError {
                    code: if error.code == "flow_failed" {
                        "flow_failed".into()
                    } else {
                        "step_failed".into()
                    },
                    message: error.message,
                    step: Some(step.to_owned()),
                }));
            }
            Some((parent, slot)) => {
                self.drop_fiber(fiber_id);
                self.iteration_finished(parent, slot, Err(value));
            }
        }
    }

    /// Records a successful step and makes its output visible, unless holding it would pass the
    /// run's working-memory budget: then the step fails instead.
    fn complete(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        input: Option<Value>,
        output: Value,
        attempts: u32,
        started_at: DateTime<Utc>,
    ) {
        let key = self.flow.nodes[node_id].key.clone();
        let budget = self.flow.flow.limits.memory_bytes();
        let size = crate::budget::json_size(&output, budget.saturating_add(1));
        let replaced = self
            .state
            .fibers
            .get(&fiber)
            .and_then(|f| f.outputs.get(&key))
            .map_or(0, |old| crate::budget::json_size(old, u64::MAX));
        let held: u64 = self.state.fibers.values().map(|f| f.bytes).sum();
        let total = held.saturating_sub(replaced).saturating_add(size);
        if total > budget {
            let error = StepError {
                code: "budget_exceeded".into(),
                message: format!(
                    "the run would hold {} of step outputs, more than its working-memory budget of {} (`limits.memory`)",
                    crate::budget::format_size(total),
                    crate::budget::format_size(budget)
                ),
                status: None,
                detail: None,
            };
            self.fail_step(fiber, node_id, input, error, attempts, started_at);
            return;
        }
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.bytes = f.bytes.saturating_sub(replaced).saturating_add(size);
        }
        self.record(
            fiber,
            node_id,
            StepStatus::Succeeded,
            input,
            Some(output.clone()),
            None,
            attempts,
            started_at,
        );
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.outputs.insert(key.clone(), output.clone());
            f.last = output;
        }
        self.state.cache.remove(&(fiber, key));
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        status: StepStatus,
        input: Option<Value>,
        output: Option<Value>,
        error: Option<StepError>,
        attempts: u32,
        started_at: DateTime<Utc>,
    ) {
        let keep_data = match self.ctx.history {
            HistoryMode::All => true,
            HistoryMode::Errors => status == StepStatus::Failed,
            HistoryMode::None => false,
        };
        let redact = |v: Value| redact_secrets(v, &self.ctx.secrets);
        let duration_ms = u64::try_from((self.now - started_at).num_milliseconds()).unwrap_or(0);
        let record = StepRecord {
            seq: self.state.seq,
            step: self.step_name(fiber, node_id),
            card: self.flow.nodes[node_id].kind.label().to_owned(),
            status,
            input: if keep_data { input.map(redact) } else { None },
            output: if keep_data { output.map(redact) } else { None },
            error: error.map(|mut e| {
                if !keep_data {
                    e.detail = None;
                }
                e.message = redact_text(&e.message, &self.ctx.secrets);
                e
            }),
            attempts,
            started_at,
            duration_ms,
        };
        self.state.seq += 1;
        self.records.push(record);
    }

    fn push(&mut self, fiber: u32, frame: Frame) {
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.frames.push(frame);
        }
    }

    fn block(&mut self, fiber: u32) {
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.blocked = true;
        }
    }

    fn unblock(&mut self, fiber: u32) {
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.blocked = false;
        }
    }

    fn new_effect(&mut self) -> u64 {
        let id = self.state.next_effect;
        self.state.next_effect += 1;
        id
    }
}

fn template_step_error(field: &str, error: TemplateError) -> StepError {
    let path = if error.path.is_empty() {
        field.to_owned()
    } else {
        format!("{field}.{}", error.path)
    };
    let code = match error.kind {
        TemplateErrorKind::Invalid => "template",
        TemplateErrorKind::Budget => "budget_exceeded",
        TemplateErrorKind::Secret => "secret_not_allowed",
    };
    StepError {
        code: code.into(),
        message: format!("{path}: {}", error.message),
        status: None,
        detail: None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A card call as the engine tracks it: where it runs, its masked input and the secret-derived
/// leaves of that input, and its attempt.
struct Call {
    fiber: u32,
    node: NodeId,
    /// The input as history shows it (secret-derived leaves are `[redacted]`).
    input: Value,
    secrets: Vec<JsonPath>,
    attempt: u32,
    started_at: DateTime<Utc>,
}

/// Texts shorter than this are not scrubbed: they would redact ordinary words. Secrets that short
/// are not worth the name, and their owner is told so nowhere else.
const MIN_SCRUB_LEN: usize = 4;
/// Parts of a secret-derived text (split at whitespace, such as the token of `Bearer <token>`) at
/// least this long are scrubbed on their own too.
const MIN_SCRUB_PART_LEN: usize = 8;

/// Replaces secret values and secret-derived texts with `[redacted]` wherever they appear.
struct Scrubber {
    needles: Vec<String>,
}

impl Scrubber {
    fn new(secrets: &BTreeMap<String, String>, derived: &[String]) -> Scrubber {
        let mut needles: Vec<String> = secrets
            .values()
            .filter(|s| s.len() >= MIN_SCRUB_LEN)
            .cloned()
            .collect();
        for text in derived {
            if text.len() >= MIN_SCRUB_LEN {
                needles.push(text.clone());
            }
            needles.extend(
                text.split_whitespace()
                    .filter(|part| part.len() >= MIN_SCRUB_PART_LEN && part.len() < text.len())
                    .map(str::to_owned),
            );
        }
        // Longest first, so a secret inside a longer derived text does not break the longer match.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Scrubber { needles }
    }

    fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), template::REDACTED);
            }
        }
        out
    }

    fn value(&self, value: Value) -> Value {
        if self.needles.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.value(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    fn error(&self, mut error: StepError) -> StepError {
        if self.needles.is_empty() {
            return error;
        }
        error.message = self.text(&error.message);
        error.detail = error.detail.map(|d| self.value(d));
        error
    }
}

/// Replaces every occurrence of a secret value inside strings with `[redacted]`.
pub fn redact_secrets(value: Value, secrets: &BTreeMap<String, String>) -> Value {
    Scrubber::new(secrets, &[]).value(value)
}

fn redact_text(text: &str, secrets: &BTreeMap<String, String>) -> String {
    Scrubber::new(secrets, &[]).text(text)
}

#[cfg(test)]
mod tests {
    //! Data-driven engine tests: a flow in YAML, scripted card answers, and the expected outcome and
    //! step trace. A tiny synchronous runner stands in for `runner.rs`.

    use super::*;
    use crate::flowfile;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn compile(yaml: &str) -> CompiledFlow {
        let flow = flowfile::parse_flow("test.yaml", yaml)
            .unwrap_or_else(|e| panic!("flow does not parse: {e:?}"));
        CompiledFlow::new(flow, "test.yaml")
            .unwrap_or_else(|e| panic!("flow does not compile: {e:?}"))
    }

    /// What the fake runner did.
    struct Trace {
        progress: Progress,
        records: Vec<StepRecord>,
        calls: Vec<String>,
        now: DateTime<Utc>,
        /// Every checkpoint of the state, as JSON text.
        states: Vec<String>,
    }

    type Responder<'a> = dyn FnMut(&str, &Value, u32) -> Result<Value, CardError> + 'a;

    fn execute(
        flow: &CompiledFlow,
        input: Value,
        helpers: &[&CompiledFlow],
        respond: &mut Responder<'_>,
    ) -> Trace {
        let ctx = RunContext::new(
            "01TEST".into(),
            flow.flow.name.clone(),
            t0(),
            input,
            json!({"org": "acme"}),
            BTreeMap::from([("api".to_owned(), "s3cr3t-value".to_owned())]),
            flow.flow.history,
        );
        let mut state = RunState::new();
        let mut now = t0();
        let mut events = vec![Event::Start];
        let mut records = Vec::new();
        let mut calls = Vec::new();
        let mut states = Vec::new();
        for _ in 0..10_000 {
            let decision = advance(flow, &mut state, &ctx, std::mem::take(&mut events), now);
            records.extend(decision.records);
            if decision.progress != Progress::Pending {
                return Trace {
                    progress: decision.progress,
                    records,
                    calls,
                    now,
                    states,
                };
            }
            // Round-trip the state through JSON after every step, as a checkpoint would.
            let saved = serde_json::to_string(&state).expect("state serializes");
            state = serde_json::from_str(&saved).expect("state restores");
            states.push(saved);
            let mut timers = Vec::new();
            for effect in decision.effects {
                match effect {
                    Effect::Card {
                        effect,
                        card,
                        input,
                        attempt,
                        ..
                    } => {
                        calls.push(format!("{card}#{attempt}"));
                        events.push(Event::CardDone {
                            effect,
                            result: respond(&card, &input, attempt),
                        });
                    }
                    Effect::StartChild {
                        effect,
                        flow: name,
                        input,
                        ..
                    } => {
                        calls.push(format!("child:{name}"));
                        let helper = helpers
                            .iter()
                            .find(|h| h.flow.name == name)
                            .expect("helper exists");
                        let child = execute(helper, input, helpers, respond);
                        let result = match child.progress {
                            Progress::Succeeded(out) => Ok(out["body"].clone()),
                            Progress::Failed(e) => Err(e),
                            Progress::Pending => unreachable!(),
                        };
                        events.push(Event::ChildDone { effect, result });
                    }
                    Effect::Timer { effect, until } => timers.push((until, effect)),
                }
            }
            if events.is_empty() {
                timers.sort();
                let (until, effect) = timers.first().copied().expect("a blocked run has a timer");
                // Like the runner, wake at the flow's deadline when it comes first.
                if let Some(deadline) = flow.deadline(t0())
                    && deadline < until
                {
                    now = now.max(deadline);
                    continue;
                }
                now = now.max(until);
                events.push(Event::TimerFired { effect });
                // Timers not yet due are re-issued on the next Resume-less pass by keeping them pending.
                for (u, e) in timers.into_iter().skip(1) {
                    if u <= now {
                        events.push(Event::TimerFired { effect: e });
                    }
                }
            }
        }
        panic!("run did not finish");
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
            Progress::Succeeded(
                json!({"status": 200, "headers": {}, "body": "caught 500 at call"})
            )
        );
        assert!(
            !summary(&trace.records)
                .iter()
                .any(|s| s.starts_with("never"))
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

    /// Everything a run leaves behind, as text: step records, the run's result, every checkpoint.
    fn everything_kept(trace: &Trace) -> String {
        format!(
            "{}\n{:?}\n{}",
            serde_json::to_string(&trace.records).expect("records serialize"),
            trace.progress,
            trace.states.join("\n")
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

    /// Compiles a flow skipping the file checks, with `@SECRET@` in its strings replaced by a
    /// `secret('api')` call: what a flow that bypassed `idflow validate` would do.
    fn compile_unchecked(yaml: &str) -> CompiledFlow {
        fn swap(value: &mut Value) {
            match value {
                Value::String(text) => *text = text.replace("@SECRET@", "secret('api')"),
                Value::Array(items) => items.iter_mut().for_each(swap),
                Value::Object(map) => map.values_mut().for_each(swap),
                _ => {}
            }
        }
        fn walk(steps: &mut [Step]) {
            for step in steps {
                if let Some(guard) = &mut step.guard {
                    *guard = guard.replace("@SECRET@", "secret('api')");
                }
                match &mut step.kind {
                    StepKind::Card { with, .. } => swap(with),
                    StepKind::If {
                        condition,
                        then,
                        otherwise,
                    } => {
                        *condition = condition.replace("@SECRET@", "secret('api')");
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
                "name: f\nsteps:\n  - { id: a, card: text.compose, with: { text: \"k={{ @SECRET@ }}\" } }\n",
                "text.compose",
            ),
            (
                "name: f\nsteps:\n  - { card: flow.return, with: { body: \"{{ @SECRET@ | upper }}\" } }\n",
                "flow.return",
            ),
            (
                "name: f\nsteps:\n  - { card: flow.fail, with: { message: \"{{ @SECRET@ }}\" } }\n",
                "flow.fail",
            ),
            (
                "name: f\nsteps:\n  - if: \"{{ @SECRET@ < input.guess }}\"\n    then: [{ id: t, card: text.compose, with: { text: yes } }]\n",
                "condition",
            ),
            (
                "name: f\nsteps:\n  - { id: l, card: list.filter, with: { list: [1], where: \"@SECRET@ == 's3cr3t-value'\" } }\n",
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
        let mut state = RunState::new();
        let d1 = advance(&flow, &mut state, &ctx, vec![Event::Start], t0());
        let Effect::Card { effect: first, .. } = d1.effects[0].clone() else {
            panic!()
        };
        let d2 = advance(
            &flow,
            &mut state,
            &ctx,
            vec![Event::CardDone {
                effect: first,
                result: Ok(json!(1)),
            }],
            t0(),
        );
        assert_eq!(d2.records.len(), 1);
        // The process dies here; the checkpoint holds `state`.
        let mut restored: RunState =
            serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
        let d3 = advance(&flow, &mut restored, &ctx, vec![Event::Resume], t0());
        assert!(d3.records.is_empty(), "completed steps are not re-run");
        assert_eq!(d3.effects.len(), 1);
        let Effect::Card { input, .. } = &d3.effects[0] else {
            panic!()
        };
        assert_eq!(input["url"], "https://example.test/2");
    }
}
