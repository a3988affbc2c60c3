//! `text.*`: composing, splitting, replacing, casing, measuring, searching (plain and by regular
//! expression) and joining text.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::cards::fields::{Fields, With, invalid, text_of};
use crate::cards::spec::{CardError, CardSpec, FieldSpec, PureContext, PureResult};

/// The `text` field most text cards read (also read by `date.parse` and `number.parse`).
pub const TEXT: FieldSpec = FieldSpec::required(
    "text",
    "text",
    "the text (numbers and booleans are converted)",
);

/// The `pattern` field of the regular-expression cards.
const PATTERN: FieldSpec = FieldSpec::required(
    "pattern",
    "text",
    "a regular expression (Rust `regex` syntax: no look-around or back-references, so matching takes time linear in the text)",
);

/// The largest compiled program a pattern may make: enough for any pattern a person writes, far
/// below what a pathological one (`(a{1000}){1000}`) asks for.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The longest pattern accepted, in bytes.
const MAX_PATTERN_LEN: usize = 4096;
/// How deeply groups and repetitions may nest.
const REGEX_NEST_LIMIT: u32 = 64;

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
        "text.index_of",
        "Finds the first position of a text inside another",
        &[
            TEXT,
            FieldSpec::required("find", "text", "the text to look for"),
            FieldSpec::optional(
                "from",
                "integer",
                "the position to start looking at (default 0)",
            ),
        ],
        "the position in characters, 0 for the first; -1 when not found",
        text_index_of,
    ),
    CardSpec::pure(
        "text.last_index_of",
        "Finds the last position of a text inside another",
        &[
            TEXT,
            FieldSpec::required("find", "text", "the text to look for"),
            FieldSpec::optional(
                "from",
                "integer",
                "the right-most position a match may start at (default: the end)",
            ),
        ],
        "the position in characters, 0 for the first; -1 when not found",
        text_last_index_of,
    ),
    CardSpec::pure(
        "text.regex_match",
        "Searches a text with a regular expression",
        &[
            TEXT,
            PATTERN,
            FieldSpec::optional(
                "ignore_case",
                "boolean",
                "match letters in any case (default false)",
            ),
        ],
        "`{matched, match, groups, named, matches}`: whether it matched, the first match, its capture groups (a group that took no part is `null`), its named groups, and the text of every match",
        text_regex_match,
    ),
    CardSpec::pure(
        "text.regex_replace",
        "Replaces what a regular expression matches",
        &[
            TEXT,
            PATTERN,
            FieldSpec::required(
                "replace",
                "text",
                "what to put instead; `$1` or `${name}` insert a group, `$$` a dollar sign",
            ),
            FieldSpec::optional(
                "all",
                "boolean",
                "replace every match (default true), or only the first",
            ),
            FieldSpec::optional(
                "ignore_case",
                "boolean",
                "match letters in any case (default false)",
            ),
        ],
        "the new text",
        text_regex_replace,
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

/// The character position of byte offset `at` in `text`.
fn char_position(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |head| head.chars().count())
}

/// The byte offset of character position `position` in `text` (its length past the end).
fn byte_offset(text: &str, position: usize) -> usize {
    text.char_indices()
        .nth(position)
        .map_or(text.len(), |(at, _)| at)
}

/// The `from` field: absent, or a position that cannot be negative.
fn position_field(input: &Fields<'_>) -> Result<Option<usize>, CardError> {
    match input.optional_integer("from")? {
        None => Ok(None),
        Some(from) => usize::try_from(from)
            .map(Some)
            .map_err(|_| invalid("from", format!("must be 0 or more, got {from}"))),
    }
}

fn text_index_of(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.text("text")?;
    let find = input.text("find")?;
    let start = byte_offset(&source, position_field(&input)?.unwrap_or(0));
    let found = source
        .get(start..)
        .and_then(|tail| tail.find(find.as_ref()))
        .map(|at| char_position(&source, start + at));
    Ok(json!(
        found.map_or(-1, |p| i64::try_from(p).unwrap_or(i64::MAX))
    ))
}

fn text_last_index_of(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.text("text")?;
    let find = input.text("find")?;
    // A match may start at `from` at the latest, so it may end `find.len()` bytes after it.
    let end = match position_field(&input)? {
        None => source.len(),
        Some(from) => byte_offset(&source, from)
            .saturating_add(find.len())
            .min(source.len()),
    };
    let found = source
        .get(..end)
        .and_then(|head| head.rfind(find.as_ref()))
        .map(|at| char_position(&source, at));
    Ok(json!(
        found.map_or(-1, |p| i64::try_from(p).unwrap_or(i64::MAX))
    ))
}

/// Compiles the `pattern` field within the size, length and nesting limits, so caller data in a
/// pattern cannot make the engine build a huge program; matching itself is linear in the text.
fn pattern(input: &Fields<'_>) -> Result<regex::Regex, CardError> {
    let source = input.text("pattern")?;
    if source.len() > MAX_PATTERN_LEN {
        return Err(invalid(
            "pattern",
            format!("is longer than {MAX_PATTERN_LEN} bytes"),
        ));
    }
    let ignore_case = input.boolean_or("ignore_case", false)?;
    regex::RegexBuilder::new(&source)
        .case_insensitive(ignore_case)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(_) => invalid(
                "pattern",
                "is too large once compiled (repetition counts multiply); simplify it",
            ),
            other => invalid(
                "pattern",
                format!("is not a valid regular expression: {other}"),
            ),
        })
}

