//! idflow's domain core: what a flow means and how a run advances, the same in `idflow serve`, in
//! the Lambda functions and in `idflow test`.
//!
//! This crate does no network I/O and names no SDK, database or HTTP server: those are adapters in
//! the crates beside it (`connectors`, `web`, `local`, `aws`), which implement the ports defined
//! here. Cargo enforces the direction: nothing here can import them.
//!
//! # Layout
//! - [`model`]: what a flow means (flows, triggers, steps, project config). No behaviour.
//! - [`flowfile`]: reads flow files and `idflow.yaml` (YAML or JSON) into the model, with file, line,
//!   column and field path on every error.
//! - [`checker`]: the static checker of every template and expression in a flow (names, steps,
//!   vars, secrets, inputs, filters), run wherever a flow is loaded.
//! - [`template`]: the sandboxed minijinja environment, type-preserving rendering, secret taint and
//!   render budgets; [`budget`]: allocation counting and sizes.
//! - [`cards`]: the card registry (every card's name, fields and output), the pure function cards,
//!   the `table.*` executor over the [`tables::TableStore`] port, and the executor port.
//! - [`engine`]: the pure state machine: given a flow, a run's state and an event, it decides the next
//!   effects. No I/O, no clock.
//! - [`runner`]: the effect driver: executes effects through ports, checkpoints after every step, and
//!   drives runs from the queue (the worker).
//! - [`ports`]: the traits for storage, queue, clock, secrets, schedules and wake-ups.
//! - [`clock`]: the system clock, and a manual and an auto-advancing clock for tests.
//! - [`schedule`]: EventBridge Scheduler expressions (`cron`, `rate`, `at`) and their next fire times.
//! - [`schema`]: JSON Schemas of flow, project, table and flow-test files, for editors (`idflow schema`).
//! - [`egress`]: which destinations requests built by flows may reach (the policy; connectors apply it).
//! - [`email`]: email messages and the [`email::EmailSender`] port.
//! - [`tables`]: typed tables (`table.*` cards): schemas, the store port, CSV export and import.
//! - [`run`]: runs and step records as stored and shown.
//! - [`triggers`]: the trigger kinds, one module each: settings, flow-file reading, summaries,
//!   secrets, flow-test input and what a run records about its start.
//! - [`fuzzing`] (feature `fuzzing`, tests only): the property-test runner and generators of the fuzz
//!   targets.
//! - [`testing`] (feature `testing`, the CLI only): flow tests (`<flow>.test.yaml`): stubbed cards, a frozen clock, expectations, and
//!   recording a run from history as a test case.
//! - [`conformance`] (feature `conformance`): the suites every adapter of a port passes.
//! - [`testkit`] (feature `test-support`, tests only): in-memory doubles that drive a run through
//!   the effect driver (scripted card calls, helper runs, a run host, a clock that moves by itself).

pub mod budget;
pub mod cards;
pub mod checker;
pub mod clock;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod datetime;
pub mod delegation;
pub mod diag;
pub mod duration;
pub mod egress;
pub mod email;
pub mod engine;
pub mod events;
pub mod flowfile;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod jwks;
pub mod model;
pub mod ports;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod schema;
pub mod tables;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(any(test, feature = "test-support"))]
pub mod testkit;
pub mod triggers;
pub mod values;

/// The unit tests count allocations like the binaries do, so render budgets are exercised.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: budget::CountingAllocator = budget::CountingAllocator;
