//! `slack.post_message` against a local stand-in for Slack that checks the request shape Slack
//! documents for `chat.postMessage` and incoming webhooks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::SlackExecutor;
use chrono::DateTime;
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::clock::ManualClock;
use domain::model::{ProjectConfig, SecretRef};
use domain::ports::{SecretError, SecretValue, Secrets};
use domain::run::RunId;

const TOKEN: &str = "xoxb-test-token";

/// Secrets from a fixed map.
struct FixedSecrets(BTreeMap<String, String>);

#[async_trait]
impl Secrets for FixedSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        self.0
            .get(&reference.to_string())
            .map(SecretValue::new)
            .ok_or_else(|| SecretError::Missing {
                reference: reference.to_string(),
            })
    }
}

/// What the stand-in received.
type Seen = Arc<Mutex<Vec<Value>>>;

/// `chat.postMessage` as Slack documents it: bearer token, JSON body with `channel` and `text` or
/// `blocks`; answers by channel.
async fn post_message(seen: Seen, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("authorization") != format!("Bearer {TOKEN}") {
        return axum::Json(json!({ "ok": false, "error": "invalid_auth" })).into_response();
    }
    if !header("content-type").starts_with("application/json") {
        return axum::Json(json!({ "ok": false, "error": "invalid_form_data" })).into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return axum::Json(json!({ "ok": false, "error": "invalid_json" })).into_response();
    };
    seen.lock().unwrap().push(body.clone());
    let channel = body["channel"].as_str().unwrap_or_default();
    if body.get("text").is_none() && body.get("blocks").is_none() {
        return axum::Json(json!({ "ok": false, "error": "no_text" })).into_response();
    }
    match channel {
        "#busy" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "3")], "").into_response(),
        "#flooded" => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "120")], "").into_response(),
        "#missing" => axum::Json(json!({ "ok": false, "error": "channel_not_found" })).into_response(),
        "#broken" => axum::Json(json!({ "ok": false, "error": "invalid_blocks", "response_metadata": { "messages": ["[ERROR] missing required field: text [json-pointer:/blocks/0/text]"] } })).into_response(),
        "#down" => (StatusCode::SERVICE_UNAVAILABLE, "upstream down").into_response(),
        // Retry-After as an HTTP date, two minutes after the server's own `Date`.
        "#later" => (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("retry-after", "Wed, 21 Oct 2015 07:30:00 GMT"),
            ],
            "",
        )
            .into_response(),
        "#huge" => vec![b' '; crate::client::MAX_RESPONSE_BYTES + 1].into_response(),
        _ => axum::Json(json!({ "ok": true, "channel": "C0123", "ts": "1700000000.000100", "message": { "text": body["text"] } })).into_response(),
    }
}

