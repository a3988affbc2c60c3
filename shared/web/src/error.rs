//! Errors at the HTTP edge: [`ApiError`] (each variant a status and a JSON body), and
//! [`json_errors`], which rewrites every other error answer the stack writes into the same shape.
//!
//! Every client mistake answers a 4xx with `{"error": {"code", "message"}}` and changes nothing. A
//! 5xx never carries an internal error's text; the log line does.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use domain::ports::StoreError;
use domain::run::RunId;
use domain::runner::RunnerError;

/// Errors at the HTTP edge, each mapped to a status and a JSON body.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    /// Authenticated, but not allowed (a delegated caller not in the flow's `callers`).
    #[error("{0}")]
    Forbidden(String),
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The request head is over the server's limits (answered by `idflow serve` before routing).
    #[error(
        "the request head is larger than {limit} bytes or has more than {max_headers} header lines"
    )]
    HeadersTooLarge { limit: usize, max_headers: usize },
    /// The request body did not arrive within the server's body read timeout.
    #[error("the request body did not arrive within {}", domain::duration::format(*timeout))]
    RequestTimeout { timeout: Duration },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the flow did not answer within {timeout:?}")]
    Timeout { timeout: Duration, run_id: RunId },
    /// A sync API flow's run failed. The caller learns only the run id: the error may quote the
    /// flow's internals (a template, a host, a step's message), so it stays in history.
    #[error("the flow failed; see run {run_id} in history")]
    RunFailed { run_id: RunId },
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            // Not 500: idflow did its job, the flow behind the endpoint failed, as an upstream
            // behind a gateway would. Monitoring tells the two apart by status.
            ApiError::RunFailed { .. } => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error.code` of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Timeout { .. } => "timeout",
            ApiError::RunFailed { .. } => "run_failed",
            other => code_of(other.status()),
        }
    }
}

/// The `error.code` of a status, shared by [`ApiError`] and [`json_errors`] so a status always
/// has the same code whoever wrote the answer.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable_entity",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        status if status.is_client_error() => "client_error",
        _ => "internal",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        }
        // Every message is written for the caller; the server errors' sources (which may describe
        // internals) are only logged above.
        let mut body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        if let ApiError::Timeout { run_id, .. } | ApiError::RunFailed { run_id } = &self {
            body["runId"] = json!(run_id.to_string());
        }
        (status, Json(body)).into_response()
    }
}

/// Marks a response a flow wrote (`flow.return` of a `respond: sync` API flow): its status, headers
/// and body are the flow author's contract with the caller, so [`json_errors`] leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct FlowResponse;

/// Makes every error answer of `router` JSON: a 4xx or 5xx that is not JSON already (axum's
/// extractor rejections, such as a duplicate query parameter or a path that is not UTF-8) is
/// rewritten into `{"error": {"code", "message"}}`. A 4xx keeps its text as the message; a 5xx gets
/// its status's reason instead, as it may describe internals. Responses marked [`FlowResponse`]
/// pass untouched. Apply it last, so it sees every route and fallback.
pub fn json_errors(router: axum::Router) -> axum::Router {
    router.layer(axum::middleware::map_response(json_error_body))
}

/// The longest rejection text kept as a message; axum's are one line.
const REJECTION_TEXT_LIMIT: usize = 1024;

async fn json_error_body(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || response.extensions().get::<FlowResponse>().is_some()
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let reason = || {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    };
    let message = if status.is_server_error() {
        reason()
    } else {
        axum::body::to_bytes(body, REJECTION_TEXT_LIMIT)
            .await
            .ok()
            .map(|text| String::from_utf8_lossy(&text).trim().to_owned())
            .filter(|text| !text.is_empty())
            .unwrap_or_else(reason)
    };
    let mut rewritten = (
        status,
        Json(json!({ "error": { "code": code_of(status), "message": message } })),
    )
        .into_response();
    // Keep what the original said about the exchange (`Allow`, `Retry-After`, `Connection`), not
    // what described its old body.
    for (name, value) in &parts.headers {
        if name != http::header::CONTENT_TYPE && name != http::header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name.clone(), value.clone());
        }
    }
    rewritten
}

impl From<RunnerError> for ApiError {
    fn from(error: RunnerError) -> ApiError {
        match error {
            RunnerError::UnknownFlow(name) => {
                ApiError::NotFound(format!("flow `{name}` does not exist"))
            }
            RunnerError::UnknownRun(id) => ApiError::NotFound(format!("run {id} does not exist")),
            RunnerError::Store(e) => e.into(),
            RunnerError::Secret(e) => ApiError::Internal(Box::new(e)),
            // The caller's input, not the server: a 400 that says how deep it may go.
            error @ RunnerError::InputTooDeep { .. } => ApiError::BadRequest(error.to_string()),
            // Refused on purpose, by the operator: a 409 that says how to resume.
            error @ RunnerError::FlowPaused { .. } => ApiError::Conflict(error.to_string()),
            other if other.is_retryable() => ApiError::Unavailable(Box::new(other)),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        if let StoreError::InvalidCursor(cursor) = &error {
            return ApiError::BadRequest(format!(
                "`cursor` `{cursor}` was not issued by this server"
            ));
        }
        if error.is_retryable() {
            ApiError::Unavailable(Box::new(error))
        } else {
            ApiError::Internal(Box::new(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
    }

    async fn answer(router: &axum::Router, path: &str) -> Response {
        router
            .clone()
            .oneshot(
                http::Request::get(path)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn server_errors_never_carry_internal_text() {
        let internal = "disk /var/lib/idflow/idflow.db is corrupt";
        for error in [
            ApiError::Internal(Box::new(std::io::Error::other(internal))),
            ApiError::Unavailable(Box::new(std::io::Error::other(internal))),
            ApiError::RunFailed {
                run_id: RunId::new_at(chrono::Utc::now()),
            },
        ] {
            let response = error.into_response();
            assert!(response.status().is_server_error());
            let body = body_json(response).await;
            assert!(
                !body.to_string().contains("/var/lib"),
                "internal text in {body}"
            );
            assert!(body["error"]["code"].is_string(), "{body}");
        }
        // A 5xx some layer writes as text is rewritten too, without its text.
        let router = json_errors(axum::Router::new().route(
            "/boom",
            get(move || async move { (StatusCode::INTERNAL_SERVER_ERROR, internal) }),
        ));
        let response = answer(&router, "/boom").await;
        assert_eq!(response.status(), 500);
        assert_eq!(
            body_json(response).await,
            json!({ "error": { "code": "internal", "message": "internal server error" } })
        );
    }

    #[tokio::test]
    async fn json_errors_keeps_client_error_text_and_leaves_flow_answers_alone() {
        let router = json_errors(
            axum::Router::new()
                .route(
                    "/text",
                    get(|| async {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(http::header::RETRY_AFTER, "3")],
                            "slow down",
                        )
                    }),
                )
                .route(
                    "/flow",
                    get(|| async {
                        let mut response =
                            (StatusCode::IM_A_TEAPOT, "short and stout").into_response();
                        response.extensions_mut().insert(FlowResponse);
                        response
                    }),
                )
                .route("/ok", get(|| async { "fine" })),
        );
        let response = answer(&router, "/text").await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "3");
        assert_eq!(
            body_json(response).await,
            json!({ "error": { "code": "too_many_requests", "message": "slow down" } })
        );
        let response = answer(&router, "/flow").await;
        assert_eq!(response.status(), 418);
        let text = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&text[..], b"short and stout");
        let response = answer(&router, "/ok").await;
        assert_eq!(response.status(), 200);
    }
}
