//! Starting runs (manual, API, event, schedule, delegated and helper triggers all come here),
//! re-running and cancelling. The schedule trigger's start is here too
//! ([`start_scheduled_run`]), shared by the local scheduler and the `schedule` Lambda.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::budget::MAX_INPUT_DEPTH;
use crate::engine::CompiledFlow;
use crate::ports::Created;
use crate::run::{Run, RunId, RunStatus, TriggerInfo};

use super::drive::{Advanced, MAX_QUEUE_DELAY};
use super::error::RunnerError;
use super::runtime::{RunEnded, Runtime};

/// How much longer than the lease a sync invoke's fallback message stays hidden, so that it finds
/// the lease expired even when the clocks of the invoker and the queue disagree a little.
const FALLBACK_MARGIN: Duration = Duration::from_secs(5);

impl Runtime {
    /// Creates a queued run of the current version of `flow` and sends it to the queue. Both are
    /// durable when this returns. With a dedupe key, a repeated start returns the first run's id and
    /// queues nothing.
    pub async fn start_run(
        &self,
        flow: &str,
        input: Value,
        trigger: TriggerInfo,
        dedupe_key: Option<&str>,
    ) -> Result<(RunId, Created), RunnerError> {
        let compiled = self.current_flow(flow).await?;
        self.refuse_if_paused(flow, &trigger).await?;
        self.start_compiled(&compiled, input, trigger, dedupe_key, None)
            .await
    }

    /// Creates and queues a run of exactly `flow`, the compiled version a trigger looked up and
    /// authenticated the caller against (or whose filter it evaluated). A deploy between the check
    /// and the start cannot make the run take another version's steps under this version's
    /// authentication: the run's `flow_version` is `flow`'s, and the worker advances that version.
    pub async fn start_flow(
        &self,
        flow: &CompiledFlow,
        input: Value,
        trigger: TriggerInfo,
        dedupe_key: Option<&str>,
    ) -> Result<(RunId, Created), RunnerError> {
        self.refuse_if_paused(&flow.flow.name, &trigger).await?;
        self.start_compiled(flow, input, trigger, dedupe_key, None)
            .await
    }

    /// Refuses a trigger's start while `flow` is paused, counting and logging the refusal. Helper
    /// runs (started by a running parent) do not come through here, so pausing a helper flow does
    /// not fail the runs that call it.
    async fn refuse_if_paused(&self, flow: &str, trigger: &TriggerInfo) -> Result<(), RunnerError> {
        let Some(since) = self.flows.paused(flow).await? else {
            return Ok(());
        };
        let kind = trigger.kind().to_owned();
        if let Ok(mut skips) = self.paused_skips.lock() {
            *skips.entry((flow.to_owned(), kind.clone())).or_default() += 1;
        }
        tracing::info!(%flow, trigger = %kind, "run not started: the flow is paused");
        Err(RunnerError::FlowPaused {
            name: flow.to_owned(),
            since,
        })
    }

    /// Pauses (`true`) or resumes (`false`) a deployed flow. While paused, every trigger of the
    /// flow (manual, API, event, schedule, delegated, re-run) starts nothing and says so; runs in
    /// flight go on, and helper runs started by other flows' runs still start.
    pub async fn set_paused(&self, flow: &str, paused: bool) -> Result<(), RunnerError> {
        if self.flows.current(flow).await?.is_none() {
            return Err(RunnerError::UnknownFlow(flow.to_owned()));
        }
        let at = paused.then(|| self.clock.now());
        self.flows.set_paused(flow, at).await?;
        tracing::info!(%flow, paused, "flow {}", if paused { "paused" } else { "resumed" });
        Ok(())
    }

    /// Starts refused because their flow was paused, by (flow, trigger kind), since the process
    /// started.
    pub fn paused_skips(&self) -> Vec<((String, String), u64)> {
        let mut skips: Vec<_> = self
            .paused_skips
            .lock()
            .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        skips.sort();
        skips
    }

