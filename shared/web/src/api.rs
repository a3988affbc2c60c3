//! The HTTP API: axum routers shared by `idflow serve` and the Lambda functions.
//!
//! - [`invoke_router`]: `GET|POST /api/flows/{name}/invoke`, authenticated by each flow's own trigger
//!   (client token, HMAC signature, or public).
//! - [`admin_router`]: flows, runs, manual runs, re-run and cancel, behind the admin bearer token.
//! - [`crate::hooks::hooks_router`]: Okta event hooks (`/hooks/okta`).
//! - [`crate::delegated::delegated_router`]: delegated flows (`/api/delegated/flows`).
//! - [`crate::console`]: the web console at `/` and the admin API's OpenAPI document.
//! - [`router`]: all of them, plus `/healthz`, a JSON 404 and [`json_errors`].
//!
//! Every client mistake answers a 4xx with `{"error": {"code", "message"}}` and changes nothing:
//! [`ApiError`] writes the errors of idflow's own code, and [`json_errors`] rewrites any other error
//! the stack writes (axum's extractor rejections) into the same shape. A 5xx never carries an
//! internal error's text; the log line does. Bodies are read through [`read_body`] only, which tells
//! a body over the limit (413) from a malformed one (400) and a late one (408).
//!
//! The connection-level limits of `idflow serve` (read timeouts, connection cap, head size) are in
//! [`crate::local`]; in AWS, API Gateway sets its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use domain::model::{ApiAuth, HmacAuth, Respond, SecretRef, SignatureEncoding, Trigger};
use domain::ports::{SecretError, Secrets, StoreError};
use domain::run::{Run, RunId, RunQuery, RunStatus, TriggerInfo, run_detail, run_summary};
use domain::runner::{RunnerError, Runtime};

/// Default limit of request bodies.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

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
    fn status(&self) -> StatusCode {
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

    fn code(&self) -> &'static str {
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

/// What the routers share.
#[derive(Clone)]
pub struct ApiState {
    pub runtime: Arc<Runtime>,
    /// The resolved admin token; `None` leaves admin routes open (loopback-only deployments).
    pub admin_token: Option<Arc<str>>,
    pub body_limit: usize,
}

/// The whole API: invoke, admin, health, JSON fallbacks, every error as JSON.
pub fn router(state: ApiState) -> axum::Router {
    let router = axum::Router::new()
        .merge(invoke_router(state.clone()))
        .merge(crate::hooks::hooks_router(state.clone()))
        .merge(crate::delegated::delegated_router(state.clone()))
        .merge(admin_router(state))
        .merge(crate::console::console_router())
        .route("/healthz", get(|| async { Json(json!({ "ok": true })) }))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, Json(json!({ "error": { "code": "method_not_allowed", "message": "method not allowed on this route" } })))
        });
    json_errors(router)
}

/// `GET|POST /api/flows/{name}/invoke`.
pub fn invoke_router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/flows/{name}/invoke", get(invoke).post(invoke))
        .with_state(state)
}

/// Every admin route as (method, path, handler). [`admin_router`] is built from this list only, and
/// the OpenAPI document is checked against it, so the two cannot drift.
pub fn admin_routes() -> Vec<(Method, &'static str, MethodRouter<ApiState>)> {
    vec![
        (Method::GET, "/api/flows", get(list_flows)),
        (
            Method::GET,
            "/api/flows/{name}",
            get(crate::console::flow_detail),
        ),
        (
            Method::POST,
            "/api/flows/{name}/runs",
            post(start_manual_run),
        ),
        (
            Method::POST,
            "/api/flows/{name}/pause",
            post(crate::console::pause_flow),
        ),
        (
            Method::POST,
            "/api/flows/{name}/resume",
            post(crate::console::resume_flow),
        ),
        (Method::GET, "/api/runs", get(list_runs)),
        (Method::GET, "/api/runs/{id}", get(get_run)),
        (Method::POST, "/api/runs/{id}/rerun", post(rerun)),
        (Method::POST, "/api/runs/{id}/cancel", post(cancel)),
    ]
}

