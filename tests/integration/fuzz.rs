//! Fuzz targets of the HTTP surface (see `domain::fuzzing` for the short and long modes): Okta
//! event-hook deliveries and the API routes, as an attacker sends them.
//!
//! Requests go through `web::api::router` — the routers `idflow serve` and the Lambdas serve —
//! of a real `idflow serve` (SQLite store, worker running), in process, so every case is cheap and
//! any URI, method, header and body the HTTP types can carry is tried.
//!
//! Properties: every answer is a 2xx or a 4xx with a JSON body (`{"error": {"code", "message"}}`
//! for errors), never a 5xx and never a panic — except the documented answers of a sync flow that
//! failed or timed out, which carry the run id; and a correctly authenticated, well-formed delivery
//! starts exactly one run per (event, subscribed flow whose filter passes), and none when delivered
//! again.
//!
//! Long sessions, one target at a time:
//! `IDFLOW_FUZZ_SECS=600 cargo test -p tests --test integration fuzz::fuzz_hooks -- --nocapture`
//! (and `fuzz::fuzz_api`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use domain::fuzzing::{deep_json_text, fuzz, hostile_text, json_value, unicode_text};
use domain::run::{RunQuery, TriggerInfo};
use domain::runner::RunFilter;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use tests::TestServer;
use tower::ServiceExt;
use web::auth::AdminAccess;
use web::state::ApiState;

const HOOK_SECRET: &str = "okta-hook-fuzz-5d1c";
const CLIENT_TOKEN: &str = "client-token-fuzz-8e2b";
const CALLER_TOKEN: &str = "caller-token-fuzz-3a7f";
const ADMIN_TOKEN: &str = "admin-token-fuzz-0123456789abcdef0123";
/// The body limit of the routers under test.
const BODY_LIMIT: usize = 64 * 1024;

const CONFIG: &str = r#"
hooks:
  okta: { secret: "file:./hook.secret" }
api:
  tokens:
    greet: "file:./client.token"
callers:
  ops-bot: { token: "file:./caller.token" }
"#;

/// Listens to two event types, without a filter.
const LIFECYCLE: &str = r#"
name: lifecycle
trigger: { event: { okta: [user.lifecycle.activate, group.user_membership.add] } }
steps:
  - card: text.compose
    with: { text: "{{ input.event.eventType }}" }
"#;

/// Starts only for failed sign-ins.
const FAILED: &str = r#"
name: failed
trigger:
  event:
    okta: [user.session.start]
    filter: "{{ event.outcome.result == 'FAILURE' }}"
steps:
  - card: text.compose
    with: { text: "{{ input.event.uuid }}" }
"#;

/// Its filter fails for every event the generator makes (no event has a numeric `published`).
const BROKEN: &str = r#"
name: broken
trigger:
  event:
    okta: [user.lifecycle.activate]
    filter: "{{ event.published + 1 }}"
steps:
  - card: text.compose
    with: { text: "never" }
"#;

/// A public sync endpoint that does arithmetic on the caller's body (so bad input fails the run).
const ECHO: &str = r#"
name: echo
trigger: { api: { auth: public, respond: sync, timeout: 5s } }
steps:
  - id: n
    card: number.add
    with: { a: "{{ input.body.n }}", b: 1 }
  - card: flow.return
    with: { status: 200, body: { n: "{{ steps.n }}", query: "{{ input.query }}" } }
"#;

/// A client-token endpoint that answers at once.
const GREET: &str = r#"
name: greet
trigger: { api: { auth: token, respond: async } }
steps:
  - card: text.compose
    with: { text: "hi {{ input.body.name | default('you') }}" }
"#;

const DELEGATED: &str = r#"
name: badge
trigger:
  delegated:
    inputs:
      email: text
      until: datetime
      floors: { type: number, required: false }
    callers: [ops-bot]
steps:
  - card: text.compose
    with: { text: "{{ input.email }} until {{ input.until }}" }
