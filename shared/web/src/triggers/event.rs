//! The event trigger: Okta event hooks. `GET /hooks/okta` (the one-time verification) and
//! `POST /hooks/okta` (deliveries): decode the delivery → authenticate (the `Authorization` header
//! against `hooks.okta.secret`) → start one run per event per subscribed flow whose filter passes,
//! each on the version whose filter decided.
//!
//! # Delivery guarantees
//! Okta delivers at least once and retries a batch once after a timeout or a 5xx, so the same event
//! may arrive several times, in the same batch or in different ones. Each run is started with the
//! dedupe key `event:<uuid>:<flow>`, which the run intake honours atomically: whatever the number of
//! copies and however they interleave, one event yields at most one run per flow. The answer is 200
//! only after every run of the batch is durably queued; when the store fails the answer is 503 and
//! Okta's retry (or the next copy) starts the runs that are missing, never twice.
//!
//! Which flows listen, and the runs a delivery starts, are decided in `domain::events`; this module
//! decodes, authenticates and answers.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub use domain::events::{Accepted, HookEvent, accept, parse_delivery};
use domain::runner::Runtime;

use crate::auth::{constant_time_eq, resolve_secret};
use crate::body::read_body;
use crate::error::ApiError;
use crate::state::ApiState;

/// The header of Okta's one-time verification request.
pub const CHALLENGE_HEADER: &str = "x-okta-verification-challenge";

/// `GET|POST /hooks/okta`.
/// The routes [`router`] serves, as `(method, path, behind the admin JWT authorizer)`: what the
/// deployment template must route to the `event-hook` Lambda (`tests/integration/template.rs`
/// checks it). Okta authenticates with the hook secret, checked here, not with a JWT.
pub const ROUTES: &[(&str, &str, bool)] = &[
    ("GET", "/hooks/okta", false),
    ("POST", "/hooks/okta", false),
];

/// This trigger's line of [`super::HTTP_TRIGGERS`].
pub const TRIGGER: super::HttpTrigger = super::HttpTrigger {
    surface: super::Surface::Hooks,
    routes: ROUTES,
    router,
};

pub fn router(state: ApiState) -> axum::Router {
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

async fn deliver(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let runtime = &state.runtime;
    check_secret(runtime, &headers).await?;
    let bytes = read_body(body, state.body_limit).await?;
    let (events, delivery) = parse_delivery(&bytes).map_err(ApiError::BadRequest)?;
    // Any failure to store a run is answered 503: Okta retries a 5xx once, and the dedupe keys make
    // the retry start exactly the runs that are missing.
    let accepted = accept(runtime, events, delivery)
        .await
        .map_err(|error| ApiError::Unavailable(Box::new(error)))?;
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
    let expected = resolve_secret(runtime, &reference).await?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use domain::clock::SystemClock;
    use domain::ports::Created;
    use domain::ports::{FlowStore, RunIntake, StoreError, StoredFlow};
    use domain::run::Run;
    use domain::runner::RunnerConfig;
    use local::secrets::LocalSecrets;
    use local::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};

    /// An intake whose store is down.
    struct Down;

    #[async_trait::async_trait]
    impl RunIntake for Down {
        async fn enqueue(
            &self,
            _: &Run,
            _: Option<&str>,
            _: std::time::Duration,
        ) -> Result<Created, StoreError> {
            Err(StoreError::Unavailable("database is locked".into()))
        }
    }

    async fn runtime(intake: Option<Arc<dyn RunIntake>>) -> Runtime {
        let db = SqliteDb::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        let clock: Arc<dyn domain::ports::Clock> = Arc::new(SystemClock);
        let flows = Arc::new(SqliteFlowStore::new(db.clone()));
        let source = "name: on-lock\ntrigger: { event: { okta: [user.account.lock] } }\nsteps:\n  - card: text.compose\n    with: { text: hi }\n";
        flows
            .put(&StoredFlow::new(
                "on-lock",
                "on-lock.yaml",
                source,
                clock.now(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let runtime = Runtime::new(
            flows,
            Arc::new(SqliteRunStore::new(db.clone())),
            Arc::new(SqliteRunQueue::new(db, clock.clone(), 5)),
            clock,
            Arc::new(LocalSecrets::new(".")),
            domain::model::ProjectConfig::default(),
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
        // A retryable error, which `deliver` answers 503.
        let result = accept(&down, vec![lock_event("u1")], json!({})).await;
        assert!(
            result.as_ref().is_err_and(|e| e.is_retryable()),
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

    /// Version A: locked accounts are reported.
    const REPORT: &str = "name: on-lock\ntrigger: { event: { okta: [user.account.lock] } }\nsteps:\n  - card: text.compose\n    with: { text: reported }\n";
    /// Version B: locked accounts are suspended, and only in one department.
    const SUSPEND: &str = "name: on-lock\ntrigger: { event: { okta: [user.account.lock], filter: \"{{ event.target[0].department == 'ops' }}\" } }\nsteps:\n  - card: text.compose\n    with: { text: suspended }\n";

    #[tokio::test]
    async fn an_event_starts_the_version_whose_filter_passed_whatever_was_deployed_since() {
        use crate::triggers::test_support::{DeployAfterFirstLookup, stored};
        let deploy =
            DeployAfterFirstLookup::new(stored("on-lock", REPORT), stored("on-lock", SUSPEND));
        let (runtime, _) = deploy.runtime(Default::default(), ".").await;
        let accepted = accept(&runtime, vec![lock_event("u1")], json!({}))
            .await
            .map_err(|e| e.to_string());
        assert_eq!(
            accepted,
            Ok(Accepted {
                events: 1,
                started: 1,
                duplicates: 0
            })
        );
        // B is current now (its filter would have refused this event), yet the run is of A.
        let current = runtime
            .current_flow("on-lock")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(current.flow.version, domain::flowfile::version_of(SUSPEND));
        let page = runtime
            .list_runs(
                domain::run::RunQuery {
                    flow: Some("on-lock".into()),
                    status: None,
                    since: None,
                    until: None,
                    limit: 10,
                    cursor: None,
                },
                &domain::runner::RunFilter::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let versions: Vec<&str> = page.runs.iter().map(|r| r.flow_version.as_str()).collect();
        assert_eq!(versions, [domain::flowfile::version_of(REPORT).as_str()]);
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
