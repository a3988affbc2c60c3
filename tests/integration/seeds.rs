//! The seed scenarios end to end: the example flows shipped in `examples/flows/` with their table
//! files, served by an in-process `idflow serve` whose `idflow.yaml` points the `okta` connection at
//! okta-sim, the `email` connection at a real SMTP server (`aiosmtpd`, see
//! [`domain::conformance::smtp`]) and the Slack webhook at a local HTTP sink. Okta's side (event hook
//! deliveries, the System Log, access requests) is played by okta-sim; what the tests check is what a
//! user would see: the delivered mail and its CSV, the Slack messages, the table rows, the user
//! profiles and request messages in the org.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use domain::conformance::smtp::SmtpServer;
use hmac::{Hmac, Mac};
use okta_sim::{RequestSeed, Sim, SimHandle};
use serde_json::{Value, json};
use sha2::Sha256;
use tests::TestServer;

const HOOK_SECRET: &str = "seed-hook-secret-41";
const OIG_TOKEN: &str = "oig-caller-token-7";
const TYPEFORM_SECRET: &str = "typeform-secret-3";

const BADGE: &str = include_str!("../../examples/flows/badge-access.yaml");
const ENRICH: &str = include_str!("../../examples/flows/request-enrichment.yaml");
const MEMBER: &str = include_str!("../../examples/flows/is-member-of-group.yaml");
const ACTIVATED: &str = include_str!("../../examples/flows/user-activated-slack.yaml");
const BREACHED: &str = include_str!("../../examples/flows/breached-password.yaml");
const NO_CODE: &str = include_str!("../../examples/flows/no-code-builders.yaml");
const SIGNUP: &str = include_str!("../../examples/flows/signup-webhook.yaml");
const FAILED_LOGINS: &str = include_str!("../../examples/flows/failed-logins.yaml");
const FAILED_LOGINS_TABLE: &str = include_str!("../../examples/flows/tables/failed-logins.yaml");
const SETTINGS_TABLE: &str = include_str!("../../examples/flows/tables/settings.yaml");

/// What the local sink received: (path, JSON body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A tiny HTTP sink standing in for Slack's incoming webhook.
struct Sink {
    base: String,
    received: Received,
}

