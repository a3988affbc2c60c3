//! Delegated flows: run by callers such as OIG Access Requests.
//!
//! - `GET /api/delegated/flows`: the delegated flows the calling principal may run, with their input
//!   schema (what Access Requests syncs to offer a flow and map request fields onto its inputs).
//! - `POST /api/delegated/flows/{name}/run`: checks the inputs and queues a run (202 `{runId}`).
//!
//! Callers are the `callers` of `idflow.yaml`, each authenticated by a bearer credential: a JWT
//! (`{ jwt: { issuer, audience, sub?, jwks? } }`, verified by [`crate::jwt`]) or a static token
//! (`{ token: "env:NAME" }`, compared in constant time). A flow may only be listed and run by the
//! callers it names; anyone else gets 403 and no run.
//!
//! Inputs are scalars: `text`, `number`, `datetime` (RFC 3339) and `boolean`. Objects, lists, wrong
//! types, missing required inputs and undeclared inputs are refused with a 400 naming the input.
//! Every delegated flow also takes an optional `accessRequestId` (text). With
//! `report_to_request: true`, the run's outcome is posted to that access request with
//! `oig.create_request_message` when the run ends ([`pending_report`], [`send_report`], called from
//! the runner's end-of-run path).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::api::{ApiError, ApiState, constant_time_eq};
use crate::cards::{CardCall, CardError};
use crate::engine::CompiledFlow;
use crate::jwt::{self, Expected, JwksSource, JwtError};
use crate::model::{DelegatedInput, DelegatedTrigger, InputType, SecretRef, Trigger};
use crate::ports::SecretError;
use crate::run::{Run, RunError, RunId, TriggerInfo};
use crate::runner::{RunnerError, Runtime};

/// The input every delegated flow accepts besides its declared ones: the access request to report to.
pub const ACCESS_REQUEST_ID: &str = "accessRequestId";
/// The card that posts a run's outcome to its access request.
pub const REPORT_CARD: &str = "oig.create_request_message";
/// The longest message `oig.create_request_message` takes.
pub const REPORT_MAX_CHARS: usize = 5000;

/// `GET /api/delegated/flows` and `POST /api/delegated/flows/{name}/run`.
pub fn delegated_router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/delegated/flows", get(list))
        .route("/api/delegated/flows/{name}/run", post(run))
        .with_state(state)
}

/// How a caller of `idflow.yaml` authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerAuth {
    Jwt {
        issuer: String,
        audience: String,
        subject: Option<String>,
        /// Where the issuer's keys are; `None` falls back to `jwks.<issuer>`, then discovery.
        jwks: Option<String>,
    },
    Token(SecretRef),
}

impl CallerAuth {
    /// Decodes a caller as kept in [`crate::model::ProjectConfig::callers`].
    pub fn from_config(value: &Value) -> Result<CallerAuth, String> {
        if let Some(token) = value.get("token") {
            let text = token.as_str().ok_or("`token` must be a secret reference")?;
            return SecretRef::parse(text).map(CallerAuth::Token);
        }
        let jwt = value.get("jwt").ok_or("a caller needs `jwt` or `token`")?;
        let text = |key: &str| jwt.get(key).and_then(Value::as_str).map(str::to_owned);
        Ok(CallerAuth::Jwt {
            issuer: text("issuer").ok_or("`jwt.issuer` is missing")?,
            audience: text("audience").ok_or("`jwt.audience` is missing")?,
            subject: text("sub"),
            jwks: text("jwks"),
        })
    }
}

/// Who is calling: the configured callers the presented credential proves to be, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub callers: Vec<String>,
}

impl Principal {
    /// The first of `allowed` this principal is, if any.
    pub fn as_one_of<'a>(&self, allowed: &'a [String]) -> Option<&'a str> {
        allowed
            .iter()
            .find(|name| self.callers.contains(name))
            .map(String::as_str)
    }
}

/// Maps a JWT problem to the HTTP edge: an unloadable JWKS is the server's (503, retry), a bad
/// JWKS configuration is the server's (500), everything else is the token's (401).
impl From<JwtError> for ApiError {
    fn from(error: JwtError) -> ApiError {
        if error.is_retryable() {
            ApiError::Unavailable(Box::new(error))
        } else if error.is_config() {
            ApiError::Internal(Box::new(error))
        } else {
            ApiError::Unauthorized(error.to_string())
        }
    }
}

