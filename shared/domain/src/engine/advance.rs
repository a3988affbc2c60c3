//! The engine's interface ([`advance`], its events, effects and decision) and the machine that the
//! other modules extend: the driver loop over fibers, template scopes, and the primitives every
//! concern uses (frames, blocking, effect ids, checked node lookups, refusing a corrupt state).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cards::CardError;
use crate::run::{RunError, StepRecord};
use crate::template::{self, Compiled, TemplateError, TemplateErrorKind};

use super::checkpoint;
use super::compile::{CompiledFlow, ListRef, Node, NodeId};
use super::context::RunContext;
use super::state::{Done, Fiber, Frame, Held, RunState};

/// The longest `wait` / `wait_until`, in days.
pub const MAX_WAIT_DAYS: i64 = 30;

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
    /// Create (idempotently, keyed by run and effect) and enqueue a helper run that this run does
    /// not wait for (`flow.start`); send [`Event::ChildDone`] with `{"run_id": …}` as soon as it is
    /// queued, not when it ends.
    StartDetached {
        effect: u64,
        step: String,
        flow: String,
        input: Value,
    },
    /// Send [`Event::TimerFired`] at `until`.
    Timer { effect: u64, until: DateTime<Utc> },
}

impl Effect {
    /// The effect's id, which its result event carries back.
    pub fn id(&self) -> u64 {
        match self {
            Effect::Card { effect, .. }
            | Effect::StartChild { effect, .. }
            | Effect::StartDetached { effect, .. }
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

/// Advances a run: applies `events`, then runs every ready fiber until it blocks or ends.
///
/// A restored state is first checked against the flow; one that does not fit it (or that would
/// leave the run waiting on nothing) fails the run with `corrupt_state`.
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
        now_value: std::cell::OnceCell::new(),
        effects: Vec::new(),
        records: Vec::new(),
    };
    if !run.state.checked {
        run.state.checked = true;
        if let Err(problem) = checkpoint::check(flow, run.state) {
            run.corrupt(problem);
        }
    }
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
    if run.state.done.is_none() && !run.state.fibers.is_empty() && run.state.pending.is_empty() {
        // Every fiber is blocked and no result can come to wake one: the run would wait forever.
        run.corrupt("every fiber waits and no effect is pending");
    }
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

/// One [`advance`] call in progress. The concern modules (`step`, `card`, `loops`, `streams`,
/// `unwind`, `records`, `events`) add its methods.
pub(super) struct Advance<'a> {
    pub(super) flow: &'a CompiledFlow,
    pub(super) state: &'a mut RunState,
    pub(super) ctx: &'a RunContext,
    pub(super) now: DateTime<Utc>,
    /// `now` as templates read it (`now()`), built at the first render of this advance.
    now_value: std::cell::OnceCell<minijinja::Value>,
    pub(super) effects: Vec<Effect>,
    pub(super) records: Vec<StepRecord>,
}

/// What running one step did to its fiber.
pub(super) enum StepOutcome {
    /// Completed; move to the next step.
    Next,
    /// The fiber now waits (effect or loop).
    Blocked,
    /// The frame stack changed (a nested list was pushed); keep going.
    Pushed,
}

impl<'a> Advance<'a> {
    /// Starts fiber 0 on the top-level steps.
    pub(super) fn start(&mut self) {
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
                    outputs: Default::default(),
                    locals: serde_json::Map::new(),
                    last: Held::default(),
                    blocked: false,
                    bytes: 0,
                },
            );
            self.state.next_fiber = 1;
        }
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
        let flow = self.flow;
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
                    let Some(steps) = flow.list(list_ref) else {
                        self.corrupt(format!(
                            "fiber {id} walks a step list the flow does not have"
                        ));
                        return;
                    };
                    let Some(&node) = steps.get(*index) else {
                        fiber.frames.pop();
                        self.frame_finished(id, list_ref);
                        continue;
                    };
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

    /// A fiber ran out of frames.
    fn fiber_finished(&mut self, id: u32) {
        let Some(fiber) = self.state.fibers.remove(&id) else {
            return;
        };
        self.state.cache.retain(|(f, _), _| *f != id);
        match fiber.parent {
            None => {
                self.state.done = Some(Done::Succeeded(
                    json!({ "status": 200, "headers": {}, "body": fiber.last.into_value() }),
                ));
            }
            Some((parent, slot)) => {
                self.iteration_finished(parent, slot, Ok(fiber.last.into_value()))
            }
        }
    }

    /// The flow's node `id`. A restored state naming a node the flow does not have fails the run
    /// with `corrupt_state`, and the caller gets `None`.
    pub(super) fn node(&mut self, id: NodeId) -> Option<&'a Node> {
        let flow = self.flow;
        let node = flow.node(id);
        if node.is_none() {
            self.corrupt(format!("it names step #{id}, which the flow does not have"));
        }
        node
    }

    /// The state contradicts itself or its flow (a restored state that was corrupted, or one the
    /// engine could never go on from): the run fails with `corrupt_state`, naming what is wrong, and
    /// nothing of it runs any more. A run that has already ended keeps its end.
    pub(super) fn corrupt(&mut self, problem: impl Into<String>) {
        if self.state.done.is_some() {
            return;
        }
        self.state.fibers.clear();
        self.state.pending.clear();
        self.state.cache.clear();
        self.state.derived.clear();
        self.state.done = Some(Done::Failed(RunError {
            code: "corrupt_state".into(),
            message: format!("the run's state is inconsistent: {}", problem.into()),
            step: None,
        }));
    }

    /// The step's name in records and effects: the fiber's prefix and the step key.
    pub(super) fn step_name(&self, fiber: u32, node: NodeId) -> String {
        let prefix = self
            .state
            .fibers
            .get(&fiber)
            .map(|f| f.prefix.as_str())
            .unwrap_or("");
        match self.flow.node(node) {
            Some(n) => format!("{prefix}{}", n.name),
            None => format!("{prefix}#{node}"),
        }
    }

    /// `delay` from now. A delay beyond any date waits the longest wait there is instead.
    pub(super) fn later(&self, delay: Duration) -> DateTime<Utc> {
        chrono::Duration::from_std(delay)
            .ok()
            .and_then(|d| self.now.checked_add_signed(d))
            .or_else(|| {
                self.now
                    .checked_add_signed(chrono::Duration::days(MAX_WAIT_DAYS))
            })
            .unwrap_or(self.now)
    }

    /// The fibers whose outputs and locals a fiber's templates read: itself and its parents,
    /// outermost first (so inner scopes override).
    fn scope_chain(&self, fiber_id: u32) -> Vec<u32> {
        let mut chain = Vec::new();
        let mut cursor = Some(fiber_id);
        // Parents are older fibers (a restored state is checked for it), so the chain ends.
        while let Some(id) = cursor {
            chain.push(id);
            cursor = self
                .state
                .fibers
                .get(&id)
                .and_then(|f| f.parent.map(|(p, _)| p))
                .filter(|p| *p < id);
        }
        chain.reverse();
        chain
    }

    /// The template context of a fiber: input, steps (own and parents'), run, vars, locals. The
    /// template values of step outputs are kept for the next render.
    pub(super) fn context(&mut self, fiber_id: u32) -> minijinja::Value {
        for id in self.scope_chain(fiber_id) {
            let Some(fiber) = self.state.fibers.get(&id) else {
                continue;
            };
            for (key, value) in &fiber.outputs {
                self.state
                    .cache
                    .entry((id, key.clone()))
                    .or_insert_with(|| template::to_value(value));
            }
        }
        self.context_now(fiber_id)
    }

    /// [`Advance::context`] without keeping anything: step outputs not converted yet are
    /// converted for this context only.
    pub(super) fn context_now(&self, fiber_id: u32) -> minijinja::Value {
        let mut steps: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        let mut locals: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        for id in self.scope_chain(fiber_id) {
            let Some(fiber) = self.state.fibers.get(&id) else {
                continue;
            };
            for (key, value) in &fiber.outputs {
                let converted = match self.state.cache.get(&(id, key.clone())) {
                    Some(cached) => cached.clone(),
                    None => template::to_value(value),
                };
                steps.insert(key.clone(), converted);
            }
            for (key, value) in &fiber.locals {
                locals.insert(key.clone(), template::to_value(value));
            }
        }
        let mut map: BTreeMap<String, minijinja::Value> = locals;
        map.insert("input".into(), self.ctx.input_value.clone());
        map.insert("steps".into(), minijinja::Value::from(steps));
        map.insert("run".into(), self.ctx.run_value.clone());
        map.insert("vars".into(), self.ctx.vars_value.clone());
        let now = self.now_value.get_or_init(|| {
            minijinja::Value::from(crate::datetime::rfc3339_utc(
                self.now,
                chrono::SecondsFormat::Millis,
            ))
        });
        map.insert("__now".into(), now.clone());
        map.insert("__secrets".into(), self.ctx.secrets_value.clone());
        minijinja::Value::from(map)
    }

    /// Renders a field where secrets may not go (conditions, loop lists, pure and flow cards).
    pub(super) fn render(
        &mut self,
        fiber: u32,
        compiled: &Compiled,
    ) -> Result<Value, TemplateError> {
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
    pub(super) fn render_secret(
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

    pub(super) fn push(&mut self, fiber: u32, frame: Frame) {
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.frames.push(frame);
        }
    }

    pub(super) fn block(&mut self, fiber: u32) {
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.blocked = true;
        }
    }

    pub(super) fn unblock(&mut self, fiber: u32) {
        if let Some(f) = self.state.fibers.get_mut(&fiber) {
            f.blocked = false;
        }
    }

    /// A fresh effect id.
    pub(super) fn new_effect(&mut self) -> u64 {
        let id = self.state.next_effect;
        match id.checked_add(1) {
            Some(next) => self.state.next_effect = next,
            None => self.corrupt("effect ids are used up"),
        }
        id
    }

    /// A fresh fiber id, or `None` (the run fails) when they are used up.
    pub(super) fn new_fiber(&mut self) -> Option<u32> {
        let id = self.state.next_fiber;
        match id.checked_add(1) {
            Some(next) => {
                self.state.next_fiber = next;
                Some(id)
            }
            None => {
                self.corrupt("fiber ids are used up");
                None
            }
        }
    }
}