    /// Starts a run of exactly `flow` and drives its steps in this process, for a sync API invoke:
    /// the answer comes as soon as the run ends, without a worker or a store poll in between.
    ///
    /// The run and its message are durable before a step runs, as for every start; the message is
    /// hidden for the lease plus [`FALLBACK_MARGIN`] (at most [`MAX_QUEUE_DELAY`]): it is the
    /// fallback if this process dies while driving, when the lease it claimed expires and a worker
    /// takes over from the last checkpoint. A run that ended meanwhile makes the message a no-op.
    /// A run that parks (waits for a helper run or a timer beyond the inline wait) goes on in the
    /// workers, and its end is waited for as [`Runtime::wait_for_end`] does. A flow with an I/O card
    /// this process has no executor for (the api Lambda runs pure cards only) is left to the
    /// workers from the start.
    ///
    /// In a process that recovers its own runs when it starts again (`idflow serve`, which has a
    /// local worker), there is no fallback message: the run is stored by its first write instead
    /// (`invoke_fresh`), one write for a run of pure steps.
    ///
    /// `Ok((id, None))` when the run has not ended within `timeout`; driving goes on in the
    /// background (in a Lambda, until the function is frozen; the lease then expires).
    pub async fn invoke_sync(
        self: &Arc<Self>,
        flow: &CompiledFlow,
        input: Value,
        trigger: TriggerInfo,
        timeout: Duration,
    ) -> Result<(RunId, Option<Run>), RunnerError> {
        self.refuse_if_paused(&flow.flow.name, &trigger).await?;
        let mut ended = self.subscribe();
        let deadline =
            self.clock.now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        if !self.can_drive(flow) {
            let (run_id, _) = self
                .enqueue_compiled(flow, input, trigger, None, None, Duration::ZERO)
                .await?;
            return Ok((
                run_id,
                self.wait_for_end(&mut ended, run_id, timeout).await?,
            ));
        }
        if self.local.get().is_some() {
            // A process that recovers its own runs when it starts again needs no fallback message.
            return self
                .invoke_fresh(flow, input, trigger, deadline, ended)
                .await;
        }
        let hold = self.fallback_hold();
        // Where the intake can, the run is created already claimed by this process and its
        // fallback message is deleted in the write that ends the run: two writes per sync run.
        // Otherwise the run is created, then claimed like any, and its fallback message is dropped
        // by a worker once it comes due and finds the run ended.
        let run = self.new_run(flow, input, trigger, None)?;
        let run_id = run.id;
        let now = self.clock.now();
        let claimed = self
            .intake
            .enqueue_claimed(&run, &self.config.owner, now, self.config.lease, hold)
            .await?;
        let settle = match claimed {
            Some(claimed) => {
                tracing::info!(%run_id, flow = %run.flow, trigger = run.trigger.kind(), "run queued");
                Some(claimed)
            }
            None => {
                self.enqueue_run(&run, None, hold).await?;
                None
            }
        };
        // The run as claimed, to answer with once its end is written (see below).
        let claimed_run = settle.as_ref().map(|claimed| claimed.run.clone());
        let runtime = Arc::clone(self);
        let mut driving = tokio::spawn(async move {
            match settle {
                Some(claimed) => {
                    runtime
                        .advance_run(run_id, Some(claimed.run), Some(&claimed.receipt), None)
                        .await
                }
                None => runtime.advance_run(run_id, None, None, None).await,
            }
        });
        tokio::select! {
            joined = &mut driving => match joined {
                // Ended here: the run is the claimed one with what the ending write stored, so
                // no read is needed (a read is a reader-thread hop: it halved sync throughput).
                Ok(Ok(Advanced { end: Some(end), .. })) if claimed_run.is_some() => {
                    return Ok((run_id, claimed_run.map(|run| end.apply(run))));
                }
                Ok(Ok(_)) => {}
                // The fallback message retries the run once the lease expires.
                Ok(Err(error)) => {
                    tracing::warn!(%run_id, error = %error, "driving a sync run failed, the queue takes over");
                }
                Err(error) => {
                    tracing::error!(%run_id, error = %error, "driving a sync run stopped, the queue takes over");
                }
            },
            () = self.clock.sleep_until(deadline) => return Ok((run_id, None)),
        }
        let left = super::driver::to_std(deadline - self.clock.now());
        Ok((run_id, self.wait_for_end(&mut ended, run_id, left).await?))
    }