/// Authenticates the bearer credential of a request against every configured caller.
pub async fn authenticate(runtime: &Runtime, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = jwt::bearer(headers).ok_or(JwtError::MissingBearer)?;
    let project = runtime.project();
    let issuer = jwt::looks_like_jwt(token)
        .then(|| jwt::unverified_issuer(token))
        .flatten();
    let mut callers = Vec::new();
    let mut refusal: Option<JwtError> = None;
    for (name, config) in &project.callers {
        let auth = match CallerAuth::from_config(config) {
            Ok(auth) => auth,
            Err(message) => {
                tracing::warn!(caller = %name, %message, "caller ignored");
                continue;
            }
        };
        match auth {
            CallerAuth::Token(reference) => match runtime.secrets.resolve(&reference).await {
                Ok(expected) => {
                    if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) {
                        callers.push(name.clone());
                    }
                }
                Err(error @ SecretError::Unreadable { .. }) => {
                    return Err(ApiError::Unavailable(Box::new(error)));
                }
                Err(error) => {
                    tracing::warn!(caller = %name, error = %error, "caller token is not set; caller ignored");
                }
            },
            CallerAuth::Jwt {
                issuer: expected_issuer,
                audience,
                subject,
                jwks,
            } => {
                let Some(presented) = issuer.as_deref() else {
                    continue;
                };
                if presented.trim_end_matches('/') != expected_issuer.trim_end_matches('/') {
                    continue;
                }
                let expected = Expected {
                    issuer: &expected_issuer,
                    audience: &audience,
                    subject: subject.as_deref(),
                };
                let verified =
                    match JwksSource::for_issuer(&project, &expected_issuer, jwks.as_deref()) {
                        Ok(source) => {
                            jwt::verify(
                                runtime.secrets.as_ref(),
                                &source,
                                token,
                                &expected,
                                runtime.clock.now(),
                            )
                            .await
                        }
                        Err(error) => Err(error),
                    };
                match verified {
                    Ok(_) => callers.push(name.clone()),
                    Err(error) if error.is_retryable() => return Err(error.into()),
                    Err(error) => {
                        if error.is_config() {
                            tracing::error!(caller = %name, error = %error, "caller cannot be verified");
                        }
                        // A configuration problem outranks a token problem in the answer.
                        if !refusal.as_ref().is_some_and(JwtError::is_config) {
                            refusal = Some(error);
                        }
                    }
                }
            }
        }
    }
    if callers.is_empty() {
        return Err(match refusal {
            Some(error) => error.into(),
            None => ApiError::Unauthorized("the bearer token matches no configured caller".into()),
        });
    }
    Ok(Principal { callers })
}

async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let runtime = &state.runtime;
    let principal = authenticate(runtime, &headers).await?;
    let index = runtime.trigger_index.get(runtime).await?;
    let flows: Vec<Value> = index
        .delegated
        .iter()
        .filter_map(|flow| match &flow.flow.trigger {
            Trigger::Delegated(d) if principal.as_one_of(&d.callers).is_some() => {
                Some(describe(flow, d))
            }
            _ => None,
        })
        .collect();
    Ok(Json(json!({ "flows": flows })))
}

/// A delegated flow as listed: name, description and its input schema.
pub fn describe(flow: &CompiledFlow, trigger: &DelegatedTrigger) -> Value {
    let mut inputs: Vec<Value> = trigger
        .inputs
        .iter()
        .map(|(name, input)| {
            json!({
                "name": name,
                "type": input.kind.as_str(),
                "required": input.required,
                "description": input.description,
            })
        })
        .collect();
    if !trigger.inputs.contains_key(ACCESS_REQUEST_ID) {
        inputs.push(json!({
            "name": ACCESS_REQUEST_ID,
            "type": "text",
            "required": false,
            "description": "The access request this run is for (v1 or v2 id)",
        }));
    }
    json!({
        "name": flow.flow.name,
        "description": flow.flow.description,
        "inputs": inputs,
        "reportToRequest": trigger.report_to_request,
    })
}

