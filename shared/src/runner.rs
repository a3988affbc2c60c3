//! The runner: executes the engine's effects through ports and drives runs from the queue.
//!
//! One [`Runtime`] holds the ports and the compiled-flow cache. [`Runtime::start_run`] creates a run and
//! queues it (both durable before it returns, so an API can answer 202 safely).
//! [`Runtime::process`] handles one queue delivery: claim the run, restore the engine state, advance,
//! execute effects, checkpoint after every step, and park the run (`waiting`) when nothing can happen
//! in-process. [`Worker`] is the local queue consumer used by `idflow serve`; the Lambda worker calls
//! [`Runtime::process`] per SQS record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::cards::{CardCall, CardError, CardExecutor};
use crate::engine::{self, CompiledFlow, Effect, Event, Progress, RunContext, RunState};
use crate::flowfile;
use crate::model::{HistoryMode, ProjectConfig, SecretRef, Trigger};
use crate::ports::{
    Checkpoint, Clock, Created, Delivery, FlowStore, QueueError, QueueMessage, RunIntake, RunQueue,
    RunStore, SecretError, Secrets, StoreError, StoreThenQueue, Wakeups,
};
use crate::run::{Run, RunError, RunId, RunStatus, TriggerInfo};

/// Longest delay SQS accepts; longer waits go to [`Wakeups`] when the runtime has one, and are
/// re-queued in hops of this size otherwise.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(15 * 60);

/// Errors of the runner layer.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("flow `{0}` is not deployed")]
    UnknownFlow(String),
    #[error("flow `{name}` is invalid: {message}")]
    InvalidFlow { name: String, message: String },
    #[error("run {0} not found")]
    UnknownRun(RunId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("run state of {run} cannot be decoded")]
    CorruptState {
        run: RunId,
        #[source]
        source: serde_json::Error,
    },
    /// The input nests deeper than [`MAX_INPUT_DEPTH`]: the caller's mistake, refused before anything
    /// is written.
    #[error("the run input is nested {depth} levels deep; at most {MAX_INPUT_DEPTH} are accepted")]
    InputTooDeep { depth: usize },
}

/// The deepest run input accepted. A stored run is decoded with serde_json's recursion limit (128
/// levels, counting the record around the input); an input near that limit was written but could
/// never be read again, so one request with a 127-level JSON body broke the run list for everyone
/// (found by fuzzing). 64 leaves room for any wrapping and for every flow seen.
pub const MAX_INPUT_DEPTH: usize = 64;

impl RunnerError {
    /// Whether processing the same message again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunnerError::Store(e) => e.is_retryable(),
            RunnerError::Queue(e) => e.is_retryable(),
            RunnerError::Secret(SecretError::Unreadable { .. }) => true,
            _ => false,
        }
    }
}

/// Tunables of the runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// This worker's lease owner name.
    pub owner: String,
    /// How long a claim holds a run (and how long a received message stays hidden).
    pub lease: Duration,
    /// Timers due within this are awaited in-process; longer ones park the run.
    pub inline_wait: Duration,
    /// After this many receives a failing message is treated as poison and its run fails.
    pub max_receive_count: u32,
    /// How long the current version of a flow is served from memory before the flow store is asked
    /// again. Deploys in the same process invalidate at once; other processes (Lambdas) see a deploy
    /// within this time.
    pub flow_cache: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            owner: format!("worker-{}", ulid::Ulid::new()),
            lease: Duration::from_secs(15 * 60),
            inline_wait: Duration::from_secs(5),
            max_receive_count: 5,
            flow_cache: Duration::from_secs(5),
        }
    }
}

/// What to do with a delivery after processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Delete the message.
    Done,
    /// Leave it; it becomes visible again and is retried (SQS batch item failure).
    Retry,
}

/// A run that ended, broadcast to in-process listeners (sync API responses).
#[derive(Debug, Clone)]
pub struct RunEnded {
    pub run_id: RunId,
    pub status: RunStatus,
}

