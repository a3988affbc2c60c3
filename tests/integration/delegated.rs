//! Delegated flows and bearer JWTs end to end: listing per caller, JWT and static-token callers,
//! 403/404, typed inputs, `accessRequestId` and `report_to_request`, and `auth: jwt` API flows.
//!
//! The keys under `tests/fixtures/jwt/` are throwaway test keys made for these tests; `jwks.json`
//! holds the public halves of `rsa-signer.pem` (kid `test-rsa`) and `ec-signer.pem` (kid `test-ec`).
//! `rsa-stranger.pem` is in no JWKS.

use std::sync::Arc;
use std::time::Duration;

use domain::cards::{CardCall, CardError, CardExecutor};
use domain::ports::Clock;
use domain::runner::{RunnerConfig, Runtime, Worker};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tests::{TempDir, TestServer};
use web::state::ApiState;

const JWKS: &str = include_str!("../fixtures/jwt/jwks.json");
const RSA_SIGNER: &[u8] = include_bytes!("../fixtures/jwt/rsa-signer.pem");
const RSA_STRANGER: &[u8] = include_bytes!("../fixtures/jwt/rsa-stranger.pem");
const EC_SIGNER: &[u8] = include_bytes!("../fixtures/jwt/ec-signer.pem");

const ISSUER: &str = "https://idp.example.test/oauth2/default";
const ES_ISSUER: &str = "https://helpdesk.example.test";
const AUDIENCE: &str = "api://idflow";
const OIG_CLIENT: &str = "0oa-access-requests";

const CONFIG: &str = r#"
callers:
  access-requests: { jwt: { issuer: "https://idp.example.test/oauth2/default", audience: "api://idflow", sub: 0oa-access-requests } }
  helpdesk: { jwt: { issuer: "https://helpdesk.example.test", audience: "api://idflow", jwks: "file:./idp.jwks" } }
  ops-bot: { token: "file:./ops-bot.token" }
  auditor: { token: "file:./auditor.token" }
jwks:
  "https://idp.example.test/oauth2/default": "file:./idp.jwks"
"#;

const BADGE: &str = r#"
name: badge-access
description: Email the badge team once a building access request is approved
trigger:
  delegated:
    inputs:
      requesterEmail: { type: text, description: Who asked }
      buildingRequested: text
      endDate: datetime
      floors: { type: number, required: false }
      escorted: { type: boolean, required: false }
      accessRequestId: { type: text, required: false }
    callers: [access-requests, ops-bot]
    report_to_request: true
steps:
  - id: note
    card: text.compose
    with: { text: "{{ input.requesterEmail }} needs {{ input.buildingRequested }} until {{ input.endDate }}" }
  - card: flow.return
    with: { body: "{{ steps.note }}" }
"#;

const RESET: &str = r#"
name: helpdesk-reset
description: Reset a user's factors
trigger:
  delegated:
    inputs: { userLogin: text }
    callers: [helpdesk, ops-bot]
steps:
  - card: flow.return
    with: { body: "reset {{ input.userLogin }}" }
"#;

const AUDIT: &str = r#"
name: audit-export
trigger:
  delegated:
    inputs: {}
    callers: [auditor]
steps:
  - card: text.compose
    with: { text: exported }
"#;

const WHOAMI: &str = r#"
name: whoami
trigger:
  api: { auth: jwt, jwt: { issuer: "https://idp.example.test/oauth2/default", audience: "api://idflow" }, respond: sync }
steps:
  - card: flow.return
    with: { body: { sub: "{{ input.claims.sub }}", headers: "{{ input.headers }}" } }
"#;

fn files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("idflow.yaml", CONFIG),
        ("idp.jwks", JWKS),
        ("ops-bot.token", "ops-bot-secret-1"),
        ("auditor.token", "auditor-secret-2"),
        ("badge.yaml", BADGE),
        ("reset.yaml", RESET),
        ("audit.yaml", AUDIT),
        ("whoami.yaml", WHOAMI),
    ]
}

async fn server() -> TestServer {
    TestServer::start(&files()).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn sign(alg: Algorithm, kid: &str, pem: &[u8], claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .expect("test key");
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

/// A token Access Requests would present.
fn oig_token(overrides: Value) -> String {
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": OIG_CLIENT, "iat": now(), "exp": now() + 600,
        "scp": ["idflow.delegated"],
    });
    for (k, v) in overrides.as_object().cloned().unwrap_or_default() {
        claims[k] = v;
    }
    sign(Algorithm::RS256, "test-rsa", RSA_SIGNER, &claims)
}