/// Admin routes, behind the admin bearer token.
pub fn admin_router(state: ApiState) -> axum::Router {
    let mut router = axum::Router::new();
    for (_, path, handler) in admin_routes() {
        // `route` merges the methods of a path registered twice.
        router = router.route(path, handler);
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_admin,
        ))
        .with_state(state)
}

pub(crate) async fn require_admin(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(expected) = &state.admin_token
        && !bearer_matches(request.headers(), expected)
    {
        return ApiError::Unauthorized("a valid admin bearer token is required".into())
            .into_response();
    }
    next.run(request).await
}

/// Whether `Authorization: Bearer <token>` carries `expected`, compared in constant time.
pub fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    constant_time_eq(presented.as_bytes(), expected.as_bytes())
}

/// The fewest characters an admin token the network can reach may have: 32 hex characters are 128
/// bits, beyond guessing through the API.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Who can reach the admin API, which decides how strong its token must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminExposure {
    /// Only this machine (`idflow serve` on a loopback address).
    Loopback,
    /// Any host that reaches the listener (`idflow serve` beyond loopback, the `api` Lambda).
    Network,
}

/// The admin token of `idflow.yaml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The secret reference does not resolve.
    #[error("the admin token cannot be read")]
    Unreadable(#[source] SecretError),
    /// The token is empty or whitespace, which would let a request without a token in.
    #[error(
        "the admin token is empty; set it to a random value of at least {MIN_ADMIN_TOKEN_CHARS} characters (generate one with `openssl rand -hex 32`)"
    )]
    Blank,
    /// The token is too short for an admin API the network can reach.
    #[error(
        "the admin token has {length} characters; one the network can reach needs at least {MIN_ADMIN_TOKEN_CHARS} characters (generate one with `openssl rand -hex 32`)"
    )]
    TooShort { length: usize },
}

/// Resolves the admin token (`admin.token` of `idflow.yaml`) and checks it is fit for `exposure`:
/// never blank, and at least [`MIN_ADMIN_TOKEN_CHARS`] characters when the network can reach it.
/// Surrounding whitespace (a file's final newline) is not part of the token. `None` when no token
/// is configured. `idflow serve` and the `api` Lambda both resolve their token here.
pub async fn admin_token(
    secrets: &dyn Secrets,
    reference: Option<&SecretRef>,
    exposure: AdminExposure,
) -> Result<Option<Arc<str>>, AdminTokenError> {
    let Some(reference) = reference else {
        return Ok(None);
    };
    let value = secrets
        .resolve(reference)
        .await
        .map_err(AdminTokenError::Unreadable)?;
    let token = value.expose().trim();
    let length = token.chars().count();
    if exposure == AdminExposure::Network && length < MIN_ADMIN_TOKEN_CHARS {
        return Err(AdminTokenError::TooShort { length });
    }
    if token.is_empty() {
        return Err(AdminTokenError::Blank);
    }
    Ok(Some(Arc::from(token)))
}

/// Compares secrets without leaking their length-prefix match through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths returns false immediately, which leaks only the length;
    // hash both first so even the length is not observable.
    let ha = <Sha256 as sha2::Digest>::digest(a);
    let hb = <Sha256 as sha2::Digest>::digest(b);
    ha.as_slice().ct_eq(hb.as_slice()).into()
}

/// A request body was not read within the server's body read timeout: the error the server's body
/// wrapper ([`crate::local`]) yields, which [`read_body`] answers 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {}", domain::duration::format(*timeout))]
pub struct BodyReadTimeout {
    /// The timeout that passed.
    pub timeout: Duration,
}

/// Reads a whole request body of at most `limit` bytes. Every route reads bodies here, so the
/// answers agree: over the limit is 413 (refused before reading when `Content-Length` already says
/// so), past the body read timeout is 408, and a body that is not what its framing announced (a
/// malformed chunk, a connection closed early) is 400.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ApiError::TooLarge { limit });
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(body_error(error.as_ref(), limit)),
    }
}

/// Tells the causes of a failed body read apart: the limit, the timeout, or the client's framing.
fn body_error(error: &(dyn std::error::Error + 'static), limit: usize) -> ApiError {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return ApiError::TooLarge { limit };
        }
        if let Some(timeout) = current.downcast_ref::<BodyReadTimeout>() {
            return ApiError::RequestTimeout {
                timeout: timeout.timeout,
            };
        }
        cause = current.source();
    }
    ApiError::BadRequest(
        "the request body is malformed or incomplete: its chunked encoding or Content-Length does not match what was sent".into(),
    )
}

