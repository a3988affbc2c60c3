//! JSON Schemas (draft-07) for the files idflow reads: flow files, `idflow.yaml`, `tables/*.yaml`
//! and flow test files. `idflow schema` writes them and the repo commits them under `schemas/`, so
//! editors running yaml-language-server (VS Code's YAML extension and others) complete and check
//! a file that starts with `# yaml-language-server: $schema=<path>`.
//!
//! The schemas are built by hand with `serde_json::json!` rather than derived (schemars): the flow
//! model is not the file's shape (steps are parsed from loose YAML into typed kinds, templates may
//! stand where any value is, cards are rows of the registry rather than types), so derives would
//! describe the wrong thing. Card names and their `with` fields come from
//! [`crate::cards::registry`], trigger kinds from [`Trigger::KINDS`], and the key lists from the
//! parsers' own constants (a test checks that), so a new card or field shows up on regeneration.
//!
//! The schemas are an editing aid and stay permissive where the format is open: a template
//! (`"{{ ... }}"`) is accepted wherever a value is, cards marked open take any extra field, and
//! what only `idflow validate` can judge (templates, step references, durations) is left to it.
//! draft-07 is used because yaml-language-server supports it fully, including `if`/`then`, which
//! gives each card's `with` its own fields.

use serde_json::{Map, Value, json};

use crate::cards::registry::registry;
use crate::cards::spec::{CardSpec, FieldSpec};
use crate::model::Trigger;

/// The draft the schemas declare.
const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// One of the schemas idflow generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    /// Flow files (`flows/*.yaml`).
    Flow,
    /// The project config, `idflow.yaml`.
    Project,
    /// One table per file, `tables/*.yaml`.
    Table,
    /// Flow test files, `*.test.yaml`.
    FlowTest,
}

impl SchemaKind {
    /// Every schema, in the order `idflow schema` writes them.
    pub const ALL: [SchemaKind; 4] = [
        SchemaKind::Flow,
        SchemaKind::Project,
        SchemaKind::Table,
        SchemaKind::FlowTest,
    ];

