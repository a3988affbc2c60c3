//! `boolean.*`: and, or and not over values, with the truthiness of conditions (null, false, 0,
//! `""`, `[]` and `{}` are false).

use serde_json::json;

use crate::cards::fields::{Fields, With};
use crate::cards::spec::{CardSpec, FieldSpec, PureContext, PureResult};
use crate::template::truthy;

const VALUES: FieldSpec = FieldSpec::required(
    "values",
    "list",
    "values; null, false, 0, \"\", [] and {} are false",
);

/// The boolean cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::pure(
        "boolean.and",
        "True when every value is true",
        &[VALUES],
        "`true` or `false` (`true` for an empty list)",
        boolean_and,
    ),
    CardSpec::pure(
        "boolean.or",
        "True when any value is true",
        &[VALUES],
        "`true` or `false` (`false` for an empty list)",
        boolean_or,
    ),
    CardSpec::pure(
        "boolean.not",
        "The opposite",
        &[FieldSpec::required(
            "value",
            "any",
            "a value; null, false, 0, \"\", [] and {} are false",
        )],
        "`true` or `false`",
        boolean_not,
    ),
];

fn boolean_and(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(
        Fields::strict(with).list("values")?.iter().all(truthy)
    ))
}

fn boolean_or(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(
        Fields::strict(with).list("values")?.iter().any(truthy)
    ))
}

fn boolean_not(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(!with.get("value").is_some_and(truthy)))
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
    fn boolean_cards() {
        check(
            "boolean.and",
            json!({ "values": [true, 1, "x"] }),
            Ok(json!(true)),
        );
        check(
            "boolean.and",
            json!({ "values": [true, 0] }),
            Ok(json!(false)),
        );
        check("boolean.and", json!({ "values": [] }), Ok(json!(true)));
        check(
            "boolean.or",
            json!({ "values": [null, "", {}, [1]] }),
            Ok(json!(true)),
        );
        check("boolean.or", json!({ "values": [] }), Ok(json!(false)));
        check(
            "boolean.or",
            json!({ "values": true }),
            Err("field `values`: expected a list"),
        );
        check("boolean.not", json!({ "value": "" }), Ok(json!(true)));
        check("boolean.not", json!({ "value": [0] }), Ok(json!(false)));
    }
}
