//! The admin API: the deployed flows, pausing and resuming them, manual runs (the manual trigger),
//! runs and their steps, re-run and cancel. Every route is in [`admin_routes`], which [`router`] puts behind the one admin
//! check ([`require_admin`]) and which the OpenAPI document is checked against.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use domain::run::{RunId, RunQuery, RunStatus, TriggerInfo, run_detail, run_summary};
use domain::runner::{RunFilter, RunnerError};

use crate::auth::require_admin;
use crate::body::read_body;
use crate::error::ApiError;
use crate::state::ApiState;
use crate::view::{chart, next_fires, trigger_json};

/// Every admin route as (method, path, handler). [`router`] is built from this list only, and
/// the OpenAPI document is checked against it, so the two cannot drift.
pub fn admin_routes() -> Vec<(Method, &'static str, MethodRouter<ApiState>)> {
    vec![
        (Method::GET, "/api/flows", get(list_flows)),
        (Method::GET, "/api/flows/{name}", get(flow_detail)),
        (
            Method::POST,
            "/api/flows/{name}/runs",
            post(start_manual_run),
        ),
        (Method::POST, "/api/flows/{name}/pause", post(pause_flow)),
        (Method::POST, "/api/flows/{name}/resume", post(resume_flow)),
        (Method::GET, "/api/runs", get(list_runs)),
        (Method::GET, "/api/runs/{id}", get(get_run)),
        (Method::GET, "/api/runs/{id}/steps/{seq}", get(get_step)),
        (Method::POST, "/api/runs/{id}/rerun", post(rerun)),
        (Method::POST, "/api/runs/{id}/cancel", post(cancel)),
    ]
}

/// The admin routes, behind [`require_admin`] (the one admin check of every deployment).
pub fn router(state: ApiState) -> axum::Router {
    let mut router = axum::Router::new();
    for (_, path, handler) in admin_routes() {
        // `route` merges the methods of a path registered twice.
        router = router.route(path, handler);
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.admin.clone(),
            require_admin,
        ))
        .with_state(state)
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
    let with_stats = matches!(params.stats.as_deref(), Some("1" | "true"));
    let wanted = params.trigger.filter(|t| !t.is_empty());
    let mut flows = Vec::new();
    for deployed in state.runtime.deployed_flows().await? {
        let trigger = deployed.trigger_kind();
        if wanted.as_deref().is_some_and(|w| w != trigger) {
            continue;
        }
        let description = deployed
            .compiled
            .as_ref()
            .ok()
            .and_then(|c| c.flow.description.clone());
        let s = &deployed.stored;
        let mut flow = json!({
            "name": s.name,
            "version": s.version,
            "path": s.path,
            "trigger": trigger,
            "description": description,
            "deployedAt": s.deployed_at,
        });
        if with_stats {
            let stats = state.runtime.flow_stats(&s.name).await?;
            flow["lastRun"] = stats.last_run;
            flow["runs24h"] = json!(stats.runs_24h);
            flow["paused"] = json!(stats.paused);
        }
        flows.push(flow);
    }
    Ok(Json(json!({ "flows": flows })))
}

/// `GET /api/flows/{name}`: the current version's source, trigger and step tree.
async fn flow_detail(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deployed = state
        .runtime
        .deployed_flow(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("flow `{name}` does not exist")))?;
    let stored = &deployed.stored;
    let mut body = json!({
        "name": stored.name,
        "version": stored.version,
        "path": stored.path,
        "deployedAt": stored.deployed_at,
        "source": stored.source,
    });
    match deployed.compiled {
        Ok(compiled) => {
            let flow = &compiled.flow;
            body["description"] = json!(flow.description);
            body["trigger"] = trigger_json(&flow.trigger);
            body["steps"] = chart(&flow.steps);
            if let domain::model::Trigger::Schedule(schedule) = &flow.trigger {
                body["nextFires"] = json!(next_fires(
                    &schedule.expression,
                    schedule.timezone.as_deref(),
                    state.runtime.now(),
                ));
            }
        }
        Err(RunnerError::InvalidFlow { .. }) => {
            body["trigger"] = json!({ "kind": "invalid" });
            body["steps"] = json!([]);
        }
        Err(other) => return Err(other.into()),
    }
    body["paused"] = json!(state.runtime.paused(&name).await?);
    // The checker run again on the version shown, against the project config served now, as a
    // load would run it; and what the last reload refused of the file, if anything.
    let project = state.runtime.project();
    let (checked, warnings) =
        domain::flowfile::check_flow_source(&stored.path, &stored.source, Some(&project));
    let errors = checked.err().unwrap_or_default();
    body["checks"] = json!({
        "errors": errors.iter().map(diagnostic_json).collect::<Vec<_>>(),
        "warnings": warnings.iter().map(diagnostic_json).collect::<Vec<_>>(),
        "rejected": state.runtime.rejected_file(&name).iter().map(diagnostic_json).collect::<Vec<_>>(),
    });
    Ok(Json(body))
}

