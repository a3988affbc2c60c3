//! `object.*`: reading and writing paths, merging, listing keys and values, picking and omitting
//! keys.

use serde_json::{Map, Value, json};

use super::path::{get_path, parse_path, path_field, set_path};
use crate::cards::fields::{Fields, With, invalid, wrong};
use crate::cards::spec::{CardError, CardSpec, FieldSpec, PureContext, PureResult};

const OBJECT: FieldSpec = FieldSpec::required("object", "object", "the object");
const PATH_DOC: &str = "where to look: keys separated by dots, list positions in brackets (`profile.emails[0].value`, `labels[\"a.b\"]`, `items[-1]`)";

/// The object cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::pure(
        "object.get",
        "Reads a value at a path",
        &[
            FieldSpec::required("object", "any", "an object or a list"),
            FieldSpec::required("path", "text", PATH_DOC),
            FieldSpec::optional(
                "default",
                "any",
                "returned when nothing is at the path (default null)",
            ),
        ],
        "the value, or `default`",
        object_get,
    ),
    CardSpec::pure(
        "object.set",
        "Sets a value at a path, creating objects on the way",
        &[
            FieldSpec::required(
                "object",
                "any",
                "an object, a list, or null to start from nothing",
            ),
            FieldSpec::required("path", "text", PATH_DOC),
            FieldSpec::required("value", "any", "the value to put"),
        ],
        "the new object (the input is not changed)",
        object_set,
    ),
    CardSpec::pure(
        "object.merge",
        "Merges objects; later ones win",
        &[
            FieldSpec::required(
                "objects",
                "list",
                "objects to merge, in order; `null` items are skipped",
            ),
            FieldSpec::optional(
                "deep",
                "boolean",
                "merge nested objects key by key instead of replacing them (default false)",
            ),
        ],
        "the merged object",
        object_merge,
    ),
    CardSpec::pure(
        "object.keys",
        "Lists the keys of an object",
        &[OBJECT],
        "list of keys, in order",
        object_keys,
    ),
    CardSpec::pure(
        "object.values",
        "Lists the values of an object",
        &[OBJECT],
        "list of values, in key order",
        object_values,
    ),
    CardSpec::pure(
        "object.pick",
        "Keeps only some keys",
        &[
            OBJECT,
            FieldSpec::required("keys", "list", "keys to keep; missing ones are skipped"),
        ],
        "the smaller object",
        object_pick,
    ),
    CardSpec::pure(
        "object.omit",
        "Removes some keys",
        &[
            OBJECT,
            FieldSpec::required("keys", "list", "keys to remove"),
        ],
        "the smaller object",
        object_omit,
    ),
];

fn object_get(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.required("object")?;
    if !matches!(source, Value::Object(_) | Value::Array(_)) {
        return Err(wrong("object", "an object or a list", source));
    }
    let segments = path_field(&input, "path")?;
    Ok(get_path(source, &segments)
        .filter(|found| !found.is_null())
        .or_else(|| with.get("default"))
        .cloned()
        .unwrap_or(Value::Null))
}

fn object_set(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let mut target = with.get("object").cloned().unwrap_or(Value::Null);
    if !matches!(target, Value::Object(_) | Value::Array(_) | Value::Null) {
        return Err(wrong("object", "an object, a list or null", &target));
    }
    let path = input.text("path")?;
    let segments = parse_path(&path).map_err(|err| invalid("path", err))?;
    if segments.is_empty() {
        return Err(invalid("path", "is empty"));
    }
    let value = with.get("value").cloned().unwrap_or(Value::Null);
    set_path(&mut target, &segments, value, &path).map_err(|err| invalid("path", err))?;
    Ok(target)
}

