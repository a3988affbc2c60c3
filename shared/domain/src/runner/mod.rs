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
//! - [`start`]: starting runs (manual, API, schedule, helper), re-running and cancelling.
//! - [`drive`]: processing a delivery: claim, restore, advance, execute effects, checkpoint, park.
//! - [`index`]: the trigger index of the current flows (event types, delegated flows).
//! - [`worker`]: [`Worker`], the local queue consumer.
//! - [`error`]: the runner's errors ([`RunnerError`]).

pub mod drive;
pub mod error;
pub mod index;
pub mod runtime;
pub mod start;
pub mod worker;

pub use drive::{Disposition, MAX_QUEUE_DELAY};
pub use error::RunnerError;
pub use runtime::{RunEnded, RunnerConfig, Runtime};
pub use start::{MAX_INPUT_DEPTH, scheduled_run_key, start_scheduled_run};
pub use worker::Worker;
