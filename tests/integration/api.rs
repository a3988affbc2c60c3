//! The HTTP API of `idflow serve`: triggers, auth, sync responses, bad input, admin routes.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tests::TestServer;
use tests::flows::HELLO;

const GREET: &str = r#"
name: greet
trigger:
  api: { auth: token, respond: sync, timeout: 10s }
steps:
  - id: name
    card: object.get
    with: { object: "{{ input.body or {} }}", path: name, default: stranger }
  - card: flow.return
    with:
      status: 201
      headers: { x-greeted: "{{ steps.name }}" }
      body: { greeting: "Hi {{ steps.name }}", query: "{{ input.query }}", method: "{{ input.method }}" }
"#;

const CONFIG: &str = r#"
api:
  tokens:
    greet: "file:./greet.token"
"#;

async fn server() -> TestServer {
    TestServer::start(&[
        ("idflow.yaml", CONFIG),
        ("greet.token", "let-me-in\n"),
        ("hello.yaml", HELLO),
        ("greet.yaml", GREET),
    ])
    .await
}

#[tokio::test]
async fn manual_run_executes_and_history_shows_each_step() {
    let server = server().await;
    let response = server
        .post("/api/flows/hello/runs", &json!({"name": "Ada"}))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["runId"].as_str().expect("run id").to_owned();
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded");
    let detail = server.run_json(&id).await;
    assert_eq!(detail["flow"], "hello");
    assert_eq!(detail["trigger"]["kind"], "manual");
    assert_eq!(detail["input"], json!({"name": "Ada"}));
    assert_eq!(detail["steps"][0]["step"], "greeting");
    assert_eq!(detail["steps"][0]["input"], json!({"text": "Hello Ada"}));
    assert_eq!(detail["steps"][0]["output"], "Hello Ada");
    assert_eq!(detail["steps"][0]["attempts"], 1);
    assert!(
        detail["flowVersion"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    server.stop().await;
}

#[tokio::test]
async fn sync_invoke_answers_with_flow_return_status_headers_and_body() {
    let server = server().await;
    let response = server
        .http
        .post(server.url("/api/flows/greet/invoke?team=iam"))
        .header("x-api-client-token", "let-me-in")
        .json(&json!({"name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-greeted"], "Ada");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"greeting": "Hi Ada", "query": {"team": "iam"}, "method": "POST"})
    );
    server.stop().await;
}

#[tokio::test]
async fn client_token_is_accepted_in_the_query_and_never_reaches_the_run() {
    let server = server().await;
    let response = server
        .get("/api/flows/greet/invoke?clientToken=let-me-in&x=1")
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["query"],
        json!({"x": "1"}),
        "the token is stripped from the run input"
    );
    assert_eq!(body["method"], "GET");
    server.stop().await;
}

#[tokio::test]
async fn wrong_or_missing_tokens_get_401_and_start_nothing() {
    let server = server().await;
    for request in [
        server
            .http
            .post(server.url("/api/flows/greet/invoke"))
            .header("x-api-client-token", "nope")
            .json(&json!({})),
        server
            .http
            .post(server.url("/api/flows/greet/invoke?clientToken=let-me-i"))
            .json(&json!({})),
        server
            .http
            .post(server.url("/api/flows/greet/invoke"))
            .json(&json!({})),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(server.run_count().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let server = server().await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            server
                .http
                .post(server.url("/api/flows/greet/invoke"))
                .header("x-api-client-token", "let-me-in")
                .header("content-type", "application/json")
                .body("{\"name\": "),
            400,
            "bad_request",
        ),
        (
            server
                .http
                .post(server.url("/api/flows/greet/invoke"))
                .header("x-api-client-token", "let-me-in")
                .header("content-type", "application/xml")
                .body("<a/>"),
            415,
            "unsupported_media_type",
        ),
        (
            server
                .http
                .post(server.url("/api/flows/greet/invoke"))
                .header("x-api-client-token", "let-me-in")
                .header("content-type", "application/json")
                .body(format!("\"{}\"", "x".repeat(70 * 1024))),
            413,
            "payload_too_large",
        ),
        (
            server
                .http
                .post(server.url("/api/flows/nope/invoke"))
                .json(&json!({})),
            404,
            "not_found",
        ),
        (
            server
                .http
                .post(server.url("/api/flows/hello/invoke"))
                .json(&json!({})),
            404,
            "not_found",
        ),
        (
            server
                .http
                .post(server.url("/api/flows/nope/runs"))
                .json(&json!({})),
            404,
            "not_found",
        ),
        (
            server
                .http
                .post(server.url("/api/flows/hello/runs"))
                .header("content-type", "application/json")
                .body("[1,"),
            400,
            "bad_request",
        ),
        (
            server.http.get(server.url("/api/runs?status=done")),
            400,
            "bad_request",
        ),
        (
            server.http.get(server.url("/api/runs?limit=0")),
            400,
            "bad_request",
        ),
        (
            server.http.get(server.url("/api/runs/not-a-run")),
            404,
            "not_found",
        ),
        (
            server.http.delete(server.url("/api/flows")),
            405,
            "method_not_allowed",
        ),
        (
            server.http.get(server.url("/nothing/here")),
            404,
            "not_found",
        ),
    ];
    for (i, (request, status, code)) in cases.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "case {i}");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(body["error"]["code"], code, "case {i}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "case {i}: {body}"
        );
    }
    assert_eq!(
        server.run_count().await,
        0,
        "no bad request may start a run"
    );
    server.stop().await;
}

