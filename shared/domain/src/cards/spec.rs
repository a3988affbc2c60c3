//! The contract every card follows: what a card is ([`CardSpec`], [`FieldSpec`], [`CardKind`]),
//! how it fails ([`CardError`]), what a pure card may use ([`PureContext`]) and the port I/O cards
//! run through ([`CardExecutor`], called with a [`CardCall`]).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::run::{RunId, StepError};

/// How a card is executed.
#[derive(Clone, Copy)]
pub enum CardKind {
    /// Runs inside the engine: no I/O, deterministic given its input and the step time (but for
    /// `number.random`, whose draw is recorded like any output and never redone).
    Pure(PureFn),
    /// Runs through a [`super::CardExecutor`] of the card's family.
    Io,
    /// Handled by the engine itself (`flow.call`, `flow.return`, `flow.fail`).
    Flow,
}

/// One input field of a card.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    /// Expected JSON kind: `text`, `number`, `integer`, `boolean`, `object`, `list`, `any`,
    /// `datetime`, `duration`, `expression`.
    pub kind: &'static str,
    pub required: bool,
    pub doc: &'static str,
}

impl FieldSpec {
    /// A field the card cannot run without.
    pub const fn required(name: &'static str, kind: &'static str, doc: &'static str) -> FieldSpec {
        FieldSpec {
            name,
            kind,
            required: true,
            doc,
        }
    }

    /// A field the card can run without.
    pub const fn optional(name: &'static str, kind: &'static str, doc: &'static str) -> FieldSpec {
        FieldSpec {
            name,
            kind,
            required: false,
            doc,
        }
    }
}

/// A card.
#[derive(Clone, Copy)]
pub struct CardSpec {
    /// `family.action`, part of the flow-file contract.
    pub name: &'static str,
    pub summary: &'static str,
    pub fields: &'static [FieldSpec],
    /// What the step's output is.
    pub output: &'static str,
    pub kind: CardKind,
    /// Accept fields not listed (e.g. `flow.assign`).
    pub open: bool,
}

impl std::fmt::Debug for CardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CardSpec {
    /// A pure card whose fields are all listed.
    pub const fn pure(
        name: &'static str,
        summary: &'static str,
        fields: &'static [FieldSpec],
        output: &'static str,
        run: PureFn,
    ) -> CardSpec {
        CardSpec::closed(name, summary, fields, output, CardKind::Pure(run))
    }

    /// An I/O card whose fields are all listed.
    pub const fn io(
        name: &'static str,
        summary: &'static str,
        fields: &'static [FieldSpec],
        output: &'static str,
    ) -> CardSpec {
        CardSpec::closed(name, summary, fields, output, CardKind::Io)
    }

    const fn closed(
        name: &'static str,
        summary: &'static str,
        fields: &'static [FieldSpec],
        output: &'static str,
        kind: CardKind,
    ) -> CardSpec {
        CardSpec {
            name,
            summary,
            fields,
            output,
            kind,
            open: false,
        }
    }

    /// Whether `secret('…')` may appear in this card's fields: only cards that send their input to
    /// an outside service (I/O cards), and not the `table` cards, which store it in idflow's own
    /// tables where the console and CLI show it. Everywhere else a secret would end up in history,
    /// a step output or a condition.
    pub fn may_receive_secrets(&self) -> bool {
        matches!(self.kind, CardKind::Io) && self.family() != "table"
    }

    /// The family: the part before the dot.
    pub fn family(&self) -> &'static str {
        self.name
            .split_once('.')
            .map_or(self.name, |(family, _)| family)
    }
}

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

/// Result type of pure cards.
pub type PureResult = Result<serde_json::Value, CardError>;

/// A pure card: its rendered `with:` object and the context in, its output out.
pub type PureFn = fn(&serde_json::Map<String, serde_json::Value>, &PureContext<'_>) -> PureResult;
