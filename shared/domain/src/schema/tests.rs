//! The committed schemas are what the registry generates, the parsers' key lists match them, and the
//! example files validate against them.
//!
//! Validation uses the small checker below rather than the `jsonschema` crate: that crate (even with
//! default features off) adds a few dozen crates to the build for a test, while the schemas here use
//! a fixed subset of draft-07. The checker refuses any keyword it does not implement, so a schema
//! that grows a new keyword fails these tests instead of being half-checked.

use std::path::{Path, PathBuf};

use regex::Regex;
use serde_json::{Value, json};

use super::SchemaKind;
use crate::flowfile::keys as flow_keys;
use crate::flowfile::parse_document;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Checks `value` against `schema` (draft-07 subset); `root` resolves `#/definitions/...`.
/// Returns every violation as `path: message`.
fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(rules) = schema.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    for (keyword, rule) in rules {
        match keyword.as_str() {
            "$schema" | "title" | "description" | "definitions" => {}
            "$ref" => {
                let name = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/definitions/"))
                    .unwrap_or_default();
                match root["definitions"].get(name) {
                    Some(target) => check(root, target, value, path, errors),
                    None => errors.push(format!("{path}: unresolved $ref {rule}")),
                }
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let fits = types.iter().any(|t| match *t {
                    "string" => value.is_string(),
                    "number" => value.is_number(),
                    "integer" => {
                        value.is_i64()
                            || value.is_u64()
                            || value.as_f64().is_some_and(|f| f.fract() == 0.0)
                    }
                    "boolean" => value.is_boolean(),
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "null" => value.is_null(),
                    _ => false,
                });
                if !fits {
                    errors.push(format!("{path}: expected {types:?}, got {value}"));
                }
            }
            "enum" => {
                if !rule
                    .as_array()
                    .is_some_and(|options| options.contains(value))
                {
                    errors.push(format!("{path}: {value} is not one of {rule}"));
                }
            }
            "const" => {
                if rule != value {
                    errors.push(format!("{path}: expected {rule}, got {value}"));
                }
            }
            "pattern" => {
                if let (Some(pattern), Some(text)) = (rule.as_str(), value.as_str()) {
                    match Regex::new(pattern) {
                        Ok(re) if re.is_match(text) => {}
                        Ok(_) => errors.push(format!("{path}: `{text}` does not match {pattern}")),
                        Err(e) => errors.push(format!("{path}: bad pattern: {e}")),
                    }
                }
            }
            "minimum" | "maximum" => {
                if let (Some(bound), Some(n)) = (rule.as_f64(), value.as_f64()) {
                    let ok = if keyword == "minimum" {
                        n >= bound
                    } else {
                        n <= bound
                    };
                    if !ok {
                        errors.push(format!("{path}: {n} is out of bounds ({keyword} {bound})"));
                    }
                }
            }
            "minItems" => {
                if let (Some(min), Some(items)) = (rule.as_u64(), value.as_array())
                    && (items.len() as u64) < min
                {
                    errors.push(format!("{path}: expected at least {min} items"));
                }
            }
            "minProperties" | "maxProperties" => {
                if let (Some(bound), Some(map)) = (rule.as_u64(), value.as_object()) {
                    let n = map.len() as u64;
                    let ok = if keyword == "minProperties" {
                        n >= bound
                    } else {
                        n <= bound
                    };
                    if !ok {
                        errors.push(format!("{path}: {n} properties ({keyword} {bound})"));
                    }
                }
            }
            "required" => {
                if let Some(map) = value.as_object() {
                    for key in rule
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if !map.contains_key(key) {
                            errors.push(format!("{path}: missing `{key}`"));
                        }
                    }
                }
            }
            "properties" => {
                if let (Some(properties), Some(map)) = (rule.as_object(), value.as_object()) {
                    for (key, item) in map {
                        if let Some(sub) = properties.get(key) {
                            check(root, sub, item, &format!("{path}.{key}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(map) = value.as_object() {
                    let known = rules.get("properties").and_then(Value::as_object);
                    for (key, item) in map {
                        if known.is_some_and(|k| k.contains_key(key)) {
                            continue;
                        }
                        match rule {
                            Value::Bool(false) => {
                                errors.push(format!("{path}: unknown field `{key}`"));
                            }
                            Value::Bool(true) => {}
                            sub => check(root, sub, item, &format!("{path}.{key}"), errors),
                        }
                    }
                }
            }
            "items" => {
                for (index, item) in value.as_array().into_iter().flatten().enumerate() {
                    check(root, rule, item, &format!("{path}[{index}]"), errors);
                }
            }
            "allOf" => {
                for sub in rule.as_array().into_iter().flatten() {
                    check(root, sub, value, path, errors);
                }
            }
            "anyOf" => {
                let mut tries = Vec::new();
                let fits = rule.as_array().into_iter().flatten().any(|sub| {
                    let mut sub_errors = Vec::new();
                    check(root, sub, value, path, &mut sub_errors);
                    tries.extend(sub_errors.iter().cloned());
                    sub_errors.is_empty()
                });
                if !fits {
                    errors.push(format!("{path}: fits no option: {}", tries.join("; ")));
                }
            }
            "if" => {
                let mut probe = Vec::new();
                check(root, rule, value, path, &mut probe);
                if probe.is_empty()
                    && let Some(then) = rules.get("then")
                {
                    check(root, then, value, path, errors);
                }
            }
            "then" => {}
            other => errors.push(format!("{path}: the test checker does not know `{other}`")),
        }
    }
}

fn validate(kind: SchemaKind, value: &Value) -> Vec<String> {
    let schema = kind.schema();
    let mut errors = Vec::new();
    check(&schema, &schema, value, "", &mut errors);
    errors
}

fn validate_yaml(kind: SchemaKind, source: &str) -> Vec<String> {
    match parse_document("file.yaml", source) {
        Ok(document) => validate(kind, &document.value),
        Err(diagnostics) => vec![format!("not YAML: {diagnostics:?}")],
    }
}

/// The example files by schema, with the path from each back to the repo root: the example project
/// (flows, their tests, the project config and its tables) and the worked example in the docs.
fn example_files() -> Vec<(SchemaKind, PathBuf, &'static str)> {
    let root = repo_root();
    let mut files = Vec::new();
    for (dir, up) in [
        (root.join("examples/flows"), "../../"),
        (root.join("examples/flows/tables"), "../../../"),
        (root.join("docs/examples/failed-logins"), "../../../"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".yaml") {
                continue;
            }
            let kind = if dir.ends_with("tables") {
                SchemaKind::Table
            } else if name == "idflow.yaml" {
                SchemaKind::Project
            } else if name.ends_with(".test.yaml") {
                SchemaKind::FlowTest
            } else {
                SchemaKind::Flow
            };
            files.push((kind, entry.path(), up));
        }
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    files
}

#[test]
fn the_committed_schemas_are_what_the_registry_generates() {
    for kind in SchemaKind::ALL {
        let path = repo_root().join("schemas").join(kind.file_name());
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == kind.render(),
            "{} is out of date: run `cargo run -p idflow -- schema --out schemas`",
            path.display()
        );
    }
}

#[test]
fn every_example_file_validates_against_its_schema() {
    let files = example_files();
    let count = |kind| files.iter().filter(|(k, _, _)| *k == kind).count();
    assert!(
        count(SchemaKind::Flow) >= 10,
        "the example flows are missing"
    );
    assert!(
        count(SchemaKind::FlowTest) >= 10,
        "the example tests are missing"
    );
    assert_eq!(count(SchemaKind::Project), 2);
    assert!(count(SchemaKind::Table) >= 1);
    for (kind, path, _) in files {
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let errors = validate_yaml(kind, &source);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn every_example_file_names_its_schema_for_editors() {
    for (kind, path, prefix) in example_files() {
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        let line = format!(
            "# yaml-language-server: $schema={prefix}schemas/{}",
            kind.file_name()
        );
        assert_eq!(
            source.lines().next(),
            Some(line.as_str()),
            "{} should start with the schema line",
            path.display()
        );
    }
}

#[test]
fn the_flow_schema_rejects_what_an_editor_should_underline() {
    let base = "name: probe\nsteps:\n";
    let rejected = [
        // Unknown card, unknown top-level key, unknown step key.
        "  - card: flow.retrun\n",
        "  - card: text.compose\n    with: { text: hi }\n    wiht: {}\n",
        // A closed card's misspelled field, a required field left out, a literal of the wrong kind.
        "  - card: text.compose\n    with: { txt: hi }\n",
        "  - card: text.compose\n    with: {}\n",
        "  - card: flow.return\n    with: { status: ok }\n",
        "  - card: flow.fail\n    with: { message: [a] }\n",
        // Bad enums.
        "  - card: flow.return\n    on_error: ignore\n",
    ];
    for steps in rejected {
        let source = format!("{base}{steps}");
        assert!(
            !validate_yaml(SchemaKind::Flow, &source).is_empty(),
            "accepted:\n{source}"
        );
    }
    for source in [
        "name: Probe\nsteps: [{ card: flow.return }]\n",
        "name: probe\nsteps: []\n",
        "name: probe\nhistory: some\nsteps: [{ card: flow.return }]\n",
        "name: probe\ntrigger: { schedule: {}, api: {} }\nsteps: [{ card: flow.return }]\n",
        "name: probe\ntrigger: { cron: x }\nsteps: [{ card: flow.return }]\n",
        "steps: [{ card: flow.return }]\n",
    ] {
        assert!(
            !validate_yaml(SchemaKind::Flow, source).is_empty(),
            "accepted:\n{source}"
        );
    }
}

#[test]
fn the_flow_schema_accepts_templates_and_open_cards() {
    let accepted = [
        // A template stands for a number.
        "  - card: flow.return\n    with: { status: \"{{ input.code }}\", body: { any: [1, 2] } }\n",
        // Text fields take numbers; optional fields may be null.
        "  - card: text.compose\n    with: { text: 42 }\n",
        "  - card: flow.fail\n    with: { message: boom, code: null }\n",
        // An open card takes any field.
        "  - card: flow.assign\n    with: { anything: 1, else: \"{{ steps }}\" }\n",
        // Control steps nest steps.
        "  - if: \"{{ input.ok }}\"\n    then: [{ card: flow.return }]\n    else: [{ card: flow.fail, with: { message: no } }]\n",
        "  - for_each: \"{{ input.items }}\"\n    as: user\n    steps: [{ card: flow.return }]\n",
        "  - try: [{ card: flow.return }]\n    catch: [{ card: flow.return }]\n",
        "  - card: flow.return\n    retry: { max: 3, backoff: 5s, on: [429, 5xx, timeout] }\n    on_error: [{ card: flow.return }]\n",
    ];
    for steps in accepted {
        let source = format!("name: probe\ntrigger: manual\nsteps:\n{steps}");
        let errors = validate_yaml(SchemaKind::Flow, &source);
        assert!(errors.is_empty(), "{source}\n{errors:#?}");
    }
}

#[test]
fn the_other_schemas_reject_unknown_fields_and_types() {
    let cases = [
        (SchemaKind::Project, "connection: {}\n"),
        (
            SchemaKind::Project,
            "tables: { t: { columns: { a: string } } }\n",
        ),
        (SchemaKind::Table, "key: id\n"),
        (SchemaKind::Table, "columns: { a: text }\nkeys: a\n"),
        (SchemaKind::FlowTest, "flow: hello\n"),
        (
            SchemaKind::FlowTest,
            "cases: [{ name: a, expect: { status: done } }]\n",
        ),
        (
            SchemaKind::FlowTest,
            "cases: [{ name: a, stubs: [{ card: okta.nope, output: {} }] }]\n",
        ),
    ];
    for (kind, source) in cases {
        assert!(
            !validate_yaml(kind, source).is_empty(),
            "{} accepted:\n{source}",
            kind.name()
        );
    }
}

/// The property names a schema lists at `pointer`.
fn keys_at(kind: SchemaKind, pointer: &str) -> Vec<String> {
    let schema = kind.schema();
    let mut keys: Vec<String> = schema
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    keys.sort();
    keys
}

#[test]
fn the_schemas_list_exactly_the_keys_the_parsers_read() {
    assert_eq!(
        keys_at(SchemaKind::Flow, "/properties"),
        sorted(flow_keys::FLOW_KEYS)
    );
    assert_eq!(
        keys_at(SchemaKind::Flow, "/definitions/step/properties"),
        sorted(flow_keys::STEP_KEYS)
    );
    assert_eq!(
        keys_at(SchemaKind::Project, "/properties"),
        sorted(flow_keys::PROJECT_KEYS)
    );
    assert_eq!(
        keys_at(SchemaKind::Table, "/properties"),
        sorted(flow_keys::TABLE_FILE_KEYS)
    );
    let schema = SchemaKind::Flow.schema();
    let input_types = schema
        .pointer("/properties/trigger/anyOf/1/properties/helper/properties/inputs/additionalProperties/anyOf/0/enum")
        .cloned();
    assert_eq!(input_types, Some(json!(flow_keys::INPUT_TYPES)));
    let columns = SchemaKind::Table
        .schema()
        .pointer("/properties/columns/additionalProperties/enum")
        .cloned();
    assert_eq!(columns, Some(json!(flow_keys::COLUMN_TYPES)));
    let trigger_kinds = keys_at(SchemaKind::Flow, "/properties/trigger/anyOf/1/properties");
    let mut expected: Vec<String> = crate::model::Trigger::KINDS
        .iter()
        .map(|kind| kind.name.to_owned())
        .filter(|name| name != "manual")
        .collect();
    expected.sort();
    assert_eq!(trigger_kinds, expected);
}

#[cfg(feature = "testing")]
#[test]
fn the_test_file_schema_lists_exactly_the_keys_the_parser_reads() {
    use crate::testing::keys as test_keys;
    let case = "/properties/cases/items/properties";
    let expect = format!("{case}/expect/properties");
    let stub = format!("{case}/stubs/items/properties");
    for (pointer, keys) in [
        ("/properties".to_owned(), test_keys::FILE_KEYS),
        (case.to_owned(), test_keys::CASE_KEYS),
        (stub.clone(), test_keys::STUB_KEYS),
        (format!("{stub}/error/properties"), test_keys::ERROR_KEYS),
        (
            format!("{stub}/sequence/items/properties"),
            test_keys::ANSWER_KEYS,
        ),
        (expect.clone(), test_keys::EXPECT_KEYS),
        (
            format!("{expect}/steps/additionalProperties/properties"),
            test_keys::STEP_EXPECT_KEYS,
        ),
        (
            format!("{expect}/calls/items/properties"),
            test_keys::CALL_KEYS,
        ),
        (
            format!("{expect}/return/properties"),
            test_keys::RETURN_KEYS,
        ),
        (
            format!("{expect}/error/properties"),
            test_keys::RUN_ERROR_KEYS,
        ),
    ] {
        assert_eq!(
            keys_at(SchemaKind::FlowTest, &pointer),
            sorted(keys),
            "{pointer}"
        );
    }
}

#[test]
fn every_card_and_field_of_the_registry_is_in_the_flow_schema() {
    let schema = SchemaKind::Flow.schema();
    let rules = schema
        .pointer("/definitions/step/allOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let cards = crate::cards::registry::registry();
    assert_eq!(rules.len(), cards.len());
    for (rule, card) in rules.iter().zip(cards) {
        assert_eq!(rule["if"]["properties"]["card"]["const"], json!(card.name));
        let with = &rule["then"]["properties"]["with"];
        for field in card.fields {
            assert!(
                with["properties"].get(field.name).is_some(),
                "{}.{} is missing",
                card.name,
                field.name
            );
        }
        assert_eq!(with.get("additionalProperties").is_none(), card.open);
    }
}
