//! idflow's embedded adapters: what `idflow serve` and `idflow test` run on, on one machine with no
//! cloud account.
//!
//! # Layout
//! - [`sqlite`]: one SQLite file holding flows, runs, step records, the run queue, tables and
//!   schedules, written by a single group-committing writer thread.
//! - [`secrets`]: [`secrets::LocalSecrets`] resolves `env:` and `file:` references.
//! - [`schedules`]: [`schedules::LocalSchedules`], an in-memory schedule table.

pub mod schedules;
pub mod secrets;
pub mod sqlite;
