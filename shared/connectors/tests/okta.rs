//! The `okta.*` and `oig.*` cards and the Okta client against okta-sim: every card, Link paging,
//! streaming pages, rate limits (short waits retried, long ones parked), SSWS, `private_key_jwt`
//! with RS256 and ES256, DPoP, the shared token cache, the concurrency cap and Okta's error fields.
//!
//! Time is one [`TestClock`] shared by the simulator and the client: a wait jumps the clock, so
//! rate-limit tests are instant and the waits are recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use connectors::okta::{OktaClient, OktaExecutor};
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::model::{ProjectConfig, SecretRef};
use domain::ports::{Clock, SecretError, SecretValue, Secrets};
use domain::run::RunId;
use okta_sim::{
    ClientKey, Family, Faults, OAuthClient, RateLimit, RequestSeed, Sim, SimBuilder, SimHandle,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const RSA_KEY: &str = include_str!("../../../okta-sim/tests/fixtures/rsa-test-key.pem");
const RSA_PUB: &str = include_str!("../../../okta-sim/tests/fixtures/rsa-test-key.pub.pem");
const EC_KEY: &str = include_str!("../../../okta-sim/tests/fixtures/ec-test-key.pem");
const EC_PUB: &str = include_str!("../../../okta-sim/tests/fixtures/ec-test-key.pub.pem");
const RSA_CLIENT: &str = "0oarsaclient00000001";
const EC_CLIENT: &str = "0oaecclient000000001";
const DPOP_CLIENT: &str = "0oadpopclient0000001";

fn t0() -> DateTime<Utc> {
    // A minute boundary, so rate-limit windows start with the test.
    Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0)
        .single()
        .expect("valid date")
}

/// One time for the simulator and the client. Sleeping jumps to the deadline and is recorded.
struct TestClock {
    now: Mutex<DateTime<Utc>>,
    sleeps: Mutex<Vec<Duration>>,
}

impl TestClock {
    fn new() -> Arc<TestClock> {
        Arc::new(TestClock {
            now: Mutex::new(t0()),
            sleeps: Mutex::new(Vec::new()),
        })
    }

    fn advance(&self, by: Duration) {
        let mut now = self.now.lock().expect("clock");
        *now += chrono::Duration::from_std(by).expect("duration");
    }

    fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().expect("sleeps").clone()
    }
}

#[async_trait]
impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock")
    }

    /// Time only moves forward here, so the time since `t0` is a monotonic reading.
    fn monotonic(&self) -> Duration {
        (self.now() - t0()).to_std().unwrap_or_default()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let mut now = self.now.lock().expect("clock");
        if deadline > *now {
            self.sleeps
                .lock()
                .expect("sleeps")
                .push((deadline - *now).to_std().expect("positive"));
            *now = deadline;
        }
    }
}

impl okta_sim::Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock")
    }
}

/// Secrets by reference text.
struct MapSecrets(HashMap<String, String>);

#[async_trait]
impl Secrets for MapSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        self.0
            .get(&reference.to_string())
            .map(SecretValue::new)
            .ok_or_else(|| SecretError::Missing {
                reference: reference.to_string(),
            })
    }
}

/// A simulator, a clock and an executor whose `okta` connection is `auth`.
struct Harness {
    sim: SimHandle,
    clock: Arc<TestClock>,
    executor: OktaExecutor,
    project: Arc<ProjectConfig>,
}

fn ssws() -> Value {
    json!({ "type": "ssws", "token": "env:OKTA_API_TOKEN" })
}

fn oauth(client_id: &str, key: &str, dpop: bool) -> Value {
    json!({
        "type": "private_key_jwt",
        "client_id": client_id,
        "key": key,
        "scopes": ["okta.users.manage", "okta.groups.manage", "okta.apps.manage", "okta.logs.read"],
        "dpop": dpop,
    })
}