fn text_regex_match(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.text("text")?;
    let regex = pattern(&input)?;
    let matches: Vec<&str> = regex.find_iter(&source).map(|m| m.as_str()).collect();
    let Some(first) = regex.captures(&source) else {
        return Ok(json!({
            "matched": false,
            "match": null,
            "groups": [],
            "named": {},
            "matches": [],
        }));
    };
    let groups: Vec<Value> = first
        .iter()
        .skip(1)
        .map(|group| group.map_or(Value::Null, |g| json!(g.as_str())))
        .collect();
    let named: serde_json::Map<String, Value> = regex
        .capture_names()
        .flatten()
        .map(|name| {
            let value = first.name(name).map_or(Value::Null, |g| json!(g.as_str()));
            (name.to_owned(), value)
        })
        .collect();
    Ok(json!({
        "matched": true,
        "match": first.get(0).map(|m| m.as_str()),
        "groups": groups,
        "named": named,
        "matches": matches,
    }))
}

fn text_regex_replace(with: &With, _: &PureContext<'_>) -> PureResult {
    let input = Fields::strict(with);
    let source = input.text("text")?;
    let regex = pattern(&input)?;
    let replacement = input.text_or_empty("replace")?;
    let replaced = if input.boolean_or("all", true)? {
        regex.replace_all(&source, replacement.as_ref())
    } else {
        regex.replace(&source, replacement.as_ref())
    };
    Ok(json!(replaced))
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

    #[test]
    fn positions_count_characters_and_miss_as_minus_one() {
        check(
            "text.index_of",
            json!({ "text": "héllo wörld", "find": "o" }),
            Ok(json!(4)),
        );
        check(
            "text.index_of",
            json!({ "text": "héllo wörld", "find": "o", "from": 5 }),
            Ok(json!(-1)),
        );
        check(
            "text.index_of",
            json!({ "text": "a.b.c", "find": ".", "from": 2 }),
            Ok(json!(3)),
        );
        check(
            "text.index_of",
            json!({ "text": "abc", "find": "z" }),
            Ok(json!(-1)),
        );
        check(
            "text.index_of",
            json!({ "text": "abc", "find": "", "from": 9 }),
            Ok(json!(3)),
        );
        check(
            "text.index_of",
            json!({ "text": "abc", "find": "a", "from": -1 }),
            Err("field `from`: must be 0 or more, got -1"),
        );
        check(
            "text.last_index_of",
            json!({ "text": "Folder\\Sub\\Leaf", "find": "\\" }),
            Ok(json!(10)),
        );
        check(
            "text.last_index_of",
            json!({ "text": "a.b.c", "find": ".", "from": 2 }),
            Ok(json!(1)),
        );
        check(
            "text.last_index_of",
            json!({ "text": "a.b.c", "find": ".", "from": 3 }),
            Ok(json!(3)),
        );
        check(
            "text.last_index_of",
            json!({ "text": "ééé", "find": "é" }),
            Ok(json!(2)),
        );
        check(
            "text.last_index_of",
            json!({ "text": "abc", "find": "x" }),
            Ok(json!(-1)),
        );
    }

    #[test]
    fn regular_expressions_match_and_replace() {
        check(
            "text.regex_match",
            json!({ "text": "ada@example.com, bob@corp.io", "pattern": "(?P<user>[a-z]+)@([a-z.]+)" }),
            Ok(json!({
                "matched": true,
                "match": "ada@example.com",
                "groups": ["ada", "example.com"],
                "named": { "user": "ada" },
                "matches": ["ada@example.com", "bob@corp.io"],
            })),
        );
        check(
            "text.regex_match",
            json!({ "text": "ABC", "pattern": "b(x)?", "ignore_case": true }),
            Ok(json!({
                "matched": true,
                "match": "B",
                "groups": [null],
                "named": {},
                "matches": ["B"],
            })),
        );
        check(
            "text.regex_match",
            json!({ "text": "abc", "pattern": "\\d" }),
            Ok(
                json!({ "matched": false, "match": null, "groups": [], "named": {}, "matches": [] }),
            ),
        );
        check(
            "text.regex_replace",
            json!({ "text": "2024-03-30", "pattern": "(\\d+)-(\\d+)-(\\d+)", "replace": "$3/$2/$1" }),
            Ok(json!("30/03/2024")),
        );
        check(
            "text.regex_replace",
            json!({ "text": "a1b22c", "pattern": "\\d+", "replace": "#", "all": false }),
            Ok(json!("a#b22c")),
        );
        check(
            "text.regex_replace",
            json!({ "text": "a1b22c", "pattern": "\\d+", "replace": "" }),
            Ok(json!("abc")),
        );
        check(
            "text.regex_match",
            json!({ "text": "a", "pattern": "(" }),
            Err("field `pattern`: is not a valid regular expression"),
        );
        check(
            "text.regex_match",
            json!({ "text": "a", "pattern": "(?=a)" }),
            Err("field `pattern`: is not a valid regular expression"),
        );
    }

    #[test]
    fn a_pattern_that_would_compile_to_a_huge_program_is_refused() {
        // Repetition counts multiply: this asks for a program of about a billion states.
        check(
            "text.regex_match",
            json!({ "text": "a", "pattern": "((a{1000}){1000}){1000}" }),
            Err("field `pattern`: is too large once compiled"),
        );
        check(
            "text.regex_replace",
            json!({ "text": "a", "pattern": "a".repeat(5000), "replace": "" }),
            Err("field `pattern`: is longer than 4096 bytes"),
        );
        // The classic catastrophic-backtracking pattern is linear here: it answers at once.
        let text = format!("{}!", "a".repeat(10_000));
        check(
            "text.regex_match",
            json!({ "text": text, "pattern": "^(a+)+$" }),
            Ok(
                json!({ "matched": false, "match": null, "groups": [], "named": {}, "matches": [] }),
            ),
        );
    }
}