"#;

async fn server() -> TestServer {
    TestServer::start(&[
        ("idflow.yaml", CONFIG),
        ("hook.secret", HOOK_SECRET),
        ("client.token", CLIENT_TOKEN),
        ("caller.token", CALLER_TOKEN),
        ("lifecycle.yaml", LIFECYCLE),
        ("failed.yaml", FAILED),
        ("broken.yaml", BROKEN),
        ("echo.yaml", ECHO),
        ("greet.yaml", GREET),
        ("badge.yaml", DELEGATED),
    ])
    .await
}

/// The routers of `server`, as `idflow serve` builds them, with or without an admin token.
fn router(server: &TestServer, admin_token: bool) -> axum::Router {
    let runtime = server.server.as_ref().expect("running").runtime.clone();
    web::router::router(ApiState {
        runtime,
        admin: match admin_token {
            true => AdminAccess::Token(Arc::from(ADMIN_TOKEN)),
            false => AdminAccess::Open,
        },
        body_limit: BODY_LIMIT,
    })
}

/// One request as generated: everything an attacker controls.
#[derive(Debug, Clone)]
struct Attempt {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// What came back.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

async fn send(router: &axum::Router, attempt: &Attempt) -> Result<Option<Answer>, TestCaseError> {
    let Ok(method) = Method::from_bytes(attempt.method.as_bytes()) else {
        return Ok(None);
    };
    // Only what HTTP can carry reaches a router: hyper refuses the rest before routing.
    let Ok(uri) = attempt.path.parse::<axum::http::Uri>() else {
        return Ok(None);
    };
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in &attempt.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(Body::from(attempt.body.clone())) else {
        return Ok(None);
    };
    let response = router
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| TestCaseError::fail(format!("the router failed: {e}")))?;
    let status = response.status().as_u16();
    STATUSES.note(status);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| TestCaseError::fail(format!("the body did not arrive: {e}")))?;
    Ok(Some(Answer {
        status,
        body: body.to_vec(),
    }))
}

/// Answers by status, and the plain-text rejections seen (by status and body), printed after each
/// target so a session's log shows what it reached.
#[derive(Default)]
struct Seen {
    statuses: std::collections::BTreeMap<u16, u64>,
}

struct Statuses(std::sync::Mutex<Option<Seen>>);

impl Statuses {
    fn with(&self, f: impl FnOnce(&mut Seen)) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(seen.get_or_insert_with(Seen::default));
    }

    fn note(&self, status: u16) {
        self.with(|seen| *seen.statuses.entry(status).or_default() += 1);
    }

    fn report(&self, target: &str) {
        self.with(|seen| {
            eprintln!(
                "fuzz target `{target}`: answers by status {:?}",
                seen.statuses
            );
            *seen = Seen::default();
        });
    }
}

static STATUSES: Statuses = Statuses(std::sync::Mutex::new(None));

/// Never a 5xx (but the documented answers of a failed or late sync flow, which name their run),
/// and every error a JSON `{"error": {"code", "message"}}`.
fn check_answer(attempt: &Attempt, answer: &Answer) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(&answer.body);
    let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
    let code = json
        .as_ref()
        .and_then(|j| j["error"]["code"].as_str())
        .unwrap_or("");
    if answer.status >= 500 {
        let sync_answer = matches!(code, "run_failed" | "timeout")
            && json.as_ref().is_some_and(|j| j["runId"].is_string());
        prop_assert!(
            sync_answer,
            "{} {} answered {}: {}",
            attempt.method,
            attempt.path,
            answer.status,
            text
        );
    }
    // A HEAD answer has no body, by HTTP's rules.
    if answer.status >= 400 && attempt.method != "HEAD" {
        let json_error = json
            .as_ref()
            .is_some_and(|j| j["error"]["code"].is_string() && j["error"]["message"].is_string());
        prop_assert!(
            json_error,
            "{} {} answered {} without a JSON error: {:?}",
            attempt.method,
            attempt.path,
            answer.status,
            text
        );
    }
    Ok(())
}

