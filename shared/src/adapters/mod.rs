//! Embedded adapters: what `idflow serve` runs on a single machine with no cloud account.
//!
//! # Layout
//! - [`clock`]: [`clock::SystemClock`] (wall time, tokio timers) and [`clock::ManualClock`] (time that
//!   moves only when told, for tests and simulations).
//! - [`secrets`]: [`secrets::LocalSecrets`] resolves `env:` and `file:` references.
//! - [`sqlite`]: one SQLite file holding flows, runs, step records, the run queue and schedules, written
//!   by a single group-committing writer thread.
//! - [`smtp`]: [`smtp::SmtpSender`] sends email over SMTP (`lettre`, STARTTLS or TLS with rustls).
//! - [`schedules`]: [`schedules::LocalSchedules`], an in-memory schedule table.
//! - `aws` (feature `aws`): DynamoDB, SQS, EventBridge Scheduler and Secrets Manager adapters for the
//!   Lambda functions.

#[cfg(feature = "aws")]
pub mod aws;
pub mod clock;
pub mod schedules;
pub mod secrets;
pub mod smtp;
pub mod sqlite;
