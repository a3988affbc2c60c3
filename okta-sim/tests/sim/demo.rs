//! The demo org (`--demo`): what it holds, that seed 004's System Log search finds its failed
//! sign-ins, that its live activity reaches an event hook as it happens, and the binary's flags.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::Duration;
use okta_sim::{SimHandle, WebhookSink};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Api, array, builder, t0};

async fn demo() -> SimHandle {
    let (builder, _) = builder();
    builder.demo().start().await.expect("demo sim starts")
}

/// Percent-encodes a query value (spaces and quotes are all the System Log filters here hold).
fn encode(text: &str) -> String {
    text.replace(' ', "%20").replace('"', "%22")
}

/// `GET /api/v1/logs` between two instants with a filter, every page.
async fn search(
    api: &Api,
    since: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
    filter: &str,
) -> Vec<Value> {
    let path = format!(
        "/api/v1/logs?since={}&until={}&filter={}&limit=5",
        okta_sim::okta_time(since),
        okta_sim::okta_time(until),
        encode(filter)
    );
    api.collect_pages(&path, array).await.0
}

const FAILED_SIGN_INS: &str =
    r#"eventType eq "user.session.start" and outcome.result eq "FAILURE""#;

#[tokio::test]
async fn seed_004s_search_finds_the_last_days_failed_sign_ins() {
    let sim = demo().await;
    let api = Api::ssws(&sim);
    // Exactly what the failed-logins flow asks: the 24 hours before its scheduled time.
    let day = search(&api, t0() - Duration::hours(24), t0(), FAILED_SIGN_INS).await;
    assert_eq!(day.len(), 8, "{day:#?}");
    let mut users: Vec<&str> = day
        .iter()
        .map(|e| e["actor"]["alternateId"].as_str().unwrap_or_default())
        .collect();
    users.dedup();
    assert_eq!(
        users,
        [
            "ada.lovelace@example.com",
            "alan.turing@example.com",
            "katherine.johnson@example.com",
            "kim.park@example.com",
            "root@example.com",
            "ada.lovelace@example.com",
        ],
        "oldest first"
    );
    for event in &day {
        assert_eq!(event["outcome"]["result"], "FAILURE");
        assert_eq!(event["severity"], "WARN");
        assert_eq!(event["legacyEventType"], "core.user_auth.login_failed");
        let reason = event["outcome"]["reason"].as_str().unwrap_or_default();
        assert!(
            ["INVALID_CREDENTIALS", "VERIFICATION_ERROR"].contains(&reason),
            "{reason}"
        );
        assert!(
            event["client"]["ipAddress"]
                .as_str()
                .is_some_and(|ip| !ip.is_empty())
        );
        assert!(event["uuid"].as_str().is_some_and(|u| u.len() == 36));
    }
    // Older failures exist, outside the window; successes are never counted.
    let three_days = search(&api, t0() - Duration::hours(72), t0(), FAILED_SIGN_INS).await;
    assert_eq!(three_days.len(), 11);
    let all_sign_ins = search(
        &api,
        t0() - Duration::hours(24),
        t0(),
        r#"eventType eq "user.session.start""#,
    )
    .await;
    assert_eq!(
        all_sign_ins.len() - day.len(),
        6,
        "six successful sign-ins in the day"
    );
}

