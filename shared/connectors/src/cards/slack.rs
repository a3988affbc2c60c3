//! `slack.post_message`: posts to Slack with a bot token (Web API `chat.postMessage`) or an incoming
//! webhook.
//!
//! The connection in `idflow.yaml` says which: `slack: { token: "env:SLACK_BOT_TOKEN" }` (optionally
//! `base_url`, default `https://slack.com/api`, so tests and proxies can stand in) or
//! `slack: { webhook: "env:SLACK_WEBHOOK_URL" }` (the webhook URL is a secret: whoever has it can post).
//!
//! Slack answers most errors with HTTP 200 and `{ "ok": false, "error": "channel_not_found" }`; those
//! become [`CardError::Failed`] with Slack's error as the code (retryable only for Slack's own
//! transient errors). A 429 carries `Retry-After`: a short wait is [`CardError::Status`] with the
//! wait, which a step's retry policy honours; a long one is [`CardError::Throttled`], which parks the
//! run instead of holding a worker.
//!
//! Every destination comes from `idflow.yaml` (the `base_url` and the webhook secret), so the egress
//! policy trusts it; the client never follows a redirect ([`crate::egress::configured_client`]), so no
//! answer can carry the token anywhere else. Answers are read and their waits worked out by
//! [`crate::client`], as for the other connectors.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};

use crate::client::{self, ReadError};
use domain::cards::fields::{Fields, invalid};
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::model::SecretRef;
use domain::ports::{Clock, Secrets};

/// The Web API base URL when the connection does not set `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://slack.com/api";
/// The connection used when a step names none.
pub const DEFAULT_CONNECTION: &str = "slack";
/// A 429 asking to wait longer than this parks the run ([`CardError::Throttled`]).
pub const MAX_INLINE_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Slack errors worth trying again.
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Executes `slack.post_message`.
pub struct SlackExecutor {
    client: reqwest::Client,
    secrets: Arc<dyn Secrets>,
    /// Reads `Retry-After` dates.
    clock: Arc<dyn Clock>,
}

impl SlackExecutor {
    /// An executor with its own HTTP client (rustls, no redirects: Slack does not redirect API calls,
    /// and a redirect must not carry the token elsewhere).
    pub fn new(
        secrets: Arc<dyn Secrets>,
        clock: Arc<dyn Clock>,
    ) -> Result<SlackExecutor, reqwest::Error> {
        let client = crate::egress::configured_client()?;
        Ok(SlackExecutor {
            client,
            secrets,
            clock,
        })
    }

    async fn post(&self, call: &CardCall) -> Result<Value, CardError> {
        let input = Fields::of_call(&call.input)?;
        let message = Message::from_input(&input)?;
        let name = input.optional_text("connection")?;
        let name = name.as_deref().unwrap_or(DEFAULT_CONNECTION);
        let connection = call.project.connections.get(name).ok_or_else(|| {
            failed(
                "no_connection",
                format!(
                    "no connection `{name}` in idflow.yaml: add `connections: {{ {name}: {{ token: \"env:SLACK_BOT_TOKEN\" }} }}`"
                ),
            )
        })?;
        match (connection.get("token"), connection.get("webhook")) {
            (Some(token), None) => {
                let channel = message.channel.clone().ok_or_else(|| {
                    invalid("channel", "a bot token posts to a channel: give `channel`")
                })?;
                let token = self.secret(name, "token", token).await?;
                let base = match connection.get("base_url") {
                    None | Some(Value::Null) => DEFAULT_BASE_URL,
                    Some(Value::String(base)) => base.trim_end_matches('/'),
                    Some(_) => {
                        return Err(failed(
                            "invalid_connection",
                            format!("connection `{name}`: `base_url` must be a URL"),
                        ));
                    }
                };
                self.web_api(
                    &format!("{base}/chat.postMessage"),
                    &token,
                    &channel,
                    &message,
                )
                .await
            }
            (None, Some(webhook)) => {
                let url = self.secret(name, "webhook", webhook).await?;
                self.webhook(&url, &message).await
            }
            _ => Err(failed(
                "invalid_connection",
                format!(
                    "connection `{name}` needs either `token` (a bot token) or `webhook` (an incoming webhook URL), as secret references"
                ),
            )),
        }
    }

    async fn secret(
        &self,
        connection: &str,
        key: &str,
        value: &Value,
    ) -> Result<String, CardError> {
        let reference = value
            .as_str()
            .and_then(|text| SecretRef::parse(text).ok())
            .ok_or_else(|| {
                failed(
                    "invalid_connection",
                    format!(
                        "connection `{connection}`: `{key}` must be a secret reference such as `env:SLACK_{}`",
                        key.to_ascii_uppercase()
                    ),
                )
            })?;
        let secret = self
            .secrets
            .resolve(&reference)
            .await
            .map_err(|error| failed("secret_unavailable", error.to_string()))?;
        Ok(secret.expose().to_owned())
    }

