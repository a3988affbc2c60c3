//! The run state: everything a run needs to go on, as every checkpoint saves it.
//!
//! The shape of these types is a persistent format. A run may wait 30 days in a store, across
//! upgrades, so a change here that an older state does not fit (a renamed, moved or retyped field, a
//! new required one, another meaning) raises [`STATE_VERSION`] and adds a migration from the previous
//! version in `checkpoint.rs`, with fixtures of the previous version that a test restores.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::run::RunError;
use crate::template::JsonPath;

use super::compile::{ListRef, NodeId};

/// The checkpoint format this release writes, saved as `"v"` in every state. States saved before
/// versions existed have no `"v"` and are version 1.
pub const STATE_VERSION: u32 = 2;

/// A run's resumable state. Serialized into every checkpoint, with its format version.
///
/// Deserializing one (`serde_json::from_value`, or [`RunState::decode`]) reads states of every
/// version up to [`STATE_VERSION`], migrating older ones; the first `advance` after a restore checks
/// it against the flow and fails the run with `corrupt_state` when it does not fit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunState {
    /// Always [`STATE_VERSION`] when written.
    pub(super) v: Version,
    pub(super) fibers: BTreeMap<u32, Fiber>,
    pub(super) next_fiber: u32,
    pub(super) next_effect: u64,
    /// Step records written so far (the next record's `seq`).
    pub seq: u32,
    pub(super) pending: BTreeMap<u64, Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) done: Option<Done>,
    /// Template values of step outputs, rebuilt lazily after a restore.
    #[serde(skip)]
    pub(super) cache: HashMap<(u32, String), minijinja::Value>,
    /// Secret-derived texts sent with each pending card call, to scrub from what it answers. Kept in
    /// memory only: secrets never reach a checkpoint. A restore re-issues pending calls, which
    /// rebuilds them.
    #[serde(skip)]
    pub(super) derived: HashMap<u64, Vec<String>>,
    /// Whether this state has been checked against its flow. A state only the engine has touched is
    /// consistent; a restored one is checked once, by the first advance.
    #[serde(skip)]
    pub(super) checked: bool,
}

/// Serializes as [`STATE_VERSION`]: the version a state is written in is always this release's.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(STATE_VERSION)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) enum Done {
    Succeeded(Value),
    Failed(RunError),
}

/// One sequential thread of steps: the top level (fiber 0) or one iteration of an inline loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Fiber {
    /// The fiber whose loop started this one, and the item index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) parent: Option<(u32, usize)>,
    /// Prefix of step record names, such as `each_user[3].`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(super) prefix: String,
    pub(super) frames: Vec<Frame>,
    /// Step outputs visible in this fiber (parents' outputs are visible too).
    pub(super) outputs: Map<String, Value>,
    /// Loop variable and `error`.
    pub(super) locals: Map<String, Value>,
    /// Output of the last step this fiber completed (a `map` iteration's result).
    pub(super) last: Value,
    /// Set while the fiber waits on an effect or on its loop.
    pub(super) blocked: bool,
    /// Approximate JSON size of `outputs`, for the run's working-memory budget.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) bytes: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One entry of a fiber's stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub(super) enum Frame {
    /// A step list and the index of its next step.
    Seq { list: ListRef, index: usize },
    /// A loop waiting for its iterations.
    Loop(LoopFrame),
    /// A `try` block; `catching` once its `catch` steps run. `started_at` dates the `try` step's
    /// own record (a `try` with an `id` has one); states saved before it existed lack it, and an
    /// older reader ignores it, so the format version stays.
    Try {
        node: NodeId,
        catching: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<DateTime<Utc>>,
    },
    /// A step's `on_error` steps running, with the error they handle.
    OnError { node: NodeId, error: Value },
    /// A card streaming its pages to helper runs.
    Stream(Box<StreamFrame>),
}

/// A card called page by page (`stream:`), each record handed to a helper run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StreamFrame {
    pub(super) node: NodeId,
    pub(super) card: String,
    /// The card input without `__page`, secret-derived leaves masked.
    pub(super) input: Value,
    /// Where `input` had secret-derived leaves (re-rendered for every page).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) secrets: Vec<JsonPath>,
    pub(super) flow: String,
    pub(super) state: Value,
    pub(super) concurrency: usize,
    /// Records fetched and not yet handed to a helper run.
    pub(super) buffer: VecDeque<Value>,
    /// Cursor of the next page (the previous answer's `next`).
    pub(super) next: Value,
    pub(super) fetching: bool,
    pub(super) exhausted: bool,
    pub(super) running: usize,
    pub(super) count: u64,
    pub(super) failed: u64,
    pub(super) started_at: DateTime<Utc>,
}

/// A `for_each`/`map` waiting for its iterations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LoopFrame {
    pub(super) node: NodeId,
    pub(super) items: Vec<Value>,
    /// The next item to start.
    pub(super) next: usize,
    /// Iterations started and not yet ended.
    pub(super) running: usize,
    /// One per item: what its iteration gave (`map`).
    pub(super) results: Vec<Value>,
    pub(super) started_at: DateTime<Utc>,
    /// Set when an iteration failed: no new iteration starts and the loop fails once the running
    /// ones are accounted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) failed: Option<Value>,
}

/// An effect issued and not yet answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) fiber: u32,
    pub(super) node: NodeId,
    pub(super) kind: PendingKind,
    pub(super) started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum PendingKind {
    /// A card call in flight. `input` is what history shows: secret-derived leaves (at `secrets`)
    /// are masked, so no checkpoint holds a secret; they are rendered again when the call is
    /// re-issued.
    Card {
        input: Value,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secrets: Vec<JsonPath>,
    },
    /// A retry delay; the card is called again with `input` when it fires.
    Retry {
        input: Value,
        attempt: u32,
        until: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        secrets: Vec<JsonPath>,
    },
    /// A helper run: an iteration of a loop over a flow (`slot`), a `flow.call` (whose whole card
    /// input `input` is), or a streamed record.
    Child {
        flow: String,
        input: Value,
        slot: Option<usize>,
    },
    Wait {
        until: DateTime<Utc>,
    },
}

impl RunState {
    /// A fresh state for a run that has not started.
    pub fn new() -> RunState {
        RunState::default()
    }

    /// Whether the run has ended.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// Ids of effects still waiting for a result.
    pub fn pending_effects(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.keys().copied()
    }

    /// Earliest due time among pending timers, if every pending effect is a timer or a helper run.
    pub fn idle_until(&self) -> Option<Option<DateTime<Utc>>> {
        let mut earliest: Option<DateTime<Utc>> = None;
        for p in self.pending.values() {
            match &p.kind {
                PendingKind::Card { .. } => return None,
                PendingKind::Retry { until, .. } | PendingKind::Wait { until } => {
                    earliest = Some(earliest.map_or(*until, |e| e.min(*until)));
                }
                PendingKind::Child { .. } => {}
            }
        }
        Some(earliest)
    }
}
