//! Calling a card: pure cards inside the engine, I/O cards as effects (their secret-derived input
//! masked in the state and rendered again for every attempt), `flow.*` cards, the retry policy and
//! throttling, and scrubbing what a card answers.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cards::{CardError, CardKind, CardSpec, PureContext};
use crate::model::RetryOn;
use crate::run::StepError;
use crate::template::{self, JsonPath, TemplateError};

use super::advance::{Advance, Effect, StepOutcome};
use super::compile::{NodeId, NodeKind};
use super::scrub::Scrubber;
use super::state::{Done, Pending, PendingKind};
use super::unwind::template_step_error;

/// A card call as the engine tracks it: where it runs, its masked input and the secret-derived
/// leaves of that input, and its attempt.
pub(super) struct Call {
    pub(super) fiber: u32,
    pub(super) node: NodeId,
    /// The input as history shows it (secret-derived leaves are `[redacted]`).
    pub(super) input: Value,
    pub(super) secrets: Vec<JsonPath>,
    pub(super) attempt: u32,
    pub(super) started_at: DateTime<Utc>,
}

impl Advance<'_> {
    pub(super) fn run_card(
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
                // Built at the first expression the card evaluates: most pure cards have none.
                let base = std::cell::OnceCell::new();
                let this = &*self;
                let eval = |expr: &str, bindings: &[(&str, &Value)]| -> Result<Value, String> {
                    let mut extra: BTreeMap<String, minijinja::Value> = BTreeMap::new();
                    for (name, value) in bindings {
                        extra.insert((*name).to_owned(), template::to_value(value));
                    }
                    let base = base.get_or_init(|| this.context_now(fiber));
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
            "flow.call" | "flow.start" => {
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
                self.effects
                    .push(start_effect(spec.name, id, step, flow, with));
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
    pub(super) fn issue_card(&mut self, card: &str, call: Call, real: Option<Value>) {
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
        let Some(node) = self.node(node_id) else {
            return;
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
            timeout: node.timeout,
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
    pub(super) fn card_finished(
        &mut self,
        call: Call,
        derived: &[String],
        result: Result<Value, CardError>,
    ) {
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
                        attempt: call.attempt.saturating_add(1),
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
        let until = self.later(delay);
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
        let policy = self.flow.node(node_id)?.retry.as_ref()?;
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

    /// The card input of `node` with its secret-derived leaves rendered again (they are masked in
    /// the state).
    pub(super) fn unmask(
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
        let Some(NodeKind::Card { with, .. }) = flow.node(node).map(|n| &n.kind) else {
            return Ok(masked.clone());
        };
        let rendered = self.render_secret(fiber, with)?;
        let mut real = masked.clone();
        template::splice(&mut real, &rendered.value, secrets);
        Ok(real)
    }
}

/// The effect that starts a helper for `card`: `flow.call` waits for the helper to end,
/// `flow.start` only for it to be queued.
pub(super) fn start_effect(
    card: &str,
    effect: u64,
    step: String,
    flow: String,
    input: Value,
) -> Effect {
    if card == "flow.start" {
        Effect::StartDetached {
            effect,
            step,
            flow,
            input,
        }
    } else {
        Effect::StartChild {
            effect,
            step,
            flow,
            input,
        }
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
