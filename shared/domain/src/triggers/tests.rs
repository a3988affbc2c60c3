use std::collections::BTreeMap;
use std::time::Duration;

use super::api::{ApiAuth, ApiStart, ApiTrigger, Respond};
use super::delegated::DelegatedStart;
use super::event::EventStart;
use super::helper::{HelperStart, HelperTrigger};
use super::schedule::ScheduleStart;
use super::*;

/// Each trigger kind has one row with a unique name, `manual` first, and every listed kind's
/// module, variant (whose lowercase name is the run record's `kind` tag) and row name agree.
#[test]
fn every_trigger_kind_has_one_row_named_as_its_module_and_variant() {
    let names: std::collections::BTreeSet<_> = Trigger::KINDS.iter().map(|k| k.name).collect();
    assert_eq!(names.len(), Trigger::KINDS.len(), "kind names are unique");
    assert_eq!(Trigger::KINDS.first().map(|k| k.name), Some("manual"));
    let listed = listed_kinds();
    assert_eq!(listed.len() + 1, Trigger::KINDS.len());
    for (module, variant, name) in listed {
        assert_eq!(module, name, "module of kind `{name}`");
        assert_eq!(variant.to_lowercase(), name, "variant of kind `{name}`");
    }
    let settings: Vec<_> = Trigger::settings_schemas()
        .into_iter()
        .map(|(kind, _)| kind.name)
        .collect();
    let written: Vec<_> = Trigger::KINDS.iter().skip(1).map(|k| k.name).collect();
    assert_eq!(
        settings, written,
        "every kind but manual has its settings schema"
    );
}

/// A trigger's row is the one its kind lists.
#[test]
fn a_trigger_knows_its_row() {
    let api = Trigger::Api(ApiTrigger {
        auth: ApiAuth::Public,
        respond: Respond::Async,
        timeout: Duration::from_secs(30),
    });
    assert_eq!(api.kind(), "api");
    assert_eq!(Trigger::Manual.info(), &Trigger::KINDS[0]);
    let helper = Trigger::Helper(HelperTrigger {
        inputs: BTreeMap::new(),
    });
    assert_eq!(helper.summary(), "inputs: ");
    assert!(Trigger::KINDS.contains(helper.info()));
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
