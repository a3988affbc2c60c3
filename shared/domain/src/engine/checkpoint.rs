//! Reading a saved run state: its format version, the migrations from older versions, and the check
//! of a restored state against its flow.
//!
//! A state is decoded in three moves: read `"v"` (absent: version 1, the format of every release
//! before versions existed), apply each migration from that version up to [`STATE_VERSION`] to the
//! JSON, then decode the current shape. A version newer than this release knows is refused with
//! [`StateError::Newer`], never guessed at.
//!
//! Decoding proves the shape, not the meaning: a state that decodes may still name a step the flow
//! does not have, or a fiber that is gone. [`check`] compares it with the compiled flow before the
//! engine touches it, and the engine reads restored data only through checked lookups, so a corrupt
//! state fails its run with `corrupt_state` instead of panicking or hanging.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::run::RunError;

use super::compile::{Body, CompiledFlow, ErrorPlan, ListRef, NodeId, NodeKind};
use super::state::{
    Done, Fiber, Frame, LoopFrame, Pending, PendingKind, RunState, STATE_VERSION, Version,
};

/// Why a saved run state cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state is not a JSON object.
    #[error("the saved run state is not a JSON object")]
    NotAnObject,
    /// `"v"` is not a version number (a whole number from 1).
    #[error("the saved run state has an invalid format version `{0}`")]
    BadVersion(Value),
    /// Written by a later release, in a format this one does not know.
    #[error(
        "the saved run state has format version {found}, newer than this release reads (up to {supported}); resume it with a release that knows version {found}"
    )]
    Newer { found: u64, supported: u32 },
    /// A migration from an older version found the state not in that version's shape.
    #[error("the saved run state cannot be migrated from format version {from}: {reason}")]
    Migration { from: u32, reason: String },
    /// Migrated to the current version, the state does not have its shape.
    #[error("the saved run state does not have the shape of its format version")]
    Malformed(#[source] serde_json::Error),
}

impl StateError {
    /// The run error code of a run whose state cannot be restored.
    pub fn code(&self) -> &'static str {
        match self {
            StateError::Newer { .. } => "unsupported_state",
            _ => "corrupt_state",
        }
    }
}

/// One step of the migration path: rewrites a state of version `from` (without its `"v"`) into
/// the shape of version `from + 1`.
struct Migration {
    from: u32,
    apply: fn(&mut Map<String, Value>) -> Result<(), String>,
}

/// Every step from version 1 to [`STATE_VERSION`], in order, one per version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        apply: v1_to_v2,
    },
    Migration {
        from: 2,
        apply: v2_to_v3,
    },
    Migration {
        from: 3,
        apply: v3_to_v4,
    },
];

// The path has one step per version, in order: checked when the crate compiles.
const _: () = {
    assert!(MIGRATIONS.len() as u32 == STATE_VERSION - 1);
    let mut i = 0;
    while i < MIGRATIONS.len() {
        assert!(MIGRATIONS[i].from == i as u32 + 1);
        i += 1;
    }
};

/// Version 2 added the version field itself (`"v"`, removed before migrating); the shape is
/// otherwise version 1's.
fn v1_to_v2(_state: &mut Map<String, Value>) -> Result<(), String> {
    Ok(())
}

