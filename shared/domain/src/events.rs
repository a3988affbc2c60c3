//! Okta event hooks in the domain: a delivery's events, the flows that listen to each event type,
//! and the runs a delivery starts (one per event and subscribed flow whose filter passes, each
//! deduplicated by `event:<uuid>:<flow>`).
//!
//! Which flows listen is the runtime's trigger index (`crate::runner::index`).

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::budget::MAX_INPUT_DEPTH;
use crate::ports::Created;
use crate::run::TriggerInfo;
use crate::runner::error::RunnerError;
use crate::runner::runtime::Runtime;
use crate::template::{self, Compiled};

/// What a delivery did, as answered to Okta (which ignores the body) and to tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Events in the delivery.
    pub events: usize,
    /// Runs created by this delivery.
    pub started: usize,
    /// (event, flow) pairs that already had their run.
    pub duplicates: usize,
}

/// One System Log event of a delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    pub uuid: String,
    pub event_type: String,
    /// The whole event as Okta sent it.
    pub event: Value,
}

/// Splits a delivery into its events and the envelope without `data.events`. Every event must have
/// a `uuid` and an `eventType`: without them nothing can be deduplicated or routed, and accepting
/// part of a batch would hide the problem, so the whole delivery is refused.
pub fn parse_delivery(bytes: &[u8]) -> Result<(Vec<HookEvent>, Value), String> {
    let mut envelope: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON body: {e}"))?;
    let data = envelope
        .as_object_mut()
        .ok_or("the delivery must be a JSON object")?
        .get_mut("data")
        .and_then(Value::as_object_mut)
        .ok_or("the delivery has no `data` object")?;
    let events = match data.remove("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err("`data.events` must be a list".into()),
        None => return Err("the delivery has no `data.events` list".into()),
    };
    let depth = crate::budget::json_depth(&envelope);
    if depth >= MAX_INPUT_DEPTH {
        return Err(format!(
            "the delivery is nested {depth} levels deep; at most {} are accepted",
            MAX_INPUT_DEPTH - 1
        ));
    }
    let mut parsed = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let text = |key: &str| {
            event
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("`data.events[{index}].{key}` must be non-empty text"))
        };
        if !event.is_object() {
            return Err(format!("`data.events[{index}]` must be an object"));
        }
        // The run input is `{"event": …, "delivery": …}`, one level above each.
        let depth = crate::budget::json_depth(&event);
        if depth >= MAX_INPUT_DEPTH {
            return Err(format!(
                "`data.events[{index}]` is nested {depth} levels deep; at most {} are accepted",
                MAX_INPUT_DEPTH - 1
            ));
        }
        let uuid = text("uuid")?;
        let event_type = text("eventType")?;
        parsed.push(HookEvent {
            uuid,
            event_type,
            event,
        });
    }
    Ok((parsed, envelope))
}

/// Starts the runs of a parsed delivery: one per (event, subscribed flow whose filter passes),
/// deduplicated by `event:<uuid>:<flow>`. Returns once every run is durably queued.
pub async fn accept(
    runtime: &Runtime,
    events: Vec<HookEvent>,
    delivery: Value,
) -> Result<Accepted, RunnerError> {
    let mut accepted = Accepted {
        events: events.len(),
        ..Accepted::default()
    };
    if events.is_empty() {
        return Ok(accepted);
    }
    let index = runtime.trigger_index().await?;
    let vars = Value::Object(runtime.project().vars.clone());
    let now = runtime.now().to_rfc3339();
    let mut seen = HashSet::new();
    let mut starts = Vec::new();
    for event in &events {
        let Some(subscribers) = index.events.get(&event.event_type) else {
            continue;
        };
        let mut context = None;
        for subscriber in subscribers {
            if seen.contains(&(event.uuid.as_str(), subscriber.flow.as_str())) {
                // The same event twice in one batch: the dedupe key would catch it too, but there
                // is no need to ask the store.
                accepted.duplicates += 1;
                continue;
            }
            if let Some(filter) = &subscriber.filter {
                let ctx = context.get_or_insert_with(|| {
                    template::to_value(&json!({
                        "event": event.event,
                        "delivery": delivery,
                        "vars": vars,
                        template::NOW_KEY: now,
                    }))
                });
                if !passes(filter, ctx, &subscriber.flow, event) {
                    continue;
                }
            }
            // Only a copy that starts a run hides the later ones: a copy the filter skipped leaves
            // the next copy of the uuid to be judged on its own, as it would be in a later batch
            // (found by fuzzing: a skipped copy used to hide a passing one of the same batch).
            seen.insert((event.uuid.as_str(), subscriber.flow.as_str()));
            let key = format!("event:{}:{}", event.uuid, subscriber.flow);
            let input = json!({ "event": event.event, "delivery": delivery });
            let trigger = TriggerInfo::Event(crate::run::EventStart {
                event_uuid: event.uuid.clone(),
                event_type: event.event_type.clone(),
            });
            let flow = subscriber.flow.clone();
            // The version whose filter passed is the version that runs.
            let compiled = subscriber.compiled.clone();
            starts.push(async move {
                let result = runtime
                    .start_flow(&compiled, input, trigger, Some(&key))
                    .await;
                (flow, result)
            });
        }
    }
    let mut failure = None;
    for (flow, result) in futures::future::join_all(starts).await {
        match result {
            Ok((_, Created::New)) => accepted.started += 1,
            Ok((_, Created::Duplicate(_))) => accepted.duplicates += 1,
            // Paused: acknowledged and skipped (start_flow logged and counted it); a paused flow
            // does not catch up on the events it missed.
            Err(RunnerError::FlowPaused { .. }) => {}
            // Removed or broken since the index was built, or an input no retry can fix: nothing
            // to start, nothing to retry.
            Err(
                error @ (RunnerError::UnknownFlow(_)
                | RunnerError::InvalidFlow { .. }
                | RunnerError::InputTooDeep { .. }),
            ) => {
                tracing::warn!(%flow, error = %error, "event not delivered to flow");
            }
            Err(error) => {
                tracing::error!(%flow, error = %error, "event run not started; Okta will retry");
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(accepted),
    }
}

/// Evaluates a flow's filter. A template error is the flow author's problem, not Okta's: it is
/// logged and the event is skipped for that flow, and the delivery is still acknowledged.
fn passes(
    filter: &Result<Compiled, String>,
    ctx: &minijinja::Value,
    flow: &str,
    event: &HookEvent,
) -> bool {
    let compiled = match filter {
        Ok(compiled) => compiled,
        Err(message) => {
            tracing::warn!(%flow, uuid = %event.uuid, error = %message, "event filter does not compile; event skipped");
            return false;
        }
    };
    match compiled.render(ctx) {
        Ok(value) => template::truthy(&value),
        Err(error) => {
            tracing::warn!(%flow, uuid = %event.uuid, event_type = %event.event_type, error = %error, "event filter failed; event skipped");
            false
        }
    }
}