    /// The short name `idflow schema <name>` takes.
    pub fn name(self) -> &'static str {
        match self {
            SchemaKind::Flow => "flow",
            SchemaKind::Project => "project",
            SchemaKind::Table => "table",
            SchemaKind::FlowTest => "flow-test",
        }
    }

    /// The schema by its short name.
    pub fn from_name(name: &str) -> Option<SchemaKind> {
        SchemaKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// The file the schema is written to: `<name>.schema.json`.
    pub fn file_name(self) -> String {
        format!("{}.schema.json", self.name())
    }

    /// The schema as JSON.
    pub fn schema(self) -> Value {
        match self {
            SchemaKind::Flow => flow_schema(),
            SchemaKind::Project => project_schema(),
            SchemaKind::Table => table_schema(),
            SchemaKind::FlowTest => flow_test_schema(),
        }
    }

    /// The schema as the committed file holds it: pretty JSON ending in a newline.
    pub fn render(self) -> String {
        // Serialising a `Value` cannot fail: its keys are strings and it holds no non-finite floats.
        let mut text = serde_json::to_string_pretty(&self.schema()).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A string holding `{{ ... }}`: rendered at run time, so it may stand for any value.
fn template_ref() -> Value {
    json!({ "$ref": "#/definitions/template" })
}

/// `schema`, or a template in its place.
fn or_template(schema: Value) -> Value {
    json!({ "anyOf": [schema, template_ref()] })
}

pub(crate) fn object(properties: Map<String, Value>, required: &[&str], open: bool) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    if !open {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

pub(crate) fn props(entries: Vec<(&str, Value)>) -> Map<String, Value> {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

pub(crate) fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

pub(crate) fn text(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

pub(crate) fn duration(description: &str) -> Value {
    json!({
        "type": ["string", "integer"],
        "description": format!("{description} (a duration such as `30s`, `5m`, `1h`)"),
    })
}

/// The schema of one card field, from its kind (see [`FieldSpec::kind`]). Mirrors what the flow
/// parser accepts for a literal: text also takes numbers and booleans, datetimes take Unix times,
/// and `null` stands for an optional field left out.
fn field_schema(field: &FieldSpec) -> Value {
    let types: &[&str] = match field.kind {
        "text" => &["string", "number", "boolean"],
        "datetime" => &["string", "number"],
        "expression" => &["string"],
        "number" => &["number"],
        "integer" => &["integer"],
        "boolean" => &["boolean"],
        "object" => &["object"],
        "list" => &["array"],
        "duration" => &["string", "integer"],
        // `any` and kinds not listed take anything.
        _ => &[],
    };
    let description = if field.required {
        format!("{} (required, {})", field.doc, field.kind)
    } else {
        format!("{} ({})", field.doc, field.kind)
    };
    if types.is_empty() {
        return json!({ "description": description });
    }
    let mut types: Vec<&str> = types.to_vec();
    if !field.required {
        types.push("null");
    }
    let mut schema = json!({ "type": types });
    // An expression is code the card evaluates itself: a template there is refused by the
    // validator, and strings already cover every other template.
    if !types.contains(&"string") {
        schema = or_template(schema);
    }
    described(schema, &description)
}

/// `with:` of one card.
fn card_with(card: &CardSpec) -> Value {
    let properties = card
        .fields
        .iter()
        .map(|field| (field.name.to_owned(), field_schema(field)))
        .collect();
    let required: Vec<&str> = card
        .fields
        .iter()
        .filter(|field| field.required)
        .map(|field| field.name)
        .collect();
    let mut schema = object(properties, &required, card.open);
    schema["description"] = json!(format!("{}; output: {}", card.summary, card.output));
    schema
}

/// `inputs:` of the triggers that declare their inputs (helper, delegated): a type, or
/// `{ type, required, description }`, by name.
pub(crate) fn inputs_schema() -> Value {
    let input_type = json!({
        "enum": ["text", "number", "datetime", "boolean", "object", "list", "any"],
    });
    let input_decl = json!({
        "anyOf": [
            input_type,
            object(props(vec![
                ("type", input_type.clone()),
                ("required", json!({ "type": "boolean" })),
                ("description", text("what the input is")),
            ]), &["type"], false),
        ],
    });
    json!({
        "type": "object",
        "description": "the inputs, by name: a type or `{ type, required, description }`",
        "additionalProperties": input_decl,
    })
}

/// `trigger:`: `manual`, or one kind's settings, each described by its module
/// ([`Trigger::settings_schemas`]).
fn trigger_schema() -> Value {
    let kinds: Vec<(&str, Value)> = Trigger::settings_schemas()
        .into_iter()
        .map(|(kind, body)| (kind.name, described(body, kind.description)))
        .collect();
    let mapping = json!({
        "type": "object",
        "properties": props(kinds),
        "additionalProperties": false,
        "minProperties": 1,
        "maxProperties": 1,
    });
    json!({
        "description": "how runs start: one trigger; omitted or `manual` for runs started by hand",
        "anyOf": [{ "const": "manual" }, mapping],
    })
}

fn step_schema() -> Value {
    let steps = json!({ "$ref": "#/definitions/steps" });
    let retry = object(
        props(vec![
            (
                "max",
                json!({ "type": "integer", "minimum": 1, "maximum": 10 }),
            ),
            ("backoff", duration("the first wait between attempts")),
            (
                "factor",
                json!({ "type": "number", "minimum": 1, "maximum": 10 }),
            ),
            (
                "on",
                json!({ "type": "array", "items": { "type": ["string", "integer"] }, "description": "what to retry: 429, 5xx, timeout, ..." }),
            ),
        ]),
        &["max"],
        false,
    );
    let properties = props(vec![
        ("id", text("names the step: its output is `steps.<id>`")),
        (
            "card",
            json!({ "enum": registry().iter().map(|card| card.name).collect::<Vec<_>>(), "description": "the card the step runs" }),
        ),
        (
            "with",
            json!({ "description": "the card's input, or a helper flow's input" }),
        ),
        (
            "if",
            text("a template; the step (or `then`) runs only when it is true"),
        ),
        (
            "then",
            described(steps.clone(), "steps run when `if` is true"),
        ),
        (
            "else",
            described(steps.clone(), "steps run when `if` is false"),
        ),
        (
            "continue_if",
            text("a template; the run ends quietly as succeeded when false"),
        ),
        (
            "for_each",
            text("a template giving the list to run the body for"),
        ),
        ("map", text("like `for_each`, and collects the results")),
        ("as", text("the name of the item variable (default `item`)")),
        (
            "concurrency",
            or_template(json!({ "type": "integer", "minimum": 1 })),
        ),
        ("steps", described(steps.clone(), "the loop body")),
        ("flow", text("a helper flow run for each item")),
        (
            "try",
            described(steps.clone(), "steps whose failure runs `catch`"),
        ),
        (
            "catch",
            described(
                steps.clone(),
                "steps run when `try` fails; `error` holds why",
            ),
        ),
        ("wait", duration("how long to pause the run")),
        ("wait_until", text("a template giving when to resume")),
        ("retry", retry),
        ("timeout", duration("upper bound on the step")),
        (
            "on_error",
            json!({
                "description": "`fail` (default), `continue`, or steps run when the step fails",
                "anyOf": [{ "enum": ["fail", "continue"] }, steps],
            }),
        ),
    ]);
    let rules: Vec<Value> = registry()
        .iter()
        .map(|card| {
            json!({
                "if": { "properties": { "card": { "const": card.name } }, "required": ["card"] },
                "then": { "properties": { "with": card_with(card) } },
            })
        })
        .collect();
    let mut schema = object(properties, &[], false);
    schema["allOf"] = json!(rules);
    schema
}

fn flow_schema() -> Value {
    let properties = props(vec![
        (
            "name",
            json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$", "description": "unique id: lowercase letters, digits and `-`" }),
        ),
        ("description", text("what the flow does")),
        ("trigger", trigger_schema()),
        (
            "history",
            json!({ "enum": ["all", "errors", "none"], "description": "how much of each run is kept: all, errors, none" }),
        ),
        ("timeout", duration("upper bound on a whole run")),
        (
            "limits",
            object(
                props(vec![
                    (
                        "memory",
                        json!({ "type": ["string", "integer"], "description": "step outputs a run may hold at once, such as `100MiB`" }),
                    ),
                    (
                        "render",
                        json!({ "type": ["string", "integer"], "description": "the largest value one template may render" }),
                    ),
                ]),
                &[],
                false,
            ),
        ),
        ("steps", json!({ "$ref": "#/definitions/steps" })),
    ]);
    let mut schema = object(properties, &["name", "steps"], false);
    let extra = json!({
        "$schema": DRAFT,
        "title": "idflow flow file",
        "definitions": {
            "template": {
                "type": "string",
                "pattern": "\\{[{%]",
                "description": "a template (text with `{{ }}` or `{% %}`): a value that is exactly one `{{ expression }}` keeps its JSON type",
            },
            "steps": { "type": "array", "minItems": 1, "items": { "$ref": "#/definitions/step" } },
            "step": step_schema(),
        },
    });
    merge_front(&mut schema, extra);
    schema
}

fn secret_ref() -> Value {
    text("a secret reference: `env:NAME`, `file:./path` or `aws-secretsmanager:<arn or name>`")
}

fn columns() -> Value {
    json!({
        "type": "object",
        "description": "the columns, by name, with their types",
        "additionalProperties": { "enum": ["text", "number", "datetime", "boolean", "json"] },
    })
}

fn table_body() -> Value {
    object(
        props(vec![
            ("key", text("the key column (optional)")),
            ("columns", columns()),
        ]),
        &["columns"],
        false,
    )
}

fn project_schema() -> Value {
    let open = |description: &str| json!({ "type": "object", "description": description });
    let caller = object(
        props(vec![
            (
                "jwt",
                object(
                    props(vec![
                        ("issuer", text("the token issuer")),
                        ("audience", text("the expected audience")),
                        ("sub", text("the expected subject")),
                        ("jwks", text("where the issuer's keys are")),
                    ]),
                    &[],
                    false,
                ),
            ),
            ("token", secret_ref()),
        ]),
        &[],
        false,
    );
    let properties = props(vec![
        (
            "connections",
            open("connections flows use by name (default `okta`)"),
        ),
        ("hooks", open("event hook settings: `okta: { secret }`")),
        (
            "callers",
            json!({ "type": "object", "description": "who may list and run delegated flows", "additionalProperties": caller }),
        ),
        (
            "tables",
            json!({ "type": "object", "description": "typed tables for the table.* cards", "additionalProperties": table_body() }),
        ),
        ("admin", open("admin API and console: `{ token }`")),
        ("vars", open("values flows read as `vars.<key>`")),
        ("api", open("API trigger settings, such as `tokens`")),
        (
            "secrets",
            json!({ "type": "object", "description": "secrets flows read with `secret('name')`", "additionalProperties": secret_ref() }),
        ),
        ("jwks", open("keys served for signed tokens")),
        (
            "egress",
            open("where `http.request` may go besides public addresses: `allow: [host:port]`"),
        ),
    ]);
    let mut schema = object(properties, &[], false);
    merge_front(
        &mut schema,
        json!({ "$schema": DRAFT, "title": "idflow project config (idflow.yaml)" }),
    );
    schema
}

fn table_schema() -> Value {
    let mut schema = table_body();
    if let Some(properties) = schema["properties"].as_object_mut() {
        properties.insert(
            "name".to_owned(),
            text("the table name (default: the file name)"),
        );
    }
    merge_front(
        &mut schema,
        json!({ "$schema": DRAFT, "title": "idflow table (tables/*.yaml)" }),
    );
    schema
}

fn flow_test_schema() -> Value {
    let card = json!({ "enum": registry().iter().map(|card| card.name).collect::<Vec<_>>() });
    let error = object(
        props(vec![
            ("status", json!({ "type": "integer" })),
            ("code", text("the error code")),
            ("message", text("the error message")),
            ("body", json!({})),
            ("retry_after", duration("how long the remote asked to wait")),
            ("field", text("the field at fault")),
            ("retryable", json!({ "type": "boolean" })),
        ]),
        &[],
        false,
    );
    let answer = object(
        props(vec![("output", json!({})), ("error", error.clone())]),
        &[],
        false,
    );
    let stub = object(
        props(vec![
            ("step", text("the step id the stub answers")),
            ("card", described(card.clone(), "the card the stub answers")),
            (
                "input",
                json!({ "description": "answer only calls whose input contains this" }),
            ),
            ("output", json!({ "description": "what the card returns" })),
            ("error", error.clone()),
            (
                "sequence",
                json!({ "type": "array", "minItems": 1, "items": answer }),
            ),
        ]),
        &[],
        false,
    );
    let step_expect = object(
        props(vec![
            (
                "status",
                json!({ "enum": ["succeeded", "failed", "skipped"] }),
            ),
            ("output", json!({})),
            ("input", json!({})),
            ("error", json!({})),
            ("attempts", json!({ "type": "integer" })),
        ]),
        &[],
        false,
    );
    let call = object(
        props(vec![
            ("card", card),
            ("step", text("the step id")),
            (
                "input",
                json!({ "description": "calls whose input contains this" }),
            ),
            ("count", json!({ "type": "integer", "minimum": 0 })),
        ]),
        &[],
        false,
    );
    let expect = object(
        props(vec![
            ("status", json!({ "enum": ["succeeded", "failed"] })),
            ("started", json!({ "type": "boolean" })),
            (
                "return",
                object(
                    props(vec![
                        ("status", json!({ "type": "integer" })),
                        ("headers", json!({ "type": "object" })),
                        ("body", json!({})),
                    ]),
                    &[],
                    false,
                ),
            ),
            (
                "error",
                object(
                    props(vec![
                        ("code", text("the run's error code")),
                        ("message", text("the run's error message")),
                        ("step", text("the step that failed")),
                    ]),
                    &[],
                    false,
                ),
            ),
            (
                "steps",
                json!({ "type": "object", "additionalProperties": step_expect }),
            ),
            ("calls", json!({ "type": "array", "items": call })),
            ("not_called", json!({ "type": "array" })),
        ]),
        &[],
        false,
    );
    let case = object(
        props(vec![
            ("name", text("what the case shows")),
            ("input", json!({ "description": "the run input" })),
            (
                "event",
                json!({ "type": "object", "description": "the System Log event (event flows)" }),
            ),
            (
                "delivery",
                json!({ "type": "object", "description": "the delivery envelope (event flows)" }),
            ),
            ("now", text("the run's start time")),
            ("vars", json!({ "type": "object" })),
            ("secrets", json!({ "type": "object" })),
            ("stubs", json!({ "type": "array", "items": stub })),
            ("expect", expect),
        ]),
        &["name"],
        false,
    );
    let mut schema = object(
        props(vec![
            ("flow", text("the flow under test (default: the file name)")),
            (
                "now",
                text("the runs' start time, such as `2026-01-05T08:00:00Z`"),
            ),
            (
                "vars",
                json!({ "type": "object", "description": "vars over idflow.yaml's" }),
            ),
            (
                "secrets",
                json!({ "type": "object", "description": "secret values for the test" }),
            ),
            (
                "cases",
                json!({ "type": "array", "minItems": 1, "items": case }),
            ),
        ]),
        &["cases"],
        false,
    );
    merge_front(
        &mut schema,
        json!({ "$schema": DRAFT, "title": "idflow flow test file (*.test.yaml)" }),
    );
    schema
}

/// Puts `front`'s entries before `schema`'s, so `$schema` and `title` lead the file.
fn merge_front(schema: &mut Value, front: Value) {
    if let (Value::Object(front), Value::Object(rest)) = (front, schema.take()) {
        let mut merged = front;
        merged.extend(rest);
        *schema = Value::Object(merged);
    }
}

#[cfg(test)]
mod tests;
