//! The effect driver: the one loop that executes what the engine decides, for every run idflow
//! advances — the worker of `idflow serve`, the Lambda worker (both through `Runtime::process`) and
//! `idflow test`.
//!
//! The engine is a pure function ([`engine::advance`]); the driver calls it, writes a checkpoint
//! after every step, executes the effects it returns and feeds their results back:
//! - card calls go through a [`CardCalls`] (the runtime's executors, or a flow test's stubs);
//! - helper runs go through a [`ChildRuns`] (runs created on the queue, or run in-process by a flow
//!   test), after [`helper_policy`], the one place that says which flows may be called;
//! - timers go through the [`Clock`]: due ones fire at once, short ones are awaited in-process, and
//!   longer ones park the run;
//! - checkpoints, the run's end and parking go to a [`RunHost`] (the run store and queue, or a flow
//!   test's report).
//!
//! With [`Restore::EveryStep`] (flow tests), the state is written as a checkpoint and read back
//! before every advance, and a resume from that checkpoint is checked to re-issue exactly the
//! effects in flight, so a passing flow test proves the flow resumes from any of its checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use crate::cards::{CardCall, CardError, CardExecutor};
use crate::engine::{
    self, CompiledFlow, Effect, Event, Progress, RunContext, RunState, StateError,
};
use crate::model::{ProjectConfig, Trigger};
use crate::ports::Clock;
use crate::run::{RunError, RunId, StepRecord};

/// Writes a run state as it goes into a checkpoint.
pub fn checkpoint_state(state: &RunState) -> Result<Value, DriveError> {
    serde_json::to_value(state).map_err(DriveError::Encode)
}

/// Reads a run state back from a checkpoint, through the checkpoint format's versions and
/// migrations ([`RunState::decode`]), as a flow test does at every step. A worker resuming a run
/// uses [`RunState::restore`], the same decoding that turns an unreadable state into a failed run.
pub fn restore_state(saved: &Value) -> Result<RunState, StateError> {
    RunState::decode(saved.clone())
}

/// Which flows a helper call (`flow.call`, a loop over a flow, a stream) may start: helper flows,
/// and manual flows (which can always be started by hand). `found` is the flow's current version,
/// or why there is none. The answer is the helper run's error when the call is refused.
pub fn helper_policy(name: &str, found: Result<&CompiledFlow, String>) -> Result<(), RunError> {
    let refused = |code: &str, message: String| RunError {
        code: code.to_owned(),
        message,
        step: None,
    };
    let flow = found.map_err(|message| refused("flow_unavailable", message))?;
    match flow.flow.trigger {
        Trigger::Helper(_) | Trigger::Manual => Ok(()),
        ref other => Err(refused(
            "not_a_helper",
            format!(
                "flow `{name}` has a {} trigger; only helper flows can be called",
                other.kind()
            ),
        )),
    }
}

/// Executes the card calls of a run.
pub trait CardCalls<E>: Send + Sync {
    /// Starts `call`; the future is its answer. Calls are started in the order the engine issued
    /// them. An error stops driving the run (a card's own failure is its answer, not an error).
    fn call(&self, call: CardCall) -> Result<BoxFuture<'static, Result<Value, CardError>>, E>;
}

/// Starts the helper runs of one run.
#[async_trait]
pub trait ChildRuns<E>: Send + Sync {
    /// Answers a helper call without starting a run (a flow test's stub of `flow.call`), if it can.
    /// Asked first, before the helper is looked up.
    fn answer(
        &self,
        _step: &str,
        _helper: &str,
        _input: &Value,
    ) -> Result<Option<Result<Value, RunError>>, E> {
        Ok(None)
    }

    /// The version of `name` a call starts now, or why there is none (the message of a
    /// `flow_unavailable` error).
    async fn helper(&self, name: &str) -> Result<Result<Arc<CompiledFlow>, String>, E>;