#[tokio::test]
async fn the_demo_org_has_people_groups_apps_and_access_requests() {
    let sim = demo().await;
    let api = Api::ssws(&sim);
    let users = array(&api.get("/api/v1/users?limit=200").await.body);
    assert_eq!(users.len(), 11);
    let status = |login: &str| {
        users
            .iter()
            .find(|u| u["profile"]["login"] == login)
            .map(|u| u["status"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        status("ken.thompson@example.com").as_deref(),
        Some("STAGED"),
        "the new hire"
    );
    assert_eq!(
        status("kim.park@example.com").as_deref(),
        Some("LOCKED_OUT"),
        "three failures in a row"
    );
    assert_eq!(
        status("ada.lovelace@example.com").as_deref(),
        Some("ACTIVE")
    );
    // What request enrichment (seed 001) posts about a requester.
    let kim = sim.user("kim.park@example.com").expect("kim");
    assert_eq!(kim["profile"]["title"], "Financial Analyst");
    assert_eq!(kim["profile"]["department"], "Finance");
    assert_eq!(kim["profile"]["manager"], "Lee Chen");

    let groups: BTreeSet<String> = array(&api.get("/api/v1/groups").await.body)
        .iter()
        .filter_map(|g| g["profile"]["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        groups,
        [
            "Engineering",
            "Everyone",
            "Finance",
            "No-Code Builders",
            "Sales",
            "Security"
        ]
        .map(str::to_owned)
        .into()
    );
    let builders = sim.group_id("No-Code Builders").expect("group");
    let grace = sim.user("grace.hopper@example.com").expect("grace")["id"].clone();
    assert_eq!(
        sim.group_members(&builders),
        vec![grace.as_str().unwrap_or_default().to_owned()]
    );

    let requests = array(&api.get("/governance/api/v1/requests").await.body["data"]);
    let subjects: BTreeSet<&str> = requests
        .iter()
        .filter_map(|r| r["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["Building access", "Laptop upgrade"].into());
    assert_eq!(
        api.get("/governance/api/v2/requests").await.body["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // The history holds activations and group additions (No-Code Builders among them), a lockout
    // and a breached credential; the live activity is not there until it is played.
    let events = sim.events();
    let count = |event_type: &str| {
        events
            .iter()
            .filter(|e| e["eventType"] == event_type)
            .count()
    };
    assert_eq!(count("user.lifecycle.create"), 11);
    assert_eq!(count("user.lifecycle.activate"), 10);
    assert_eq!(count("user.account.lock"), 1);
    assert_eq!(count("security.breached_credential.detected"), 1);
    assert_eq!(count("access.request.create"), 0);
    assert!(events.iter().any(|e| {
        e["eventType"] == "group.user_membership.add"
            && e["target"]
                .as_array()
                .is_some_and(|t| t.iter().any(|x| x["displayName"] == "No-Code Builders"))
    }));
}

/// An event hook receiver that records each delivery's events.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    async fn verify(headers: HeaderMap) -> impl IntoResponse {
        let challenge = headers
            .get("x-okta-verification-challenge")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        axum::Json(json!({ "verification": challenge }))
    }
    async fn receive(
        State(received): State<Arc<Mutex<Vec<Value>>>>,
        body: String,
    ) -> impl IntoResponse {
        let envelope: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let events = envelope["data"]["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        received.lock().expect("received").extend(events);
        axum::http::StatusCode::OK
    }
    let app = Router::new()
        .route("/hooks/okta", get(verify).post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hooks/okta", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, received)
}

#[tokio::test]
async fn the_live_activity_reaches_a_verified_hook_as_it_happens() {
    let sim = demo().await;
    let (url, received) = receiver().await;
    sim.verify_event_hook(&url, "hook-secret")
        .await
        .expect("verified");
    let mut hook = sim.forward_events(&url, "hook-secret");

    let played = sim.play_demo_activity();
    let mut delivered = 0;
    while delivered < played.len() {
        let batch = hook.next_report().await.expect("a report");
        assert!(batch.outcome.is_ok(), "{batch:?}");
        delivered += batch.events;
    }
    let events = received.lock().expect("received").clone();
    let uuids: Vec<&str> = events.iter().filter_map(|e| e["uuid"].as_str()).collect();
    assert_eq!(
        uuids, played,
        "the activity, in order, and none of the history before the hook"
    );
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "user.lifecycle.activate",
            "group.user_membership.add",
            "group.user_membership.add",
            "security.breached_credential.detected",
            "access.request.create",
            "access.request.create",
            "access.request.create",
        ]
    );
    assert_eq!(
        events[0]["target"][0]["alternateId"],
        "ken.thompson@example.com"
    );
    assert!(events[2]["target"].as_array().is_some_and(|t| {
        t.iter()
            .any(|x| x["type"] == "UserGroup" && x["displayName"] == "No-Code Builders")
    }));
    assert_eq!(
        events[3]["actor"]["alternateId"],
        "katherine.johnson@example.com"
    );
    assert_eq!(events[3]["severity"], "WARN");
    // Each access request event names a request the governance API knows, with its subject.
    let api = Api::ssws(&sim);
    let mut subjects = Vec::new();
    for event in &events[4..] {
        let data = &event["debugContext"]["debugData"];
        let id = data["accessRequestId"].as_str().expect("accessRequestId");
        let version = if id.starts_with("req") { "v2" } else { "v1" };
        assert_eq!(
            api.get(&format!("/governance/api/{version}/requests/{id}"))
                .await
                .status,
            200
        );
        assert_eq!(data["requesterId"], event["actor"]["id"]);
        subjects.push(
            data["accessRequestSubject"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    subjects.sort();
    assert_eq!(
        subjects,
        ["Building access", "Laptop upgrade", "Salesforce access"]
    );

    // What happens later is delivered too.
    let ada = sim.user("ada.lovelace@example.com").expect("ada")["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(sim.add_to_group(&sim.group_id("Finance").expect("group"), &ada));
    let batch = hook.next_report().await.expect("a report");
    assert_eq!(batch.events, 1);
    let last = received
        .lock()
        .expect("received")
        .last()
        .cloned()
        .expect("an event");
    assert_eq!(last["eventType"], "group.user_membership.add");
}

#[tokio::test]
async fn a_given_token_replaces_the_default_one() {
    let (builder, _) = builder();
    let sim = builder.token("demo-okta-token").start().await.expect("sim");
    assert_eq!(sim.api_token(), "demo-okta-token");
    assert_eq!(Api::ssws(&sim).get("/api/v1/users").await.status, 200);
    let default = format!("SSWS {}", okta_sim::DEFAULT_API_TOKEN);
    assert_eq!(
        Api::with_authorization(&sim, &default)
            .get("/api/v1/users")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn the_slack_sink_hands_over_each_message() {
    let (sender, mut messages) = tokio::sync::mpsc::unbounded_channel();
    let sink = WebhookSink::start("127.0.0.1:0".parse().expect("addr"), move |path, body| {
        let _ = sender.send((path.to_owned(), body));
    })
    .await
    .expect("sink");
    let answer = reqwest::Client::new()
        .post(format!("http://{}/slack", sink.local_addr()))
        .json(&json!({ "text": "Welcome to No-Code Builders, Ada Lovelace!" }))
        .send()
        .await
        .expect("post");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.expect("body"), "ok");
    let (path, body) = messages.recv().await.expect("a message");
    assert_eq!(path, "/slack");
    assert_eq!(body["text"], "Welcome to No-Code Builders, Ada Lovelace!");
}

/// The binary reads its token from OKTA_API_TOKEN, as idflow's `env:OKTA_API_TOKEN` does, and
/// never prints a token it was given.
#[tokio::test]
async fn the_binary_takes_the_token_from_the_environment_and_keeps_it_to_itself() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_okta-sim"))
        .args(["--demo", "--addr", "127.0.0.1:0"])
        .env("OKTA_API_TOKEN", "env-token-from-the-shell")
        .env_remove("OKTA_EVENT_HOOK_SECRET")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("okta-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .expect("read")
            .expect("okta-sim exited early");
        printed.push(line.clone());
        if let Some(url) = line.strip_prefix("okta-sim listening on ") {
            break url.trim().to_owned();
        }
    };
    // The lines printed at start, up to the demo's summary.
    loop {
        let line = lines.next_line().await.expect("read").expect("more output");
        let done = line.starts_with("demo activity:");
        printed.push(line);
        if done {
            break;
        }
    }
    let text = printed.join("\n");
    assert!(!text.contains("env-token-from-the-shell"), "{text}");
    assert!(
        text.contains("8 failed sign-ins in the last 24 hours"),
        "{text}"
    );
    let http = reqwest::Client::new();
    let users = |token: &str| {
        http.get(format!("{base}/api/v1/users"))
            .header("authorization", format!("SSWS {token}"))
            .send()
    };
    assert_eq!(
        users("env-token-from-the-shell")
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(
        users(okta_sim::DEFAULT_API_TOKEN)
            .await
            .expect("get")
            .status(),
        401
    );
    child.kill().await.ok();
}
