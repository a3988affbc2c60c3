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
use sha2::Digest;

use crate::run::RunError;
use crate::template::JsonPath;

use super::compile::{ListRef, NodeId};

/// The checkpoint format this release writes, saved as `"v"` in every state. States saved before
/// versions existed have no `"v"` and are version 1.
pub const STATE_VERSION: u32 = 4;

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
    pub(super) outputs: BTreeMap<String, Held>,
    /// Loop variable and `error`.
    pub(super) locals: Map<String, Value>,
    /// Output of the last step this fiber completed (a `map` iteration's result).
    pub(super) last: Held,
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

/// How many consecutive results of a `map` are kept together as one value once all their
/// iterations ended. Bounds what a checkpoint carries for a loop: at most about this many open
/// results (plus those running) and one reference per full chunk, which a chunk of small results
/// (a few dozen bytes each) already makes worth saving out of line.
pub(super) const RESULT_CHUNK: usize = 64;

/// A `for_each`/`map` waiting for its iterations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct LoopFrame {
    pub(super) node: NodeId,
    /// The items, one JSON array.
    pub(super) items: Held,
    /// The next item to start.
    pub(super) next: usize,
    /// Iterations started and not yet ended.
    pub(super) running: usize,
    /// What each ended iteration gave, by item index: kept for `map` only (a `for_each` has no use
    /// for them), and only for the iterations that ended and whose chunk is not full yet.
    #[serde(with = "by_slot")]
    pub(super) results: BTreeMap<usize, Held>,
    /// The results of full chunks, by chunk index: chunk `k` is one value, the array of what items
    /// `k * RESULT_CHUNK ..` gave (version 4). A chunk is saved once, so a checkpoint of a loop over
    /// a directory carries one reference per [`RESULT_CHUNK`] iterations and the few results of
    /// the chunks still open, not an entry per ended iteration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "by_slot")]
    pub(super) chunks: BTreeMap<usize, Held>,
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

/// Where a held value is saved in a checkpoint: inline, or out of line (in a [`BlobStore`]) under
/// the SHA-256 of its JSON, so a value is written once however many checkpoints reference it.
///
/// [`BlobStore`]: crate::ports::BlobStore
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Lowercase hex SHA-256 of the value's compact JSON.
    pub sha256: String,
    /// Length of that JSON in bytes.
    pub bytes: u64,
}

/// A value the run holds (a step output, loop items or results). In memory it is always the value;
/// in a checkpoint it is `{"inline": value}` or `{"blob": BlobRef}`.
#[derive(Debug, Clone, Default)]
pub struct Held {
    value: Value,
    place: Place,
}

#[derive(Debug, Clone, Default)]
enum Place {
    /// Not saved yet: inline unless [`RunState::take_unsaved`] moves it out of line.
    #[default]
    New,
    /// Small enough to stay inline.
    Inline,
    /// Saved out of line; the value is here too.
    Blob(BlobRef),
    /// Restored from a checkpoint and not loaded yet: the value is `null` until
    /// [`RunState::load_blob`] gives it.
    Missing(BlobRef),
}

impl Held {
    pub(super) fn new(value: Value) -> Held {
        Held {
            value,
            place: Place::New,
        }
    }

    pub(super) fn into_value(self) -> Value {
        self.value
    }

    /// The blob this value waits for, when it was restored and not loaded.
    pub(super) fn missing(&self) -> Option<&BlobRef> {
        match &self.place {
            Place::Missing(blob) => Some(blob),
            _ => None,
        }
    }
}

