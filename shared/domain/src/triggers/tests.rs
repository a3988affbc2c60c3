use std::collections::BTreeMap;
use std::time::Duration;

use super::api::{ApiAuth, ApiStart, ApiTrigger, Respond};
use super::delegated::{DelegatedStart, DelegatedTrigger};
use super::event::{EventStart, EventTrigger};
use super::helper::{HelperStart, HelperTrigger};
use super::schedule::{ScheduleStart, ScheduleTrigger};
use super::*;

/// Each trigger kind has one row, its name unique, and each variant's row is in the table the
/// parser, the API schema and the console read.
#[test]
fn every_trigger_kind_has_one_row_in_the_table() {
    let names: std::collections::BTreeSet<_> = Trigger::KINDS.iter().map(|k| k.name).collect();
    assert_eq!(names.len(), Trigger::KINDS.len(), "kind names are unique");
    let every = [
        Trigger::Manual,
        Trigger::Schedule(ScheduleTrigger {
            expression: "rate(1 hour)".into(),
            timezone: None,
        }),
        Trigger::Event(EventTrigger {
            okta: vec![],
            filter: None,
        }),
        Trigger::Api(ApiTrigger {
            auth: ApiAuth::Public,
            respond: Respond::Async,
            timeout: Duration::from_secs(30),
        }),
        Trigger::Helper(HelperTrigger {
            inputs: BTreeMap::new(),
        }),
        Trigger::Delegated(DelegatedTrigger {
            inputs: BTreeMap::new(),
            callers: vec![],
            report_to_request: false,
        }),
    ];
    assert_eq!(every.len(), Trigger::KINDS.len());
    for trigger in &every {
        assert!(
            Trigger::KINDS.contains(trigger.info()),
            "{} is in Trigger::KINDS",
            trigger.kind()
        );
    }
    assert_eq!(Trigger::KINDS.first().map(|k| k.name), Some("manual"));
}

/// What a run records about its start reads and writes exactly as stored runs and checkpoint
/// fixtures wrote it before each kind had its own start record: the same `kind` tag and fields,
/// and [`TriggerInfo::kind`] names the tag.
#[test]
fn run_trigger_records_keep_their_stored_json() {
    let parent = RunId::parse("01JDZ0000000000000000000AB").unwrap_or_else(|| panic!("run id"));
    let cases = [
        (TriggerInfo::Manual, r#"{"kind":"manual"}"#),
        (
            TriggerInfo::Schedule(ScheduleStart {
                scheduled_for: "2026-01-01T08:00:00Z".parse().unwrap_or_default(),
            }),
            r#"{"kind":"schedule","scheduled_for":"2026-01-01T08:00:00Z"}"#,
        ),
        (
            TriggerInfo::Event(EventStart {
                event_uuid: "u-1".into(),
                event_type: "user.lifecycle.create".into(),
            }),
            r#"{"kind":"event","event_uuid":"u-1","event_type":"user.lifecycle.create"}"#,
        ),
        (
            TriggerInfo::Api(ApiStart {
                method: "POST".into(),
            }),
            r#"{"kind":"api","method":"POST"}"#,
        ),
        (
            TriggerInfo::Helper(HelperStart {
                parent,
                step: "each[2]".into(),
            }),
            r#"{"kind":"helper","parent":"01JDZ0000000000000000000AB","step":"each[2]"}"#,
        ),
        (
            TriggerInfo::Delegated(DelegatedStart {
                caller: "okta-access-requests".into(),
            }),
            r#"{"kind":"delegated","caller":"okta-access-requests"}"#,
        ),
        (
            TriggerInfo::Rerun { of: parent },
            r#"{"kind":"rerun","of":"01JDZ0000000000000000000AB"}"#,
        ),
    ];
    for (info, stored) in cases {
        let written = serde_json::to_string(&info).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written, stored);
        let read: TriggerInfo = serde_json::from_str(stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, info);
        let tag: serde_json::Value = serde_json::from_str(stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tag["kind"], info.kind(), "{stored}");
    }
}