/// A diagnostic for the console, with the close name its message suggests on its own.
fn diagnostic_json(diagnostic: &domain::diag::Diagnostic) -> Value {
    let suggestion = diagnostic
        .message
        .split_once("did you mean `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    json!({
        "file": diagnostic.file,
        "line": diagnostic.line,
        "column": diagnostic.column,
        "path": diagnostic.path,
        "message": diagnostic.message,
        "suggestion": suggestion,
    })
}

/// `POST /api/flows/{name}/pause`: the flow's triggers start nothing until it is resumed.
async fn pause_flow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &name, true).await
}

/// `POST /api/flows/{name}/resume`: the flow's triggers start runs again.
async fn resume_flow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &name, false).await
}

/// Pauses or resumes `name` and answers `{name, paused}`, `paused` being since when or null.
async fn set_paused(state: &ApiState, name: &str, paused: bool) -> Result<Json<Value>, ApiError> {
    state.runtime.set_paused(name, paused).await?;
    let since = state.runtime.paused(name).await?;
    Ok(Json(json!({ "name": name, "paused": since })))
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
    let filter = RunFilter {
        parent: match params.parent.as_deref() {
            None | Some("") => None,
            Some(p) => Some(RunId::parse(p).ok_or_else(|| {
                ApiError::BadRequest(format!("`parent` must be a run id, got `{p}`"))
            })?),
        },
        text: params.q.filter(|q| !q.trim().is_empty()),
    };
    let page = state.runtime.list_runs(query, &filter).await?;
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
        .run(id)
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
            let waited = state
                .runtime
                .wait_for_end(&mut ended, id, Duration::from_secs(seconds))
                .await?;
            run = match waited {
                Some(done) => done,
                None => state.runtime.run(id).await?.unwrap_or(run),
            };
        }
    }
    let steps = state.runtime.steps(id).await?;
    let mut detail = run_detail(&run, &steps);
    preview_large_step_values(&mut detail, id);
    Ok(Json(detail))
}

/// A step value whose JSON is longer than this is shown in a run's detail as a preview and a link
/// to its step record, so the detail of a run that read a directory stays a page, not megabytes.
pub const STEP_PREVIEW_BYTES: usize = 64 * 1024;
/// How much of a previewed value's JSON the preview shows.
const PREVIEW_TEXT_BYTES: usize = 2048;

/// Replaces each step input, output and error detail of a run detail above
/// [`STEP_PREVIEW_BYTES`] by `{"idflow_truncated": true, "bytes", "preview", "href", "field"}`:
/// the start of its JSON, and where the whole value is (`GET href`, at the JSON pointer `field`).
fn preview_large_step_values(detail: &mut Value, id: RunId) {
    let Some(steps) = detail.get_mut("steps").and_then(Value::as_array_mut) else {
        return;
    };
    for step in steps {
        let seq = step.get("seq").and_then(Value::as_u64).unwrap_or(0);
        let href = format!("/api/runs/{id}/steps/{seq}");
        for field in ["/input", "/output", "/error/detail"] {
            if let Some(value) = step.pointer_mut(field)
                && domain::budget::json_size(value, STEP_PREVIEW_BYTES as u64 + 1)
                    > STEP_PREVIEW_BYTES as u64
            {
                let text = serde_json::to_string(value).unwrap_or_default();
                let end = (0..=PREVIEW_TEXT_BYTES.min(text.len()))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                *value = json!({
                    "idflow_truncated": true,
                    "bytes": text.len(),
                    "preview": text.get(..end).unwrap_or_default(),
                    "href": href,
                    "field": field,
                });
            }
        }
    }
}

/// `GET /api/runs/{id}/steps/{seq}`: one step record whole, however big its input, output or
/// error detail (a run's detail previews such values and links here).
async fn get_step(
    State(state): State<ApiState>,
    Path((id, seq)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_run_id(&id)?;
    let seq: u32 = seq.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`{seq}` is not a step record number (0, 1, 2, ...)"
        ))
    })?;
    let run = state
        .runtime
        .run(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run {id} does not exist")))?;
    let steps = state.runtime.steps(id).await?;
    let record = steps
        .iter()
        .find(|record| record.seq == seq)
        .ok_or_else(|| ApiError::NotFound(format!("run {id} has no step record {seq}")))?;
    // The record as the run's detail shows it, whole.
    let mut detail = run_detail(&run, std::slice::from_ref(record));
    Ok(Json(detail["steps"][0].take()))
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
