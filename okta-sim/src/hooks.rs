//! Event hooks from Okta's side: the one-time verification request and batched deliveries.
//!
//! Okta verifies a hook once with a GET carrying `x-okta-verification-challenge` and expects the
//! challenge echoed as `{"verification": "…"}`. It then POSTs batches of System Log events in the
//! `com.okta.event_hook` envelope with the configured `Authorization` value, waits 3 seconds for
//! an answer, and retries a batch once after a timeout or a 5xx.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::{lock, okta_time};
use crate::context::Shared;
use crate::error::HookError;
use crate::state::LoggedEvent;

/// How one batch went.
#[derive(Debug)]
pub struct BatchReport {
    /// The envelope's `eventId` (the same on the retry, as with Okta).
    pub event_id: String,
    /// Events in the batch.
    pub events: usize,
    /// Requests sent (1, or 2 after a retry).
    pub attempts: u32,
    /// `Ok(status)` for a 2xx answer, the last failure otherwise.
    pub outcome: Result<u16, HookError>,
}

/// How a whole delivery went.
#[derive(Debug, Default)]
pub struct DeliveryReport {
    /// One entry per batch, in order.
    pub batches: Vec<BatchReport>,
}

impl DeliveryReport {
    /// Whether every batch got a 2xx answer.
    pub fn all_delivered(&self) -> bool {
        self.batches.iter().all(|b| b.outcome.is_ok())
    }

    /// Total requests sent, retries included.
    pub fn attempts(&self) -> u32 {
        self.batches.iter().map(|b| b.attempts).sum()
    }
}

fn client(sim: &Shared) -> Result<reqwest::Client, reqwest::Error> {
    let timeout = *lock(&sim.hook_timeout);
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent("Okta Event Hooks (okta-sim)")
        .build()
}

pub(crate) async fn verify(sim: &Shared, url: &str, authorization: &str) -> Result<(), HookError> {
    let transport = |source| HookError::Transport {
        url: url.to_string(),
        source,
    };
    let challenge = sim.next_token(40);
    let response = client(sim)
        .map_err(transport)?
        .get(url)
        .header("x-okta-verification-challenge", &challenge)
        .header("authorization", authorization)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    if !response.status().is_success() {
        return Err(HookError::Status {
            url: url.to_string(),
            status,
        });
    }
    let body = response.text().await.map_err(transport)?;
    let echoed = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
        v.get("verification")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if echoed.as_deref() == Some(challenge.as_str()) {
        Ok(())
    } else {
        Err(HookError::Verification {
            url: url.to_string(),
            body,
        })
    }
}

async fn post_once(
    client: &reqwest::Client,
    url: &str,
    authorization: &str,
    envelope: &Value,
) -> Result<u16, HookError> {
    let response = client
        .post(url)
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(envelope.to_string())
        .send()
        .await
        .map_err(|source| HookError::Transport {
            url: url.to_string(),
            source,
        })?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        Ok(status)
    } else {
        Err(HookError::Status {
            url: url.to_string(),
            status,
        })
    }
}

pub(crate) async fn deliver(
    sim: &Shared,
    url: &str,
    authorization: &str,
    events: Vec<Value>,
    batch_size: usize,
) -> DeliveryReport {
    let mut report = DeliveryReport::default();
    let client = match client(sim) {
        Ok(client) => client,
        Err(source) => {
            report.batches.push(BatchReport {
                event_id: String::new(),
                events: events.len(),
                attempts: 0,
                outcome: Err(HookError::Transport {
                    url: url.to_string(),
                    source,
                }),
            });
            return report;
        }
    };
    let hook_id = sim.next_token(17);
    for batch in events.chunks(batch_size.max(1)) {
        let event_id = sim.next_uuid();
        let envelope = json!({
            "eventType": "com.okta.event_hook",
            "eventTypeVersion": "1.0",
            "cloudEventsVersion": "0.1",
            "source": format!("{}/api/v1/eventHooks/who{hook_id}", sim.base_url),
            "eventId": event_id,
            "data": { "events": batch },
            "eventTime": okta_time(sim.clock_now()),
            "contentType": "application/json",
        });
        let mut attempts = 1;
        let mut outcome = post_once(&client, url, authorization, &envelope).await;
        if outcome.as_ref().is_err_and(HookError::is_retryable) {
            attempts += 1;
            outcome = post_once(&client, url, authorization, &envelope).await;
        }
        report.batches.push(BatchReport {
            event_id,
            events: batch.len(),
            attempts,
            outcome,
        });
    }
    report
}

/// Events per delivery, as Okta batches them.
const FORWARD_BATCH: usize = 50;

/// A running event hook: delivers the System Log events logged after it started, as they are
/// logged. Delivery stops when it is dropped.
pub struct EventForwarder {
    reports: tokio::sync::mpsc::UnboundedReceiver<BatchReport>,
    task: tokio::task::JoinHandle<()>,
}

impl EventForwarder {
    pub(crate) fn start(shared: Arc<Shared>, url: &str, authorization: &str) -> EventForwarder {
        let (mut tail, mut last) = {
            let inner = lock(&shared.inner);
            (
                inner.org.log_tail.subscribe(),
                inner.org.events.last().map_or(0, |e| e.seq),
            )
        };
        let (sender, reports) = tokio::sync::mpsc::unbounded_channel();
        let url = url.to_owned();
        let authorization = authorization.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let batch: Vec<Value> = {
                    let inner = lock(&shared.inner);
                    let new: Vec<&LoggedEvent> =
                        inner.org.events.iter().filter(|e| e.seq > last).collect();
                    if let Some(newest) = new.last() {
                        last = newest.seq;
                    }
                    new.into_iter().map(|e| e.event.clone()).collect()
                };
                if batch.is_empty() {
                    // Marks the tail seen before waiting, so an event logged meanwhile wakes us.
                    tail.borrow_and_update();
                    let waiting = { lock(&shared.inner).org.events.last().map_or(0, |e| e.seq) };
                    if waiting > last {
                        continue;
                    }
                    if tail.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                let report = deliver(&shared, &url, &authorization, batch, FORWARD_BATCH).await;
                for batch in report.batches {
                    // Nobody reading the reports is fine: delivery goes on.
                    let _ = sender.send(batch);
                }
            }
        });
        EventForwarder { reports, task }
    }

    /// How the next batch went, once it has been delivered (or has failed).
    pub async fn next_report(&mut self) -> Option<BatchReport> {
        self.reports.recv().await
    }
}

impl Drop for EventForwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
