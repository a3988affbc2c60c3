//! A small validator for the OpenAPI 3.0 schema subset Okta's specs use: `$ref`, `allOf`,
//! `oneOf`/`anyOf` (with or without a discriminator), `type`, `properties`, `required`,
//! `additionalProperties`, `items`, `enum`, `nullable`, string lengths and `date-time` format.
//! Patterns are not checked (no regex engine here).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A loaded spec.
pub struct Spec {
    root: Value,
}

/// Builds JSON straight from parser events. Okta's governance spec repeats a few mapping keys
/// (`YamlLoader` refuses that); like most YAML tools, the last value wins here.
#[derive(Default)]
struct JsonBuilder {
    stack: Vec<Frame>,
    docs: Vec<Value>,
    anchors: HashMap<usize, Value>,
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Integer(n) => Value::from(n),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(r), Value::Number),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::String(text),
    }
}

fn key_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl JsonBuilder {
    fn insert(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(value),
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(map, pending, _)) => match pending.take() {
                None => *pending = Some(key_text(value)),
                Some(key) => {
                    map.insert(key, value);
                }
            },
        }
    }
}

impl MarkedEventReceiver for JsonBuilder {
    fn on_event(&mut self, event: Event, _mark: Marker) {
        match event {
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => self.stack.push(Frame::Map(Map::new(), None, anchor)),
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq(items, anchor)) => self.insert(Value::Array(items), anchor),
                Some(Frame::Map(map, _, anchor)) => self.insert(Value::Object(map), anchor),
                None => {}
            },
            Event::Scalar(text, style, anchor, _) => self.insert(scalar(text, style), anchor),
            Event::Alias(anchor) => {
                let value = self.anchors.get(&anchor).cloned().unwrap_or(Value::Null);
                self.insert(value, 0);
            }
            _ => {}
        }
    }
}

