//! The web console: one HTML page, one vanilla JS module and one stylesheet, embedded in the binary
//! so `idflow serve` and the `api` Lambda serve it at `/` without Node at run time.
//!
//! The page reads everything through the admin API (with the admin bearer token when the server has
//! one), so it shows nothing the API would not. This module also holds the admin API additions the
//! console needs: a flow's source and step tree ([`flow_detail`]), per-flow run statistics
//! ([`flow_stats`]), runs filtered by parent or by text in their data ([`list_runs`]), and pausing
//! and resuming a flow ([`pause_flow`], [`resume_flow`]).

pub mod openapi;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Duration;
use serde_json::{Value, json};

use crate::api::{ApiError, ApiState};
use domain::model::{LoopBody, OnError, Step, StepKind, Trigger};
use domain::run::{Run, RunId, RunPage, RunQuery};
use domain::runner::{RunnerError, Runtime};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// Runs examined at most by one filtered listing (`parent` or `q`) before it answers with a cursor.
pub const SCAN_LIMIT: usize = 1000;

/// Runs counted at most for a flow's "runs in the last 24 h".
const COUNT_LIMIT: usize = 5000;

/// Fire times of a schedule flow listed on its page.
pub const NEXT_FIRES: usize = 5;

/// The console's static routes (`/`, `/console/app.js`, `/console/app.css`) and
/// `/api/openapi.json`. None of them carries data, so they need no token.
pub fn console_router() -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Same-origin only: the console never loads or sends anything elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /api/flows/{name}`: the current version's source, trigger and step tree.
pub async fn flow_detail(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = state
        .runtime
        .flows
        .current(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("flow `{name}` does not exist")))?;
    let mut body = json!({
        "name": stored.name,
        "version": stored.version,
        "path": stored.path,
        "deployedAt": stored.deployed_at,
        "source": stored.source,
    });
    match state.runtime.current_flow(&name).await {
        Ok(compiled) => {
            let flow = &compiled.flow;
            body["description"] = json!(flow.description);
            body["trigger"] = trigger_json(&flow.trigger);
            body["steps"] = chart(&flow.steps);
            if let Trigger::Schedule(schedule) = &flow.trigger {
                body["nextFires"] = json!(next_fires(
                    &schedule.expression,
                    schedule.timezone.as_deref(),
                    state.runtime.clock.now(),
                ));
            }
        }
        Err(RunnerError::InvalidFlow { .. }) => {
            body["trigger"] = json!({ "kind": "invalid" });
            body["steps"] = json!([]);
        }
        Err(other) => return Err(other.into()),
    }
    body["paused"] = json!(state.runtime.flows.paused(&name).await?);
    Ok(Json(body))
}

/// The next [`NEXT_FIRES`] fire times of a schedule after `now`, through the same schedule module
/// the schedulers use. A `rate(…)` counts from `now` here, while a scheduler counts from when it
/// loaded the schedule, so its times may be shifted by less than one interval.
pub fn next_fires(
    expression: &str,
    timezone: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    let Ok(schedule) = domain::schedule::Schedule::parse(expression, timezone) else {
        return Vec::new();
    };
    let mut fires = Vec::new();
    let mut after = now;
    while fires.len() < NEXT_FIRES {
        match schedule.next_after(after, now) {
            Some(next) if next > after => {
                fires.push(next);
                after = next;
            }
            _ => break,
        }
    }
    fires
}

/// `POST /api/flows/{name}/pause`: the flow's triggers start nothing until it is resumed.
pub async fn pause_flow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &name, true).await
}

/// `POST /api/flows/{name}/resume`: the flow's triggers start runs again.
pub async fn resume_flow(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &name, false).await
}

async fn set_paused(state: &ApiState, name: &str, paused: bool) -> Result<Json<Value>, ApiError> {
    state.runtime.set_paused(name, paused).await?;
    let since = state.runtime.flows.paused(name).await?;
    Ok(Json(json!({ "name": name, "paused": since })))
}

/// The trigger as the console shows it: its kind and a one-line summary.
fn trigger_json(trigger: &Trigger) -> Value {
    let summary = match trigger {
        Trigger::Manual => "started by hand".to_owned(),
        Trigger::Schedule(s) => match &s.timezone {
            Some(tz) => format!("{} ({tz})", s.expression),
            None => s.expression.clone(),
        },
        Trigger::Event(e) => e.okta.join(", "),
        Trigger::Api(a) => format!(
            "/api/flows/…/invoke, {} response",
            match a.respond {
                domain::model::Respond::Async => "async",
                domain::model::Respond::Sync => "sync",
            }
        ),
        Trigger::Helper(h) => format!(
            "inputs: {}",
            h.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
        Trigger::Delegated(d) => format!(
            "inputs: {}",
            d.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    };
    json!({ "kind": trigger.kind(), "summary": summary })
}

/// A flow's steps as a tree of boxes: `{key, kind, label, helper?, children: [{label, steps}]}`.
/// `helper` names the flow a step calls (`flow.call` with a literal `flow`, or a loop over a flow).
/// `name` is the step's history name without loop iteration prefixes ([`Step::history_name`]), so a
/// record `printed[0].printed.steps.0` belongs to the box named `printed.steps.0`.
pub fn chart(steps: &[Step]) -> Value {
    steps_json(steps, None)
}

fn steps_json(steps: &[Step], parent: Option<(&str, &str)>) -> Value {
    Value::Array(
        steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                step_json(
                    step,
                    step.history_name(parent.map(|(p, branch)| (p, branch, index))),
                )
            })
            .collect(),
    )
}

fn step_json(step: &Step, name: String) -> Value {
    let branch = |branch: &str, steps: &[Step]| steps_json(steps, Some((&name, branch)));
    let mut helper = None;
    let mut children = Vec::new();
    let (kind, label) = match &step.kind {
        StepKind::Card { card, with } => {
            if card == "flow.call" {
                helper = with
                    .get("flow")
                    .and_then(Value::as_str)
                    .filter(|f| !f.contains("{{"))
                    .map(str::to_owned);
            }
            ("card", card.clone())
        }
        StepKind::If {
            condition,
            then,
            otherwise,
        } => {
            children.push(json!({ "label": "then", "steps": branch("then", then) }));
            if !otherwise.is_empty() {
                children.push(json!({ "label": "else", "steps": branch("else", otherwise) }));
            }
            ("if", condition.clone())
        }
        StepKind::ContinueIf { condition } => ("continue_if", condition.clone()),
        StepKind::Loop(l) => {
            let verb = if l.collect { "map" } else { "for_each" };
            match &l.body {
                LoopBody::Steps(body) => children.push(
                    json!({ "label": format!("each {}", l.var), "steps": branch("steps", body) }),
                ),
                LoopBody::Flow { flow, .. } => helper = Some(flow.clone()),
            }
            (verb, l.items.clone())
        }
        StepKind::Try { steps, catch } => {
            children.push(json!({ "label": "try", "steps": branch("try", steps) }));
            children.push(json!({ "label": "catch", "steps": branch("catch", catch) }));
            ("try", String::new())
        }
        StepKind::Wait { duration } => ("wait", format!("{}s", duration.as_secs())),
        StepKind::WaitUntil { until } => ("wait_until", until.clone()),
    };
    if let OnError::Steps(handler) = &step.on_error {
        children.push(json!({ "label": "on error", "steps": branch("on_error", handler) }));
    }
    let mut v = json!({
        "key": step.key,
        "name": name,
        "named": step.has_id,
        "kind": kind,
        "label": label,
        "line": step.location.line,
        "children": children,
    });
    if let Some(guard) = &step.guard {
        v["guard"] = json!(guard);
    }
    if let Some(helper) = helper {
        v["helper"] = json!(helper);
    }
    if matches!(step.on_error, OnError::Continue) {
        v["onError"] = json!("continue");
    }
    v
}

/// A flow's recent activity for the flow list.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowStats {
    /// The newest run as `{id, status, createdAt}`, or null.
    pub last_run: Value,
    /// Runs created in the last 24 hours (counted up to 5000).
    pub runs_24h: usize,
    /// Since when the flow is paused, or null.
    pub paused: Value,
}

/// Counts a flow's runs of the last 24 hours and finds its newest run.
pub async fn flow_stats(runtime: &Runtime, flow: &str) -> Result<FlowStats, ApiError> {
    let now = runtime.clock.now();
    let mut query = RunQuery {
        flow: Some(flow.to_owned()),
        since: Some(now - Duration::hours(24)),
        limit: 500,
        ..RunQuery::default()
    };
    let mut runs_24h = 0;
    loop {
        let page = runtime.runs.list(&query).await?;
        runs_24h += page.runs.len();
        match page.next_cursor {
            Some(cursor) if runs_24h < COUNT_LIMIT => query.cursor = Some(cursor),
            _ => break,
        }
    }
    let newest = runtime
        .runs
        .list(&RunQuery {
            flow: Some(flow.to_owned()),
            limit: 1,
            ..RunQuery::default()
        })
        .await?;
    let last_run = newest.runs.first().map_or(
        Value::Null,
        |r| json!({ "id": r.id.to_string(), "status": r.status, "createdAt": r.created_at }),
    );
    let paused = json!(runtime.flows.paused(flow).await?);
    Ok(FlowStats {
        last_run,
        runs_24h,
        paused,
    })
}

/// Filters of `GET /api/runs` that the run store cannot apply itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only helper runs started by this run.
    pub parent: Option<RunId>,
    /// Only runs whose input, output, error or step records contain this text, ignoring case.
    pub text: Option<String>,
}

/// Lists runs with the store's filters, then the [`RunFilter`] ones by scanning: whole store pages
/// are examined until `limit` runs match or [`SCAN_LIMIT`] runs were examined, and the answer's
/// cursor continues after the last page examined (so a page may hold fewer, or a few more, than
/// `limit` runs; an empty page with a cursor means "keep going").
pub async fn list_runs(
    runtime: &Runtime,
    mut query: RunQuery,
    filter: &RunFilter,
) -> Result<RunPage, ApiError> {
    if filter.parent.is_none() && filter.text.is_none() {
        return Ok(runtime.runs.list(&query).await?);
    }
    if let Some(parent) = filter.parent {
        // Helper runs are created after their parent: nothing older needs scanning.
        let Some(parent_run) = runtime.runs.get(parent).await? else {
            return Ok(RunPage {
                runs: Vec::new(),
                next_cursor: None,
            });
        };
        query.since = Some(
            query
                .since
                .map_or(parent_run.created_at, |s| s.max(parent_run.created_at)),
        );
    }
    let needle = filter.text.as_ref().map(|t| t.to_lowercase());
    let limit = query.limit as usize;
    let mut matched = Vec::new();
    let mut scanned = 0;
    loop {
        let page = runtime.runs.list(&query).await?;
        scanned += page.runs.len();
        for run in page.runs {
            if filter.parent.is_some() && run.parent != filter.parent {
                continue;
            }
            if let Some(needle) = &needle
                && !run_contains(runtime, &run, needle).await?
            {
                continue;
            }
            matched.push(run);
        }
        match page.next_cursor {
            Some(cursor) if matched.len() < limit && scanned < SCAN_LIMIT => {
                query.cursor = Some(cursor)
            }
            next_cursor => {
                return Ok(RunPage {
                    runs: matched,
                    next_cursor,
                });
            }
        }
    }
}

/// Whether a run's data or its step records mention `needle` (already lowercase). History is stored
/// redacted, so the search cannot reveal a secret.
async fn run_contains(runtime: &Runtime, run: &Run, needle: &str) -> Result<bool, ApiError> {
    let own = json!([run.id.to_string(), run.input, run.output, run.error]);
    if contains(&own, needle) {
        return Ok(true);
    }
    let steps = runtime.runs.steps(run.id).await?;
    Ok(steps.iter().any(|s| {
        s.step.to_lowercase().contains(needle)
            || contains(&json!([s.input, s.output, s.error]), needle)
    }))
}

fn contains(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.to_lowercase().contains(needle),
        Value::Array(items) => items.iter().any(|v| contains(v, needle)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.to_lowercase().contains(needle) || contains(v, needle)),
        Value::Number(n) => n.to_string().contains(needle),
        Value::Bool(_) | Value::Null => false,
    }
}

#[cfg(test)]
mod tests;
