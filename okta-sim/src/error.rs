//! Errors: the ones the simulator answers with (Okta's error body) and the ones its API returns.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an HTTP client in Okta's shape:
/// `{errorCode, errorSummary, errorLink, errorId, errorCauses}`.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) summary: String,
    pub(crate) causes: Vec<String>,
    pub(crate) headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, summary: impl Into<String>) -> Self {
        Self {
            status,
            code,
            summary: summary.into(),
            causes: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// 400 E0000001 `Api validation failed: {field}` with one cause per problem.
    pub(crate) fn validation(field: &str, causes: Vec<String>) -> Self {
        let mut error = Self::new(
            StatusCode::BAD_REQUEST,
            "E0000001",
            format!("Api validation failed: {field}"),
        );
        error.causes = causes;
        error
    }

    /// 404 E0000007 for a missing resource of Okta type `kind` (User, UserGroup, AppInstance…).
    pub(crate) fn not_found(id: &str, kind: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "E0000007",
            format!("Not found: Resource not found: {id} ({kind})"),
        )
    }

    /// 400 E0000003: the body is not JSON of the expected shape.
    pub(crate) fn malformed_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "E0000003",
            "The request body was not well-formed.",
        )
    }

    /// 401 E0000011: missing, unknown or expired credentials.
    pub(crate) fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
        )
    }

    /// 403 E0000006: authenticated, but the token lacks the scope this endpoint needs.
    pub(crate) fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "E0000006",
            "You do not have permission to perform the requested action",
        )
    }

    /// 429 E0000047.
    pub(crate) fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
        )
    }

    /// 500 E0000009 (what fault injection answers).
    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "E0000009",
            "Internal Server Error",
        )
    }

    pub(crate) fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    pub(crate) fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A process-wide counter for `errorId`, so ids differ per error yet repeat across runs.
static ERROR_IDS: AtomicU64 = AtomicU64::new(0);

fn error_id() -> String {
    let n = ERROR_IDS.fetch_add(1, Ordering::Relaxed);
    format!("oaesim{n:019}")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let causes: Vec<_> = self
            .causes
            .iter()
            .map(|c| json!({ "errorSummary": c }))
            .collect();
        let body = json!({
            "errorCode": self.code,
            "errorSummary": self.summary,
            "errorLink": self.code,
            "errorId": error_id(),
            "errorCauses": causes,
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// An OAuth 2.0 error from the token endpoint: `{error, error_description}` (RFC 6749 §5.2).
#[derive(Debug, Clone)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
    pub(crate) dpop_nonce: Option<String>,
}

impl OAuthError {
    pub(crate) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            dpop_nonce: None,
        }
    }

    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(crate) fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(value) = self.dpop_nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
            response
                .headers_mut()
                .insert(HeaderName::from_static("dpop-nonce"), value);
        }
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        response
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// An OAuth client's public key could not be read.
    #[error("invalid public key for oauth client {client_id}")]
    InvalidClientKey {
        /// The client whose key is bad.
        client_id: String,
        /// What the key parser said.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// A state helper refused its input the way the API would (e.g. a duplicate login).
    #[error("refused: {summary}")]
    Rejected {
        /// Okta's error summary and causes.
        summary: String,
    },
}

/// Why an event hook verification or delivery failed (Okta's side of the conversation).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The request could not be sent or timed out.
    #[error("event hook request to {url} failed")]
    Transport {
        /// The hook URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The receiver answered with a non-2xx status (after the retry, for deliveries).
    #[error("event hook at {url} answered {status}")]
    Status {
        /// The hook URL.
        url: String,
        /// The status it answered.
        status: u16,
    },
    /// The verification answer was not `{"verification": "<challenge>"}`.
    #[error("event hook at {url} did not echo the verification challenge (got {body})")]
    Verification {
        /// The hook URL.
        url: String,
        /// The body it answered.
        body: String,
    },
}

impl HookError {
    /// Whether Okta would try again later (timeouts, connection errors, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            HookError::Transport { .. } => true,
            HookError::Status { status, .. } => *status >= 500,
            HookError::Verification { .. } => false,
        }
    }
}