impl Spec {
    pub fn load(path: &Path) -> Result<Spec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut builder = JsonBuilder::default();
        Parser::new_from_str(&text)
            .load(&mut builder, false)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let root = builder
            .docs
            .into_iter()
            .next()
            .ok_or_else(|| format!("{}: empty document", path.display()))?;
        Ok(Spec { root })
    }

    fn resolve<'a>(&'a self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        // JSON pointer escapes: `~1` is `/`, `~0` is `~`; paths in refs are rare but exist.
        self.root.pointer(pointer)
    }

    fn deref<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..32 {
            match schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.resolve(r))
            {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    /// The JSON schema of an operation's response (`path`, lowercase `method`, `status`).
    pub fn response_schema(&self, path: &str, method: &str, status: &str) -> Value {
        let operation = &self.root["paths"][path][method];
        assert!(operation.is_object(), "spec has no {method} {path}");
        let response = self.deref(&operation["responses"][status]);
        let schema = &response["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "spec has no JSON schema for {method} {path} {status}"
        );
        schema.clone()
    }

    /// A named component schema.
    pub fn component(&self, name: &str) -> Value {
        let schema = &self.root["components"]["schemas"][name];
        assert!(schema.is_object(), "spec has no schema {name}");
        schema.clone()
    }

    /// Every way `value` departs from `schema`, as `path: problem` lines.
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors, 0);
        errors
    }

    fn check(
        &self,
        schema: &Value,
        value: &Value,
        at: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 64 {
            return;
        }
        let schema = self.deref(schema);
        let Some(rules) = schema.as_object() else {
            return;
        };
        if value.is_null() {
            let nullable = rules
                .get("nullable")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let constrained = [
                "type",
                "properties",
                "allOf",
                "oneOf",
                "anyOf",
                "enum",
                "items",
            ]
            .iter()
            .any(|k| rules.contains_key(*k));
            if !nullable && constrained {
                errors.push(format!("{at}: null where the schema is not nullable"));
            }
            return;
        }
        if let Some(all) = rules.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check(part, value, at, errors, depth + 1);
            }
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(options) = rules.get(keyword).and_then(Value::as_array) {
                self.check_alternatives(rules, options, value, at, errors, depth);
            }
        }
        let declared = rules.get("type").and_then(Value::as_str);
        let kind = declared.or_else(|| {
            (rules.contains_key("properties") || rules.contains_key("required")).then_some("object")
        });
        match kind {
            Some("object") => self.check_object(rules, value, at, errors, depth),
            Some("array") => match value.as_array() {
                Some(items) => {
                    if let Some(item_schema) = rules.get("items") {
                        for (i, item) in items.iter().enumerate() {
                            self.check(item_schema, item, &format!("{at}[{i}]"), errors, depth + 1);
                        }
                    }
                    let count = items.len() as u64;
                    if rules
                        .get("minItems")
                        .and_then(Value::as_u64)
                        .is_some_and(|min| count < min)
                    {
                        errors.push(format!("{at}: fewer items than minItems"));
                    }
                    if rules
                        .get("maxItems")
                        .and_then(Value::as_u64)
                        .is_some_and(|max| count > max)
                    {
                        errors.push(format!("{at}: more items than maxItems"));
                    }
                }
                None => errors.push(format!("{at}: expected an array, got {value}")),
            },
            Some("string") => match value.as_str() {
                Some(text) => {
                    let length = text.chars().count() as u64;
                    if rules
                        .get("minLength")
                        .and_then(Value::as_u64)
                        .is_some_and(|min| length < min)
                    {
                        errors.push(format!("{at}: {text:?} is shorter than minLength"));
                    }
                    if rules
                        .get("maxLength")
                        .and_then(Value::as_u64)
                        .is_some_and(|max| length > max)
                    {
                        errors.push(format!("{at}: {text:?} is longer than maxLength"));
                    }
                    if rules.get("format").and_then(Value::as_str) == Some("date-time")
                        && chrono::DateTime::parse_from_rfc3339(text).is_err()
                    {
                        errors.push(format!("{at}: {text:?} is not a date-time"));
                    }
                }
                None => errors.push(format!("{at}: expected a string, got {value}")),
            },
            Some(expected @ ("integer" | "number" | "boolean")) => {
                let fits = match expected {
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    _ => value.is_boolean(),
                };
                if !fits {
                    errors.push(format!("{at}: expected {expected}, got {value}"));
                }
            }
            _ => {}
        }
        let allowed = rules.get("enum").and_then(Value::as_array);
        if let Some(allowed) = allowed.filter(|allowed| !allowed.contains(value)) {
            errors.push(format!(
                "{at}: {value} is not one of {}",
                Value::Array(allowed.clone())
            ));
        }
    }

    fn check_object(
        &self,
        rules: &Map<String, Value>,
        value: &Value,
        at: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        let Some(object) = value.as_object() else {
            errors.push(format!("{at}: expected an object, got {value}"));
            return;
        };
        if let Some(required) = rules.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    errors.push(format!("{at}: missing required property {name}"));
                }
            }
        }
        let properties = rules.get("properties").and_then(Value::as_object);
        for (name, child) in object {
            let child_at = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(child_schema) => self.check(child_schema, child, &child_at, errors, depth + 1),
                None => match rules.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{child_at}: property not allowed"))
                    }
                    Some(extra @ Value::Object(_)) => {
                        self.check(extra, child, &child_at, errors, depth + 1)
                    }
                    _ => {}
                },
            }
        }
    }

    fn check_alternatives(
        &self,
        rules: &Map<String, Value>,
        options: &[Value],
        value: &Value,
        at: &str,
        errors: &mut Vec<String>,
        depth: usize,
    ) {
        let discriminator = rules.get("discriminator");
        let property = discriminator.and_then(|d| d["propertyName"].as_str());
        if let Some(property) = property {
            let tag = value.get(property).and_then(Value::as_str);
            let mapped = tag.and_then(|tag| discriminator.and_then(|d| d["mapping"][tag].as_str()));
            match mapped.and_then(|r| self.resolve(r)) {
                Some(target) => {
                    self.check(target, value, at, errors, depth + 1);
                    return;
                }
                None => {
                    errors.push(format!(
                        "{at}: discriminator {property}={tag:?} matches no mapping"
                    ));
                    return;
                }
            }
        }
        // Without a discriminator, one passing alternative is enough.
        let mut failures = Vec::new();
        for option in options {
            let mut option_errors = Vec::new();
            self.check(option, value, at, &mut option_errors, depth + 1);
            if option_errors.is_empty() {
                return;
            }
            failures.extend(option_errors);
        }
        errors.push(format!(
            "{at}: matches none of the alternatives ({})",
            failures.join("; ")
        ));
    }
}

#[test]
fn validator_catches_what_it_should() {
    let spec = Spec {
        root: serde_json::json!({ "components": { "schemas": {
            "Pet": { "type": "object", "required": ["name"], "properties": {
                "name": { "type": "string", "minLength": 1 },
                "age": { "type": "integer", "nullable": true },
                "kind": { "$ref": "#/components/schemas/Kind" },
                "born": { "type": "string", "format": "date-time" },
                "tags": { "type": "array", "items": { "type": "string" } } } },
            "Kind": { "type": "string", "enum": ["CAT", "DOG"] } } } }),
    };
    let pet = spec.component("Pet");
    let check = |value: Value, expected: usize| {
        let errors = spec.validate(&pet, &value);
        assert_eq!(errors.len(), expected, "{value}: {errors:?}");
    };
    check(
        serde_json::json!({ "name": "Rex", "age": null, "kind": "DOG", "born": "2020-01-01T00:00:00.000Z", "tags": ["a"] }),
        0,
    );
    check(serde_json::json!({ "age": 3 }), 1);
    check(serde_json::json!({ "name": "", "kind": "BIRD" }), 2);
    check(
        serde_json::json!({ "name": "Rex", "age": "3", "born": "yesterday", "tags": [1] }),
        3,
    );
    check(serde_json::json!({ "name": "Rex", "kind": null }), 1);
}
