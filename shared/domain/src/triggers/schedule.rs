//! `trigger: { schedule: { cron | rate | at, timezone } }`: runs started on an EventBridge
//! Scheduler expression. `idflow serve`'s scheduler and the `schedule` Lambda start them through
//! `runner::start_scheduled_run`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Kind, TriggerKind};
use crate::flowfile::flow::FlowDecoder;
use crate::flowfile::tree::Node;

/// `trigger: { schedule: { cron | rate | at, timezone } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTrigger {
    /// The expression exactly as EventBridge Scheduler takes it: `cron(...)`, `rate(...)` or `at(...)`.
    pub expression: String,
    /// IANA zone name; `None` is UTC.
    pub timezone: Option<String>,
}

/// What a scheduled run records about its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleStart {
    /// The fire time the run was started for (not when the scheduler got to it).
    pub scheduled_for: DateTime<Utc>,
}

impl Kind for ScheduleTrigger {
    const KIND: TriggerKind = TriggerKind {
        name: "schedule",
        description: "started on a cron, rate or one-time schedule",
        example: "trigger: { schedule: { cron: \"0 9 * * ? *\" } }",
    };

    fn decode(decoder: &mut FlowDecoder<'_>, node: &Node, path: &str) -> Option<Self> {
        // The reader of the schedule block still sits in the flow reader, where its time-zone
        // check is being reworked in parallel; it moves here once that change has landed.
        decoder.schedule_trigger(node, path)
    }

    fn schema() -> serde_json::Value {
        use crate::schema::{object, props, text};
        object(
            props(vec![
                (
                    "cron",
                    text("EventBridge cron expression, such as `0 8 * * ? *`"),
                ),
                ("rate", text("a rate, such as `15 minutes`")),
                (
                    "at",
                    text("a one-time date and time, such as `2026-01-05T08:00:00`"),
                ),
                ("timezone", text("IANA time zone (default UTC)")),
            ]),
            &[],
            false,
        )
    }

    fn summary(&self) -> String {
        match &self.timezone {
            Some(tz) => format!("{} ({tz})", self.expression),
            None => self.expression.clone(),
        }
    }

    fn test_input_defaults(&self, now: DateTime<Utc>) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "scheduled_for": now.to_rfc3339() }))
    }
}