/// Parses a request body by content type into the run input's `body`.
fn parse_body(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" | "" => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}"))),
        ct if ct.ends_with("+json") => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}"))),
        "application/x-www-form-urlencoded" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::BadRequest("form body is not UTF-8".into()))?;
            Ok(Value::Object(
                parse_query(text)
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ))
        }
        "text/plain" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::BadRequest("text body is not UTF-8".into()))?;
            Ok(Value::String(text.to_owned()))
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type `{other}` is not accepted; send application/json, application/x-www-form-urlencoded or text/plain"
        ))),
    }
}

/// Decodes `a=1&b=two` (last value wins) without a dependency: `form_urlencoded` would be the only
/// use of that crate here.
fn parse_query(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Headers never passed into a run: credentials and signatures.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "x-api-client-token",
    "proxy-authorization",
];

async fn invoke(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let runtime = &state.runtime;
    let flow = match runtime.current_flow(&name).await {
        Ok(flow) => flow,
        Err(RunnerError::UnknownFlow(_)) | Err(RunnerError::InvalidFlow { .. }) => {
            return Err(ApiError::NotFound(format!(
                "flow `{name}` has no API endpoint"
            )));
        }
        Err(other) => return Err(other.into()),
    };
    let Trigger::Api(api) = &flow.flow.trigger else {
        return Err(ApiError::NotFound(format!(
            "flow `{name}` has no API endpoint"
        )));
    };
    let bytes = read_body(body, state.body_limit).await?;
    let query = parse_query(raw_query.as_deref().unwrap_or(""));
    let mut hidden_headers: Vec<String> = Vec::new();
    let mut claims = None;
    match &api.auth {
        ApiAuth::Public => {}
        ApiAuth::Token { token } => {
            let project = runtime.project();
            let reference = token
                .clone()
                .or_else(|| project.api_tokens.get(&name).cloned())
                .ok_or_else(|| {
                    ApiError::Unauthorized(format!("flow `{name}` has no client token configured"))
                })?;
            let expected = resolve(runtime, &reference).await?;
            let presented = headers
                .get("x-api-client-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .or_else(|| query.get("clientToken").cloned());
            let Some(presented) = presented else {
                return Err(ApiError::Unauthorized(
                    "missing client token: send the `x-api-client-token` header or the `clientToken` query parameter".into(),
                ));
            };
            if !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
                return Err(ApiError::Unauthorized("invalid client token".into()));
            }
        }
        ApiAuth::Hmac(hmac) => {
            verify_hmac(runtime, hmac, &headers, &bytes).await?;
            hidden_headers.push(hmac.header.to_ascii_lowercase());
        }
        ApiAuth::Jwt { issuer, audience } => {
            claims = Some(crate::jwt::authenticate_api(runtime, issuer, audience, &headers).await?);
        }
    }
    let body = parse_body(&headers, &bytes)?;
    let mut query_json = serde_json::Map::new();
    for (k, v) in &query {
        if k != "clientToken" {
            query_json.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let mut header_json = serde_json::Map::new();
    for (k, v) in &headers {
        let key = k.as_str();
        if SECRET_HEADERS.contains(&key) || hidden_headers.iter().any(|h| h == key) {
            continue;
        }
        if let Ok(text) = v.to_str() {
            header_json.insert(key.to_owned(), Value::String(text.to_owned()));
        }
    }
    let mut input = json!({
        "method": method.as_str(),
        "body": body,
        "query": query_json,
        "headers": header_json,
    });
    if let Some(claims) = claims {
        // `auth: jwt`: the verified token's claims say who called.
        input["claims"] = claims;
    }
    let trigger = TriggerInfo::Api {
        method: method.as_str().to_owned(),
    };
    match api.respond {
        Respond::Async => {
            let (run_id, _) = runtime.start_run(&name, input, trigger, None).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "runId": run_id.to_string() })),
            )
                .into_response())
        }
        Respond::Sync => {
            let mut ended = runtime.subscribe();
            let (run_id, _) = runtime.start_run(&name, input, trigger, None).await?;
            let run = wait_for_run(runtime, &mut ended, run_id, api.timeout).await?;
            sync_response(run)
        }
    }
}