    /// Starts the helper run of `effect` with `input`, at most once per run and effect. Returns its
    /// result when the helper run has ended already; otherwise the run waits until it ends.
    async fn start(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Option<Result<Value, RunError>>, E>;

    /// Starts the helper run of `effect` with `input` without waiting for it (`flow.start`), at
    /// most once per run and effect, and answers at once: the step's output (`{"run_id": …}`), or
    /// why the helper could not start. The helper run's end never wakes this run.
    async fn start_detached(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Result<Value, RunError>, E>;
}

/// Where a run's progress goes.
#[async_trait]
pub trait RunHost<E>: Send {
    /// Stores the values `state` took on since the last checkpoint that go out of line, right
    /// before the driver writes `state` into a checkpoint (or parks it), so a checkpoint never
    /// references a value that is not stored. The default keeps every value inline (flow tests).
    async fn save_values(&mut self, _state: &mut RunState) -> Result<(), E> {
        Ok(())
    }

    /// Whether the run is not stored yet (started in this process, see `Runtime::start_compiled`):
    /// the driver then writes a checkpoint before it issues the first effects even when no step
    /// completed, since nothing may happen outside a run that does not exist.
    fn unstored(&self) -> bool {
        false
    }

    /// Keeps the records of the steps just completed with the state after them. `false` when the
    /// run is no longer this driver's (cancelled, or taken over): driving stops quietly.
    async fn checkpoint(&mut self, state: Value, records: Vec<StepRecord>) -> Result<bool, E>;

    /// The run ended, with the records of its last steps.
    async fn finish(&mut self, records: Vec<StepRecord>, progress: Progress) -> Result<(), E>;

    /// Nothing can happen in this process before `wake_at` (`None`: before a helper run ends, or
    /// never). [`Parked::Resume`] resumes the run at once from `state`.
    async fn park(&mut self, state: Value, wake_at: Option<DateTime<Utc>>) -> Result<Parked, E>;

    /// The state of the last checkpoint (or park) as it reads back from where the host keeps it,
    /// which a run driven with [`Restore::EveryStep`] goes on from. `None` when the host keeps
    /// nothing to read back; the run then goes on from memory.
    async fn reread(&mut self) -> Result<Option<Value>, E> {
        Ok(None)
    }

    /// Gives a state read back with [`RunHost::reread`] the values [`RunHost::save_values`] stored
    /// out of line, as a worker loads them before it resumes a run. The default loads nothing: a
    /// host that keeps every value inline has none to load.
    async fn load_values(&mut self, _state: &mut RunState) -> Result<(), E> {
        Ok(())
    }
}

/// What [`RunHost::park`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// The run waits; driving ends.
    Stop,
    /// Resume now: what the run waited for is there (a helper run ended, the clock moved).
    Resume,
}

/// How driving a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Driven {
    /// The run ended.
    Ended(Progress),
    /// The run waits to be woken.
    Parked,
    /// The run is no longer this driver's.
    Stopped,
}

/// When the state is read back from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Only when a delivery resumes a run; between steps the state stays in memory (production).
    OnResume,
    /// After every advance a checkpoint is written, and the next advance goes on from the state
    /// it reads back as ([`RunHost::reread`]); a resume from that checkpoint must re-issue exactly
    /// the effects in flight (flow tests).
    EveryStep,
}

/// Tunables of the driver.
#[derive(Debug, Clone, Copy)]
pub struct DriveOptions {
    /// Timers due within this are awaited in-process; longer ones park the run.
    pub inline_wait: Duration,
    pub restore: Restore,
    /// Advances after which a run that has not ended stops with [`DriveError::Endless`]. `None` in
    /// production, where a run is bounded by its `timeout:` and its working-memory budget.
    pub max_rounds: Option<usize>,
}

