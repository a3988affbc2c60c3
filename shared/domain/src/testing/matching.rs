//! Partial matching of JSON values, the diff a failed expectation prints, and which step a history
//! name refers to ([`base_step`]).
//!
//! Tests state only what they care about: an expected object matches any object that has at least
//! its keys with matching values, so `output: { status: 200 }` ignores the response headers. Lists
//! are matched item by item and must have the same length (a list is usually the point of the
//! check). Scalars must be equal, with numbers compared by value (`200` matches `200.0`) and no
//! conversion between types: the text `"200"` does not match the number `200`.

use serde_json::Value;

/// One difference between what a test expected and what the run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Where, as a path below the case's `expect` (`steps.probe.output.status`, `calls[0]`).
    pub path: String,
    /// What the test expected, when there is one value to show.
    pub expected: Option<Value>,
    /// What the run produced; `None` when it has nothing there.
    pub actual: Option<Value>,
    /// An explanation when a value pair says too little ("step did not run").
    pub note: Option<String>,
}

impl Mismatch {
    /// A difference between two values.
    pub fn values(path: &str, expected: &Value, actual: Option<&Value>) -> Mismatch {
        Mismatch {
            path: path.to_owned(),
            expected: Some(expected.clone()),
            actual: actual.cloned(),
            note: None,
        }
    }

    /// A difference described in words.
    pub fn note(path: &str, note: impl Into<String>) -> Mismatch {
        Mismatch {
            path: path.to_owned(),
            expected: None,
            actual: None,
            note: Some(note.into()),
        }
    }

    /// Adds an explanation.
    pub fn with_note(mut self, note: impl Into<String>) -> Mismatch {
        self.note = Some(note.into());
        self
    }

    /// The mismatch as indented lines: the path, then expected and actual values.
    pub fn render(&self, indent: &str) -> String {
        let mut out = format!("{indent}{}\n", display_path(&self.path));
        if let Some(note) = &self.note {
            for line in note.lines() {
                out.push_str(&format!("{indent}  {line}\n"));
            }
        }
        if let Some(expected) = &self.expected {
            out.push_str(&format!("{indent}  expected: {}\n", preview(expected)));
            let actual = match &self.actual {
                Some(actual) => {
                    let mut shown = preview(actual);
                    if shown == preview(expected) {
                        // Same text, different JSON types: say which.
                        shown.push_str(&format!(
                            " ({} here, {} expected)",
                            kind(actual),
                            kind(expected)
                        ));
                    }
                    shown
                }
                None => "(missing)".to_owned(),
            };
            out.push_str(&format!("{indent}  actual:   {actual}\n"));
        }
        out
    }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() {
        "(the whole value)"
    } else {
        path
    }
}

/// Whether `actual` matches `expected` in the partial sense of this module.
pub fn matches(expected: &Value, actual: &Value) -> bool {
    let mut out = Vec::new();
    diff(expected, actual, "", &mut out);
    out.is_empty()
}

/// Appends every place where `actual` does not match `expected`, named by `path` and the keys and
/// indices below it.
pub fn diff(expected: &Value, actual: &Value, path: &str, out: &mut Vec<Mismatch>) {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, want_value) in want {
                let key_path = join_key(path, key);
                match have.get(key) {
                    Some(have_value) => diff(want_value, have_value, &key_path, out),
                    None => out.push(Mismatch::values(&key_path, want_value, None)),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) if want.len() == have.len() => {
            for (index, (w, h)) in want.iter().zip(have).enumerate() {
                diff(w, h, &format!("{path}[{index}]"), out);
            }
        }
        (Value::Array(want), Value::Array(have)) => out.push(
            Mismatch::values(path, expected, Some(actual)).with_note(format!(
                "expected a list of {} item(s), got {}",
                want.len(),
                have.len()
            )),
        ),
        (Value::Number(want), Value::Number(have)) => {
            if !numbers_equal(want, have) {
                out.push(Mismatch::values(path, expected, Some(actual)));
            }
        }
        _ if expected == actual => {}
        _ => out.push(Mismatch::values(path, expected, Some(actual))),
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// `parent.key`, quoting keys that would make the path ambiguous (`headers["x.y"]`).
pub fn join_key(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let segment = if plain {
        key.to_owned()
    } else {
        format!("[{}]", Value::String(key.to_owned()))
    };
    match (parent.is_empty(), plain) {
        (true, true) => segment,
        (false, true) => format!("{parent}.{segment}"),
        (_, false) => format!("{parent}{segment}"),
    }
}

/// Compact JSON, cut to a readable length.
pub fn preview(value: &Value) -> String {
    const LIMIT: usize = 240;
    let text = value.to_string();
    if text.chars().count() <= LIMIT {
        return text;
    }
    let cut: String = text.chars().take(LIMIT).collect();
    format!("{cut}… ({} characters)", text.chars().count())
}

/// The JSON type of a value, in words.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The step a history name refers to: `each[2].call` → `call`, `digests[0]` (a helper run of a loop)
/// → `digests`, `s0[1].s0.steps.0` → `s0.steps.0`.
pub fn base_step(name: &str) -> &str {
    let tail = match name.rfind("].") {
        Some(cut) => &name[cut + 2..],
        None => name,
    };
    match tail
        .strip_suffix(']')
        .and_then(|t| t.rfind('[').map(|i| &t[..i]))
    {
        Some(stem) if !stem.is_empty() => stem,
        _ => tail,
    }
}
