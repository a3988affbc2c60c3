//! [`Runtime`]: the ports, executors, project config and compiled-flow caches every trigger and
//! worker share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};

use crate::cards::CardExecutor;
use crate::engine::CompiledFlow;
use crate::flowfile;
use crate::model::{ProjectConfig, SecretRef};
use crate::ports::{
    BlobStore, Clock, FlowStore, RunIntake, RunQueue, RunStore, SecretError, SecretValue, Secrets,
    StoreThenQueue, Wakeups,
};
use crate::run::{RunId, RunStatus};

use super::error::RunnerError;
use super::index::{FlowIndex, TriggerIndex};

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

/// What adapters built on a [`Runtime`] share with it (see [`Runtime::with_adapters`]).
#[derive(Clone)]
pub struct AdapterPorts {
    pub secrets: Arc<dyn Secrets>,
    pub clock: Arc<dyn Clock>,
}

/// A run that ended, broadcast to in-process listeners (sync API responses).
#[derive(Debug, Clone)]
pub struct RunEnded {
    pub run_id: RunId,
    pub status: RunStatus,
}

/// The ports and caches every trigger and worker share.
///
/// The ports are private: triggers, the admin API and the Lambdas use the runtime's use-cases
/// (start, get, list, steps, cancel, rerun, flow listing and detail, deploy), so every run is
/// created, read and changed the same way whoever asks. Adapters built on top of the runtime
/// (card executors) get the secrets and the clock once, at assembly, through
/// [`Runtime::with_adapters`]; verifiers (JWT, admin token) use the runtime itself as their
/// [`Secrets`], which resolves a reference and offers nothing else.
/// The flow store, queue and blob store are visible to the crate for the conformance suite's big
/// run, which deploys a flow and works the queue like a worker.
pub struct Runtime {
    pub(crate) flows: Arc<dyn FlowStore>,
    pub(super) runs: Arc<dyn RunStore>,
    pub(crate) queue: Arc<dyn RunQueue>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) secrets: Arc<dyn Secrets>,
    /// Creates and queues new runs.
    pub(super) intake: Arc<dyn RunIntake>,
    /// Wakes runs parked longer than [`MAX_QUEUE_DELAY`] (EventBridge Scheduler in AWS); `None`
    /// re-queues such waits in hops of `MAX_QUEUE_DELAY`.
    pub(super) wakeups: Option<Arc<dyn Wakeups>>,
    /// Where large values a run holds are saved out of line (see [`crate::values`]); `None` keeps
    /// them inline in every checkpoint.
    pub(crate) blobs: Option<Arc<dyn BlobStore>>,
    /// Executors of I/O cards by family (`http`, ...).
    pub(super) executors: HashMap<String, Arc<dyn CardExecutor>>,
    pub(super) config: RunnerConfig,
    pub(super) project: RwLock<Arc<ProjectConfig>>,
    pub(super) compiled: Mutex<HashMap<(String, String), Arc<CompiledFlow>>>,
    /// Current versions by flow name, with the clock's monotonic reading when each was fetched (see
    /// [`RunnerConfig::flow_cache`]).
    pub(super) current: Mutex<HashMap<String, (Arc<CompiledFlow>, Duration)>>,
    pub(super) ended: broadcast::Sender<RunEnded>,
    /// Event-type and delegated-flow index of the current flows (see [`crate::events`]); cleared
    /// with the current-version cache.
    trigger_index: TriggerIndex,
    /// Runs being advanced in this process. Several workers may share one lease owner (the local
    /// server keeps its owner across restarts), so exclusivity inside the process is kept here.
    /// The flag is set when a message for the run arrived while it was being advanced (a helper run
    /// ended): the advancing worker re-checks its helper runs instead of the message being re-sent.
    pub(super) active: Mutex<HashMap<RunId, bool>>,
    /// Starts refused because their flow was paused, by (flow, trigger kind): metrics read it.
    pub(super) paused_skips: Mutex<HashMap<(String, String), u64>>,
    /// The errors of flow files the last [`Runtime::deploy`] in this process refused, by the flow
    /// name their deployed version (if any) goes by: the console shows why that version is kept.
    pub(super) rejected: Mutex<HashMap<String, Vec<crate::diag::Diagnostic>>>,
    /// This process's queue worker, when it has one (`idflow serve`'s [`super::Worker`]): a
    /// trigger's run starts driving here at once while the worker has a free slot, instead of
    /// waiting in the queue for the worker to receive it (see [`Runtime::start_compiled`]).
    pub(super) local: OnceLock<LocalWorker>,
}