// ----- generators -----

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        proptest::sample::select(
            &[
                "content-type",
                "authorization",
                "x-api-client-token",
                "content-length",
                "transfer-encoding",
                "x-okta-verification-challenge",
                "accept",
                "host",
                "cookie",
                "x-forwarded-for",
                "content-encoding",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z][a-z0-9-]{0,15}",
    ];
    let value = prop_oneof![
        proptest::sample::select(
            &[
                "application/json",
                "application/json; charset=utf-16",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "",
                "gzip",
                "chunked",
                "Bearer ",
                "Bearer x",
                "Basic Og==",
                "99999999999999999999",
                "-1",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
        Just(HOOK_SECRET.as_bytes().to_vec()),
        Just(format!("Bearer {CALLER_TOKEN}").into_bytes()),
        Just(format!("Bearer {ADMIN_TOKEN}").into_bytes()),
        Just(CLIENT_TOKEN.as_bytes().to_vec()),
    ];
    (name, value)
}

/// A body: empty, arbitrary bytes, arbitrary JSON, JSON nested past every recursion limit, a
/// body just over the limit, or hostile text.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        2 => proptest::collection::vec(any::<u8>(), 0..200),
        4 => json_value(4).prop_map(|v| v.to_string().into_bytes()),
        1 => prop_oneof![Just(100usize), Just(127), Just(129), Just(5000)]
            .prop_map(|levels| deep_json_text(levels).into_bytes()),
        1 => (1usize..3).prop_map(|n| format!("{{\"s\":\"{}\"}}", "x".repeat(BODY_LIMIT * n / 2 + 10)).into_bytes()),
        2 => hostile_text(40).prop_map(String::into_bytes),
    ]
}

/// A path: the routes with names and ids that are percent-encoded, unicode, traversal-shaped or
/// absurdly long, plus query strings that repeat, omit or garble their parameters.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => proptest::sample::select(&[
            "echo", "greet", "badge", "lifecycle", "nope", "%ff", "%2e%2e", "..", "%00", "%2F",
            "e%63ho", "%E2%82%AC", "a%", "%%", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "%20", "~", "*",
        ][..])
        .prop_map(str::to_owned),
        1 => unicode_text(4).prop_map(|s| percent_encode(&s)),
        1 => "[a-zA-Z0-9._~-]{0,12}",
        1 => Just("x".repeat(5000)),
    ];
    let route = (
        proptest::sample::select(
            &[
                "/api/flows/{}/invoke",
                "/api/flows/{}/runs",
                "/api/flows/{}",
                "/api/flows",
                "/api/runs/{}",
                "/api/runs/{}/rerun",
                "/api/runs/{}/cancel",
                "/api/runs",
                "/api/delegated/flows",
                "/api/delegated/flows/{}/run",
                "/hooks/okta",
                "/healthz",
                "/",
                "/openapi.json",
                "/{}",
                "/api/{}/{}",
            ][..],
        ),
        segment,
    )
        .prop_map(|(route, segment)| route.replace("{}", &segment));
    let query = prop_oneof![
        3 => Just(String::new()),
        1 => proptest::sample::select(&[
            "?limit=1&limit=2", "?limit=-1", "?limit=99999999999", "?limit=abc", "?status=nope",
            "?cursor=%ff", "?cursor=abc", "?q=%25", "?since=yesterday", "?flow=", "?clientToken=",
            "?a=%", "?%=%", "?&&&", "?clientToken=client-token-fuzz-8e2b",
        ][..])
        .prop_map(str::to_owned),
        1 => hostile_text(8).prop_map(|s| format!("?{}", percent_encode(&s))),
    ];
    (route, query).prop_map(|(route, query)| format!("{route}{query}"))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~=&".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (
        prop_oneof![
            8 => Just("POST".to_owned()),
            6 => Just("GET".to_owned()),
            2 => proptest::sample::select(&["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"][..])
                .prop_map(str::to_owned),
            1 => "[A-Z]{1,10}",
        ],
        path(),
        proptest::collection::vec(header(), 0..5),
        body(),
    )
        .prop_map(|(method, path, headers, body)| Attempt {
            method,
            path,
            headers,
            body,
        })
}

