//! The OpenAPI 3.1 document of the admin API, served at `/api/openapi.json`.
//!
//! Built by hand from [`OPERATIONS`] rather than with utoipa: every admin handler answers a
//! `serde_json::Value` shaped by `run_summary`/`run_detail`, so there are no response types to derive
//! schemas from and utoipa would only add proc-macro crates (a slow build on small CI machines) around
//! the same hand-written schemas. Drift is prevented instead by a test: the admin router is built from
//! [`crate::admin::admin_routes`] only, and the test checks that list and [`OPERATIONS`] name exactly
//! the same (method, path) pairs.

use serde_json::{Map, Value, json};

use domain::model::Trigger;

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    Path,
    Query,
}

/// One documented parameter: name, location, description.
pub type Param = (&'static str, In, &'static str);

/// One documented admin operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// Upper-case HTTP method.
    pub method: &'static str,
    /// Path as axum writes it (`/api/runs/{id}`), which is also OpenAPI's template syntax.
    pub path: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    /// Whether the operation takes a JSON body (free-form run input).
    pub body: bool,
    /// Success status and the component schema of its body.
    pub ok: (u16, &'static str),
}

const RUN_LIST_PARAMS: &[Param] = &[
    ("flow", In::Query, "only runs of this flow"),
    (
        "status",
        In::Query,
        "queued, running, waiting, succeeded, failed or cancelled",
    ),
    (
        "since",
        In::Query,
        "RFC 3339 date-time: runs created at or after",
    ),
    (
        "until",
        In::Query,
        "RFC 3339 date-time: runs created before",
    ),
    ("limit", In::Query, "page size, 1 to 500 (default 50)"),
    ("cursor", In::Query, "`nextCursor` of the previous page"),
    ("parent", In::Query, "only helper runs started by this run"),
    (
        "q",
        In::Query,
        "only runs whose input, output, error or step data contain this text (case-insensitive; scans at most 1000 runs per page)",
    ),
];

/// Every admin operation, documented.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        method: "GET",
        path: "/api/flows",
        id: "listFlows",
        summary: "Deployed flows with their trigger kind",
        params: &[
            (
                "stats",
                In::Query,
                "`1` adds `lastRun` and `runs24h` to each flow",
            ),
            ("trigger", In::Query, "only flows with this trigger kind"),
        ],
        body: false,
        ok: (200, "FlowList"),
    },
    Operation {
        method: "GET",
        path: "/api/flows/{name}",
        id: "getFlow",
        summary: "A flow's current source, trigger and step tree",
        params: &[("name", In::Path, "flow name")],
        body: false,
        ok: (200, "FlowDetail"),
    },
    Operation {
        method: "POST",
        path: "/api/flows/{name}/runs",
        id: "startRun",
        summary: "Start a manual run with the body as input",
        params: &[("name", In::Path, "flow name")],
        body: true,
        ok: (202, "RunStarted"),
    },
    Operation {
        method: "POST",
        path: "/api/flows/{name}/pause",
        id: "pauseFlow",
        summary: "Pause a flow: its triggers start nothing (409 from invoke) until it is resumed",
        params: &[("name", In::Path, "flow name")],
        body: false,
        ok: (200, "FlowPause"),
    },
    Operation {
        method: "POST",
        path: "/api/flows/{name}/resume",
        id: "resumeFlow",
        summary: "Resume a paused flow",
        params: &[("name", In::Path, "flow name")],
        body: false,
        ok: (200, "FlowPause"),
    },
    Operation {
        method: "GET",
        path: "/api/runs",
        id: "listRuns",
        summary: "Runs, newest first, with filters and cursor paging",
        params: RUN_LIST_PARAMS,
        body: false,
        ok: (200, "RunList"),
    },
    Operation {
        method: "GET",
        path: "/api/runs/{id}",
        id: "getRun",
        summary: "A run with its input, output and step records",
        params: &[
            ("id", In::Path, "run id"),
            (
                "wait",
                In::Query,
                "seconds (0 to 60) to wait for the run to end before answering",
            ),
        ],
        body: false,
        ok: (200, "RunDetail"),
    },
    Operation {
        method: "GET",
        path: "/api/runs/{id}/steps/{seq}",
        id: "getStep",
        summary: "One step record whole (a run's detail shows step values above 64 KiB as a preview linking here)",
        params: &[
            ("id", In::Path, "run id"),
            ("seq", In::Path, "the step record's number (`seq`)"),
        ],
        body: false,
        ok: (200, "StepRecord"),
    },
    Operation {
        method: "POST",
        path: "/api/runs/{id}/rerun",
        id: "rerunRun",
        summary: "Start a new run of the same flow with the same input",
        params: &[("id", In::Path, "run id")],
        body: false,
        ok: (202, "RunStarted"),
    },
    Operation {
        method: "POST",
        path: "/api/runs/{id}/cancel",
        id: "cancelRun",
        summary: "Cancel a run that has not ended (409 when it has)",
        params: &[("id", In::Path, "run id")],
        body: false,
        ok: (200, "Run"),
    },
];

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|(name, location, description)| {
                json!({
                    "name": name,
                    "in": if *location == In::Path { "path" } else { "query" },
                    "required": *location == In::Path,
                    "description": description,
                    "schema": { "type": "string" },
                })
            })
            .collect();
        let (status, schema) = op.ok;
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "parameters": params,
            "responses": {
                status.to_string(): {
                    "description": "success",
                    "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } },
                },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" },
            },
        });
        if op.body {
            operation["requestBody"] = json!({
                "required": false,
                "content": { "application/json": { "schema": {} } },
            });
        }
        let item = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        item[op.method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "idflow admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Flows, runs, manual runs, re-run and cancel. Send the admin token as `Authorization: Bearer <token>` when the server has one.",
        },
        "security": [{ "admin": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": { "admin": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Error": {
                    "description": "a client or server error",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
                },
            },
            "schemas": schemas(),
        },
    })
}

