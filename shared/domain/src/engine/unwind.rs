//! Failures and early ends: a failed step is recorded, then handled by its `on_error`, or unwinds
//! its fiber to the nearest `try` (its `catch` steps run with `error` set), or fails the loop
//! iteration or the run. Also: closing `try` and `on_error` blocks, `continue_if` ending a run
//! quietly, and the flow's `timeout:`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::run::{RunError, StepError, StepStatus};
use crate::template::{TemplateError, TemplateErrorKind};

use super::advance::{Advance, StepOutcome};
use super::compile::{ErrorPlan, ListRef, NodeId};
use super::scrub::Scrubber;
use super::state::{Done, Frame, Held, Pending, PendingKind};

impl Advance<'_> {
    /// A step list ended; close the construct that pushed it.
    pub(super) fn frame_finished(&mut self, fiber_id: u32, list: ListRef) {
        let Some(fiber) = self.state.fibers.get_mut(&fiber_id) else {
            return;
        };
        match list {
            ListRef::Try(_) | ListRef::Catch(_) => {
                let closed = match fiber.frames.last() {
                    Some(Frame::Try { .. }) => fiber.frames.pop(),
                    _ => None,
                };
                let caught = fiber.locals.remove("error");
                if let Some(Frame::Try {
                    node,
                    catching,
                    started_at,
                }) = closed
                {
                    // The `try` ended well: its steps did, or its `catch` handled what failed.
                    let output = catching.then(|| json!({ "caught": caught }));
                    self.record_try(
                        fiber_id,
                        node,
                        StepStatus::Succeeded,
                        output,
                        None,
                        started_at,
                    );
                }
            }
            ListRef::OnError(node) => {
                let flow = self.flow;
                if let Some(Frame::OnError { error, .. }) = fiber.frames.last().cloned()
                    && let Some(handled) = flow.node(node)
                {
                    fiber.frames.pop();
                    fiber.locals.remove("error");
                    let key = handled.key.clone();
                    fiber
                        .outputs
                        .insert(key.clone(), Held::new(json!({ "error": error })));
                    self.state.cache.remove(&(fiber_id, key));
                }
            }
            ListRef::Root | ListRef::Then(_) | ListRef::Else(_) | ListRef::Body(_) => {}
        }
    }

    /// The flow's `timeout:` passed: every step still in flight is abandoned (recorded as failed) and
    /// the run fails with `timeout`. No `try` or `on_error` catches it.
    pub(super) fn time_out(&mut self) {
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

    /// `continue_if` was false: end this iteration, or the whole run at top level.
    pub(super) fn stop_quietly(&mut self, fiber_id: u32) {
        let Some(fiber) = self.state.fibers.get(&fiber_id) else {
            return;
        };
        match fiber.parent {
            None => {
                let last = Value::clone(&fiber.last);
                self.state.done = Some(Done::Succeeded(
                    json!({ "status": 200, "headers": {}, "body": last }),
                ));
            }
            Some((parent, slot)) => {
                let last = Value::clone(&fiber.last);
                self.drop_fiber(fiber_id);
                self.iteration_finished(parent, slot, Ok(last));
            }
        }
    }

    pub(super) fn template_failed(
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
    pub(super) fn fail_step(
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
        let Some(node) = self.node(node_id) else {
            return StepOutcome::Blocked;
        };
        let step_name = self.step_name(fiber, node_id);
        let value = error_value(&step_name, &error);
        match &node.on_error {
            ErrorPlan::Continue => {
                let key = node.key.clone();
                if let Some(f) = self.state.fibers.get_mut(&fiber) {
                    let output = json!({ "error": value });
                    f.outputs.insert(key.clone(), Held::new(output.clone()));
                    f.last = Held::new(output);
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
        // `try` blocks whose `catch` steps failed: they end failed, and the error goes on outwards.
        let mut failed_tries = Vec::new();
        let mut caught = false;
        while let Some(frame) = fiber.frames.pop() {
            match frame {
                Frame::Try {
                    node,
                    catching: false,
                    started_at,
                } => {
                    fiber.frames.push(Frame::Try {
                        node,
                        catching: true,
                        started_at,
                    });
                    fiber.frames.push(Frame::Seq {
                        list: ListRef::Catch(node),
                        index: 0,
                    });
                    fiber.locals.insert("error".into(), value.clone());
                    fiber.blocked = false;
                    caught = true;
                    break;
                }
                Frame::Try {
                    node,
                    catching: true,
                    started_at,
                } => failed_tries.push((node, started_at)),
                _ => {}
            }
        }
        let parent = fiber.parent;
        for (node, started_at) in failed_tries {
            self.record_try(
                fiber_id,
                node,
                StepStatus::Failed,
                None,
                Some(error.clone()),
                started_at,
            );
        }
        if caught {
            return;
        }
        match parent {
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
}

impl Advance<'_> {
    /// The record of a `try` step that ended, when the author named it (an unnamed `try` is only
    /// the steps inside it). States saved before `try` blocks were dated give no start: the end.
    fn record_try(
        &mut self,
        fiber: u32,
        node: NodeId,
        status: StepStatus,
        output: Option<Value>,
        error: Option<StepError>,
        started_at: Option<DateTime<Utc>>,
    ) {
        if !self.flow.node(node).is_some_and(|n| n.named) {
            return;
        }
        let started_at = started_at.unwrap_or(self.now);
        self.record(fiber, node, status, None, output, error, 1, started_at);
    }
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

/// A template error as the step error of the field it is in.
pub(super) fn template_step_error(field: &str, error: TemplateError) -> StepError {
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
