//! Trigger kinds: what starts a run, one module per kind.
//!
//! Each module owns everything the core knows about its kind: its name, description and example
//! (its [`TriggerKind`] row), its settings as a flow file writes them (`trigger: { <kind>: ... }`)
//! and how the flow reader decodes and validates them, how the console and admin API summarise
//! them, the secrets its authentication needs, how a flow test starts it, and what a run records
//! about how it started (its `…Start` record, one variant of [`TriggerInfo`]).
//!
//! The kinds are listed once, in the [`kinds!`] invocation below: [`Trigger`], [`TriggerInfo`],
//! [`Trigger::KINDS`] (from which the flow reader's accepted keys, the OpenAPI schema's `trigger`
//! enum and the console's trigger filter derive) and the dispatch of every per-kind question are
//! generated from it. What receives a trigger (an HTTP route, a timer, the effect driver) lives with
//! the adapter that receives it: `web::triggers` for the HTTP ones.
//!
//! # Layout
//! - [`manual`]: a flow without `trigger:`, started by hand (CLI, console, admin API).
//! - [`schedule`]: `trigger: { schedule }`, cron, rate and one-time schedules.
//! - [`event`]: `trigger: { event }`, Okta event hook deliveries.
//! - [`api`]: `trigger: { api }`, callers of `GET|POST /api/flows/{name}/invoke`.
//! - [`helper`]: `trigger: { helper }`, started by another flow.
//! - [`delegated`]: `trigger: { delegated }`, delegated callers such as OIG Access Requests.

pub mod manual;

use serde::{Deserialize, Serialize};

use crate::flowfile::flow::FlowDecoder;
use crate::flowfile::tree::Node;
use crate::model::{ProjectConfig, SecretRef};
use crate::run::RunId;

/// One kind of trigger, as flow files write it and the admin API lists it.
///
/// [`Trigger::KINDS`] is the one list of trigger kinds: the flow parser accepts its names, the admin
/// API's OpenAPI schema enumerates them, and the console's trigger filter reads them from that
/// schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerKind {
    /// The name flow files write (`trigger: { <name>: ... }`) and the API shows.
    pub name: &'static str,
    /// What starts such a run, in one sentence.
    pub description: &'static str,
    /// A smallest `trigger:` as a flow file writes it, for docs and for the tests that load one
    /// flow of every kind.
    pub example: &'static str,
}

/// A secret a trigger's authentication needs, so `idflow serve` can check it resolves before it
/// starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerSecret {
    /// A reference the trigger or `idflow.yaml` names at `name` (`trigger.api.token`,
    /// `hooks.okta.secret`, ...); `None` when the setting it needs is missing.
    Named {
        name: String,
        reference: Option<SecretRef>,
    },
    /// The references in the declaration of this caller in `idflow.yaml` (`callers.<name>`).
    Caller(String),
    /// The secrets of this connection (`connections.<name>`).
    Connection(String),
}

/// What a trigger kind's settings (the value of [`Trigger`]'s variant) answer. Every kind but
/// `manual` implements it in its module; the defaults are the answers of a kind that needs no
/// secrets and whose flow tests start with the case's input as written.
pub(crate) trait Kind: Sized {
    /// This kind's row of [`Trigger::KINDS`].
    const KIND: TriggerKind;