async fn run(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let runtime = &state.runtime;
    // Authenticate first, so flow names cannot be probed anonymously.
    let principal = authenticate(runtime, &headers).await?;
    let not_found = || ApiError::NotFound(format!("no delegated flow `{name}`"));
    let flow = match runtime.current_flow(&name).await {
        Ok(flow) => flow,
        Err(RunnerError::UnknownFlow(_) | RunnerError::InvalidFlow { .. }) => {
            return Err(not_found());
        }
        Err(other) => return Err(other.into()),
    };
    let Trigger::Delegated(trigger) = &flow.flow.trigger else {
        return Err(not_found());
    };
    let Some(caller) = principal.as_one_of(&trigger.callers) else {
        return Err(ApiError::Forbidden(format!(
            "caller {} may not run flow `{name}`",
            principal
                .callers
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let bytes = axum::body::to_bytes(body, state.body_limit)
        .await
        .map_err(|_| ApiError::TooLarge {
            limit: state.body_limit,
        })?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        let content_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        if !content_type.starts_with("application/json") {
            return Err(ApiError::UnsupportedMediaType(
                "send the inputs as application/json".into(),
            ));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?
    };
    let input = validate_inputs(&name, trigger, body).map_err(ApiError::BadRequest)?;
    // A caller that retries a request it is unsure about sends the same key and gets the same run.
    let dedupe = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(|k| format!("delegated:{name}:{caller}:{k}"));
    let trigger_info = TriggerInfo::Delegated {
        caller: caller.to_owned(),
    };
    let (run_id, _) = runtime
        .start_run(&name, input, trigger_info, dedupe.as_deref())
        .await
        .map_err(|error| match error {
            // The caller's inputs, not the server: a 400 that says how deep they may go.
            RunnerError::InputTooDeep { .. } => ApiError::BadRequest(error.to_string()),
            other => other.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run_id.to_string() })),
    )
        .into_response())
}

/// Checks a delegated run's inputs and returns the run input: declared inputs (and
/// `accessRequestId`) only, `null` treated as absent.
pub fn validate_inputs(
    flow: &str,
    trigger: &DelegatedTrigger,
    body: Value,
) -> Result<Value, String> {
    let Value::Object(given) = body else {
        return Err(format!(
            "the inputs must be a JSON object, got {}",
            describe_value(&body)
        ));
    };
    let mut input = Map::new();
    for (name, value) in given {
        if value.is_null() {
            continue;
        }
        match trigger.inputs.get(&name) {
            Some(declared) => check_value(&name, declared, &value)?,
            None if name == ACCESS_REQUEST_ID => {
                if value.as_str().is_none_or(|s| s.trim().is_empty()) {
                    return Err(format!(
                        "input `{ACCESS_REQUEST_ID}` must be non-empty text, got {}",
                        describe_value(&value)
                    ));
                }
            }
            None => {
                let mut known: Vec<&str> = trigger.inputs.keys().map(String::as_str).collect();
                if !trigger.inputs.contains_key(ACCESS_REQUEST_ID) {
                    known.push(ACCESS_REQUEST_ID);
                }
                return Err(format!(
                    "unknown input `{name}`: flow `{flow}` takes {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        input.insert(name, value);
    }
    for (name, declared) in &trigger.inputs {
        if declared.required && !input.contains_key(name) {
            return Err(format!(
                "input `{name}` is required ({})",
                declared.kind.as_str()
            ));
        }
    }
    Ok(Value::Object(input))
}

fn check_value(name: &str, declared: &DelegatedInput, value: &Value) -> Result<(), String> {
    let kind = declared.kind;
    if value.is_object() || value.is_array() {
        return Err(format!(
            "input `{name}` must be {}, got {}; delegated inputs take single scalar values",
            kind.as_str(),
            describe_value(value)
        ));
    }
    let ok = match kind {
        InputType::Text => value.is_string(),
        InputType::Number => value.is_number(),
        InputType::Boolean => value.is_boolean(),
        InputType::Datetime => {
            let text = value.as_str().unwrap_or("");
            if value.is_string() && chrono::DateTime::parse_from_rfc3339(text).is_err() {
                return Err(format!(
                    "input `{name}` must be an RFC 3339 date-time such as 2025-01-31T17:00:00Z, got `{}`",
                    text.chars().take(40).collect::<String>()
                ));
            }
            value.is_string()
        }
        // The parser admits scalar kinds only; anything scalar passes for the others.
        InputType::Object | InputType::List | InputType::Any => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "input `{name}` must be {}, got {}",
            kind.as_str(),
            describe_value(value)
        ))
    }
}

fn describe_value(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What a delegated run owes its access request, taken from the run as it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingReport {
    pub run_id: RunId,
    pub flow: String,
    pub flow_version: String,
    /// The access request id (`accessRequestId` input).
    pub request: String,
    pub succeeded: bool,
    /// The returned body as text, or the error message.
    pub result: String,
}

/// The report of a run that is ending, when it is a delegated run given an `accessRequestId`.
/// Cheap for every other run (no clone); whether the flow asked for reports is decided in
/// [`send_report`], which has the flow.
pub fn pending_report(
    run: &Run,
    output: Option<&Value>,
    error: Option<&RunError>,
) -> Option<PendingReport> {
    if !matches!(run.trigger, TriggerInfo::Delegated { .. }) {
        return None;
    }
    let request = run
        .input
        .get(ACCESS_REQUEST_ID)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())?;
    let result = match (error, output) {
        (Some(e), _) => e.message.clone(),
        (None, Some(output)) => match output.get("body") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        },
        (None, None) => String::new(),
    };
    Some(PendingReport {
        run_id: run.id,
        flow: run.flow.clone(),
        flow_version: run.flow_version.clone(),
        request: request.to_owned(),
        succeeded: error.is_none(),
        result,
    })
}

/// The message posted to the access request.
pub fn report_message(report: &PendingReport, description: Option<&str>) -> String {
    let mut message = format!(
        "idflow flow `{}` {} (run {}).",
        report.flow,
        if report.succeeded {
            "succeeded"
        } else {
            "failed"
        },
        report.run_id
    );
    if let Some(description) = description.map(str::trim).filter(|d| !d.is_empty()) {
        message.push('\n');
        message.push_str(description);
    }
    if !report.result.trim().is_empty() {
        message.push_str(if report.succeeded {
            "\nResult: "
        } else {
            "\nError: "
        });
        message.push_str(report.result.trim());
    }
    if message.chars().count() > REPORT_MAX_CHARS {
        message = message.chars().take(REPORT_MAX_CHARS - 1).collect();
        message.push('…');
    }
    message
}

/// Posts a run's outcome to its access request with the `oig` executor, when the flow has
/// `report_to_request: true`. Best effort and never fails the run (it has already ended): problems
/// are logged. One retry for retryable card errors.
pub async fn send_report(runtime: &Runtime, report: PendingReport) {
    let flow = match runtime
        .flow_version(&report.flow, &report.flow_version)
        .await
    {
        Ok(flow) => flow,
        Err(error) => {
            tracing::warn!(run_id = %report.run_id, error = %error, "access request report skipped");
            return;
        }
    };
    let Trigger::Delegated(trigger) = &flow.flow.trigger else {
        return;
    };
    if !trigger.report_to_request {
        return;
    }
    let Some(executor) = runtime.executors.get("oig").cloned() else {
        tracing::warn!(run_id = %report.run_id, request = %report.request, "access request report not sent: no `oig` card executor in this deployment");
        return;
    };
    let message = report_message(&report, flow.flow.description.as_deref());
    let timeout = std::time::Duration::from_secs(30);
    for attempt in 1..=2 {
        let call = CardCall {
            card: REPORT_CARD.to_owned(),
            input: json!({ "request": report.request, "message": message }),
            timeout,
            run_id: report.run_id,
            step: "report_to_request".to_owned(),
            attempt,
            project: runtime.project(),
        };
        let deadline = runtime.clock.now()
            + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let result = tokio::select! {
            result = executor.execute(&call) => result,
            () = runtime.clock.sleep_until(deadline) => Err(CardError::Timeout(timeout)),
        };
        match result {
            Ok(_) => {
                tracing::info!(run_id = %report.run_id, request = %report.request, "outcome posted to the access request");
                return;
            }
            Err(error) if attempt == 1 && error.is_retryable() => {
                tracing::warn!(run_id = %report.run_id, error = %error, "access request report failed, retrying once");
            }
            Err(error) => {
                tracing::warn!(run_id = %report.run_id, request = %report.request, error = %error, "access request report not sent");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn trigger() -> DelegatedTrigger {
        let input = |kind, required| DelegatedInput {
            kind,
            required,
            description: None,
        };
        DelegatedTrigger {
            inputs: BTreeMap::from([
                ("email".to_owned(), input(InputType::Text, true)),
                ("days".to_owned(), input(InputType::Number, false)),
                ("until".to_owned(), input(InputType::Datetime, false)),
                ("urgent".to_owned(), input(InputType::Boolean, false)),
            ]),
            callers: vec!["ops".into()],
            report_to_request: true,
        }
    }

    fn check(body: Value, expected: Result<Value, &str>) {
        let got = validate_inputs("badge", &trigger(), body.clone());
        assert_eq!(
            got.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|e| *e),
            "{body}"
        );
    }

    #[test]
    fn inputs_are_scalars_of_their_declared_type() {
        check(json!({"email": "a@x"}), Ok(json!({"email": "a@x"})));
        check(
            json!({"email": "a@x", "days": 3, "until": "2025-01-31T17:00:00+01:00", "urgent": true, "accessRequestId": "req123"}),
            Ok(
                json!({"email": "a@x", "days": 3, "until": "2025-01-31T17:00:00+01:00", "urgent": true, "accessRequestId": "req123"}),
            ),
        );
        check(
            json!({"email": "a@x", "days": null}),
            Ok(json!({"email": "a@x"})),
        );
        check(json!({}), Err("input `email` is required (text)"));
        check(
            json!({"email": null}),
            Err("input `email` is required (text)"),
        );
        check(
            json!({"email": 5}),
            Err("input `email` must be text, got a number"),
        );
        check(
            json!({"email": "a", "days": "3"}),
            Err("input `days` must be number, got text"),
        );
        check(
            json!({"email": "a", "urgent": "yes"}),
            Err("input `urgent` must be boolean, got text"),
        );
        check(
            json!({"email": "a", "until": "tomorrow"}),
            Err(
                "input `until` must be an RFC 3339 date-time such as 2025-01-31T17:00:00Z, got `tomorrow`",
            ),
        );
        check(
            json!({"email": {"a": 1}}),
            Err(
                "input `email` must be text, got an object; delegated inputs take single scalar values",
            ),
        );
        check(
            json!({"email": "a", "days": [1, 2]}),
            Err(
                "input `days` must be number, got a list; delegated inputs take single scalar values",
            ),
        );
        check(
            json!({"email": "a", "building": "HQ"}),
            Err(
                "unknown input `building`: flow `badge` takes `days`, `email`, `until`, `urgent`, `accessRequestId`",
            ),
        );
        check(
            json!({"email": "a", "accessRequestId": 7}),
            Err("input `accessRequestId` must be non-empty text, got a number"),
        );
        check(
            json!([1]),
            Err("the inputs must be a JSON object, got a list"),
        );
    }

    #[test]
    fn reports_name_the_outcome_the_description_and_the_result() {
        let report = PendingReport {
            run_id: RunId(ulid::Ulid::nil()),
            flow: "badge".into(),
            flow_version: "v".into(),
            request: "req1".into(),
            succeeded: false,
            result: "step `email` failed".into(),
        };
        assert_eq!(
            report_message(&report, Some("Email the badge team")),
            "idflow flow `badge` failed (run 00000000000000000000000000).\nEmail the badge team\nError: step `email` failed"
        );
        let long = PendingReport {
            succeeded: true,
            result: "x".repeat(6000),
            ..report
        };
        let message = report_message(&long, None);
        assert_eq!(message.chars().count(), REPORT_MAX_CHARS);
        assert!(message.starts_with("idflow flow `badge` succeeded"));
    }
}