fn schemas() -> Value {
    let time = json!({ "type": ["string", "null"], "format": "date-time" });
    // Generated from the one table of trigger kinds; the console's trigger filter reads it from
    // here, so neither lists the kinds itself. `invalid` is a deployed file that no longer loads.
    let kinds = Trigger::KINDS;
    let trigger_enum: Vec<&str> = kinds
        .iter()
        .map(|kind| kind.name)
        .chain(["invalid"])
        .collect();
    let trigger_description = kinds
        .iter()
        .map(|kind| format!("`{}`: {}", kind.name, kind.description))
        .chain(["`invalid`: the flow file no longer loads".to_owned()])
        .collect::<Vec<_>>()
        .join("; ");
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } },
                },
                "runId": { "type": "string" },
            },
        },
        "Flow": {
            "type": "object",
            "required": ["name", "version", "trigger"],
            "properties": {
                "name": { "type": "string" },
                "version": { "type": "string" },
                "path": { "type": "string" },
                "trigger": { "type": "string", "enum": trigger_enum, "description": trigger_description },
                "description": { "type": ["string", "null"] },
                "deployedAt": time,
                "lastRun": {
                    "type": ["object", "null"],
                    "properties": { "id": { "type": "string" }, "status": { "type": "string" }, "createdAt": time },
                },
                "runs24h": { "type": "integer" },
                "paused": { "type": ["string", "null"], "format": "date-time", "description": "since when the flow is paused (with `stats=1`)" },
            },
        },
        "FlowPause": {
            "type": "object",
            "required": ["name", "paused"],
            "properties": {
                "name": { "type": "string" },
                "paused": { "type": ["string", "null"], "format": "date-time", "description": "since when the flow is paused; null once resumed" },
            },
        },
        "FlowList": {
            "type": "object",
            "properties": { "flows": { "type": "array", "items": { "$ref": "#/components/schemas/Flow" } } },
        },
        "Step": {
            "type": "object",
            "required": ["key", "kind", "label", "children"],
            "properties": {
                "key": { "type": "string" },
                "name": { "type": "string", "description": "the step's name in history, without loop iteration prefixes" },
                "named": { "type": "boolean" },
                "kind": { "type": "string", "enum": ["card", "if", "continue_if", "map", "for_each", "try", "wait", "wait_until"] },
                "label": { "type": "string" },
                "line": { "type": "integer" },
                "guard": { "type": "string" },
                "helper": { "type": "string", "description": "the helper flow this step calls" },
                "onError": { "type": "string" },
                "children": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "label": { "type": "string" },
                            "steps": { "type": "array", "items": { "$ref": "#/components/schemas/Step" } },
                        },
                    },
                },
            },
        },
        "FlowDetail": {
            "type": "object",
            "required": ["name", "version", "source", "trigger", "steps"],
            "properties": {
                "name": { "type": "string" },
                "version": { "type": "string" },
                "path": { "type": "string" },
                "deployedAt": time,
                "source": { "type": "string" },
                "description": { "type": ["string", "null"] },
                "trigger": {
                    "type": "object",
                    "properties": { "kind": { "type": "string" }, "summary": { "type": "string" } },
                },
                "steps": { "type": "array", "items": { "$ref": "#/components/schemas/Step" } },
                "paused": { "type": ["string", "null"], "format": "date-time", "description": "since when the flow is paused" },
                "nextFires": {
                    "type": "array",
                    "items": { "type": "string", "format": "date-time" },
                    "description": "a schedule flow's next fire times (up to 5)",
                },
                "checks": {
                    "type": "object",
                    "description": "what the static checker finds in the flow",
                    "required": ["errors", "warnings", "rejected"],
                    "properties": {
                        "errors": {
                            "type": "array",
                            "items": { "$ref": "#/components/schemas/Diagnostic" },
                            "description": "errors of the version shown (it does not run)",
                        },
                        "warnings": {
                            "type": "array",
                            "items": { "$ref": "#/components/schemas/Diagnostic" },
                            "description": "suspicious but possible: the version shown runs (`idflow validate --strict` refuses it)",
                        },
                        "rejected": {
                            "type": "array",
                            "items": { "$ref": "#/components/schemas/Diagnostic" },
                            "description": "errors of the flow's file that the server's last reload refused; the version shown is the one deployed before and keeps running",
                        },
                    },
                },
            },
        },
        "Diagnostic": {
            "type": "object",
            "required": ["file", "line", "column", "path", "message"],
            "properties": {
                "file": { "type": "string" },
                "line": { "type": "integer", "description": "1-based; 0 when the problem has no position" },
                "column": { "type": "integer" },
                "path": { "type": "string", "description": "the step and field, such as `step `s1`: with.text`" },
                "message": { "type": "string" },
                "suggestion": { "type": ["string", "null"], "description": "the close name the message suggests (did you mean …?)" },
            },
        },
        "RunStarted": {
            "type": "object",
            "required": ["runId"],
            "properties": { "runId": { "type": "string" } },
        },
        "Run": {
            "type": "object",
            "required": ["id", "flow", "status", "trigger", "createdAt"],
            "properties": {
                "id": { "type": "string" },
                "flow": { "type": "string" },
                "flowVersion": { "type": "string" },
                "trigger": { "type": "object", "properties": { "kind": { "type": "string" } } },
                "status": { "type": "string", "enum": ["queued", "running", "waiting", "succeeded", "failed", "cancelled"] },
                "parent": { "type": ["string", "null"] },
                "root": { "type": ["string", "null"] },
                "createdAt": time,
                "startedAt": time,
                "finishedAt": time,
                "durationMs": { "type": ["integer", "null"] },
                "wakeAt": time,
                "error": {
                    "type": ["object", "null"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" }, "step": { "type": ["string", "null"] } },
                },
                "stepCount": { "type": "integer" },
            },
        },
        "RunList": {
            "type": "object",
            "properties": {
                "runs": { "type": "array", "items": { "$ref": "#/components/schemas/Run" } },
                "nextCursor": { "type": ["string", "null"] },
            },
        },
        "StepRecord": {
            "type": "object",
            "properties": {
                "seq": { "type": "integer" },
                "step": { "type": "string" },
                "card": { "type": "string" },
                "status": { "type": "string", "enum": ["succeeded", "failed", "skipped"] },
                "input": { "description": "in a run's detail, a value above 64 KiB is `{idflow_truncated: true, bytes, preview, href, field}`: GET `href` for the record whole, the value at the JSON pointer `field`" },
                "output": { "description": "as `input`" },
                "error": {
                    "type": ["object", "null"],
                    "properties": {
                        "code": { "type": "string" },
                        "message": { "type": "string" },
                        "status": { "type": ["integer", "null"] },
                        "detail": { "description": "the upstream error body, such as Okta's errorCode and errorSummary" },
                    },
                },
                "attempts": { "type": "integer" },
                "startedAt": time,
                "durationMs": { "type": "integer" },
            },
        },
        "RunDetail": {
            "allOf": [
                { "$ref": "#/components/schemas/Run" },
                {
                    "type": "object",
                    "properties": {
                        "input": {},
                        "output": {},
                        "steps": { "type": "array", "items": { "$ref": "#/components/schemas/StepRecord" } },
                    },
                },
            ],
        },
    })
}