async fn resolve(
    runtime: &Runtime,
    reference: &domain::model::SecretRef,
) -> Result<String, ApiError> {
    match runtime.secrets.resolve(reference).await {
        Ok(v) => Ok(v.expose().to_owned()),
        Err(error @ SecretError::Unreadable { .. }) => Err(ApiError::Unavailable(Box::new(error))),
        Err(error) => Err(ApiError::Internal(Box::new(error))),
    }
}

async fn verify_hmac(
    runtime: &Runtime,
    config: &HmacAuth,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), ApiError> {
    let header = headers
        .get(config.header.as_str())
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized(format!("missing signature header `{}`", config.header))
        })?;
    let encoded = header
        .trim()
        .strip_prefix(config.prefix.as_str())
        .ok_or_else(|| {
            ApiError::Unauthorized(format!("signature must start with `{}`", config.prefix))
        })?;
    let signature = match config.encoding {
        SignatureEncoding::Hex => hex::decode(encoded.trim()).ok(),
        SignatureEncoding::Base64 => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        }
    }
    .ok_or_else(|| ApiError::Unauthorized("signature is not valid hex/base64".into()))?;
    let secret = resolve(runtime, &config.secret).await?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    if let Some(ts_header) = &config.timestamp_header {
        let ts_text = headers
            .get(ts_header.as_str())
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::Unauthorized(format!("missing timestamp header `{ts_header}`"))
            })?;
        let ts: i64 = ts_text
            .trim()
            .parse()
            .map_err(|_| ApiError::Unauthorized("timestamp header is not a Unix time".into()))?;
        let now = runtime.clock.now().timestamp();
        let tolerance = i64::try_from(config.tolerance.as_secs()).unwrap_or(i64::MAX);
        if (now - ts).abs() > tolerance {
            return Err(ApiError::Unauthorized(
                "signature timestamp is outside the allowed tolerance".into(),
            ));
        }
        mac.update(ts_text.trim().as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&signature)
        .map_err(|_| ApiError::Unauthorized("invalid signature".into()))
}

/// Waits for a run to end: in-process notifications, with a store poll as the fallback (the worker
/// may be another process or a Lambda).
pub async fn wait_for_run(
    runtime: &Runtime,
    ended: &mut tokio::sync::broadcast::Receiver<domain::runner::RunEnded>,
    run_id: RunId,
    timeout: Duration,
) -> Result<Run, ApiError> {
    let deadline =
        runtime.clock.now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    loop {
        if let Some(run) = runtime.runs.get(run_id).await?
            && run.status.is_terminal()
        {
            return Ok(run);
        }
        let now = runtime.clock.now();
        if now >= deadline {
            return Err(ApiError::Timeout { timeout, run_id });
        }
        let poll = (now + chrono::Duration::milliseconds(250)).min(deadline);
        tokio::select! {
            message = ended.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = message {
                    runtime.clock.sleep_until(poll).await;
                }
            }
            () = runtime.clock.sleep_until(poll) => {}
        }
    }
}

fn sync_response(run: Run) -> Result<Response, ApiError> {
    match run.status {
        RunStatus::Succeeded => {
            let output = run.output.unwrap_or(Value::Null);
            let status = output
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let body = output.get("body").cloned().unwrap_or(Value::Null);
            let mut response = match &body {
                Value::String(text) => (status, text.clone()).into_response(),
                other => (status, Json(other.clone())).into_response(),
            };
            response.extensions_mut().insert(FlowResponse);
            if let Some(Value::Object(headers)) = output.get("headers") {
                for (name, value) in headers {
                    let text = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::try_from(name.as_str()),
                        HeaderValue::try_from(text),
                    ) {
                        response.headers_mut().insert(name, value);
                    }
                }
            }
            Ok(response)
        }
        _ => Err(ApiError::RunFailed { run_id: run.id }),
    }
}

#[derive(Debug, Deserialize)]
struct FlowsParams {
    /// `1` adds each flow's last run and its number of runs in the last 24 hours.
    stats: Option<String>,
    /// Only flows with this trigger kind.
    trigger: Option<String>,
}

