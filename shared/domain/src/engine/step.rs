//! Running one step: its guard (`if:`), then what its kind does: a card call, `if`/`else`,
//! `continue_if`, a loop, a `try` block, or a wait.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::run::{StepError, StepStatus};
use crate::template::{self, TemplateError, TemplateErrorKind};

use super::advance::{Advance, Effect, MAX_WAIT_DAYS, StepOutcome};
use super::compile::{ListRef, NodeId, NodeKind};
use super::state::{Frame, Pending, PendingKind};

impl Advance<'_> {
    /// Runs the step `node_id` in `fiber`.
    pub(super) fn run_step(&mut self, fiber: u32, node_id: NodeId) -> StepOutcome {
        let Some(node) = self.node(node_id) else {
            return StepOutcome::Blocked;
        };
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
                    .unwrap_or_default();
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
                        started_at: Some(self.now),
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
                let until = self.later(*duration);
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