/// Version 3 saves every value the run holds (step outputs, a fiber's last output, a loop's items
/// and results) as `{"inline": value}` or `{"blob": {"sha256", "bytes"}}`, so large ones can live
/// out of line. A version 2 state has them all inline: each is wrapped, and a loop's items become
/// one value (the array). A loop's results become an object by item index holding the iterations
/// that gave something (version 2 kept one entry per item, `null` until its iteration ended).
fn v2_to_v3(state: &mut Map<String, Value>) -> Result<(), String> {
    let inline = |value: Value| serde_json::json!({ "inline": value });
    let Some(Value::Object(fibers)) = state.get_mut("fibers") else {
        return Err("`fibers` is not an object".into());
    };
    for (id, fiber) in fibers.iter_mut() {
        let Value::Object(fiber) = fiber else {
            return Err(format!("fiber {id} is not an object"));
        };
        match fiber.get_mut("outputs") {
            Some(Value::Object(outputs)) => {
                for value in outputs.values_mut() {
                    *value = inline(value.take());
                }
            }
            _ => return Err(format!("fiber {id} has no `outputs` object")),
        }
        let last = fiber.remove("last").unwrap_or(Value::Null);
        fiber.insert("last".into(), inline(last));
        let Some(Value::Array(frames)) = fiber.get_mut("frames") else {
            return Err(format!("fiber {id} has no `frames` list"));
        };
        for frame in frames {
            if frame.get("frame").and_then(Value::as_str) != Some("loop") {
                continue;
            }
            let Value::Object(frame) = frame else {
                continue;
            };
            let items = frame.remove("items").unwrap_or(Value::Null);
            if !items.is_array() {
                return Err(format!("a loop frame of fiber {id} has no `items` list"));
            }
            frame.insert("items".into(), inline(items));
            let results = match frame.remove("results") {
                Some(Value::Array(results)) => results,
                _ => return Err(format!("a loop frame of fiber {id} has no `results` list")),
            };
            let by_slot: Map<String, Value> = results
                .into_iter()
                .enumerate()
                .filter(|(_, value)| !value.is_null())
                .map(|(slot, value)| (slot.to_string(), inline(value)))
                .collect();
            frame.insert("results".into(), Value::Object(by_slot));
        }
    }
    Ok(())
}

/// Version 4 keeps a `map`'s results of full chunks of items as one value each (`chunks`, by chunk
/// index), leaving in `results` only the iterations of chunks not full yet. A version 3 state,
/// without chunks, is a version 4 state whose chunks are all still open: its results stay where
/// they are, and the loop chunks them as its next iterations end (a chunk left full by a version
/// 3 state is read from `results` when the loop ends, like any open result).
fn v3_to_v4(_state: &mut Map<String, Value>) -> Result<(), String> {
    Ok(())
}

/// The fields of a state in the current version's shape, as decoded once migrated.
#[derive(Deserialize)]
struct Fields {
    fibers: BTreeMap<u32, Fiber>,
    next_fiber: u32,
    next_effect: u64,
    seq: u32,
    pending: BTreeMap<u64, Pending>,
    #[serde(default)]
    done: Option<Done>,
}

impl RunState {
    /// Decodes a saved state written by this release or an earlier one.
    pub fn decode(saved: Value) -> Result<RunState, StateError> {
        let Value::Object(mut map) = saved else {
            return Err(StateError::NotAnObject);
        };
        let version = match map.remove("v") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(found) if found > u64::from(STATE_VERSION) => {
                    return Err(StateError::Newer {
                        found,
                        supported: STATE_VERSION,
                    });
                }
                Some(n) if n >= 1 => u32::try_from(n).unwrap_or(STATE_VERSION),
                _ => return Err(StateError::BadVersion(v)),
            },
        };
        for migration in MIGRATIONS.iter().filter(|m| m.from >= version) {
            (migration.apply)(&mut map).map_err(|reason| StateError::Migration {
                from: migration.from,
                reason,
            })?;
        }
        let fields: Fields =
            serde_json::from_value(Value::Object(map)).map_err(StateError::Malformed)?;
        Ok(RunState {
            v: Version,
            fibers: fields.fibers,
            next_fiber: fields.next_fiber,
            next_effect: fields.next_effect,
            seq: fields.seq,
            pending: fields.pending,
            done: fields.done,
            cache: HashMap::new(),
            derived: HashMap::new(),
            checked: false,
        })
    }

    /// Restores a checkpoint's state for the runner. Never fails: a state that cannot be decoded
    /// becomes a run that has failed (`corrupt_state`, or `unsupported_state` for a newer format)
    /// with the reason as its message, so the next `advance` ends the run with a clear error.
    pub fn restore(saved: Value) -> RunState {
        RunState::decode(saved).unwrap_or_else(|error| {
            // The run's error says everything: the error and what caused it.
            let mut message = error.to_string();
            let mut cause = std::error::Error::source(&error);
            while let Some(source) = cause {
                message = format!("{message}: {source}");
                cause = source.source();
            }
            RunState {
                done: Some(Done::Failed(RunError {
                    code: error.code().into(),
                    message,
                    step: None,
                })),
                checked: true,
                ..RunState::default()
            }
        })
    }
}

