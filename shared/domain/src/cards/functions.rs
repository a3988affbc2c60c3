//! Pure function cards: text, json, object, list, date, number and boolean, plus `flow.assign`.
//!
//! They run inside the engine with no I/O: the output depends only on the rendered `with:` object,
//! the step time ([`PureContext::now`]) and, for predicates, the expression evaluator
//! ([`PureContext::eval`]). Every field is checked; a value of the wrong kind is a
//! [`CardError::InvalidInput`] naming the field. Integers stay integers wherever the inputs are.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::spec::{CardError, CardKind, CardSpec, FieldSpec, PureContext, PureResult};
use crate::datetime::{format_datetime, parse_datetime, parse_timezone};

type Input = Map<String, Value>;
type Run = fn(&Input, &PureContext<'_>) -> PureResult;

const fn req(name: &'static str, kind: &'static str, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: true,
        doc,
    }
}

const fn opt(name: &'static str, kind: &'static str, doc: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        kind,
        required: false,
        doc,
    }
}

const fn card(
    name: &'static str,
    summary: &'static str,
    fields: &'static [FieldSpec],
    output: &'static str,
    run: Run,
) -> CardSpec {
    CardSpec {
        name,
        summary,
        fields,
        output,
        kind: CardKind::Pure(run),
        open: false,
    }
}

const TEXT: FieldSpec = req(
    "text",
    "text",
    "the text (numbers and booleans are converted)",
);
const LIST: FieldSpec = req("list", "list", "the list");
const OBJECT: FieldSpec = req("object", "object", "the object");
const PATH_DOC: &str = "where to look: keys separated by dots, list positions in brackets (`profile.emails[0].value`, `labels[\"a.b\"]`, `items[-1]`)";
const DATE_DOC: &str = "an RFC 3339 date (`2024-05-01T08:30:00Z`), a plain date (`2024-05-01`, midnight UTC) or Unix seconds";
const TZ_DOC: &str =
    "IANA time zone such as `Europe/Paris` (default: the date's own offset, UTC for `date.now`)";
const WHERE_DOC: &str = "expression written without `{{ }}`, evaluated per item with `item` and `index` bound, such as `item.status == 'ACTIVE'`";