async fn list_flows(
    State(state): State<ApiState>,
    Query(params): Query<FlowsParams>,
) -> Result<Json<Value>, ApiError> {
    let stored = state.runtime.flows.list().await?;
    let with_stats = matches!(params.stats.as_deref(), Some("1" | "true"));
    let wanted = params.trigger.filter(|t| !t.is_empty());
    let mut flows = Vec::new();
    for s in stored {
        let (trigger, description) = match state.runtime.flow_version(&s.name, &s.version).await {
            Ok(c) => (c.flow.trigger.kind(), c.flow.description.clone()),
            Err(_) => ("invalid", None),
        };
        if wanted.as_deref().is_some_and(|w| w != trigger) {
            continue;
        }
        let mut flow = json!({
            "name": s.name,
            "version": s.version,
            "path": s.path,
            "trigger": trigger,
            "description": description,
            "deployedAt": s.deployed_at,
        });
        if with_stats {
            let stats = crate::console::flow_stats(&state.runtime, &s.name).await?;
            flow["lastRun"] = stats.last_run;
            flow["runs24h"] = json!(stats.runs_24h);
            flow["paused"] = stats.paused;
        }
        flows.push(flow);
    }
    Ok(Json(json!({ "flows": flows })))
}

async fn start_manual_run(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_body(body, state.body_limit).await?;
    let input = if bytes.is_empty() {
        json!({})
    } else {
        let ct = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if !ct.starts_with("application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "send the run input as application/json".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?
    };
    let (run_id, _) = state
        .runtime
        .start_run(&name, input, TriggerInfo::Manual, None)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run_id.to_string() })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct RunsParams {
    flow: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Only helper runs started by this run.
    parent: Option<String>,
    /// Only runs whose input, output, error or step data contain this text (case-insensitive).
    q: Option<String>,
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "`{field}` must be an RFC 3339 date-time, got `{t}`"
                ))
            })
    })
    .transpose()
}

async fn list_runs(
    State(state): State<ApiState>,
    Query(params): Query<RunsParams>,
) -> Result<Json<Value>, ApiError> {
    let status = match params.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`status` must be one of queued, running, waiting, succeeded, failed, cancelled, got `{s}`"
            ))
        })?),
    };
    let limit = match params.limit.as_deref() {
        None => 50,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("`limit` must be a number from 1 to 500, got `{l}`"))
            })?,
    };
    let query = RunQuery {
        flow: params.flow.filter(|f| !f.is_empty()),
        status,
        since: parse_time("since", params.since.as_deref())?,
        until: parse_time("until", params.until.as_deref())?,
        limit,
        cursor: params.cursor.filter(|c| !c.is_empty()),
    };
    let filter = crate::console::RunFilter {
        parent: match params.parent.as_deref() {
            None | Some("") => None,
            Some(p) => Some(RunId::parse(p).ok_or_else(|| {
                ApiError::BadRequest(format!("`parent` must be a run id, got `{p}`"))
            })?),
        },
        text: params.q.filter(|q| !q.trim().is_empty()),
    };
    let page = crate::console::list_runs(&state.runtime, query, &filter).await?;
    Ok(Json(json!({
        "runs": page.runs.iter().map(run_summary).collect::<Vec<_>>(),
        "nextCursor": page.next_cursor,
    })))
}

fn parse_run_id(text: &str) -> Result<RunId, ApiError> {
    RunId::parse(text).ok_or_else(|| ApiError::NotFound(format!("run `{text}` does not exist")))
}

#[derive(Debug, Deserialize)]
struct GetRunParams {
    /// Seconds to wait for the run to end before answering (long poll), at most 60.
    wait: Option<String>,
}

async fn get_run(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<GetRunParams>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_run_id(&id)?;
    let mut run = state
        .runtime
        .runs
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))?;
    if let Some(wait) = params.wait.as_deref() {
        let seconds = wait
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= 60)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "`wait` must be a number of seconds from 0 to 60, got `{wait}`"
                ))
            })?;
        if !run.status.is_terminal() && seconds > 0 {
            let mut ended = state.runtime.subscribe();
            match wait_for_run(&state.runtime, &mut ended, id, Duration::from_secs(seconds)).await {
                Ok(done) => run = done,
                Err(ApiError::Timeout { .. }) => {
                    run = state.runtime.runs.get(id).await?.unwrap_or(run);
                }
                Err(other) => return Err(other),
            }
        }
    }
    let steps = state.runtime.runs.steps(id).await?;
    Ok(Json(run_detail(&run, &steps)))
}

