//! `json.*`: reading and writing JSON text.

use serde_json::Value;

use crate::cards::fields::{Fields, With, invalid};
use crate::cards::spec::{CardSpec, FieldSpec, PureContext, PureResult};

/// The JSON cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::pure(
        "json.parse",
        "Parses JSON text",
        &[FieldSpec::required(
            "text",
            "text",
            "JSON text; a value that is not text is returned unchanged (already parsed)",
        )],
        "the parsed value",
        json_parse,
    ),
    CardSpec::pure(
        "json.stringify",
        "Writes a value as JSON text",
        &[
            FieldSpec::required("value", "any", "any value"),
            FieldSpec::optional(
                "pretty",
                "boolean",
                "indent with two spaces (default false)",
            ),
        ],
        "JSON text",
        json_stringify,
    ),
];

fn json_parse(with: &With, _: &PureContext<'_>) -> PureResult {
    match Fields::strict(with).required("text")? {
        Value::String(source) => serde_json::from_str(source)
            .map_err(|err| invalid("text", format!("not valid JSON: {err}"))),
        other => Ok(other.clone()),
    }
}

fn json_stringify(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let value = with.get("value").unwrap_or(&Value::Null);
    let text = if input.boolean_or("pretty", false)? {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map(Value::String)
        .map_err(|err| invalid("value", err.to_string()))
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
    fn json_cards() {
        check(
            "json.parse",
            json!({ "text": "{\"a\": [1, 2.5]}" }),
            Ok(json!({ "a": [1, 2.5] })),
        );
        check(
            "json.parse",
            json!({ "text": { "already": true } }),
            Ok(json!({ "already": true })),
        );
        check(
            "json.parse",
            json!({ "text": "{oops" }),
            Err("field `text`: not valid JSON"),
        );
        check(
            "json.stringify",
            json!({ "value": { "b": 1, "a": [true] } }),
            Ok(json!("{\"b\":1,\"a\":[true]}")),
        );
        check(
            "json.stringify",
            json!({ "value": [1], "pretty": true }),
            Ok(json!("[\n  1\n]")),
        );
        check(
            "json.stringify",
            json!({ "value": 1, "pretty": "yes" }),
            Err("field `pretty`: expected true or false"),
        );
    }
}
