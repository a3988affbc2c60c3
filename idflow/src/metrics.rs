//! `/metrics` of `idflow serve`: Prometheus metrics in the OpenMetrics text format, which Prometheus
//! scrapes natively.
//!
//! Runs and steps are counted by watching the ports, as the Lambdas' CloudWatch metrics are
//! (`aws::emf`): [`MeteredIntake`] sees every run created, [`MeteredRunStore`] every checkpoint's
//! step records and every run's end, so the runner knows nothing about metrics. What exists only
//! at one instant (the queue, the rate-limit waits, the starts a paused flow refused) is read when
//! Prometheus scrapes.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `idflow_runs_started_total` | counter | `flow`, `trigger` |
//! | `idflow_runs_finished_total` | counter | `flow`, `trigger`, `status` (`succeeded`, `failed`, `cancelled`) |
//! | `idflow_runs_skipped_total` | counter | `flow`, `trigger`, `reason` (`paused`) |
//! | `idflow_step_duration_seconds` | histogram | `card` |
//! | `idflow_queue_depth` | gauge | `state` (`ready`, `hidden`) |
//! | `idflow_queue_oldest_age_seconds` | gauge | |
//! | `idflow_queue_dead_letters` | gauge | |
//! | `idflow_rate_limit_waits_total` | counter | `outcome` (`held`, `handed_back`) |
//! | `idflow_rate_limit_wait_seconds_total` | counter | |

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use domain::ports::{Checkpoint, ClaimedRun, Created, RunIntake, RunStore, StoreError};
use domain::run::{Run, RunId, RunStatus, StepRecord};
use domain::runner::Runtime;
use local::sqlite::SqliteRunQueue;

type Labels = Vec<(String, String)>;

/// Upper bounds of the step latency buckets, in seconds: from a pure card (well under 5 ms) to a
/// slow API page or a held rate-limit wait (a minute).
const STEP_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

/// The metric families of one server and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    started: Family<Labels, Counter>,
    finished: Family<Labels, Counter>,
    skipped: Family<Labels, Counter>,
    steps: Family<Labels, Histogram, fn() -> Histogram>,
    queue_depth: Family<Labels, Gauge>,
    queue_age: Gauge<f64, AtomicU64>,
    dead_letters: Gauge,
    rate_limit_waits: Family<Labels, Counter>,
    rate_limit_seconds: Counter<f64, AtomicU64>,
    /// The labels of runs created already claimed ([`RunIntake::enqueue_claimed`]: sync invokes),
    /// until [`MeteredRunStore`] sees them end, so their end is counted without reading them back.
    claimed_at_intake: Mutex<HashMap<RunId, Labels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Empty families, registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let started = Family::<Labels, Counter>::default();
        let finished = Family::<Labels, Counter>::default();
        let skipped = Family::<Labels, Counter>::default();
        let steps = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
            step_histogram as fn() -> Histogram,
        );
        let queue_depth = Family::<Labels, Gauge>::default();
        let queue_age = Gauge::<f64, AtomicU64>::default();
        let dead_letters = Gauge::default();
        let rate_limit_waits = Family::<Labels, Counter>::default();
        let rate_limit_seconds = Counter::<f64, AtomicU64>::default();
        registry.register(
            "idflow_runs_started",
            "Runs created, by flow and trigger",
            started.clone(),
        );
        registry.register(
            "idflow_runs_finished",
            "Runs ended, by flow, trigger and status (succeeded, failed, cancelled)",
            finished.clone(),
        );
        registry.register(
            "idflow_runs_skipped",
            "Starts refused, by flow, trigger and reason (paused)",
            skipped.clone(),
        );
        registry.register(
            "idflow_step_duration_seconds",
            "How long steps took, by card",
            steps.clone(),
        );
        registry.register(
            "idflow_queue_depth",
            "Run messages in the queue: ready (a worker could take it now) or hidden (delayed or held by a worker)",
            queue_depth.clone(),
        );
        registry.register(
            "idflow_queue_oldest_age_seconds",
            "How long the oldest ready message has waited (0 when none)",
            queue_age.clone(),
        );
        registry.register(
            "idflow_queue_dead_letters",
            "Messages moved to the dead-letter table",
            dead_letters.clone(),
        );
        registry.register(
            "idflow_rate_limit_waits",
            "Okta rate-limit waits: held in the worker, or handed back to park the run",
            rate_limit_waits.clone(),
        );
        registry.register(
            "idflow_rate_limit_wait_seconds",
            "Time spent in held Okta rate-limit waits",
            rate_limit_seconds.clone(),
        );
        Metrics {
            registry,
            started,
            finished,
            skipped,
            steps,
            queue_depth,
            queue_age,
            dead_letters,
            rate_limit_waits,
            rate_limit_seconds,
            claimed_at_intake: Mutex::new(HashMap::new()),
        }
    }

    fn run_labels(run: &Run) -> Labels {
        vec![
            ("flow".to_owned(), run.flow.clone()),
            ("trigger".to_owned(), run.trigger.kind().to_owned()),
        ]
    }

    fn run_created(&self, run: &Run) {
        self.started.get_or_create(&Self::run_labels(run)).inc();
    }

    fn run_ended(&self, run: &Run, status: RunStatus) {
        self.finished_with(Self::run_labels(run), status);
    }

    /// Counts a run's end given its [`Metrics::run_labels`].
    fn finished_with(&self, mut labels: Labels, status: RunStatus) {
        labels.push(("status".to_owned(), status_text(status).to_owned()));
        self.finished.get_or_create(&labels).inc();
    }

    fn steps_recorded(&self, steps: &[StepRecord]) {
        if steps.is_empty() {
            return;
        }
        // One label set, its value rewritten per record: no allocation per record once the longest
        // card name fits.
        let mut labels = vec![("card".to_owned(), String::new())];
        for step in steps {
            labels[0].1.clone_from(&step.card);
            // Milliseconds as recorded; f64 holds them exactly far beyond any step's length.
            #[allow(clippy::cast_precision_loss)]
            let seconds = step.duration_ms as f64 / 1000.0;
            self.steps.get_or_create(&labels).observe(seconds);
        }
    }

    /// Reads what exists only now (queue, rate-limit waits, paused starts) and encodes every
    /// family.
    pub async fn render(
        &self,
        runtime: &Runtime,
        queue: &SqliteRunQueue,
    ) -> Result<String, String> {
        let stats = queue.stats().await.map_err(|e| e.to_string())?;
        let depth = |state: &str| vec![("state".to_owned(), state.to_owned())];
        self.queue_depth
            .get_or_create(&depth("ready"))
            .set(gauge_value(stats.ready));
        self.queue_depth
            .get_or_create(&depth("hidden"))
            .set(gauge_value(stats.hidden));
        #[allow(clippy::cast_precision_loss)]
        self.queue_age
            .set(stats.oldest_ready_age_ms as f64 / 1000.0);
        self.dead_letters.set(gauge_value(stats.dead_letters));

        for ((flow, trigger), count) in runtime.paused_skips() {
            let labels = vec![
                ("flow".to_owned(), flow),
                ("trigger".to_owned(), trigger),
                ("reason".to_owned(), "paused".to_owned()),
            ];
            catch_up(&self.skipped.get_or_create(&labels), count);
        }
        let waits = connectors::okta::client::rate_limit_waits();
        let outcome = |o: &str| vec![("outcome".to_owned(), o.to_owned())];
        catch_up(
            &self.rate_limit_waits.get_or_create(&outcome("held")),
            waits.held,
        );
        catch_up(
            &self.rate_limit_waits.get_or_create(&outcome("handed_back")),
            waits.handed_back,
        );
        #[allow(clippy::cast_precision_loss)]
        let held = waits.held_ms as f64 / 1000.0;
        let seen = self.rate_limit_seconds.get();
        if held > seen {
            self.rate_limit_seconds.inc_by(held - seen);
        }

        let mut text = String::new();
        encode(&mut text, &self.registry).map_err(|e| e.to_string())?;
        Ok(text)
    }
}

