//! Reading a card's rendered `with:` object: one typed reader for every card, pure or I/O, so every
//! card reports a field of the wrong shape the same way.
//!
//! Every error is a [`CardError::InvalidInput`] naming the field by its path (`auth.token`,
//! `attachments[0].filename`) with one wording: `is required` for a missing field, `expected <what>,
//! got <what was there>` for a value of the wrong kind.
//!
//! A reader has one of two modes:
//! - [`Fields::strict`], for the pure cards: a value must have its JSON kind, and empty text is a
//!   value (`text.split` with `separator: ""`). Their fields are usually single expressions, which
//!   keep their JSON type, so text where a number belongs is a mistake worth naming.
//! - [`Fields::lenient`], for the I/O cards: blank text (empty or only spaces) counts as absent, as a
//!   template over a `null` value renders to it, and text holding a whole number, a number or
//!   `true`/`false` reads as one, as fields written inside a text template (`"{{ vars.limit }}"`) arrive
//!   as text.
//!
//! Both modes read numbers and booleans as text where text is expected, and `null` as absent.

use std::borrow::Cow;

use chrono::{DateTime, FixedOffset};
use serde_json::{Map, Number, Value};

use super::spec::CardError;

/// A card's rendered `with:` object.
pub type With = Map<String, Value>;

/// An invalid-input error naming `field`.
pub fn invalid(field: &str, message: impl Into<String>) -> CardError {
    CardError::InvalidInput {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// `field`: expected `expected`, got what `value` is.
pub fn wrong(field: &str, expected: &str, value: &Value) -> CardError {
    invalid(
        field,
        format!("expected {expected}, got {}", describe(value)),
    )
}

/// What a value is, for error messages: `a list`, `text "abc"` (the first 40 characters).
pub fn describe(value: &Value) -> Cow<'static, str> {
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

/// A single value as text: text as it is, numbers and booleans written out. For the items of lists
/// and objects a card reads (`field` names the item, such as `query.a` or `keys[2]`).
pub fn text_of<'v>(value: &'v Value, field: &str) -> Result<Cow<'v, str>, CardError> {
    match value {
        Value::String(text) => Ok(Cow::Borrowed(text)),
        Value::Number(number) => Ok(Cow::Owned(number.to_string())),
        Value::Bool(b) => Ok(Cow::Owned(b.to_string())),
        other => Err(wrong(field, "text", other)),
    }
}

/// Declares, for each kind, the reader of a field that must be given and the reader of a field that
/// may be absent, both reading the value with the same function.
macro_rules! readers {
    ($(#[doc = $what:literal] $(#[doc = $more:literal])* $required:ident / $optional:ident: $read:ident -> $kind:ty;)*) => {
        $(
            #[doc = concat!($what, $($more,)* " that must be given.")]
            pub fn $required(&self, name: &str) -> Result<$kind, CardError> {
                self.must(name, Self::$read)
            }

            #[doc = concat!($what, $($more,)* " that may be absent.")]
            pub fn $optional(&self, name: &str) -> Result<Option<$kind>, CardError> {
                self.may(name, Self::$read)
            }
        )*
    };
}

/// Typed access to the fields of a card's `with:` object (or of an object inside it).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    map: &'a With,
    /// What field names are prefixed with in errors: empty at the top, `auth.` inside `auth`.
    prefix: String,
    lenient: bool,
}