/// Problems of the driver itself.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("the run state cannot be written as a checkpoint")]
    Encode(#[source] serde_json::Error),
    /// The checkpoint's text is not JSON a reader takes (nested too deep, for one).
    #[error("the checkpoint of `{flow}` cannot be read back")]
    Decode {
        flow: String,
        #[source]
        source: serde_json::Error,
    },
    /// The checkpoint reads back as JSON but not as a run state of a format this release knows.
    #[error("the checkpoint of `{flow}` cannot be restored")]
    Restore {
        flow: String,
        #[source]
        source: StateError,
    },
    /// A resume from a checkpoint would not do what the run in memory does.
    #[error("run of `{flow}` cannot resume from its checkpoint {at}: {problem}")]
    NotResumable {
        flow: String,
        /// `after step `x`` or `at its start`.
        at: String,
        problem: String,
    },
    #[error("run of `{flow}` did not end after {rounds} engine rounds")]
    Endless { flow: String, rounds: usize },
}

/// One run to drive, and what its effects go through.
pub struct RunDriver<'a, E> {
    pub flow: &'a CompiledFlow,
    pub ctx: &'a RunContext,
    pub run_id: RunId,
    /// The project config card calls see (connections, vars).
    pub project: Arc<ProjectConfig>,
    pub clock: Arc<dyn Clock>,
    pub cards: &'a dyn CardCalls<E>,
    pub children: &'a dyn ChildRuns<E>,
    pub options: DriveOptions,
}

