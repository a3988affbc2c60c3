//! The engine: a pure state machine that decides what a run does next.
//!
//! Given a compiled flow, a run's [`RunState`] and what happened since the last call ([`Event`]s), the
//! engine advances every fiber as far as it can without I/O, records completed steps, and returns the
//! [`Effect`]s the runner must perform (card calls, helper runs, timers). It reads no clock (time comes
//! in as `now`), touches no network or disk, and never panics on input: a broken template or a failing
//! card becomes a step error that `try`/`on_error` can handle, and a restored state that does not fit
//! its flow fails the run with `corrupt_state`.
//!
//! # Model
//! - A *fiber* is one sequential thread of steps. A run starts with fiber 0 on the top-level steps;
//!   an inline `for_each`/`map` starts one fiber per item (at most `concurrency` at a time).
//! - A fiber holds a stack of frames: a step list with a cursor, a loop waiting for its iterations, a
//!   `try` block, an `on_error` block, a streamed card.
//! - An effect stays *pending* in the state until its result arrives, so a run restored from a
//!   checkpoint re-issues exactly the effects whose results were lost ([`Event::Resume`]). Completed
//!   steps are never re-run.
//!
//! # Checkpoints
//! The [`RunState`] is the checkpoint format and carries its version ([`STATE_VERSION`], `"v"`).
//! Reading one migrates older versions step by step to the current shape and refuses newer ones
//! ([`StateError`]); the first [`advance`] after a restore checks it against the flow. Fixtures of
//! every version a release has written are under `tests/fixtures/checkpoints/`, and a test restores
//! and finishes each.
//!
//! # Layout
//! The engine is cut by concern, in layers that import downwards only:
//! - Data: `compile` (the flow as numbered nodes, and the step lists they hold), `state` (the run
//!   state and its parts: fibers, frames, pending effects), `context` ([`RunContext`]), `scrub`
//!   (removing secrets from what a run keeps).
//! - `checkpoint`: state versions, migrations, decoding, and the check of a restored state against
//!   its flow. It reads `compile` and `state`.
//! - `advance`: the interface ([`advance`], [`Event`], [`Effect`], [`Progress`], [`Decision`]) and
//!   the machine every concern extends: the driver loop over fibers, template scopes, checked node
//!   lookups, refusing a corrupt state.
//! - The concerns, each an `impl` block on that machine: `events` (what each event does), `step`
//!   (one step: guards, `if`, `continue_if`, `try`, waits), `card` (card calls, retries, throttling,
//!   masking secret-derived input), `loops` (`for_each`/`map`), `streams` (streamed pages to helper
//!   runs), `unwind` (failures, `try`/`catch`, `on_error`, the flow's `timeout:`), `records` (step
//!   records, history modes, the working-memory budget).
//!
//! Why this cut: the state machine is one recursive process (a card answer completes a step, which
//! may end a loop iteration, which may fail the loop and unwind to a `try`), so its methods call each
//! other across concerns whatever the cut. What can be kept acyclic is what each file *imports*:
//! the concerns import the machine and the data, and only the few shared values of each other (the
//! `Call` of `card`, the error values of `unwind`); the machine imports no concern, and the data
//! import nothing of the engine but `compile`. This file only declares the modules and re-exports the
//! public API.

mod advance;
mod card;
mod checkpoint;
mod compile;
mod context;
mod events;
mod loops;
mod records;
mod scrub;
mod state;
mod step;
mod streams;
mod unwind;

#[cfg(test)]
mod tests;

pub use advance::{Decision, Effect, Event, MAX_WAIT_DAYS, Progress, advance};
pub use checkpoint::StateError;
pub use compile::{CompiledFlow, DEFAULT_STEP_TIMEOUT};
pub use context::RunContext;
pub use scrub::redact_secrets;
pub use state::{Blob, BlobRef, RunState, STATE_VERSION};