    /// Reads `trigger: { <kind>: <node> }` (`path` is `trigger.<kind>`), reporting every problem
    /// to the decoder's diagnostics; `None` when there was one.
    fn decode(decoder: &mut FlowDecoder<'_>, node: &Node, path: &str) -> Option<Self>;

    /// The JSON Schema of these settings, for editors (`idflow schema`); described by the
    /// schema with [`TriggerKind::description`].
    fn schema() -> serde_json::Value;

    /// A one-line summary of these settings, as the console and the admin API show it.
    fn summary(&self) -> String;

    /// See [`Trigger::declared_inputs`].
    fn declared_inputs(&self) -> Option<Vec<String>> {
        None
    }

    /// The secrets this trigger's authentication needs for flow `flow` under `config`.
    fn secrets(&self, _flow: &str, _config: &ProjectConfig) -> Vec<TriggerSecret> {
        Vec::new()
    }

    /// See [`Trigger::test_input_defaults`].
    fn test_input_defaults(
        &self,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Option<serde_json::Value> {
        None
    }

    /// See [`Trigger::check_test_input`].
    fn check_test_input(&self, _input: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// Generates the modules, types and dispatch every trigger kind takes part in from the one list of
/// kinds: `module: Variant(settings type, start record type)`, in the order [`Trigger::KINDS`]
/// lists them after `manual`. The variant's lowercase name is the kind's name, as
/// [`TriggerInfo`]'s serde tag (a test checks they agree).
macro_rules! kinds {
    ($($(#[$doc:meta])* $module:ident: $variant:ident($config_name:ident, $start_name:ident),)+) => {
        $(pub mod $module;)+
        kinds!(@types $($(#[$doc])* $module: $variant($module::$config_name, $module::$start_name),)+);
    };
    (@types $($(#[$doc:meta])* $module:ident: $variant:ident($config:ty, $start:ty),)+) => {
        /// What starts a run of a flow.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Trigger {
            /// Started by hand (CLI, console, admin API). Every flow can also be started this way.
            Manual,
            $($(#[$doc])* $variant($config),)+
        }

        /// What started a run, as its record keeps it (`{"kind": "<kind>", ...the start record}`).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "lowercase")]
        pub enum TriggerInfo {
            /// Started by hand.
            Manual,
            $($(#[$doc])* $variant($start),)+
            /// A re-run of an earlier run, with that run's input.
            Rerun { of: RunId },
        }

        impl Trigger {
            /// Every trigger kind, `manual` (a flow without `trigger:`) first.
            pub const KINDS: &'static [TriggerKind] =
                &[manual::KIND, $(<$config as Kind>::KIND,)+];

            /// This trigger's row of [`Trigger::KINDS`].
            pub fn info(&self) -> &'static TriggerKind {
                match self {
                    Trigger::Manual => &manual::KIND,
                    $(Trigger::$variant(_) => &<$config as Kind>::KIND,)+
                }
            }

            /// A one-line summary of this trigger's settings, as the console and the admin API
            /// show it.
            pub fn summary(&self) -> String {
                match self {
                    Trigger::Manual => manual::summary(),
                    $(Trigger::$variant(settings) => settings.summary(),)+
                }
            }

            /// The input keys a run of this flow can have, when its trigger declares them: the
            /// static checker refuses `input.<key>` reads of any other key.
            pub fn declared_inputs(&self) -> Option<Vec<String>> {
                match self {
                    Trigger::Manual => None,
                    $(Trigger::$variant(settings) => settings.declared_inputs(),)+
                }
            }

            /// Every kind written `trigger: { <kind>: ... }` (all but manual) with the JSON
            /// Schema of its settings, in [`Trigger::KINDS`] order.
            pub(crate) fn settings_schemas() -> Vec<(&'static TriggerKind, serde_json::Value)> {
                vec![$((&<$config as Kind>::KIND, <$config as Kind>::schema()),)+]
            }

            /// The secrets this trigger's authentication needs for flow `flow` under `config`.
            pub fn secrets(&self, flow: &str, config: &ProjectConfig) -> Vec<TriggerSecret> {
                match self {
                    Trigger::Manual => Vec::new(),
                    $(Trigger::$variant(settings) => settings.secrets(flow, config),)+
                }
            }

            /// What a flow test (`idflow test`) starts a run of this trigger with before the
            /// case's own `input:` is laid over it, as the trigger itself fills it in (`now` is
            /// the test's clock); `None` when the case's input is the run's input as written.
            /// Event flows are tested with an `event:`, built by the flow-test runner.
            pub fn test_input_defaults(
                &self,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Option<serde_json::Value> {
                match self {
                    Trigger::Manual => None,
                    $(Trigger::$variant(settings) => settings.test_input_defaults(now),)+
                }
            }

            /// Checks a flow test case's input as the trigger checks a real caller's: the error
            /// says why a caller could not start this run with it.
            pub fn check_test_input(&self, input: &serde_json::Value) -> Result<(), String> {
                match self {
                    Trigger::Manual => Ok(()),
                    $(Trigger::$variant(settings) => settings.check_test_input(input),)+
                }
            }

            /// Reads the settings of the kind named `kind` (`trigger: { <kind>: <node> }`);
            /// `None` when no kind has that name, `Some(None)` when the settings had a problem
            /// (reported to the decoder).
            pub(crate) fn decode(
                decoder: &mut FlowDecoder<'_>,
                kind: &str,
                node: &Node,
                path: &str,
            ) -> Option<Option<Trigger>> {
                $(
                    if kind == <$config as Kind>::KIND.name {
                        return Some(<$config as Kind>::decode(decoder, node, path).map(Trigger::$variant));
                    }
                )+
                None
            }
        }

        /// Each listed kind as `(module, variant, kind name)`, for the test that checks they
        /// agree (the variant's lowercase name is [`TriggerInfo`]'s serde tag).
        #[cfg(test)]
        fn listed_kinds() -> Vec<(&'static str, &'static str, &'static str)> {
            vec![$((stringify!($module), stringify!($variant), <$config as Kind>::KIND.name),)+]
        }

        impl TriggerInfo {
            /// The kind of trigger that started the run (`rerun` for a re-run).
            pub fn kind(&self) -> &'static str {
                match self {
                    TriggerInfo::Manual => manual::KIND.name,
                    $(TriggerInfo::$variant(_) => <$config as Kind>::KIND.name,)+
                    TriggerInfo::Rerun { .. } => "rerun",
                }
            }
        }
    };
}

// The trigger kinds. A new kind is a module in this folder and its line here (and, when it
// arrives over HTTP, its name in `http_trigger_kinds!` below and a module of the same name in
// `web::triggers`).
kinds! {
    /// EventBridge Scheduler expression with an optional IANA time zone.
    schedule: Schedule(ScheduleTrigger, ScheduleStart),
    /// Okta event hook deliveries.
    event: Event(EventTrigger, EventStart),
    /// `GET|POST /api/flows/{name}/invoke`.
    api: Api(ApiTrigger, ApiStart),
    /// Called by another flow (`flow.call`, `for_each`, `map`, streams).
    helper: Helper(HelperTrigger, HelperStart),
    /// Run by delegated callers such as OIG Access Requests.
    delegated: Delegated(DelegatedTrigger, DelegatedStart),
}

/// Calls `$callback! { kind, ... }` with the trigger kinds that arrive over HTTP. Each has a
/// module of the same name in `web::triggers` (its HTTP entry), which that crate declares and
/// registers from this list, so a kind listed here without one fails to build.
#[macro_export]
macro_rules! http_trigger_kinds {
    ($callback:ident) => {
        $callback! { api, delegated, event }
    };
}

impl Trigger {
    /// The trigger kind as written in flow files and shown by the CLI and API.
    pub fn kind(&self) -> &'static str {
        self.info().name
    }
}

#[cfg(test)]
mod tests;
