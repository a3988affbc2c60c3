//! CloudWatch metrics in the embedded metric format (EMF): one JSON object per line on stdout,
//! which Lambda forwards to CloudWatch Logs, where CloudWatch extracts the metrics. No SDK call and
//! no agent: the line is the metric.
//!
//! Metrics (namespace [`NAMESPACE`]):
//! - `RunsStarted`, `RunsSucceeded`, `RunsFailed` (Count), dimension `Flow`; the line also carries
//!   `run_id`, so a metric spike leads to the runs and their log lines.
//! - `StepLatency` (Milliseconds), dimension `Card`, with `run_id` and `step`.
//! - `QueueAge` (Milliseconds, no dimension): how long a run message waited in SQS before the
//!   worker got it, from the record's `ApproximateFirstReceiveTimestamp` and `SentTimestamp`.
//!
//! [`MeteredRunStore`] emits the run and step metrics by watching the run store, so every function
//! (API, event hook, schedule, worker) reports what it did without the runner knowing about
//! metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use domain::ports::{Checkpoint, Clock, Created, ParkOutcome, RunStore, StoreError};
use domain::run::{Run, RunId, RunStatus};

/// The CloudWatch namespace of idflow's metrics.
pub const NAMESPACE: &str = "idflow";

/// The unit of a metric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things.
    Count,
    /// A duration in milliseconds.
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF line: metrics sharing a timestamp and a set of dimensions.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// When the metrics were observed.
    pub timestamp: DateTime<Utc>,
    /// Dimension names and values (may be empty).
    pub dimensions: &'a [(&'a str, &'a str)],
    /// Metric names, units and values.
    pub metrics: &'a [(&'a str, Unit, f64)],
    /// Extra searchable properties that are not dimensions (run id, step).
    pub properties: &'a [(&'a str, &'a str)],
}

impl Line<'_> {
    /// The line as CloudWatch expects it: the `_aws` metadata plus a top-level member per
    /// dimension, metric and property.
    pub fn to_json(&self) -> String {
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(name, _)| *name).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit.as_str() }))
            .collect();
        let mut object = Map::new();
        object.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [dimension_names],
                    "Metrics": definitions,
                }],
            }),
        );
        for (name, value) in self.dimensions.iter().chain(self.properties) {
            object.insert((*name).into(), json!(value));
        }
        for (name, _, value) in self.metrics {
            object.insert((*name).into(), json!(value));
        }
        Value::Object(object).to_string()
    }
}

/// Where EMF lines go: stdout in Lambda, a buffer in tests.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// Writes each line to stdout, whole (`println!` locks stdout for the line).
pub fn stdout_sink() -> Sink {
    Arc::new(|line: &str| println!("{line}"))
}

/// Emits how long a queue message waited: `now - first_receive` if SQS has received it before,
/// else `now - sent` (timestamps in Unix milliseconds, as SQS gives them).
pub fn queue_age(sink: &Sink, now: DateTime<Utc>, sent_ms: Option<i64>, run_id: &str) {
    let Some(sent) = sent_ms else {
        return;
    };
    let age = (now.timestamp_millis() - sent).max(0) as f64;
    sink(
        &Line {
            timestamp: now,
            dimensions: &[],
            metrics: &[("QueueAge", Unit::Milliseconds, age)],
            properties: &[("run_id", run_id)],
        }
        .to_json(),
    );
}

/// A [`RunStore`] that reports runs started / succeeded / failed and step latencies as EMF lines
/// after each successful write of the store it wraps. Reads pass through untouched.
pub struct MeteredRunStore {
    inner: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    sink: Sink,
    /// The flow of each run claimed here, for the `Flow` dimension of its end (checkpoints name
    /// only the run id). Cleared when the run ends; bounded by the runs in flight.
    flows: Mutex<HashMap<RunId, String>>,
}

impl MeteredRunStore {
    /// Wraps `inner`, writing lines to `sink`.
    pub fn new(inner: Arc<dyn RunStore>, clock: Arc<dyn Clock>, sink: Sink) -> Self {
        MeteredRunStore {
            inner,
            clock,
            sink,
            flows: Mutex::new(HashMap::new()),
        }
    }

    fn flows(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, String>> {
        self.flows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, metric: &str, flow: &str, run_id: RunId) {
        let id = run_id.to_string();
        (self.sink)(
            &Line {
                timestamp: self.clock.now(),
                dimensions: &[("Flow", flow)],
                metrics: &[(metric, Unit::Count, 1.0)],
                properties: &[("run_id", &id)],
            }
            .to_json(),
        );
    }
}

// The layer trait is named, not imported: with both traits in scope, calls on the concrete store
// (its tests) would be ambiguous.
impl MeteredRunStore {
    /// Emits the step latencies of a written checkpoint, and the run's end if it ended.
    fn observe(&self, checkpoint: &Checkpoint) {
        let id = checkpoint.run_id.to_string();
        let now = self.clock.now();
        for step in &checkpoint.steps {
            (self.sink)(
                &Line {
                    timestamp: now,
                    dimensions: &[("Card", &step.card)],
                    metrics: &[("StepLatency", Unit::Milliseconds, step.duration_ms as f64)],
                    properties: &[("run_id", &id), ("step", &step.step)],
                }
                .to_json(),
            );
        }
        let metric = match checkpoint.status {
            RunStatus::Succeeded => Some("RunsSucceeded"),
            RunStatus::Failed => Some("RunsFailed"),
            _ => None,
        };
        if checkpoint.release || metric.is_some() {
            let flow = self.flows().remove(&checkpoint.run_id);
            if let Some(metric) = metric {
                self.count(
                    metric,
                    flow.as_deref().unwrap_or("unknown"),
                    checkpoint.run_id,
                );
            }
        }
    }
}

#[async_trait]
impl domain::ports::RunStoreLayer for MeteredRunStore {
    fn inner(&self) -> &dyn RunStore {
        &*self.inner
    }