impl Sink {
    async fn start() -> Sink {
        let received: Received = Arc::default();
        let store = received.clone();
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::post(
                move |axum::extract::Path(path): axum::extract::Path<String>,
                      axum::Json(body): axum::Json<Value>| {
                    let store = store.clone();
                    async move {
                        store.lock().expect("sink").push((path, body));
                        axum::Json(json!({ "ok": true }))
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("sink binds");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sink { base, received }
    }

    fn at(&self, path: &str) -> Vec<Value> {
        let received = self.received.lock().expect("sink");
        received
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

/// The project config the tests use: the examples' shape, pointed at the simulator, the sink and
/// (when given) the SMTP server.
fn config(sim: &SimHandle, sink: &Sink, smtp: Option<&SmtpServer>) -> String {
    let email = smtp.map_or(String::new(), |smtp| {
        format!(
            "  email:\n    from: \"idflow <idflow@example.com>\"\n    smtp: {{ host: 127.0.0.1, port: {}, tls: none }}\n",
            smtp.port
        )
    });
    format!(
        r#"
connections:
  okta:
    domain: "{okta}"
    auth: {{ type: ssws, token: "file:./okta.token" }}
{email}hooks:
  okta: {{ secret: "file:./hook.secret" }}
callers:
  okta-access-requests: {{ token: "file:./oig.token" }}
secrets:
  okta-api-token: "file:./okta.token"
# The Slack webhook sink, and okta-sim as request-enrichment's settings table spells it (`localhost`;
# as the `okta` connection spells it, 127.0.0.1, it is trusted already).
egress:
  allow: ["{sink_host}", "localhost:{sim_port}"]
vars:
  slackWebhook: "{sink}/slack"
  securityEmail: security@example.com
  enrichedRequestSubjects: [Building access]
"#,
        okta = sim.base_url(),
        sink = sink.base,
        sink_host = sink.base.trim_start_matches("http://"),
        sim_port = sim
            .base_url()
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .unwrap_or_default(),
    )
}

/// Serves `flows` (file name, content) with the test config and secrets.
async fn serve(sim: &SimHandle, sink: &Sink, flows: &[(&str, &str)]) -> TestServer {
    serve_with_mail(sim, sink, None, flows).await
}

/// The same, with the `email` connection pointed at `smtp`.
async fn serve_with_mail(
    sim: &SimHandle,
    sink: &Sink,
    smtp: Option<&SmtpServer>,
    flows: &[(&str, &str)],
) -> TestServer {
    let config = config(sim, sink, smtp);
    let mut files: Vec<(&str, &str)> = vec![
        ("idflow.yaml", &config),
        ("okta.token", sim.api_token()),
        ("hook.secret", HOOK_SECRET),
        ("oig.token", OIG_TOKEN),
        ("typeform.secret", TYPEFORM_SECRET),
    ];
    files.extend_from_slice(flows);
    TestServer::start(&files).await
}

async fn sim(builder: okta_sim::SimBuilder) -> SimHandle {
    builder.start().await.expect("okta-sim starts")
}

/// Every run of `flow`, following the cursor.
async fn runs_of(server: &TestServer, flow: &str) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = server
            .get_json(&format!("/api/runs?flow={flow}&limit=500&cursor={cursor}"))
            .await;
        runs.extend(page["runs"].as_array().cloned().unwrap_or_default());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return runs,
        }
    }
}

/// Waits for every run of `flow` to end and returns their statuses and outputs.
async fn ended_runs(server: &TestServer, flow: &str) -> Vec<domain::run::Run> {
    let mut ended = Vec::new();
    for run in runs_of(server, flow).await {
        ended.push(server.wait_run(run["id"].as_str().expect("id")).await);
    }
    ended
}

/// Delivers System Log events to the server's hook the way Okta does.
async fn deliver(sim: &SimHandle, server: &TestServer, events: Vec<Value>) {
    let report = sim
        .deliver_events(&server.url("/hooks/okta"), HOOK_SECRET, events, 10)
        .await;
    assert!(report.all_delivered(), "{report:?}");
}

/// The System Log event with this uuid, as the simulator completed it.
fn logged(sim: &SimHandle, uuid: &str) -> Value {
    sim.events()
        .into_iter()
        .find(|e| e["uuid"] == uuid)
        .expect("event in the System Log")
}

/// Waits for a condition on something the server does after a run has ended (the access request
/// report); bounded, checked every 10 ms.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    for _ in 0..500 {
        if let Some(value) = check() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 5 s");
}

fn kim() -> Value {
    json!({
        "login": "kim.park@example.com", "email": "kim.park@example.com", "firstName": "Kim",
        "lastName": "Park", "title": "Analyst", "department": "Finance", "manager": "Lee Chen",
    })
}

#[tokio::test]
async fn badge_access_mails_the_assignee_and_reports_to_the_request() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let sim = sim(Sim::builder()).await;
    let sink = Sink::start().await;
    sim.create_user(kim()).expect("user");
    let request = sim.seed_request_v2(RequestSeed {
        subject: "Building access".into(),
        ..RequestSeed::default()
    });
    let server = serve_with_mail(&sim, &sink, Some(&smtp), &[("badge-access.yaml", BADGE)]).await;