/// The function cards (unsorted; the registry sorts).
pub const CARDS: &[CardSpec] = &[
    // text
    card(
        "text.compose",
        "Builds a text from a template",
        &[req(
            "text",
            "text",
            "the text; templates inside are rendered before the card runs",
        )],
        "the text",
        text_compose,
    ),
    card(
        "text.split",
        "Splits a text into a list",
        &[
            TEXT,
            req(
                "separator",
                "text",
                "what to split on; empty splits into characters",
            ),
            opt(
                "trim",
                "boolean",
                "trim spaces around each part and drop empty parts (default false)",
            ),
        ],
        "list of texts",
        text_split,
    ),
    card(
        "text.replace",
        "Replaces every occurrence of a text",
        &[
            TEXT,
            req("find", "text", "the text to look for (not empty)"),
            req("replace", "text", "what to put instead (may be empty)"),
        ],
        "the new text",
        text_replace,
    ),
    card(
        "text.lower",
        "Lower-cases a text",
        &[TEXT],
        "the text in lower case",
        text_lower,
    ),
    card(
        "text.upper",
        "Upper-cases a text",
        &[TEXT],
        "the text in upper case",
        text_upper,
    ),
    card(
        "text.trim",
        "Removes leading and trailing whitespace",
        &[TEXT],
        "the trimmed text",
        text_trim,
    ),
    card(
        "text.length",
        "Counts the characters of a text",
        &[TEXT],
        "number of characters (Unicode scalar values)",
        text_length,
    ),
    card(
        "text.contains",
        "Tells whether a text contains another",
        &[TEXT, req("find", "text", "the text to look for")],
        "`true` or `false`",
        text_contains,
    ),
    card(
        "text.join",
        "Joins a list into one text",
        &[
            req(
                "list",
                "list",
                "texts, numbers or booleans; `null` items count as empty",
            ),
            opt("separator", "text", "put between items (default empty)"),
        ],
        "the text",
        text_join,
    ),
    // json
    card(
        "json.parse",
        "Parses JSON text",
        &[req(
            "text",
            "text",
            "JSON text; a value that is not text is returned unchanged (already parsed)",
        )],
        "the parsed value",
        json_parse,
    ),
    card(
        "json.stringify",
        "Writes a value as JSON text",
        &[
            req("value", "any", "any value"),
            opt(
                "pretty",
                "boolean",
                "indent with two spaces (default false)",
            ),
        ],
        "JSON text",
        json_stringify,
    ),
    // object
    card(
        "object.get",
        "Reads a value at a path",
        &[
            req("object", "any", "an object or a list"),
            req("path", "text", PATH_DOC),
            opt(
                "default",
                "any",
                "returned when nothing is at the path (default null)",
            ),
        ],
        "the value, or `default`",
        object_get,
    ),
    card(
        "object.set",
        "Sets a value at a path, creating objects on the way",
        &[
            req(
                "object",
                "any",
                "an object, a list, or null to start from nothing",
            ),
            req("path", "text", PATH_DOC),
            req("value", "any", "the value to put"),
        ],
        "the new object (the input is not changed)",
        object_set,
    ),
    card(
        "object.merge",
        "Merges objects; later ones win",
        &[
            req(
                "objects",
                "list",
                "objects to merge, in order; `null` items are skipped",
            ),
            opt(
                "deep",
                "boolean",
                "merge nested objects key by key instead of replacing them (default false)",
            ),
        ],
        "the merged object",
        object_merge,
    ),
    card(
        "object.keys",
        "Lists the keys of an object",
        &[OBJECT],
        "list of keys, in order",
        object_keys,
    ),
    card(
        "object.values",
        "Lists the values of an object",
        &[OBJECT],
        "list of values, in key order",
        object_values,
    ),
    card(
        "object.pick",
        "Keeps only some keys",
        &[
            OBJECT,
            req("keys", "list", "keys to keep; missing ones are skipped"),
        ],
        "the smaller object",
        object_pick,
    ),
    card(
        "object.omit",
        "Removes some keys",
        &[OBJECT, req("keys", "list", "keys to remove")],
        "the smaller object",
        object_omit,
    ),
    // list
    card(
        "list.filter",
        "Keeps the items that match",
        &[
            LIST,
            opt("where", "expression", WHERE_DOC),
            opt(
                "key",
                "text",
                "instead of `where`: the path inside each item to compare",
            ),
            opt(
                "equals",
                "any",
                "with `key`: the value to compare with (default true)",
            ),
        ],
        "list of matching items",
        list_filter,
    ),
    card(
        "list.find",
        "Finds the first item that matches",
        &[
            LIST,
            opt("where", "expression", WHERE_DOC),
            opt(
                "key",
                "text",
                "instead of `where`: the path inside each item to compare",
            ),
            opt(
                "equals",
                "any",
                "with `key`: the value to compare with (default true)",
            ),
        ],
        "the first matching item, or `null`",
        list_find,
    ),
    card(
        "list.map",
        "Transforms every item",
        &[
            LIST,
            opt(
                "expression",
                "expression",
                "expression written without `{{ }}`, evaluated per item with `item` and `index` bound, such as `item.profile.email`",
            ),
            opt(
                "key",
                "text",
                "instead of `expression`: the path to read in each item",
            ),
        ],
        "list of results",
        list_map,
    ),
    card(
        "list.length",
        "Counts the items of a list",
        &[LIST],
        "number of items",
        list_length,
    ),
    card(
        "list.first",
        "The first item",
        &[LIST],
        "the first item, or `null` when the list is empty",
        list_first,
    ),
    card(
        "list.last",
        "The last item",
        &[LIST],
        "the last item, or `null` when the list is empty",
        list_last,
    ),
    card(
        "list.sort",
        "Sorts a list",
        &[
            LIST,
            opt(
                "key",
                "text",
                "path inside each item to sort by (default: the items themselves)",
            ),
            opt("descending", "boolean", "largest first (default false)"),
        ],
        "the sorted list (stable; null < booleans < numbers < texts < lists < objects)",
        list_sort,
    ),
    card(
        "list.unique",
        "Removes duplicates, keeping the first",
        &[
            LIST,
            opt(
                "key",
                "text",
                "path inside each item that must be unique (default: the whole item)",
            ),
        ],
        "list without duplicates",
        list_unique,
    ),
    card(
        "list.contains",
        "Tells whether a list holds a value",
        &[LIST, req("value", "any", "the value to look for")],
        "`true` or `false`",
        list_contains,
    ),
    card(
        "list.concat",
        "Joins lists end to end",
        &[req(
            "lists",
            "list",
            "lists to join; `null` items are skipped",
        )],
        "one list",
        list_concat,
    ),
    card(
        "list.chunk",
        "Cuts a list into pieces",
        &[LIST, req("size", "integer", "items per piece (at least 1)")],
        "list of lists; the last may be shorter",
        list_chunk,
    ),
    card(
        "list.slice",
        "A part of a list",
        &[
            LIST,
            opt(
                "start",
                "integer",
                "first position, negative counts from the end (default 0)",
            ),
            opt(
                "end",
                "integer",
                "position after the last, negative counts from the end (default: the end)",
            ),
        ],
        "the part",
        list_slice,
    ),
    // date
    card(
        "date.now",
        "The step time",
        &[opt("timezone", "text", TZ_DOC)],
        "RFC 3339 date",
        date_now,
    ),
    card(
        "date.add",
        "Adds (or subtracts) time",
        &[
            req("date", "datetime", DATE_DOC),
            opt(
                "amount",
                "duration",
                "a duration such as `90m`, `1h30m` or `-24h`",
            ),
            opt(
                "days",
                "integer",
                "calendar days (negative to go back); follows `timezone` across daylight saving changes",
            ),
            opt(
                "months",
                "integer",
                "calendar months (negative to go back); the day is clamped to the month's end",
            ),
            opt("hours", "number", "hours"),
            opt("minutes", "number", "minutes"),
            opt("seconds", "number", "seconds"),
            opt("timezone", "text", TZ_DOC),
        ],
        "RFC 3339 date",
        date_add,
    ),
    card(
        "date.format",
        "Formats a date",
        &[
            req("date", "datetime", DATE_DOC),
            opt(
                "format",
                "text",
                "strftime format such as `%Y-%m-%d %H:%M` (default RFC 3339)",
            ),
            opt("timezone", "text", TZ_DOC),
        ],
        "the formatted text",
        date_format,
    ),
    card(
        "date.parse",
        "Reads a date from text",
        &[
            TEXT,
            opt(
                "format",
                "text",
                "strftime format of the text, such as `%d/%m/%Y %H:%M` (default: RFC 3339, RFC 2822 or a plain date)",
            ),
            opt(
                "timezone",
                "text",
                "IANA zone of texts that carry no offset (default UTC)",
            ),
        ],
        "RFC 3339 date",
        date_parse,
    ),
    card(
        "date.diff",
        "The time between two dates",
        &[
            req("from", "datetime", DATE_DOC),
            req("to", "datetime", DATE_DOC),
            opt(
                "unit",
                "text",
                "`milliseconds`, `seconds` (default), `minutes`, `hours`, `days` or `weeks`",
            ),
        ],
        "whole units from `from` to `to`, rounded toward zero; negative when `to` is earlier",
        date_diff,
    ),
    // number
    card(
        "number.add",
        "a + b",
        &[
            req("a", "number", "a number"),
            req("b", "number", "a number"),
        ],
        "the sum",
        number_add,
    ),
    card(
        "number.subtract",
        "a - b",
        &[
            req("a", "number", "a number"),
            req("b", "number", "a number"),
        ],
        "the difference",
        number_subtract,
    ),
    card(
        "number.multiply",
        "a × b",
        &[
            req("a", "number", "a number"),
            req("b", "number", "a number"),
        ],
        "the product",
        number_multiply,
    ),
    card(
        "number.divide",
        "a ÷ b",
        &[
            req("a", "number", "a number"),
            req("b", "number", "a number other than 0"),
        ],
        "the quotient; an integer when both are integers and it divides exactly",
        number_divide,
    ),
    card(
        "number.round",
        "Rounds a number",
        &[
            req("value", "number", "a number"),
            opt(
                "places",
                "integer",
                "digits after the point, 0 to 15 (default 0)",
            ),
        ],
        "the rounded number; an integer with 0 places",
        number_round,
    ),
    card(
        "number.parse",
        "Reads a number from text",
        &[TEXT],
        "the number; an integer when the text is one",
        number_parse,
    ),
    // boolean
    card(
        "boolean.and",
        "True when every value is true",
        &[req(
            "values",
            "list",
            "values; null, false, 0, \"\", [] and {} are false",
        )],
        "`true` or `false` (`true` for an empty list)",
        boolean_and,
    ),
    card(
        "boolean.or",
        "True when any value is true",
        &[req(
            "values",
            "list",
            "values; null, false, 0, \"\", [] and {} are false",
        )],
        "`true` or `false` (`false` for an empty list)",
        boolean_or,
    ),
    card(
        "boolean.not",
        "The opposite",
        &[req(
            "value",
            "any",
            "a value; null, false, 0, \"\", [] and {} are false",
        )],
        "`true` or `false`",
        boolean_not,
    ),
    // flow
    CardSpec {
        name: "flow.assign",
        summary: "Names values: any fields you write become the step's output",
        fields: &[],
        output: "the rendered `with` object, so `steps.<id>.<field>` reads each value",
        kind: CardKind::Pure(flow_assign),
        open: true,
    },
];

// ----- input helpers -----