async fn list(server: &TestServer, bearer: Option<&str>) -> (u16, Value) {
    let mut request = server.http.get(server.url("/api/delegated/flows"));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn run(server: &TestServer, flow: &str, bearer: &str, body: &Value) -> (u16, Value) {
    let response = server
        .http
        .post(server.url(&format!("/api/delegated/flows/{flow}/run")))
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn names(listing: &Value) -> Vec<&str> {
    listing["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

fn badge_inputs() -> Value {
    json!({
        "requesterEmail": "ada@example.com",
        "buildingRequested": "HQ North",
        "endDate": "2025-06-30T17:00:00Z",
    })
}

#[tokio::test]
async fn delegated_flows_are_listed_per_caller_with_their_input_schema() {
    let server = server().await;
    let (status, ops) = list(&server, Some("ops-bot-secret-1")).await;
    assert_eq!(status, 200);
    assert_eq!(names(&ops), ["badge-access", "helpdesk-reset"]);
    let (_, auditor) = list(&server, Some("auditor-secret-2")).await;
    assert_eq!(names(&auditor), ["audit-export"]);
    let (_, oig) = list(&server, Some(&oig_token(json!({})))).await;
    assert_eq!(names(&oig), ["badge-access"]);
    assert_eq!(
        oig["flows"][0],
        json!({
            "name": "badge-access",
            "description": "Email the badge team once a building access request is approved",
            "inputs": [
                {"name": "accessRequestId", "type": "text", "required": false, "description": null},
                {"name": "buildingRequested", "type": "text", "required": true, "description": null},
                {"name": "endDate", "type": "datetime", "required": true, "description": null},
                {"name": "escorted", "type": "boolean", "required": false, "description": null},
                {"name": "floors", "type": "number", "required": false, "description": null},
                {"name": "requesterEmail", "type": "text", "required": true, "description": "Who asked"},
            ],
            "reportToRequest": true,
        })
    );
    let (_, reset) = list(&server, Some("ops-bot-secret-1")).await;
    assert_eq!(
        reset["flows"][1]["inputs"][1],
        json!({"name": "accessRequestId", "type": "text", "required": false, "description": "The access request this run is for (v1 or v2 id)"}),
        "every delegated flow takes an optional accessRequestId"
    );
    for bearer in [None, Some("nope"), Some("ops-bot-secret-")] {
        let (status, body) = list(&server, bearer).await;
        assert_eq!(status, 401, "{bearer:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    server.stop().await;
}

#[tokio::test]
async fn jwt_callers_are_verified_by_key_issuer_audience_expiry_and_subject() {
    let server = server().await;
    let good = oig_token(json!({}));
    let (status, body) = run(&server, "badge-access", &good, &badge_inputs()).await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["runId"].as_str().unwrap().to_owned();
    let done = server.wait_run(&run_id).await;
    assert_eq!(done.status.as_str(), "succeeded", "{:?}", done.error);
    assert_eq!(
        done.trigger,
        domain::run::TriggerInfo::Delegated(domain::run::DelegatedStart {
            caller: "access-requests".into()
        })
    );
    assert_eq!(
        done.output.unwrap()["body"],
        "ada@example.com needs HQ North until 2025-06-30T17:00:00Z"
    );

    let base = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": OIG_CLIENT, "exp": now() + 600});
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            oig_token(json!({"exp": now() - 600})),
            "the JWT has expired",
        ),
        (
            "not yet valid",
            oig_token(json!({"nbf": now() + 600})),
            "the JWT is not valid yet",
        ),
        (
            "wrong audience",
            oig_token(json!({"aud": "api://other"})),
            "the JWT audience does not include `api://idflow`",
        ),
        (
            "audience list",
            oig_token(json!({"aud": ["api://a", "api://b"]})),
            "the JWT audience does not include `api://idflow`",
        ),
        (
            "wrong subject",
            oig_token(json!({"sub": "0oa-someone-else"})),
            "the JWT subject is not the one allowed",
        ),
        (
            "no exp",
            sign(
                Algorithm::RS256,
                "test-rsa",
                RSA_SIGNER,
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": OIG_CLIENT}),
            ),
            "the JWT has no `exp` claim",
        ),
        (
            "wrong key",
            sign(Algorithm::RS256, "test-rsa", RSA_STRANGER, &base),
            "the JWT signature is invalid",
        ),
        (
            "unknown kid",
            sign(Algorithm::RS256, "rotated", RSA_SIGNER, &base),
            "no JWKS key matches the token's key id `rotated`",
        ),
        (
            "hmac",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &base,
                &EncodingKey::from_secret(b"k"),
            )
            .unwrap(),
            "JWT algorithm `HS256` is not accepted; use RS256 or ES256",
        ),
        (
            "unknown issuer",
            oig_token(json!({"iss": "https://evil.example.test"})),
            "the bearer token matches no configured caller",
        ),
        (
            "garbage",
            "a.b.c".to_owned(),
            "the bearer token matches no configured caller",
        ),
    ];
    for (label, token, message) in cases {
        let (status, body) = run(&server, "badge-access", &token, &badge_inputs()).await;
        assert_eq!(status, 401, "{label}: {body}");
        assert_eq!(body["error"]["message"], message, "{label}");
    }
    // An audience list that contains ours is fine.
    let listed = oig_token(json!({"aud": ["api://a", AUDIENCE]}));
    assert_eq!(
        run(&server, "badge-access", &listed, &badge_inputs())
            .await
            .0,
        202
    );

    // ES256, from a caller with its own `jwks` and no `sub` constraint.
    let es = sign(
        Algorithm::ES256,
        "test-ec",
        EC_SIGNER,
        &json!({"iss": ES_ISSUER, "aud": AUDIENCE, "sub": "anyone", "exp": now() + 60}),
    );
    let (status, body) = run(&server, "helpdesk-reset", &es, &json!({"userLogin": "ada"})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        server.run_count().await,
        3,
        "no refused token started a run"
    );
    server.stop().await;
}

#[tokio::test]
async fn static_token_callers_run_what_they_are_listed_for_and_get_403_otherwise() {
    let server = server().await;
    let (status, body) = run(
        &server,
        "helpdesk-reset",
        "ops-bot-secret-1",
        &json!({"userLogin": "ada"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = server.wait_run(body["runId"].as_str().unwrap()).await;
    assert_eq!(done.output.unwrap()["body"], "reset ada");
    assert_eq!(
        done.trigger,
        domain::run::TriggerInfo::Delegated(domain::run::DelegatedStart {
            caller: "ops-bot".into()
        })
    );

    let (status, body) = run(&server, "badge-access", "auditor-secret-2", &badge_inputs()).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        body["error"]["message"],
        "caller `auditor` may not run flow `badge-access`"
    );
    let oig = oig_token(json!({}));
    let (status, _) = run(&server, "audit-export", &oig, &json!({})).await;
    assert_eq!(status, 403);

    for (flow, why) in [("nope", "unknown"), ("whoami", "an api flow")] {
        let (status, body) = run(&server, flow, "ops-bot-secret-1", &json!({})).await;
        assert_eq!(status, 404, "{why}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!("no delegated flow `{flow}`")
        );
    }
    let (status, _) = run(&server, "nope", "not-a-caller", &json!({})).await;
    assert_eq!(status, 401, "anonymous callers cannot probe flow names");
    assert_eq!(server.run_count().await, 1);
    server.stop().await;
}

#[tokio::test]
async fn each_input_error_is_a_400_naming_the_input() {
    let server = server().await;
    let with = |patch: Value| {
        let mut inputs = badge_inputs();
        for (k, v) in patch.as_object().cloned().unwrap_or_default() {
            inputs[k] = v;
        }
        inputs
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"buildingRequested": "HQ", "endDate": "2025-06-30T17:00:00Z"}),
            "input `requesterEmail` is required (text)",
        ),
        (
            with(json!({"requesterEmail": null})),
            "input `requesterEmail` is required (text)",
        ),
        (
            with(json!({"requesterEmail": 42})),
            "input `requesterEmail` must be text, got a number",
        ),
        (
            with(json!({"floors": "3"})),
            "input `floors` must be number, got text",
        ),
        (
            with(json!({"escorted": "yes"})),
            "input `escorted` must be boolean, got text",
        ),
        (
            with(json!({"endDate": "30/06/2025"})),
            "input `endDate` must be an RFC 3339 date-time such as 2025-01-31T17:00:00Z, got `30/06/2025`",
        ),
        (
            with(json!({"endDate": 1751302800})),
            "input `endDate` must be datetime, got a number",
        ),
        (
            with(json!({"buildingRequested": {"name": "HQ"}})),
            "input `buildingRequested` must be text, got an object; delegated inputs take single scalar values",
        ),
        (
            with(json!({"floors": [1, 2]})),
            "input `floors` must be number, got a list; delegated inputs take single scalar values",
        ),
        (
            with(json!({"badgeColour": "red"})),
            "unknown input `badgeColour`: flow `badge-access` takes `accessRequestId`, `buildingRequested`, `endDate`, `escorted`, `floors`, `requesterEmail`",
        ),
        (
            with(json!({"accessRequestId": 5})),
            "input `accessRequestId` must be text, got a number",
        ),
        (
            json!(["ada@example.com"]),
            "the inputs must be a JSON object, got a list",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = run(&server, "badge-access", "ops-bot-secret-1", &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer["error"]["code"], "bad_request");
        assert_eq!(answer["error"]["message"], message, "{body}");
    }
    let malformed = server
        .http
        .post(server.url("/api/delegated/flows/badge-access/run"))
        .bearer_auth("ops-bot-secret-1")
        .header("content-type", "application/json")
        .body("{\"requesterEmail\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(server.run_count().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn access_request_id_is_accepted_on_every_delegated_flow() {
    let server = server().await;
    let mut inputs = badge_inputs();
    inputs["accessRequestId"] = json!("req00abc123");
    inputs["floors"] = json!(3);
    inputs["escorted"] = json!(false);
    let (status, body) = run(&server, "badge-access", "ops-bot-secret-1", &inputs).await;
    assert_eq!(status, 202, "{body}");
    let done = server.wait_run(body["runId"].as_str().unwrap()).await;
    assert_eq!(done.input, inputs);

    // Not declared by helpdesk-reset, accepted all the same.
    let v1 = json!({"userLogin": "ada", "accessRequestId": "0123456789abcdef01234567"});
    let (status, body) = run(&server, "helpdesk-reset", "ops-bot-secret-1", &v1).await;
    assert_eq!(status, 202, "{body}");
    let done = server.wait_run(body["runId"].as_str().unwrap()).await;
    assert_eq!(done.input, v1);
    server.stop().await;
}

#[tokio::test]
async fn api_flows_with_auth_jwt_take_valid_tokens_only() {
    let server = server().await;
    let url = server.url("/api/flows/whoami/invoke");
    let response = server
        .http
        .post(&url)
        .bearer_auth(oig_token(json!({"sub": "00u-ada"})))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sub"], "00u-ada");
    assert!(
        body["headers"].get("authorization").is_none(),
        "the token never reaches the run"
    );

    let refused = [
        (
            None,
            "missing bearer token: send `Authorization: Bearer <token>`",
        ),
        (
            Some(oig_token(json!({"aud": "api://other"}))),
            "the JWT audience does not include `api://idflow`",
        ),
        (
            Some(oig_token(json!({"exp": now() - 3600}))),
            "the JWT has expired",
        ),
        (
            Some(sign(
                Algorithm::RS256,
                "test-rsa",
                RSA_STRANGER,
                &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 60}),
            )),
            "the JWT signature is invalid",
        ),
    ];
    for (token, message) in refused {
        let mut request = server.http.post(&url).json(&json!({}));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{message}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["message"], message);
    }
    assert_eq!(server.run_count().await, 1);
    server.stop().await;
}

/// Records `oig.*` card calls and answers like the OIG API (`{}` on 201).
struct OigStub {
    calls: tokio::sync::mpsc::UnboundedSender<(String, Value)>,
}

#[async_trait::async_trait]
impl CardExecutor for OigStub {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        let _ = self.calls.send((call.card.clone(), call.input.clone()));
        Ok(json!({}))
    }
}