impl<E> RunDriver<'_, E>
where
    E: From<DriveError> + Send,
{
    /// Advances the run from `state` with `first` (`Start`, or `Resume` for a restored state) until
    /// it ends, parks, or is no longer ours.
    pub async fn drive(
        &self,
        host: &mut dyn RunHost<E>,
        state: &mut RunState,
        first: Event,
    ) -> Result<Driven, E> {
        let flow = self.flow;
        let mut in_flight: FuturesUnordered<BoxFuture<'static, Event>> = FuturesUnordered::new();
        let mut events = vec![first];
        // `timeout:` of the flow: the engine fails the run once it is advanced at or after this.
        let deadline = flow.deadline(self.ctx.started_at);
        // With `Restore::EveryStep`: the effects issued and not yet answered, to compare with what a
        // resume re-issues, and the last step completed, to say where a resume would go wrong.
        let mut issued: BTreeMap<u64, Effect> = BTreeMap::new();
        let mut last_step: Option<String> = None;
        let mut rounds = 0usize;
        loop {
            rounds += 1;
            if let Some(max) = self.options.max_rounds
                && rounds > max
            {
                return Err(DriveError::Endless {
                    flow: flow.flow.name.clone(),
                    rounds: max,
                }
                .into());
            }
            let now = self.clock.now();
            if self.options.restore == Restore::EveryStep
                && let Some(saved) = host.reread().await?
            {
                // Go on from the checkpoint as it reads back, as a worker resuming the run would.
                *state = restore_state(&saved).map_err(|source| DriveError::Restore {
                    flow: flow.flow.name.clone(),
                    source,
                })?;
                host.load_values(state).await?;
                self.check_resume(state, &events, &mut issued, last_step.as_deref(), now)?;
            }
            let decision = engine::advance(flow, state, self.ctx, std::mem::take(&mut events), now);
            if let Some(record) = decision.records.last() {
                last_step = Some(record.step.clone());
            }
            if let Progress::Succeeded(_) | Progress::Failed(_) = decision.progress {
                let progress = decision.progress.clone();
                host.finish(decision.records, decision.progress).await?;
                return Ok(Driven::Ended(progress));
            }
            if !decision.records.is_empty()
                || self.options.restore == Restore::EveryStep
                || (!decision.effects.is_empty() && host.unstored())
            {
                host.save_values(state).await?;
                let saved = checkpoint_state(state)?;
                if !host.checkpoint(saved, decision.records).await? {
                    return Ok(Driven::Stopped);
                }
            }
            for effect in decision.effects {
                if self.options.restore == Restore::EveryStep {
                    issued.insert(effect.id(), effect.clone());
                }
                self.issue(effect, &mut in_flight).await?;
            }
            // Everything that is in already goes into the next advance, in the order it was issued.
            take_ready(&mut in_flight, &mut events);
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
                Some(event) => {
                    events.push(event);
                    take_ready(&mut in_flight, &mut events);
                }
                None => {
                    // Nothing can happen in this process: park the run (until its deadline at the
                    // latest).
                    let wake_at = match (state.idle_until().flatten(), deadline) {
                        (Some(at), Some(deadline)) => Some(at.min(deadline)),
                        (at, deadline) => at.or(deadline),
                    };
                    host.save_values(state).await?;
                    let saved = checkpoint_state(state)?;
                    match host.park(saved, wake_at).await? {
                        Parked::Stop => return Ok(Driven::Parked),
                        Parked::Resume => events.push(Event::Resume),
                    }
                }
            }
        }
    }

    /// Executes one effect: a card call or a timer joins `in_flight`; a helper run is started and
    /// joins it once its result is known.
    async fn issue(
        &self,
        effect: Effect,
        in_flight: &mut FuturesUnordered<BoxFuture<'static, Event>>,
    ) -> Result<(), E> {
        match effect {
            Effect::Card {
                effect,
                step,
                card,
                input,
                timeout,
                attempt,
            } => {
                let answer = self.cards.call(CardCall {
                    card,
                    input,
                    timeout,
                    run_id: self.run_id,
                    step,
                    attempt,
                    project: self.project.clone(),
                })?;
                in_flight.push(Box::pin(async move {
                    Event::CardDone {
                        effect,
                        result: answer.await,
                    }
                }));
            }
            Effect::StartChild {
                effect,
                step,
                flow,
                input,
            } => {
                if let Some(result) = self.start_child(effect, &step, &flow, input).await? {
                    in_flight
                        .push(futures::future::ready(Event::ChildDone { effect, result }).boxed());
                }
            }
            Effect::StartDetached {
                effect,
                step,
                flow,
                input,
            } => {
                let result = self.start_detached(effect, &step, &flow, input).await?;
                in_flight.push(futures::future::ready(Event::ChildDone { effect, result }).boxed());
            }
            Effect::Timer { effect, until } => {
                let now = self.clock.now();
                if until <= now {
                    in_flight.push(futures::future::ready(Event::TimerFired { effect }).boxed());
                } else if to_std(until - now) <= self.options.inline_wait {
                    let clock = self.clock.clone();
                    in_flight.push(Box::pin(async move {
                        clock.sleep_until(until).await;
                        Event::TimerFired { effect }
                    }));
                }
                // Longer timers park the run and are re-issued when it resumes.
            }
        }
        Ok(())
    }

    /// Starts a helper run under [`helper_policy`]; its result when already known.
    async fn start_child(
        &self,
        effect: u64,
        step: &str,
        helper: &str,
        input: Value,
    ) -> Result<Option<Result<Value, RunError>>, E> {
        if let Some(answer) = self.children.answer(step, helper, &input)? {
            return Ok(Some(answer));
        }
        let found = self.children.helper(helper).await?;
        if let Err(refused) = helper_policy(helper, found.as_deref().map_err(Clone::clone)) {
            return Ok(Some(Err(refused)));
        }
        let Ok(compiled) = found else {
            return Ok(None);
        };
        self.children.start(effect, step, &compiled, input).await
    }

    /// Starts a helper run that this run does not wait for, under [`helper_policy`]; answers at once.
    async fn start_detached(
        &self,
        effect: u64,
        step: &str,
        helper: &str,
        input: Value,
    ) -> Result<Result<Value, RunError>, E> {
        if let Some(answer) = self.children.answer(step, helper, &input)? {
            return Ok(answer);
        }
        let found = self.children.helper(helper).await?;
        if let Err(refused) = helper_policy(helper, found.as_deref().map_err(Clone::clone)) {
            return Ok(Err(refused));
        }
        match found {
            Ok(compiled) => {
                self.children
                    .start_detached(effect, step, &compiled, input)
                    .await
            }
            // helper_policy refuses every missing helper; kept total without a panic.
            Err(message) => Ok(Err(RunError {
                code: "flow_unavailable".to_owned(),
                message,
                step: None,
            })),
        }
    }

    /// [`Restore::EveryStep`]: checks that a resume from the restored `state` would re-issue exactly
    /// the effects in flight (`issued`) and nothing else, unless `events` resume it anyway.
    fn check_resume(
        &self,
        state: &RunState,
        events: &[Event],
        issued: &mut BTreeMap<u64, Effect>,
        last_step: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), DriveError> {
        let flow = &self.flow.flow.name;
        let pending: Vec<u64> = state.pending_effects().collect();
        issued.retain(|id, _| pending.contains(id));
        // A start or a resume about to be applied does the resume itself.
        if events
            .iter()
            .any(|e| matches!(e, Event::Start | Event::Resume))
            || pending.is_empty()
        {
            return Ok(());
        }
        let not_resumable = |problem: String| DriveError::NotResumable {
            flow: flow.clone(),
            at: match last_step {
                Some(step) => format!("after step `{step}`"),
                None => "at its start".to_owned(),
            },
            problem,
        };
        // A resume on a copy: the run goes on from the restored state itself, without a resume, as
        // a worker that wrote the checkpoint does.
        let mut resumed = state.clone();
        let check = engine::advance(self.flow, &mut resumed, self.ctx, vec![Event::Resume], now);
        if let Some(record) = check.records.first() {
            return Err(not_resumable(format!(
                "resuming completes step `{}` again",
                record.step
            )));
        }
        if check.progress != Progress::Pending {
            return Err(not_resumable("resuming ends the run".to_owned()));
        }
        let mut reissued: BTreeMap<u64, Effect> =
            check.effects.into_iter().map(|e| (e.id(), e)).collect();
        for id in &pending {
            let Some(again) = reissued.remove(id) else {
                return Err(not_resumable(format!(
                    "effect {id} in flight is not issued again"
                )));
            };
            if let Some(first) = issued.get(id)
                && !same_effect(first, &again)
            {
                // Names only: the inputs may hold secrets.
                return Err(not_resumable(format!(
                    "{} is issued differently than it was",
                    describe(first)
                )));
            }
        }
        if let Some(extra) = reissued.values().next() {
            return Err(not_resumable(format!(
                "resuming issues {}, which was not in flight",
                describe(extra)
            )));
        }
        Ok(())
    }
}

