//! The runner: executes the engine's effects through ports and drives runs from the queue.
//!
//! One [`Runtime`] holds the ports and the compiled-flow cache. [`Runtime::start_run`] creates a run and
//! queues it (both durable before it returns, so an API can answer 202 safely).
//! [`Runtime::process`] handles one queue delivery: claim the run, restore the engine state, advance,
//! execute effects, checkpoint after every step, and park the run (`waiting`) when nothing can happen
//! in-process. [`Worker`] is the local queue consumer used by `idflow serve`; the Lambda worker calls
//! [`Runtime::process`] per SQS record.
//!
//! # Layout
//! - [`runtime`]: [`Runtime`] (ports, executors, project config, the compiled-flow caches) and its
//!   configuration.
//! - [`start`]: starting runs (manual, API, schedule, helper) on the current or an exact flow
//!   version, re-running and cancelling.
//! - [`queries`]: reading runs and flows (a run and its steps, filtered listings, waiting for a run
//!   to end, deployed flows and their activity).
//! - [`deploy`]: deploying a directory's flows into the flow store.
//! - [`driver`]: the effect driver, the one loop that executes the engine's effects (the runtime's
//!   worker and `idflow test` both drive runs with it), and the helper-flow policy.
//! - [`drive`]: processing a delivery: claim, restore, and drive the run on the runtime's ports, in
//!   a span per processing slice with a child span per step (its `# Spans`).
//! - [`index`]: the trigger index of the current flows (event types, delegated flows).
//! - [`worker`]: [`Worker`], the local queue consumer.
//! - [`error`]: the runner's errors ([`RunnerError`]).

pub mod deploy;
pub mod drive;
pub mod driver;
pub mod error;
pub mod index;
pub mod queries;
pub mod runtime;
pub mod start;
pub mod worker;

/// The deepest run input a start accepts (kept here too, where callers of the runner look).
pub use crate::budget::MAX_INPUT_DEPTH;
pub use deploy::{SyncReport, sync_flows};
pub use drive::{Disposition, MAX_QUEUE_DELAY, RETRY_AFTER};
pub use error::RunnerError;
pub use queries::{DeployedFlow, FlowStats, RunFilter};
pub use runtime::{AdapterPorts, RunEnded, RunnerConfig, Runtime};
pub use start::{scheduled_run_key, start_scheduled_run};
pub use worker::Worker;
