//! Pausing a flow: every trigger refuses or skips while it is paused, and says so; the pause is
//! kept in the store (a new server on the same data still sees it) until the flow is resumed.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use tests::TestServer;

const PUBLIC: &str = r#"
name: signup
trigger:
  api: { auth: public }
steps:
  - card: text.compose
    with: { text: "hi" }
"#;

const NIGHTLY: &str = r#"
name: nightly
trigger:
  schedule: { cron: "0 3 * * ? *", timezone: Europe/Paris }
steps:
  - card: text.compose
    with: { text: "night" }
"#;

const LOCKED: &str = r#"
name: on-lock
trigger:
  event: { okta: [user.account.lock] }
steps:
  - card: text.compose
    with: { text: "locked" }
"#;

async fn post(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.post(path, &json!({})).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn lock_event(uuid: &str) -> domain::events::HookEvent {
    domain::events::HookEvent {
        uuid: uuid.to_owned(),
        event_type: "user.account.lock".to_owned(),
        event: json!({ "uuid": uuid, "eventType": "user.account.lock" }),
    }
}

#[tokio::test]
async fn a_paused_flow_starts_nothing_from_any_trigger_until_resumed() {
    let server = TestServer::start(&[
        ("signup.yaml", PUBLIC),
        ("nightly.yaml", NIGHTLY),
        ("on-lock.yaml", LOCKED),
    ])
    .await;
    for flow in ["signup", "nightly", "on-lock"] {
        let (status, body) = post(&server, &format!("/api/flows/{flow}/pause")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["paused"].is_string(), "{body}");
    }

    // API and manual starts answer 409 with what to do.
    let (status, body) = post(&server, "/api/flows/signup/invoke").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`signup` is paused"), "{message}");
    assert!(message.contains("/api/flows/signup/resume"), "{message}");
    let (status, _) = post(&server, "/api/flows/signup/runs").await;
    assert_eq!(status, 409);

    // A schedule's fire time and an event are skipped, not failed.
    let runtime = server.runtime();
    let fire = Utc.with_ymd_and_hms(2026, 1, 6, 2, 0, 0).unwrap();
    let scheduled = domain::runner::start_scheduled_run(runtime, "nightly", fire).await;
    assert!(
        matches!(
            scheduled,
            Err(domain::runner::RunnerError::FlowPaused { .. })
        ),
        "{scheduled:?}"
    );
    let accepted = domain::events::accept(runtime, vec![lock_event("e1")], json!({}))
        .await
        .expect("a paused flow's event is acknowledged");
    assert_eq!(accepted.started, 0);
    assert_eq!(server.run_count().await, 0, "nothing was started");
    let skips = runtime.paused_skips();
    for (flow, trigger) in [
        ("signup", "api"),
        ("signup", "manual"),
        ("nightly", "schedule"),
        ("on-lock", "event"),
    ] {
        assert!(
            skips.contains(&((flow.to_owned(), trigger.to_owned()), 1)),
            "{flow}/{trigger} not counted in {skips:?}"
        );
    }

    // The flow list and the flow page say so.
    let list: Value = server.get_json("/api/flows?stats=1").await;
    let signup = list["flows"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "signup"))
        .cloned()
        .unwrap_or(Value::Null);
    assert!(signup["paused"].is_string(), "{signup}");

    // Resumed, it starts runs again.
    let (status, body) = post(&server, "/api/flows/signup/resume").await;
    assert_eq!((status, body["paused"].clone()), (200, Value::Null));
    let (status, body) = post(&server, "/api/flows/signup/invoke").await;
    assert_eq!(status, 202, "{body}");

    // Pausing a flow that does not exist is a 404 and writes nothing.
    let (status, _) = post(&server, "/api/flows/nope/pause").await;
    assert_eq!(status, 404);
    assert_eq!(runtime.paused("nope").await.expect("read"), None);
    server.stop().await;
}

#[tokio::test]
async fn a_schedule_flow_page_lists_its_next_fire_times_in_its_time_zone() {
    let now = Utc.with_ymd_and_hms(2026, 3, 26, 12, 0, 0).unwrap();
    let clock = domain::clock::ManualClock::new(now);
    let server =
        TestServer::start_with_clock(&[("nightly.yaml", NIGHTLY)], std::sync::Arc::new(clock))
            .await;
    let body: Value = server.get_json("/api/flows/nightly").await;
    // 03:00 in Paris, across the switch to summer time on 29 March 2026.
    assert_eq!(
        body["nextFires"],
        json!([
            "2026-03-27T02:00:00Z",
            "2026-03-28T02:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-30T01:00:00Z",
            "2026-03-31T01:00:00Z",
        ])
    );
    server.stop().await;
}