    async fn create(&self, run: &Run, dedupe_key: Option<&str>) -> Result<Created, StoreError> {
        let created = self.inner.create(run, dedupe_key).await?;
        if created == Created::New {
            self.count("RunsStarted", &run.flow, run.id);
        }
        Ok(created)
    }

    async fn claim(
        &self,
        id: RunId,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Run>, StoreError> {
        let claimed = self.inner.claim(id, owner, now, lease).await?;
        if let Some(run) = &claimed {
            self.flows().insert(run.id, run.flow.clone());
        }
        Ok(claimed)
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.inner.checkpoint(checkpoint).await?;
        self.observe(checkpoint);
        Ok(())
    }

    async fn checkpoint_settling(
        &self,
        checkpoint: &Checkpoint,
        receipt: &str,
    ) -> Result<bool, StoreError> {
        let deleted = self.inner.checkpoint_settling(checkpoint, receipt).await?;
        self.observe(checkpoint);
        Ok(deleted)
    }

    async fn park(&self, checkpoint: &Checkpoint) -> Result<ParkOutcome, StoreError> {
        let outcome = self.inner.park(checkpoint).await?;
        if outcome == ParkOutcome::Parked {
            // The lease is given up, as by a releasing checkpoint.
            self.flows().remove(&checkpoint.run_id);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::clock::ManualClock;
    use domain::conformance::{LEASE, queued_run, step_record, t0};
    use local::sqlite::{SqliteDb, SqliteRunStore};

    #[test]
    fn a_line_is_the_embedded_metric_format() {
        let line = Line {
            timestamp: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            dimensions: &[("Flow", "offboard")],
            metrics: &[("RunsFailed", Unit::Count, 1.0)],
            properties: &[("run_id", "01J0")],
        }
        .to_json();
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "idflow",
                        "Dimensions": [["Flow"]],
                        "Metrics": [{ "Name": "RunsFailed", "Unit": "Count" }],
                    }],
                },
                "Flow": "offboard",
                "run_id": "01J0",
                "RunsFailed": 1.0,
            })
        );
        assert!(!line.contains('\n'), "one metric object per line");
    }

    #[test]
    fn queue_age_counts_from_the_sent_time() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let captured = lines.clone();
        let sink: Sink = Arc::new(move |line: &str| captured.lock().unwrap().push(line.into()));
        let now = DateTime::from_timestamp_millis(10_000).unwrap();
        queue_age(&sink, now, Some(7_500), "r1");
        queue_age(&sink, now, None, "r2");
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 1, "no timestamp, no metric");
        let parsed: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(parsed["QueueAge"], json!(2500.0));
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"],
            "Milliseconds"
        );
        assert_eq!(
            parsed["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([[]])
        );
    }

    #[tokio::test]
    async fn the_metered_store_reports_starts_steps_and_ends() {
        let lines = Arc::new(Mutex::new(Vec::<Value>::new()));
        let captured = lines.clone();
        let sink: Sink = Arc::new(move |line: &str| {
            captured
                .lock()
                .unwrap()
                .push(serde_json::from_str(line).unwrap())
        });
        let db = SqliteDb::open_in_memory().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let store = MeteredRunStore::new(Arc::new(SqliteRunStore::new(db)), clock, sink);
        let run = queued_run("offboard", t0());
        assert_eq!(store.create(&run, Some("k")).await.unwrap(), Created::New);
        assert!(matches!(
            store
                .create(&queued_run("offboard", t0()), Some("k"))
                .await
                .unwrap(),
            Created::Duplicate(_)
        ));
        store.claim(run.id, "w", t0(), LEASE).await.unwrap();
        let mut step = step_record(0);
        step.duration_ms = 42;
        store
            .checkpoint(&Checkpoint {
                run_id: run.id,
                owner: "w".into(),
                status: RunStatus::Failed,
                state: None,
                steps: vec![step],
                wake_at: None,
                output: None,
                error: None,
                finished_at: Some(t0()),
                drop_input: false,
                release: true,
            })
            .await
            .unwrap();
        let lines = lines.lock().unwrap();
        let names: Vec<String> = lines
            .iter()
            .map(|l| l["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"].to_string())
            .collect();
        assert_eq!(
            names,
            ["\"RunsStarted\"", "\"StepLatency\"", "\"RunsFailed\""],
            "a duplicate start is not counted"
        );
        assert_eq!(lines[1]["StepLatency"], json!(42.0));
        assert_eq!(lines[2]["Flow"], "offboard");
        assert_eq!(lines[2]["run_id"], run.id.to_string());
    }
}
