//! Paths into JSON values, as the object and list cards read them: keys separated by dots, list
//! positions in brackets (`profile.emails[0].value`, `labels["a.b"]`, `items[-1]`).

use serde_json::{Map, Value};

use crate::cards::fields::{Fields, describe};
use crate::cards::spec::CardError;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Key(String),
    /// Negative counts from the end.
    Index(i64),
}

/// Parses `a.b[0].c`, `labels["a.b"]`, `[0].name`, `items[-1]`. The empty path is the value itself.
pub fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
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

/// The value at `segments`, if there is one.
pub fn get_path<'a>(value: &'a Value, segments: &[Segment]) -> Option<&'a Value> {
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

/// Puts `value` at `segments` inside `target`, creating objects (and lists, for positions) where
/// there is `null`; `path` is the path as written, for errors.
pub fn set_path(
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

/// A path field; absent is the empty path (the value itself).
pub fn path_field(input: &Fields<'_>, field: &str) -> Result<Vec<Segment>, CardError> {
    parse_path(&input.text_or_empty(field)?).map_err(|err| input.invalid(field, err))
}

/// A path field that may be absent.
pub fn optional_path_field(
    input: &Fields<'_>,
    field: &str,
) -> Result<Option<Vec<Segment>>, CardError> {
    input
        .value(field)
        .map(|_| path_field(input, field))
        .transpose()
}
