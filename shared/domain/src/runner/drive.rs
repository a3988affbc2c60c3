//! Processing one queue delivery: claim the run, restore the engine state, advance, execute the
//! effects through the ports, checkpoint after every step, and park the run when nothing can happen
//! in this process.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;

use crate::cards::{CardCall, CardError, CardExecutor};
use crate::engine::{self, CompiledFlow, Effect, Event, Progress, RunContext, RunState};
use crate::model::{HistoryMode, SecretRef, Trigger};
use crate::ports::{Checkpoint, Clock, Created, Delivery, QueueMessage, SecretError, StoreError};
use crate::run::{Run, RunError, RunId, RunStatus, TriggerInfo};

use super::error::RunnerError;
use super::runtime::{RunEnded, Runtime};

/// Longest delay SQS accepts; longer waits go to [`Wakeups`] when the runtime has one, and are
/// re-queued in hops of this size otherwise.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);

/// What to do with a delivery after processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Delete the message.
    Done,
    /// Leave it; it becomes visible again and is retried (SQS batch item failure).
    Retry,
}

/// Removes a run from [`Runtime::active`] when processing ends, however it ends.
struct ActiveGuard<'a> {
    runtime: &'a Runtime,
    run_id: RunId,
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        let mut active = self
            .runtime
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        active.remove(&self.run_id);
    }
}

impl Runtime {
    /// Queues the wake-up of a run parked until `wake_at`: a delayed queue message when the queue's
    /// delay reaches that far (or no [`Wakeups`] is configured, which hops), else a scheduled wake-up.
    async fn queue_wakeup(&self, run_id: RunId, wake_at: DateTime<Utc>) -> Result<(), RunnerError> {
        let message = QueueMessage { run_id };
        let delay = to_std(wake_at - self.clock.now());
        match &self.wakeups {
            Some(wakeups) if delay > MAX_QUEUE_DELAY => {
                wakeups.schedule_wakeup(&message, wake_at).await?;
            }
            _ => {
                self.queue
                    .send(&message, delay.min(MAX_QUEUE_DELAY))
                    .await?
            }
        }
        Ok(())
    }

    /// Processes one queue delivery end to end. Never panics; errors become a disposition.
    pub async fn process(&self, delivery: &Delivery) -> Disposition {
        let run_id = delivery.message.run_id;
        match self.advance_run(run_id).await {
            Ok(disposition) => disposition,
            Err(error)
                if error.is_retryable()
                    && delivery.receive_count < self.config.max_receive_count =>
            {
                tracing::warn!(%run_id, error = %error, "run processing failed, will retry");
                Disposition::Retry
            }
            Err(error) => {
                tracing::error!(%run_id, error = %error, "run failed permanently");
                let code = if error.is_retryable() {
                    "poison_message"
                } else {
                    "internal"
                };
                self.fail_unclaimed(run_id, code, &error.to_string()).await;
                Disposition::Done
            }
        }
    }

    /// Marks a run failed outside the normal loop (poison message, invalid flow).
    pub async fn fail_unclaimed(&self, run_id: RunId, code: &str, message: &str) {
        let now = self.clock.now();
        let claimed = self
            .runs
            .claim(run_id, &self.config.owner, now, self.config.lease)
            .await;
        if let Ok(Some(run)) = claimed {
            let checkpoint = Checkpoint {
                run_id,
                owner: self.config.owner.clone(),
                status: RunStatus::Failed,
                state: None,
                steps: Vec::new(),
                wake_at: None,
                output: None,
                error: Some(RunError {
                    code: code.to_owned(),
                    message: message.to_owned(),
                    step: None,
                }),
                finished_at: Some(now),
                drop_input: false,
                release: true,
            };
            if self.runs.checkpoint(&checkpoint).await.is_ok() {
                self.ended(&run, RunStatus::Failed).await;
            }
        }
    }