/// An incoming webhook: JSON body, answers `ok` as text, or Slack's error codes as text.
async fn webhook(seen: Seen, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    seen.lock().unwrap().push(body.clone());
    if body["text"] == "archived" {
        return (StatusCode::GONE, "channel_is_archived").into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

async fn stand_in() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let api = seen.clone();
    let hook = seen.clone();
    let app = Router::new()
        .route(
            "/api/chat.postMessage",
            post(move |headers: HeaderMap, body: Bytes| post_message(api.clone(), headers, body)),
        )
        .route(
            "/services/T0/B0/secret",
            post(move |body: Bytes| webhook(hook.clone(), body)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn executor(base: &str) -> SlackExecutor {
    let secrets = BTreeMap::from([
        ("env:SLACK_BOT_TOKEN".to_owned(), TOKEN.to_owned()),
        (
            "env:SLACK_WEBHOOK_URL".to_owned(),
            format!("{base}/services/T0/B0/secret"),
        ),
    ]);
    // A clock far from the stand-in's `Date`: waits are measured on the server's clock.
    let clock = ManualClock::new(DateTime::from_timestamp(1_750_000_000, 0).unwrap());
    SlackExecutor::new(Arc::new(FixedSecrets(secrets)), Arc::new(clock)).unwrap()
}

async fn call(base: &str, input: Value) -> Result<Value, CardError> {
    let mut project = ProjectConfig::default();
    project.connections.insert(
        "slack".into(),
        json!({ "token": "env:SLACK_BOT_TOKEN", "base_url": format!("{base}/api") }),
    );
    project.connections.insert(
        "alerts".into(),
        json!({ "webhook": "env:SLACK_WEBHOOK_URL" }),
    );
    project.connections.insert(
        "literal".into(),
        json!({ "webhook": "https://hooks.slack.com/services/x" }),
    );
    project
        .connections
        .insert("unset".into(), json!({ "token": "env:NOT_SET" }));
    let call = CardCall {
        card: "slack.post_message".into(),
        input,
        timeout: Duration::from_secs(10),
        run_id: RunId::parse("01JH0000000000000000000000").unwrap(),
        step: "notify".into(),
        attempt: 1,
        project: Arc::new(project),
    };
    executor(base).execute(&call).await
}

#[tokio::test]
async fn posts_with_a_bot_token_as_slack_documents() {
    let (base, seen) = stand_in().await;
    let blocks =
        json!([{ "type": "section", "text": { "type": "mrkdwn", "text": "*locked out*" } }]);
    let output = call(
        &base,
        json!({ "channel": "#identity", "text": "ada is locked out", "blocks": blocks, "thread_ts": "1699.0001" }),
    )
    .await
    .expect("posted");
    assert_eq!(
        output,
        json!({ "ok": true, "channel": "C0123", "ts": "1700000000.000100" })
    );
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![
            json!({ "channel": "#identity", "text": "ada is locked out", "blocks": blocks, "thread_ts": "1699.0001" })
        ]
    );
}

#[tokio::test]
async fn posts_through_an_incoming_webhook() {
    let (base, seen) = stand_in().await;
    let output = call(
        &base,
        json!({ "connection": "alerts", "channel": "#ignored", "text": "hello" }),
    )
    .await
    .expect("posted");
    assert_eq!(output, json!({ "ok": true }));
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![json!({ "text": "hello" })]
    );
    match call(&base, json!({ "connection": "alerts", "text": "archived" })).await {
        Err(CardError::Failed { code, message, .. }) => {
            assert_eq!(code, "channel_is_archived");
            assert!(
                !message.contains("secret"),
                "the webhook URL is never shown: {message}"
            );
        }
        other => panic!("expected channel_is_archived, got {other:?}"),
    }
}

#[tokio::test]
async fn slack_errors_become_step_errors_with_slacks_code() {
    let (base, _) = stand_in().await;
    let check = |channel: &'static str, expected: CardError| {
        let base = base.clone();
        async move {
            let result = call(&base, json!({ "channel": channel, "text": "hi" })).await;
            assert_eq!(result, Err(expected), "{channel}");
        }
    };
    check(
        "#missing",
        CardError::Failed {
            code: "channel_not_found".into(),
            message: "slack chat.postMessage: channel_not_found".into(),
            retryable: false,
        },
    )
    .await;
    check(
        "#broken",
        CardError::Failed {
            code: "invalid_blocks".into(),
            message: "slack chat.postMessage: invalid_blocks: [ERROR] missing required field: text [json-pointer:/blocks/0/text]".into(),
            retryable: false,
        },
    )
    .await;
    check(
        "#busy",
        CardError::Status {
            status: 429,
            message: "slack rate limit on chat.postMessage: retry after 3s".into(),
            detail: None,
            retry_after: Some(Duration::from_secs(3)),
        },
    )
    .await;
    check(
        "#flooded",
        CardError::Throttled {
            after: Duration::from_secs(120),
            message: "slack rate limit on chat.postMessage".into(),
        },
    )
    .await;
    check(
        "#down",
        CardError::Status {
            status: 503,
            message: "slack chat.postMessage answered 503".into(),
            detail: Some(json!("upstream down")),
            retry_after: None,
        },
    )
    .await;
    // Slack's reader took `Retry-After` in seconds only: a date gave no wait, and the run retried
    // after a second instead of parking until the date.
    check(
        "#later",
        CardError::Throttled {
            after: Duration::from_secs(120),
            message: "slack rate limit on chat.postMessage".into(),
        },
    )
    .await;
    // Slack's reader stopped at 1 MiB with a retryable network error; now the one cap and error of
    // every connector.
    check(
        "#huge",
        CardError::Failed {
            code: "response_too_large".into(),
            message: "the response is larger than 10 MiB".into(),
            retryable: false,
        },
    )
    .await;
}

#[tokio::test]
async fn bad_input_and_connections_are_reported_before_calling_slack() {
    let (base, seen) = stand_in().await;
    let check = |input: Value, expected: (&'static str, &'static str)| {
        let base = base.clone();
        async move {
            let (code, message) = match call(&base, input.clone()).await {
                Err(CardError::InvalidInput { field, message }) => (field, message),
                Err(CardError::Failed { code, message, .. }) => (code, message),
                other => panic!("{input}: expected an error, got {other:?}"),
            };
            assert_eq!(code, expected.0, "{input}");
            assert!(message.contains(expected.1), "{input}: {message}");
        }
    };
    check(
        json!({ "channel": "#a" }),
        ("text", "needs `text` or `blocks`"),
    )
    .await;
    check(json!({ "text": "hi" }), ("channel", "give `channel`")).await;
    check(
        json!({ "channel": "#a", "blocks": ["section"] }),
        ("blocks[0]", "Block Kit block"),
    )
    .await;
    check(
        json!({ "connection": "nope", "channel": "#a", "text": "hi" }),
        ("no_connection", "no connection `nope`"),
    )
    .await;
    check(
        json!({ "connection": "literal", "text": "hi" }),
        ("invalid_connection", "must be a secret reference"),
    )
    .await;
    check(
        json!({ "connection": "unset", "channel": "#a", "text": "hi" }),
        ("secret_unavailable", "env:NOT_SET"),
    )
    .await;
    assert!(seen.lock().unwrap().is_empty(), "nothing reached slack");
}

#[tokio::test]
async fn a_redirect_is_never_followed_so_the_token_stays_with_slack() {
    // A listener nobody serves: a connection to it would wait in its accept queue.
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsewhere.set_nonblocking(true).unwrap();
    let target = format!("http://{}/steal", elsewhere.local_addr().unwrap());
    let redirect = move || {
        let target = target.clone();
        async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]) }
    };
    let app = Router::new()
        .route("/api/chat.postMessage", post(redirect.clone()))
        .route("/services/T0/B0/secret", post(redirect));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    for input in [
        json!({ "channel": "#identity", "text": "hi" }),
        json!({ "connection": "alerts", "text": "hi" }),
    ] {
        match call(&base, input.clone()).await {
            Err(CardError::Status { status: 307, .. }) => {}
            other => panic!("{input}: expected the 307 as an error, got {other:?}"),
        }
    }
    assert!(
        elsewhere.accept().is_err(),
        "nothing (no token, no message) was sent where the redirect pointed"
    );
}