    /// [`Runtime::invoke_sync`] in a process that recovers its own runs when it starts again
    /// (`idflow serve`): the run is driven here before it is stored, and stored by its first write,
    /// as a run started while a worker slot is free is ([`Runtime::drive_fresh`]), without a
    /// fallback message: if this process dies, [`Runtime::recover`] queues the run at the next
    /// start. A run of pure steps is one write, and answered with the run as that write stored it.
    async fn invoke_fresh(
        self: &Arc<Self>,
        flow: &CompiledFlow,
        input: Value,
        trigger: TriggerInfo,
        deadline: DateTime<Utc>,
        mut ended: tokio::sync::broadcast::Receiver<RunEnded>,
    ) -> Result<(RunId, Option<Run>), RunnerError> {
        let run = self.new_run(flow, input, trigger, None)?;
        let run_id = run.id;
        let created_at = run.created_at;
        let run = run.running_since(created_at);
        // The run as started, to answer with once its end is written (no read back).
        let started = run.clone();
        let (durable, stored) = tokio::sync::oneshot::channel();
        let (end_tx, end) = tokio::sync::oneshot::channel();
        let runtime = Arc::clone(self);
        let mut driving = Detached::new(async move {
            let _ = end_tx.send(runtime.drive_fresh(run, durable).await);
        });
        let within = tokio::select! {
            biased;
            () = &mut driving => true,
            () = self.clock.sleep_until(deadline) => false,
        };
        // Driving goes on in a task of its own if it has not ended.
        drop(driving);
        stored_or_why(stored.await, flow)?;
        if !within {
            return Ok((run_id, None));
        }
        if let Ok(Some(end)) = end.await {
            return Ok((run_id, Some(end.apply(started))));
        }
        // Parked (a helper run, a long timer) or taken over: its end comes from elsewhere.
        let left = super::driver::to_std(deadline - self.clock.now());
        Ok((run_id, self.wait_for_end(&mut ended, run_id, left).await?))
    }

    /// Creates and queues a run of `compiled`. Without a dedupe key or a parent, and while this
    /// process's worker has a free slot ([`Runtime::local_slots`]), the run is driven here at once
    /// instead, and stored by its first write ([`Runtime::drive_fresh`]): the checkpoint before its
    /// first effect (card call, helper run, timer), its park, or its end. The caller is answered
    /// as soon as that write is durable, so an answer still means a stored run; the run skips the
    /// queue (its message, receive, claim and delete), and a run whose steps are all pure is
    /// written once, ended. Nothing outside the run happens before it is stored: the steps before
    /// that write are pure, so a process that dies before it leaves nothing behind, and its caller
    /// no answer. Only a process that recovers its own runs when it starts again has a local
    /// worker (`idflow serve`, [`Runtime::recover`]), so a run this process was driving when it
    /// died is driven again from its last checkpoint at the next start.
    pub(super) async fn start_compiled(
        &self,
        compiled: &CompiledFlow,
        input: Value,
        trigger: TriggerInfo,
        dedupe_key: Option<&str>,
        parent: Option<&Run>,
    ) -> Result<(RunId, Created), RunnerError> {
        let slot = (dedupe_key.is_none() && parent.is_none())
            .then(|| self.free_local_slot(compiled))
            .flatten();
        let Some((runtime, permit)) = slot else {
            return self
                .enqueue_compiled(compiled, input, trigger, dedupe_key, parent, Duration::ZERO)
                .await;
        };
        let run = self.new_run(compiled, input, trigger, None)?;
        let run_id = run.id;
        // Driven as if claimed at its start: running, started now.
        let created_at = run.created_at;
        let run = run.running_since(created_at);
        let (durable, mut stored) = tokio::sync::oneshot::channel();
        // Driven in the caller's task until it is stored: a run that ends in its first write (its
        // steps are all pure) needs no task of its own. A run that goes on (or whose caller goes
        // away meanwhile) goes on in a task of its own.
        let mut driving = Detached::new(async move {
            runtime.drive_fresh(run, durable).await;
            drop(permit);
        });
        let answer = tokio::select! {
            biased;
            answer = &mut stored => answer,
            () = &mut driving => stored.await,
        };
        drop(driving);
        stored_or_why(answer, compiled)?;
        Ok((run_id, Created::New))
    }