/// The ports and caches every trigger and worker share.
pub struct Runtime {
    pub flows: Arc<dyn FlowStore>,
    pub runs: Arc<dyn RunStore>,
    pub queue: Arc<dyn RunQueue>,
    pub clock: Arc<dyn Clock>,
    pub secrets: Arc<dyn Secrets>,
    /// Creates and queues new runs.
    pub intake: Arc<dyn RunIntake>,
    /// Wakes runs parked longer than [`MAX_QUEUE_DELAY`] (EventBridge Scheduler in AWS); `None`
    /// re-queues such waits in hops of `MAX_QUEUE_DELAY`.
    pub wakeups: Option<Arc<dyn Wakeups>>,
    /// Executors of I/O cards by family (`http`, ...).
    pub executors: HashMap<String, Arc<dyn CardExecutor>>,
    pub config: RunnerConfig,
    project: RwLock<Arc<ProjectConfig>>,
    compiled: Mutex<HashMap<(String, String), Arc<CompiledFlow>>>,
    /// Current versions by flow name, fetched at the given instant (see [`RunnerConfig::flow_cache`]).
    current: Mutex<HashMap<String, (Arc<CompiledFlow>, std::time::Instant)>>,
    ended: broadcast::Sender<RunEnded>,
    /// Event-type and delegated-flow index of the current flows (see [`crate::hooks`]); cleared
    /// with the current-version cache.
    pub trigger_index: crate::hooks::TriggerIndex,
    /// Runs being advanced in this process. Several workers may share one lease owner (the local
    /// server keeps its owner across restarts), so exclusivity inside the process is kept here.
    /// The flag is set when a message for the run arrived while it was being advanced (a helper run
    /// ended): the advancing worker re-checks its helper runs instead of the message being re-sent.
    active: Mutex<HashMap<RunId, bool>>,
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
    pub fn new(
        flows: Arc<dyn FlowStore>,
        runs: Arc<dyn RunStore>,
        queue: Arc<dyn RunQueue>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn Secrets>,
        project: ProjectConfig,
        config: RunnerConfig,
    ) -> Runtime {
        let (ended, _) = broadcast::channel(1024);
        let intake: Arc<dyn RunIntake> = Arc::new(StoreThenQueue {
            runs: runs.clone(),
            queue: queue.clone(),
        });
        Runtime {
            flows,
            runs,
            queue,
            clock,
            secrets,
            executors: HashMap::new(),
            config,
            project: RwLock::new(Arc::new(project)),
            compiled: Mutex::new(HashMap::new()),
            current: Mutex::new(HashMap::new()),
            trigger_index: crate::hooks::TriggerIndex::default(),
            intake,
            wakeups: None,
            ended,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Registers the executors every deployment runs, on this runtime's secrets and clock: `http`,
    /// `okta` and `oig` (one executor), `slack` and `email` (SMTP, configured in `idflow.yaml`).
    /// The `table` cards need a table store, which each deployment adds itself.
    pub fn with_standard_executors(self) -> Result<Runtime, reqwest::Error> {
        let http = crate::cards::http::HttpExecutor::new()?;
        let okta = Arc::new(crate::okta::OktaExecutor::with_ports(
            self.secrets.clone(),
            self.clock.clone(),
        )?);
        let slack = crate::cards::slack::SlackExecutor::new(self.secrets.clone())?;
        let email = crate::cards::email::EmailExecutor::new(self.secrets.clone());
        Ok(self
            .with_executor("http", Arc::new(http))
            .with_executor("okta", okta.clone())
            .with_executor("oig", okta)
            .with_executor("slack", Arc::new(slack))
            .with_executor("email", Arc::new(email)))
    }

    /// Replaces how new runs are created and queued (an adapter's one-write fast path).
    pub fn with_intake(mut self, intake: Arc<dyn RunIntake>) -> Runtime {
        self.intake = intake;
        self
    }

    /// Wakes runs parked beyond [`MAX_QUEUE_DELAY`] through `wakeups` instead of re-queueing them
    /// every 15 minutes.
    pub fn with_wakeups(mut self, wakeups: Arc<dyn Wakeups>) -> Runtime {
        self.wakeups = Some(wakeups);
        self
    }

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

    /// Forgets cached current flow versions (after a deploy in this process).
    pub fn invalidate_flows(&self) {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.trigger_index.clear();
    }

    /// Registers the executor of a card family.
    pub fn with_executor(mut self, family: &str, executor: Arc<dyn CardExecutor>) -> Runtime {
        self.executors.insert(family.to_owned(), executor);
        self
    }

    /// The current project config.
    pub fn project(&self) -> Arc<ProjectConfig> {
        match self.project.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the project config (hot reload).
    pub fn set_project(&self, project: ProjectConfig) {
        let mut guard = match self.project.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(project);
    }

    /// Listens for runs that end in this process.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEnded> {
        self.ended.subscribe()
    }

    /// The compiled current version of a flow.
    pub async fn current_flow(&self, name: &str) -> Result<Arc<CompiledFlow>, RunnerError> {
        {
            let cache = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((flow, at)) = cache.get(name)
                && at.elapsed() < self.config.flow_cache
            {
                return Ok(flow.clone());
            }
        }
        let stored = self
            .flows
            .current(name)
            .await?
            .ok_or_else(|| RunnerError::UnknownFlow(name.to_owned()))?;
        let compiled = self.compile(&stored.name, &stored.version, &stored.path, &stored.source)?;
        let mut cache = self.current.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            name.to_owned(),
            (compiled.clone(), std::time::Instant::now()),
        );
        Ok(compiled)
    }

    /// The compiled given version of a flow.
    pub async fn flow_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Arc<CompiledFlow>, RunnerError> {
        if let Some(hit) = self.cached(name, version) {
            return Ok(hit);
        }
        let stored = self
            .flows
            .version(name, version)
            .await?
            .ok_or_else(|| RunnerError::UnknownFlow(format!("{name}@{version}")))?;
        self.compile(&stored.name, &stored.version, &stored.path, &stored.source)
    }

    fn cached(&self, name: &str, version: &str) -> Option<Arc<CompiledFlow>> {
        let cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(name.to_owned(), version.to_owned())).cloned()
    }