    let response = server
        .http
        .post(server.url("/api/delegated/flows/badge-access/run"))
        .bearer_auth(OIG_TOKEN)
        .json(&json!({
            "requesterEmail": "kim.park@example.com",
            "buildingRequested": "Building 7",
            "businessJustification": "Moving teams",
            "assigneeEmail": "badges@example.com",
            "endDate": "2026-03-31T17:00:00Z",
            "accessRequestId": request,
        }))
        .send()
        .await
        .expect("run");
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.expect("json");
    let run = server
        .wait_run(body["runId"].as_str().expect("runId"))
        .await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);

    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["rcpt_tos"], json!(["badges@example.com"]));
    assert_eq!(mail[0]["mail_from"], "idflow@example.com");
    assert_eq!(mail[0]["headers"]["To"], "badges@example.com");
    assert_eq!(
        mail[0]["headers"]["Subject"],
        "Badge access: Building 7 for Kim Park"
    );
    let text = mail[0]["text"].as_str().expect("text");
    assert!(
        text.contains(
            "Kim Park (kim.park@example.com) needs badge access to Building 7 until 31 March 2026."
        ),
        "{text}"
    );
    assert!(text.contains("Justification: Moving teams"), "{text}");

    let messages = eventually("the report to the access request", || {
        let messages = sim.request_messages(&request);
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0].message;
    assert!(message.contains("succeeded"), "{message}");
    assert!(message.contains("Emailed badges@example.com"), "{message}");

    // A caller that is not listed is refused and starts nothing.
    let refused = server
        .http
        .post(server.url("/api/delegated/flows/badge-access/run"))
        .bearer_auth("not-a-caller")
        .json(&json!({}))
        .send()
        .await
        .expect("run");
    assert_eq!(refused.status(), 401);
    assert_eq!(runs_of(&server, "badge-access").await.len(), 1);
    server.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn request_enrichment_posts_the_profile_on_chosen_requests_only() {
    let sim = sim(Sim::builder()).await;
    let sink = Sink::start().await;
    let requester = sim.create_user(kim()).expect("user");
    let seed = |subject: &str| RequestSeed {
        subject: subject.into(),
        requester: Some(requester.clone()),
        ..RequestSeed::default()
    };
    let early = sim.seed_request_v1(seed("Building access"));
    let building_v1 = sim.seed_request_v1(seed("Building access"));
    let building_v2 = sim.seed_request_v2(seed("Building access"));
    let laptop = sim.seed_request_v1(seed("Laptop upgrade"));
    // The System Log events OIG writes, with both spellings of the debug data.
    let event = |debug: Value| {
        let uuid = sim.inject_event(json!({
            "eventType": "access.request.create",
            "displayMessage": "Access request created",
            "actor": { "id": requester, "type": "User", "alternateId": "kim.park@example.com", "displayName": "Kim Park" },
            "debugContext": { "debugData": debug },
        }));
        logged(&sim, &uuid)
    };
    let server = serve(
        &sim,
        &sink,
        &[
            ("request-enrichment.yaml", ENRICH),
            ("tables/settings.yaml", SETTINGS_TABLE),
        ],
    )
    .await;

    // Before the settings table holds the Okta domain, the flow stops there and posts nothing.
    deliver(
        &sim,
        &server,
        vec![event(
            json!({ "accessRequestId": early, "accessRequestSubject": "Building access", "requesterId": requester }),
        )],
    )
    .await;
    let runs = ended_runs(&server, "request-enrichment").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status.as_str(), "failed");
    let error = runs[0].error.as_ref().expect("error");
    assert_eq!(error.step.as_deref(), Some("setting"), "{error:?}");
    assert!(sim.request_messages(&early).is_empty());

    // The domain as the table gives it: okta-sim's address, spelled `localhost` where the `okta`
    // connection says 127.0.0.1, so the URL the flow called shows where its domain came from.
    let port = sim
        .base_url()
        .rsplit(':')
        .next()
        .expect("port")
        .trim_end_matches('/')
        .to_owned();
    let domain = format!("http://localhost:{port}");
    server
        .table(
            "table.create_row",
            json!({ "table": "settings", "row": { "name": "okta_domain", "value": domain } }),
        )
        .await
        .expect("the settings row");
    let events = vec![
        event(
            json!({ "accessRequestId": building_v1, "accessRequestSubject": "Building access", "requesterId": requester }),
        ),
        event(
            json!({ "access_request_id": building_v2, "access_request_subject": "Building access", "requester_id": requester }),
        ),
        event(
            json!({ "accessRequestId": laptop, "accessRequestSubject": "Laptop upgrade", "requesterId": requester }),
        ),
    ];
    deliver(&sim, &server, events).await;

    let runs = ended_runs(&server, "request-enrichment").await;
    assert_eq!(
        runs.len(),
        3,
        "the early run and the Building access requests"
    );
    let succeeded: Vec<_> = runs
        .iter()
        .filter(|r| r.status.as_str() == "succeeded")
        .collect();
    assert_eq!(succeeded.len(), 2, "{runs:?}");
    let mut urls = Vec::new();
    for run in &succeeded {
        let json = server.run_json(&run.id.to_string()).await;
        let posted = json["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["step"] == "posted")
            .cloned()
            .expect("the posted step");
        urls.push(posted["input"]["url"].as_str().expect("url").to_owned());
        assert!(
            !json.to_string().contains(sim.api_token()),
            "the API token stays out of history"
        );
    }
    urls.sort();
    let mut expected_urls = vec![
        format!("{domain}/governance/api/v1/requests/{building_v1}/messages"),
        format!("{domain}/governance/api/v2/requests/{building_v2}/messages"),
    ];
    expected_urls.sort();
    assert_eq!(
        urls, expected_urls,
        "the URLs use the domain from the table"
    );
    let expected = "About the requester:\nName: Kim Park\nTitle: Analyst\nDepartment: Finance\nManager: Lee Chen";
    for request in [&building_v1, &building_v2] {
        let messages: Vec<String> = sim
            .request_messages(request)
            .into_iter()
            .map(|m| m.message)
            .collect();
        assert_eq!(messages, vec![expected.to_owned()], "{request}");
        assert_eq!(expected.lines().count(), 5);
    }
    assert!(sim.request_messages(&laptop).is_empty());
    assert!(sim.request_messages(&early).is_empty());
    server.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn is_member_of_group_changes_only_that_attribute() {
    let sim = sim(Sim::builder().seed_users(3).group("Engineering")).await;
    let sink = Sink::start().await;
    let group = sim.group_id("Engineering").expect("group");
    let before = sim.user("user2@example.com").expect("user");
    assert!(before["profile"].get("isMemberOfGroup").is_none());
    assert!(sim.add_to_group(&group, "user2@example.com"));
    let added = sim
        .events()
        .into_iter()
        .filter(|e| e["eventType"] == "group.user_membership.add")
        .collect::<Vec<_>>();
    assert_eq!(added.len(), 1);
    let server = serve(&sim, &sink, &[("is-member-of-group.yaml", MEMBER)]).await;
    deliver(&sim, &server, added).await;

    let runs = ended_runs(&server, "is-member-of-group").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status.as_str(), "succeeded", "{:?}", runs[0].error);
    let after = sim.user("user2@example.com").expect("user");
    let mut expected = before["profile"].clone();
    expected["isMemberOfGroup"] = json!(true);
    assert_eq!(after["profile"], expected, "only isMemberOfGroup changed");
    let untouched = sim.user("user1@example.com").expect("user");
    assert!(untouched["profile"].get("isMemberOfGroup").is_none());
    server.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn slack_messages_for_activation_breached_password_and_no_code_builders() {
    let sim = sim(Sim::builder()
        .seed_users(2)
        .group("No-Code Builders")
        .group("Finance"))
    .await;
    let sink = Sink::start().await;
    let user = sim.user("user1@example.com").expect("user");
    let user_id = user["id"].as_str().expect("id").to_owned();
    let target = json!([{ "id": user_id, "type": "User", "alternateId": "user1@example.com", "displayName": "Ada Lovelace" }]);
    let admin = json!({ "id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Org Admin" });
    let activated = sim.inject_event(json!({
        "eventType": "user.lifecycle.activate", "actor": admin, "target": target,
    }));
    let breached = sim.inject_event(json!({
        "eventType": "security.breached_credential.detected", "severity": "WARN",
        "actor": target[0], "client": { "ipAddress": "198.51.100.7" },
    }));
    assert!(sim.add_to_group(&sim.group_id("Finance").expect("group"), &user_id));
    assert!(sim.add_to_group(&sim.group_id("No-Code Builders").expect("group"), &user_id));
    let events = sim.events();
    assert_eq!(events.len(), 4);
    let server = serve(
        &sim,
        &sink,
        &[
            ("user-activated-slack.yaml", ACTIVATED),
            ("breached-password.yaml", BREACHED),
            ("no-code-builders.yaml", NO_CODE),
        ],
    )
    .await;
    deliver(&sim, &server, events.clone()).await;
    for flow in [
        "user-activated-slack",
        "breached-password",
        "no-code-builders",
    ] {
        let runs = ended_runs(&server, flow).await;
        assert_eq!(
            runs.len(),
            1,
            "{flow}: one run (the Finance add is filtered out)"
        );
        assert_eq!(
            runs[0].status.as_str(),
            "succeeded",
            "{flow}: {:?}",
            runs[0].error
        );
    }
    let mut texts: Vec<String> = sink
        .at("slack")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    texts.sort();
    let published = logged(&sim, &breached)["published"]
        .as_str()
        .expect("published")
        .to_owned();
    let _ = activated;
    assert_eq!(
        texts,
        vec![
            ":rotating_light: A breached credential was used by Ada Lovelace (user1@example.com) from 198.51.100.7 at {published}. Rotate it."
                .replace("{published}", &published),
            ":white_check_mark: Ada Lovelace (user1@example.com) was activated by Org Admin".to_owned(),
            format!(
                "Welcome to No-Code Builders, {}!",
                events[3]["target"]
                    .as_array()
                    .and_then(|t| t.iter().find(|x| x["type"] == "User"))
                    .and_then(|u| u["displayName"].as_str())
                    .unwrap_or_default()
            ),
        ]
    );
    server.stop().await;
    sim.shutdown().await;
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(TYPEFORM_SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

#[tokio::test]
async fn a_signed_typeform_submission_creates_the_okta_user() {
    let sim = sim(Sim::builder()).await;
    let sink = Sink::start().await;
    let flow = SIGNUP.replace("env:TYPEFORM_SECRET", "file:./typeform.secret");
    let server = serve(&sim, &sink, &[("signup-webhook.yaml", &flow)]).await;
    let url = server.url("/api/flows/signup-webhook/invoke");
    let body = json!({ "form_response": { "answers": [
        { "field": { "ref": "email" }, "email": "ada.l@example.com" },
        { "field": { "ref": "first_name" }, "text": "Ada" },
        { "field": { "ref": "last_name" }, "text": "Lovelace" },
    ] } })
    .to_string();

    let forged = server
        .http
        .post(&url)
        .header("typeform-signature", sign("{}"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 401);

    let response = server
        .http
        .post(&url)
        .header("typeform-signature", sign(&body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("json");
    let run = server
        .wait_run(accepted["runId"].as_str().expect("runId"))
        .await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    let user = sim
        .user("ada.l@example.com")
        .expect("the user exists in Okta");
    assert_eq!(user["profile"]["firstName"], "Ada");
    assert_eq!(user["profile"]["lastName"], "Lovelace");
    assert_eq!(runs_of(&server, "signup-webhook").await.len(), 1);
    server.stop().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn the_daily_search_saves_exports_and_mails_the_last_24_hours_of_failed_logins() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let sim = sim(Sim::builder()).await;
    let sink = Sink::start().await;
    let now = chrono::Utc::now();
    let login = |who: &str, result: &str, hours_ago: i64| {
        sim.inject_event(json!({
            "eventType": "user.session.start",
            "published": okta_sim::okta_time(now - chrono::Duration::hours(hours_ago)),
            "actor": { "id": format!("00u{who}"), "type": "User", "alternateId": format!("{who}@example.com"), "displayName": who },
            "outcome": { "result": result, "reason": if result == "FAILURE" { "INVALID_CREDENTIALS" } else { "" } },
            "client": { "ipAddress": if who == "ada" { "203.0.113.9" } else { "198.51.100.4" } },
        }))
    };
    login("ada", "FAILURE", 30); // too old
    let failures = [
        login("ada", "FAILURE", 20),
        login("bob", "FAILURE", 5),
        login("ada", "FAILURE", 1),
    ];
    login("bob", "SUCCESS", 10);
    let server = serve_with_mail(
        &sim,
        &sink,
        Some(&smtp),
        &[
            ("failed-logins.yaml", FAILED_LOGINS),
            ("tables/failed-logins.yaml", FAILED_LOGINS_TABLE),
        ],
    )
    .await;
    let scheduled_for = (now + chrono::Duration::minutes(1)).to_rfc3339();
    let run_once = || async {
        let id = server
            .start_run("failed-logins", &json!({ "scheduled_for": scheduled_for }))
            .await;
        server.wait_run(&id).await
    };
    let run = run_once().await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    let body = &run.output.expect("output")["body"];
    assert_eq!(body["failures"], 3, "{body}");
    assert_eq!(body["users"], json!(["ada@example.com", "bob@example.com"]));
    assert_eq!(body["rows"][0]["reason"], "INVALID_CREDENTIALS");

    // The rows are in the table afterwards, one per failed sign-in, keyed by the event's uuid.
    let saved = server
        .table("table.search_rows", json!({ "table": "failed_logins" }))
        .await
        .expect("rows");
    let mut keys: Vec<&str> = saved["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["key"].as_str().expect("key"))
        .collect();
    keys.sort_unstable();
    let mut expected_keys: Vec<&str> = failures.iter().map(String::as_str).collect();
    expected_keys.sort_unstable();
    assert_eq!(keys, expected_keys);

    // The mail: to the security team, with the rows as a CSV attachment.
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["rcpt_tos"], json!(["security@example.com"]));
    assert_eq!(
        mail[0]["headers"]["Subject"],
        "Failed logins in the last 24 hours: 3"
    );
    let text = mail[0]["text"].as_str().expect("text");
    assert!(text.starts_with("3 failed sign-ins between "), "{text}");
    assert!(
        text.contains("by ada@example.com, bob@example.com."),
        "{text}"
    );
    let attachments = mail[0]["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{attachments:?}");
    assert_eq!(attachments[0]["filename"], "failed-logins.csv");
    assert_eq!(attachments[0]["content_type"], "text/csv");
    let csv = attachments[0]["content"].as_str().expect("csv");
    let mut lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.remove(0), "published,user,ip,reason");
    lines.sort_unstable();
    let mut expected: Vec<String> = failures
        .iter()
        .map(|uuid| {
            let event = logged(&sim, uuid);
            let published =
                domain::tables::normalize_datetime(event["published"].as_str().expect("published"))
                    .expect("a datetime");
            format!(
                "{published},{},{},INVALID_CREDENTIALS",
                event["actor"]["alternateId"].as_str().expect("login"),
                event["client"]["ipAddress"].as_str().expect("ip"),
            )
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(lines, expected, "{csv}");

    // Running the same day again replaces its rows instead of adding them twice.
    let again = run_once().await;
    assert_eq!(again.status.as_str(), "succeeded", "{:?}", again.error);
    let saved = server
        .table("table.search_rows", json!({ "table": "failed_logins" }))
        .await
        .expect("rows");
    assert_eq!(saved["rows"].as_array().map(Vec::len), Some(3));
    let mail = smtp.messages();
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[1]["attachments"][0]["content"], csv);
    server.stop().await;
    sim.shutdown().await;
}

/// okta-sim's demo org (`okta-sim --demo`, the README's demo) gives seed 004's daily search
/// something to find: the flow saves and mails the last day's failed sign-ins.
#[tokio::test]
async fn the_daily_search_saves_the_demo_orgs_failed_logins() {
    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let sim = sim(Sim::builder().demo()).await;
    let sink = Sink::start().await;
    let server = serve_with_mail(
        &sim,
        &sink,
        Some(&smtp),
        &[
            ("failed-logins.yaml", FAILED_LOGINS),
            ("tables/failed-logins.yaml", FAILED_LOGINS_TABLE),
        ],
    )
    .await;
    let scheduled_for = chrono::Utc::now().to_rfc3339();
    let id = server
        .start_run("failed-logins", &json!({ "scheduled_for": scheduled_for }))
        .await;
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    let body = &run.output.expect("output")["body"];
    assert_eq!(body["failures"], 8, "{body}");
    assert_eq!(
        body["users"],
        json!([
            "ada.lovelace@example.com",
            "alan.turing@example.com",
            "katherine.johnson@example.com",
            "kim.park@example.com",
            "root@example.com"
        ])
    );
    let saved = server
        .table("table.search_rows", json!({ "table": "failed_logins" }))
        .await
        .expect("rows");
    assert_eq!(saved["rows"].as_array().map(Vec::len), Some(8), "{saved}");
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(
        mail[0]["headers"]["Subject"],
        "Failed logins in the last 24 hours: 8"
    );
    let csv = mail[0]["attachments"][0]["content"].as_str().expect("csv");
    assert_eq!(
        csv.split("\r\n").filter(|l| !l.is_empty()).count(),
        9,
        "{csv}"
    );
    server.stop().await;
    sim.shutdown().await;
}

/// The demo org's live activity, delivered by okta-sim's event hook as it happens, starts every
/// event flow of the examples, and each does what its seed scenario says.
#[tokio::test]
async fn the_demo_orgs_activity_runs_every_event_flow() {
    let sim = sim(Sim::builder().demo()).await;
    let sink = Sink::start().await;
    let server = serve(
        &sim,
        &sink,
        &[
            ("is-member-of-group.yaml", MEMBER),
            ("user-activated-slack.yaml", ACTIVATED),
            ("breached-password.yaml", BREACHED),
            ("no-code-builders.yaml", NO_CODE),
            ("request-enrichment.yaml", ENRICH),
            ("tables/settings.yaml", SETTINGS_TABLE),
        ],
    )
    .await;
    server
        .table(
            "table.create_row",
            json!({ "table": "settings", "row": { "name": "okta_domain", "value": sim.base_url() } }),
        )
        .await
        .expect("the settings row");
    let hook_url = server.url("/hooks/okta");
    sim.verify_event_hook(&hook_url, HOOK_SECRET)
        .await
        .expect("the hook verifies");
    let mut hook = sim.forward_events(&hook_url, HOOK_SECRET);
    let played = sim.play_demo_activity();
    let mut delivered = 0;
    while delivered < played.len() {
        let batch = hook.next_report().await.expect("a delivery");
        assert!(batch.outcome.is_ok(), "{batch:?}");
        delivered += batch.events;
    }

    for (flow, count) in [
        ("is-member-of-group", 2),
        ("user-activated-slack", 1),
        ("breached-password", 1),
        ("no-code-builders", 1),
        ("request-enrichment", 1),
    ] {
        let runs = ended_runs(&server, flow).await;
        assert_eq!(runs.len(), count, "{flow}");
        for run in &runs {
            assert_eq!(run.status.as_str(), "succeeded", "{flow}: {:?}", run.error);
        }
    }
    // Seed 002: both people added to a group are marked.
    for login in ["ken.thompson@example.com", "ada.lovelace@example.com"] {
        let user = sim.user(login).expect("user");
        assert_eq!(user["profile"]["isMemberOfGroup"], true, "{login}");
    }
    // Seed 004: the new hire's activation, the breached credential and the No-Code Builders
    // welcome reach Slack; the Engineering addition does not welcome anyone.
    let mut texts: Vec<String> = sink
        .at("slack")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    texts.sort();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[0].starts_with(":rotating_light: A breached credential was used by Katherine Johnson (katherine.johnson@example.com) from 198.51.100.23 at "),
        "{texts:?}"
    );
    assert_eq!(
        texts[1],
        ":white_check_mark: Ken Thompson (ken.thompson@example.com) was activated by Sim Admin"
    );
    assert_eq!(texts[2], "Welcome to No-Code Builders, Ada Lovelace!");
    // Seed 001: the building access request gets the requester's profile; the others are not
    // among the subjects the test's config enriches.
    let api = reqwest::Client::new();
    let requests: Value = api
        .get(format!("{}/governance/api/v1/requests", sim.base_url()))
        .header("authorization", sim.ssws_header())
        .send()
        .await
        .expect("requests")
        .json()
        .await
        .expect("json");
    let mut posted = Vec::new();
    for request in requests["data"].as_array().expect("requests") {
        let id = request["id"].as_str().expect("id");
        for message in sim.request_messages(id) {
            posted.push((request["subject"].clone(), message.message));
        }
    }
    assert_eq!(
        posted,
        vec![(
            json!("Building access"),
            "About the requester:\nName: Kim Park\nTitle: Financial Analyst\nDepartment: Finance\nManager: Lee Chen".to_owned()
        )]
    );
    server.stop().await;
    sim.shutdown().await;
}
