//! `text.*`: composing, splitting, replacing, casing, measuring and joining text.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::cards::fields::{Fields, With, invalid, text_of};
use crate::cards::spec::{CardSpec, FieldSpec, PureContext, PureResult};

/// The `text` field most text cards read (also read by `date.parse` and `number.parse`).
pub const TEXT: FieldSpec = FieldSpec::required(
    "text",
    "text",
    "the text (numbers and booleans are converted)",
);

/// The text cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec::pure(
        "text.compose",
        "Builds a text from a template",
        &[FieldSpec::required(
            "text",
            "text",
            "the text; templates inside are rendered before the card runs",
        )],
        "the text",
        text_compose,
    ),
    CardSpec::pure(
        "text.split",
        "Splits a text into a list",
        &[
            TEXT,
            FieldSpec::required(
                "separator",
                "text",
                "what to split on; empty splits into characters",
            ),
            FieldSpec::optional(
                "trim",
                "boolean",
                "trim spaces around each part and drop empty parts (default false)",
            ),
        ],
        "list of texts",
        text_split,
    ),
    CardSpec::pure(
        "text.replace",
        "Replaces every occurrence of a text",
        &[
            TEXT,
            FieldSpec::required("find", "text", "the text to look for (not empty)"),
            FieldSpec::required("replace", "text", "what to put instead (may be empty)"),
        ],
        "the new text",
        text_replace,
    ),
    CardSpec::pure(
        "text.lower",
        "Lower-cases a text",
        &[TEXT],
        "the text in lower case",
        text_lower,
    ),
    CardSpec::pure(
        "text.upper",
        "Upper-cases a text",
        &[TEXT],
        "the text in upper case",
        text_upper,
    ),
    CardSpec::pure(
        "text.trim",
        "Removes leading and trailing whitespace",
        &[TEXT],
        "the trimmed text",
        text_trim,
    ),
    CardSpec::pure(
        "text.length",
        "Counts the characters of a text",
        &[TEXT],
        "number of characters (Unicode scalar values)",
        text_length,
    ),
    CardSpec::pure(
        "text.contains",
        "Tells whether a text contains another",
        &[
            TEXT,
            FieldSpec::required("find", "text", "the text to look for"),
        ],
        "`true` or `false`",
        text_contains,
    ),
    CardSpec::pure(
        "text.join",
        "Joins a list into one text",
        &[
            FieldSpec::required(
                "list",
                "list",
                "texts, numbers or booleans; `null` items count as empty",
            ),
            FieldSpec::optional("separator", "text", "put between items (default empty)"),
        ],
        "the text",
        text_join,
    ),
];

fn text_compose(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(Fields::strict(with).text_or_empty("text")?))
}

fn text_split(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.text("text")?;
    let Some(separator) = input.optional_text("separator")? else {
        return Err(invalid(
            "separator",
            "is required (use \"\" to split into characters)",
        ));
    };
    let trim = input.boolean_or("trim", false)?;
    let parts: Vec<String> = if separator.is_empty() {
        source.chars().map(String::from).collect()
    } else {
        source
            .split(separator.as_ref())
            .map(str::to_owned)
            .collect()
    };
    let parts: Vec<String> = if trim {
        parts
            .into_iter()
            .map(|part| part.trim().to_owned())
            .filter(|part| !part.is_empty())
            .collect()
    } else {
        parts
    };
    Ok(json!(parts))
}

fn text_replace(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.text("text")?;
    let find = input.text("find")?;
    if find.is_empty() {
        return Err(invalid("find", "must not be empty"));
    }
    let replacement = input.text_or_empty("replace")?;
    Ok(json!(source.replace(find.as_ref(), &replacement)))
}

fn text_lower(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(Fields::strict(with).text("text")?.to_lowercase()))
}

fn text_upper(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(Fields::strict(with).text("text")?.to_uppercase()))
}

fn text_trim(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(Fields::strict(with).text("text")?.trim()))
}

fn text_length(with: &With, _: &PureContext<'_>) -> PureResult {
    Ok(json!(
        Fields::strict(with).text_or_empty("text")?.chars().count()
    ))
}

fn text_contains(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    Ok(json!(
        input.text("text")?.contains(input.text("find")?.as_ref())
    ))
}

fn text_join(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let items = input.list("list")?;
    let separator = input.text_or_empty("separator")?;
    let mut parts = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        parts.push(match item {
            Value::Null => Cow::Borrowed(""),
            other => text_of(other, &format!("list[{index}]"))?,
        });
    }
    Ok(json!(parts.join(&separator)))
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
    fn text_cards() {
        check(
            "text.compose",
            json!({ "text": "Hello Ada" }),
            Ok(json!("Hello Ada")),
        );
        check("text.compose", json!({ "text": 42 }), Ok(json!("42")));
        check(
            "text.compose",
            json!({ "text": { "a": 1 } }),
            Err("field `text`: expected text, got an object"),
        );
        check(
            "text.split",
            json!({ "text": "a,b,,c", "separator": "," }),
            Ok(json!(["a", "b", "", "c"])),
        );
        check(
            "text.split",
            json!({ "text": "a, b,, c", "separator": ",", "trim": true }),
            Ok(json!(["a", "b", "c"])),
        );
        check(
            "text.split",
            json!({ "text": "héj", "separator": "" }),
            Ok(json!(["h", "é", "j"])),
        );
        check(
            "text.split",
            json!({ "text": "a" }),
            Err("field `separator`: is required"),
        );
        check(
            "text.replace",
            json!({ "text": "a-b-c", "find": "-", "replace": "+" }),
            Ok(json!("a+b+c")),
        );
        check(
            "text.replace",
            json!({ "text": "a-b", "find": "-", "replace": "" }),
            Ok(json!("ab")),
        );
        check(
            "text.replace",
            json!({ "text": "a", "find": "", "replace": "x" }),
            Err("field `find`: must not be empty"),
        );
        check("text.lower", json!({ "text": "ÀB" }), Ok(json!("àb")));
        check("text.upper", json!({ "text": "ab" }), Ok(json!("AB")));
        check("text.trim", json!({ "text": "  ab \n" }), Ok(json!("ab")));
        check("text.length", json!({ "text": "héllo" }), Ok(json!(5)));
        check(
            "text.length",
            json!({ "text": [1] }),
            Err("field `text`: expected text, got a list"),
        );
        check(
            "text.contains",
            json!({ "text": "hello", "find": "ell" }),
            Ok(json!(true)),
        );
        check(
            "text.join",
            json!({ "list": ["a", 1, true, null], "separator": ", " }),
            Ok(json!("a, 1, true, ")),
        );
        check(
            "text.join",
            json!({ "list": ["a", {}] }),
            Err("field `list[1]`: expected text"),
        );
        check(
            "text.join",
            json!({ "list": "a,b" }),
            Err("field `list`: expected a list, got text"),
        );
    }
}