    fn compile(
        &self,
        name: &str,
        version: &str,
        path: &str,
        source: &str,
    ) -> Result<Arc<CompiledFlow>, RunnerError> {
        if let Some(hit) = self.cached(name, version) {
            return Ok(hit);
        }
        let invalid = |diagnostics: Vec<crate::diag::Diagnostic>| RunnerError::InvalidFlow {
            name: name.to_owned(),
            message: diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        };
        let flow = flowfile::parse_flow(path, source).map_err(invalid)?;
        let compiled = Arc::new(CompiledFlow::new(flow, path).map_err(invalid)?);
        let mut cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert((name.to_owned(), version.to_owned()), compiled.clone());
        Ok(compiled)
    }

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
        self.start_compiled(&compiled, input, trigger, dedupe_key, None)
            .await
    }

    async fn start_compiled(
        &self,
        compiled: &CompiledFlow,
        input: Value,
        trigger: TriggerInfo,
        dedupe_key: Option<&str>,
        parent: Option<&Run>,
    ) -> Result<(RunId, Created), RunnerError> {
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
        match self.intake.enqueue(&run, dedupe_key).await? {
            Created::New => {
                tracing::info!(run_id = %run.id, flow = %run.flow, trigger = run.trigger.kind(), "run queued");
                Ok((run.id, Created::New))
            }
            Created::Duplicate(existing) => Ok((existing, Created::Duplicate(existing))),
        }
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
            let _ = self.ended.send(RunEnded {
                run_id: id,
                status: RunStatus::Cancelled,
            });
        }
        Ok(run)
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
            Some(saved) => {
                let state: RunState = serde_json::from_value(saved.clone()).map_err(|source| {
                    RunnerError::CorruptState {
                        run: run.id,
                        source,
                    }
                })?;
                (state, Event::Resume)
            }
        };
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
                let checkpoint = self.checkpoint_of(
                    run,
                    state,
                    decision.records,
                    RunStatus::Running,
                    None,
                    false,
                )?;
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
                    let checkpoint = self.checkpoint_of(
                        run,
                        state,
                        Vec::new(),
                        RunStatus::Waiting,
                        wake_at,
                        true,
                    )?;
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

    fn executor_for(&self, card: &str) -> Option<Arc<dyn CardExecutor>> {
        let family = card.split_once('.').map_or(card, |(f, _)| f);
        self.executors.get(family).cloned()
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

    fn checkpoint_of(
        &self,
        run: &Run,
        state: &RunState,
        steps: Vec<crate::run::StepRecord>,
        status: RunStatus,
        wake_at: Option<DateTime<Utc>>,
        release: bool,
    ) -> Result<Checkpoint, RunnerError> {
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
        // outcome once it has durably ended (see crate::delegated). `None` for every other run.
        let report = crate::delegated::pending_report(run, output.as_ref(), error.as_ref());
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
            crate::delegated::send_report(self, report).await;
        }
        Ok(())
    }

    /// Tells listeners and the parent run that a run ended.
    async fn ended(&self, run: &Run, status: RunStatus) {
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

/// The local queue consumer of `idflow serve`.
pub struct Worker {
    runtime: Arc<Runtime>,
    concurrency: usize,
}

impl Worker {
    pub fn new(runtime: Arc<Runtime>, concurrency: usize) -> Worker {
        Worker {
            runtime,
            concurrency: concurrency.max(1),
        }
    }

    /// Receives and processes messages until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        tokio::pin!(shutdown);
        loop {
            let available = semaphore.available_permits().max(1);
            let batch = u32::try_from(available.min(10)).unwrap_or(10);
            let received = tokio::select! {
                () = &mut shutdown => return,
                received = self.runtime.queue.receive(batch, self.runtime.config.lease, Duration::from_secs(1)) => received,
            };
            let deliveries = match received {
                Ok(d) => d,
                Err(error) => {
                    tracing::warn!(error = %error, "queue receive failed");
                    let until = self.runtime.clock.now() + chrono::Duration::seconds(1);
                    self.runtime.clock.sleep_until(until).await;
                    continue;
                }
            };
            for delivery in deliveries {
                let Ok(permit) = semaphore.clone().acquire_owned().await else {
                    return;
                };
                let runtime = self.runtime.clone();
                tokio::spawn(async move {
                    let disposition = runtime.process(&delivery).await;
                    let result = match disposition {
                        Disposition::Done => runtime.queue.delete(&delivery.receipt).await,
                        Disposition::Retry => {
                            runtime
                                .queue
                                .change_visibility(&delivery.receipt, Duration::from_secs(5))
                                .await
                        }
                    };
                    if let Err(error) = result
                        && !matches!(error, QueueError::StaleReceipt)
                    {
                        tracing::warn!(error = %error, "could not settle queue message");
                    }
                    drop(permit);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::clock::ManualClock;
    use crate::adapters::secrets::LocalSecrets;
    use crate::adapters::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};
    use crate::ports::{StoredFlow, Wakeups};

    /// Remembers the wake-ups it was asked for.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(RunId, DateTime<Utc>)>>);

    #[async_trait::async_trait]
    impl Wakeups for Recorded {
        async fn schedule_wakeup(
            &self,
            message: &QueueMessage,
            at: DateTime<Utc>,
        ) -> Result<(), QueueError> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((message.run_id, at));
            Ok(())
        }
    }

    fn t0() -> DateTime<Utc> {
        "2026-03-02T08:00:00Z".parse().expect("time")
    }

    /// A runtime on SQLite with flows `long` (wait 2h) and `short` (wait 10m), and the recorder
    /// as its wake-ups when given.
    async fn runtime(clock: &ManualClock, wakeups: Option<Arc<Recorded>>) -> Runtime {
        let db = SqliteDb::open_in_memory().expect("database");
        let clock: Arc<dyn Clock> = Arc::new(clock.clone());
        let flows = Arc::new(SqliteFlowStore::new(db.clone()));
        for (name, wait) in [("long", "2h"), ("short", "10m")] {
            let source = format!(
                "name: {name}\nsteps:\n  - wait: {wait}\n  - {{ id: after, card: text.compose, with: {{ text: woke }} }}\n"
            );
            flows
                .put(&StoredFlow {
                    name: name.into(),
                    version: flowfile::version_of(&source),
                    source,
                    path: format!("{name}.yaml"),
                    deployed_at: t0(),
                })
                .await
                .expect("deploy");
        }
        let runtime = Runtime::new(
            flows,
            Arc::new(SqliteRunStore::new(db.clone())),
            Arc::new(SqliteRunQueue::new(db, clock.clone(), 5)),
            clock,
            Arc::new(LocalSecrets::new(".")),
            ProjectConfig::default(),
            RunnerConfig::default(),
        );
        match wakeups {
            Some(wakeups) => runtime.with_wakeups(wakeups),
            None => runtime,
        }
    }

    /// Processes every visible message; returns how many there were.
    async fn drain(runtime: &Runtime) -> usize {
        let deliveries = runtime
            .queue
            .receive(10, Duration::from_secs(60), Duration::ZERO)
            .await
            .expect("receive");
        for delivery in &deliveries {
            assert_eq!(runtime.process(delivery).await, Disposition::Done);
            runtime
                .queue
                .delete(&delivery.receipt)
                .await
                .expect("delete");
        }
        deliveries.len()
    }

    #[tokio::test]
    async fn waits_beyond_the_queue_delay_go_to_wakeups_and_shorter_ones_to_the_queue() {
        let clock = ManualClock::new(t0());
        let recorded = Arc::new(Recorded::default());
        let runtime = runtime(&clock, Some(recorded.clone())).await;
        let start = |flow: &'static str| {
            let runtime = &runtime;
            async move {
                runtime
                    .start_run(flow, Value::Null, TriggerInfo::Manual, None)
                    .await
                    .expect("start")
                    .0
            }
        };
        let long = start("long").await;
        let short = start("short").await;
        assert_eq!(drain(&runtime).await, 2);
        let wake = t0() + chrono::Duration::hours(2);
        assert_eq!(
            *recorded.0.lock().expect("lock"),
            [(long, wake)],
            "only the 2-hour wait is scheduled"
        );
        clock.advance(Duration::from_secs(10 * 60));
        assert_eq!(
            drain(&runtime).await,
            1,
            "the 10-minute wait was a queue delay"
        );
        let short_run = runtime.runs.get(short).await.expect("get").expect("run");
        assert_eq!(short_run.status, RunStatus::Succeeded);
        clock.advance(Duration::from_secs(6 * 60));
        assert_eq!(
            drain(&runtime).await,
            0,
            "no 15-minute hop for the long wait"
        );
        // The wake-up arrives as the run's queue message.
        clock.advance(Duration::from_secs(2 * 3600));
        runtime
            .queue
            .send(&QueueMessage { run_id: long }, Duration::ZERO)
            .await
            .expect("send");
        assert_eq!(drain(&runtime).await, 1);
        let long_run = runtime.runs.get(long).await.expect("get").expect("run");
        assert_eq!(long_run.status, RunStatus::Succeeded);
    }

    #[tokio::test]
    async fn without_wakeups_long_waits_hop_through_the_queue() {
        let clock = ManualClock::new(t0());
        let runtime = runtime(&clock, None).await;
        let (long, _) = runtime
            .start_run("long", Value::Null, TriggerInfo::Manual, None)
            .await
            .expect("start");
        assert_eq!(drain(&runtime).await, 1);
        clock.advance(MAX_QUEUE_DELAY);
        assert_eq!(drain(&runtime).await, 1, "a hop after 15 minutes");
        let run = runtime.runs.get(long).await.expect("get").expect("run");
        assert_eq!(
            run.status,
            RunStatus::Waiting,
            "still waiting after the hop"
        );
    }
}