fn invalid(field: &str, message: impl Into<String>) -> CardError {
    CardError::InvalidInput {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn describe(value: &Value) -> Cow<'static, str> {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(text) => {
            let preview: String = text.chars().take(40).collect();
            let more = if text.chars().count() > 40 { "…" } else { "" };
            format!("text \"{preview}{more}\"").into()
        }
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn wrong(field: &str, expected: &str, value: &Value) -> CardError {
    invalid(
        field,
        format!("expected {expected}, got {}", describe(value)),
    )
}

/// A field that must be present and not null.
fn required<'a>(input: &'a Input, field: &str) -> Result<&'a Value, CardError> {
    match input.get(field) {
        None | Some(Value::Null) => Err(invalid(field, "is required")),
        Some(value) => Ok(value),
    }
}

/// A field that may be absent; `null` counts as absent.
fn optional<'a>(input: &'a Input, field: &str) -> Option<&'a Value> {
    input.get(field).filter(|value| !value.is_null())
}

fn as_text<'a>(value: &'a Value, field: &str) -> Result<Cow<'a, str>, CardError> {
    match value {
        Value::String(text) => Ok(Cow::Borrowed(text)),
        Value::Number(number) => Ok(Cow::Owned(number.to_string())),
        Value::Bool(b) => Ok(Cow::Owned(b.to_string())),
        other => Err(wrong(field, "text", other)),
    }
}

fn text<'a>(input: &'a Input, field: &str) -> Result<Cow<'a, str>, CardError> {
    as_text(required(input, field)?, field)
}

/// Like [`text`] but an absent or null field is the empty text.
fn text_or_empty<'a>(input: &'a Input, field: &str) -> Result<Cow<'a, str>, CardError> {
    optional(input, field).map_or(Ok(Cow::Borrowed("")), |value| as_text(value, field))
}

fn optional_text<'a>(input: &'a Input, field: &str) -> Result<Option<Cow<'a, str>>, CardError> {
    optional(input, field)
        .map(|value| as_text(value, field))
        .transpose()
}

fn list<'a>(input: &'a Input, field: &str) -> Result<&'a Vec<Value>, CardError> {
    match required(input, field)? {
        Value::Array(items) => Ok(items),
        other => Err(wrong(field, "a list", other)),
    }
}

fn object<'a>(input: &'a Input, field: &str) -> Result<&'a Map<String, Value>, CardError> {
    match required(input, field)? {
        Value::Object(map) => Ok(map),
        other => Err(wrong(field, "an object", other)),
    }
}

fn flag(input: &Input, field: &str, default: bool) -> Result<bool, CardError> {
    match optional(input, field) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(wrong(field, "true or false", other)),
    }
}

fn integer(value: &Value, field: &str) -> Result<i64, CardError> {
    match value {
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                return Ok(int);
            }
            match number.as_f64() {
                Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => Ok(float as i64),
                _ => Err(wrong(field, "a whole number", value)),
            }
        }
        other => Err(wrong(field, "a whole number", other)),
    }
}

fn optional_integer(input: &Input, field: &str) -> Result<Option<i64>, CardError> {
    optional(input, field)
        .map(|value| integer(value, field))
        .transpose()
}

// ----- numbers -----

#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn float(self) -> f64 {
        match self {
            Num::Int(int) => int as f64,
            Num::Float(float) => float,
        }
    }
}

fn number(input: &Input, field: &str) -> Result<Num, CardError> {
    match required(input, field)? {
        Value::Number(number) => Ok(number
            .as_i64()
            .map_or_else(|| Num::Float(number.as_f64().unwrap_or(f64::NAN)), Num::Int)),
        Value::String(text) => Err(invalid(
            field,
            format!(
                "expected a number, got text \"{text}\" (use number.parse to read numbers from text)"
            ),
        )),
        other => Err(wrong(field, "a number", other)),
    }
}

fn num_json(value: Num, field: &str) -> PureResult {
    match value {
        Num::Int(int) => Ok(json!(int)),
        Num::Float(float) => serde_json::Number::from_f64(float)
            .map(Value::Number)
            .ok_or_else(|| invalid(field, "the result is not a finite number")),
    }
}

fn arithmetic(
    input: &Input,
    ints: fn(i64, i64) -> Option<i64>,
    floats: fn(f64, f64) -> f64,
) -> PureResult {
    let a = number(input, "a")?;
    let b = number(input, "b")?;
    let result = match (a, b) {
        // Overflow falls back to floating point rather than failing the step.
        (Num::Int(a), Num::Int(b)) => {
            ints(a, b).map_or_else(|| Num::Float(floats(a as f64, b as f64)), Num::Int)
        }
        _ => Num::Float(floats(a.float(), b.float())),
    };
    num_json(result, "a")
}

fn number_add(input: &Input, _: &PureContext<'_>) -> PureResult {
    arithmetic(input, i64::checked_add, |a, b| a + b)
}

fn number_subtract(input: &Input, _: &PureContext<'_>) -> PureResult {
    arithmetic(input, i64::checked_sub, |a, b| a - b)
}

fn number_multiply(input: &Input, _: &PureContext<'_>) -> PureResult {
    arithmetic(input, i64::checked_mul, |a, b| a * b)
}

fn number_divide(input: &Input, _: &PureContext<'_>) -> PureResult {
    let a = number(input, "a")?;
    let b = number(input, "b")?;
    if b.float() == 0.0 {
        return Err(invalid("b", "cannot divide by zero"));
    }
    let result = match (a, b) {
        (Num::Int(a), Num::Int(b)) if a.checked_rem(b) == Some(0) => a
            .checked_div(b)
            .map_or(Num::Float(a as f64 / b as f64), Num::Int),
        _ => Num::Float(a.float() / b.float()),
    };
    num_json(result, "a")
}

fn number_round(input: &Input, _: &PureContext<'_>) -> PureResult {
    let value = number(input, "value")?;
    let places = optional_integer(input, "places")?.unwrap_or(0);
    if !(0..=15).contains(&places) {
        return Err(invalid("places", format!("expected 0 to 15, got {places}")));
    }
    match value {
        Num::Int(int) => Ok(json!(int)),
        Num::Float(float) if places == 0 => {
            let rounded = float.round();
            if rounded.abs() < 9.0e15 {
                Ok(json!(rounded as i64))
            } else {
                num_json(Num::Float(rounded), "value")
            }
        }
        Num::Float(float) => {
            let scale = 10f64.powi(places as i32);
            num_json(Num::Float((float * scale).round() / scale), "value")
        }
    }
}

fn number_parse(input: &Input, _: &PureContext<'_>) -> PureResult {
    let value = required(input, "text")?;
    if let Value::Number(_) = value {
        return Ok(value.clone());
    }
    let text = as_text(value, "text")?;
    let trimmed = text.trim();
    if let Ok(int) = trimmed.parse::<i64>() {
        return Ok(json!(int));
    }
    match trimmed.parse::<f64>() {
        Ok(float) if float.is_finite() => num_json(Num::Float(float), "text"),
        _ => Err(invalid(
            "text",
            format!("expected a number, got text \"{trimmed}\""),
        )),
    }
}

