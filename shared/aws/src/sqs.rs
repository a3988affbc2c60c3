//! [`SqsRunQueue`]: the run queue on a standard SQS queue whose redrive policy moves a message to a
//! dead-letter queue after the max receive count.
//!
//! SQS accepts a delete or visibility change with the receipt of an earlier delivery of the same
//! message, where the port promises [`QueueError::StaleReceipt`]. The adapter therefore remembers,
//! per message id, the latest receipt it handed out, and refuses a receipt it knows was superseded.
//! Receipts it has never seen (a Lambda worker gets them from the SQS event, not from `receive`) go
//! to SQS as they are, which refuses made-up ones itself.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use super::queue_error;
use domain::ports::{Delivery, QueueError, QueueMessage, RunQueue};

/// SQS's longest delay.
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// SQS's longest visibility timeout (12 hours).
const MAX_VISIBILITY_SECONDS: u64 = 12 * 60 * 60;
/// SQS's longest long poll.
const MAX_WAIT_SECONDS: u64 = 20;
/// Remembered receipts before the memory is cleared; a cleared receipt is simply passed to SQS.
const MAX_TRACKED: usize = 10_000;

/// Error codes SQS (and its emulators) answer for a receipt that no longer works.
const STALE_CODES: &[&str] = &[
    "ReceiptHandleIsInvalid",
    "InvalidParameterValue",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
    "InvalidIdFormat",
];

/// A [`RunQueue`] on SQS.
pub struct SqsRunQueue {
    client: Client,
    queue_url: String,
    dead_letter_url: String,
    receipts: Mutex<Receipts>,
}

/// What this process handed out: the latest receipt per message id and the message of each receipt.
#[derive(Default)]
struct Receipts {
    latest: HashMap<String, String>,
    message_of: HashMap<String, String>,
}

impl Receipts {
    fn record(&mut self, message_id: &str, receipt: &str) {
        if self.message_of.len() >= MAX_TRACKED {
            *self = Receipts::default();
        }
        self.latest
            .insert(message_id.to_owned(), receipt.to_owned());
        self.message_of
            .insert(receipt.to_owned(), message_id.to_owned());
    }

    /// Whether `receipt` is known to belong to an earlier delivery.
    fn is_superseded(&self, receipt: &str) -> bool {
        self.message_of
            .get(receipt)
            .and_then(|message_id| self.latest.get(message_id))
            .is_some_and(|latest| latest != receipt)
    }

    fn forget(&mut self, receipt: &str) {
        if let Some(message_id) = self.message_of.remove(receipt) {
            self.latest.remove(&message_id);
        }
    }
}

impl SqsRunQueue {
    /// A queue on `queue_url` whose redrive policy sends dead letters to `dead_letter_url`.
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        dead_letter_url: impl Into<String>,
    ) -> Self {
        SqsRunQueue {
            client,
            queue_url: queue_url.into(),
            dead_letter_url: dead_letter_url.into(),
            receipts: Mutex::new(Receipts::default()),
        }
    }

    /// Creates `name` and its dead-letter queue `name-dlq` with a redrive policy after
    /// `max_receive_count` receives, as template.yaml does (for tests and development against an
    /// emulator). Returns the queue and dead-letter queue URLs.
    pub async fn create_queues(
        client: &Client,
        name: &str,
        max_receive_count: u32,
    ) -> Result<(String, String), QueueError> {
        let dlq = client
            .create_queue()
            .queue_name(format!("{name}-dlq"))
            .send()
            .await
            .map_err(queue_error)?;
        let dlq_url = dlq.queue_url.unwrap_or_default();
        let attributes = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(queue_error)?;
        let dlq_arn = attributes
            .attributes
            .and_then(|mut map| map.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        let policy = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        let queue = client
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
            .send()
            .await
            .map_err(queue_error)?;
        Ok((queue.queue_url.unwrap_or_default(), dlq_url))
    }

    fn receipts(&self) -> std::sync::MutexGuard<'_, Receipts> {
        self.receipts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_current(&self, receipt: &str) -> Result<(), QueueError> {
        if self.receipts().is_superseded(receipt) {
            Err(QueueError::StaleReceipt)
        } else {
            Ok(())
        }
    }
}