impl std::ops::Deref for Held {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.value
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SavedHeld<'a> {
    Inline(std::borrow::Cow<'a, Value>),
    Blob(std::borrow::Cow<'a, BlobRef>),
}

impl Serialize for Held {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.place {
            Place::New | Place::Inline => {
                SavedHeld::Inline(std::borrow::Cow::Borrowed(&self.value)).serialize(serializer)
            }
            Place::Blob(blob) | Place::Missing(blob) => {
                SavedHeld::Blob(std::borrow::Cow::Borrowed(blob)).serialize(serializer)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Held {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Held, D::Error> {
        Ok(match SavedHeld::deserialize(deserializer)? {
            SavedHeld::Inline(value) => Held {
                value: value.into_owned(),
                place: Place::Inline,
            },
            SavedHeld::Blob(blob) => Held {
                value: Value::Null,
                place: Place::Missing(blob.into_owned()),
            },
        })
    }
}

/// A value to save out of line before the checkpoint that references it: its JSON, under its hash.
#[derive(Debug, Clone)]
pub struct Blob {
    pub sha256: String,
    pub json: Vec<u8>,
}

impl RunState {
    /// Every held value, to visit in place.
    fn held_mut(&mut self) -> impl Iterator<Item = &mut Held> {
        self.fibers.values_mut().flat_map(|fiber| {
            let frames = fiber.frames.iter_mut().flat_map(|frame| match frame {
                Frame::Loop(frame) => Some(
                    std::iter::once(&mut frame.items)
                        .chain(frame.results.values_mut())
                        .chain(frame.chunks.values_mut()),
                ),
                _ => None,
            });
            fiber
                .outputs
                .values_mut()
                .chain(std::iter::once(&mut fiber.last))
                .chain(frames.flatten())
        })
    }

    pub(super) fn held(&self) -> impl Iterator<Item = &Held> {
        self.fibers.values().flat_map(|fiber| {
            let frames = fiber.frames.iter().flat_map(|frame| match frame {
                Frame::Loop(frame) => Some(
                    std::iter::once(&frame.items)
                        .chain(frame.results.values())
                        .chain(frame.chunks.values()),
                ),
                _ => None,
            });
            fiber
                .outputs
                .values()
                .chain(std::iter::once(&fiber.last))
                .chain(frames.flatten())
        })
    }

    /// Decides where each value held since the last checkpoint is saved: a value whose JSON is
    /// longer than `threshold` bytes goes out of line, and is returned (once per hash) for the
    /// caller to store before it writes the checkpoint; smaller ones stay inline. A value is looked
    /// at once, so a checkpoint costs what changed since the last one, not what the run holds.
    pub fn take_unsaved(&mut self, threshold: usize) -> Vec<Blob> {
        let mut blobs: Vec<Blob> = Vec::new();
        for held in self.held_mut() {
            if !matches!(held.place, Place::New) {
                continue;
            }
            // Small values are common (most step outputs): size them without writing them out.
            if crate::budget::json_size(&held.value, threshold as u64 + 1) <= threshold as u64 {
                held.place = Place::Inline;
                continue;
            }
            let json = match serde_json::to_vec(&held.value) {
                Ok(json) => json,
                // A `Value` always serializes; should it not, keeping it inline is still correct.
                Err(_) => {
                    held.place = Place::Inline;
                    continue;
                }
            };
            let sha256 = hex_sha256(&json);
            held.place = Place::Blob(BlobRef {
                sha256: sha256.clone(),
                bytes: json.len() as u64,
            });
            if !blobs.iter().any(|b| b.sha256 == sha256) {
                blobs.push(Blob { sha256, json });
            }
        }
        blobs
    }

    /// Hashes of the out-of-line values a restored state references and has not loaded yet.
    pub fn missing_blobs(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for blob in self.held().filter_map(Held::missing) {
            if !out.contains(&blob.sha256) {
                out.push(blob.sha256.clone());
            }
        }
        out
    }

    /// Gives the value of an out-of-line blob to every held value that references it. Bytes that
    /// do not hash to `sha256` or are not JSON are refused, and those values stay missing (the
    /// first advance then fails the run with `corrupt_state`).
    pub fn load_blob(&mut self, sha256: &str, json: &[u8]) -> Result<(), String> {
        if hex_sha256(json) != sha256 {
            return Err(format!("the saved value {sha256} does not match its hash"));
        }
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| format!("the saved value {sha256} is not JSON: {e}"))?;
        for held in self.held_mut() {
            if let Place::Missing(blob) = &held.place
                && blob.sha256 == sha256
            {
                held.place = Place::Blob(blob.clone());
                held.value = value.clone();
            }
        }
        Ok(())
    }

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

fn hex_sha256(bytes: &[u8]) -> String {
    let digest = sha2::Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

impl LoopFrame {
    /// Records what the iteration of item `slot` gave, and keeps its chunk as one value once every
    /// item of the chunk has a result.
    pub(super) fn keep_result(&mut self, slot: usize, value: Value) {
        let count = self.items.as_array().map_or(0, Vec::len);
        if slot >= count {
            return;
        }
        self.results.insert(slot, Held::new(value));
        let chunk = slot / RESULT_CHUNK;
        let first = chunk * RESULT_CHUNK;
        let end = first.saturating_add(RESULT_CHUNK).min(count);
        if self.results.range(first..end).count() < end - first {
            return;
        }
        let values = (first..end)
            .map(|slot| {
                self.results
                    .remove(&slot)
                    .map_or(Value::Null, Held::into_value)
            })
            .collect();
        self.chunks.insert(chunk, Held::new(Value::Array(values)));
    }

    /// Every item's result in item order (`null` for items without one), taken out of the frame.
    pub(super) fn take_results(&mut self) -> Vec<Value> {
        let count = self.items.as_array().map_or(0, Vec::len);
        let mut results = vec![Value::Null; count];
        for (chunk, held) in std::mem::take(&mut self.chunks) {
            if let Value::Array(values) = held.into_value() {
                for (offset, value) in values.into_iter().enumerate() {
                    if let Some(result) = chunk
                        .checked_mul(RESULT_CHUNK)
                        .and_then(|first| first.checked_add(offset))
                        .and_then(|slot| results.get_mut(slot))
                    {
                        *result = value;
                    }
                }
            }
        }
        for (slot, held) in std::mem::take(&mut self.results) {
            if let Some(result) = results.get_mut(slot) {
                *result = held.into_value();
            }
        }
        results
    }
}

/// A loop's results as a JSON object keyed by item index. Frames are an internally tagged enum,
/// whose fields serde reads through a buffer that keeps object keys as text, so the indexes are
/// read as text and parsed here.
mod by_slot {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Held;

    pub(super) fn serialize<S: Serializer>(
        results: &BTreeMap<usize, Held>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        results.serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<usize, Held>, D::Error> {
        let text = BTreeMap::<String, Held>::deserialize(deserializer)?;
        text.into_iter()
            .map(|(slot, held)| {
                slot.parse::<usize>()
                    .map(|slot| (slot, held))
                    .map_err(|_| serde::de::Error::custom(format!("`{slot}` is not an item index")))
            })
            .collect()
    }
}