/// Brings a counter up to a total kept elsewhere (counters only go up).
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Queued => "queued",
        RunStatus::Running => "running",
        RunStatus::Waiting => "waiting",
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
    }
}

fn is_terminal(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
    )
}

/// Counts every run created through the wrapped intake.
pub struct MeteredIntake {
    pub inner: Arc<dyn RunIntake>,
    pub metrics: Arc<Metrics>,
}

impl MeteredIntake {
    /// Counts a run created already claimed, and keeps its labels for the count of its end.
    fn created_claimed(&self, run: &Run) {
        self.metrics.run_created(run);
        let mut adopted = self
            .metrics
            .claimed_at_intake
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        adopted.insert(run.id, Metrics::run_labels(run));
    }
}

#[async_trait]
impl RunIntake for MeteredIntake {
    async fn enqueue(
        &self,
        run: &Run,
        dedupe_key: Option<&str>,
        delay: std::time::Duration,
    ) -> Result<Created, StoreError> {
        let created = self.inner.enqueue(run, dedupe_key, delay).await?;
        if created == Created::New {
            self.metrics.run_created(run);
        }
        Ok(created)
    }

    async fn enqueue_claimed(
        &self,
        run: &Run,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        delay: std::time::Duration,
    ) -> Result<Option<ClaimedRun>, StoreError> {
        let claimed = self
            .inner
            .enqueue_claimed(run, owner, now, lease, delay)
            .await?;
        if let Some(claimed) = &claimed {
            self.created_claimed(&claimed.run);
        }
        Ok(claimed)
    }

    /// Counts the run's creation and the steps it recorded, and its end when it was created ended;
    /// a run created claimed has its end counted when the checkpoint that ends it is written.
    async fn create_driven(
        &self,
        run: &Run,
        checkpoint: &Checkpoint,
        lease_until: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        if !self
            .inner
            .create_driven(run, checkpoint, lease_until)
            .await?
        {
            return Ok(false);
        }
        self.metrics.steps_recorded(&checkpoint.steps);
        if is_terminal(checkpoint.status) {
            let labels = Metrics::run_labels(run);
            self.metrics.started.get_or_create(&labels).inc();
            self.metrics.finished_with(labels, checkpoint.status);
        } else {
            self.created_claimed(run);
        }
        Ok(true)
    }
}