/// `idflow serve`'s pieces, assembled here so the runtime can carry the stub `oig` executor.
struct Harness {
    base: String,
    runtime: Arc<Runtime>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: TempDir,
}

impl Harness {
    async fn start(files: &[(&str, &str)], oig: Arc<dyn CardExecutor>) -> Harness {
        use local::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};
        let dir = TempDir::new("delegated");
        let flows_dir = dir.0.join("flows");
        std::fs::create_dir_all(&flows_dir).unwrap();
        for (name, text) in files {
            std::fs::write(flows_dir.join(name), text).unwrap();
        }
        let clock: Arc<dyn Clock> = idflow::serve::system_clock();
        let db = SqliteDb::open(dir.0.join("idflow.db")).unwrap();
        let flows = Arc::new(SqliteFlowStore::new(db.clone()));
        let runs = Arc::new(SqliteRunStore::new(db.clone()));
        let queue = Arc::new(SqliteRunQueue::new(db, clock.clone(), 5));
        let project = domain::flowfile::load_dir(&flows_dir);
        let report = domain::runner::sync_flows(flows.as_ref(), &project, clock.now())
            .await
            .unwrap();
        assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);
        let secrets = Arc::new(local::secrets::LocalSecrets::new(&flows_dir));
        let intake: Arc<dyn domain::ports::RunIntake> = queue.clone();
        let runtime = Arc::new(
            Runtime::new(
                flows,
                runs,
                queue,
                clock,
                secrets,
                project.config.clone(),
                RunnerConfig::default(),
            )
            .with_executor("oig", oig)
            .with_intake(intake),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = web::router::router(ApiState {
            runtime: runtime.clone(),
            admin: web::auth::AdminAccess::Open,
            body_limit: 64 * 1024,
        });
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let mut http_rx = rx.clone();
        let mut worker_rx = rx;
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = http_rx.wait_for(|stop| *stop).await;
                    })
                    .await;
            }),
            tokio::spawn(Worker::new(runtime.clone(), 4).run(async move {
                let _ = worker_rx.wait_for(|stop| *stop).await;
            })),
        ];
        Harness {
            base,
            runtime,
            shutdown,
            tasks,
            _dir: dir,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

const FAILING: &str = r#"
name: revoke-badge
description: Revoke a badge in the badge system
trigger:
  delegated:
    inputs: { badge: text, accessRequestId: { type: text, required: false } }
    callers: [ops-bot]
    report_to_request: true
steps:
  - card: flow.fail
    with: { message: "badge {{ input.badge }} is unknown" }
"#;

#[tokio::test]
async fn report_to_request_posts_the_outcome_to_the_access_request() {
    let (tx, mut calls) = tokio::sync::mpsc::unbounded_channel();
    let mut all = files();
    all.push(("revoke.yaml", FAILING));
    let harness = Harness::start(&all, Arc::new(OigStub { calls: tx })).await;
    let http = reqwest::Client::new();
    let post = |flow: &str, body: Value| {
        http.post(format!("{}/api/delegated/flows/{flow}/run", harness.base))
            .bearer_auth("ops-bot-secret-1")
            .json(&body)
            .send()
    };
    let next_call = async |calls: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>| {
        tokio::time::timeout(Duration::from_secs(20), calls.recv())
            .await
            .expect("a report within 20 s")
            .expect("stub alive")
    };

    let mut inputs = badge_inputs();
    inputs["accessRequestId"] = json!("req00abc123");
    let answer: Value = post("badge-access", inputs)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let run_id = answer["runId"].as_str().unwrap().to_owned();
    let (card, input) = next_call(&mut calls).await;
    assert_eq!(card, "oig.create_request_message");
    assert_eq!(input["request"], "req00abc123");
    assert_eq!(
        input["message"],
        format!(
            "idflow flow `badge-access` succeeded (run {run_id}).\nEmail the badge team once a building access request is approved\nResult: ada@example.com needs HQ North until 2025-06-30T17:00:00Z"
        )
    );

    let answer: Value = post(
        "revoke-badge",
        json!({"badge": "B-7", "accessRequestId": "0123456789abcdef01234567"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let run_id = answer["runId"].as_str().unwrap().to_owned();
    let (_, input) = next_call(&mut calls).await;
    assert_eq!(input["request"], "0123456789abcdef01234567");
    assert_eq!(
        input["message"],
        format!(
            "idflow flow `revoke-badge` failed (run {run_id}).\nRevoke a badge in the badge system\nError: badge B-7 is unknown"
        )
    );

    // Without an access request id, or from a flow that does not ask for reports: nothing posted.
    let quiet: Value = post("badge-access", badge_inputs())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other: Value = post(
        "helpdesk-reset",
        json!({"userLogin": "ada", "accessRequestId": "req1"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let mut ended = harness.runtime.subscribe();
    for id in [&quiet["runId"], &other["runId"]] {
        let id = domain::run::RunId::parse(id.as_str().unwrap()).unwrap();
        let run = harness
            .runtime
            .wait_for_end(&mut ended, id, Duration::from_secs(20))
            .await
            .unwrap()
            .expect("the run ends in time");
        assert_eq!(run.status.as_str(), "succeeded");
    }
    // Had the quiet runs reported, their messages would be ahead of this one in the channel.
    let mut inputs = badge_inputs();
    inputs["accessRequestId"] = json!("req-last");
    post("badge-access", inputs).await.unwrap();
    let (_, input) = next_call(&mut calls).await;
    assert_eq!(
        input["request"], "req-last",
        "no report for the two quiet runs"
    );
    harness.stop().await;
}
