//! Streaming a card (`stream:`): the card is called page by page, and each record it returns is
//! handed to a helper run, at most `concurrency` at a time, fetching the next page ahead.

use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::cards::CardSpec;
use crate::run::StepError;
use crate::template::{self, JsonPath};

use super::advance::{Advance, Effect, StepOutcome};
use super::card::Call;
use super::compile::NodeId;
use super::state::{Frame, Pending, PendingKind, StreamFrame};

impl Advance<'_> {
    /// Whether `fiber` is streaming the card of `node`.
    pub(super) fn streaming(&self, fiber: u32, node: NodeId) -> bool {
        matches!(
            self.state.fibers.get(&fiber).and_then(|f| f.frames.last()),
            Some(Frame::Stream(frame)) if frame.node == node
        )
    }

    pub(super) fn start_stream(
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
            buffer: VecDeque::new(),
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
                step: format!(
                    "{prefix}[{}]",
                    frame.count.saturating_add(frame.running as u64)
                ),
                flow: frame.flow.clone(),
                input,
            });
            frame.running = frame.running.saturating_add(1);
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
    pub(super) fn stream_page(&mut self, fiber_id: u32, output: Value) {
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

    pub(super) fn stream_child_done(&mut self, fiber_id: u32, succeeded: bool) {
        if let Some(Frame::Stream(frame)) = self
            .state
            .fibers
            .get_mut(&fiber_id)
            .and_then(|f| f.frames.last_mut())
        {
            frame.running = frame.running.saturating_sub(1);
            frame.count = frame.count.saturating_add(1);
            if !succeeded {
                frame.failed = frame.failed.saturating_add(1);
            }
        }
        self.pump_stream(fiber_id);
    }

    /// Pops a stream frame (the stream failed); returns the card input for the step record.
    pub(super) fn end_stream(&mut self, fiber_id: u32) -> Option<Value> {
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
}
