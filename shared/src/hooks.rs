//! Okta event hooks: `GET /hooks/okta` (the one-time verification) and `POST /hooks/okta`
//! (deliveries), which start one run per event per subscribed flow.
//!
//! # Delivery guarantees
//! Okta delivers at least once and retries a batch once after a timeout or a 5xx, so the same event
//! may arrive several times, in the same batch or in different ones. Each run is started with the
//! dedupe key `event:<uuid>:<flow>`, which the run intake honours atomically: whatever the number of
//! copies and however they interleave, one event yields at most one run per flow. The answer is 200
//! only after every run of the batch is durably queued; when the store fails the answer is 503 and
//! Okta's retry (or the next copy) starts the runs that are missing, never twice.
//!
//! # Which flows listen
//! [`TriggerIndex`] maps event types to the current flows that subscribe to them (with their
//! compiled `filter`) and lists the delegated flows. It is rebuilt from the flow store when
//! [`crate::runner::Runtime::invalidate_flows`] clears it (a deploy or hot reload in this process)
//! and at most every [`crate::runner::RunnerConfig::flow_cache`] otherwise (deploys made by other
//! processes, such as another Lambda).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::api::{ApiError, ApiState, constant_time_eq};
use crate::engine::CompiledFlow;
use crate::model::Trigger;
use crate::ports::{Created, SecretError};
use crate::run::TriggerInfo;
use crate::runner::{MAX_INPUT_DEPTH, RunnerError, Runtime};
use crate::template::{self, Compiled};

/// The header of Okta's one-time verification request.
pub const CHALLENGE_HEADER: &str = "x-okta-verification-challenge";

/// `GET|POST /hooks/okta`.
pub fn hooks_router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/hooks/okta", get(verify).post(deliver))
        .with_state(state)
}

/// Okta's verification: echo the challenge header as `{"verification": "…"}`. The challenge is
/// not secret and echoing it changes nothing, so no credential is required here; deliveries are
/// where the secret is checked.
async fn verify(headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    // Header names are case-insensitive and `HeaderMap` lookups already ignore case.
    let challenge = headers
        .get(CHALLENGE_HEADER)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "missing `{CHALLENGE_HEADER}` header: this endpoint answers Okta's event hook verification"
            ))
        })?
        .to_str()
        .map_err(|_| {
            ApiError::BadRequest(format!("`{CHALLENGE_HEADER}` must be visible ASCII"))
        })?;
    Ok(Json(json!({ "verification": challenge })))
}

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

async fn deliver(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let runtime = &state.runtime;
    check_secret(runtime, &headers).await?;
    let bytes = axum::body::to_bytes(body, state.body_limit)
        .await
        .map_err(|_| ApiError::TooLarge {
            limit: state.body_limit,
        })?;
    let (events, delivery) = parse_delivery(&bytes).map_err(ApiError::BadRequest)?;
    let accepted = accept(runtime, events, delivery).await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "events": accepted.events,
            "started": accepted.started,
            "duplicates": accepted.duplicates,
        })),
    )
        .into_response())
}

/// Compares the `Authorization` header with `hooks.okta.secret`, in constant time.
async fn check_secret(runtime: &Runtime, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(reference) = runtime.project().okta_hook_secret.clone() else {
        tracing::warn!(
            "event hook delivery refused: `hooks.okta.secret` is not set in idflow.yaml"
        );
        return Err(ApiError::Unauthorized(
            "event hooks are disabled until `hooks.okta.secret` is configured".into(),
        ));
    };
    let expected = match runtime.secrets.resolve(&reference).await {
        Ok(value) => value,
        Err(error @ SecretError::Unreadable { .. }) => {
            return Err(ApiError::Unavailable(Box::new(error)));
        }
        Err(error) => return Err(ApiError::Internal(Box::new(error))),
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if presented.is_empty() || !constant_time_eq(presented, expected.expose().as_bytes()) {
        return Err(ApiError::Unauthorized(
            "the Authorization header does not match the event hook secret".into(),
        ));
    }
    Ok(())
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
) -> Result<Accepted, ApiError> {
    let mut accepted = Accepted {
        events: events.len(),
        ..Accepted::default()
    };
    if events.is_empty() {
        return Ok(accepted);
    }
    let index = runtime
        .trigger_index
        .get(runtime)
        .await
        .map_err(unavailable)?;
    let vars = Value::Object(runtime.project().vars.clone());
    let now = runtime.clock.now().to_rfc3339();
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
            let trigger = TriggerInfo::Event {
                event_uuid: event.uuid.clone(),
                event_type: event.event_type.clone(),
            };
            let flow = subscriber.flow.clone();
            starts.push(async move {
                let result = runtime.start_run(&flow, input, trigger, Some(&key)).await;
                (flow, result)
            });
        }
    }
    let mut failure = None;
    for (flow, result) in futures::future::join_all(starts).await {
        match result {
            Ok((_, Created::New)) => accepted.started += 1,
            Ok((_, Created::Duplicate(_))) => accepted.duplicates += 1,
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
        Some(error) => Err(unavailable(error)),
        None => Ok(accepted),
    }
}

