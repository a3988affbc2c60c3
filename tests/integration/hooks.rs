//! Okta event hooks end to end: verification, the shared secret, malformed deliveries, routing by
//! event type and filter, and exactly one run per (event, flow) under Okta's at-least-once delivery.
//! Okta's side is played by okta-sim.

use std::collections::{BTreeMap, BTreeSet};

use okta_sim::{Sim, SimHandle};
use serde_json::{Value, json};
use tests::TestServer;

const SECRET: &str = "okta-hook-7f3a9c";

const CONFIG: &str = "hooks:\n  okta: { secret: \"file:./hook.secret\" }\n";

const NO_CODE: &str = r#"
name: no-code-builders
description: Welcome people added to the No-Code Builders group
trigger:
  event:
    okta: [group.user_membership.add]
    filter: "{{ event.target | selectattr('type', 'eq', 'UserGroup') | selectattr('displayName', 'eq', 'No-Code Builders') | list | length > 0 }}"
steps:
  - card: text.compose
    with: { text: "welcome {{ input.event.actor.alternateId }}" }
"#;

const LIFECYCLE: &str = r#"
name: lifecycle
trigger:
  event:
    okta: [user.lifecycle.activate, group.user_membership.add]
steps:
  - card: text.compose
    with: { text: "{{ input.event.eventType }}" }
"#;

const FAILED_LOGINS: &str = r#"
name: failed-logins
trigger:
  event:
    okta: [user.session.start]
    filter: "{{ event.outcome.result == 'FAILURE' and delivery.eventType == 'com.okta.event_hook' }}"
steps:
  - card: text.compose
    with: { text: "{{ input.event.uuid }}" }
"#;

/// Its filter fails to render for every event: logged, never a run, never a 5xx.
const BROKEN_FILTER: &str = r#"
name: broken-filter
trigger:
  event:
    okta: [user.lifecycle.activate]
    filter: "{{ event.published + 1 }}"
steps:
  - card: text.compose
    with: { text: "never" }
"#;

const PLAIN: &str = r#"
name: plain
steps:
  - card: text.compose
    with: { text: "manual only" }
"#;

async fn server() -> TestServer {
    TestServer::start(&[
        ("idflow.yaml", CONFIG),
        ("hook.secret", SECRET),
        ("no-code.yaml", NO_CODE),
        ("lifecycle.yaml", LIFECYCLE),
        ("failed-logins.yaml", FAILED_LOGINS),
        ("broken-filter.yaml", BROKEN_FILTER),
        ("plain.yaml", PLAIN),
    ])
    .await
}

async fn sim() -> SimHandle {
    Sim::builder().start().await.expect("okta-sim starts")
}

/// A System Log event of the shape Okta delivers.
fn event(uuid: &str, event_type: &str, result: &str, group: Option<&str>) -> Value {
    let mut target = vec![json!({
        "id": format!("00u{uuid}"), "type": "User", "alternateId": format!("{uuid}@example.com"),
        "displayName": "Test User", "detailEntry": null
    })];
    if let Some(group) = group {
        target.push(json!({
            "id": format!("00g{group}").replace(' ', ""), "type": "UserGroup", "alternateId": "unknown",
            "displayName": group, "detailEntry": null
        }));
    }
    json!({
        "uuid": uuid,
        "published": "2025-03-26T21:05:32.159Z",
        "eventType": event_type,
        "version": "0",
        "displayMessage": "test event",
        "severity": "INFO",
        "actor": { "id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin", "detailEntry": null },
        "outcome": { "result": result, "reason": null },
        "target": target,
        "client": { "ipAddress": "203.0.113.9", "device": "Computer" },
        "debugContext": { "debugData": { "requestId": format!("req-{uuid}") } },
        "transaction": { "type": "WEB", "id": format!("tx-{uuid}"), "detail": {} },
    })
}

/// The flows a test event must start, by the rules of the flows above.
fn expected_flows(event: &Value) -> Vec<&'static str> {
    let kind = event["eventType"].as_str().unwrap_or("");
    let in_no_code = event["target"].as_array().is_some_and(|t| {
        t.iter()
            .any(|x| x["type"] == "UserGroup" && x["displayName"] == "No-Code Builders")
    });
    let mut flows = Vec::new();
    match kind {
        "group.user_membership.add" => {
            flows.push("lifecycle");
            if in_no_code {
                flows.push("no-code-builders");
            }
        }
        "user.lifecycle.activate" => flows.push("lifecycle"),
        "user.session.start" if event["outcome"]["result"] == "FAILURE" => {
            flows.push("failed-logins")
        }
        _ => {}
    }
    flows
}