/// Whether a re-issued effect does what the first issue did. A helper run is the same run when it
/// is of the same flow with the same input: its step name is not in the checkpoint for the helper
/// runs of a stream (`each[3]` is re-issued as `each`), and only names the run in history.
fn same_effect(first: &Effect, again: &Effect) -> bool {
    match (first, again) {
        (
            Effect::StartChild {
                effect,
                flow,
                input,
                ..
            },
            Effect::StartChild {
                effect: effect_again,
                flow: flow_again,
                input: input_again,
                ..
            },
        ) => effect == effect_again && flow == flow_again && input == input_again,
        (
            Effect::StartDetached {
                effect,
                flow,
                input,
                ..
            },
            Effect::StartDetached {
                effect: effect_again,
                flow: flow_again,
                input: input_again,
                ..
            },
        ) => effect == effect_again && flow == flow_again && input == input_again,
        _ => first == again,
    }
}

/// An effect by its step and kind, without its input.
fn describe(effect: &Effect) -> String {
    match effect {
        Effect::Card { step, card, .. } => format!("the `{card}` call of step `{step}`"),
        Effect::StartChild { step, flow, .. } => {
            format!("the helper run of `{flow}` of step `{step}`")
        }
        Effect::StartDetached { step, flow, .. } => {
            format!("the detached helper run of `{flow}` of step `{step}`")
        }
        Effect::Timer { effect, .. } => format!("timer {effect}"),
    }
}

