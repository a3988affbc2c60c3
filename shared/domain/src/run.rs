//! Runs and their history: the records every store keeps and every client shows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A run id: a ULID, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub ulid::Ulid);

impl RunId {
    /// A new id for a run created at `at` (the clock port's time, so tests are deterministic in order).
    ///
    /// Ids made in one process within one millisecond are strictly increasing (the random part
    /// is incremented, as ULID's monotonic mode does), so "newest first" is creation order.
    pub fn new_at(at: DateTime<Utc>) -> RunId {
        use std::collections::BTreeMap;
        use std::sync::Mutex;
        /// The last random part given out per recent millisecond. Per millisecond rather than one
        /// slot, so ids made at one time stay increasing even when ids at other times (another
        /// clock, another thread) are made in between.
        static LAST: Mutex<BTreeMap<u64, u128>> = Mutex::new(BTreeMap::new());
        const REMEMBERED: usize = 256;
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        // 80 random bits; the top one is left clear so increments within a millisecond cannot overflow.
        let fresh = rand_u128() & ((1u128 << 79) - 1);
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        // Only within one millisecond: the id's time part stays the creation time, which stores use
        // to filter by time (a clock stepping back gets a fresh id at its own time).
        let random = match last.get(&millis) {
            Some(previous) => previous + 1,
            None => fresh,
        };
        last.insert(millis, random);
        if last.len() > REMEMBERED {
            last.pop_first();
        }
        RunId(ulid::Ulid::from_parts(millis, random))
    }

    /// Parses the 26-character text form.
    pub fn parse(text: &str) -> Option<RunId> {
        ulid::Ulid::from_string(text).ok().map(RunId)
    }
}

/// 80 random bits for the ULID's random part without pulling a RNG crate: std's `RandomState`
/// is seeded from the OS per process, and hashing a counter through it yields distinct values.
fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STATE: std::collections::hash_map::RandomState = std::collections::hash_map::RandomState::new();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    STATE.with(|state| {
        let mut a = state.build_hasher();
        a.write_u64(n);
        let mut b = state.build_hasher();
        b.write_u64(n ^ 0x9e37_79b9_7f4a_7c15);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    })
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    /// Checkpointed and holding no worker: waiting for a timer, a retry delay or helper runs.
    Waiting,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Succeeded, failed or cancelled: nothing will change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// What started a run is generated with the trigger kinds, one start record per kind.
pub use crate::triggers::TriggerInfo;
pub use crate::triggers::api::ApiStart;
pub use crate::triggers::delegated::DelegatedStart;
pub use crate::triggers::event::EventStart;
pub use crate::triggers::helper::HelperStart;
pub use crate::triggers::schedule::ScheduleStart;

/// A run as stored: metadata, input, the engine's checkpoint and the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub flow: String,
    /// The flow version (content hash) the run executes, fixed at creation.
    pub flow_version: String,
    pub trigger: TriggerInfo,
    pub status: RunStatus,
    /// What the trigger delivered (`null` once dropped by `history: none`).
    pub input: serde_json::Value,
    /// For helper runs: the run that called this one, and the root of the tree.
    pub parent: Option<RunId>,
    pub root: Option<RunId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// While `waiting`: when the run is due again (timers and retry delays).
    pub wake_at: Option<DateTime<Utc>>,
    /// For succeeded runs: the `flow.return` value (`{status, headers, body}`) or the last output.
    pub output: Option<serde_json::Value>,
    /// For failed runs: why.
    pub error: Option<RunError>,
    /// The engine's checkpoint, opaque to stores. Dropped when the run ends.
    pub state: Option<serde_json::Value>,
    /// Number of completed step records, also the next record's sequence number.
    pub step_count: u32,
}

impl Run {
    /// The run as it is once claimed at its start: `running`, started at `at`.
    pub fn running_since(self, at: DateTime<Utc>) -> Run {
        Run {
            status: RunStatus::Running,
            started_at: Some(at),
            ..self
        }
    }
}

/// When a lease of `lease` taken at `now` ends (the last representable time when it reaches
/// beyond).
pub fn lease_end(now: DateTime<Utc>, lease: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    /// Machine-readable class: `step_failed`, `flow_failed`, `timeout`, `poison_message`, ...
    pub code: String,
    pub message: String,
    /// The step that failed, if any.
    pub step: Option<String>,
}

/// Outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Succeeded,
    Failed,
    /// Its `if` was false.
    Skipped,
}

/// One step's history record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Order within the run, from 0.
    pub seq: u32,
    /// The step key (`id` or generated), with the iteration path for steps inside loops, such as
    /// `notify[3]`.
    pub step: String,
    /// The card name, or the control keyword (`if`, `for_each`, `map`, `try`, `continue_if`, `wait`).
    pub card: String,
    pub status: StepStatus,
    /// Rendered input (`None` when the history mode drops it; secrets are redacted).
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    pub error: Option<StepError>,
    pub attempts: u32,
    #[serde(serialize_with = "crate::datetime::serialize_utc")]
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
}

/// A step's error as kept in history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    /// `http_status`, `timeout`, `network`, `template`, `invalid_input`, `card`, ...
    pub code: String,
    pub message: String,
    /// HTTP status of the failed call, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Extra detail: the response body of a failed call, Okta's errorCode/errorSummary, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// Filter and page of `list runs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    pub flow: Option<String>,
    pub status: Option<RunStatus>,
    /// Only runs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only runs created before this time.
    pub until: Option<DateTime<Utc>>,
    /// Page size (1..=500; stores clamp).
    pub limit: u32,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

/// One page of runs, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// Present when more runs match.
    pub next_cursor: Option<String>,
}

/// A run as the API lists it.
pub fn run_summary(run: &Run) -> Value {
    let duration_ms = match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) => Some((f - s).num_milliseconds()),
        _ => None,
    };
    json!({
        "id": run.id.to_string(),
        "flow": run.flow,
        "flowVersion": run.flow_version,
        "trigger": run.trigger,
        "status": run.status,
        "parent": run.parent.map(|p| p.to_string()),
        "root": run.root.map(|p| p.to_string()),
        "createdAt": run.created_at,
        "startedAt": run.started_at,
        "finishedAt": run.finished_at,
        "durationMs": duration_ms,
        "wakeAt": run.wake_at,
        "error": run.error,
        "stepCount": run.step_count,
    })
}

/// A run with its input, output and steps, as `GET /api/runs/{id}` returns it.
pub fn run_detail(run: &Run, steps: &[StepRecord]) -> Value {
    let mut v = run_summary(run);
    v["input"] = run.input.clone();
    v["output"] = run.output.clone().unwrap_or(Value::Null);
    v["steps"] = Value::Array(
        steps
            .iter()
            .map(|s| {
                json!({
                    "seq": s.seq,
                    "step": s.step,
                    "card": s.card,
                    "status": s.status,
                    "input": s.input,
                    "output": s.output,
                    "error": s.error,
                    "attempts": s.attempts,
                    "startedAt": s.started_at,
                    "durationMs": s.duration_ms,
                })
            })
            .collect(),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_increase_within_one_millisecond_and_keep_their_time() {
        let t: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap_or_default();
        let ids: Vec<RunId> = (0..1000).map(|_| RunId::new_at(t)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let earlier = RunId::new_at(t - chrono::Duration::seconds(5));
        assert_eq!(
            earlier.0.timestamp_ms(),
            u64::try_from(t.timestamp_millis() - 5000).unwrap_or(0)
        );
        assert_eq!(RunId::parse(&earlier.to_string()), Some(earlier));
    }
}