// ----- booleans -----

fn boolean_and(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(
        list(input, "values")?.iter().all(crate::template::truthy)
    ))
}

fn boolean_or(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(
        list(input, "values")?.iter().any(crate::template::truthy)
    ))
}

fn boolean_not(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(
        !input.get("value").is_some_and(crate::template::truthy)
    ))
}

fn flow_assign(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(Value::Object(input.clone()))
}

// ----- text -----

fn text_compose(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(text_or_empty(input, "text")?))
}

fn text_split(input: &Input, _: &PureContext<'_>) -> PureResult {
    let source = text(input, "text")?;
    let Some(separator) = optional_text(input, "separator")? else {
        return Err(invalid(
            "separator",
            "is required (use \"\" to split into characters)",
        ));
    };
    let trim = flag(input, "trim", false)?;
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

fn text_replace(input: &Input, _: &PureContext<'_>) -> PureResult {
    let source = text(input, "text")?;
    let find = text(input, "find")?;
    if find.is_empty() {
        return Err(invalid("find", "must not be empty"));
    }
    let replacement = text_or_empty(input, "replace")?;
    Ok(json!(source.replace(find.as_ref(), &replacement)))
}

fn text_lower(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(text(input, "text")?.to_lowercase()))
}

fn text_upper(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(text(input, "text")?.to_uppercase()))
}

fn text_trim(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(text(input, "text")?.trim()))
}

fn text_length(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(text_or_empty(input, "text")?.chars().count()))
}

fn text_contains(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(
        text(input, "text")?.contains(text(input, "find")?.as_ref())
    ))
}

fn text_join(input: &Input, _: &PureContext<'_>) -> PureResult {
    let items = list(input, "list")?;
    let separator = text_or_empty(input, "separator")?;
    let mut parts = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        parts.push(match item {
            Value::Null => Cow::Borrowed(""),
            other => as_text(other, &format!("list[{index}]"))?,
        });
    }
    Ok(json!(parts.join(&separator)))
}

// ----- json -----

fn json_parse(input: &Input, _: &PureContext<'_>) -> PureResult {
    match required(input, "text")? {
        Value::String(source) => serde_json::from_str(source)
            .map_err(|err| invalid("text", format!("not valid JSON: {err}"))),
        other => Ok(other.clone()),
    }
}

fn json_stringify(input: &Input, _: &PureContext<'_>) -> PureResult {
    let value = input.get("value").unwrap_or(&Value::Null);
    let text = if flag(input, "pretty", false)? {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    text.map(Value::String)
        .map_err(|err| invalid("value", err.to_string()))
}

// ----- paths -----

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    /// Negative counts from the end.
    Index(i64),
}

/// Parses `a.b[0].c`, `labels["a.b"]`, `[0].name`, `items[-1]`. The empty path is the value itself.
fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let chars: Vec<char> = path.trim().chars().collect();
    let mut at = 0;
    let mut expect_key = true;
    while at < chars.len() {
        match chars[at] {
            '.' => {
                if expect_key {
                    return Err(format!("empty key in path `{path}`"));
                }
                expect_key = true;
                at += 1;
            }
            '[' => {
                let close = chars[at..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|offset| at + offset)
                    .ok_or_else(|| format!("missing `]` in path `{path}`"))?;
                let inner: String = chars[at + 1..close].iter().collect();
                let inner = inner.trim();
                let quoted = (inner.starts_with('"') && inner.ends_with('"'))
                    || (inner.starts_with('\'') && inner.ends_with('\''));
                if quoted && inner.len() >= 2 {
                    segments.push(Segment::Key(inner[1..inner.len() - 1].to_owned()));
                } else {
                    let index = inner.parse::<i64>().map_err(|_| {
                        format!(
                            "expected a position or a quoted key in `[{inner}]` of path `{path}`"
                        )
                    })?;
                    segments.push(Segment::Index(index));
                }
                expect_key = false;
                at = close + 1;
            }
            _ => {
                let start = at;
                while at < chars.len() && chars[at] != '.' && chars[at] != '[' {
                    at += 1;
                }
                segments.push(Segment::Key(
                    chars[start..at]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_owned(),
                ));
                expect_key = false;
            }
        }
    }
    if expect_key && !segments.is_empty() {
        return Err(format!("path `{path}` ends with a dot"));
    }
    Ok(segments)
}

fn resolve_index(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let index = if index < 0 { len + index } else { index };
    if (0..len).contains(&index) {
        usize::try_from(index).ok()
    } else {
        None
    }
}