/// Moves every result already in from `in_flight` to `events`, in the order the effects were issued.
fn take_ready(
    in_flight: &mut FuturesUnordered<BoxFuture<'static, Event>>,
    events: &mut Vec<Event>,
) {
    while let Some(Some(event)) = in_flight.next().now_or_never() {
        events.push(event);
    }
}

/// Calls `executor` with `call`, bounded by the call's timeout on `clock`; `no_executor` when the
/// deployment has none for the card.
pub async fn execute_card(
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

pub(crate) fn to_std(delta: chrono::Duration) -> Duration {
    delta.to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::HistoryMode;
    use serde_json::json;

    const FLOW: &str = r#"
name: greet
steps:
  - id: name
    card: text.compose
    with: { text: Ada }
  - id: call
    card: http.request
    with: { url: "https://api.example.com/health" }
  - card: flow.return
    with: { body: "{{ steps.name }} {{ steps.call.status }}" }
"#;

    /// Answers every card call with `{status: 200}`.
    struct Answers;

    impl CardCalls<DriveError> for Answers {
        fn call(
            &self,
            _: CardCall,
        ) -> Result<BoxFuture<'static, Result<Value, CardError>>, DriveError> {
            Ok(futures::future::ready(Ok(json!({ "status": 200 }))).boxed())
        }
    }

    /// No helper flow is deployed.
    struct NoHelpers;

    #[async_trait]
    impl ChildRuns<DriveError> for NoHelpers {
        async fn helper(
            &self,
            name: &str,
        ) -> Result<Result<Arc<CompiledFlow>, String>, DriveError> {
            Ok(Err(format!("flow `{name}` is not deployed")))
        }

        async fn start(
            &self,
            _: u64,
            _: &str,
            _: &CompiledFlow,
            _: Value,
        ) -> Result<Option<Result<Value, RunError>>, DriveError> {
            Ok(None)
        }

        async fn start_detached(
            &self,
            _: u64,
            _: &str,
            _: &CompiledFlow,
            _: Value,
        ) -> Result<Result<Value, RunError>, DriveError> {
            Ok(Ok(Value::Null))
        }
    }

    /// Keeps the last checkpoint, and hands it back changed by `edit`: what a store that lost or
    /// altered part of it would give a resuming worker.
    struct Store {
        saved: Option<Value>,
        edit: fn(&mut Value),
        ended: Option<Progress>,
    }

    #[async_trait]
    impl RunHost<DriveError> for Store {
        async fn checkpoint(
            &mut self,
            state: Value,
            _: Vec<StepRecord>,
        ) -> Result<bool, DriveError> {
            self.saved = Some(state);
            Ok(true)
        }

        async fn finish(
            &mut self,
            _: Vec<StepRecord>,
            progress: Progress,
        ) -> Result<(), DriveError> {
            self.ended = Some(progress);
            Ok(())
        }

        async fn park(
            &mut self,
            state: Value,
            _: Option<DateTime<Utc>>,
        ) -> Result<Parked, DriveError> {
            self.saved = Some(state);
            Ok(Parked::Stop)
        }

        async fn reread(&mut self) -> Result<Option<Value>, DriveError> {
            let mut saved = self.saved.clone();
            if let Some(state) = &mut saved {
                (self.edit)(state);
            }
            Ok(saved)
        }
    }

    async fn drive(restore: Restore, edit: fn(&mut Value)) -> Result<Option<Progress>, DriveError> {
        let flow = crate::flowfile::parse_flow("greet.yaml", FLOW)
            .map_err(|e| panic!("flow does not parse: {e:?}"))
            .and_then(|flow| CompiledFlow::new(flow, "greet.yaml"))
            .unwrap_or_else(|e| panic!("flow does not compile: {e:?}"));
        let now = DateTime::parse_from_rfc3339("2026-01-05T08:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let run_id = RunId::new_at(now);
        let ctx = RunContext::new(
            run_id.to_string(),
            "greet".into(),
            now,
            json!({}),
            json!({}),
            Default::default(),
            HistoryMode::All,
        );
        let driver = RunDriver {
            flow: &flow,
            ctx: &ctx,
            run_id,
            project: Arc::new(ProjectConfig::default()),
            clock: Arc::new(ManualClock::new(now)),
            cards: &Answers,
            children: &NoHelpers,
            options: DriveOptions {
                inline_wait: Duration::ZERO,
                restore,
                max_rounds: Some(100),
            },
        };
        let mut store = Store {
            saved: None,
            edit,
            ended: None,
        };
        driver
            .drive(&mut store, &mut RunState::new(), Event::Start)
            .await?;
        Ok(store.ended)
    }

    fn rename(state: &mut Value) {
        let text = state.to_string().replace("\"Ada\"", "\"Grace\"");
        *state = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn second_attempt(state: &mut Value) {
        let text = state.to_string().replace("\"attempt\":1", "\"attempt\":2");
        *state = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn succeeded(body: &str) -> Option<Progress> {
        Some(Progress::Succeeded(
            json!({ "status": 200, "headers": {}, "body": body }),
        ))
    }

    #[tokio::test]
    async fn every_step_goes_on_from_the_checkpoint_as_it_reads_back() {
        let unchanged: fn(&mut Value) = |_| {};
        assert_eq!(
            drive(Restore::EveryStep, unchanged).await.ok(),
            Some(succeeded("Ada 200"))
        );
        // The step output changed in the store is the one the run goes on with: the run continued
        // from its checkpoint, not from memory.
        assert_eq!(
            drive(Restore::EveryStep, rename).await.ok(),
            Some(succeeded("Grace 200"))
        );
        // In production the state stays in memory between steps; the store is read on resume only.
        assert_eq!(
            drive(Restore::OnResume, rename).await.ok(),
            Some(succeeded("Ada 200"))
        );
    }

    #[tokio::test]
    async fn a_checkpoint_that_would_resume_differently_stops_the_run() {
        // The call in flight reads back as its second attempt: a resume would issue a call that
        // differs from the one in flight.
        let error = drive(Restore::EveryStep, second_attempt).await.map(|_| ());
        assert_eq!(
            error.map_err(|e| e.to_string()),
            Err(
                "run of `greet` cannot resume from its checkpoint after step `name`: the `http.request` call of step `call` is issued differently than it was"
                    .to_owned()
            )
        );
    }

    #[test]
    fn only_helper_and_manual_flows_may_be_called() {
        let compile = |source: &str| {
            crate::flowfile::parse_flow("f.yaml", source)
                .map_err(|e| format!("{e:?}"))
                .and_then(|flow| CompiledFlow::new(flow, "f.yaml").map_err(|e| format!("{e:?}")))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let steps = "steps:\n  - card: flow.return\n    with: { body: 1 }\n";
        let helper = compile(&format!(
            "name: h\ntrigger: {{ helper: {{ inputs: {{}} }} }}\n{steps}"
        ));
        let manual = compile(&format!("name: m\n{steps}"));
        let api = compile(&format!(
            "name: a\ntrigger: {{ api: {{ auth: public }} }}\n{steps}"
        ));
        let code = |result: Result<(), RunError>| result.map_err(|e| (e.code, e.message));
        assert_eq!(code(helper_policy("h", Ok(&helper))), Ok(()));
        assert_eq!(code(helper_policy("m", Ok(&manual))), Ok(()));
        assert_eq!(
            code(helper_policy("a", Ok(&api))),
            Err((
                "not_a_helper".into(),
                "flow `a` has a api trigger; only helper flows can be called".into()
            ))
        );
        assert_eq!(
            code(helper_policy("x", Err("flow `x` is not deployed".into()))),
            Err(("flow_unavailable".into(), "flow `x` is not deployed".into()))
        );
    }
}