// ----- event hooks -----

const EVENT_TYPES: &[&str] = &[
    "user.lifecycle.activate",
    "group.user_membership.add",
    "user.session.start",
    "user.account.lock",
];

/// One event of a well-formed delivery, with its uuid drawn from a few so a batch may repeat one.
#[derive(Debug, Clone)]
struct Event {
    uuid: usize,
    event_type: &'static str,
    outcome: Value,
    extra: Value,
}

fn event() -> impl Strategy<Value = Event> {
    (
        0usize..4,
        proptest::sample::select(EVENT_TYPES),
        prop_oneof![
            Just(json!({ "result": "FAILURE" })),
            Just(json!({ "result": "SUCCESS" })),
            Just(Value::Null),
            Just(json!("FAILURE")),
            Just(json!([{ "result": "FAILURE" }])),
            json_value(2),
        ],
        json_value(3),
    )
        .prop_map(|(uuid, event_type, outcome, extra)| Event {
            uuid,
            event_type,
            outcome,
            extra,
        })
}

impl Event {
    fn to_json(&self, batch: &str) -> Value {
        let mut event = json!({
            "uuid": format!("{batch}-{}", self.uuid),
            "eventType": self.event_type,
            "eventTypeVersion": "1.0",
            "target": self.extra,
        });
        if !self.outcome.is_null() {
            event["outcome"] = self.outcome.clone();
        }
        event
    }