    async fn advance_run(&self, run_id: RunId) -> Result<Disposition, RunnerError> {
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(woken) = active.get_mut(&run_id) {
                // Advanced right now in this process: let that worker look again before it parks.
                *woken = true;
                return Ok(Disposition::Done);
            }
            active.insert(run_id, false);
        }
        let guard = ActiveGuard {
            runtime: self,
            run_id,
        };
        let result = self.advance_claimed(run_id).await;
        let woken = {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            active.remove(&run_id).unwrap_or(false)
        };
        drop(guard);
        if woken && result.is_ok() {
            // A wake-up arrived after the last look: queue one so it is not lost.
            self.queue
                .send(&QueueMessage { run_id }, Duration::ZERO)
                .await?;
        }
        result
    }

    async fn advance_claimed(&self, run_id: RunId) -> Result<Disposition, RunnerError> {
        let now = self.clock.now();
        let Some(run) = self
            .runs
            .claim(run_id, &self.config.owner, now, self.config.lease)
            .await?
        else {
            return self.unclaimable(run_id).await;
        };
        let flow = match self.flow_version(&run.flow, &run.flow_version).await {
            Ok(flow) => flow,
            Err(error @ (RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. })) => {
                self.finish(
                    &run,
                    Vec::new(),
                    Progress::Failed(RunError {
                        code: "flow_unavailable".into(),
                        message: error.to_string(),
                        step: None,
                    }),
                    HistoryMode::All,
                )
                .await?;
                return Ok(Disposition::Done);
            }
            Err(other) => return Err(other),
        };
        let secrets = self.resolve_secrets(&flow).await;
        let secrets = match secrets {
            Ok(s) => s,
            Err(error) => {
                self.finish(
                    &run,
                    Vec::new(),
                    Progress::Failed(RunError {
                        code: "secret_unavailable".into(),
                        message: error.to_string(),
                        step: None,
                    }),
                    flow.flow.history,
                )
                .await?;
                return Ok(Disposition::Done);
            }
        };
        let project = self.project();
        let ctx = RunContext::new(
            run.id.to_string(),
            run.flow.clone(),
            run.started_at.unwrap_or(now),
            run.input.clone(),
            Value::Object(project.vars.clone()),
            secrets,
            flow.flow.history,
        );
        let (mut state, first) = match &run.state {
            None => (RunState::new(), Event::Start),
            // Through the checkpoint versions; a state that cannot be read fails the run with why.
            Some(saved) => (RunState::restore(saved.clone()), Event::Resume),
        };
        if let Some(blobs) = &self.blobs {
            crate::values::load(blobs.as_ref(), run.id, &mut state).await?;
        }
        self.drive(&run, &flow, &ctx, &mut state, first).await
    }

    /// A message whose run cannot be claimed: ended, unknown, or leased by another worker.
    async fn unclaimable(&self, run_id: RunId) -> Result<Disposition, RunnerError> {
        match self.runs.get(run_id).await? {
            Some(run) if !run.status.is_terminal() => {
                // Another worker holds the lease. Keep a fresh message for later so a notification
                // (a helper run that ended) is not lost; the holder may park the run before seeing it.
                self.queue
                    .send(&QueueMessage { run_id }, Duration::from_secs(2))
                    .await?;
                Ok(Disposition::Done)
            }
            _ => Ok(Disposition::Done),
        }
    }

    async fn resolve_secrets(
        &self,
        flow: &CompiledFlow,
    ) -> Result<BTreeMap<String, String>, RunnerError> {
        let project = self.project();
        let mut out = BTreeMap::new();
        for name in &flow.secret_names {
            let reference = match project.secrets.get(name) {
                Some(r) => r.clone(),
                None => SecretRef::parse(name).map_err(|_| SecretError::Missing {
                    reference: name.clone(),
                })?,
            };
            let value = self.secrets.resolve(&reference).await?;
            out.insert(name.clone(), value.expose().to_owned());
        }
        Ok(out)
    }

    /// The effect loop of one claimed run.
    async fn drive(
        &self,
        run: &Run,
        flow: &CompiledFlow,
        ctx: &RunContext,
        state: &mut RunState,
        first: Event,
    ) -> Result<Disposition, RunnerError> {
        let mut in_flight = FuturesUnordered::new();
        let mut events = vec![first];
        // `timeout:` of the flow: the engine fails the run once it is advanced at or after this.
        let deadline = flow.deadline(ctx.started_at);
        loop {
            let now = self.clock.now();
            let decision = engine::advance(flow, state, ctx, std::mem::take(&mut events), now);
            if let Progress::Succeeded(_) | Progress::Failed(_) = decision.progress {
                self.finish(run, decision.records, decision.progress, flow.flow.history)
                    .await?;
                return Ok(Disposition::Done);
            }
            if !decision.records.is_empty() {
                let checkpoint = self
                    .checkpoint_of(
                        run,
                        state,
                        decision.records,
                        RunStatus::Running,
                        None,
                        false,
                    )
                    .await?;
                if !self.write(checkpoint).await? {
                    return Ok(Disposition::Done);
                }
            }
            for effect in decision.effects {
                match effect {
                    Effect::Card {
                        effect,
                        step,
                        card,
                        input,
                        timeout,
                        attempt,
                    } => {
                        let call = CardCall {
                            card,
                            input,
                            timeout,
                            run_id: run.id,
                            step,
                            attempt,
                            project: self.project(),
                        };
                        let executor = self.executor_for(&call.card);
                        let clock = self.clock.clone();
                        in_flight.push(Box::pin(async move {
                            let result = execute(executor, call, clock).await;
                            Event::CardDone { effect, result }
                        })
                            as futures::future::BoxFuture<'static, Event>);
                    }
                    Effect::StartChild {
                        effect,
                        step,
                        flow: helper,
                        input,
                    } => {
                        if let Some(event) =
                            self.start_child(run, effect, &step, &helper, input).await?
                        {
                            events.push(event);
                        }
                    }
                    Effect::Timer { effect, until } => {
                        let now = self.clock.now();
                        if until <= now {
                            events.push(Event::TimerFired { effect });
                        } else if to_std(until - now) <= self.config.inline_wait {
                            let clock = self.clock.clone();
                            in_flight.push(Box::pin(async move {
                                clock.sleep_until(until).await;
                                Event::TimerFired { effect }
                            }));
                        }
                        // Longer timers are parked below and re-issued on resume.
                    }
                }
            }
            if !events.is_empty() {
                continue;
            }
            let next = match deadline {
                Some(deadline) if !in_flight.is_empty() => {
                    tokio::select! {
                        event = in_flight.next() => event,
                        // Advancing with nothing new at the deadline times the run out; the calls
                        // still in flight are dropped (abandoned).
                        () = self.clock.sleep_until(deadline) => {
                            in_flight = FuturesUnordered::new();
                            continue;
                        }
                    }
                }
                _ => in_flight.next().await,
            };
            match next {
                Some(event) => events.push(event),
                None => {
                    let woken = {
                        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
                        active.get_mut(&run.id).map(std::mem::take).unwrap_or(false)
                    };
                    if woken {
                        // A helper run ended meanwhile: collect finished helpers before parking.
                        events.push(Event::Resume);
                        continue;
                    }
                    // Nothing can happen in this process: park the run (until its deadline at the
                    // latest).
                    let wake_at = match (state.idle_until().flatten(), deadline) {
                        (Some(at), Some(deadline)) => Some(at.min(deadline)),
                        (at, deadline) => at.or(deadline),
                    };
                    let checkpoint = self
                        .checkpoint_of(run, state, Vec::new(), RunStatus::Waiting, wake_at, true)
                        .await?;
                    if !self.write(checkpoint).await? {
                        return Ok(Disposition::Done);
                    }
                    if let Some(wake_at) = wake_at {
                        self.queue_wakeup(run.id, wake_at).await?;
                    }
                    tracing::info!(run_id = %run.id, flow = %run.flow, "run waiting");
                    return Ok(Disposition::Done);
                }
            }
        }
    }

    /// Creates (idempotently) and queues a helper run. Returns its result at once when it already ended.
    async fn start_child(
        &self,
        parent: &Run,
        effect: u64,
        step: &str,
        helper: &str,
        input: Value,
    ) -> Result<Option<Event>, RunnerError> {
        let compiled = match self.current_flow(helper).await {
            Ok(c) => c,
            Err(error @ (RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. })) => {
                return Ok(Some(Event::ChildDone {
                    effect,
                    result: Err(RunError {
                        code: "flow_unavailable".into(),
                        message: error.to_string(),
                        step: None,
                    }),
                }));
            }
            Err(other) => return Err(other),
        };
        if !matches!(compiled.flow.trigger, Trigger::Helper(_) | Trigger::Manual) {
            return Ok(Some(Event::ChildDone {
                effect,
                result: Err(RunError {
                    code: "not_a_helper".into(),
                    message: format!(
                        "flow `{helper}` has a {} trigger; only helper flows can be called",
                        compiled.flow.trigger.kind()
                    ),
                    step: None,
                }),
            }));
        }
        let key = format!("child:{}:{effect}", parent.id);
        let trigger = TriggerInfo::Helper {
            parent: parent.id,
            step: step.to_owned(),
        };
        let (child, created) = self
            .start_compiled(&compiled, input, trigger, Some(&key), Some(parent))
            .await?;
        if let Created::Duplicate(_) = created
            && let Some(run) = self.runs.get(child).await?
        {
            return Ok(child_result(effect, &run));
        }
        Ok(None)
    }

    /// A checkpoint of `state`, whose new large values are stored out of line first.
    async fn checkpoint_of(
        &self,
        run: &Run,
        state: &mut RunState,
        steps: Vec<crate::run::StepRecord>,
        status: RunStatus,
        wake_at: Option<DateTime<Utc>>,
        release: bool,
    ) -> Result<Checkpoint, RunnerError> {
        if let Some(blobs) = &self.blobs {
            crate::values::save(blobs.as_ref(), run.id, state).await?;
        }
        let state_value =
            serde_json::to_value(state).map_err(|source| RunnerError::CorruptState {
                run: run.id,
                source,
            })?;
        Ok(Checkpoint {
            run_id: run.id,
            owner: self.config.owner.clone(),
            status,
            state: Some(state_value),
            steps,
            wake_at,
            output: None,
            error: None,
            finished_at: None,
            drop_input: false,
            release,
        })
    }

    /// Writes a checkpoint; `false` when the run was cancelled or taken over (stop quietly).
    async fn write(&self, checkpoint: Checkpoint) -> Result<bool, RunnerError> {
        match self.runs.checkpoint(&checkpoint).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(reason)) => {
                tracing::info!(run_id = %checkpoint.run_id, %reason, "run no longer ours, stopping");
                Ok(false)
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn finish(
        &self,
        run: &Run,
        steps: Vec<crate::run::StepRecord>,
        progress: Progress,
        history: HistoryMode,
    ) -> Result<(), RunnerError> {
        let now = self.clock.now();
        let (status, output, error) = match progress {
            Progress::Succeeded(output) => (RunStatus::Succeeded, Some(output), None),
            Progress::Failed(error) => (RunStatus::Failed, None, Some(error)),
            Progress::Pending => return Ok(()),
        };
        // [delegated] `report_to_request`: a delegated run given an `accessRequestId` posts its
        // outcome once it has durably ended (see crate::delegation). `None` for every other run.
        let report = crate::delegation::pending_report(run, output.as_ref(), error.as_ref());
        let checkpoint = Checkpoint {
            run_id: run.id,
            owner: self.config.owner.clone(),
            status,
            state: None,
            steps,
            wake_at: None,
            output,
            error: error.clone(),
            finished_at: Some(now),
            drop_input: history == HistoryMode::None,
            release: true,
        };
        if !self.write(checkpoint).await? {
            return Ok(());
        }
        match &error {
            Some(e) => {
                tracing::warn!(run_id = %run.id, flow = %run.flow, trigger = run.trigger.kind(), code = %e.code, step = e.step.as_deref().unwrap_or("-"), "run failed: {}", e.message)
            }
            None => {
                tracing::info!(run_id = %run.id, flow = %run.flow, trigger = run.trigger.kind(), "run succeeded")
            }
        }
        self.ended(run, status).await;
        // [delegated] end of the `report_to_request` hook.
        if let Some(report) = report {
            crate::delegation::send_report(self, report).await;
        }
        Ok(())
    }

    /// Tells listeners and the parent run that a run ended.
    async fn ended(&self, run: &Run, status: RunStatus) {
        // The state is dropped when a run ends, and its out-of-line values with it.
        if let Some(blobs) = &self.blobs {
            crate::values::forget(blobs.as_ref(), run.id).await;
        }
        let _ = self.ended.send(RunEnded {
            run_id: run.id,
            status,
        });
        if let Some(parent) = run.parent
            && let Err(error) = self
                .queue
                .send(&QueueMessage { run_id: parent }, Duration::ZERO)
                .await
        {
            // The parent's own message or a restart recovers it; log so the delay is explainable.
            tracing::warn!(run_id = %run.id, %parent, error = %error, "could not notify parent run");
        }
    }

    /// Re-queues every unfinished run (after a restart). Duplicates are harmless: claims are exclusive.
    pub async fn recover(&self) -> Result<usize, RunnerError> {
        let runs = self.runs.unfinished(100_000).await?;
        let now = self.clock.now();
        for run in &runs {
            if run.status == RunStatus::Waiting && run.wake_at.is_none() {
                // Waiting on helper runs only: their end re-queues it.
                continue;
            }
            match run.wake_at {
                Some(wake) if run.status == RunStatus::Waiting && wake > now => {
                    self.queue_wakeup(run.id, wake).await?;
                }
                _ => {
                    self.queue
                        .send(&QueueMessage { run_id: run.id }, Duration::ZERO)
                        .await?
                }
            }
        }
        Ok(runs.len())
    }
}

