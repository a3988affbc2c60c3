//! Cards: the registry of every card a flow can use, the pure function cards, the port I/O cards run
//! through ([`CardExecutor`]), and the `table.*` executor.
//!
//! # Layout
//! - [`registry`]: every card's name, fields and output, the single source the validator, the engine
//!   and `docs/flow-reference.md` rely on.
//! - `functions`: text, json, object, list, date, number and boolean cards. Pure: they run inside the
//!   engine with no I/O.
//! - [`http`], [`okta`], [`slack`], [`email`]: the specs of the I/O cards whose executors live in the
//!   `connectors` crate.
//! - [`table`]: the `table.*` cards and their executor over the [`TableStore`](crate::tables::TableStore)
//!   port.
//! - `doc`: the card reference of `docs/flow-reference.md`, generated from the registry.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::run::{RunId, StepError};

pub mod doc;
pub mod email;
pub mod functions;
pub mod http;
pub mod okta;
pub mod registry;
pub mod slack;
pub mod table;

pub use registry::{CardKind, CardSpec, FieldSpec, lookup, registry};

/// Errors of a card call. Classified so that retry policies and `on_error` can decide.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CardError {
    /// A field has the wrong shape; never retried.
    #[error("field `{field}`: {message}")]
    InvalidInput { field: String, message: String },
    /// The remote answered with a non-success status.
    #[error("{message}")]
    Status {
        status: u16,
        message: String,
        /// The response body or the provider's error object (Okta's errorCode, errorSummary, ...).
        detail: Option<serde_json::Value>,
        /// How long the remote asked us to wait (`Retry-After`, `X-Rate-Limit-Reset`).
        retry_after: Option<Duration>,
    },
    /// The call did not finish within the step timeout.
    #[error("timed out after {}", crate::duration::format(*.0))]
    Timeout(Duration),
    /// The remote could not be reached or the connection broke.
    #[error("network error: {0}")]
    Network(String),
    /// The card failed for a reason of its own (`flow.fail`, a missing connection, ...).
    #[error("{message}")]
    Failed {
        code: String,
        message: String,
        retryable: bool,
    },
    /// The remote asked to wait longer than a worker should hold on (a rate limit far from its
    /// reset). Not a failure: the engine parks the step and calls again after `after`, without
    /// counting an attempt.
    #[error("throttled for {}: {message}", crate::duration::format(*after))]
    Throttled { after: Duration, message: String },
}

impl CardError {
    /// Whether a retry policy with no `on:` list retries this error.
    pub fn is_retryable(&self) -> bool {
        match self {
            CardError::InvalidInput { .. } => false,
            CardError::Status { status, .. } => *status == 429 || *status >= 500,
            CardError::Timeout(_) | CardError::Network(_) => true,
            CardError::Failed { retryable, .. } => *retryable,
            CardError::Throttled { .. } => true,
        }
    }

    /// The error as kept in history.
    pub fn to_step_error(&self) -> StepError {
        match self {
            CardError::InvalidInput { field, .. } => StepError {
                code: "invalid_input".into(),
                message: self.to_string(),
                status: None,
                detail: Some(serde_json::json!({ "field": field })),
            },
            CardError::Status {
                status,
                message,
                detail,
                ..
            } => StepError {
                code: "http_status".into(),
                message: message.clone(),
                status: Some(*status),
                detail: detail.clone(),
            },
            CardError::Timeout(_) => StepError {
                code: "timeout".into(),
                message: self.to_string(),
                status: None,
                detail: None,
            },
            CardError::Network(_) => StepError {
                code: "network".into(),
                message: self.to_string(),
                status: None,
                detail: None,
            },
            CardError::Failed { code, message, .. } => StepError {
                code: code.clone(),
                message: message.clone(),
                status: None,
                detail: None,
            },
            CardError::Throttled { .. } => StepError {
                code: "throttled".into(),
                message: self.to_string(),
                status: Some(429),
                detail: None,
            },
        }
    }
}

/// What pure cards may use besides their input: the step's time and an expression evaluator (for
/// predicates such as `list.filter`'s `where`).
pub struct PureContext<'a> {
    pub now: DateTime<Utc>,
    /// Evaluates a minijinja expression with extra variables bound (e.g. `item`).
    pub eval: &'a EvalFn<'a>,
}

/// The expression evaluator of [`PureContext`]: an expression and extra variables to bind, the
/// result or an error message.
pub type EvalFn<'a> =
    dyn Fn(&str, &[(&str, &serde_json::Value)]) -> Result<serde_json::Value, String> + 'a;

/// One call of an I/O card, as the runner hands it to an executor.
#[derive(Debug, Clone, PartialEq)]
pub struct CardCall {
    pub card: String,
    /// The rendered `with:` object.
    pub input: serde_json::Value,
    /// Step timeout.
    pub timeout: Duration,
    pub run_id: RunId,
    /// The step key, for logs.
    pub step: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The project config at the time of the call: connections, vars, secret names.
    pub project: std::sync::Arc<crate::model::ProjectConfig>,
}

/// Executes I/O cards of one family (`http`, later `okta`, `oig`, `slack`, ...).
#[async_trait]
pub trait CardExecutor: Send + Sync {
    async fn execute(&self, call: &CardCall) -> Result<serde_json::Value, CardError>;
}