const SIGNED: &str = r#"
name: signed
trigger:
  api:
    auth: hmac
    hmac: { header: x-signature, prefix: "sha256=", encoding: hex, secret: "file:./hook.secret", timestamp_header: x-timestamp, tolerance: 5m }
steps:
  - { id: who, card: text.compose, with: { text: "{{ input.body.user }}" } }
"#;

fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn hmac_signatures_are_checked_with_a_timestamp_tolerance() {
    let server = TestServer::start(&[("signed.yaml", SIGNED), ("hook.secret", "whsec")]).await;
    let body = r#"{"user":"ada"}"#;
    let now = chrono::Utc::now().timestamp().to_string();
    let post = |sig: String, ts: String| {
        server
            .http
            .post(server.url("/api/flows/signed/invoke"))
            .header("content-type", "application/json")
            .header("x-signature", sig)
            .header("x-timestamp", ts)
            .body(body)
    };
    let ok = post(sign("whsec", &now, body), now.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let id = ok.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = {
        server.wait_run(&id).await;
        server.run_json(&id).await
    };
    assert_eq!(detail["steps"][0]["output"], "ada");
    assert!(
        detail["input"]["headers"].get("x-signature").is_none(),
        "the signature is not kept in the run input"
    );

    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    for (sig, ts) in [
        (sign("wrong", &now, body), now.clone()),
        (sign("whsec", &old, body), old.clone()),
        (sign("whsec", &now, "{}"), now.clone()),
        ("sha256=zz".to_owned(), now.clone()),
    ] {
        let response = post(sig, ts).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(server.run_count().await, 1);
    server.stop().await;
}

#[tokio::test]
async fn base64_hmac_without_timestamp_like_typeform() {
    let flow = r#"
name: typeform
trigger:
  api:
    auth: hmac
    hmac: { header: typeform-signature, prefix: "sha256=", encoding: base64, secret: "file:./tf.secret" }
steps:
  - { id: x, card: text.compose, with: { text: ok } }
"#;
    let server = TestServer::start(&[("typeform.yaml", flow), ("tf.secret", "tf-secret")]).await;
    let body = r#"{"form_response":{}}"#;
    let mut mac = Hmac::<Sha256>::new_from_slice(b"tf-secret").unwrap();
    mac.update(body.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let response = server
        .http
        .post(server.url("/api/flows/typeform/invoke"))
        .header("Typeform-Signature", format!("sha256={sig}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    server.stop().await;
}

#[tokio::test]
async fn sync_invoke_that_outlasts_its_timeout_answers_504_with_the_run_id() {
    let flow = r#"
name: slow
trigger:
  api: { auth: public, respond: sync, timeout: 1s }
steps:
  - wait: 1m
  - card: flow.return
    with: { body: late }
"#;
    let server = TestServer::start(&[("slow.yaml", flow)]).await;
    let response = server.post("/api/flows/slow/invoke", &json!({})).await;
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout");
    let id = body["runId"].as_str().expect("the 504 names the run");
    let detail = server.run_json(id).await;
    assert_eq!(detail["status"], "waiting");
    server.stop().await;
}

#[tokio::test]
async fn admin_routes_require_the_configured_bearer_token() {
    let server = TestServer::start(&[
        ("idflow.yaml", "admin: { token: \"file:./admin.token\" }\n"),
        ("admin.token", "s3cret-admin"),
        ("hello.yaml", HELLO),
    ])
    .await;
    let no_token = server.get("/api/runs").await;
    assert_eq!(no_token.status(), 401);
    let wrong = server
        .http
        .get(server.url("/api/flows"))
        .bearer_auth("s3cret-admim")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let start = server.post("/api/flows/hello/runs", &json!({})).await;
    assert_eq!(start.status(), 401);
    let ok = server
        .http
        .get(server.url("/api/flows"))
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let flows: Value = ok.json().await.unwrap();
    assert_eq!(flows["flows"][0]["name"], "hello");
    server.stop().await;
}

#[tokio::test]
async fn failed_runs_can_be_rerun_and_waiting_runs_cancelled() {
    let failing = r#"
name: failing
steps:
  - { id: check, card: flow.fail, if: "{{ input.fail }}", with: { message: "asked to fail" } }
  - { id: after, card: text.compose, with: { text: done } }
"#;
    let waiting = "name: sleepy\nsteps:\n  - wait: 1h\n  - { id: x, card: text.compose, with: { text: late } }\n";
    let server = TestServer::start(&[("failing.yaml", failing), ("sleepy.yaml", waiting)]).await;
    let id = server.start_run("failing", &json!({"fail": true})).await;
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "failed");
    let detail = server.run_json(&id).await;
    assert_eq!(detail["error"]["message"], "asked to fail");
    assert_eq!(detail["error"]["step"], "check");
    assert_eq!(detail["steps"][0]["status"], "failed");

    let rerun = server
        .http
        .post(server.url(&format!("/api/runs/{id}/rerun")))
        .send()
        .await
        .unwrap();
    assert_eq!(rerun.status(), 202);
    let new_id = rerun.json::<Value>().await.unwrap()["runId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_id, id);
    server.wait_run(&new_id).await;
    let detail = server.run_json(&new_id).await;
    assert_eq!(detail["trigger"], json!({"kind": "rerun", "of": id}));
    assert_eq!(detail["input"], json!({"fail": true}));

    let sleepy = server.start_run("sleepy", &json!({})).await;
    // Cancelling is valid in any unfinished state; the run never runs its later steps.
    let cancelled = server
        .http
        .post(server.url(&format!("/api/runs/{sleepy}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let run = server.wait_run(&sleepy).await;
    assert_eq!(run.status.as_str(), "cancelled");
    let again = server
        .http
        .post(server.url(&format!("/api/runs/{sleepy}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        200,
        "cancelling a cancelled run is idempotent"
    );
    let ended = server
        .http
        .post(server.url(&format!("/api/runs/{new_id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ended.status(),
        409,
        "a run that already failed cannot be cancelled"
    );

    let page: Value = server
        .get_json("/api/runs?flow=failing&status=failed")
        .await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 2);
    server.stop().await;
}

const TWICE: &str = r#"
name: twice
steps:
  - id: doubled
    card: text.compose
    with: { text: "{{ input.name }}{{ input.name }}" }
"#;

/// A step value too big for a page of history comes in the run's detail as a preview linking to
/// its step record, which gives it whole; small values and the run's input stay whole.
#[tokio::test]
async fn big_step_values_are_previewed_and_linked_to_their_whole_record() {
    let server = TestServer::start(&[("twice.yaml", TWICE)]).await;
    // Below the default body limit; the step doubles it past the preview threshold (64 KiB).
    let name = "x".repeat(40 * 1024);
    let response = server
        .post("/api/flows/twice/runs", &json!({ "name": name }))
        .await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["runId"].as_str().expect("run id").to_owned();
    assert_eq!(server.wait_run(&id).await.status.as_str(), "succeeded");
    let detail = server.run_json(&id).await;
    assert_eq!(
        detail["input"],
        json!({ "name": name }),
        "the run input is whole"
    );
    let output = &detail["steps"][0]["output"];
    assert_eq!(output["idflow_truncated"], json!(true), "{output}");
    assert_eq!(output["field"], json!("/output"));
    let preview = output["preview"].as_str().expect("a preview");
    assert!(
        preview.starts_with("\"xxx") && preview.len() <= 2048,
        "{preview}"
    );
    let href = output["href"].as_str().expect("a link");
    assert_eq!(href, format!("/api/runs/{id}/steps/0"));
    let record: Value = server.get_json(href).await;
    let whole = record["output"].as_str().unwrap_or_default();
    assert!(
        whole == format!("{name}{name}"),
        "the record is whole: {} bytes of {}",
        whole.len(),
        2 * name.len()
    );
    assert_eq!(record["step"], json!("doubled"));
    let missing = server.get(&format!("/api/runs/{id}/steps/7")).await;
    assert_eq!(missing.status(), 404, "a record the run does not have");
    let bad = server.get(&format!("/api/runs/{id}/steps/first")).await;
    assert_eq!(bad.status(), 400, "a step number that is not one");
    server.stop().await;
}