async fn harness(
    configure: impl FnOnce(SimBuilder) -> SimBuilder,
    auth: Value,
    extra: Value,
) -> Harness {
    let clock = TestClock::new();
    let builder = Sim::builder()
        .clock(clock.clone())
        .oauth_client(OAuthClient::new(RSA_CLIENT, ClientKey::Pem(RSA_PUB.into())))
        .oauth_client(OAuthClient::new(EC_CLIENT, ClientKey::Pem(EC_PUB.into())))
        .oauth_client(
            OAuthClient::new(DPOP_CLIENT, ClientKey::Pem(EC_PUB.into())).require_dpop(true),
        );
    let sim = configure(builder).start().await.expect("sim starts");
    let mut connection = json!({ "domain": sim.base_url(), "auth": auth });
    if let (Value::Object(connection), Value::Object(extra)) = (&mut connection, extra) {
        connection.extend(extra);
    }
    let project = Arc::new(ProjectConfig {
        connections: BTreeMap::from([("okta".to_owned(), connection)]),
        ..ProjectConfig::default()
    });
    let secrets = MapSecrets(HashMap::from([
        (
            "env:OKTA_API_TOKEN".to_owned(),
            okta_sim::DEFAULT_API_TOKEN.to_owned(),
        ),
        ("file:./secrets/rsa.pem".to_owned(), RSA_KEY.to_owned()),
        ("file:./secrets/ec.pem".to_owned(), EC_KEY.to_owned()),
    ]));
    let client = OktaClient::new(Arc::new(secrets), clock.clone())
        .expect("client")
        .with_jitter_seed(7);
    Harness {
        sim,
        clock,
        executor: OktaExecutor::new(Arc::new(client)),
        project,
    }
}

impl Harness {
    async fn run(&self, card: &str, input: Value) -> Result<Value, CardError> {
        let call = CardCall {
            card: card.into(),
            input,
            timeout: Duration::from_secs(30),
            run_id: RunId::new_at(t0()),
            step: "s1".into(),
            attempt: 1,
            project: self.project.clone(),
        };
        self.executor.execute(&call).await
    }

    async fn ok(&self, card: &str, input: Value) -> Value {
        match self.run(card, input.clone()).await {
            Ok(output) => output,
            Err(error) => panic!("{card} {input}: {error:?}"),
        }
    }

    /// `(method, path, status)` of every request the simulator answered.
    fn requests(&self) -> Vec<(String, String, u16)> {
        self.sim
            .journal()
            .into_iter()
            .map(|entry| (entry.method, entry.path, entry.status))
            .collect()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(m, p, _)| m == method && p == path)
            .count()
    }
}

