//! The delegated trigger: flows run by callers such as OIG Access Requests. Decode → authenticate
//! (the bearer credential against the callers of `idflow.yaml`, then the flow's `callers`) → build
//! the input (scalars checked against the flow's declared inputs) → start, on the very compiled
//! version whose `callers` admitted the caller.
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
//! `oig.create_request_message` when the run ends (`domain::delegation`, called from the runner's
//! end-of-run path).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use domain::delegation::{ACCESS_REQUEST_ID, validate_inputs};
use domain::engine::CompiledFlow;
use domain::model::{DelegatedTrigger, SecretRef, Trigger};
use domain::ports::SecretError;
use domain::run::TriggerInfo;
use domain::runner::{RunnerError, Runtime};

use crate::auth::constant_time_eq;
use crate::body::read_body;
use crate::error::ApiError;
use crate::jwt::{self, Expected, JwtError};
use crate::state::ApiState;

/// `GET /api/delegated/flows` and `POST /api/delegated/flows/{name}/run`.
/// The routes [`router`] serves, as `(method, path, behind the admin JWT authorizer)`: what the
/// deployment template must route to the `api` Lambda (`tests/integration/template.rs` checks it).
pub const ROUTES: &[(&str, &str, bool)] = &[
    ("GET", "/api/delegated/flows", true),
    ("POST", "/api/delegated/flows/{name}/run", true),
];

/// This trigger's line of [`super::HTTP_TRIGGERS`].
pub const TRIGGER: super::HttpTrigger = super::HttpTrigger {
    surface: super::Surface::Api,
    routes: ROUTES,
    router,
};

pub fn router(state: ApiState) -> axum::Router {
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
    /// Decodes a caller as kept in [`domain::model::ProjectConfig::callers`].
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
            CallerAuth::Token(reference) => match runtime.resolve_secret(&reference).await {
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
                let verified = match crate::jwt::jwks_for_issuer(
                    &project,
                    &expected_issuer,
                    jwks.as_deref(),
                ) {
                    Ok(source) => jwt::verify(runtime, &source, token, &expected, runtime).await,
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
    let index = runtime.trigger_index().await?;
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
    let bytes = read_body(body, state.body_limit).await?;
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
    let trigger_info = TriggerInfo::Delegated(domain::run::DelegatedStart {
        caller: caller.to_owned(),
    });
    // The run is of the version whose `callers` admitted the caller.
    let (run_id, _) = runtime
        .start_flow(&flow, input, trigger_info, dedupe.as_deref())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run_id.to_string() })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;
    use crate::triggers::test_support::{DeployAfterFirstLookup, stored};

    /// Version A: callers `ops` may grant badges.
    const OPS: &str = "name: badge\ntrigger: { delegated: { inputs: { note: { type: text, required: false } }, callers: [ops] } }\nsteps:\n  - card: flow.return\n    with: { body: granted }\n";
    /// Version B: only `security` may, and it does more.
    const SECURITY: &str = "name: badge\ntrigger: { delegated: { inputs: { note: { type: text, required: false } }, callers: [security] } }\nsteps:\n  - card: flow.return\n    with: { body: \"granted everywhere\" }\n";

    #[tokio::test]
    async fn a_deploy_between_the_callers_check_and_start_does_not_run_the_new_version() {
        let dir = std::env::temp_dir().join(format!("idflow-web-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("ops.token"), "ops-token").unwrap_or_else(|e| panic!("{e}"));
        let project = domain::model::ProjectConfig {
            callers: [("ops".to_owned(), json!({ "token": "file:ops.token" }))].into(),
            ..Default::default()
        };
        let deploy = DeployAfterFirstLookup::new(stored("badge", OPS), stored("badge", SECURITY));
        let (runtime, state) = deploy.runtime(project, dir.to_str().unwrap_or(".")).await;
        let response = router(state)
            .oneshot(
                http::Request::post("/api/delegated/flows/badge/run")
                    .header(http::header::AUTHORIZATION, "Bearer ops-token")
                    .body(Body::empty())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let run = deploy.started_run(&runtime, response).await;
        // `ops` was admitted by A; B, which would refuse it, is current now but is not what runs.
        assert_eq!(run.flow_version, domain::flowfile::version_of(OPS));
    }
}