/// Looks up a parent's pending helper run result.
fn child_result(effect: u64, run: &Run) -> Option<Event> {
    match run.status {
        RunStatus::Succeeded => {
            let body = run
                .output
                .as_ref()
                .and_then(|o| o.get("body"))
                .cloned()
                .unwrap_or(Value::Null);
            Some(Event::ChildDone {
                effect,
                result: Ok(body),
            })
        }
        RunStatus::Failed | RunStatus::Cancelled => Some(Event::ChildDone {
            effect,
            result: Err(run.error.clone().unwrap_or(RunError {
                code: run.status.as_str().into(),
                message: format!("helper run {} was {}", run.id, run.status),
                step: None,
            })),
        }),
        _ => None,
    }
}

async fn execute(
    executor: Option<Arc<dyn CardExecutor>>,
    call: CardCall,
    clock: Arc<dyn Clock>,
) -> Result<Value, CardError> {
    let Some(executor) = executor else {
        return Err(CardError::Failed {
            code: "no_executor".into(),
            message: format!("card `{}` is not available in this deployment", call.card),
            retryable: false,
        });
    };
    let timeout = call.timeout;
    let deadline =
        clock.now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    tokio::select! {
        result = executor.execute(&call) => result,
        () = clock.sleep_until(deadline) => Err(CardError::Timeout(timeout)),
    }
}

fn to_std(delta: chrono::Duration) -> Duration {
    delta.to_std().unwrap_or(Duration::ZERO)
}
