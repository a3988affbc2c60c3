//! [`SchedulerSchedules`]: one EventBridge Scheduler schedule per schedule flow.
//!
//! Each schedule is named `idflow-<flow>` in the idflow schedule group and targets the `schedule`
//! function with `{"flow": "<flow>", "scheduled_time": "<aws.scheduler.scheduled-time>"}`, so the
//! function can dedupe Scheduler's at-least-once deliveries by flow and scheduled time. Scheduler
//! does not validate expressions the way idflow does (and emulators accept anything):
//! [`domain::schedule`] validates them before they get here.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, ScheduleState, Target};

use super::store_error;
use domain::ports::{ScheduleSpec, Schedules, StoreError};

/// Prefix of every schedule name.
pub const NAME_PREFIX: &str = "idflow-";
/// The default schedule group (template.yaml creates it).
pub const DEFAULT_GROUP: &str = "idflow";
/// Ends the description of a schedule deployed without a time zone. Scheduler reports such a
/// schedule as `UTC`; the note lets `list` give back exactly what was put.
const NO_TIMEZONE_NOTE: &str = "(no time zone: UTC)";
/// Scheduler's longest schedule name.
const MAX_NAME: usize = 64;

/// A [`Schedules`] on EventBridge Scheduler.
#[derive(Clone)]
pub struct SchedulerSchedules {
    client: Client,
    group: String,
    /// The ARN of the `schedule` function.
    target_arn: String,
    /// The role Scheduler assumes to invoke it.
    role_arn: String,
}

/// The input Scheduler passes to the `schedule` function.
pub fn target_input(flow: &str) -> String {
    serde_json::json!({ "flow": flow, "scheduled_time": "<aws.scheduler.scheduled-time>" })
        .to_string()
}

impl SchedulerSchedules {
    /// Schedules in `group` that invoke `target_arn` as `role_arn`.
    pub fn new(
        client: Client,
        group: impl Into<String>,
        target_arn: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        SchedulerSchedules {
            client,
            group: group.into(),
            target_arn: target_arn.into(),
            role_arn: role_arn.into(),
        }
    }

    /// Creates a schedule group, as template.yaml does (for tests against an emulator).
    pub async fn create_group(client: &Client, group: &str) -> Result<(), StoreError> {
        client
            .create_schedule_group()
            .name(group)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    fn name(flow: &str) -> Result<String, StoreError> {
        let name = format!("{NAME_PREFIX}{flow}");
        if name.len() > MAX_NAME {
            return Err(StoreError::Backend(Box::new(NameTooLong {
                flow: flow.to_owned(),
            })));
        }
        Ok(name)
    }

    fn target(&self, flow: &str) -> Result<Target, StoreError> {
        Target::builder()
            .arn(&self.target_arn)
            .role_arn(&self.role_arn)
            .input(target_input(flow))
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))
    }

    fn description(spec: &ScheduleSpec) -> String {
        match &spec.timezone {
            Some(timezone) => format!("idflow flow {} ({timezone})", spec.flow),
            None => format!("idflow flow {} {NO_TIMEZONE_NOTE}", spec.flow),
        }
    }

    fn window() -> Result<FlexibleTimeWindow, StoreError> {
        FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| StoreError::Backend(Box::new(e)))
    }
}

#[async_trait]
impl Schedules for SchedulerSchedules {
    async fn put(&self, spec: &ScheduleSpec) -> Result<(), StoreError> {
        let name = Self::name(&spec.flow)?;
        let created = self
            .client
            .create_schedule()
            .name(&name)
            .group_name(&self.group)
            .schedule_expression(&spec.expression)
            .set_schedule_expression_timezone(spec.timezone.clone())
            .description(Self::description(spec))
            .flexible_time_window(Self::window()?)
            .target(self.target(&spec.flow)?)
            .state(ScheduleState::Enabled)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conflict_exception()) =>
            {
                // Update replaces every field, so a time zone that was removed goes away too.
                self.client
                    .update_schedule()
                    .name(&name)
                    .group_name(&self.group)
                    .schedule_expression(&spec.expression)
                    .set_schedule_expression_timezone(spec.timezone.clone())
                    .description(Self::description(spec))
                    .flexible_time_window(Self::window()?)
                    .target(self.target(&spec.flow)?)
                    .state(ScheduleState::Enabled)
                    .send()
                    .await
                    .map_err(store_error)?;
                Ok(())
            }
            Err(error) => Err(store_error(error)),
        }
    }

    async fn delete(&self, flow: &str) -> Result<bool, StoreError> {
        let name = Self::name(flow)?;
        match self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.group)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(store_error(error)),
        }
    }

    async fn list(&self) -> Result<Vec<ScheduleSpec>, StoreError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let output = self
                .client
                .list_schedules()
                .group_name(&self.group)
                .name_prefix(NAME_PREFIX)
                .set_next_token(token)
                .send()
                .await
                .map_err(store_error)?;
            names.extend(
                output
                    .schedules
                    .iter()
                    .filter_map(|summary| summary.name().map(str::to_owned)),
            );
            token = output.next_token;
            if token.is_none() {
                break;
            }
        }
        let mut specs = Vec::with_capacity(names.len());
        for name in names {
            let Some(flow) = name.strip_prefix(NAME_PREFIX) else {
                continue;
            };
            let schedule = self
                .client
                .get_schedule()
                .name(&name)
                .group_name(&self.group)
                .send()
                .await
                .map_err(store_error)?;
            if schedule
                .description
                .as_deref()
                .is_some_and(|d| d.starts_with(super::wakeups::WAKE_DESCRIPTION))
            {
                // A run's wake-up ([`super::SchedulerWakeups`]), not a flow's schedule.
                continue;
            }
            let unset = schedule
                .description
                .as_deref()
                .is_some_and(|d| d.ends_with(NO_TIMEZONE_NOTE));
            specs.push(ScheduleSpec {
                flow: flow.to_owned(),
                expression: schedule.schedule_expression.unwrap_or_default(),
                timezone: schedule.schedule_expression_timezone.filter(|_| !unset),
            });
        }
        specs.sort_by(|a, b| a.flow.cmp(&b.flow));
        Ok(specs)
    }
}

/// A flow name too long for a Scheduler schedule name.
#[derive(Debug, thiserror::Error)]
#[error(
    "flow name `{flow}` is too long for an EventBridge schedule name (64 characters with the `idflow-` prefix)"
)]
pub struct NameTooLong {
    /// The flow.
    pub flow: String,
}
