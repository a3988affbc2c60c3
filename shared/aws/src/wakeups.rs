//! [`SchedulerWakeups`]: waits longer than SQS's 15-minute delay, as one-time EventBridge Scheduler
//! schedules that send the run's queue message when the wait ends.
//!
//! Each wake-up is a schedule `idflow-wake-<run id>-<unix seconds>` in the idflow schedule group with
//! the expression `at(yyyy-mm-ddThh:mm:ss)` in UTC, flexible time window off, and the run queue as
//! its target (Scheduler's SQS target: the queue ARN, the message body as input). Scheduler deletes
//! it once it has fired (`ActionAfterCompletion: DELETE`). The name is derived from the run and the
//! time, so scheduling the same wake-up twice (a restart re-queueing waiting runs) finds the
//! existing schedule instead of creating a second one.
//!
//! [`SchedulerSchedules::list`](super::SchedulerSchedules) skips these schedules: they share the
//! group with the flows' schedules but are not flows.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target,
};
use chrono::{DateTime, Duration as ChronoDuration, SubsecRound, Utc};

use super::queue_error;
use domain::ports::{QueueError, QueueMessage, Wakeups};
use domain::run::RunId;

/// Prefix of every wake-up schedule's name.
pub const WAKE_PREFIX: &str = "idflow-wake-";
/// Starts the description of every wake-up schedule; [`super::SchedulerSchedules`] skips them by it.
pub const WAKE_DESCRIPTION: &str = "idflow wake-up of run";

/// A [`Wakeups`] on EventBridge Scheduler, targeting the run queue.
#[derive(Clone)]
pub struct SchedulerWakeups {
    client: Client,
    group: String,
    /// The ARN of the run queue (not its URL).
    queue_arn: String,
    /// The role Scheduler assumes to send to the queue.
    role_arn: String,
}

impl std::fmt::Debug for SchedulerWakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerWakeups")
            .field("group", &self.group)
            .field("queue_arn", &self.queue_arn)
            .finish_non_exhaustive()
    }
}

impl SchedulerWakeups {
    /// Wake-ups in schedule `group` that send to the queue `queue_arn` as `role_arn`.
    pub fn new(
        client: Client,
        group: impl Into<String>,
        queue_arn: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        SchedulerWakeups {
            client,
            group: group.into(),
            queue_arn: queue_arn.into(),
            role_arn: role_arn.into(),
        }
    }

    /// The schedule name of the wake-up of `run` at `at` (at most 50 characters, within
    /// Scheduler's 64).
    pub fn schedule_name(run: RunId, at: DateTime<Utc>) -> String {
        format!("{WAKE_PREFIX}{run}-{}", whole_second(at).timestamp())
    }

    /// The schedule expression of a wake-up at `at`: `at(2026-03-02T10:00:00)`, in UTC, rounded up
    /// to the second so the run is never woken early.
    pub fn expression(at: DateTime<Utc>) -> String {
        format!("at({})", whole_second(at).format("%Y-%m-%dT%H:%M:%S"))
    }
}

/// `at` rounded up to a whole second.
fn whole_second(at: DateTime<Utc>) -> DateTime<Utc> {
    let down = at.trunc_subsecs(0);
    if down < at {
        down + ChronoDuration::seconds(1)
    } else {
        down
    }
}

fn invalid(error: aws_sdk_scheduler::error::BuildError) -> QueueError {
    QueueError::Backend(Box::new(error))
}

#[async_trait]
impl Wakeups for SchedulerWakeups {
    async fn schedule_wakeup(
        &self,
        message: &QueueMessage,
        at: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError::Backend(Box::new(e)))?;
        let target = Target::builder()
            .arn(&self.queue_arn)
            .role_arn(&self.role_arn)
            .input(body)
            .build()
            .map_err(invalid)?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(invalid)?;
        let name = Self::schedule_name(message.run_id, at);
        let created = self
            .client
            .create_schedule()
            .name(&name)
            .group_name(&self.group)
            .schedule_expression(Self::expression(at))
            .schedule_expression_timezone("UTC")
            .description(format!("{WAKE_DESCRIPTION} {}", message.run_id))
            .flexible_time_window(window)
            .target(target)
            .state(ScheduleState::Enabled)
            .action_after_completion(ActionAfterCompletion::Delete)
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(run_id = %message.run_id, schedule = %name, %at, "wake-up scheduled");
                Ok(())
            }
            // The same run and time: already scheduled (a restart re-queued a waiting run).
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(error) => Err(queue_error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_expressions_round_up_to_the_second() {
        let at: DateTime<Utc> = "2026-03-02T10:00:00.250Z".parse().expect("time");
        assert_eq!(
            SchedulerWakeups::expression(at),
            "at(2026-03-02T10:00:01)",
            "never early"
        );
        let exact: DateTime<Utc> = "2026-03-02T10:00:00Z".parse().expect("time");
        assert_eq!(
            SchedulerWakeups::expression(exact),
            "at(2026-03-02T10:00:00)"
        );
        let run = RunId::new_at(exact);
        let name = SchedulerWakeups::schedule_name(run, exact);
        assert_eq!(name, format!("idflow-wake-{run}-{}", exact.timestamp()));
        assert!(name.len() <= 64, "{name} fits Scheduler's name limit");
    }
}