/// Observes step records and run ends in the checkpoints and cancels written through it. Every
/// other call is forwarded as it is: a park, for one, never ends a run, so there is nothing to count.
pub struct MeteredRunStore {
    inner: Arc<dyn RunStore>,
    metrics: Arc<Metrics>,
    /// The labels of the runs claimed through this store and not yet released, so a run's end is
    /// counted without reading the whole run back (its input, state and output) after the commit.
    claimed: Mutex<HashMap<RunId, Labels>>,
}

impl MeteredRunStore {
    /// Meters the checkpoints and cancels written through `inner` into `metrics`.
    pub fn new(inner: Arc<dyn RunStore>, metrics: Arc<Metrics>) -> MeteredRunStore {
        MeteredRunStore {
            inner,
            metrics,
            claimed: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets a run's claim (its lease was released or lost) and hands back its labels.
    fn release(&self, id: RunId) -> Option<Labels> {
        let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
        // Both maps forget the run: a sync run that parked is claimed here when it resumes, and
        // its entry from the intake must not outlive it.
        let adopted = self
            .metrics
            .claimed_at_intake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        claimed.remove(&id).or(adopted)
    }

    /// Counts what a checkpoint written through this store recorded (its steps, the run's end).
    async fn observe(
        &self,
        checkpoint: &Checkpoint,
        written: Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // A checkpoint that releases the lease (the run ended or parked) or lost it ends this
        // process's claim either way.
        let labels = if checkpoint.release || written.is_err() {
            self.release(checkpoint.run_id)
        } else {
            None
        };
        written?;
        self.metrics.steps_recorded(&checkpoint.steps);
        if is_terminal(checkpoint.status) {
            match labels {
                Some(labels) => self.metrics.finished_with(labels, checkpoint.status),
                // Claimed before this process started metering it: read the run for its labels.
                None => {
                    if let Some(run) = self.inner.get(checkpoint.run_id).await? {
                        self.metrics.run_ended(&run, checkpoint.status);
                    }
                }
            }
        }
        Ok(())
    }
}

// The layer trait is named, not imported: with both traits in scope, calls on the concrete store
// (its tests) would be ambiguous.
#[async_trait]
impl domain::ports::RunStoreLayer for MeteredRunStore {
    fn inner(&self) -> &dyn RunStore {
        &*self.inner
    }

    async fn create(&self, run: &Run, dedupe_key: Option<&str>) -> Result<Created, StoreError> {
        let created = self.inner.create(run, dedupe_key).await?;
        if created == Created::New {
            self.metrics.run_created(run);
        }
        Ok(created)
    }

    async fn claim(
        &self,
        id: RunId,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<Run>, StoreError> {
        let run = self.inner.claim(id, owner, now, lease).await?;
        if let Some(run) = &run {
            let mut claimed = self.claimed.lock().unwrap_or_else(|p| p.into_inner());
            claimed.insert(run.id, Metrics::run_labels(run));
        }
        Ok(run)
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let written = self.inner.checkpoint(checkpoint).await;
        self.observe(checkpoint, written).await
    }

    async fn checkpoint_settling(
        &self,
        checkpoint: &Checkpoint,
        receipt: &str,
    ) -> Result<bool, StoreError> {
        let written = self.inner.checkpoint_settling(checkpoint, receipt).await;
        let settled = written.as_ref().is_ok_and(|settled| *settled);
        self.observe(checkpoint, written.map(|_| ())).await?;
        Ok(settled)
    }

    async fn cancel(&self, id: RunId, now: DateTime<Utc>) -> Result<Option<Run>, StoreError> {
        let before = self.inner.get(id).await?;
        let after = self.inner.cancel(id, now).await?;
        if let (Some(before), Some(after)) = (&before, &after)
            && !is_terminal(before.status)
            && after.status == RunStatus::Cancelled
        {
            self.metrics.run_ended(after, RunStatus::Cancelled);
        }
        Ok(after)
    }
}

/// What the `/metrics` route needs.
#[derive(Clone)]
pub struct MetricsState {
    pub metrics: Arc<Metrics>,
    pub runtime: Arc<Runtime>,
    pub queue: Arc<SqliteRunQueue>,
    /// The admin token, which `/metrics` requires when the server has one (`idflow serve` refuses
    /// to start where the network reaches it without one).
    pub admin_token: Option<Arc<str>>,
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<MetricsState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.admin_token
        && !web::auth::bearer_matches(&headers, token)
    {
        return web::error::ApiError::Unauthorized(
            "a valid admin bearer token is required (Prometheus: `authorization: { credentials: <token> }`)".into(),
        )
        .into_response();
    }
    match state.metrics.render(&state.runtime, &state.queue).await {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "metrics not read");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics are unavailable").into_response()
        }
    }
}
