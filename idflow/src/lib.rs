//! The `idflow` command's library: [`serve`], the whole product assembled in one local process
//! (`idflow serve`), so the integration tests can start it in-process, and [`preflight`], the
//! secrets a flow directory needs, which `serve` checks at start, and [`telemetry`], the runner's
//! spans exported as OpenTelemetry traces when an OTLP endpoint is configured. The command line itself
//! (`main.rs` and its modules) only parses arguments and calls into the crates under `shared/`.

pub mod metrics;
pub mod preflight;
pub mod serve;
pub mod telemetry;
