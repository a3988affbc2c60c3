//! Processing one queue delivery: claim the run, restore the engine state, and drive it with the
//! effect driver ([`super::driver`]) on the runtime's ports: card calls through the executors,
//! helper runs created and queued, checkpoints fenced by the run's lease, and a parked run woken
//! through the queue (or [`Wakeups`](crate::ports::Wakeups) beyond [`MAX_QUEUE_DELAY`]).
//!
//! # Spans
//!
//! Each processing slice of a run (a delivery that claimed it: its start, or a resume after a
//! wait) runs in a `tracing` span named [`RUN_SPAN`] with the fields `run_id`, `flow`,
//! `flow_version`, `trigger` and `slice` (`start` or `resume`), and, once known, `status` (the
//! run's status when the slice ends: `succeeded`, `failed`, `waiting`, `stopped`, or
//! `interrupted` when processing failed and the delivery is retried) and `error_kind` (the run's
//! error code, or the kind of processing error). Every step record the slice writes gets a child
//! span named [`STEP_SPAN`] with `step`, `card`, `attempts`, `status`, `duration_ms`, `started_at`
//! and, on failure, `error_kind`. Ids, names, statuses, counts and durations only: no input,
//! output or message, which may hold a secret or personal data. They appear in the logs, and
//! `idflow serve` exports them as OpenTelemetry traces when an endpoint is configured.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;
use tracing::Instrument;

use crate::cards::{CardCall, CardError};
use crate::engine::{CompiledFlow, Event, Progress, RunContext, RunState};
use crate::model::{HistoryMode, SecretRef};
use crate::ports::{
    Checkpoint, Created, Delivery, Notified, ParkOutcome, QueueError, QueueMessage, SecretError,
    StoreError,
};
use crate::run::{Run, RunError, RunId, RunStatus, StepRecord, StepStatus, TriggerInfo};

use super::driver::{
    CardCalls, ChildRuns, DriveOptions, Parked, Restore, RunDriver, RunHost, execute_card, to_std,
};
use super::error::RunnerError;
use super::runtime::{RunEnded, Runtime};

/// Longest delay SQS accepts; longer waits go to [`Wakeups`] when the runtime has one, and are
/// re-queued in hops of this size otherwise.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);

/// Name of the span of one processing slice of a run (see the module's `# Spans`).
pub const RUN_SPAN: &str = "run";

/// Name of the span of one step record (see the module's `# Spans`).
pub const STEP_SPAN: &str = "step";

/// Claims tried by one delivery whose run's lease keeps changing hands between the claim and the
/// notification (see [`Runtime::claim_or_notify`]) before the message is kept for later instead.
const CLAIM_ATTEMPTS: usize = 4;

/// How long a message is kept for later when its run's lease changed hands at every attempt.
const CONTENDED_RETRY: Duration = Duration::from_secs(2);

/// How long a delivery whose processing failed and is worth another try stays hidden.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What to do with a delivery after processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Delete the message.
    Done,
    /// Leave it; it becomes visible again and is retried (SQS batch item failure).
    Retry,
}

/// How advancing a run went: what to do with its delivery, whether the delivery's message was
/// already deleted with the run's end, and the run as that end wrote it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Advanced {
    pub(super) disposition: Disposition,
    pub(super) settled: bool,
    /// How this slice ended the run; `None` when the run did not end here.
    pub(super) end: Option<RunEnd>,
}

impl Advanced {
    fn done() -> Advanced {
        Advanced::finished(Finished::default())
    }

    fn finished(finished: Finished) -> Advanced {
        Advanced {
            disposition: Disposition::Done,
            settled: finished.settled,
            end: finished.end,
        }
    }
}

/// What [`Runtime::finish`] wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Finished {
    /// Whether the delivery's message was deleted in the same write.
    settled: bool,
    /// What the write stored of the run's end; `None` when nothing was written (the run was not
    /// ours any more, or had not ended).
    end: Option<RunEnd>,
}

/// What the write ending a run changed in it, to build the ended run without reading it back.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RunEnd {
    status: RunStatus,
    output: Option<Value>,
    error: Option<RunError>,
    finished_at: DateTime<Utc>,
    step_count: u32,
    drop_input: bool,
}

