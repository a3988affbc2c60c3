//! Loops (`for_each`, `map`): iterations over inline steps run as fibers, iterations over a helper
//! flow as helper runs, at most `concurrency` at a time; the first failure stops new iterations and
//! fails the loop once the running ones are accounted for.

use serde_json::{Map, Value, json};

use crate::run::{RunError, StepError};

use super::advance::{Advance, Effect, StepOutcome};
use super::compile::{Body, ListRef, Node, NodeId, NodeKind};
use super::state::{Fiber, Frame, Held, LoopFrame, Pending, PendingKind};
use super::unwind::template_step_error;

impl Advance<'_> {
    pub(super) fn start_loop(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        items: Vec<Value>,
    ) -> StepOutcome {
        let frame = LoopFrame {
            node: node_id,
            results: Default::default(),
            chunks: Default::default(),
            items: Held::new(Value::Array(items)),
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
            let Some(Node {
                name,
                kind:
                    NodeKind::Loop {
                        collect,
                        concurrency,
                        var,
                        body,
                        ..
                    },
                ..
            }) = flow.node(node_id)
            else {
                self.corrupt(format!("a loop frame names step #{node_id}, not a loop"));
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
            let items = frame.items.as_array().map_or(0, Vec::len);
            if frame.next >= items {
                if frame.running == 0 {
                    let started_at = frame.started_at;
                    let count = items;
                    let results = frame.take_results();
                    fiber.frames.pop();
                    fiber.blocked = false;
                    let output = if *collect {
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
            let Some(item) = frame.items.get(slot).cloned() else {
                return;
            };
            frame.next = slot.saturating_add(1);
            frame.running = frame.running.saturating_add(1);
            let prefix = format!("{}{name}[{slot}].", fiber.prefix);
            match body {
                Body::Steps(_) => {
                    let Some(id) = self.new_fiber() else {
                        return;
                    };
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
                            outputs: Default::default(),
                            locals,
                            last: Held::default(),
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

    /// A helper run of an iteration ended.
    pub(super) fn loop_child_finished(
        &mut self,
        fiber: u32,
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
    pub(super) fn iteration_finished(
        &mut self,
        fiber_id: u32,
        slot: usize,
        result: Result<Value, Value>,
    ) {
        let flow = self.flow;
        let Some(fiber) = self.state.fibers.get_mut(&fiber_id) else {
            return;
        };
        let Some(Frame::Loop(frame)) = fiber.frames.last_mut() else {
            return;
        };
        frame.running = frame.running.saturating_sub(1);
        let collect = matches!(
            flow.node(frame.node).map(|n| &n.kind),
            Some(NodeKind::Loop { collect: true, .. })
        );
        match result {
            Ok(value) => {
                if collect {
                    frame.keep_result(slot, value);
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
    pub(super) fn drop_fiber(&mut self, id: u32) {
        // Each fiber leaves the map before its children are looked up, so this ends even on a
        // restored state whose parents form a cycle.
        let mut doomed = vec![id];
        while let Some(id) = doomed.pop() {
            self.state.fibers.remove(&id);
            doomed.extend(
                self.state
                    .fibers
                    .iter()
                    .filter(|(_, f)| f.parent.map(|(p, _)| p) == Some(id))
                    .map(|(c, _)| *c),
            );
            self.state.pending.retain(|_, p| p.fiber != id);
            self.state.cache.retain(|(f, _), _| *f != id);
        }
    }
}
