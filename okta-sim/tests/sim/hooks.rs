//! Event hooks from Okta's side: verification and batched delivery with one retry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use okta_sim::HookError;
use serde_json::{Value, json};

use crate::support::start;

/// What the receiver does for each successive POST; after the script, it answers 200.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    Hang,
}

#[derive(Default)]
struct Received {
    posts: Vec<(HeaderMap, Value)>,
    script: Vec<Reply>,
    echo_wrong: bool,
}

type Shared = Arc<Mutex<Received>>;

async fn verify(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let challenge = headers
        .get("x-okta-verification-challenge")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let wrong = state.lock().map(|s| s.echo_wrong).unwrap_or(false);
    let answer = if wrong {
        "not-the-challenge".to_string()
    } else {
        challenge
    };
    axum::Json(json!({ "verification": answer })).into_response()
}

async fn receive(State(state): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let reply = {
        let mut state = state.lock().expect("receiver state");
        let attempt = state.posts.len();
        state
            .posts
            .push((headers, serde_json::from_str(&body).unwrap_or(Value::Null)));
        state.script.get(attempt).copied()
    };
    match reply {
        Some(Reply::Status(code)) => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Some(Reply::Hang) => {
            // Never answers; the sender's timeout ends the request.
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        None => StatusCode::OK.into_response(),
    }
}

async fn receiver(script: Vec<Reply>, echo_wrong: bool) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Received {
        script,
        echo_wrong,
        ..Received::default()
    }));
    let app = Router::new()
        .route("/hooks/okta", get(verify).post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks/okta", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, state)
}

fn events(count: usize) -> Vec<Value> {
    (0..count)
        .map(|n| json!({ "uuid": format!("evt-{n}"), "eventType": "user.session.start" }))
        .collect()
}

#[tokio::test]
async fn verification_echoes_the_challenge() {
    let (sim, _) = start(0).await;
    let (url, _) = receiver(vec![], false).await;
    sim.verify_event_hook(&url, "Bearer hook-secret")
        .await
        .expect("verified");
    let (bad_url, _) = receiver(vec![], true).await;
    let error = sim
        .verify_event_hook(&bad_url, "Bearer hook-secret")
        .await
        .expect_err("wrong echo");
    assert!(matches!(error, HookError::Verification { .. }), "{error}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn delivers_batches_in_oktas_envelope() {
    let (sim, _) = start(0).await;
    let (url, state) = receiver(vec![], false).await;
    let report = sim
        .deliver_events(&url, "my-hook-secret", events(5), 2)
        .await;
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(
        report.batches.iter().map(|b| b.events).collect::<Vec<_>>(),
        [2, 2, 1]
    );
    assert_eq!(report.attempts(), 3);

    let received = state.lock().expect("state");
    let (headers, first) = &received.posts[0];
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("my-hook-secret")
    );
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(first["eventType"], "com.okta.event_hook");
    assert_eq!(first["eventTypeVersion"], "1.0");
    assert_eq!(first["cloudEventsVersion"], "0.1");
    assert_eq!(first["contentType"], "application/json");
    assert_eq!(first["eventTime"], "2026-01-15T10:00:00.000Z");
    assert!(
        first["source"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{}/api/v1/eventHooks/who", sim.base_url())))
    );
    let uuids: Vec<_> = received
        .posts
        .iter()
        .flat_map(|(_, body)| {
            body["data"]["events"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|e| e["uuid"].clone())
        .collect();
    assert_eq!(
        uuids,
        events(5)
            .into_iter()
            .map(|e| e["uuid"].clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn retries_a_batch_once_after_5xx_or_timeout() {
    let (sim, _) = start(0).await;
    sim.set_hook_timeout(Duration::from_millis(300));

    let (url, state) = receiver(vec![Reply::Status(503)], false).await;
    let report = sim.deliver_events(&url, "secret", events(1), 10).await;
    assert!(report.all_delivered());
    assert_eq!(report.batches[0].attempts, 2);
    let event_ids: Vec<Value> = state
        .lock()
        .expect("state")
        .posts
        .iter()
        .map(|(_, body)| body["eventId"].clone())
        .collect();
    assert_eq!(
        event_ids[0], event_ids[1],
        "a retry resends the same delivery"
    );

    let (url, _) = receiver(vec![Reply::Hang], false).await;
    let report = sim.deliver_events(&url, "secret", events(1), 10).await;
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.batches[0].attempts, 2);

    // Only one retry: a second failure is reported, and 4xx is not retried.
    let (url, state) = receiver(vec![Reply::Status(500), Reply::Status(502)], false).await;
    let report = sim.deliver_events(&url, "secret", events(1), 10).await;
    assert!(matches!(
        report.batches[0].outcome,
        Err(HookError::Status { status: 502, .. })
    ));
    assert_eq!(state.lock().expect("state").posts.len(), 2);
    let (url, state) = receiver(vec![Reply::Status(401)], false).await;
    let report = sim.deliver_events(&url, "wrong", events(1), 10).await;
    assert_eq!(report.batches[0].attempts, 1);
    assert!(!report.all_delivered());
    assert_eq!(state.lock().expect("state").posts.len(), 1);
}