/// Any failure to store a run is answered 503: Okta retries a 5xx once, and the dedupe keys make
/// the retry start exactly the runs that are missing.
fn unavailable(error: RunnerError) -> ApiError {
    ApiError::Unavailable(Box::new(error))
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

/// A flow listening to an event type.
pub struct Subscriber {
    pub flow: String,
    /// The compiled `filter`, or why it does not compile.
    pub filter: Option<Result<Compiled, String>>,
}

/// The trigger-related view of the current flows.
#[derive(Default)]
pub struct FlowIndex {
    /// Event type → listening flows, in name order.
    pub events: HashMap<String, Vec<Subscriber>>,
    /// Current delegated flows, in name order.
    pub delegated: Vec<Arc<CompiledFlow>>,
}

impl FlowIndex {
    async fn build(runtime: &Runtime) -> Result<FlowIndex, RunnerError> {
        let mut stored = runtime.flows.list().await?;
        stored.sort_by(|a, b| a.name.cmp(&b.name));
        let mut index = FlowIndex::default();
        for s in stored {
            let compiled = match runtime.flow_version(&s.name, &s.version).await {
                Ok(c) => c,
                Err(error @ (RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. })) => {
                    tracing::warn!(flow = %s.name, error = %error, "flow skipped by the trigger index");
                    continue;
                }
                Err(other) => return Err(other),
            };
            match &compiled.flow.trigger {
                Trigger::Event(event) => {
                    let filter = event.filter.as_deref().map(|f| {
                        Compiled::text(f).map_err(|e| format!("`trigger.event.filter`: {e}"))
                    });
                    for event_type in &event.okta {
                        index
                            .events
                            .entry(event_type.clone())
                            .or_default()
                            .push(Subscriber {
                                flow: s.name.clone(),
                                // Compiled trees are one `Arc`; cloning per type is cheap.
                                filter: filter.clone(),
                            });
                    }
                }
                Trigger::Delegated(_) => index.delegated.push(compiled.clone()),
                _ => {}
            }
        }
        Ok(index)
    }
}

/// The cached [`FlowIndex`] of a runtime.
#[derive(Default)]
pub struct TriggerIndex {
    /// Bumped by every [`TriggerIndex::clear`], so an index built from a listing made before a
    /// deploy is never stored after it.
    generation: AtomicU64,
    slot: Mutex<Option<(u64, Instant, Arc<FlowIndex>)>>,
}

impl TriggerIndex {
    /// Forgets the index (the flows changed).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The index, rebuilt when cleared or older than the runtime's flow cache time.
    pub async fn get(&self, runtime: &Runtime) -> Result<Arc<FlowIndex>, RunnerError> {
        let generation = self.generation.load(Ordering::SeqCst);
        {
            let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((built_for, at, index)) = slot.as_ref()
                && *built_for == generation
                && at.elapsed() < runtime.config.flow_cache
            {
                return Ok(index.clone());
            }
        }
        let index = Arc::new(FlowIndex::build(runtime).await?);
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            *slot = Some((generation, Instant::now(), index.clone()));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::clock::SystemClock;
    use crate::adapters::secrets::LocalSecrets;
    use crate::adapters::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};
    use crate::ports::{FlowStore, RunIntake, StoreError, StoredFlow};
    use crate::run::Run;
    use crate::runner::RunnerConfig;

    /// An intake whose store is down.
    struct Down;