    /// The flows that start for this event (what the flows above subscribe to and filter).
    fn flows(&self) -> Vec<&'static str> {
        match self.event_type {
            "user.lifecycle.activate" | "group.user_membership.add" => vec!["lifecycle"],
            "user.session.start" if self.outcome["result"] == json!("FAILURE") => vec!["failed"],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
enum Delivery {
    /// Authenticated and well formed: exactly its runs start.
    Valid { events: Vec<Event>, envelope: Value },
    /// Anything at all.
    Hostile {
        authorized: bool,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
}

fn delivery() -> impl Strategy<Value = Delivery> {
    let valid = (proptest::collection::vec(event(), 0..6), json_value(2))
        .prop_map(|(events, envelope)| Delivery::Valid { events, envelope });
    let hostile_body = prop_oneof![
        3 => body(),
        // Delivery-shaped, with the parts an attacker can get wrong.
        3 => (json_value(2), proptest::collection::vec(json_value(2), 0..4)).prop_map(|(data, events)| {
            json!({ "eventType": "com.okta.event_hook", "data": { "events": events, "extra": data } })
                .to_string()
                .into_bytes()
        }),
        1 => Just(br#"{"data": {"events": [{"uuid": "", "eventType": "user.session.start"}]}}"#.to_vec()),
        1 => Just(br#"{"data": {"events": {"uuid": "a"}}}"#.to_vec()),
        1 => Just(br#"{"data": []}"#.to_vec()),
        1 => prop_oneof![Just(60usize), Just(63), Just(64), Just(126)].prop_map(|levels| {
            format!(
                r#"{{"data": {{"events": [{{"uuid": "u", "eventType": "user.lifecycle.activate", "target": {}}}]}}}}"#,
                deep_json_text(levels)
            )
            .into_bytes()
        }),
    ];
    let hostile = (
        any::<bool>(),
        proptest::collection::vec(header(), 0..4),
        hostile_body,
    )
        .prop_map(|(authorized, headers, body)| Delivery::Hostile {
            authorized,
            headers,
            body,
        });
    prop_oneof![2 => valid, 3 => hostile]
}

#[test]
fn fuzz_hooks() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(server());
    let routers = [router(&server, false), router(&server, true)];
    fuzz(
        "event hooks, POST /hooks/okta",
        96,
        delivery(),
        |delivery| {
            rt.block_on(async {
            match delivery {
                Delivery::Valid { events, envelope } => {
                    let batch = ulid::Ulid::new().to_string();
                    let mut body = if envelope.is_object() { envelope } else { json!({}) };
                    body["data"] = json!({ "events": events.iter().map(|e| e.to_json(&batch)).collect::<Vec<_>>() });
                    let mut expected: BTreeSet<(String, &str)> = BTreeSet::new();
                    for event in &events {
                        for flow in event.flows() {
                            expected.insert((format!("{batch}-{}", event.uuid), flow));
                        }
                    }
                    let attempt = Attempt {
                        method: "POST".into(),
                        path: "/hooks/okta".into(),
                        headers: vec![
                            ("authorization".into(), HOOK_SECRET.as_bytes().to_vec()),
                            ("content-type".into(), b"application/json".to_vec()),
                        ],
                        body: body.to_string().into_bytes(),
                    };
                    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
                    let first = send(&routers[0], &attempt).await?.expect("a valid request");
                    check_answer(&attempt, &first)?;
                    if attempt.body.len() > BODY_LIMIT {
                        prop_assert_eq!(first.status, 413);
                        return Ok(());
                    }
                    prop_assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
                    let answer: Value = serde_json::from_slice(&first.body).expect("json");
                    prop_assert_eq!(&answer["started"], &json!(expected.len()), "{}", answer);
                    prop_assert_eq!(&answer["events"], &json!(events.len()));
                    // Delivered again (Okta retries): nothing new starts.
                    let again = send(&routers[1], &attempt).await?.expect("a valid request");
                    let answer: Value = serde_json::from_slice(&again.body).expect("json");
                    prop_assert_eq!(&answer["started"], &json!(0), "{}", answer);
                    // And the store holds exactly those runs.
                    let started = event_runs(&server, &batch, since).await;
                    let expected: BTreeSet<(String, String)> =
                        expected.into_iter().map(|(uuid, flow)| (uuid, flow.to_owned())).collect();
                    prop_assert_eq!(started, expected);
                }
                Delivery::Hostile { authorized, mut headers, body } => {
                    if authorized {
                        headers.push(("authorization".into(), HOOK_SECRET.as_bytes().to_vec()));
                    }
                    let attempt = Attempt { method: "POST".into(), path: "/hooks/okta".into(), headers, body };
                    for router in &routers {
                        if let Some(answer) = send(router, &attempt).await? {
                            check_answer(&attempt, &answer)?;
                        }
                    }
                }
            }
            Ok(())
        })
        },
    );
    STATUSES.report("event hooks");
    rt.block_on(server.stop());
}

#[tokio::test]
async fn a_copy_the_filter_skips_does_not_hide_a_later_copy_of_the_same_event() {
    // Found by fuzzing: two copies of one event in a batch, the first filtered out, started no run,
    // although the second passes the filter and would have started one in a batch of its own.
    let server = server().await;
    let router = router(&server, false);
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let batch = ulid::Ulid::new().to_string();
    let event = |result: &str| json!({ "uuid": format!("{batch}-0"), "eventType": "user.session.start", "outcome": { "result": result } });
    let attempt = Attempt {
        method: "POST".into(),
        path: "/hooks/okta".into(),
        headers: vec![("authorization".into(), HOOK_SECRET.as_bytes().to_vec())],
        body:
            json!({ "data": { "events": [event("SUCCESS"), event("FAILURE"), event("FAILURE")] } })
                .to_string()
                .into_bytes(),
    };
    let answer = send(&router, &attempt)
        .await
        .expect("sent")
        .expect("a request");
    let answer: Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(
        answer,
        json!({ "events": 3, "started": 1, "duplicates": 1 })
    );
    assert_eq!(
        event_runs(&server, &batch, since).await,
        BTreeSet::from([(format!("{batch}-0"), "failed".to_owned())])
    );
    server.stop().await;
}

#[tokio::test]
async fn a_caller_cannot_store_a_run_that_breaks_the_run_list() {
    // Found by fuzzing: a public endpoint accepted a body nested 127 levels deep, stored a run that
    // could not be decoded again, and from then on `GET /api/runs` answered 500 for everyone.
    let server = server().await;
    let router = router(&server, false);
    let list = Attempt {
        method: "GET".into(),
        path: "/api/runs?limit=500".into(),
        headers: vec![],
        body: vec![],
    };
    let runs = |answer: Answer| -> usize {
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let page: Value = serde_json::from_slice(&answer.body).expect("json");
        page["runs"].as_array().map_or(0, Vec::len)
    };
    let before = runs(
        send(&router, &list)
            .await
            .expect("sent")
            .expect("a request"),
    );
    let deep = deep_json_text(127);
    for (path, headers, body) in [
        ("/api/flows/echo/invoke", vec![], deep.clone()),
        ("/api/flows/lifecycle/runs", vec![], deep.clone()),
        (
            "/hooks/okta",
            vec![("authorization".to_owned(), HOOK_SECRET.as_bytes().to_vec())],
            format!(
                r#"{{"data": {{"events": [{{"uuid": "deep", "eventType": "user.lifecycle.activate", "target": {deep}}}]}}}}"#
            ),
        ),
    ] {
        let attempt = Attempt {
            method: "POST".into(),
            path: path.into(),
            headers,
            body: body.into_bytes(),
        };
        let answer = send(&router, &attempt)
            .await
            .expect("sent")
            .expect("a request");
        assert!(
            !(200..300).contains(&answer.status),
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    // Nothing was stored, and the list still reads.
    assert_eq!(
        runs(
            send(&router, &list)
                .await
                .expect("sent")
                .expect("a request")
        ),
        before
    );
    server.stop().await;
}

/// The (event uuid, flow) of every run started for the events of one batch.
async fn event_runs(
    server: &TestServer,
    batch: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = server
            .runtime()
            .list_runs(
                RunQuery {
                    flow: None,
                    status: None,
                    since: Some(since),
                    until: None,
                    limit: 500,
                    cursor,
                },
                &RunFilter::default(),
            )
            .await
            .expect("list runs");
        for run in &page.runs {
            if let TriggerInfo::Event(domain::run::EventStart { event_uuid, .. }) = &run.trigger
                && event_uuid.starts_with(batch)
            {
                found.insert((event_uuid.clone(), run.flow.clone()));
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return found,
        }
    }
}

// ----- the API -----

#[test]
fn fuzz_api() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.block_on(server());
    let routers = [router(&server, false), router(&server, true)];
    fuzz(
        "API routes, arbitrary requests",
        256,
        attempt(),
        |attempt| {
            rt.block_on(async {
                for router in &routers {
                    let Some(answer) = send(router, &attempt).await? else {
                        continue;
                    };
                    if attempt.method == "HEAD" && answer.status >= 500 {
                        // A HEAD answer has no body to say why; the same request as GET does.
                        let get = Attempt {
                            method: "GET".into(),
                            ..attempt.clone()
                        };
                        if let Some(answer) = send(router, &get).await? {
                            prop_assert!(answer.status >= 500, "HEAD failed where GET did not");
                            check_answer(&get, &answer)?;
                        }
                        continue;
                    }
                    check_answer(&attempt, &answer)?;
                }
                Ok(())
            })
        },
    );
    STATUSES.report("API routes");
    rt.block_on(server.stop());
}
