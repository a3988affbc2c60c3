//! What a run leaves behind: step records (with the data the flow's history mode keeps, secrets
//! redacted), step outputs held within the run's working-memory budget, and the run's result
//! scrubbed of secrets.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::HistoryMode;
use crate::run::{StepError, StepRecord, StepStatus};

use super::advance::Advance;
use super::compile::NodeId;
use super::scrub::{Scrubber, redact_secrets, redact_text};
use super::state::{Done, Held};

impl Advance<'_> {
    /// Records a successful step and makes its output visible, unless holding it would pass the
    /// run's working-memory budget: then the step fails instead.
    pub(super) fn complete(
        &mut self,
        fiber: u32,
        node_id: NodeId,
        input: Option<Value>,
        output: Value,
        attempts: u32,
        started_at: DateTime<Utc>,
    ) {
        let Some(node) = self.node(node_id) else {
            return;
        };
        let key = node.key.clone();
        let budget = self.flow.flow.limits.memory_bytes();
        let size = crate::budget::json_size(&output, budget.saturating_add(1));
        let replaced = self
            .state
            .fibers
            .get(&fiber)
            .and_then(|f| f.outputs.get(&key))
            .map_or(0, |old| crate::budget::json_size(old, u64::MAX));
        // Saturating: the sizes may come from a restored state.
        let held = (self.state.fibers.values()).fold(0u64, |sum, f| sum.saturating_add(f.bytes));
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
            f.outputs.insert(key.clone(), Held::new(output.clone()));
            f.last = Held::new(output);
        }
        self.state.cache.remove(&(fiber, key));
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
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
        let Some(node) = self.node(node_id) else {
            return;
        };
        let Some(next_seq) = self.state.seq.checked_add(1) else {
            self.corrupt("step records are numbered up to the limit");
            return;
        };
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
            card: node.kind.label().to_owned(),
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
        self.state.seq = next_seq;
        self.records.push(record);
    }

    /// The run's output and error leave the engine without any secret value in them.
    pub(super) fn scrub_done(&mut self) {
        let scrubber = Scrubber::new(&self.ctx.secrets, &[]);
        if scrubber.is_empty() {
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
}
