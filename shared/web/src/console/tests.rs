use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::openapi::{OPERATIONS, document};
use super::{chart, contains};

#[test]
fn every_admin_route_is_in_the_openapi_document_and_nothing_else() {
    let routed: BTreeSet<(String, String)> = crate::api::admin_routes()
        .into_iter()
        .map(|(method, path, _)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    let doc = document();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            documented.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    assert_eq!(routed, documented);
    assert_eq!(
        OPERATIONS.len(),
        documented.len(),
        "one operation per route"
    );
    assert_eq!(doc["openapi"], "3.1.0");
}

#[test]
fn path_parameters_of_every_route_are_documented() {
    for op in OPERATIONS {
        for segment in op.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    op.params.iter().any(|(n, _, _)| *n == name),
                    "{} {} does not document `{name}`",
                    op.method,
                    op.path
                );
            }
        }
    }
}

#[test]
fn every_schema_reference_resolves() {
    let doc = document();
    let text = doc.to_string();
    for piece in text.split("\"#/components/").skip(1) {
        let reference = piece.split('"').next().unwrap_or_default();
        let mut node = &doc["components"];
        for part in reference.split('/') {
            node = &node[part];
        }
        assert!(!node.is_null(), "unresolved #/components/{reference}");
    }
}

fn chart_of(yaml: &str) -> Value {
    let flow = domain::flowfile::parse_flow("t.yaml", yaml).expect("flow parses");
    chart(&flow.steps)
}

/// Keeps `key`, `kind`, `helper` and children labels: what the chart draws.
fn outline(steps: &Value) -> Value {
    Value::Array(
        steps
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                let mut o = json!({ "key": s["key"], "kind": s["kind"] });
                if !s["helper"].is_null() {
                    o["helper"] = s["helper"].clone();
                }
                for child in s["children"].as_array().expect("children") {
                    o[child["label"].as_str().expect("label")] = outline(&child["steps"]);
                }
                o
            })
            .collect(),
    )
}

fn check(yaml: &str, expected: Value) {
    assert_eq!(outline(&chart_of(yaml)), expected, "{yaml}");
}

#[test]
fn chart_shows_branches_loops_and_helper_calls() {
    check(
        "name: t\nsteps:\n  - id: a\n    card: text.compose\n    with: { text: x }\n  - id: b\n    if: \"{{ true }}\"\n    then:\n      - id: c\n        card: flow.call\n        with: { flow: helper-one }\n    else:\n      - id: d\n        map: \"{{ [1] }}\"\n        flow: helper-two\n",
        json!([
            { "key": "a", "kind": "card" },
            { "key": "b", "kind": "if",
              "then": [{ "key": "c", "kind": "card", "helper": "helper-one" }],
              "else": [{ "key": "d", "kind": "map", "helper": "helper-two" }] },
        ]),
    );
    check(
        "name: t\nsteps:\n  - id: each\n    for_each: \"{{ [1, 2] }}\"\n    steps:\n      - id: inner\n        card: text.compose\n        with: { text: x }\n",
        json!([{ "key": "each", "kind": "for_each", "each item": [{ "key": "inner", "kind": "card" }] }]),
    );
}

#[test]
fn text_search_ignores_case_and_looks_into_keys_and_values() {
    let data = json!({ "user": { "Email": "Ada@Example.com", "age": 36 }, "tags": ["Ops"] });
    for (needle, found) in [
        ("ada@example", true),
        ("email", true),
        ("36", true),
        ("ops", true),
        ("bob", false),
    ] {
        assert_eq!(contains(&data, needle), found, "{needle}");
    }
}