    #[async_trait::async_trait]
    impl RunIntake for Down {
        async fn enqueue(&self, _: &Run, _: Option<&str>) -> Result<Created, StoreError> {
            Err(StoreError::Unavailable("database is locked".into()))
        }
    }

    async fn runtime(intake: Option<Arc<dyn RunIntake>>) -> Runtime {
        let db = SqliteDb::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        let clock: Arc<dyn crate::ports::Clock> = Arc::new(SystemClock);
        let flows = Arc::new(SqliteFlowStore::new(db.clone()));
        let source = "name: on-lock\ntrigger: { event: { okta: [user.account.lock] } }\nsteps:\n  - card: text.compose\n    with: { text: hi }\n";
        flows
            .put(&StoredFlow {
                name: "on-lock".into(),
                version: crate::flowfile::version_of(source),
                source: source.into(),
                path: "on-lock.yaml".into(),
                deployed_at: clock.now(),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let runtime = Runtime::new(
            flows,
            Arc::new(SqliteRunStore::new(db.clone())),
            Arc::new(SqliteRunQueue::new(db, clock.clone(), 5)),
            clock,
            Arc::new(LocalSecrets::new(".")),
            crate::model::ProjectConfig::default(),
            RunnerConfig::default(),
        );
        match intake {
            Some(intake) => runtime.with_intake(intake),
            None => runtime,
        }
    }

    fn lock_event(uuid: &str) -> HookEvent {
        HookEvent {
            uuid: uuid.into(),
            event_type: "user.account.lock".into(),
            event: json!({"uuid": uuid, "eventType": "user.account.lock"}),
        }
    }

    #[tokio::test]
    async fn a_store_failure_is_a_503_so_okta_retries_and_the_retry_starts_each_run_once() {
        let down = runtime(Some(Arc::new(Down))).await;
        let result = accept(&down, vec![lock_event("u1")], json!({})).await;
        assert!(
            matches!(result, Err(ApiError::Unavailable(_))),
            "{result:?}"
        );

        let up = runtime(None).await;
        let events = || vec![lock_event("u1"), lock_event("u1"), lock_event("u2")];
        let first = accept(&up, events(), json!({}))
            .await
            .map_err(|e| e.to_string());
        assert_eq!(
            first,
            Ok(Accepted {
                events: 3,
                started: 2,
                duplicates: 1
            })
        );
        let retry = accept(&up, events(), json!({}))
            .await
            .map_err(|e| e.to_string());
        assert_eq!(
            retry,
            Ok(Accepted {
                events: 3,
                started: 0,
                duplicates: 3
            })
        );
    }

    fn check(body: &str, expected: Result<(usize, Value), &str>) {
        let got =
            parse_delivery(body.as_bytes()).map(|(events, delivery)| (events.len(), delivery));
        assert_eq!(
            got.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|e| *e),
            "{body}"
        );
    }

    #[test]
    fn deliveries_are_split_into_events_and_envelope() {
        check(
            r#"{"eventType":"com.okta.event_hook","eventId":"e1","data":{"events":[
                {"uuid":"u1","eventType":"user.lifecycle.activate"},
                {"uuid":"u2","eventType":"group.user_membership.add","target":[]}]}}"#,
            Ok((
                2,
                json!({"eventType": "com.okta.event_hook", "eventId": "e1", "data": {}}),
            )),
        );
        check(r#"{"data":{"events":[]}}"#, Ok((0, json!({"data": {}}))));
        check(
            "not json",
            Err("malformed JSON body: expected ident at line 1 column 2"),
        );
        check("[]", Err("the delivery must be a JSON object"));
        check(
            r#"{"data":{}}"#,
            Err("the delivery has no `data.events` list"),
        );
        check(
            r#"{"data":{"events":{}}}"#,
            Err("`data.events` must be a list"),
        );
        check(
            r#"{"data":{"events":[1]}}"#,
            Err("`data.events[0]` must be an object"),
        );
        check(
            r#"{"data":{"events":[{"uuid":"u1","eventType":"a.b"},{"eventType":"a.b"}]}}"#,
            Err("`data.events[1].uuid` must be non-empty text"),
        );
        check(
            r#"{"data":{"events":[{"uuid":"u1","eventType":""}]}}"#,
            Err("`data.events[0].eventType` must be non-empty text"),
        );
    }
}