fn merge_into(target: &mut Map<String, Value>, source: &Map<String, Value>, deep: bool) {
    for (key, value) in source {
        match (target.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(incoming)) if deep => {
                merge_into(existing, incoming, true)
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

fn object_merge(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let objects = input.list("objects")?;
    let deep = input.boolean_or("deep", false)?;
    let mut merged = Map::new();
    for (index, item) in objects.iter().enumerate() {
        match item {
            Value::Null => {}
            Value::Object(map) => merge_into(&mut merged, map, deep),
            other => return Err(wrong(&format!("objects[{index}]"), "an object", other)),
        }
    }
    Ok(Value::Object(merged))
}

/// The `object` field of the cards that read one object.
fn object_field(with: &With) -> Result<&With, CardError> {
    Fields::strict(with).object("object")
}

fn object_keys(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(object_field(with)?.keys().collect::<Vec<_>>()))
}

fn object_values(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(object_field(with)?.values().collect::<Vec<_>>()))
}

/// The object's entries whose key is (`keep`) or is not (`!keep`) in the `keys` field.
fn filter_keys(with: &With, keep: bool) -> Result<Value, CardError> {
    let source = object_field(with)?;
    let keys = Fields::strict(with).texts("keys")?;
    Ok(Value::Object(
        source
            .iter()
            .filter(|(key, _)| keys.iter().any(|wanted| wanted == key.as_str()) == keep)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

fn object_pick(with: &With, _: &PureContext<'_>) -> PureResult {
    filter_keys(with, true)
}

fn object_omit(with: &With, _: &PureContext<'_>) -> PureResult {
    filter_keys(with, false)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::CARDS;
    use crate::cards::functions::testing::check_in;

    fn check(card: &str, input: Value, expected: Result<Value, &str>) {
        check_in(CARDS, card, input, expected);
    }

    #[test]
    fn object_cards() {
        let user = json!({ "profile": { "emails": [{ "value": "a@x" }, { "value": "b@x" }], "a.b": 1 }, "n": 0 });
        check(
            "object.get",
            json!({ "object": user, "path": "profile.emails[1].value" }),
            Ok(json!("b@x")),
        );
        check(
            "object.get",
            json!({ "object": user, "path": "profile.emails[-1].value" }),
            Ok(json!("b@x")),
        );
        check(
            "object.get",
            json!({ "object": user, "path": "profile[\"a.b\"]" }),
            Ok(json!(1)),
        );
        check(
            "object.get",
            json!({ "object": user, "path": "n" }),
            Ok(json!(0)),
        );
        check(
            "object.get",
            json!({ "object": user, "path": "profile.nope", "default": "none" }),
            Ok(json!("none")),
        );
        check(
            "object.get",
            json!({ "object": user, "path": "profile.emails[9]" }),
            Ok(json!(null)),
        );
        check(
            "object.get",
            json!({ "object": [10, 20], "path": "[1]" }),
            Ok(json!(20)),
        );
        check(
            "object.get",
            json!({ "object": "text", "path": "a" }),
            Err("field `object`: expected an object or a list"),
        );
        check(
            "object.get",
            json!({ "object": {}, "path": "a..b" }),
            Err("field `path`: empty key"),
        );
        check(
            "object.get",
            json!({ "object": {}, "path": "a[x]" }),
            Err("field `path`: expected a position"),
        );
        check(
            "object.set",
            json!({ "object": { "a": 1 }, "path": "b.c", "value": 2 }),
            Ok(json!({ "a": 1, "b": { "c": 2 } })),
        );
        check(
            "object.set",
            json!({ "object": null, "path": "list[0]", "value": "x" }),
            Ok(json!({ "list": ["x"] })),
        );
        check(
            "object.set",
            json!({ "object": { "l": [1, 2] }, "path": "l[-1]", "value": 9 }),
            Ok(json!({ "l": [1, 9] })),
        );
        check(
            "object.set",
            json!({ "object": { "l": [1] }, "path": "l[5]", "value": 9 }),
            Err("position 5 is outside the list of 1 items"),
        );
        check(
            "object.set",
            json!({ "object": { "a": "x" }, "path": "a.b", "value": 1 }),
            Err("cannot set `b` in text"),
        );
        check(
            "object.merge",
            json!({ "objects": [{ "a": { "x": 1 }, "b": 1 }, null, { "a": { "y": 2 } }] }),
            Ok(json!({ "a": { "y": 2 }, "b": 1 })),
        );
        check(
            "object.merge",
            json!({ "objects": [{ "a": { "x": 1 }, "b": 1 }, { "a": { "y": 2 } }], "deep": true }),
            Ok(json!({ "a": { "x": 1, "y": 2 }, "b": 1 })),
        );
        check(
            "object.merge",
            json!({ "objects": [{}, 3] }),
            Err("field `objects[1]`: expected an object, got a number"),
        );
        check(
            "object.keys",
            json!({ "object": { "b": 1, "a": 2 } }),
            Ok(json!(["b", "a"])),
        );
        check(
            "object.values",
            json!({ "object": { "b": 1, "a": 2 } }),
            Ok(json!([1, 2])),
        );
        check(
            "object.keys",
            json!({ "object": [] }),
            Err("field `object`: expected an object, got a list"),
        );
        check(
            "object.pick",
            json!({ "object": { "a": 1, "b": 2, "c": 3 }, "keys": ["c", "a", "z"] }),
            Ok(json!({ "a": 1, "c": 3 })),
        );
        check(
            "object.omit",
            json!({ "object": { "a": 1, "b": 2 }, "keys": ["a"] }),
            Ok(json!({ "b": 2 })),
        );
        check(
            "object.pick",
            json!({ "object": {} }),
            Err("field `keys`: is required"),
        );
    }
}
