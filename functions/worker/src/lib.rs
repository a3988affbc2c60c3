//! The `worker` Lambda: the SQS consumer of the run queue.
//!
//! Each record names a run (`{"run_id": "..."}`); the function hands it to
//! [`Runtime::process`], which claims the run, advances it and checkpoints after every step. Waits
//! and rate-limit pauses are not slept through: the runner re-queues the run with an SQS delay
//! (at most 15 minutes per hop) and the invocation ends.
//!
//! # Partial batch failures
//! The event source mapping has `FunctionResponseTypes: [ReportBatchItemFailures]`: the answer lists
//! only the records to retry ([`SqsBatchResponse`]), so a bad message never makes the others of its
//! batch run again. A record is retried when processing failed in a way that may succeed later
//! (the store or queue was unavailable) or when its body is not a run message (it is received again
//! until the queue's redrive policy moves it to the dead-letter queue, where an operator can look
//! at it).
//!
//! # Poison messages
//! A record received more than `IDFLOW_MAX_RECEIVE_COUNT` times, or arriving from the dead-letter
//! queue (when the dead-letter queue is also an event source of this function and
//! `IDFLOW_DLQ_ARN` names it), fails its run with the code `poison_message` and a reason in the run
//! history, and is consumed. The run is then findable by status `failed` in the admin API and by
//! its `run_id` in the logs.

use std::sync::Arc;

use aws::emf::{self, Sink};
use aws::lambda::LambdaConfig;
use aws::sqs::parse_body;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use connectors::StandardExecutors;
use connectors::cards::email::EmailExecutor;
use domain::cards::CardExecutor;
use domain::cards::table::TableExecutor;
use domain::ports::Delivery;
use domain::runner::{Disposition, Runtime};
use tracing::Instrument;

/// Gives the cold start's runtime what only the worker needs, since only it runs cards: the
/// executors `idflow serve` registers, plus what template.yaml configures — the `table` cards on
/// DynamoDB, `email.send` through SES, and Scheduler wake-ups for long waits.
pub fn equip(
    runtime: Runtime,
    config: &LambdaConfig,
    sdk: &aws::SdkConfig,
) -> Result<Runtime, reqwest::Error> {
    let mut runtime = runtime.with_standard_executors()?;
    if let Some(blobs) = config.blob_store(sdk) {
        runtime = runtime.with_blobs(blobs);
    }
    if let Some(store) = config.table_store(sdk) {
        runtime = runtime.with_executor("table", Arc::new(TableExecutor::new(store)));
    }
    if let Some(ses) = config.ses(sdk) {
        runtime = runtime.with_adapters(|ports| {
            let email = EmailExecutor::new(ports.secrets).with_ses(ses);
            Ok::<_, reqwest::Error>(vec![("email", Arc::new(email) as Arc<dyn CardExecutor>)])
        })?;
    }
    if let Some(wakeups) = config.wakeups(sdk) {
        runtime = runtime.with_wakeups(wakeups);
    }
    Ok(runtime)
}

/// What a worker invocation needs beyond the runtime.
#[derive(Clone)]
pub struct Worker {
    /// The runtime built at the cold start.
    pub runtime: Arc<Runtime>,
    /// The dead-letter queue's ARN, when it is an event source of this function.
    pub dead_letter_arn: Option<String>,
    /// Where the queue-age metric goes.
    pub metrics: Sink,
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed (done, waiting or re-queued by the runner): SQS deletes the message.
    Done,
    /// Reported as a batch item failure: SQS delivers it again.
    Retry,
    /// The run was failed as a poison message, with this reason.
    Poisoned(String),
    /// A dead letter that is not a run message: consumed and logged.
    Dropped,
}

impl Worker {
    /// Processes every record of the batch concurrently and lists the ones to retry.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let outcomes =
            futures::future::join_all(event.records.iter().map(|record| async move {
                (record.message_id.clone(), self.record(record).await)
            }))
            .await;
        let mut response = SqsBatchResponse::default();
        for (message_id, outcome) in outcomes {
            if outcome == Outcome::Retry {
                match message_id {
                    Some(id) => response.add_failure(id),
                    None => tracing::error!("an SQS record without a message id cannot be retried"),
                }
            }
        }
        response
    }

    /// Processes one record.
    pub async fn record(&self, record: &SqsMessage) -> Outcome {
        let from_dead_letters = self.dead_letter_arn.is_some()
            && record.event_source_arn.as_deref() == self.dead_letter_arn.as_deref();
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let message_id = record.message_id.as_deref().unwrap_or("");
        let message = match parse_body(record.body.as_deref().unwrap_or("")) {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(message_id, from_dead_letters, error = %error, "SQS record is not a run message");
                return if from_dead_letters {
                    Outcome::Dropped
                } else {
                    Outcome::Retry
                };
            }
        };
        let run_id = message.run_id;
        let span =
            tracing::info_span!("record", %run_id, message_id, receive_count, from_dead_letters);
        async move {
            let runtime = &self.runtime;
            if !from_dead_letters {
                let sent = record
                    .attributes
                    .get("SentTimestamp")
                    .and_then(|t| t.parse().ok());
                emf::queue_age(&self.metrics, runtime.now(), sent, &run_id.to_string());
            }
            let max = runtime.config().max_receive_count;
            let poison = if from_dead_letters {
                Some(format!(
                    "the run's queue message was moved to the dead-letter queue after the worker failed to process it {max} times"
                ))
            } else if receive_count > max {
                Some(format!(
                    "the run's queue message was received {receive_count} times, more than the limit of {max}"
                ))
            } else {
                None
            };
            if let Some(reason) = poison {
                tracing::error!(%reason, "poison message: failing the run");
                runtime.fail_unclaimed(run_id, "poison_message", &reason).await;
                return match runtime.run(run_id).await {
                    Ok(Some(run)) if !run.status.is_terminal() => {
                        // Another worker holds its lease: that worker settles it.
                        tracing::error!(status = run.status.as_str(), "poison message: the run is held by another worker and was not failed");
                        Outcome::Poisoned(reason)
                    }
                    Ok(_) => Outcome::Poisoned(reason),
                    Err(error) => {
                        tracing::warn!(error = %error, "poison message: cannot tell whether the run was failed, will retry");
                        Outcome::Retry
                    }
                };
            }
            let delivery = Delivery {
                receipt: record.receipt_handle.clone().unwrap_or_default(),
                message,
                receive_count,
            };
            match runtime.process(&delivery).await {
                Disposition::Done => Outcome::Done,
                Disposition::Retry => Outcome::Retry,
            }
        }
        .instrument(span)
        .await
    }
}
