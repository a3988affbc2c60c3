//! idflow's core: everything that is the same in `idflow serve` and in the Lambda functions.
//!
//! # Layout
//! - [`model`]: what a flow means (flows, triggers, steps, project config). No behaviour.
//! - [`flowfile`]: reads flow files and `idflow.yaml` (YAML or JSON) into the model, with file, line,
//!   column and field path on every error.
//! - [`template`]: the sandboxed minijinja environment and type-preserving rendering.
//! - [`cards`]: the card registry, pure function cards, and executors of I/O cards.
//! - [`engine`]: the pure state machine: given a flow, a run's state and an event, it decides the next
//!   effects. No I/O, no clock.
//! - [`runner`]: executes effects through ports, checkpoints after every step, and drives runs from the
//!   queue (the worker).
//! - [`okta`]: the Okta and OIG client behind the `OktaApi` port, and the `okta.*` / `oig.*` cards.
//! - [`ports`]: the traits for storage, queue, clock, secrets and schedules.
//! - [`adapters`]: the embedded implementations (SQLite, system clock, env/file secrets, local scheduler).
//! - [`schedule`]: EventBridge Scheduler expressions (`cron`, `rate`, `at`) and their next fire times.
//! - [`egress`]: the egress policy: where requests that flows build may go (SSRF defence).
//! - [`email`]: email messages and the [`email::EmailSender`] port (SMTP locally, SES in AWS).
//! - [`tables`]: typed tables (`table.*` cards): schemas, the store port, CSV export and import.
//! - [`api`]: the axum routers shared by `idflow serve` and the Lambda functions.
//! - [`console`]: the web console served at `/` and the admin API's OpenAPI document.
//! - [`hooks`], [`delegated`], [`jwt`]: Okta event hooks, delegated flows, bearer JWT verification.
//! - [`run`]: runs and step records as stored and shown.
//! - [`budget`]: per-thread allocation counting (the memory budget of a template render) and sizes.
//! - [`fuzzing`] (feature `fuzzing`, tests only): the property-test runner and generators of the fuzz
//!   targets.
//! - [`testing`]: flow tests (`<flow>.test.yaml`): stubbed cards, a frozen clock, expectations, and
//!   recording a run from history as a test case.

pub mod adapters;
pub mod api;
pub mod budget;
pub mod cards;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod console;
pub mod delegated;
pub mod diag;
pub mod duration;
pub mod egress;
pub mod email;
pub mod engine;
pub mod flowfile;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hooks;
pub mod jwt;
pub mod local;
pub mod model;
pub mod okta;
pub mod ports;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod tables;
pub mod template;
pub mod testing;

/// The unit tests count allocations like the binaries do, so render budgets are exercised.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: budget::CountingAllocator = budget::CountingAllocator;