    /// A free slot of this process's worker for a run of `compiled`, with the runtime to drive it
    /// in a task: `None` without a local worker, when every slot is taken (the run waits in the
    /// queue like any), or when the flow has an I/O card this process has no executor for.
    fn free_local_slot(
        &self,
        compiled: &CompiledFlow,
    ) -> Option<(Arc<Runtime>, tokio::sync::OwnedSemaphorePermit)> {
        let local = self.local.get()?;
        if !self.can_drive(compiled) {
            return None;
        }
        let runtime = local.runtime.upgrade()?;
        let permit = local.permits.clone().try_acquire_owned().ok()?;
        Some((runtime, permit))
    }

    /// Whether this process has an executor for every I/O card of `flow`, so it can drive its
    /// runs itself (the `api` Lambda registers none: only pure flows).
    fn can_drive(&self, flow: &CompiledFlow) -> bool {
        flow.io_families()
            .iter()
            .all(|family| self.executors.contains_key(*family))
    }

    /// How long the fallback message of a run driven where it was created stays hidden: longer
    /// than the lease, so that it finds the lease expired even when the clocks of the driver and
    /// the queue disagree a little.
    fn fallback_hold(&self) -> Duration {
        self.config
            .lease
            .saturating_add(FALLBACK_MARGIN)
            .min(MAX_QUEUE_DELAY)
    }

    /// Creates a run of `compiled` with its first message hidden for `delay`.
    async fn enqueue_compiled(
        &self,
        compiled: &CompiledFlow,
        input: Value,
        trigger: TriggerInfo,
        dedupe_key: Option<&str>,
        parent: Option<&Run>,
        delay: Duration,
    ) -> Result<(RunId, Created), RunnerError> {
        let run = self.new_run(compiled, input, trigger, parent)?;
        self.enqueue_run(&run, dedupe_key, delay).await
    }

    /// Sends a new run to the intake with its first message hidden for `delay`.
    async fn enqueue_run(
        &self,
        run: &Run,
        dedupe_key: Option<&str>,
        delay: Duration,
    ) -> Result<(RunId, Created), RunnerError> {
        match self.intake.enqueue(run, dedupe_key, delay).await? {
            Created::New => {
                tracing::info!(run_id = %run.id, flow = %run.flow, trigger = run.trigger.kind(), "run queued");
                Ok((run.id, Created::New))
            }
            Created::Duplicate(existing) => Ok((existing, Created::Duplicate(existing))),
        }
    }

    /// A new queued run of `compiled`, not stored yet; refused when its input nests too deep.
    fn new_run(
        &self,
        compiled: &CompiledFlow,
        input: Value,
        trigger: TriggerInfo,
        parent: Option<&Run>,
    ) -> Result<Run, RunnerError> {
        let depth = crate::budget::json_depth(&input);
        if depth > MAX_INPUT_DEPTH {
            return Err(RunnerError::InputTooDeep { depth });
        }
        let now = self.clock.now();
        let run = Run {
            id: RunId::new_at(now),
            flow: compiled.flow.name.clone(),
            flow_version: compiled.flow.version.clone(),
            trigger,
            status: RunStatus::Queued,
            input,
            parent: parent.map(|p| p.id),
            root: parent.map(|p| p.root.unwrap_or(p.id)),
            created_at: now,
            started_at: None,
            finished_at: None,
            wake_at: None,
            output: None,
            error: None,
            state: None,
            step_count: 0,
        };
        Ok(run)
    }

