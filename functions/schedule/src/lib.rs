//! The `schedule` Lambda: the target of every `idflow-<flow>` EventBridge Scheduler schedule.
//!
//! Scheduler invokes it with the input `idflow deploy` set on the schedule
//! ([`aws::scheduler::target_input`]):
//! `{"flow": "<flow>", "scheduled_time": "<aws.scheduler.scheduled-time>"}`, where Scheduler
//! replaces the placeholder with the fire time. The function starts the flow's run with the same
//! dedupe key the local scheduler of `idflow serve` uses
//! ([`domain::runner::start_scheduled_run`]), so Scheduler's at-least-once delivery starts one
//! run per fire time: a repeated invocation answers the first run's id with `duplicate: true`.

use chrono::{DateTime, Utc};
use domain::ports::Created;
use domain::runner::{RunnerError, Runtime};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What Scheduler passes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ScheduleInput {
    /// The schedule flow to run.
    pub flow: String,
    /// The fire time, RFC 3339 (`<aws.scheduler.scheduled-time>`).
    pub scheduled_time: String,
}

/// The function's answer (visible in Scheduler's and Lambda's logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Started {
    /// The run of this fire time; empty when the flow is paused.
    pub run_id: String,
    /// The run existed already: this invocation was a repeated delivery.
    pub duplicate: bool,
    /// The flow is paused: no run was started, and none will be for this fire time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// Why no run was started. Scheduler retries a failed invocation under its retry policy, which
/// helps only for [`ScheduleError::Runner`] errors that are retryable.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The input is not the JSON object the schedule should carry.
    #[error(
        "the schedule input must be {{\"flow\": \"<flow>\", \"scheduled_time\": \"<aws.scheduler.scheduled-time>\"}} (as `idflow deploy` sets it): {0}"
    )]
    BadInput(#[source] serde_json::Error),
    /// `scheduled_time` is not a time.
    #[error(
        "`scheduled_time` must be an RFC 3339 time such as 2026-01-01T09:00:00Z, got `{0}`: is the schedule's input using the <aws.scheduler.scheduled-time> placeholder?"
    )]
    BadTime(String),
    /// The flow is unknown or the stores failed.
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

/// Decodes the input, starts the run of that fire time (at most once), and says which it is.
pub async fn handle(runtime: &Runtime, input: Value) -> Result<Started, ScheduleError> {
    let input: ScheduleInput = serde_json::from_value(input).map_err(ScheduleError::BadInput)?;
    let at = DateTime::parse_from_rfc3339(input.scheduled_time.trim())
        .map_err(|_| ScheduleError::BadTime(input.scheduled_time.clone()))?
        .with_timezone(&Utc);
    let span = tracing::info_span!("schedule", flow = %input.flow, trigger = "schedule", scheduled_time = %at.to_rfc3339());
    let _enter = span.enter();
    // A paused flow's fire time is skipped (logged where it was refused), not failed: a failure
    // would only make Scheduler retry it.
    let (run_id, created) =
        match domain::runner::start_scheduled_run(runtime, &input.flow, at).await {
            Ok(started) => started,
            Err(RunnerError::FlowPaused { .. }) => {
                return Ok(Started {
                    run_id: String::new(),
                    duplicate: false,
                    paused: true,
                });
            }
            Err(error) => return Err(error.into()),
        };
    let duplicate = matches!(created, Created::Duplicate(_));
    tracing::info!(%run_id, duplicate, "schedule fired");
    Ok(Started {
        run_id: run_id.to_string(),
        duplicate,
        paused: false,
    })
}
