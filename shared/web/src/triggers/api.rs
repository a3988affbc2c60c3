//! The API trigger: `GET|POST /api/flows/{name}/invoke` of `trigger: { api: ... }` flows.
//!
//! Decode (the flow, its trigger, the body by content type) → authenticate (the flow's own `auth`:
//! public, client token, HMAC signature or bearer JWT) → build the input (`method`, `body`, `query`,
//! `headers` without credentials, and the JWT's `claims`) → start, on the very compiled version
//! that authenticated the call, then answer 202 `{runId}` or, with `respond: sync`, the flow's own
//! answer.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use domain::model::{ApiAuth, HmacAuth, Respond, SignatureEncoding, Trigger};
use domain::run::{Run, RunStatus, TriggerInfo};
use domain::runner::{RunnerError, Runtime};

use crate::auth::{constant_time_eq, resolve_secret};
use crate::body::read_body;
use crate::error::{ApiError, FlowResponse};
use crate::jwt::{self, Expected, JwtError};
use crate::state::ApiState;

/// `GET|POST /api/flows/{name}/invoke`.
/// The routes [`router`] serves, as `(method, path, behind the admin JWT authorizer)`: what the
/// deployment template must route to the `api` Lambda (`tests/integration/template.rs` checks it).
pub const ROUTES: &[(&str, &str, bool)] = &[
    ("GET", "/api/flows/{name}/invoke", false),
    ("POST", "/api/flows/{name}/invoke", false),
];

/// This trigger's line of [`super::HTTP_TRIGGERS`].
pub const TRIGGER: super::HttpTrigger = super::HttpTrigger {
    surface: super::Surface::Api,
    routes: ROUTES,
    router,
};

pub fn router(state: ApiState) -> axum::Router {
    axum::Router::new()
        .route("/api/flows/{name}/invoke", get(invoke).post(invoke))
        .with_state(state)
}

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
            let expected = resolve_secret(runtime, &reference).await?;
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
            if !constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
                return Err(ApiError::Unauthorized("invalid client token".into()));
            }
        }
        ApiAuth::Hmac(hmac) => {
            verify_hmac(runtime, hmac, &headers, &bytes).await?;
            hidden_headers.push(hmac.header.to_ascii_lowercase());
        }
        ApiAuth::Jwt { issuer, audience } => {
            claims = Some(authenticate_jwt(runtime, issuer, audience, &headers).await?);
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
    let trigger = TriggerInfo::Api(domain::run::ApiStart {
        method: method.as_str().to_owned(),
    });
    // The run is of the version that authenticated the caller, whatever was deployed since.
    match api.respond {
        Respond::Async => {
            let (run_id, _) = runtime.start_flow(&flow, input, trigger, None).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "runId": run_id.to_string() })),
            )
                .into_response())
        }
        Respond::Sync => {
            // The steps run here, right after the run is durable; the queue is the fallback.
            let (run_id, run) = runtime
                .invoke_sync(&flow, input, trigger, api.timeout)
                .await?;
            let run = run.ok_or(ApiError::Timeout {
                timeout: api.timeout,
                run_id,
            })?;
            sync_response(run)
        }
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
    let secret = resolve_secret(runtime, &config.secret).await?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
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
        let now = runtime.now().timestamp();
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

/// Authenticates an `auth: jwt` API call: the bearer token must be issued by `issuer` for
/// `audience`, signed by a key of the issuer's JWKS (`jwks.<issuer>` in `idflow.yaml`, else OpenID
/// discovery). Returns the token's claims.
async fn authenticate_jwt(
    runtime: &Runtime,
    issuer: &str,
    audience: &str,
    headers: &HeaderMap,
) -> Result<Value, ApiError> {
    let token = jwt::bearer(headers).ok_or(JwtError::MissingBearer)?;
    let project = runtime.project();
    let source = jwt::jwks_for_issuer(&project, issuer, None)?;
    let expected = Expected {
        issuer,
        audience,
        subject: None,
    };
    let claims = jwt::verify(runtime, &source, token, &expected, runtime)
        .await
        .inspect_err(|error| {
            if error.is_config() {
                tracing::error!(%issuer, error = %error, "JWT endpoint cannot verify tokens");
            }
        })?;
    Ok(claims)
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

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;
    use crate::triggers::test_support::{DeployAfterFirstLookup, stored};

    /// Version A: a public endpoint that only says hello.
    const PUBLIC: &str = "name: report\ntrigger: { api: { auth: public } }\nsteps:\n  - card: flow.return\n    with: { body: hello }\n";
    /// Version B: the same endpoint, now behind a client token, reading what only a token holder
    /// may read.
    const GUARDED: &str = "name: report\ntrigger: { api: { auth: token, token: \"env:IDFLOW_TEST_REPORT_TOKEN\" } }\nsteps:\n  - card: flow.return\n    with: { body: \"{{ vars.payroll }}\" }\n";

    #[tokio::test]
    async fn a_deploy_between_authentication_and_start_does_not_run_the_new_version() {
        let deploy =
            DeployAfterFirstLookup::new(stored("report", PUBLIC), stored("report", GUARDED));
        let (runtime, state) = deploy.runtime(Default::default(), ".").await;
        // The attacker has no token: version A lets them in.
        let response = router(state)
            .oneshot(
                http::Request::post("/api/flows/report/invoke")
                    .body(Body::empty())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let run = deploy.started_run(&runtime, response).await;
        // B is deployed now, yet the run is of A, the version that authenticated the call.
        let current = runtime
            .current_flow("report")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(current.flow.version, domain::flowfile::version_of(GUARDED));
        assert_eq!(run.flow_version, domain::flowfile::version_of(PUBLIC));
    }
}