/// The slots of this process's queue worker, shared by the runs it receives and the runs triggers
/// start here (see [`Runtime::local_slots`]).
pub(super) struct LocalWorker {
    /// One permit per run driven at once.
    pub permits: Arc<Semaphore>,
    /// The runtime itself, for the tasks that drive runs started here.
    pub runtime: Weak<Runtime>,
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
            trigger_index: TriggerIndex::default(),
            intake,
            wakeups: None,
            blobs: None,
            ended,
            active: Mutex::new(HashMap::new()),
            paused_skips: Mutex::new(HashMap::new()),
            rejected: Mutex::new(HashMap::new()),
            local: OnceLock::new(),
        }
    }

    /// The slots of this process's queue worker: `concurrency` permits the first time, the same
    /// ones after. From then on, a run a trigger starts without a dedupe key is driven in this
    /// process at once when a permit is free, and stored by its first write (see
    /// [`Runtime::start_run`]'s `start_compiled`): no queue message, receive or claim, and a run of
    /// pure steps is written once, ended.
    pub fn local_slots(self: &Arc<Self>, concurrency: usize) -> Arc<Semaphore> {
        let local = self.local.get_or_init(|| LocalWorker {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            runtime: Arc::downgrade(self),
        });
        local.permits.clone()
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

    /// Saves large values runs hold in `blobs`, referenced from checkpoints instead of repeated in
    /// each (see [`crate::values`]).
    pub fn with_blobs(mut self, blobs: Arc<dyn BlobStore>) -> Runtime {
        self.blobs = Some(blobs);
        self
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

    /// The executor of a card family, if this deployment has one.
    pub fn executor(&self, family: &str) -> Option<Arc<dyn CardExecutor>> {
        self.executors.get(family).cloned()
    }

    /// The runner's tunables.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// The time on the runtime's clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Adds card executors built on the runtime's secrets and clock, the only ports an adapter
    /// gets (the stores and the queue are not among them): `build` receives them once, while the
    /// deployment is assembled, and returns `(card family, executor)` pairs. Handlers never see
    /// the ports; they resolve secrets through [`Runtime::resolve_secret`] (or the runtime as a
    /// [`Secrets`]) and read the time through [`Runtime::now`].
    pub fn with_adapters<E>(
        self,
        build: impl FnOnce(AdapterPorts) -> Result<Vec<(&'static str, Arc<dyn CardExecutor>)>, E>,
    ) -> Result<Runtime, E> {
        let ports = AdapterPorts {
            secrets: self.secrets.clone(),
            clock: self.clock.clone(),
        };
        Ok(build(ports)?
            .into_iter()
            .fold(self, |runtime, (family, executor)| {
                runtime.with_executor(family, executor)
            }))
    }

    /// The runtime's clock, for the domain's own use-cases that time a card call.
    pub(crate) fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Resolves a secret reference of the project (an auth check's token or signing secret).
    pub async fn resolve_secret(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        self.secrets.resolve(reference).await
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
            if let Some((flow, fetched)) = cache.get(name)
                && self.clock.monotonic().saturating_sub(*fetched) < self.config.flow_cache
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
        let fetched = self.clock.monotonic();
        let mut cache = self.current.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(name.to_owned(), (compiled.clone(), fetched));
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

    pub(super) fn cached(&self, name: &str, version: &str) -> Option<Arc<CompiledFlow>> {
        let cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&(name.to_owned(), version.to_owned())).cloned()
    }

    pub(super) fn compile(
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

    pub(super) fn executor_for(&self, card: &str) -> Option<Arc<dyn CardExecutor>> {
        let family = card.split_once('.').map_or(card, |(f, _)| f);
        self.executors.get(family).cloned()
    }

    /// The trigger index of the current flows (event types and delegated flows), rebuilt when the
    /// flows changed in this process or it is older than [`RunnerConfig::flow_cache`].
    pub async fn trigger_index(&self) -> Result<Arc<FlowIndex>, RunnerError> {
        self.trigger_index
            .get(
                self.flows.as_ref(),
                self.clock.as_ref(),
                self.config.flow_cache,
                |stored| self.compile(&stored.name, &stored.version, &stored.path, &stored.source),
            )
            .await
    }
}

/// The runtime as a secret resolver, for verifiers that take a [`Secrets`] (JWT keys held in a
/// secret, the admin token): it resolves a reference exactly as [`Runtime::resolve_secret`] does,
/// and hands out no port.
#[async_trait::async_trait]
impl Secrets for Runtime {
    async fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        self.resolve_secret(reference).await
    }
}

/// The runtime as a clock, for verifiers that take a [`Clock`] (JWT `exp` and the age of cached
/// keys): it tells the runtime's time and hands out no port.
#[async_trait::async_trait]
impl Clock for Runtime {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    fn monotonic(&self) -> Duration {
        self.clock.monotonic()
    }

    async fn sleep_until(&self, deadline: chrono::DateTime<chrono::Utc>) {
        self.clock.sleep_until(deadline).await;
    }
}