fn get_path<'a>(value: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
    let mut current = value;
    for segment in segments {
        current = match (segment, current) {
            (Segment::Key(key), Value::Object(map)) => map.get(key)?,
            (Segment::Index(index), Value::Array(items)) => {
                items.get(resolve_index(*index, items.len())?)?
            }
            // `items.0` reads a position too, as in templates.
            (Segment::Key(key), Value::Array(items)) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn set_path(
    target: &mut Value,
    segments: &[Segment],
    value: Value,
    path: &str,
) -> Result<(), String> {
    let Some((segment, rest)) = segments.split_first() else {
        *target = value;
        return Ok(());
    };
    if target.is_null() {
        *target = match segment {
            Segment::Key(_) => Value::Object(Map::new()),
            Segment::Index(_) => Value::Array(Vec::new()),
        };
    }
    match (segment, target) {
        (Segment::Key(key), Value::Object(map)) => set_path(
            map.entry(key.clone()).or_insert(Value::Null),
            rest,
            value,
            path,
        ),
        (Segment::Index(index), Value::Array(items)) => {
            let len = items.len();
            if usize::try_from(*index).ok() == Some(len) {
                items.push(Value::Null);
                return set_path(&mut items[len], rest, value, path);
            }
            let at = resolve_index(*index, len).ok_or_else(|| {
                format!("position {index} is outside the list of {len} items in path `{path}`")
            })?;
            set_path(&mut items[at], rest, value, path)
        }
        (Segment::Key(key), other) => Err(format!(
            "cannot set `{key}` in {} (path `{path}`)",
            describe(other)
        )),
        (Segment::Index(index), other) => Err(format!(
            "cannot set position {index} in {} (path `{path}`)",
            describe(other)
        )),
    }
}

fn path_field(input: &Input, field: &str) -> Result<Vec<Segment>, CardError> {
    parse_path(&text_or_empty(input, field)?).map_err(|err| invalid(field, err))
}

// ----- objects -----

fn object_get(input: &Input, _: &PureContext<'_>) -> PureResult {
    let source = required(input, "object")?;
    if !matches!(source, Value::Object(_) | Value::Array(_)) {
        return Err(wrong("object", "an object or a list", source));
    }
    let segments = path_field(input, "path")?;
    Ok(get_path(source, &segments)
        .filter(|found| !found.is_null())
        .or_else(|| input.get("default"))
        .cloned()
        .unwrap_or(Value::Null))
}

fn object_set(input: &Input, _: &PureContext<'_>) -> PureResult {
    let mut target = input.get("object").cloned().unwrap_or(Value::Null);
    if !matches!(target, Value::Object(_) | Value::Array(_) | Value::Null) {
        return Err(wrong("object", "an object, a list or null", &target));
    }
    let path = text(input, "path")?;
    let segments = parse_path(&path).map_err(|err| invalid("path", err))?;
    if segments.is_empty() {
        return Err(invalid("path", "is empty"));
    }
    let value = input.get("value").cloned().unwrap_or(Value::Null);
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

fn object_merge(input: &Input, _: &PureContext<'_>) -> PureResult {
    let objects = list(input, "objects")?;
    let deep = flag(input, "deep", false)?;
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

fn object_keys(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(object(input, "object")?.keys().collect::<Vec<_>>()))
}

fn object_values(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(object(input, "object")?.values().collect::<Vec<_>>()))
}

fn key_list(input: &Input, field: &str) -> Result<Vec<String>, CardError> {
    list(input, field)?
        .iter()
        .enumerate()
        .map(|(index, key)| as_text(key, &format!("{field}[{index}]")).map(Cow::into_owned))
        .collect()
}

fn object_pick(input: &Input, _: &PureContext<'_>) -> PureResult {
    let source = object(input, "object")?;
    let keys = key_list(input, "keys")?;
    Ok(Value::Object(
        source
            .iter()
            .filter(|(key, _)| keys.contains(key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

fn object_omit(input: &Input, _: &PureContext<'_>) -> PureResult {
    let source = object(input, "object")?;
    let keys = key_list(input, "keys")?;
    Ok(Value::Object(
        source
            .iter()
            .filter(|(key, _)| !keys.contains(key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

// ----- lists -----

/// A test applied to each item: `where` (an expression) or `key` + `equals`.
fn predicate<'a>(
    input: &'a Input,
    ctx: &'a PureContext<'_>,
) -> Result<impl Fn(usize, &Value) -> Result<bool, CardError> + 'a, CardError> {
    let expression = optional_text(input, "where")?;
    let key = optional(input, "key")
        .map(|_| path_field(input, "key"))
        .transpose()?;
    if expression.is_some() && key.is_some() {
        return Err(invalid("where", "give either `where` or `key`, not both"));
    }
    if expression.is_none() && key.is_none() {
        return Err(invalid("where", "is required (or give `key` and `equals`)"));
    }
    let equals = optional(input, "equals")
        .cloned()
        .unwrap_or(Value::Bool(true));
    Ok(
        move |index: usize, item: &Value| match (&expression, &key) {
            (Some(expression), _) => {
                (ctx.eval)(expression, &[("item", item), ("index", &json!(index))])
                    .map(|value| crate::template::truthy(&value))
                    .map_err(|err| invalid("where", format!("item {index}: {err}")))
            }
            (None, Some(key)) => Ok(get_path(item, key) == Some(&equals)
                || (equals.is_null() && get_path(item, key).is_none())),
            (None, None) => Ok(false),
        },
    )
}

fn list_filter(input: &Input, ctx: &PureContext<'_>) -> PureResult {
    let items = list(input, "list")?;
    let test = predicate(input, ctx)?;
    let mut kept = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if test(index, item)? {
            kept.push(item.clone());
        }
    }
    Ok(Value::Array(kept))
}

fn list_find(input: &Input, ctx: &PureContext<'_>) -> PureResult {
    let items = list(input, "list")?;
    let test = predicate(input, ctx)?;
    for (index, item) in items.iter().enumerate() {
        if test(index, item)? {
            return Ok(item.clone());
        }
    }
    Ok(Value::Null)
}

fn list_map(input: &Input, ctx: &PureContext<'_>) -> PureResult {
    let items = list(input, "list")?;
    let expression = optional_text(input, "expression")?;
    let key = optional(input, "key")
        .map(|_| path_field(input, "key"))
        .transpose()?;
    let mut results = Vec::with_capacity(items.len());
    match (expression, key) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "expression",
                "give either `expression` or `key`, not both",
            ));
        }
        (None, None) => return Err(invalid("expression", "is required (or give `key`)")),
        (Some(expression), None) => {
            for (index, item) in items.iter().enumerate() {
                let value = (ctx.eval)(&expression, &[("item", item), ("index", &json!(index))])
                    .map_err(|err| invalid("expression", format!("item {index}: {err}")))?;
                results.push(value);
            }
        }
        (None, Some(key)) => results.extend(
            items
                .iter()
                .map(|item| get_path(item, &key).cloned().unwrap_or(Value::Null)),
        ),
    }
    Ok(Value::Array(results))
}

fn list_length(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(json!(list(input, "list")?.len()))
}

fn list_first(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(list(input, "list")?.first().cloned().unwrap_or(Value::Null))
}

fn list_last(input: &Input, _: &PureContext<'_>) -> PureResult {
    Ok(list(input, "list")?.last().cloned().unwrap_or(Value::Null))
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order on JSON values for sorting.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => a
                .as_f64()
                .unwrap_or(f64::NAN)
                .total_cmp(&b.as_f64().unwrap_or(f64::NAN)),
        },
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .map(|(a, b)| compare(a, b))
            .find(|o| o.is_ne())
            .unwrap_or(a.len().cmp(&b.len())),
        (Value::Object(a), Value::Object(b)) => a.len().cmp(&b.len()),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn list_sort(input: &Input, _: &PureContext<'_>) -> PureResult {
    let mut items = list(input, "list")?.clone();
    let key = optional(input, "key")
        .map(|_| path_field(input, "key"))
        .transpose()?
        .unwrap_or_default();
    let descending = flag(input, "descending", false)?;
    items.sort_by(|a, b| {
        let order = compare(
            get_path(a, &key).unwrap_or(&Value::Null),
            get_path(b, &key).unwrap_or(&Value::Null),
        );
        if descending { order.reverse() } else { order }
    });
    Ok(Value::Array(items))
}

fn list_unique(input: &Input, _: &PureContext<'_>) -> PureResult {
    let items = list(input, "list")?;
    let key = optional(input, "key")
        .map(|_| path_field(input, "key"))
        .transpose()?
        .unwrap_or_default();
    let mut seen = HashSet::new();
    let unique: Vec<Value> = items
        .iter()
        .filter(|item| seen.insert(get_path(item, &key).unwrap_or(&Value::Null).to_string()))
        .cloned()
        .collect();
    Ok(Value::Array(unique))
}

fn list_contains(input: &Input, _: &PureContext<'_>) -> PureResult {
    let needle = input.get("value").unwrap_or(&Value::Null);
    Ok(json!(list(input, "list")?.contains(needle)))
}

fn list_concat(input: &Input, _: &PureContext<'_>) -> PureResult {
    let mut joined = Vec::new();
    for (index, item) in list(input, "lists")?.iter().enumerate() {
        match item {
            Value::Null => {}
            Value::Array(items) => joined.extend(items.iter().cloned()),
            other => return Err(wrong(&format!("lists[{index}]"), "a list", other)),
        }
    }
    Ok(Value::Array(joined))
}

fn list_chunk(input: &Input, _: &PureContext<'_>) -> PureResult {
    let items = list(input, "list")?;
    let size = integer(required(input, "size")?, "size")?;
    let size = usize::try_from(size)
        .ok()
        .filter(|size| *size >= 1)
        .ok_or_else(|| invalid("size", format!("expected at least 1, got {size}")))?;
    Ok(Value::Array(
        items
            .chunks(size)
            .map(|chunk| Value::Array(chunk.to_vec()))
            .collect(),
    ))
}

fn list_slice(input: &Input, _: &PureContext<'_>) -> PureResult {
    let items = list(input, "list")?;
    let len = items.len() as i64;
    let clamp = |position: i64| -> usize {
        let position = if position < 0 {
            len + position
        } else {
            position
        };
        position.clamp(0, len) as usize
    };
    let start = clamp(optional_integer(input, "start")?.unwrap_or(0));
    let end = clamp(optional_integer(input, "end")?.unwrap_or(len));
    Ok(Value::Array(if start < end {
        items[start..end].to_vec()
    } else {
        Vec::new()
    }))
}

// ----- dates -----

fn date_field(input: &Input, field: &str) -> Result<DateTime<FixedOffset>, CardError> {
    parse_datetime(required(input, field)?).map_err(|err| invalid(field, err))
}

fn zone_field(input: &Input) -> Result<Option<chrono_tz::Tz>, CardError> {
    optional_text(input, "timezone")?
        .map(|name| parse_timezone(&name).map_err(|err| invalid("timezone", err)))
        .transpose()
}

fn rfc3339(date: &DateTime<FixedOffset>, zone: Option<chrono_tz::Tz>) -> PureResult {
    format_datetime(date, None, zone)
        .map(Value::String)
        .map_err(|err| invalid("date", err))
}

fn date_now(input: &Input, ctx: &PureContext<'_>) -> PureResult {
    let zone = zone_field(input)?;
    rfc3339(&ctx.now.fixed_offset(), zone)
}

/// A signed duration such as `90m` or `-24h`.
fn signed_duration(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let duration = crate::duration::parse(rest)?;
    let duration = chrono::Duration::from_std(duration)
        .map_err(|_| format!("duration `{text}` is too large"))?;
    Ok(if negative { -duration } else { duration })
}

fn seconds_of(
    input: &Input,
    field: &str,
    unit_seconds: f64,
) -> Result<chrono::Duration, CardError> {
    let Some(value) = optional(input, field) else {
        return Ok(chrono::Duration::zero());
    };
    let amount = match value {
        Value::Number(number) => number.as_f64().unwrap_or(f64::NAN),
        other => return Err(wrong(field, "a number", other)),
    };
    let millis = (amount * unit_seconds * 1000.0).round();
    if !millis.is_finite() || millis.abs() > 1.0e15 {
        return Err(invalid(field, "is too large"));
    }
    Ok(chrono::Duration::milliseconds(millis as i64))
}

fn date_add(input: &Input, _: &PureContext<'_>) -> PureResult {
    let date = date_field(input, "date")?;
    let zone = zone_field(input)?;
    if ["amount", "days", "months", "hours", "minutes", "seconds"]
        .iter()
        .all(|field| optional(input, field).is_none())
    {
        return Err(invalid(
            "amount",
            "is required (or give days, months, hours, minutes or seconds)",
        ));
    }
    let exact = match optional_text(input, "amount")? {
        Some(text) => signed_duration(&text).map_err(|err| invalid("amount", err))?,
        None => chrono::Duration::zero(),
    } + seconds_of(input, "hours", 3600.0)?
        + seconds_of(input, "minutes", 60.0)?
        + seconds_of(input, "seconds", 1.0)?;
    let months = optional_integer(input, "months")?.unwrap_or(0);
    let days = optional(input, "days")
        .map(|value| integer(value, "days"))
        .transpose()?
        .unwrap_or(0);
    let out_of_range = || invalid("date", "the result is out of range");
    // Calendar units move in local time (so `days: 1` keeps 09:00 across a daylight saving change);
    // exact units are added afterwards.
    let shifted: DateTime<FixedOffset> = match zone {
        Some(zone) => calendar_shift(date.with_timezone(&zone), months, days)
            .ok_or_else(out_of_range)?
            .fixed_offset(),
        None => calendar_shift(date, months, days).ok_or_else(out_of_range)?,
    };
    let result = shifted.checked_add_signed(exact).ok_or_else(out_of_range)?;
    rfc3339(&result, zone)
}

fn calendar_shift<Z: TimeZone>(date: DateTime<Z>, months: i64, days: i64) -> Option<DateTime<Z>> {
    let months_abs = chrono::Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    let date = if months >= 0 {
        date.checked_add_months(months_abs)?
    } else {
        date.checked_sub_months(months_abs)?
    };
    let days_abs = chrono::Days::new(days.unsigned_abs());
    if days >= 0 {
        date.checked_add_days(days_abs)
    } else {
        date.checked_sub_days(days_abs)
    }
}

fn date_format(input: &Input, _: &PureContext<'_>) -> PureResult {
    let date = date_field(input, "date")?;
    let zone = zone_field(input)?;
    let format = optional_text(input, "format")?;
    format_datetime(&date, format.as_deref(), zone)
        .map(Value::String)
        .map_err(|err| invalid("format", err))
}

fn date_parse(input: &Input, _: &PureContext<'_>) -> PureResult {
    let source = text(input, "text")?;
    let zone = zone_field(input)?;
    let Some(format) = optional_text(input, "format")? else {
        let date = parse_datetime(&Value::String(source.trim().to_owned()))
            .map_err(|err| invalid("text", err))?;
        return rfc3339(&date, None);
    };
    let source = source.trim();
    let mismatch = |err: chrono::ParseError| {
        invalid(
            "text",
            format!("\"{source}\" does not match format `{format}`: {err}"),
        )
    };
    // A format with an offset (`%z`) gives the instant directly; without one, the text is local time
    // in `timezone` (UTC by default); a format without a time means midnight.
    if let Ok(date) = DateTime::parse_from_str(source, &format) {
        return rfc3339(&date, None);
    }
    let naive = match NaiveDateTime::parse_from_str(source, &format) {
        Ok(naive) => naive,
        Err(err) => match NaiveDate::parse_from_str(source, &format) {
            Ok(date) => date.and_time(chrono::NaiveTime::MIN),
            Err(_) => return Err(mismatch(err)),
        },
    };
    let date = match zone {
        Some(zone) => zone
            .from_local_datetime(&naive)
            .earliest()
            .ok_or_else(|| {
                invalid(
                    "text",
                    format!("\"{source}\" does not exist in {zone} (daylight saving gap)"),
                )
            })?
            .fixed_offset(),
        None => Utc.from_utc_datetime(&naive).fixed_offset(),
    };
    rfc3339(&date, None)
}

fn date_diff(input: &Input, _: &PureContext<'_>) -> PureResult {
    let from = date_field(input, "from")?;
    let to = date_field(input, "to")?;
    let unit = optional_text(input, "unit")?.unwrap_or(Cow::Borrowed("seconds"));
    let millis_per_unit: i64 = match unit.trim() {
        "milliseconds" | "ms" => 1,
        "seconds" | "s" => 1_000,
        "minutes" | "m" => 60_000,
        "hours" | "h" => 3_600_000,
        "days" | "d" => 86_400_000,
        "weeks" | "w" => 604_800_000,
        other => {
            return Err(invalid(
                "unit",
                format!(
                    "unknown unit `{other}`; expected milliseconds, seconds, minutes, hours, days or weeks"
                ),
            ));
        }
    };
    Ok(json!((to - from).num_milliseconds() / millis_per_unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cards::registry;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-30T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn eval(expr: &str, bindings: &[(&str, &Value)]) -> Result<Value, String> {
        let ctx = crate::template::with_bindings(
            &crate::template::to_value(&json!({ "vars": { "limit": 2 } })),
            bindings,
        );
        crate::template::eval_expression(expr, &ctx).map_err(|err| err.to_string())
    }

    /// Runs `card` with `input` through the registry; `expected` is the output or a fragment of the
    /// error message (`field \`x\`: ...`).
    fn check(card: &str, input: Value, expected: Result<Value, &str>) {
        let spec = registry::lookup(card).unwrap_or_else(|| panic!("no card {card}"));
        let CardKind::Pure(run) = spec.kind else {
            panic!("{card} is not pure")
        };
        let Value::Object(input) = input else {
            panic!("input must be an object")
        };
        let ctx = PureContext {
            now: now(),
            eval: &eval,
        };
        let got = run(&input, &ctx);
        match expected {
            Ok(value) => assert_eq!(got, Ok(value), "{card} {input:?}"),
            Err(fragment) => {
                let err = got.expect_err(&format!("{card} {input:?} should fail"));
                assert!(
                    matches!(err, CardError::InvalidInput { .. }),
                    "{card}: {err:?}"
                );
                assert!(
                    err.to_string().contains(fragment),
                    "{card}: `{err}` lacks `{fragment}`"
                );
            }
        }
    }

    #[test]
    fn every_function_card_is_documented() {
        for spec in CARDS {
            assert!(
                !spec.summary.is_empty() && !spec.output.is_empty(),
                "{}",
                spec.name
            );
            assert!(
                spec.fields.iter().all(|field| !field.doc.is_empty()),
                "{}",
                spec.name
            );
            assert!(matches!(spec.kind, CardKind::Pure(_)), "{}", spec.name);
        }
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

    #[test]
    fn list_cards() {
        let users = json!([
            { "id": 1, "status": "ACTIVE", "n": 3 },
            { "id": 2, "status": "SUSPENDED", "n": 1 },
            { "id": 3, "status": "ACTIVE", "n": 2 },
        ]);
        check(
            "list.filter",
            json!({ "list": users, "where": "item.status == 'ACTIVE'" }),
            Ok(json!([users[0], users[2]])),
        );
        check(
            "list.filter",
            json!({ "list": users, "where": "item.n >= vars.limit and index > 0" }),
            Ok(json!([users[2]])),
        );
        check(
            "list.filter",
            json!({ "list": users, "key": "status", "equals": "SUSPENDED" }),
            Ok(json!([users[1]])),
        );
        check(
            "list.filter",
            json!({ "list": [{ "on": true }, { "on": false }], "key": "on" }),
            Ok(json!([{ "on": true }])),
        );
        check(
            "list.filter",
            json!({ "list": users }),
            Err("field `where`: is required"),
        );
        check(
            "list.filter",
            json!({ "list": users, "where": "item.x.y ==" }),
            Err("field `where`: item 0: "),
        );
        check(
            "list.find",
            json!({ "list": users, "where": "item.id == 3" }),
            Ok(users[2].clone()),
        );
        check(
            "list.find",
            json!({ "list": users, "key": "id", "equals": 9 }),
            Ok(json!(null)),
        );
        check(
            "list.map",
            json!({ "list": users, "expression": "item.id * 10" }),
            Ok(json!([10, 20, 30])),
        );
        check(
            "list.map",
            json!({ "list": users, "key": "status" }),
            Ok(json!(["ACTIVE", "SUSPENDED", "ACTIVE"])),
        );
        check(
            "list.map",
            json!({ "list": users, "expression": "item.nope" }),
            Err("field `expression`: item 0: undefined value `item.nope`"),
        );
        check("list.length", json!({ "list": users }), Ok(json!(3)));
        check("list.first", json!({ "list": [] }), Ok(json!(null)));
        check("list.first", json!({ "list": [4, 5] }), Ok(json!(4)));
        check("list.last", json!({ "list": [4, 5] }), Ok(json!(5)));
        check(
            "list.sort",
            json!({ "list": [3, 1.5, "b", null, 2, "a", true] }),
            Ok(json!([null, true, 1.5, 2, 3, "a", "b"])),
        );
        check(
            "list.sort",
            json!({ "list": users, "key": "n", "descending": true }),
            Ok(json!([users[0], users[2], users[1]])),
        );
        check(
            "list.unique",
            json!({ "list": [1, 2, 1, "1", 2] }),
            Ok(json!([1, 2, "1"])),
        );
        check(
            "list.unique",
            json!({ "list": users, "key": "status" }),
            Ok(json!([users[0], users[1]])),
        );
        check(
            "list.contains",
            json!({ "list": [1, "a"], "value": "a" }),
            Ok(json!(true)),
        );
        check(
            "list.concat",
            json!({ "lists": [[1], null, [2, 3]] }),
            Ok(json!([1, 2, 3])),
        );
        check(
            "list.concat",
            json!({ "lists": [[1], 2] }),
            Err("field `lists[1]`: expected a list"),
        );
        check(
            "list.chunk",
            json!({ "list": [1, 2, 3, 4, 5], "size": 2 }),
            Ok(json!([[1, 2], [3, 4], [5]])),
        );
        check(
            "list.chunk",
            json!({ "list": [1], "size": 0 }),
            Err("field `size`: expected at least 1"),
        );
        check(
            "list.chunk",
            json!({ "list": [1], "size": "2" }),
            Err("field `size`: expected a whole number"),
        );
        check(
            "list.slice",
            json!({ "list": [1, 2, 3, 4], "start": 1, "end": -1 }),
            Ok(json!([2, 3])),
        );
        check(
            "list.slice",
            json!({ "list": [1, 2, 3], "start": -2 }),
            Ok(json!([2, 3])),
        );
        check(
            "list.slice",
            json!({ "list": [1, 2, 3], "start": 5 }),
            Ok(json!([])),
        );
    }

    #[test]
    fn date_cards() {
        check("date.now", json!({}), Ok(json!("2024-03-30T09:00:00Z")));
        check(
            "date.now",
            json!({ "timezone": "Europe/Paris" }),
            Ok(json!("2024-03-30T10:00:00+01:00")),
        );
        check(
            "date.now",
            json!({ "timezone": "Mars/Base" }),
            Err("field `timezone`: unknown time zone `Mars/Base`"),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "amount": "1h30m" }),
            Ok(json!("2024-03-30T10:30:00Z")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "amount": "-24h" }),
            Ok(json!("2024-03-29T09:00:00Z")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00+02:00", "hours": -1.5 }),
            Ok(json!("2024-03-30T07:30:00+02:00")),
        );
        check(
            "date.add",
            json!({ "date": "2024-01-31", "months": 1 }),
            Ok(json!("2024-02-29T00:00:00Z")),
        );
        // Paris moves to summer time on 2024-03-31: one calendar day later is still 10:00 local.
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "days": 1, "timezone": "Europe/Paris" }),
            Ok(json!("2024-03-31T10:00:00+02:00")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "days": -2, "minutes": 5 }),
            Ok(json!("2024-03-28T09:05:00Z")),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z" }),
            Err("field `amount`: is required"),
        );
        check(
            "date.add",
            json!({ "date": "2024-03-30T09:00:00Z", "amount": "soon" }),
            Err("field `amount`: expected a duration"),
        );
        check(
            "date.add",
            json!({ "date": "yesterday", "amount": "1h" }),
            Err("field `date`: expected a date such as"),
        );
        check(
            "date.add",
            json!({ "date": 0, "seconds": 61 }),
            Ok(json!("1970-01-01T00:01:01Z")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30T09:00:00Z", "format": "%d/%m/%Y %H:%M", "timezone": "America/New_York" }),
            Ok(json!("30/03/2024 05:00")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30T09:00:00.250Z" }),
            Ok(json!("2024-03-30T09:00:00.250Z")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30", "format": "%A %-d %B" }),
            Ok(json!("Saturday 30 March")),
        );
        check(
            "date.format",
            json!({ "date": "2024-03-30", "format": "%Q" }),
            Err("field `format`: invalid date format `%Q`"),
        );
        check(
            "date.parse",
            json!({ "text": "30/03/2024 14:05", "format": "%d/%m/%Y %H:%M" }),
            Ok(json!("2024-03-30T14:05:00Z")),
        );
        check(
            "date.parse",
            json!({ "text": "30/03/2024 14:05", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/Paris" }),
            Ok(json!("2024-03-30T14:05:00+01:00")),
        );
        check(
            "date.parse",
            json!({ "text": "30/03/2024", "format": "%d/%m/%Y" }),
            Ok(json!("2024-03-30T00:00:00Z")),
        );
        check(
            "date.parse",
            json!({ "text": "2024-03-30 14:05:00 +0200", "format": "%Y-%m-%d %H:%M:%S %z" }),
            Ok(json!("2024-03-30T14:05:00+02:00")),
        );
        check(
            "date.parse",
            json!({ "text": "Sat, 30 Mar 2024 09:00:00 GMT" }),
            Ok(json!("2024-03-30T09:00:00Z")),
        );
        check(
            "date.parse",
            json!({ "text": "2024-13-01", "format": "%Y-%m-%d" }),
            Err("does not match format"),
        );
        check(
            "date.diff",
            json!({ "from": "2024-03-01T00:00:00Z", "to": "2024-03-30T09:00:00Z", "unit": "days" }),
            Ok(json!(29)),
        );
        check(
            "date.diff",
            json!({ "from": "2024-03-30T09:00:00Z", "to": "2024-03-30T08:58:30Z", "unit": "minutes" }),
            Ok(json!(-1)),
        );
        check(
            "date.diff",
            json!({ "from": "2024-03-30T09:00:00Z", "to": "2024-03-30T09:00:01Z" }),
            Ok(json!(1)),
        );
        check(
            "date.diff",
            json!({ "from": 0, "to": 1, "unit": "fortnights" }),
            Err("field `unit`: unknown unit `fortnights`"),
        );
    }

    #[test]
    fn number_cards() {
        check("number.add", json!({ "a": 2, "b": 3 }), Ok(json!(5)));
        check("number.add", json!({ "a": 2, "b": 0.5 }), Ok(json!(2.5)));
        check(
            "number.add",
            json!({ "a": i64::MAX, "b": 1 }),
            Ok(json!(9.223372036854776e18)),
        );
        check(
            "number.add",
            json!({ "a": "2", "b": 3 }),
            Err("field `a`: expected a number, got text \"2\" (use number.parse"),
        );
        check(
            "number.add",
            json!({ "b": 3 }),
            Err("field `a`: is required"),
        );
        check("number.subtract", json!({ "a": 2, "b": 3 }), Ok(json!(-1)));
        check("number.multiply", json!({ "a": 4, "b": 3 }), Ok(json!(12)));
        check("number.divide", json!({ "a": 6, "b": 3 }), Ok(json!(2)));
        check("number.divide", json!({ "a": 7, "b": 2 }), Ok(json!(3.5)));
        check(
            "number.divide",
            json!({ "a": 7, "b": 0 }),
            Err("field `b`: cannot divide by zero"),
        );
        check(
            "number.divide",
            json!({ "a": 7, "b": 0.0 }),
            Err("field `b`: cannot divide by zero"),
        );
        check(
            "number.round",
            json!({ "value": 2.567, "places": 2 }),
            Ok(json!(2.57)),
        );
        check("number.round", json!({ "value": 2.5 }), Ok(json!(3)));
        check("number.round", json!({ "value": 7 }), Ok(json!(7)));
        check(
            "number.round",
            json!({ "value": 1.0, "places": 99 }),
            Err("field `places`: expected 0 to 15"),
        );
        check("number.parse", json!({ "text": " 42 " }), Ok(json!(42)));
        check("number.parse", json!({ "text": "-1.25" }), Ok(json!(-1.25)));
        check("number.parse", json!({ "text": 7 }), Ok(json!(7)));
        check(
            "number.parse",
            json!({ "text": "NaN" }),
            Err("field `text`: expected a number"),
        );
        check(
            "number.parse",
            json!({ "text": "12 apples" }),
            Err("field `text`: expected a number"),
        );
    }

    #[test]
    fn boolean_and_assign_cards() {
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
        check(
            "flow.assign",
            json!({ "total": 3, "name": "x" }),
            Ok(json!({ "total": 3, "name": "x" })),
        );
    }
}
