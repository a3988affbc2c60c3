//! Errors of the runner layer.

use crate::ports::{QueueError, SecretError, StoreError};
use crate::run::RunId;

use super::driver::DriveError;
use crate::budget::MAX_INPUT_DEPTH;

/// Errors of the runner layer.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("flow `{0}` is not deployed")]
    UnknownFlow(String),
    #[error("flow `{name}` is invalid: {message}")]
    InvalidFlow { name: String, message: String },
    #[error("run {0} not found")]
    UnknownRun(RunId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The effect driver could not go on (a state it cannot write, a flow test's checks).
    #[error(transparent)]
    Drive(#[from] DriveError),
    #[error("run state of {run} cannot be decoded")]
    CorruptState {
        run: RunId,
        #[source]
        source: serde_json::Error,
    },
    /// The input nests deeper than [`MAX_INPUT_DEPTH`]: the caller's mistake, refused before anything
    /// is written.
    #[error("the run input is nested {depth} levels deep; at most {MAX_INPUT_DEPTH} are accepted")]
    InputTooDeep { depth: usize },
    /// Driving a run started in this process stopped (it panicked) before its first write: the run
    /// was not stored, and the starter is told so.
    #[error("the run of `{flow}` stopped before it was stored")]
    NotStored { flow: String },
    /// The flow is paused: its triggers start nothing until it is resumed.
    #[error(
        "flow `{name}` is paused (since {}); resume it in the console or with `POST /api/flows/{name}/resume` to start runs",
        since.to_rfc3339()
    )]
    FlowPaused {
        name: String,
        since: chrono::DateTime<chrono::Utc>,
    },
}

impl RunnerError {
    /// Whether processing the same message again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RunnerError::Store(e) => e.is_retryable(),
            RunnerError::Queue(e) => e.is_retryable(),
            RunnerError::Secret(SecretError::Unreadable { .. }) => true,
            _ => false,
        }
    }
}