/// Every way of reading a state goes through the versions and migrations.
impl<'de> Deserialize<'de> for RunState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunState, D::Error> {
        let saved = Value::deserialize(deserializer)?;
        RunState::decode(saved).map_err(serde::de::Error::custom)
    }
}

/// Checks a restored state against its flow: every step it names exists and is of the kind its
/// place needs, every fiber's parent is an older fiber looping over it, every pending effect belongs
/// to a fiber and a step that can have it, and no id is reused. Returns what is wrong.
pub(super) fn check(flow: &CompiledFlow, state: &RunState) -> Result<(), String> {
    if let Some(blob) = state.held().find_map(|held| held.missing()) {
        return Err(format!(
            "the saved value {} ({} bytes) it references could not be loaded",
            blob.sha256, blob.bytes
        ));
    }
    if let Some((&last, _)) = state.fibers.last_key_value()
        && last >= state.next_fiber
    {
        return Err(format!(
            "fiber {last} is not below the next fiber id {}",
            state.next_fiber
        ));
    }
    if let Some((&last, _)) = state.pending.last_key_value()
        && last >= state.next_effect
    {
        return Err(format!(
            "pending effect {last} is not below the next effect id {}",
            state.next_effect
        ));
    }
    for (&id, fiber) in &state.fibers {
        check_fiber(flow, state, id, fiber).map_err(|what| format!("fiber {id}: {what}"))?;
    }
    for (&id, pending) in &state.pending {
        check_pending(flow, state, pending)
            .map_err(|what| format!("pending effect {id}: {what}"))?;
    }
    Ok(())
}

fn check_fiber(
    flow: &CompiledFlow,
    state: &RunState,
    id: u32,
    fiber: &Fiber,
) -> Result<(), String> {
    if let Some((parent, slot)) = fiber.parent {
        // Parents are created before their iterations, so an older id also rules out cycles.
        if parent >= id {
            return Err(format!("its parent fiber {parent} is not older"));
        }
        let Some(parent_fiber) = state.fibers.get(&parent) else {
            return Err(format!("its parent fiber {parent} does not exist"));
        };
        match parent_fiber.frames.last() {
            Some(Frame::Loop(frame))
                if matches!(
                    flow.node(frame.node).map(|n| &n.kind),
                    Some(NodeKind::Loop {
                        body: Body::Steps(_),
                        ..
                    })
                ) && slot < item_count(frame) => {}
            _ => {
                return Err(format!(
                    "its parent fiber {parent} is not looping over item {slot} of inline steps"
                ));
            }
        }
    }
    for frame in &fiber.frames {
        check_frame(flow, frame)?;
    }
    Ok(())
}

fn check_frame(flow: &CompiledFlow, frame: &Frame) -> Result<(), String> {
    let kind = |node: NodeId| flow.node(node).map(|n| &n.kind);
    let wrong = |frame: &str, kind: &str, node: NodeId| match flow.node(node) {
        Some(_) => format!(
            "{frame} names {}, which is not {kind}",
            step_text(flow, node)
        ),
        None => format!("{frame} names step #{node}, which the flow does not have"),
    };
    match frame {
        Frame::Seq { list, index } => {
            let Some(steps) = flow.list(*list) else {
                return Err(format!(
                    "{} is not a step list of the flow",
                    list_text(flow, *list)
                ));
            };
            if *index > steps.len() {
                return Err(format!(
                    "its cursor {index} is past the end of {}, which has {} step(s)",
                    list_text(flow, *list),
                    steps.len()
                ));
            }
        }
        Frame::Loop(frame) => {
            if !matches!(kind(frame.node), Some(NodeKind::Loop { .. })) {
                return Err(wrong("a loop frame", "a loop", frame.node));
            }
            if !frame.items.is_array() {
                return Err(format!(
                    "the loop of {} has no list of items",
                    step_text(flow, frame.node)
                ));
            }
            if frame.next > item_count(frame) || frame.running > frame.next {
                return Err(format!(
                    "the loop of {} has {} items, started {} and runs {}",
                    step_text(flow, frame.node),
                    item_count(frame),
                    frame.next,
                    frame.running
                ));
            }
            if let Some((&slot, _)) = frame.results.last_key_value()
                && slot >= item_count(frame)
            {
                return Err(format!(
                    "the loop of {} has {} items and a result for item {slot}",
                    step_text(flow, frame.node),
                    item_count(frame)
                ));
            }
            if let Some((&chunk, _)) = frame.chunks.last_key_value()
                && chunk.saturating_mul(super::state::RESULT_CHUNK) >= item_count(frame)
            {
                return Err(format!(
                    "the loop of {} has {} items and results for chunk {chunk}",
                    step_text(flow, frame.node),
                    item_count(frame)
                ));
            }
        }
        Frame::Try { node, .. } => {
            if !matches!(kind(*node), Some(NodeKind::Try { .. })) {
                return Err(wrong("a try frame", "a `try`", *node));
            }
        }
        Frame::OnError { node, .. } => {
            if !matches!(
                flow.node(*node).map(|n| &n.on_error),
                Some(ErrorPlan::Steps(_))
            ) {
                return Err(wrong(
                    "an on_error frame",
                    "a step with `on_error` steps",
                    *node,
                ));
            }
        }
        Frame::Stream(frame) => {
            if !matches!(kind(frame.node), Some(NodeKind::Card { spec, .. }) if spec.name == frame.card)
            {
                let card = format!("a `{}` card", frame.card);
                return Err(wrong("a stream frame", &card, frame.node));
            }
            if !frame.input.is_object() {
                return Err(format!(
                    "the stream of {} has no card input to fetch pages with",
                    step_text(flow, frame.node)
                ));
            }
            if frame.concurrency == 0 {
                return Err(format!(
                    "the stream of {} may run no helper run at a time",
                    step_text(flow, frame.node)
                ));
            }
        }
    }
    Ok(())
}

