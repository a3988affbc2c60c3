//! What each [`Event`] does to a run: start it, resume it (re-issue every pending effect), or
//! deliver the result of a card call, a helper run or a timer to the step waiting for it.

use serde_json::{Value, json};

use crate::cards::CardError;
use crate::run::RunError;
use crate::template;

use super::advance::{Advance, Effect, Event};
use super::card::{Call, start_effect};
use super::compile::NodeKind;
use super::state::PendingKind;
use super::unwind::template_step_error;

impl Advance<'_> {
    pub(super) fn apply(&mut self, event: Event) {
        match event {
            Event::Start => self.start(),
            Event::Resume => {
                let ids: Vec<u64> = self.state.pending.keys().copied().collect();
                for id in ids {
                    self.reissue(id);
                }
            }
            Event::CardDone { effect, result } => self.card_done(effect, result),
            Event::ChildDone { effect, result } => self.child_done(effect, result),
            Event::TimerFired { effect } => self.timer_fired(effect),
        }
    }

    fn card_done(&mut self, effect: u64, result: Result<Value, CardError>) {
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

    fn child_done(&mut self, effect: u64, result: Result<Value, RunError>) {
        let Some(p) = self.state.pending.remove(&effect) else {
            return;
        };
        let PendingKind::Child { input, slot, .. } = p.kind else {
            return;
        };
        match slot {
            Some(slot) => self.loop_child_finished(p.fiber, slot, result),
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

    fn timer_fired(&mut self, effect: u64) {
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
                let Some(node) = self.node(p.node) else {
                    return;
                };
                let NodeKind::Card { spec, .. } = &node.kind else {
                    self.corrupt(format!(
                        "a retry timer belongs to step `{}`, which is not a card",
                        node.key
                    ));
                    return;
                };
                let call = Call {
                    fiber: p.fiber,
                    node: p.node,
                    input,
                    secrets,
                    attempt,
                    started_at: p.started_at,
                };
                self.issue_card(spec.name, call, None);
            }
            PendingKind::Wait { until } => {
                let output = json!({ "waited_until": until.to_rfc3339() });
                self.complete(p.fiber, p.node, None, output, 1, p.started_at);
                self.unblock(p.fiber);
            }
            PendingKind::Card { .. } | PendingKind::Child { .. } => {}
        }
    }

    /// Re-emits the effect of a pending entry (after a restore).
    fn reissue(&mut self, id: u64) {
        let Some(p) = self.state.pending.get(&id).cloned() else {
            return;
        };
        let Some(node) = self.node(p.node) else {
            return;
        };
        let step = self.step_name(p.fiber, p.node);
        let effect = match p.kind {
            PendingKind::Card {
                input,
                attempt,
                secrets,
            } => {
                let NodeKind::Card { spec, .. } = &node.kind else {
                    self.corrupt(format!(
                        "a card call belongs to step `{}`, which is not a card",
                        node.key
                    ));
                    return;
                };
                let input = match self.unmask(p.fiber, p.node, &input, &secrets) {
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
                        self.unblock(p.fiber);
                        self.fail_step(
                            p.fiber,
                            p.node,
                            Some(input),
                            template_step_error("with", error),
                            attempt,
                            self.now,
                        );
                        return;
                    }
                };
                Effect::Card {
                    effect: id,
                    step,
                    card: spec.name.to_owned(),
                    input,
                    timeout: node.timeout,
                    attempt,
                }
            }
            PendingKind::Retry { until, .. } | PendingKind::Wait { until } => {
                Effect::Timer { effect: id, until }
            }
            PendingKind::Child { flow, input, slot } => match (slot, &node.kind) {
                // An iteration's helper run is named after its item, as when it was first issued.
                (Some(slot), _) => Effect::StartChild {
                    effect: id,
                    step: format!("{step}[{slot}]"),
                    flow,
                    input,
                },
                // `flow.call` and `flow.start` keep their whole card input (for the step record);
                // the helper run gets its `with`, as when it was first issued.
                (None, NodeKind::Card { spec, .. })
                    if matches!(spec.name, "flow.call" | "flow.start") =>
                {
                    let with = input.get("with").cloned().unwrap_or_else(|| json!({}));
                    start_effect(spec.name, id, step, flow, with)
                }
                (None, _) => Effect::StartChild {
                    effect: id,
                    step,
                    flow,
                    input,
                },
            },
        };
        self.effects.push(effect);
    }
}
