//! `manual`: a flow without `trigger:` (or with `trigger: manual`), started by hand from the CLI,
//! the console or the admin API. Every flow can also be started this way, whatever its trigger; a
//! run started by hand records [`super::TriggerInfo::Manual`].

use super::TriggerKind;

/// The `manual` row of [`super::Trigger::KINDS`].
pub(crate) const KIND: TriggerKind = TriggerKind {
    name: "manual",
    description: "started by hand (CLI, console, admin API); a flow without `trigger:`",
    example: "trigger: manual",
};

/// How the console and the admin API describe a manual trigger.
pub(crate) fn summary() -> String {
    "started by hand".to_owned()
}