    /// Starts a new run with the input of an earlier one.
    pub async fn rerun(&self, id: RunId) -> Result<RunId, RunnerError> {
        let old = self
            .runs
            .get(id)
            .await?
            .ok_or(RunnerError::UnknownRun(id))?;
        let (new, _) = self
            .start_run(
                &old.flow,
                old.input.clone(),
                TriggerInfo::Rerun { of: id },
                None,
            )
            .await?;
        Ok(new)
    }

    /// Cancels a run; pending helper runs are cancelled too.
    pub async fn cancel(&self, id: RunId) -> Result<Option<Run>, RunnerError> {
        let run = self.runs.cancel(id, self.clock.now()).await?;
        if let Some(run) = &run
            && run.status == RunStatus::Cancelled
        {
            if let Some(blobs) = &self.blobs {
                crate::values::forget(blobs.as_ref(), id).await;
            }
            let _ = self.ended.send(RunEnded {
                run_id: id,
                status: RunStatus::Cancelled,
            });
        }
        Ok(run)
    }
}

/// How storing a run driven where it started went, as [`Runtime::drive_fresh`] answered it.
fn stored_or_why(
    answer: Result<Result<(), RunnerError>, tokio::sync::oneshot::error::RecvError>,
    flow: &CompiledFlow,
) -> Result<(), RunnerError> {
    match answer {
        Ok(stored) => stored,
        // The driving task ended without a word: it can only have been cancelled with its
        // runtime (the process is stopping).
        Err(_) => Err(RunnerError::NotStored {
            flow: flow.flow.name.clone(),
        }),
    }
}

/// A future polled where it was made until it ends or is dropped; dropped before its end, it goes
/// on in a task of its own (unless the runtime is shutting down, when nothing would run it).
struct Detached(Option<Pin<Box<dyn Future<Output = ()> + Send>>>);

impl Detached {
    fn new(future: impl Future<Output = ()> + Send + 'static) -> Detached {
        Detached(Some(Box::pin(future)))
    }
}

impl Future for Detached {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(future) = self.0.as_mut() else {
            return Poll::Ready(());
        };
        let poll = future.as_mut().poll(cx);
        if poll.is_ready() {
            self.0 = None;
        }
        poll
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(future) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}

/// The dedupe key of a schedule flow's run for one fire time: `schedule:<flow>:<unix seconds>`.
pub fn scheduled_run_key(flow: &str, scheduled_for: DateTime<Utc>) -> String {
    format!("schedule:{flow}:{}", scheduled_for.timestamp())
}

/// Starts the run of schedule flow `flow` for the fire time `scheduled_for`, at most once per
/// (flow, fire time): a scheduler that fires twice (EventBridge Scheduler delivers at least once)
/// gets the first run's id back with [`crate::ports::Created::Duplicate`]. Used by the local
/// scheduler of `idflow serve` and by the `schedule` Lambda.
pub async fn start_scheduled_run(
    runtime: &Runtime,
    flow: &str,
    scheduled_for: DateTime<Utc>,
) -> Result<(crate::run::RunId, crate::ports::Created), RunnerError> {
    let key = scheduled_run_key(flow, scheduled_for);
    let trigger = crate::run::TriggerInfo::Schedule(crate::run::ScheduleStart { scheduled_for });
    let input = serde_json::json!({ "scheduled_for": scheduled_for.to_rfc3339() });
    runtime.start_run(flow, input, trigger, Some(&key)).await
}