impl<'a> Fields<'a> {
    /// The fields of a pure card: every value must have its JSON kind; empty text is a value.
    pub fn strict(map: &'a With) -> Fields<'a> {
        Fields {
            map,
            prefix: String::new(),
            lenient: false,
        }
    }

    /// The fields of an I/O card: blank text is absent; text holding a number or `true`/`false`
    /// reads as one.
    pub fn lenient(map: &'a With) -> Fields<'a> {
        Fields {
            map,
            prefix: String::new(),
            lenient: true,
        }
    }

    /// The lenient fields of an I/O card call's input, which must be an object.
    pub fn of_call(input: &'a Value) -> Result<Fields<'a>, CardError> {
        match input {
            Value::Object(map) => Ok(Fields::lenient(map)),
            other => Err(wrong("with", "an object", other)),
        }
    }

    /// The fields of `map`, an object found at `path` (such as `attachments[0]`), read in this
    /// reader's mode; errors name `path.field`.
    pub fn within(&self, map: &'a With, path: &str) -> Fields<'a> {
        Fields {
            map,
            prefix: format!("{path}."),
            lenient: self.lenient,
        }
    }

    /// The object itself, for fields read as they are (such as an opaque paging token).
    pub fn map(&self) -> &'a With {
        self.map
    }

    /// The path of `name` in errors (`auth.token` inside `auth`).
    pub fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// An invalid-input error naming `name` (with this reader's prefix).
    pub fn invalid(&self, name: &str, message: impl Into<String>) -> CardError {
        invalid(&self.path(name), message)
    }

    fn wrong(&self, name: &str, expected: &str, value: &Value) -> CardError {
        wrong(&self.path(name), expected, value)
    }

    /// A field of any kind, unless absent or `null`.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|value| !value.is_null())
    }

    /// A field of any kind that must be present and not `null`.
    pub fn required(&self, name: &str) -> Result<&'a Value, CardError> {
        self.value(name)
            .ok_or_else(|| self.invalid(name, "is required"))
    }

    /// A field to read as a typed value: like [`Fields::value`], and blank text is absent when lenient.
    fn typed(&self, name: &str) -> Option<&'a Value> {
        self.value(name).filter(|value| {
            !(self.lenient && matches!(value, Value::String(text) if text.trim().is_empty()))
        })
    }