/// All runs in the store as (flow, event uuid) → count.
async fn runs_by_event(server: &TestServer) -> BTreeMap<(String, String), usize> {
    let page: Value = server.get_json("/api/runs?limit=500").await;
    let runs = page["runs"].as_array().expect("runs");
    assert!(page["nextCursor"].is_null(), "more than one page of runs");
    let mut counts = BTreeMap::new();
    for run in runs {
        assert_eq!(run["trigger"]["kind"], "event", "{run}");
        let key = (
            run["flow"].as_str().unwrap().to_owned(),
            run["trigger"]["event_uuid"].as_str().unwrap().to_owned(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

fn expected_runs(events: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut expected = BTreeMap::new();
    for event in events {
        for flow in expected_flows(event) {
            expected.insert(
                (flow.to_owned(), event["uuid"].as_str().unwrap().to_owned()),
                1,
            );
        }
    }
    expected
}

fn delivery(events: Vec<Value>) -> Value {
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/whoTest",
        "eventId": "3f1c2b9e-0000-4000-8000-000000000001",
        "eventTime": "2025-03-26T21:05:33.000Z",
        "contentType": "application/json",
        "data": { "events": events },
    })
}

#[tokio::test]
async fn verification_echoes_the_challenge_in_any_header_case() {
    let server = server().await;
    let url = server.url("/hooks/okta");
    for header in [
        "x-okta-verification-challenge",
        "X-Okta-Verification-Challenge",
        "X-OKTA-VERIFICATION-CHALLENGE",
    ] {
        let response = server
            .http
            .get(&url)
            .header(header, "chal-123_abc")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{header}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"verification": "chal-123_abc"}), "{header}");
    }
    let missing = server.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-okta-verification-challenge")
    );
    // And the way Okta itself does it.
    sim()
        .await
        .verify_event_hook(&url, SECRET)
        .await
        .expect("okta-sim verifies the hook");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_refused_and_starts_nothing() {
    let server = server().await;
    let url = server.url("/hooks/okta");
    let body = delivery(vec![event(
        "e1",
        "user.lifecycle.activate",
        "SUCCESS",
        None,
    )]);
    for auth in [
        None,
        Some(""),
        Some("okta-hook-7f3a9"),
        Some("Bearer okta-hook-7f3a9c"),
    ] {
        let mut request = server.http.post(&url).json(&body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unauthorized");
    }
    let report = sim()
        .await
        .deliver_events(
            &url,
            "not-the-secret",
            vec![event("e2", "user.lifecycle.activate", "SUCCESS", None)],
            10,
        )
        .await;
    assert!(!report.all_delivered());
    assert_eq!(report.attempts(), 1, "a 401 is not retried by Okta");
    assert_eq!(server.run_count().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn malformed_deliveries_are_400_with_a_json_error_and_start_nothing() {
    let server = server().await;
    let url = server.url("/hooks/okta");
    let cases: [(&str, &str); 5] = [
        ("{not json", "malformed JSON body"),
        ("[]", "the delivery must be a JSON object"),
        (
            r#"{"eventType":"com.okta.event_hook"}"#,
            "the delivery has no `data` object",
        ),
        (r#"{"data":{"events":"x"}}"#, "`data.events` must be a list"),
        (
            r#"{"data":{"events":[{"uuid":"ok1","eventType":"user.lifecycle.activate"},{"eventType":"user.lifecycle.activate"}]}}"#,
            "`data.events[1].uuid` must be non-empty text",
        ),
    ];
    for (body, message) in cases {
        let response = server
            .http
            .post(&url)
            .header("authorization", SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "bad_request");
        let text = error["error"]["message"].as_str().unwrap();
        assert!(text.starts_with(message), "{body}: {text}");
    }
    assert_eq!(
        server.run_count().await,
        0,
        "a bad batch starts none of its events"
    );
    server.stop().await;
}

#[tokio::test]
async fn events_start_runs_only_for_subscribed_flows_whose_filter_passes() {
    let server = server().await;
    let url = server.url("/hooks/okta");
    let events = vec![
        event(
            "add-nocode",
            "group.user_membership.add",
            "SUCCESS",
            Some("No-Code Builders"),
        ),
        event(
            "add-other",
            "group.user_membership.add",
            "SUCCESS",
            Some("Finance"),
        ),
        event("activate", "user.lifecycle.activate", "SUCCESS", None),
        event("login-ok", "user.session.start", "SUCCESS", None),
        event("login-bad", "user.session.start", "FAILURE", None),
        event("nobody", "user.lifecycle.deactivate", "SUCCESS", None),
    ];
    let deployed: Value = server.get_json("/api/flows").await;
    let broken = deployed["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "broken-filter");
    assert_eq!(
        broken.map(|f| f["trigger"].clone()),
        Some(json!("event")),
        "deployed and listening"
    );
    let report = sim()
        .await
        .deliver_events(&url, SECRET, events.clone(), 10)
        .await;
    assert!(report.all_delivered(), "{report:?}");
    assert_eq!(report.attempts(), 1);
    let runs = runs_by_event(&server).await;
    let expected: BTreeMap<(String, String), usize> = [
        ("lifecycle", "add-nocode"),
        ("no-code-builders", "add-nocode"),
        ("lifecycle", "add-other"),
        ("lifecycle", "activate"),
        ("failed-logins", "login-bad"),
    ]
    .into_iter()
    .map(|(f, u)| ((f.to_owned(), u.to_owned()), 1))
    .collect();
    assert_eq!(runs, expected, "broken-filter and plain never run");

    // The run sees the event and the envelope without its event list, and it runs to the end.
    let list: Value = server.get_json("/api/runs?flow=no-code-builders").await;
    let id = list["runs"][0]["id"].as_str().unwrap().to_owned();
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    assert_eq!(run.input["event"], events[0]);
    assert_eq!(run.input["delivery"]["eventType"], "com.okta.event_hook");
    assert_eq!(run.input["delivery"]["data"], json!({}));
    assert_eq!(
        run.trigger,
        domain::run::TriggerInfo::Event(domain::run::EventStart {
            event_uuid: "add-nocode".into(),
            event_type: "group.user_membership.add".into()
        })
    );
    assert_eq!(run.output.unwrap()["body"], "welcome admin@example.com");
    server.stop().await;
}

#[tokio::test]
async fn deliveries_with_no_matching_flow_are_still_acknowledged() {
    let server = server().await;
    let url = server.url("/hooks/okta");
    for events in [
        vec![],
        vec![event("x1", "user.account.lock", "SUCCESS", None)],
    ] {
        let response = server
            .http
            .post(&url)
            .header("authorization", SECRET)
            .json(&delivery(events))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["started"], 0);
    }
    assert_eq!(server.run_count().await, 0);
    server.stop().await;
}

/// A tiny deterministic generator (64-bit LCG) so the shuffle is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % bound as u64).unwrap()
    }
}

#[tokio::test]
async fn every_batch_twice_plus_random_duplicates_yields_exactly_one_run_per_event_and_flow() {
    let server = server().await;
    let url = server.url("/hooks/okta");
    let sim = sim().await;
    let kinds = [
        (
            "group.user_membership.add",
            "SUCCESS",
            Some("No-Code Builders"),
        ),
        ("group.user_membership.add", "SUCCESS", Some("Sales")),
        ("user.lifecycle.activate", "SUCCESS", None),
        ("user.session.start", "FAILURE", None),
        ("user.session.start", "SUCCESS", None),
        ("user.lifecycle.deactivate", "SUCCESS", None),
    ];
    let unique: Vec<Value> = (0..60)
        .map(|i| {
            let (kind, result, group) = kinds[i % kinds.len()];
            event(&format!("evt-{i:03}"), kind, result, group)
        })
        .collect();
    let mut rng = Lcg(0x1df1_0e55);
    let mut stream: Vec<Value> = unique.clone();
    for _ in 0..40 {
        stream.push(unique[rng.next(unique.len())].clone());
    }
    for i in (1..stream.len()).rev() {
        stream.swap(i, rng.next(i + 1));
    }
    // Okta's at-least-once delivery: the whole stream twice, the copies racing each other.
    let (first, second) = tokio::join!(
        sim.deliver_events(&url, SECRET, stream.clone(), 7),
        sim.deliver_events(&url, SECRET, stream.clone(), 7),
    );
    assert!(
        first.all_delivered() && second.all_delivered(),
        "{first:?} {second:?}"
    );
    // And a late retry of one batch on its own.
    let retry = sim
        .deliver_events(&url, SECRET, stream[..7].to_vec(), 7)
        .await;
    assert!(retry.all_delivered());

    let runs = runs_by_event(&server).await;
    let expected = expected_runs(&unique);
    assert!(
        expected.len() > 40,
        "the stream exercises many (event, flow) pairs"
    );
    assert_eq!(runs, expected);
    let flows: BTreeSet<&str> = runs.keys().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        flows,
        BTreeSet::from(["failed-logins", "lifecycle", "no-code-builders"])
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flow_deployed_later_receives_events_once_the_flows_are_reloaded() {
    let server = server().await;
    let url = server.url("/hooks/okta");
    let sim = sim().await;
    let first = sim
        .deliver_events(
            &url,
            SECRET,
            vec![event("before", "user.account.lock", "SUCCESS", None)],
            10,
        )
        .await;
    assert!(first.all_delivered());
    assert_eq!(server.run_count().await, 0);

    let flows_dir = server.dir.0.join("flows");
    std::fs::write(
        flows_dir.join("locked.yaml"),
        "name: locked\ntrigger: { event: { okta: [user.account.lock] } }\nsteps:\n  - card: text.compose\n    with: { text: locked }\n",
    )
    .unwrap();
    let runtime = server.runtime();
    let project = domain::flowfile::load_dir(&flows_dir);
    runtime.deploy(&project).await.unwrap();

    let second = sim
        .deliver_events(
            &url,
            SECRET,
            vec![event("after", "user.account.lock", "SUCCESS", None)],
            10,
        )
        .await;
    assert!(second.all_delivered());
    let runs = runs_by_event(&server).await;
    assert_eq!(
        runs,
        BTreeMap::from([(("locked".to_owned(), "after".to_owned()), 1)])
    );
    server.stop().await;
}