    async fn web_api(
        &self,
        url: &str,
        token: &str,
        channel: &str,
        message: &Message,
    ) -> Result<Value, CardError> {
        let mut body = Map::new();
        body.insert("channel".into(), json!(channel));
        if let Some(text) = &message.text {
            body.insert("text".into(), json!(text));
        }
        if let Some(blocks) = &message.blocks {
            body.insert("blocks".into(), blocks.clone());
        }
        if let Some(ts) = &message.thread_ts {
            body.insert("thread_ts".into(), json!(ts));
        }
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            failed(
                "invalid_connection",
                "the Slack token is not a valid header value",
            )
        })?;
        auth.set_sensitive(true);
        let request = self
            .client
            .post(url)
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Value::Object(body).to_string());
        let answer = client::send(request).await.map_err(|error| match error {
            ReadError::TooLarge(too_large) => too_large.into(),
            ReadError::Transport(error) => network(error),
        })?;
        let status = answer.status;
        let retry = answer.retry_after(self.clock.as_ref());
        let bytes = answer.body;
        if !status.is_success() {
            return Err(status_error(
                status.as_u16(),
                retry,
                &bytes,
                "chat.postMessage",
            ));
        }
        let answer: Value = serde_json::from_slice(&bytes).map_err(|_| CardError::Status {
            status: status.as_u16(),
            message: "chat.postMessage answered something that is not JSON".into(),
            detail: Some(Value::String(String::from_utf8_lossy(&bytes).into_owned())),
            retry_after: None,
        })?;
        if answer.get("ok") == Some(&Value::Bool(true)) {
            return Ok(json!({
                "ok": true,
                "channel": answer.get("channel").cloned().unwrap_or(Value::Null),
                "ts": answer.get("ts").cloned().unwrap_or(Value::Null),
            }));
        }
        let code = answer
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error")
            .to_owned();
        let mut text = format!("slack chat.postMessage: {code}");
        // Slack explains some errors (invalid_blocks) in response_metadata.messages.
        if let Some(details) = answer
            .pointer("/response_metadata/messages")
            .and_then(Value::as_array)
        {
            let details: Vec<&str> = details.iter().filter_map(Value::as_str).collect();
            if !details.is_empty() {
                text.push_str(": ");
                text.push_str(&details.join("; "));
            }
        }
        Err(CardError::Failed {
            retryable: TRANSIENT_ERRORS.contains(&code.as_str()),
            code,
            message: text,
        })
    }

    async fn webhook(&self, url: &str, message: &Message) -> Result<Value, CardError> {
        let mut body = Map::new();
        if let Some(text) = &message.text {
            body.insert("text".into(), json!(text));
        }
        if let Some(blocks) = &message.blocks {
            body.insert("blocks".into(), blocks.clone());
        }
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(Value::Object(body).to_string());
        let answer = client::send(request).await.map_err(|error| match error {
            ReadError::TooLarge(too_large) => too_large.into(),
            // The URL is the secret: never show it.
            ReadError::Transport(error) => network(error.without_url()),
        })?;
        let status = answer.status;
        let retry = answer.retry_after(self.clock.as_ref());
        let bytes = answer.body;
        if status.is_success() {
            return Ok(json!({ "ok": true }));
        }
        let code = String::from_utf8_lossy(&bytes).trim().to_owned();
        let is_code = !code.is_empty()
            && code.len() <= 64
            && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if status.is_client_error() && status.as_u16() != 429 && is_code {
            return Err(CardError::Failed {
                message: format!("slack webhook: {code}"),
                code,
                retryable: false,
            });
        }
        Err(status_error(status.as_u16(), retry, &bytes, "the webhook"))
    }
}

#[async_trait]
impl CardExecutor for SlackExecutor {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        if call.card != "slack.post_message" {
            return Err(failed(
                "unknown_card",
                format!("the slack executor does not run `{}`", call.card),
            ));
        }
        self.post(call).await
    }
}

/// A validated message.
#[derive(Debug)]
struct Message {
    channel: Option<String>,
    text: Option<String>,
    blocks: Option<Value>,
    thread_ts: Option<String>,
}

impl Message {
    fn from_input(input: &Fields<'_>) -> Result<Message, CardError> {
        let text_field = |field: &str| -> Result<Option<String>, CardError> {
            Ok(input.optional_text(field)?.map(Cow::into_owned))
        };
        let blocks = match input.optional_list("blocks")? {
            None | Some([]) => None,
            Some(items) => {
                if let Some(i) = items.iter().position(|b| !b.is_object()) {
                    return Err(invalid(
                        &format!("blocks[{i}]"),
                        "expected a Block Kit block (an object with a `type`)",
                    ));
                }
                Some(Value::Array(items.to_vec()))
            }
        };
        let message = Message {
            channel: text_field("channel")?,
            text: text_field("text")?,
            blocks,
            thread_ts: text_field("thread_ts")?,
        };
        if message.text.is_none() && message.blocks.is_none() {
            return Err(invalid("text", "a message needs `text` or `blocks`"));
        }
        Ok(message)
    }
}

fn failed(code: &str, message: impl Into<String>) -> CardError {
    CardError::Failed {
        code: code.to_owned(),
        message: message.into(),
        retryable: false,
    }
}

fn network(error: reqwest::Error) -> CardError {
    if error.is_timeout() {
        return CardError::Network(format!("slack did not answer in time: {error}"));
    }
    CardError::Network(format!("cannot reach slack: {error}"))
}

/// A non-2xx answer: a long 429 parks the run, anything else is a status error.
fn status_error(status: u16, retry: Option<Duration>, body: &[u8], what: &str) -> CardError {
    if status == 429 {
        let after = retry.unwrap_or(Duration::from_secs(1));
        if after > MAX_INLINE_RETRY_AFTER {
            return CardError::Throttled {
                after,
                message: format!("slack rate limit on {what}"),
            };
        }
        return CardError::Status {
            status,
            message: format!(
                "slack rate limit on {what}: retry after {}s",
                after.as_secs()
            ),
            detail: None,
            retry_after: Some(after),
        };
    }
    let text = String::from_utf8_lossy(body).into_owned();
    CardError::Status {
        status,
        message: format!("slack {what} answered {status}"),
        detail: (!text.is_empty()).then_some(Value::String(text)),
        retry_after: retry,
    }
}

#[cfg(test)]
mod tests;