    /// A field that must be given, read by `read`.
    fn must<T>(
        &self,
        name: &str,
        read: impl FnOnce(&Self, &str, &'a Value) -> Result<T, CardError>,
    ) -> Result<T, CardError> {
        match self.typed(name) {
            Some(value) => read(self, name, value),
            None => Err(self.invalid(name, "is required")),
        }
    }

    /// A field that may be absent, read by `read` when it is there.
    fn may<T>(
        &self,
        name: &str,
        read: impl FnOnce(&Self, &str, &'a Value) -> Result<T, CardError>,
    ) -> Result<Option<T>, CardError> {
        self.typed(name)
            .map(|value| read(self, name, value))
            .transpose()
    }

    fn text_of(&self, name: &str, value: &'a Value) -> Result<Cow<'a, str>, CardError> {
        text_of(value, &self.path(name))
    }

    readers! {
        /// Text (numbers and booleans are written out)
        text / optional_text: text_of -> Cow<'a, str>;
        /// A whole number (`2.0` counts; so does `"2"` when lenient)
        integer / optional_integer: integer_of -> i64;
        /// A number
        number / optional_number: number_of -> Number;
        /// An object
        object / optional_object: object_of -> &'a With;
        /// A list
        list / optional_list: list_of -> &'a [Value];
        /// A list of texts (errors name the item, `keys[2]`)
        texts / optional_texts: texts_of -> Vec<Cow<'a, str>>;
        /// A date (RFC 3339 such as `2024-05-01T08:30:00Z`, a plain date at midnight UTC, RFC 2822
        /// or Unix seconds)
        datetime / optional_datetime: datetime_of -> DateTime<FixedOffset>;
    }

    /// Text that may be absent, the empty text when it is.
    pub fn text_or_empty(&self, name: &str) -> Result<Cow<'a, str>, CardError> {
        Ok(self.optional_text(name)?.unwrap_or(Cow::Borrowed("")))
    }

    /// A boolean that may be absent.
    pub fn optional_boolean(&self, name: &str) -> Result<Option<bool>, CardError> {
        self.may(name, |fields, name, value| match value {
            Value::Bool(b) => Ok(*b),
            Value::String(text) if fields.lenient && text.trim() == "true" => Ok(true),
            Value::String(text) if fields.lenient && text.trim() == "false" => Ok(false),
            other => Err(fields.wrong(name, "true or false", other)),
        })
    }

    /// A boolean, `default` when absent.
    pub fn boolean_or(&self, name: &str, default: bool) -> Result<bool, CardError> {
        Ok(self.optional_boolean(name)?.unwrap_or(default))
    }

    fn integer_of(&self, name: &str, value: &Value) -> Result<i64, CardError> {
        match value {
            Value::Number(number) => {
                if let Some(int) = number.as_i64() {
                    return Ok(int);
                }
                match number.as_f64() {
                    Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => Ok(float as i64),
                    _ => Err(self.invalid(name, format!("expected a whole number, got {number}"))),
                }
            }
            Value::String(text) if self.lenient => text
                .trim()
                .parse()
                .map_err(|_| self.wrong(name, "a whole number", value)),
            other => Err(self.wrong(name, "a whole number", other)),
        }
    }

    fn number_of(&self, name: &str, value: &Value) -> Result<Number, CardError> {
        match value {
            Value::Number(number) => Ok(number.clone()),
            Value::String(text) if self.lenient => {
                let text = text.trim();
                text.parse::<i64>()
                    .ok()
                    .map(Number::from)
                    .or_else(|| text.parse::<f64>().ok().and_then(Number::from_f64))
                    .ok_or_else(|| self.wrong(name, "a number", value))
            }
            Value::String(_) => Err(self.invalid(
                name,
                format!(
                    "expected a number, got {} (use number.parse to read numbers from text)",
                    describe(value)
                ),
            )),
            other => Err(self.wrong(name, "a number", other)),
        }
    }

    fn object_of(&self, name: &str, value: &'a Value) -> Result<&'a With, CardError> {
        match value {
            Value::Object(map) => Ok(map),
            other => Err(self.wrong(name, "an object", other)),
        }
    }

    /// An object that may be absent, as fields read in this mode whose errors name `name.field`.
    pub fn nested(&self, name: &str) -> Result<Option<Fields<'a>>, CardError> {
        Ok(self
            .optional_object(name)?
            .map(|map| self.within(map, &self.path(name))))
    }

    fn list_of(&self, name: &str, value: &'a Value) -> Result<&'a [Value], CardError> {
        match value {
            Value::Array(items) => Ok(items),
            other => Err(self.wrong(name, "a list", other)),
        }
    }

    fn texts_of(&self, name: &str, value: &'a Value) -> Result<Vec<Cow<'a, str>>, CardError> {
        self.list_of(name, value)?
            .iter()
            .enumerate()
            .map(|(index, item)| text_of(item, &format!("{}[{index}]", self.path(name))))
            .collect()
    }

    /// An object of texts, or of lists of texts, that may be absent, as name and value pairs in order
    /// (a query string, say): `{ a: [1, 2], b: x }` gives `a=1`, `a=2`, `b=x`. `null` values and
    /// items are left out.
    pub fn optional_pairs(&self, name: &str) -> Result<Option<Vec<(String, String)>>, CardError> {
        self.may(name, |fields, name, value| {
            let mut pairs = Vec::new();
            for (key, value) in fields.object_of(name, value)? {
                let field = format!("{}.{key}", fields.path(name));
                let items = match value {
                    Value::Array(items) => items.as_slice(),
                    single => std::slice::from_ref(single),
                };
                for item in items.iter().filter(|item| !item.is_null()) {
                    pairs.push((key.clone(), text_of(item, &field)?.into_owned()));
                }
            }
            Ok(pairs)
        })
    }

    fn datetime_of(&self, name: &str, value: &Value) -> Result<DateTime<FixedOffset>, CardError> {
        crate::datetime::parse_datetime(value).map_err(|err| self.invalid(name, err))
    }

    /// A signed duration that may be absent: `90m`, `1h30m`, `-24h`, or a number of seconds.
    pub fn optional_duration(&self, name: &str) -> Result<Option<chrono::Duration>, CardError> {
        self.may(name, |fields, name, value| {
            signed_duration(&fields.text_of(name, value)?).map_err(|err| fields.invalid(name, err))
        })
    }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn with(value: Value) -> With {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// The message of an invalid-input error as users see it, prefixed by its field.
    fn said<T: std::fmt::Debug>(result: Result<T, CardError>) -> String {
        match result {
            Err(error @ CardError::InvalidInput { .. }) => error.to_string(),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    /// Compares each error message with the one users must see.
    fn check(cases: Vec<(String, &str)>) {
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn missing_and_wrong_kinds_are_named_the_same_way_in_both_modes() {
        let map = with(json!({ "n": null, "l": [{}], "o": {}, "t": "abc", "b": true }));
        for fields in [Fields::strict(&map), Fields::lenient(&map)] {
            check(vec![
                (said(fields.text("n")), "field `n`: is required"),
                (said(fields.text("x")), "field `x`: is required"),
                (
                    said(fields.text("l")),
                    "field `l`: expected text, got a list",
                ),
                (
                    said(fields.list("o")),
                    "field `o`: expected a list, got an object",
                ),
                (
                    said(fields.object("l")),
                    "field `l`: expected an object, got a list",
                ),
                (
                    said(fields.texts("l")),
                    "field `l[0]`: expected text, got an object",
                ),
                (
                    said(fields.optional_boolean("o")),
                    "field `o`: expected true or false, got an object",
                ),
                (
                    said(fields.integer("t")),
                    "field `t`: expected a whole number, got text \"abc\"",
                ),
            ]);
            assert_eq!(fields.text("b").unwrap(), "true");
            assert_eq!(fields.optional_text("n").unwrap(), None);
        }
    }

    #[test]
    fn strict_fields_keep_empty_text_and_refuse_numbers_written_as_text() {
        let map = with(json!({ "empty": "", "n": "2", "b": "true", "f": 2.5 }));
        let fields = Fields::strict(&map);
        assert_eq!(fields.text("empty").unwrap(), "");
        check(vec![
            (
                said(fields.integer("n")),
                "field `n`: expected a whole number, got text \"2\"",
            ),
            (
                said(fields.number("n")),
                "field `n`: expected a number, got text \"2\" (use number.parse to read numbers from text)",
            ),
            (
                said(fields.optional_boolean("b")),
                "field `b`: expected true or false, got text \"true\"",
            ),
            (
                said(fields.integer("f")),
                "field `f`: expected a whole number, got 2.5",
            ),
        ]);
    }

    #[test]
    fn lenient_fields_treat_blank_text_as_absent_and_read_text_values() {
        let map = with(json!({
            "blank": "  ", "n": " 12 ", "x": "1.5", "yes": "true", "no": "false", "maybe": "maybe",
            "when": "2025-01-01T02:00:00+01:00", "unix": 1735693200
        }));
        let fields = Fields::lenient(&map);
        check(vec![
            (said(fields.text("blank")), "field `blank`: is required"),
            (
                said(fields.optional_boolean("maybe")),
                "field `maybe`: expected true or false, got text \"maybe\"",
            ),
        ]);
        assert_eq!(fields.optional_integer("blank").unwrap(), None);
        assert_eq!(fields.optional_object("blank").unwrap(), None);
        assert_eq!(fields.value("blank"), Some(&json!("  ")), "raw values stay");
        assert_eq!(fields.integer("n").unwrap(), 12);
        assert_eq!(fields.number("x").unwrap().as_f64(), Some(1.5));
        assert_eq!(fields.optional_boolean("yes").unwrap(), Some(true));
        assert!(!fields.boolean_or("no", true).unwrap());
        assert_eq!(
            fields.datetime("when").unwrap().to_utc(),
            fields.datetime("unix").unwrap().to_utc()
        );
    }

    #[test]
    fn nested_fields_and_pairs_name_the_whole_path() {
        let map = with(json!({
            "auth": { "type": "bearer", "token": ["x"] },
            "query": { "a": [1, null, true], "b": null, "c": "x", "d": { "no": 1 } },
        }));
        let fields = Fields::lenient(&map);
        let auth = fields.nested("auth").unwrap().expect("auth is given");
        assert_eq!(auth.text("type").unwrap(), "bearer");
        assert!(fields.nested("absent").unwrap().is_none());
        check(vec![
            (
                said(auth.text("token")),
                "field `auth.token`: expected text, got a list",
            ),
            (said(auth.text("scope")), "field `auth.scope`: is required"),
            (
                said(fields.optional_pairs("query")),
                "field `query.d`: expected text, got an object",
            ),
            (
                said(Fields::of_call(&json!([1]))),
                "field `with`: expected an object, got a list",
            ),
        ]);
        let map = with(json!({ "query": { "a": [1, null, true], "b": null, "c": "x" } }));
        let pairs: Vec<(String, String)> = [("a", "1"), ("a", "true"), ("c", "x")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .to_vec();
        assert_eq!(
            Fields::lenient(&map).optional_pairs("query").unwrap(),
            Some(pairs)
        );
    }

    #[test]
    fn durations_are_signed() {
        let map = with(json!({ "back": "-24h", "on": "+90m", "bad": "soon" }));
        let fields = Fields::strict(&map);
        assert_eq!(
            fields.optional_duration("back").unwrap(),
            Some(chrono::Duration::hours(-24))
        );
        assert_eq!(
            fields.optional_duration("on").unwrap(),
            Some(chrono::Duration::minutes(90))
        );
        assert!(
            said(fields.optional_duration("bad")).starts_with("field `bad`: expected a duration")
        );
        assert_eq!(fields.optional_duration("absent").unwrap(), None);
    }
}