fn ids(records: &Value) -> Vec<String> {
    records
        .as_array()
        .expect("a list")
        .iter()
        .map(|record| record["id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("jwt part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

#[tokio::test]
async fn user_cards_read_change_and_move_users() {
    let h = harness(
        |b| b.seed_users(3).group("Builders").app("Wiki"),
        ssws(),
        json!({}),
    )
    .await;
    let group = h.sim.group_id("Builders").expect("group");

    let user = h
        .ok("okta.read_user", json!({ "user": "user1@example.com" }))
        .await;
    assert_eq!(user["profile"]["firstName"], "Ada");
    let id = user["id"].as_str().expect("id").to_owned();
    assert_eq!(
        h.ok("okta.read_user", json!({ "user": id })).await["id"],
        user["id"]
    );

    let found = h
        .ok(
            "okta.find_users",
            json!({ "search": "profile.department eq \"Sales\"" }),
        )
        .await;
    assert_eq!(
        ids(&found),
        vec![
            h.sim.user("user2@example.com").expect("user2")["id"]
                .as_str()
                .unwrap_or_default()
        ]
    );

    let created = h
        .ok(
            "okta.create_user",
            json!({
                "profile": { "login": "new@example.com", "email": "new@example.com", "firstName": "New", "lastName": "Hire", "department": "IT" },
                "password": "Correct-Horse-9",
                "activate": false,
                "groups": [group],
            }),
        )
        .await;
    assert_eq!(created["status"], "STAGED");
    let new_id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(h.sim.group_members(&group), vec![new_id.clone()]);

    // Partial update: only the given attribute changes.
    let updated = h
        .ok(
            "okta.update_user",
            json!({ "user": "new@example.com", "profile": { "department": "Sales" } }),
        )
        .await;
    assert_eq!(updated["profile"]["department"], "Sales");
    assert_eq!(updated["profile"]["firstName"], "New");
    let update = h
        .sim
        .journal()
        .into_iter()
        .find(|e| e.method == "POST" && e.path == "/api/v1/users/new%40example.com")
        .expect("update request");
    assert_eq!(
        update.json(),
        Some(json!({ "profile": { "department": "Sales" } }))
    );

    let activated = h
        .ok(
            "okta.activate_user",
            json!({ "user": new_id, "send_email": false }),
        )
        .await;
    assert!(activated["activationToken"].is_string(), "{activated}");
    let status = |login: &str| h.sim.user(login).expect("user")["status"].clone();
    assert_eq!(status("new@example.com"), "ACTIVE");
    assert_eq!(
        h.ok("okta.suspend_user", json!({ "user": new_id })).await,
        json!({})
    );
    assert_eq!(status("new@example.com"), "SUSPENDED");
    assert_eq!(
        h.ok("okta.unsuspend_user", json!({ "user": new_id })).await,
        json!({})
    );
    assert_eq!(status("new@example.com"), "ACTIVE");

    // Group cards take a login too: it is looked up, since Okta's membership API takes ids only.
    assert_eq!(
        h.ok(
            "okta.add_user_to_group",
            json!({ "user": "user1@example.com", "group": group })
        )
        .await,
        json!({})
    );
    assert_eq!(
        h.sim.group_members(&group),
        vec![id.clone(), new_id.clone()]
    );
    let members = h
        .ok("okta.list_group_members", json!({ "group": group }))
        .await;
    assert_eq!(ids(&members), vec![id.clone(), new_id.clone()]);
    let groups = h
        .ok(
            "okta.list_user_groups",
            json!({ "user": "user1@example.com" }),
        )
        .await;
    assert!(
        groups
            .as_array()
            .expect("list")
            .iter()
            .any(|g| g["id"] == json!(group)),
        "{groups}"
    );
    h.ok(
        "okta.remove_user_from_group",
        json!({ "user": id, "group": group }),
    )
    .await;
    assert_eq!(h.sim.group_members(&group), vec![new_id.clone()]);

    let app = h.sim.create_app("Tracker");
    let assigned = h
        .ok(
            "okta.assign_user_to_app",
            json!({ "user": "user1@example.com", "app": app, "user_name": "ada" }),
        )
        .await;
    assert_eq!(assigned["id"], json!(id));
    assert_eq!(h.sim.app_users(&app), vec![id.clone()]);

    assert_eq!(
        h.ok("okta.deactivate_user", json!({ "user": new_id }))
            .await,
        json!({})
    );
    assert_eq!(status("new@example.com"), "DEPROVISIONED");

    let events = h
        .ok(
            "okta.search_system_log",
            json!({ "filter": "eventType eq \"user.lifecycle.create\"" }),
        )
        .await;
    assert_eq!(events.as_array().expect("events").len(), 1, "{events}");
    assert_eq!(events[0]["target"][0]["id"], json!(new_id));

    let custom = h
        .ok(
            "okta.api",
            json!({ "path": "/api/v1/groups", "query": { "q": "Build" } }),
        )
        .await;
    assert_eq!(custom["status"], 200);
    assert_eq!(custom["body"][0]["profile"]["name"], "Builders");
    assert!(custom["headers"]["x-okta-request-id"].is_string());

    // SSWS on every request.
    let journal = h.sim.journal();
    assert!(journal.iter().all(|e| e.header("authorization")
        == Some(&format!("SSWS {}", okta_sim::DEFAULT_API_TOKEN) as &str)));
}

#[tokio::test]
async fn oig_cards_take_v1_and_v2_request_ids() {
    let h = harness(|b| b.seed_users(2), ssws(), json!({})).await;
    let v1 = h.sim.seed_request_v1(RequestSeed {
        subject: "Badge access".into(),
        ..RequestSeed::default()
    });
    let v2 = h.sim.seed_request_v2(RequestSeed::default());

    assert_eq!(
        h.ok("oig.get_request", json!({ "request": v1 })).await["subject"],
        "Badge access"
    );
    assert_eq!(
        h.ok("oig.get_request", json!({ "request": v2 })).await["status"],
        "PENDING"
    );
    assert_eq!(
        ids(&h.ok("oig.list_requests", json!({})).await),
        vec![v1.clone()]
    );
    assert_eq!(
        ids(&h
            .ok(
                "oig.list_requests",
                json!({ "version": "v2", "filter": "status eq \"PENDING\"" })
            )
            .await),
        vec![v2.clone()]
    );

    for id in [&v1, &v2] {
        let posted = h
            .ok(
                "oig.create_request_message",
                json!({ "request": id, "message": format!("hello {id}") }),
            )
            .await;
        assert_eq!(posted, json!({}));
        let messages = h.sim.request_messages(id);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].message, format!("hello {id}"));
    }
    assert_eq!(
        h.count(
            "POST",
            &format!("/governance/api/v1/requests/{v1}/messages")
        ),
        1
    );
    assert_eq!(
        h.count(
            "POST",
            &format!("/governance/api/v2/requests/{v2}/messages")
        ),
        1
    );

    // Bad ids and messages fail before any request.
    let before = h.sim.journal().len();
    for (input, field) in [
        (json!({ "request": "12345", "message": "hi" }), "request"),
        (json!({ "request": v1, "message": "" }), "message"),
        (
            json!({ "request": v1, "message": "x".repeat(5001) }),
            "message",
        ),
    ] {
        match h.run("oig.create_request_message", input).await {
            Err(CardError::InvalidInput { field: got, .. }) => assert_eq!(got, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    assert_eq!(h.sim.journal().len(), before);
    h.ok(
        "oig.create_request_message",
        json!({ "request": v1, "message": "x".repeat(5000) }),
    )
    .await;
}

#[tokio::test]
async fn lists_follow_link_next_across_pages_bounded_by_limit() {
    let h = harness(|b| b.seed_users(450), ssws(), json!({})).await;
    let all = h.ok("okta.find_users", json!({})).await;
    assert_eq!(all.as_array().expect("list").len(), 450);
    let listed: Vec<(String, Option<String>)> = h
        .sim
        .journal()
        .into_iter()
        .map(|e| (e.path, e.query))
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(
        listed[1].1.as_deref().is_some_and(|q| q.contains("after=")),
        "{listed:?}"
    );

    h.sim.clear_journal();
    let bounded = h.ok("okta.find_users", json!({ "limit": 250 })).await;
    assert_eq!(bounded.as_array().expect("list").len(), 250);
    assert_eq!(h.sim.journal().len(), 2);

    h.sim.clear_journal();
    let first = h.ok("okta.find_users", json!({ "pages": "first" })).await;
    assert_eq!(first.as_array().expect("list").len(), 200);
    assert_eq!(h.sim.journal().len(), 1);
    assert_eq!(ids(&first), ids(&all)[..200].to_vec());

    // Streaming: one page per call, `next` handed back until it is null.
    let mut page = Value::Null;
    let mut streamed = Vec::new();
    let mut calls = 0;
    loop {
        let answer = h
            .ok(
                "okta.find_users",
                json!({ "stream": { "flow": "each-user" }, "__page": page }),
            )
            .await;
        calls += 1;
        streamed.extend(ids(&answer["records"]));
        page = answer["next"].clone();
        if page.is_null() {
            break;
        }
    }
    assert_eq!(calls, 3);
    assert_eq!(streamed, ids(&all));

    // A streamed limit carries over from page to page.
    let answer = h
        .ok(
            "okta.find_users",
            json!({ "limit": 210, "stream": { "flow": "f" }, "__page": null }),
        )
        .await;
    assert_eq!(answer["records"].as_array().expect("records").len(), 200);
    let last = h
        .ok(
            "okta.find_users",
            json!({ "limit": 210, "stream": { "flow": "f" }, "__page": answer["next"] }),
        )
        .await;
    assert_eq!(last["records"].as_array().expect("records").len(), 10);
    assert_eq!(last["next"], Value::Null);
}

#[tokio::test]
async fn system_log_pages_until_an_empty_page_or_the_limit() {
    let h = harness(|b| b, ssws(), json!({})).await;
    for n in 0..2500 {
        h.sim.inject_event(
            json!({ "eventType": "user.session.start", "displayMessage": format!("login {n}") }),
        );
    }
    // Without `until` Okta always links a next page (polling); an empty page ends the list.
    let events = h.ok("okta.search_system_log", json!({})).await;
    assert_eq!(events.as_array().expect("events").len(), 2500);
    assert_eq!(h.count("GET", "/api/v1/logs"), 4);

    h.sim.clear_journal();
    let bounded = h
        .ok("okta.search_system_log", json!({ "limit": 2100 }))
        .await;
    assert_eq!(bounded.as_array().expect("events").len(), 2100);
    assert_eq!(h.count("GET", "/api/v1/logs"), 3);

    h.sim.clear_journal();
    let newest = h
        .ok(
            "okta.search_system_log",
            json!({ "q": "login", "limit": 2, "sort_order": "DESCENDING", "pages": "first" }),
        )
        .await;
    assert_eq!(newest[0]["displayMessage"], "login 2499");
    assert_eq!(h.count("GET", "/api/v1/logs"), 1);
}

#[tokio::test]
async fn a_short_rate_limit_wait_is_held_and_retried() {
    // Every second users request answers 429; the 5 s window resets within `max_wait`.
    let h = harness(
        |b| {
            b.seed_users(2)
                .rate_limit(Family::Users, RateLimit::new(100, Duration::from_secs(5)))
                .faults(Faults {
                    throttle_every: Some(2),
                    path_prefix: Some("/api/v1/users".into()),
                    ..Faults::default()
                })
        },
        ssws(),
        json!({}),
    )
    .await;
    h.ok("okta.read_user", json!({ "user": "user1@example.com" }))
        .await;
    h.clock.advance(Duration::from_secs(2));
    let user = h
        .ok("okta.read_user", json!({ "user": "user2@example.com" }))
        .await;
    assert_eq!(user["profile"]["login"], "user2@example.com");
    let statuses: Vec<u16> = h.requests().iter().map(|r| r.2).collect();
    assert_eq!(statuses, vec![200, 429, 200]);
    // Waited until the reset (3 s away) plus a little jitter.
    let sleeps = h.clock.sleeps();
    assert_eq!(sleeps.len(), 1, "{sleeps:?}");
    assert!(
        sleeps[0] >= Duration::from_secs(3) && sleeps[0] <= Duration::from_secs(4),
        "{sleeps:?}"
    );
    let retried = &h.sim.journal()[2];
    assert!(retried.at >= t0() + chrono::Duration::seconds(5));
}

#[tokio::test]
async fn an_exhausted_budget_waits_for_the_reset_before_sending() {
    let h = harness(
        |b| {
            b.seed_users(3)
                .rate_limit(Family::Users, RateLimit::new(2, Duration::from_secs(5)))
        },
        ssws(),
        json!({}),
    )
    .await;
    for n in 1..=3 {
        h.ok(
            "okta.read_user",
            json!({ "user": format!("user{n}@example.com") }),
        )
        .await;
    }
    // `X-Rate-Limit-Remaining: 0` on the second answer: the third request waited instead of
    // collecting a 429.
    let statuses: Vec<u16> = h.requests().iter().map(|r| r.2).collect();
    assert_eq!(statuses, vec![200, 200, 200]);
    assert_eq!(h.clock.sleeps().len(), 1);
}

#[tokio::test]
async fn a_long_rate_limit_wait_parks_the_step() {
    let h = harness(
        |b| {
            b.seed_users(2)
                .rate_limit(Family::Users, RateLimit::per_minute(1))
        },
        ssws(),
        json!({}),
    )
    .await;
    h.ok("okta.read_user", json!({ "user": "user1@example.com" }))
        .await;
    match h
        .run("okta.read_user", json!({ "user": "user2@example.com" }))
        .await
    {
        Err(CardError::Throttled { after, .. }) => {
            assert!(
                after >= Duration::from_secs(60) && after <= Duration::from_secs(61),
                "{after:?}"
            );
        }
        other => panic!("expected throttled, got {other:?}"),
    }
    // Known from the first answer's headers: no request was spent on a 429.
    assert_eq!(h.requests().len(), 1);
    assert!(h.clock.sleeps().is_empty());

    // A client that learns it from a 429 parks too, without retrying; `max_wait` raises the bar.
    let fresh = harness(
        |b| {
            b.seed_users(2)
                .rate_limit(Family::Users, RateLimit::per_minute(100))
                .faults(Faults {
                    throttle_every: Some(1),
                    ..Faults::default()
                })
        },
        ssws(),
        json!({ "max_wait": "30s" }),
    )
    .await;
    match fresh
        .run("okta.read_user", json!({ "user": "user1@example.com" }))
        .await
    {
        Err(CardError::Throttled { after, .. }) => assert!(after >= Duration::from_secs(60)),
        other => panic!("expected throttled, got {other:?}"),
    }
    assert_eq!(fresh.requests().len(), 1);
}

#[tokio::test]
async fn private_key_jwt_signs_rs256_and_es256_assertions() {
    for (client, key, alg) in [
        (RSA_CLIENT, "file:./secrets/rsa.pem", "RS256"),
        (EC_CLIENT, "file:./secrets/ec.pem", "ES256"),
    ] {
        let h = harness(|b| b.seed_users(1), oauth(client, key, false), json!({})).await;
        let user = h
            .ok("okta.read_user", json!({ "user": "user1@example.com" }))
            .await;
        assert_eq!(user["profile"]["login"], "user1@example.com");
        let journal = h.sim.journal();
        assert_eq!(journal.len(), 2, "{alg}");
        let token = &journal[0];
        assert_eq!(
            (token.path.as_str(), token.status),
            ("/oauth2/v1/token", 200)
        );
        let form: HashMap<String, String> = token
            .body
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        assert_eq!(form["grant_type"], "client_credentials");
        let assertion = &form["client_assertion"];
        assert_eq!(jwt_part(assertion, 0)["alg"], alg);
        let claims = jwt_part(assertion, 1);
        assert_eq!(claims["iss"], client);
        assert_eq!(claims["aud"], json!(h.sim.token_url()));
        let bearer = journal[1].header("authorization").expect("authorization");
        assert!(bearer.starts_with("Bearer simat."), "{bearer}");
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn dpop_does_the_nonce_dance_and_binds_every_request() {
    let h = harness(
        |b| b.seed_users(2),
        oauth(DPOP_CLIENT, "file:./secrets/ec.pem", true),
        json!({}),
    )
    .await;
    h.ok("okta.read_user", json!({ "user": "user1@example.com" }))
        .await;
    h.ok("okta.read_user", json!({ "user": "user2@example.com" }))
        .await;
    let journal = h.sim.journal();
    let summary: Vec<(&str, u16)> = journal
        .iter()
        .map(|e| (e.path.as_str(), e.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("/oauth2/v1/token", 400),
            ("/oauth2/v1/token", 200),
            ("/api/v1/users/user1%40example.com", 200),
            ("/api/v1/users/user2%40example.com", 200),
        ]
    );
    let first = jwt_part(journal[0].header("dpop").expect("proof"), 1);
    assert!(first.get("nonce").is_none());
    let retried = jwt_part(journal[1].header("dpop").expect("proof"), 1);
    assert_eq!(retried["nonce"], json!(h.sim.dpop_nonce()));
    assert_eq!(retried["htm"], "POST");
    assert_eq!(retried["htu"], json!(h.sim.token_url()));
    for entry in &journal[2..] {
        let authorization = entry.header("authorization").expect("authorization");
        let token = authorization.strip_prefix("DPoP ").expect("DPoP scheme");
        let proof = jwt_part(entry.header("dpop").expect("proof"), 1);
        assert_eq!(
            proof["ath"],
            json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())))
        );
        assert_eq!(proof["htm"], "GET");
        assert_eq!(
            proof["htu"],
            json!(format!("{}{}", h.sim.base_url(), entry.path))
        );
    }
    assert_ne!(
        jwt_part(journal[2].header("dpop").expect("proof"), 1)["jti"],
        jwt_part(journal[3].header("dpop").expect("proof"), 1)["jti"]
    );

    // A rotated nonce is learnt again on the next token request.
    h.clock.advance(Duration::from_secs(3600));
    let rotated = h.sim.rotate_dpop_nonce();
    h.sim.rotate_dpop_nonce();
    h.sim.clear_journal();
    h.ok("okta.read_user", json!({ "user": "user1@example.com" }))
        .await;
    let journal = h.sim.journal();
    let statuses: Vec<u16> = journal.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![400, 200, 200]);
    assert_ne!(rotated, h.sim.dpop_nonce());
}

#[tokio::test]
async fn one_token_serves_concurrent_steps_until_a_minute_before_expiry() {
    let h = harness(
        |b| b.seed_users(20),
        oauth(RSA_CLIENT, "file:./secrets/rsa.pem", false),
        json!({}),
    )
    .await;
    let calls = (1..=20).map(|n| {
        h.run(
            "okta.read_user",
            json!({ "user": format!("user{n}@example.com") }),
        )
    });
    for result in futures::future::join_all(calls).await {
        result.expect("read");
    }
    assert_eq!(h.count("POST", "/oauth2/v1/token"), 1);
    assert_eq!(h.count("GET", "/api/v1/users/user7%40example.com"), 1);

    // Tokens live an hour; the client stops using one a minute before it expires.
    h.clock.advance(Duration::from_secs(3539));
    h.ok("okta.read_user", json!({ "user": "user1@example.com" }))
        .await;
    assert_eq!(h.count("POST", "/oauth2/v1/token"), 1);
    h.clock.advance(Duration::from_secs(2));
    h.ok("okta.read_user", json!({ "user": "user1@example.com" }))
        .await;
    assert_eq!(h.count("POST", "/oauth2/v1/token"), 2);
}

#[tokio::test]
async fn okta_error_fields_are_kept() {
    let h = harness(|b| b.seed_users(1), ssws(), json!({})).await;
    match h
        .run("okta.read_user", json!({ "user": "nobody@example.com" }))
        .await
    {
        Err(CardError::Status {
            status,
            message,
            detail,
            ..
        }) => {
            let request_id = h.sim.journal()[0].request_id.clone();
            assert_eq!(status, 404);
            assert_eq!(
                message,
                "E0000007: Not found: Resource not found: nobody@example.com (User)"
            );
            assert_eq!(
                detail,
                Some(json!({
                    "errorCode": "E0000007",
                    "errorSummary": "Not found: Resource not found: nobody@example.com (User)",
                    "errorCauses": [],
                    "requestId": request_id,
                }))
            );
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    match h
        .run("okta.create_user", json!({ "profile": { "login": "user1@example.com", "email": "user1@example.com", "firstName": "A", "lastName": "B" } }))
        .await
    {
        Err(CardError::Status { status, detail: Some(detail), .. }) => {
            assert_eq!(status, 400);
            assert_eq!(detail["errorCode"], "E0000001");
            assert!(!detail["errorCauses"].as_array().expect("causes").is_empty(), "{detail}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // Failures of the connection itself are not retried.
    let unknown = h
        .run(
            "okta.read_user",
            json!({ "user": "x", "connection": "other" }),
        )
        .await;
    match unknown {
        Err(CardError::Failed {
            code, retryable, ..
        }) => {
            assert_eq!((code.as_str(), retryable), ("okta_connection", false));
        }
        other => panic!("expected a connection failure, got {other:?}"),
    }
    let bad_key = harness(
        |b| b,
        oauth(RSA_CLIENT, "file:./secrets/missing.pem", false),
        json!({}),
    )
    .await;
    assert!(matches!(
        bad_key.run("okta.read_user", json!({ "user": "x" })).await,
        Err(CardError::Failed { code, .. }) if code == "secret"
    ));
}

/// Counts requests in flight on a stand-in org. Each request is held until a second one is in
/// flight (or every expected request has arrived), so an uncapped client shows more than the cap.
#[tokio::test]
async fn requests_per_connection_are_capped() {
    use tokio::sync::watch;
    #[derive(Clone, Copy, Default, PartialEq, Debug)]
    struct Seen {
        in_flight: usize,
        arrived: usize,
        most: usize,
    }
    const CALLS: usize = 8;
    let (seen, _) = watch::channel(Seen::default());
    let seen = Arc::new(seen);
    let handler = {
        let seen = seen.clone();
        move || {
            let seen = seen.clone();
            async move {
                seen.send_modify(|s| {
                    s.in_flight += 1;
                    s.arrived += 1;
                    s.most = s.most.max(s.in_flight);
                });
                let mut watch = seen.subscribe();
                let _ = watch
                    .wait_for(|s| s.in_flight >= 2 || s.arrived == CALLS)
                    .await;
                seen.send_modify(|s| s.in_flight -= 1);
                axum::Json(json!({ "id": "00u1", "profile": {} }))
            }
        }
    };
    let app = axum::Router::new().route("/api/v1/users/{id}", axum::routing::get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let h = harness(|b| b, ssws(), json!({})).await;
    let project = Arc::new(ProjectConfig {
        connections: BTreeMap::from([(
            "okta".to_owned(),
            json!({ "domain": format!("http://{address}"), "auth": ssws(), "concurrency": 2 }),
        )]),
        ..ProjectConfig::default()
    });
    let h = Harness { project, ..h };
    let calls = (0..CALLS).map(|n| h.run("okta.read_user", json!({ "user": format!("u{n}") })));
    for result in futures::future::join_all(calls).await {
        result.expect("read");
    }
    let seen = *seen.borrow();
    assert_eq!((seen.arrived, seen.most), (CALLS, 2));
}

/// A resource server that asks for a DPoP nonce (okta-sim only asks at the token endpoint): the
/// client retries once with it and keeps using it.
#[tokio::test]
async fn a_resource_server_nonce_is_learnt_with_one_retry() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    let proofs: Arc<Mutex<Vec<Value>>> = Arc::default();
    let token = axum::routing::post(|| async {
        axum::Json(json!({ "token_type": "DPoP", "access_token": "at-1", "expires_in": 3600 }))
    });
    let user = {
        let proofs = proofs.clone();
        axum::routing::get(move |headers: HeaderMap| {
            let proofs = proofs.clone();
            async move {
                let proof = headers
                    .get("dpop")
                    .and_then(|v| v.to_str().ok())
                    .map(|p| jwt_part(p, 1))
                    .unwrap_or(Value::Null);
                proofs.lock().expect("proofs").push(proof.clone());
                if proof["nonce"] != "rs-nonce-1" {
                    let challenge = r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#;
                    return (
                        StatusCode::UNAUTHORIZED,
                        [("www-authenticate", challenge), ("dpop-nonce", "rs-nonce-1")],
                        axum::Json(json!({ "errorCode": "E0000011", "errorSummary": "Invalid token provided" })),
                    )
                        .into_response();
                }
                axum::Json(json!({ "id": "00u1", "profile": {} })).into_response()
            }
        })
    };
    let app = axum::Router::new()
        .route("/oauth2/v1/token", token)
        .route("/api/v1/users/{id}", user);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let h = harness(|b| b, ssws(), json!({})).await;
    let project = Arc::new(ProjectConfig {
        connections: BTreeMap::from([(
            "okta".to_owned(),
            json!({ "domain": format!("http://{address}"), "auth": oauth(DPOP_CLIENT, "file:./secrets/ec.pem", true) }),
        )]),
        ..ProjectConfig::default()
    });
    let h = Harness { project, ..h };
    h.ok("okta.read_user", json!({ "user": "00u1" })).await;
    h.ok("okta.read_user", json!({ "user": "00u1" })).await;
    let proofs = proofs.lock().expect("proofs").clone();
    let nonces: Vec<&Value> = proofs.iter().map(|p| &p["nonce"]).collect();
    assert_eq!(
        nonces,
        vec![&Value::Null, &json!("rs-nonce-1"), &json!("rs-nonce-1")]
    );
    let ath = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(b"at-1")));
    assert!(proofs.iter().all(|p| p["ath"] == ath), "{proofs:?}");
}