fn check_pending(flow: &CompiledFlow, state: &RunState, pending: &Pending) -> Result<(), String> {
    let Some(fiber) = state.fibers.get(&pending.fiber) else {
        return Err(format!("its fiber {} does not exist", pending.fiber));
    };
    let Some(node) = flow.node(pending.node) else {
        return Err(format!(
            "it names step #{}, which the flow does not have",
            pending.node
        ));
    };
    let fits = match (&pending.kind, &node.kind) {
        (PendingKind::Card { .. } | PendingKind::Retry { .. }, NodeKind::Card { .. }) => true,
        (PendingKind::Wait { .. }, NodeKind::Wait { .. } | NodeKind::WaitUntil { .. }) => true,
        (
            PendingKind::Child {
                slot: Some(slot), ..
            },
            NodeKind::Loop {
                body: Body::Flow { .. },
                ..
            },
        ) => matches!(
            fiber.frames.last(),
            Some(Frame::Loop(frame)) if frame.node == pending.node && *slot < item_count(frame)
        ),
        (PendingKind::Child { slot: None, .. }, NodeKind::Card { .. }) => true,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "a {} does not belong to {} ({})",
            pending_text(&pending.kind),
            step_text(flow, pending.node),
            node.kind.label()
        ))
    }
}

/// How many items a loop iterates over (none when its items are not a list).
fn item_count(frame: &LoopFrame) -> usize {
    frame.items.as_array().map_or(0, Vec::len)
}

/// A step as the messages name it: its key when the flow has it, its number always.
fn step_text(flow: &CompiledFlow, node: NodeId) -> String {
    match flow.node(node) {
        Some(n) => format!("step `{}` (#{node})", n.key),
        None => format!("step #{node}"),
    }
}

fn list_text(flow: &CompiledFlow, list: ListRef) -> String {
    match list {
        ListRef::Root => "the top-level steps".into(),
        ListRef::Then(n) => format!("the `then` steps of {}", step_text(flow, n)),
        ListRef::Else(n) => format!("the `else` steps of {}", step_text(flow, n)),
        ListRef::Body(n) => format!("the loop steps of {}", step_text(flow, n)),
        ListRef::Try(n) => format!("the `try` steps of {}", step_text(flow, n)),
        ListRef::Catch(n) => format!("the `catch` steps of {}", step_text(flow, n)),
        ListRef::OnError(n) => format!("the `on_error` steps of {}", step_text(flow, n)),
    }
}

fn pending_text(kind: &PendingKind) -> &'static str {
    match kind {
        PendingKind::Card { .. } => "card call",
        PendingKind::Retry { .. } => "retry timer",
        PendingKind::Child { .. } => "helper run",
        PendingKind::Wait { .. } => "wait timer",
    }
}