impl RunEnd {
    /// The run as the store holds it once its end is written, from the run as claimed.
    pub(super) fn apply(self, run: Run) -> Run {
        Run {
            status: self.status,
            input: if self.drop_input {
                Value::Null
            } else {
                run.input
            },
            finished_at: Some(self.finished_at),
            wake_at: None,
            output: self.output,
            error: self.error,
            state: None,
            step_count: self.step_count,
            ..run
        }
    }
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

/// A run started in this process and driven before it is stored ([`Runtime::drive_fresh`]): its
/// first write creates it, and the starter waits for that write to answer its caller.
pub(super) struct Fresh {
    state: std::sync::Mutex<FreshState>,
}

enum FreshState {
    /// Not stored yet; the starter waits on the other end.
    Waiting(tokio::sync::oneshot::Sender<Result<(), RunnerError>>),
    /// Created by its first write.
    Stored,
    /// Its creation failed (the starter was told): driving stops, nothing is written.
    Lost,
}

impl Fresh {
    pub(super) fn new(durable: tokio::sync::oneshot::Sender<Result<(), RunnerError>>) -> Fresh {
        Fresh {
            state: std::sync::Mutex::new(FreshState::Waiting(durable)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FreshState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the run is still to be created by its first write.
    fn waiting(&self) -> bool {
        matches!(*self.lock(), FreshState::Waiting(_))
    }

    /// Whether the run was stored.
    fn stored(&self) -> bool {
        matches!(*self.lock(), FreshState::Stored)
    }

    /// Ends the wait with how the run's creation went; `false` when it had ended already.
    fn answer(&self, created: Result<(), RunnerError>) -> bool {
        let mut state = self.lock();
        let next = if created.is_ok() {
            FreshState::Stored
        } else {
            FreshState::Lost
        };
        match std::mem::replace(&mut *state, next) {
            FreshState::Waiting(starter) => {
                // The starter may have gone (its caller hung up); the run is stored all the same.
                let _ = starter.send(created);
                true
            }
            before => {
                *state = before;
                false
            }
        }
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
        self.process_delivery(delivery, false).await.0
    }

    /// [`Runtime::process`], and when this delivery's slice ends the run, the delivery's message is
    /// deleted in the write that ends it ([`RunStore::checkpoint_settling`]) where the store can:
    /// the answer's flag says it was, and the caller must not delete it again (a second writer trip
    /// per run). `idflow serve`'s worker uses it.
    ///
    /// [`RunStore::checkpoint_settling`]: crate::ports::RunStore::checkpoint_settling
    pub async fn process_settling(&self, delivery: &Delivery) -> (Disposition, bool) {
        self.process_delivery(delivery, true).await
    }

    /// Does what a [`Disposition`] says with `delivery`'s message, unless `settled` (deleted
    /// already, in the write that ended the run). A receipt gone stale (the message was received
    /// again meanwhile) is left to its new holder.
    pub async fn settle(&self, delivery: &Delivery, disposition: Disposition, settled: bool) {
        let result = match disposition {
            Disposition::Done if settled => Ok(()),
            Disposition::Done => self.queue.delete(&delivery.receipt).await,
            Disposition::Retry => {
                self.queue
                    .change_visibility(&delivery.receipt, RETRY_AFTER)
                    .await
            }
        };
        if let Err(error) = result
            && !matches!(error, QueueError::StaleReceipt)
        {
            tracing::warn!(error = %error, "could not settle queue message");
        }
    }

    /// Drives a run started in this process before it is stored: its first write (the
    /// checkpoint before its first effect, its park, or its end) creates it
    /// ([`RunIntake::create_driven`]), and `durable` is answered then, or with why the run could
    /// not be stored. A run whose first advance ends it (its steps are all pure) is stored once,
    /// ended: one write, where a run created first and ended after takes two. Once stored, the run
    /// is driven as the worker drives a delivery; a failure worth another try, or a panic, queues
    /// it for the worker after [`RETRY_AFTER`], as a received message would come back, and if this
    /// process dies, [`Runtime::recover`] queues it at the next start.
    ///
    /// [`RunIntake::create_driven`]: crate::ports::RunIntake::create_driven
    ///
    /// Returns how this drive ended the run, when it did.
    pub(super) async fn drive_fresh(
        &self,
        run: Run,
        durable: tokio::sync::oneshot::Sender<Result<(), RunnerError>>,
    ) -> Option<RunEnd> {
        let run_id = run.id;
        let flow = run.flow.clone();
        let fresh = Fresh::new(durable);
        let driving =
            std::panic::AssertUnwindSafe(self.advance_run(run_id, Some(run), None, Some(&fresh)))
                .catch_unwind()
                .await;
        if fresh.waiting() {
            // Never stored: nothing to retry, and the starter answers its caller with why.
            let error = match driving {
                Ok(Err(error)) => error,
                Ok(Ok(_)) | Err(_) => {
                    tracing::error!(%run_id, "driving a run stopped before it was stored");
                    RunnerError::NotStored { flow }
                }
            };
            fresh.answer(Err(error));
            return None;
        }
        if !fresh.stored() {
            return None;
        }
        match driving {
            Ok(Ok(Advanced { end: Some(end), .. })) => Some(end),
            other => {
                self.retry_if_failed(run_id, other).await;
                None
            }
        }
    }

    /// Queues the retry of a run driven where it started when driving it failed in a way worth
    /// another try, or panicked, as a received message would come back.
    async fn retry_if_failed(
        &self,
        run_id: RunId,
        driving: Result<Result<Advanced, RunnerError>, Box<dyn std::any::Any + Send>>,
    ) {
        let disposition = match driving {
            Ok(result) => self.disposition_of(run_id, result, 1).await,
            Err(_) => {
                tracing::error!(%run_id, "driving the run panicked, will retry");
                Disposition::Retry
            }
        };
        if disposition == Disposition::Retry
            && let Err(error) = self.queue.send(&QueueMessage { run_id }, RETRY_AFTER).await
        {
            tracing::error!(%run_id, error = %error, "could not queue the run's retry; it is recovered at the next start");
        }
    }

    /// Claims and advances the run of `delivery` and decides what becomes of the delivery.
    async fn process_delivery(&self, delivery: &Delivery, settle: bool) -> (Disposition, bool) {
        let run_id = delivery.message.run_id;
        let receipt = settle.then_some(delivery.receipt.as_str());
        let advanced = self.advance_run(run_id, None, receipt, None).await;
        if let Ok(Advanced { settled: true, .. }) = advanced {
            return (Disposition::Done, true);
        }
        let disposition = self
            .disposition_of(run_id, advanced, delivery.receive_count)
            .await;
        (disposition, false)
    }

    /// What becomes of a run's delivery (its `receive_count`-th) once advancing it came to
    /// `advanced`: a failure worth another try is retried until the delivery is poison, after
    /// which, as after any other failure, the run fails.
    async fn disposition_of(
        &self,
        run_id: RunId,
        advanced: Result<Advanced, RunnerError>,
        receive_count: u32,
    ) -> Disposition {
        match advanced {
            Ok(advanced) => advanced.disposition,
            Err(error) if error.is_retryable() && receive_count < self.config.max_receive_count => {
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

    /// Advances run `run_id`: claims it (unless `claimed` is the run as this process already
    /// claimed it) and drives it until it ends, waits or is no longer ours. With `settle`, the
    /// receipt of a queue message that the write ending the run deletes too. With `fresh`, `claimed`
    /// is a run started here and not stored yet, which its first write creates.
    pub(super) async fn advance_run(
        &self,
        run_id: RunId,
        claimed: Option<Run>,
        settle: Option<&str>,
        fresh: Option<&Fresh>,
    ) -> Result<Advanced, RunnerError> {
        {
            let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(woken) = active.get_mut(&run_id) {
                // Advanced right now in this process: let that worker look again before it parks.
                *woken = true;
                return Ok(Advanced::done());
            }
            active.insert(run_id, false);
        }
        let guard = ActiveGuard {
            runtime: self,
            run_id,
        };
        let result = self.advance_claimed(run_id, claimed, settle, fresh).await;
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

    async fn advance_claimed(
        &self,
        run_id: RunId,
        claimed: Option<Run>,
        settle: Option<&str>,
        fresh: Option<&Fresh>,
    ) -> Result<Advanced, RunnerError> {
        let run = match claimed {
            Some(run) => run,
            None => match self.claim_or_notify(run_id).await? {
                Some(run) => run,
                None => return Ok(Advanced::done()),
            },
        };
        let now = self.clock.now();
        // The span starts once the run is ours: a delivery that finds the run busy or ended did
        // no work on it. `status` and `error_kind` are recorded where the slice ends.
        let span = tracing::info_span!(
            RUN_SPAN,
            run_id = %run.id,
            flow = %run.flow,
            flow_version = %run.flow_version,
            trigger = run.trigger.kind(),
            slice = if run.state.is_none() { "start" } else { "resume" },
            status = tracing::field::Empty,
            error_kind = tracing::field::Empty,
        );
        // Boxed: the slice's future holds the driver's and the engine's state machines, several
        // KB, and a task copies the futures it holds whole whenever it stores or moves them (a
        // worker's delivery task, a sync invoke's driving task). callgrind showed these copies at
        // 12 % of an async request's instructions unboxed.
        let result = Box::pin(
            self.advance_slice(run, now, settle, fresh)
                .instrument(span.clone()),
        )
        .await;
        if let Err(error) = &result {
            span.record("status", "interrupted");
            span.record("error_kind", processing_error_kind(error));
        }
        result
    }

    /// The rest of [`Runtime::advance_claimed`], in the slice's span: load the flow and secrets,
    /// restore the state and drive the run.
    async fn advance_slice(
        &self,
        run: Run,
        now: DateTime<Utc>,
        settle: Option<&str>,
        fresh: Option<&Fresh>,
    ) -> Result<Advanced, RunnerError> {
        let flow = match self.flow_version(&run.flow, &run.flow_version).await {
            Ok(flow) => flow,
            Err(error @ (RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. })) => {
                let finished = self
                    .finish(
                        &run,
                        Vec::new(),
                        Progress::Failed(RunError {
                            code: "flow_unavailable".into(),
                            message: error.to_string(),
                            step: None,
                        }),
                        HistoryMode::All,
                        settle,
                        fresh,
                    )
                    .await?;
                return Ok(Advanced::finished(finished));
            }
            Err(other) => return Err(other),
        };
        let secrets = self.resolve_secrets(&flow).await;
        let secrets = match secrets {
            Ok(s) => s,
            Err(error) => {
                let finished = self
                    .finish(
                        &run,
                        Vec::new(),
                        Progress::Failed(RunError {
                            code: "secret_unavailable".into(),
                            message: error.to_string(),
                            step: None,
                        }),
                        flow.flow.history,
                        settle,
                        fresh,
                    )
                    .await?;
                return Ok(Advanced::finished(finished));
            }
        };
        let project = self.project();
        let ctx = RunContext::new(
            run.id.to_string(),
            run.flow.clone(),
            run.started_at.unwrap_or(now),
            &run.input,
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
        let driver = RunDriver {
            flow: &flow,
            ctx: &ctx,
            run_id: run.id,
            project,
            clock: self.clock.clone(),
            cards: self,
            children: &QueuedChildren {
                runtime: self,
                parent: &run,
            },
            options: DriveOptions {
                inline_wait: self.config.inline_wait,
                restore: Restore::OnResume,
                max_rounds: None,
            },
        };
        let mut host = StoreHost {
            runtime: self,
            run: &run,
            history: flow.flow.history,
            settle,
            fresh,
            step_count: run.step_count,
            finished: Finished::default(),
        };
        // However driving ends (the run ended, waits, or is no longer ours), the delivery is done.
        driver.drive(&mut host, &mut state, first).await?;
        Ok(Advanced::finished(host.finished))
    }

    /// Claims the run of a delivery, or leaves the delivery's news with the worker that holds it.
    ///
    /// A message for a run leased by another worker is a notification (a helper run ended) or a
    /// duplicate of the holder's own message. Either way the holder must look at the run again
    /// before it parks, and nobody else needs the message: [`RunStore::notify`] marks the run in one
    /// conditional write and the message is dropped. Every interleaving with the holder ends with
    /// the news seen (the store serialises `notify` with the holder's `park`):
    ///
    /// - notify before the holder parks (it is still driving): the park finds the mark, keeps the
    ///   lease and answers [`ParkOutcome::Notified`]; the holder collects its helper runs again.
    /// - notify and park at the same time: the store orders them; one of the other two cases.
    /// - notify after the park: the lease is free, `notify` answers [`Notified::NotLeased`] and this
    ///   delivery claims the run itself and drives it.
    /// - the holder crashes or stalls: its own message (hidden for longer than the lease, see
    ///   template.yaml) comes back after the lease expired, claims the run (which clears the mark)
    ///   and resumes it from its last checkpoint, helper results included.
    /// - the lease changes hands between the claim and the notify (parked, then claimed by a third
    ///   worker): claim and notify again, a few times; past that the message is kept for later.
    ///
    /// `None` when the run ended, is unknown, or its holder was notified.
    ///
    /// [`RunStore::notify`]: crate::ports::RunStore::notify
    async fn claim_or_notify(&self, run_id: RunId) -> Result<Option<Run>, RunnerError> {
        let owner = &self.config.owner;
        for _ in 0..CLAIM_ATTEMPTS {
            let now = self.clock.now();
            if let Some(run) = self
                .runs
                .claim(run_id, owner, now, self.config.lease)
                .await?
            {
                return Ok(Some(run));
            }
            match self.runs.notify(run_id, owner, now).await? {
                Notified::Marked | Notified::Ended => return Ok(None),
                Notified::NotLeased => {}
            }
        }
        tracing::info!(%run_id, "run lease changes hands at every look, keeping the message for later");
        self.queue
            .send(&QueueMessage { run_id }, CONTENDED_RETRY)
            .await?;
        Ok(None)
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

    /// Writes a checkpoint, deleting the queue message under `settle` in the same write where the
    /// store can. `None` when the run was cancelled or taken over (stop quietly); `Some(deleted)`
    /// otherwise.
    async fn write_settling(
        &self,
        checkpoint: &Checkpoint,
        settle: Option<&str>,
    ) -> Result<Option<bool>, RunnerError> {
        let written = match settle {
            Some(receipt) => self.runs.checkpoint_settling(checkpoint, receipt).await,
            None => self.runs.checkpoint(checkpoint).await.map(|()| false),
        };
        match written {
            Ok(settled) => Ok(Some(settled)),
            Err(StoreError::Conflict(reason)) => {
                tracing::Span::current().record("status", "stopped");
                tracing::info!(run_id = %checkpoint.run_id, %reason, "run no longer ours, stopping");
                Ok(None)
            }
            Err(other) => Err(other.into()),
        }
    }

    /// [`Runtime::write_settling`] for a run that may not be stored yet: the first write of a
    /// `fresh` run creates it ([`Runtime::create_fresh`]).
    async fn write_run(
        &self,
        run: &Run,
        checkpoint: &Checkpoint,
        settle: Option<&str>,
        fresh: Option<&Fresh>,
    ) -> Result<Option<bool>, RunnerError> {
        match fresh {
            Some(fresh) if !fresh.stored() => Ok(self
                .create_fresh(fresh, run, checkpoint)
                .await
                .then_some(false)),
            _ => self.write_settling(checkpoint, settle).await,
        }
    }

    /// Creates `run`, started here and not stored yet, with `checkpoint`, its first write, and
    /// answers the starter. One write where the intake can ([`RunIntake::create_driven`]);
    /// otherwise the run is created, claimed and checkpointed (a crash in between leaves a queued
    /// run, which [`Runtime::recover`] queues at the next start). `false` when the run could not be
    /// created (the starter was told why): driving stops, as for a run that is no longer ours.
    ///
    /// [`RunIntake::create_driven`]: crate::ports::RunIntake::create_driven
    async fn create_fresh(&self, fresh: &Fresh, run: &Run, checkpoint: &Checkpoint) -> bool {
        if !fresh.waiting() {
            return false;
        }
        let now = self.clock.now();
        let lease_until =
            (!checkpoint.release).then(|| crate::run::lease_end(now, self.config.lease));
        let created = match self
            .intake
            .create_driven(run, checkpoint, lease_until)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => self.create_then_checkpoint(run, checkpoint, now).await,
            Err(error) => Err(error.into()),
        };
        match created {
            Ok(()) => {
                tracing::info!(run_id = %run.id, flow = %run.flow, trigger = run.trigger.kind(), "run started");
                fresh.answer(Ok(()));
                true
            }
            Err(error) => {
                tracing::warn!(run_id = %run.id, error = %error, "could not store a run started here");
                if let Some(blobs) = &self.blobs {
                    crate::values::forget(blobs.as_ref(), run.id).await;
                }
                fresh.answer(Err(error));
                false
            }
        }
    }

    /// [`Runtime::create_fresh`] through an intake that cannot create a run at its first write:
    /// the run is created queued, claimed, and `checkpoint` written.
    async fn create_then_checkpoint(
        &self,
        run: &Run,
        checkpoint: &Checkpoint,
        now: DateTime<Utc>,
    ) -> Result<(), RunnerError> {
        let queued = Run {
            status: RunStatus::Queued,
            started_at: None,
            ..run.clone()
        };
        self.runs.create(&queued, None).await?;
        let claimed = self
            .runs
            .claim(run.id, &self.config.owner, now, self.config.lease)
            .await?;
        if claimed.is_none() {
            return Err(StoreError::Conflict(format!(
                "run {} was claimed by another worker",
                run.id
            ))
            .into());
        }
        self.runs.checkpoint(checkpoint).await?;
        Ok(())
    }

    /// Ends a run with its last step records. Returns whether the queue message under `settle`
    /// was deleted in the same write, and what the write changed in the run.
    async fn finish(
        &self,
        run: &Run,
        steps: Vec<crate::run::StepRecord>,
        progress: Progress,
        history: HistoryMode,
        settle: Option<&str>,
        fresh: Option<&Fresh>,
    ) -> Result<Finished, RunnerError> {
        self.finish_counted(run, run.step_count, steps, progress, history, settle, fresh)
            .await
    }

    /// [`Runtime::finish`] for a run whose stored step count is `step_count` before `steps`.
    #[allow(clippy::too_many_arguments)]
    async fn finish_counted(
        &self,
        run: &Run,
        step_count: u32,
        steps: Vec<crate::run::StepRecord>,
        progress: Progress,
        history: HistoryMode,
        settle: Option<&str>,
        fresh: Option<&Fresh>,
    ) -> Result<Finished, RunnerError> {
        let now = self.clock.now();
        let (status, output, error) = match progress {
            Progress::Succeeded(output) => (RunStatus::Succeeded, Some(output), None),
            Progress::Failed(error) => (RunStatus::Failed, None, Some(error)),
            Progress::Pending => return Ok(Finished::default()),
        };
        let step_count = steps
            .last()
            .map_or(step_count, |last| last.seq.saturating_add(1));
        let drop_input = history == HistoryMode::None;
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
            drop_input,
            release: true,
        };
        let Some(settled) = self.write_run(run, &checkpoint, settle, fresh).await? else {
            return Ok(Finished::default());
        };
        // What the store holds now (see `RunStore::checkpoint`).
        let end = RunEnd {
            status,
            output: checkpoint.output,
            error: checkpoint.error,
            finished_at: now,
            step_count,
            drop_input,
        };
        // The span of the slice that ended the run (the current one: `finish` runs inside it).
        let span = tracing::Span::current();
        span.record("status", status.as_str());
        if let Some(error) = &error {
            span.record("error_kind", error.code.as_str());
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
        Ok(Finished {
            settled,
            end: Some(end),
        })
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

/// The result of a helper run that has ended; `None` while it runs.
fn child_result(run: &Run) -> Option<Result<Value, RunError>> {
    match run.status {
        RunStatus::Succeeded => Some(Ok(run
            .output
            .as_ref()
            .and_then(|o| o.get("body"))
            .cloned()
            .unwrap_or(Value::Null))),
        RunStatus::Failed | RunStatus::Cancelled => {
            Some(Err(run.error.clone().unwrap_or(RunError {
                code: run.status.as_str().into(),
                message: format!("helper run {} was {}", run.id, run.status),
                step: None,
            })))
        }
        _ => None,
    }
}

/// Card calls go to the runtime's executors, each bounded by its step's timeout.
impl CardCalls<RunnerError> for Runtime {
    fn call(
        &self,
        call: CardCall,
    ) -> Result<BoxFuture<'static, Result<Value, CardError>>, RunnerError> {
        let executor = self.executor_for(&call.card);
        Ok(Box::pin(execute_card(executor, call, self.clock.clone())))
    }
}

/// Helper runs of `parent`, created and queued like every run; the parent waits for their end.
struct QueuedChildren<'a> {
    runtime: &'a Runtime,
    parent: &'a Run,
}

#[async_trait]
impl ChildRuns<RunnerError> for QueuedChildren<'_> {
    async fn helper(&self, name: &str) -> Result<Result<Arc<CompiledFlow>, String>, RunnerError> {
        match self.runtime.current_flow(name).await {
            Ok(flow) => Ok(Ok(flow)),
            Err(error @ (RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. })) => {
                Ok(Err(error.to_string()))
            }
            Err(other) => Err(other),
        }
    }

    async fn start(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Option<Result<Value, RunError>>, RunnerError> {
        // One helper run per parent and effect, however often the effect is issued again.
        let key = format!("child:{}:{effect}", self.parent.id);
        let trigger = TriggerInfo::Helper(crate::run::HelperStart {
            parent: self.parent.id,
            step: step.to_owned(),
        });
        let (child, created) = self
            .runtime
            .start_compiled(helper, input, trigger, Some(&key), Some(self.parent))
            .await?;
        if let Created::Duplicate(_) = created
            && let Some(run) = self.runtime.runs.get(child).await?
        {
            return Ok(child_result(&run));
        }
        Ok(None)
    }

    async fn start_detached(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Result<Value, RunError>, RunnerError> {
        // The same key as `flow.call`: one helper run per starter and effect. The helper run names
        // its starter in its trigger but has no parent, so its end wakes nobody (the starter may
        // have ended long before).
        let key = format!("child:{}:{effect}", self.parent.id);
        let trigger = TriggerInfo::Helper(crate::run::HelperStart {
            parent: self.parent.id,
            step: step.to_owned(),
        });
        let (child, _) = self
            .runtime
            .start_compiled(helper, input, trigger, Some(&key), None)
            .await?;
        Ok(Ok(serde_json::json!({ "run_id": child.to_string() })))
    }
}

/// A claimed run's progress goes to the run store, fenced by its lease; a parked run is woken
/// through the queue.
struct StoreHost<'a> {
    runtime: &'a Runtime,
    run: &'a Run,
    history: HistoryMode,
    /// The receipt of a queue message to delete with the run's end (see [`Runtime::finish`]).
    settle: Option<&'a str>,
    /// Set for a run started here and not stored yet: its first write creates it.
    fresh: Option<&'a Fresh>,
    /// The run's stored step count: as claimed, then after each checkpoint of this slice.
    step_count: u32,
    /// What the run's end wrote, when this slice ended it.
    finished: Finished,
}

impl StoreHost<'_> {
    fn checkpoint(
        &self,
        state: Value,
        steps: Vec<StepRecord>,
        status: RunStatus,
        wake_at: Option<DateTime<Utc>>,
        release: bool,
    ) -> Checkpoint {
        Checkpoint {
            run_id: self.run.id,
            owner: self.runtime.config.owner.clone(),
            status,
            state: Some(state),
            steps,
            wake_at,
            output: None,
            error: None,
            finished_at: None,
            drop_input: false,
            release,
        }
    }
}

#[async_trait]
impl RunHost<RunnerError> for StoreHost<'_> {
    fn unstored(&self) -> bool {
        self.fresh.is_some_and(|fresh| !fresh.stored())
    }

    async fn save_values(&mut self, state: &mut RunState) -> Result<(), RunnerError> {
        if let Some(blobs) = &self.runtime.blobs {
            crate::values::save(blobs.as_ref(), self.run.id, state).await?;
        }
        Ok(())
    }

    async fn checkpoint(
        &mut self,
        state: Value,
        records: Vec<StepRecord>,
    ) -> Result<bool, RunnerError> {
        trace_steps(&records);
        let next = records.last().map(|last| last.seq.saturating_add(1));
        let checkpoint =
            StoreHost::checkpoint(self, state, records, RunStatus::Running, None, false);
        let written = self
            .runtime
            .write_run(self.run, &checkpoint, None, self.fresh)
            .await?
            .is_some();
        if written && let Some(next) = next {
            self.step_count = next;
        }
        Ok(written)
    }

    async fn finish(
        &mut self,
        records: Vec<StepRecord>,
        progress: Progress,
    ) -> Result<(), RunnerError> {
        trace_steps(&records);
        self.finished = self
            .runtime
            .finish_counted(
                self.run,
                self.step_count,
                records,
                progress,
                self.history,
                self.settle,
                self.fresh,
            )
            .await?;
        Ok(())
    }

    async fn park(
        &mut self,
        state: Value,
        wake_at: Option<DateTime<Utc>>,
    ) -> Result<Parked, RunnerError> {
        let run_id = self.run.id;
        let woken = {
            let mut active = self
                .runtime
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            active.get_mut(&run_id).map(std::mem::take).unwrap_or(false)
        };
        if woken {
            // A helper run ended meanwhile: collect finished helpers before parking.
            return Ok(Parked::Resume);
        }
        if let Some(fresh) = self.fresh
            && !fresh.stored()
        {
            // Parked before any write: the run is created running with this state, then parked
            // as any.
            let running = StoreHost::checkpoint(
                self,
                state.clone(),
                Vec::new(),
                RunStatus::Running,
                None,
                false,
            );
            if !self.runtime.create_fresh(fresh, self.run, &running).await {
                return Ok(Parked::Stop);
            }
        }
        let checkpoint =
            StoreHost::checkpoint(self, state, Vec::new(), RunStatus::Waiting, wake_at, true);
        // Conditional on no notification pending (see `Runtime::claim_or_notify`): a helper run
        // that ended in another process while this one drove the run is seen now, not after a
        // re-sent message.
        match self.runtime.runs.park(&checkpoint).await {
            Ok(ParkOutcome::Parked) => {}
            Ok(ParkOutcome::Notified) => return Ok(Parked::Resume),
            Err(StoreError::Conflict(reason)) => {
                tracing::info!(%run_id, %reason, "run no longer ours, stopping");
                return Ok(Parked::Stop);
            }
            Err(other) => return Err(other.into()),
        }
        if let Some(wake_at) = wake_at {
            self.runtime.queue_wakeup(run_id, wake_at).await?;
        }
        tracing::Span::current().record("status", RunStatus::Waiting.as_str());
        tracing::info!(%run_id, flow = %self.run.flow, "run waiting");
        Ok(Parked::Stop)
    }
}

/// One [`STEP_SPAN`] per record, each a child of the current slice's span. The records are of steps
/// that have ended, so each span opens and closes at once; its `started_at` and `duration_ms` say
/// when the step ran (an exporter may place the span there). A step's values never go on its span.
fn trace_steps(records: &[StepRecord]) {
    for record in records {
        let span = tracing::info_span!(
            STEP_SPAN,
            step = %record.step,
            card = %record.card,
            // Numbers as `i64`: OpenTelemetry attributes have no unsigned integer, and a `u64`
            // field would be exported as text.
            attempts = i64::from(record.attempts),
            status = step_status(record.status),
            duration_ms = i64::try_from(record.duration_ms).unwrap_or(i64::MAX),
            started_at = %record.started_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            error_kind = tracing::field::Empty,
        );
        if let Some(error) = &record.error {
            span.record("error_kind", error.code.as_str());
        }
        span.in_scope(|| tracing::debug!("step ended"));
    }
}

fn step_status(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::Skipped => "skipped",
    }
}

/// What went wrong when processing a slice failed, as a span's `error_kind`: the layer, never its
/// message.
fn processing_error_kind(error: &RunnerError) -> &'static str {
    match error {
        RunnerError::Store(_) => "store",
        RunnerError::Queue(_) => "queue",
        RunnerError::Secret(_) => "secret_unavailable",
        RunnerError::Drive(_) => "drive",
        RunnerError::CorruptState { .. } => "corrupt_state",
        RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. } => "flow_unavailable",
        RunnerError::UnknownRun(_)
        | RunnerError::NotStored { .. }
        | RunnerError::InputTooDeep { .. }
        | RunnerError::FlowPaused { .. } => "internal",
    }
}