/// A delivery error that means the receipt no longer works, or the SDK error as it is.
fn receipt_error<E, R>(error: aws_sdk_sqs::error::SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if error.code().is_some_and(|code| STALE_CODES.contains(&code)) {
        QueueError::StaleReceipt
    } else {
        queue_error(error)
    }
}

fn seconds(duration: Duration, max: u64) -> i32 {
    i32::try_from(duration.as_secs().min(max)).unwrap_or(i32::MAX)
}

/// Parses a body sent by [`SqsRunQueue::send`] (or by the schedule function).
pub fn parse_body(body: &str) -> Result<QueueMessage, serde_json::Error> {
    serde_json::from_str(body)
}

#[async_trait]
impl RunQueue for SqsRunQueue {
    async fn send(&self, message: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        if delay > MAX_DELAY {
            return Err(QueueError::Backend(Box::new(DelayTooLong { delay })));
        }
        let body = serde_json::to_string(message).map_err(|e| QueueError::Backend(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(seconds(delay, MAX_DELAY.as_secs()))
            .send()
            .await
            .map_err(queue_error)?;
        Ok(())
    }

    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(seconds(visibility, MAX_VISIBILITY_SECONDS))
            .wait_time_seconds(seconds(wait, MAX_WAIT_SECONDS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(queue_error)?;
        let mut deliveries = Vec::new();
        for message in output.messages.unwrap_or_default() {
            let (Some(receipt), Some(body)) = (message.receipt_handle(), message.body()) else {
                continue;
            };
            let parsed = match parse_body(body) {
                Ok(parsed) => parsed,
                Err(error) => {
                    // Left alone, it is received again until the redrive policy moves it to the
                    // dead-letter queue, where an operator can look at it.
                    tracing::warn!(error = %error, "ignoring a queue message that is not a run message");
                    continue;
                }
            };
            let receive_count = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|count| count.parse().ok())
                .unwrap_or(1);
            if let Some(message_id) = message.message_id() {
                self.receipts().record(message_id, receipt);
            }
            deliveries.push(Delivery {
                receipt: receipt.to_owned(),
                message: parsed,
                receive_count,
            });
        }
        Ok(deliveries)
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.check_current(receipt)?;
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(receipt_error)?;
        self.receipts().forget(receipt);
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        self.check_current(receipt)?;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds(visibility, MAX_VISIBILITY_SECONDS))
            .send()
            .await
            .map_err(receipt_error)?;
        Ok(())
    }

    async fn dead_letters(&self, max: u32) -> Result<Vec<QueueMessage>, QueueError> {
        // A zero visibility timeout peeks: the dead letters stay for an operator to inspect or redrive.
        let output = self
            .client
            .receive_message()
            .queue_url(&self.dead_letter_url)
            .max_number_of_messages(i32::try_from(max.clamp(1, 10)).unwrap_or(10))
            .visibility_timeout(0)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(queue_error)?;
        let mut letters: Vec<(u64, QueueMessage)> = output
            .messages
            .unwrap_or_default()
            .iter()
            .filter_map(|message| {
                let parsed = parse_body(message.body()?).ok()?;
                let sent = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                Some((sent, parsed))
            })
            .collect();
        letters.sort_by_key(|(sent, _)| *sent);
        Ok(letters.into_iter().map(|(_, message)| message).collect())
    }
}

/// A delay longer than SQS allows.
#[derive(Debug, thiserror::Error)]
#[error("delay of {delay:?} exceeds the 15 minute maximum")]
pub struct DelayTooLong {
    /// The refused delay.
    pub delay: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_superseded_receipts_only() {
        let mut receipts = Receipts::default();
        receipts.record("m1", "r1");
        assert!(!receipts.is_superseded("r1"), "the latest receipt works");
        receipts.record("m1", "r2");
        assert!(
            receipts.is_superseded("r1"),
            "an earlier delivery's receipt"
        );
        assert!(!receipts.is_superseded("r2"));
        assert!(
            !receipts.is_superseded("from-a-lambda-event"),
            "unknown receipts go to SQS"
        );
        receipts.forget("r2");
        assert!(
            !receipts.is_superseded("r1"),
            "deleted messages are forgotten"
        );
    }
}