async fn rerun(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_run_id(&id)?;
    let new = state.runtime.rerun(id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": new.to_string() })),
    )
        .into_response())
}

async fn cancel(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_run_id(&id)?;
    let run = state
        .runtime
        .cancel(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))?;
    if run.status != RunStatus::Cancelled {
        return Err(ApiError::Conflict(format!(
            "run {id} already ended as {}",
            run.status
        )));
    }
    Ok(Json(run_summary(&run)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// Secrets that hold one value for every reference.
    struct OneSecret(String);

    #[async_trait::async_trait]
    impl Secrets for OneSecret {
        async fn resolve(&self, _: &SecretRef) -> Result<domain::ports::SecretValue, SecretError> {
            Ok(domain::ports::SecretValue::new(self.0.clone()))
        }
    }

    async fn body_json(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
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
                run_id: RunId::new_at(Utc::now()),
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

    #[tokio::test]
    async fn read_body_tells_the_limit_the_timeout_and_bad_framing_apart() {
        let stream = |items: Vec<Result<&'static str, std::io::Error>>| {
            Body::from_stream(futures::stream::iter(
                items
                    .into_iter()
                    .map(|item| item.map(|text| Bytes::from_static(text.as_bytes()))),
            ))
        };
        let cases: Vec<(Body, Result<&str, &str>)> = vec![
            (Body::from("{}"), Ok("{}")),
            (Body::from("x".repeat(11)), Err("payload_too_large")),
            (
                stream(vec![Ok("12345"), Ok("678901")]),
                Err("payload_too_large"),
            ),
            (
                stream(vec![
                    Ok("{"),
                    Err(std::io::Error::other("invalid chunk size")),
                ]),
                Err("bad_request"),
            ),
            (
                Body::new(http_body_util::StreamBody::new(futures::stream::iter([
                    Err::<http_body::Frame<Bytes>, _>(axum::Error::new(BodyReadTimeout {
                        timeout: Duration::from_millis(200),
                    })),
                ]))),
                Err("request_timeout"),
            ),
        ];
        for (i, (body, expected)) in cases.into_iter().enumerate() {
            match (read_body(body, 10).await, expected) {
                (Ok(bytes), Ok(text)) => assert_eq!(&bytes[..], text.as_bytes(), "case {i}"),
                (Err(error), Err(code)) => assert_eq!(error.code(), code, "case {i}: {error}"),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[tokio::test]
    async fn admin_tokens_must_be_long_where_the_network_reaches_them() {
        let strong = "0123456789abcdef0123456789abcdef";
        use AdminExposure::{Loopback, Network};
        check("x", Network, Err("has 1 characters")).await;
        check(" \t\n", Network, Err("has 0 characters")).await;
        check(&strong[1..], Network, Err("has 31 characters")).await;
        check(strong, Network, Ok(Some(strong))).await;
        // The trimmed token is the token: a client cannot send header whitespace anyway.
        check(
            "  0123456789abcdef0123456789abcdef\n",
            Network,
            Ok(Some(strong)),
        )
        .await;
        check("x", Loopback, Ok(Some("x"))).await;
        check("   ", Loopback, Err("the admin token is empty")).await;
        assert_eq!(
            admin_token(&OneSecret("x".into()), None, Network)
                .await
                .unwrap(),
            None
        );
    }

    async fn check(token: &str, exposure: AdminExposure, expected: Result<Option<&str>, &str>) {
        let reference = SecretRef::Env("IDFLOW_ADMIN_TOKEN".into());
        let got = admin_token(&OneSecret(token.into()), Some(&reference), exposure).await;
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got.as_deref(), want, "{token:?}"),
            (Err(error), Err(message)) => {
                assert!(error.to_string().contains(message), "{token:?}: {error}")
            }
            (got, want) => panic!("{token:?}: got {got:?}, want {want:?}"),
        }
    }
}
