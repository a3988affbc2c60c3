//! Small typed readers over the node tree shared by the flow and project decoders. Each reader reports
//! what it expected and returns `None` on a problem, so a decoder goes on and finds every error.

use std::time::Duration;

use super::tree::{Entry, Node, NodeValue, key_path, preview};
use crate::diag::Diagnostic;
use crate::model::{Location, SecretRef};

/// Collects the diagnostics of one file.
pub(crate) struct Ctx {
    pub(crate) file: String,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Ctx {
    pub(crate) fn new(file: &str) -> Ctx {
        Ctx {
            file: file.to_owned(),
            diagnostics: Vec::new(),
        }
    }

    /// Records one problem.
    pub(crate) fn error(&mut self, location: Location, path: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line: location.line,
            column: location.column,
            path: path.to_owned(),
            message: message.into(),
        });
    }

    /// Whether nothing has been reported yet.
    pub(crate) fn is_clean(&self) -> bool {
        self.diagnostics.is_empty()
    }
}

/// A mapping being decoded, with its path.
pub(crate) struct Fields<'n> {
    pub(crate) path: String,
    pub(crate) location: Location,
    pub(crate) entries: &'n [Entry],
}

impl<'n> Fields<'n> {
    /// The entry for `key`, even when its value is null.
    pub(crate) fn entry(&self, key: &str) -> Option<&'n Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value of `key`; an explicit null counts as absent.
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key)
            .map(|e| &e.value)
            .filter(|v| v.value != NodeValue::Null)
    }

    /// Whether `key` is written at all (even as null).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entry(key).is_some()
    }

    /// The path of a field of this mapping.
    pub(crate) fn path_of(&self, key: &str) -> String {
        key_path(&self.path, key)
    }

    /// The value of a required `key`, reporting it when missing or null.
    pub(crate) fn required(&self, ctx: &mut Ctx, key: &str, expected: &str) -> Option<&'n Node> {
        match self.entry(key) {
            None => {
                ctx.error(
                    self.location,
                    &self.path,
                    format!("missing required key `{key}` ({expected})"),
                );
                None
            }
            Some(entry) if entry.value.value == NodeValue::Null => {
                ctx.error(
                    entry.value.location,
                    &self.path_of(key),
                    format!("expected {expected}, got nothing"),
                );
                None
            }
            Some(entry) => Some(&entry.value),
        }
    }
}

/// Views `node` as a mapping and reports keys outside `allowed` (with a suggestion).
pub(crate) fn fields<'n>(
    ctx: &mut Ctx,
    node: &'n Node,
    path: &str,
    allowed: &[&str],
) -> Option<Fields<'n>> {
    let fields = mapping(ctx, node, path)?;
    for entry in fields.entries {
        if !allowed.contains(&entry.key.as_str()) {
            ctx.error(
                entry.key_location,
                &fields.path_of(&entry.key),
                unknown_key(&entry.key, allowed),
            );
        }
    }
    Some(fields)
}

/// Views `node` as a mapping without checking its keys.
pub(crate) fn mapping<'n>(ctx: &mut Ctx, node: &'n Node, path: &str) -> Option<Fields<'n>> {
    match &node.value {
        NodeValue::Map(entries) => Some(Fields {
            path: path.to_owned(),
            location: node.location,
            entries,
        }),
        _ => {
            ctx.error(
                node.location,
                path,
                format!("expected a mapping, got {}", node.describe()),
            );
            None
        }
    }
}

/// `unknown key `x`, expected one of a, b; did you mean `y`?`
pub(crate) fn unknown_key(key: &str, allowed: &[&str]) -> String {
    let mut message = format!(
        "unknown key `{}`, expected one of {}",
        preview(key),
        allowed.join(", ")
    );
    if let Some(close) = suggest(key, allowed.iter().copied()) {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    message
}

/// `expected one of a, b, got `x`; did you mean `y`?`
pub(crate) fn one_of_message(options: &[&str], got: &Node) -> String {
    let mut message = format!(
        "expected one of {}, got {}",
        options.join(", "),
        got.describe()
    );
    if let NodeValue::String(text) = &got.value
        && let Some(close) = suggest(text, options.iter().copied())
    {
        message.push_str(&format!("; did you mean `{close}`?"));
    }
    message
}

/// The closest candidate when it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Long values are not typos of short names, and the distance is quadratic.
    if word.is_empty() || word.chars().count() > 80 {
        return None;
    }
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        let distance = edit_distance(&word.to_lowercase(), &candidate.to_lowercase());
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// Levenshtein distance where swapping two neighbours counts as one edit.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Any text, possibly empty.
pub(crate) fn text(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    match &node.value {
        NodeValue::String(text) => Some(text.clone()),
        _ => {
            ctx.error(
                node.location,
                path,
                format!("expected text, got {}", node.describe()),
            );
            None
        }
    }
}

/// Text that is not empty or blank.
pub(crate) fn nonempty_text(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    let text = text(ctx, node, path)?;
    if text.trim().is_empty() {
        ctx.error(node.location, path, "expected text, got an empty value");
        return None;
    }
    Some(text)
}

/// Whether a string is a template (and so not type-checked before it renders): it holds an
/// expression `{{ ... }}` or a statement `{% ... %}`.
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// A template such as `"{{ input.active }}"`.
pub(crate) fn template(ctx: &mut Ctx, node: &Node, path: &str, example: &str) -> Option<String> {
    match &node.value {
        NodeValue::String(text) if is_template(text) => Some(text.clone()),
        _ => {
            ctx.error(
                node.location,
                path,
                format!(
                    "expected a template such as \"{example}\", got {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A byte size (`100MiB`, `10 MB`, or a number of bytes) within `min..=max`.
pub(crate) fn size(ctx: &mut Ctx, node: &Node, path: &str, min: u64, max: u64) -> Option<u64> {
    let parsed = match &node.value {
        NodeValue::String(text) => crate::budget::parse_size(text),
        NodeValue::Number(n) => n
            .as_u64()
            .filter(|bytes| *bytes > 0)
            .ok_or_else(|| format!("expected a size such as `100MiB`, got {}", node.describe())),
        _ => Err(format!(
            "expected a size such as `100MiB`, got {}",
            node.describe()
        )),
    };
    match parsed {
        Ok(bytes) if (min..=max).contains(&bytes) => Some(bytes),
        Ok(_) => {
            ctx.error(
                node.location,
                path,
                format!(
                    "expected a size from {} to {}, got {}",
                    crate::budget::format_size(min),
                    crate::budget::format_size(max),
                    node.describe()
                ),
            );
            None
        }
        Err(message) => {
            ctx.error(node.location, path, message);
            None
        }
    }
}

/// One of a fixed set of words.
pub(crate) fn choice<'o>(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    options: &[&'o str],
) -> Option<&'o str> {
    if let NodeValue::String(text) = &node.value
        && let Some(found) = options.iter().find(|o| **o == text.as_str())
    {
        return Some(found);
    }
    ctx.error(node.location, path, one_of_message(options, node));
    None
}

/// `true` or `false`.
pub(crate) fn boolean(ctx: &mut Ctx, node: &Node, path: &str) -> Option<bool> {
    match node.value {
        NodeValue::Bool(b) => Some(b),
        _ => {
            ctx.error(
                node.location,
                path,
                format!("expected true or false, got {}", node.describe()),
            );
            None
        }
    }
}

/// A whole number within `min..=max`.
pub(crate) fn integer(ctx: &mut Ctx, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
    let value = match &node.value {
        NodeValue::Number(n) => n.as_i64(),
        _ => None,
    };
    match value {
        Some(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            ctx.error(
                node.location,
                path,
                format!(
                    "expected a whole number from {min} to {max}, got {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A number within `min..=max`.
pub(crate) fn number(ctx: &mut Ctx, node: &Node, path: &str, min: f64, max: f64) -> Option<f64> {
    let value = match &node.value {
        NodeValue::Number(n) => n.as_f64(),
        _ => None,
    };
    match value {
        Some(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            ctx.error(
                node.location,
                path,
                format!(
                    "expected a number from {min} to {max}, got {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A duration (`30s`, `10m`, `1h30m`, or a bare number of seconds) within `min..=max`.
pub(crate) fn duration(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    min: Duration,
    max: Option<Duration>,
) -> Option<Duration> {
    let parsed = match &node.value {
        NodeValue::String(text) => crate::duration::parse(text),
        NodeValue::Number(n) => match n.as_u64() {
            Some(seconds) => Ok(Duration::from_secs(seconds)),
            None => Err(format!(
                "expected a duration such as `30s`, `10m` or `1h30m`, got {}",
                node.describe()
            )),
        },
        _ => Err(format!(
            "expected a duration such as `30s`, `10m` or `1h30m`, got {}",
            node.describe()
        )),
    };
    match parsed {
        Ok(value) if value < min || max.is_some_and(|max| value > max) => {
            let range = match max {
                Some(max) => format!(
                    "from {} to {}",
                    crate::duration::format(min),
                    crate::duration::format(max)
                ),
                None => format!("of at least {}", crate::duration::format(min)),
            };
            ctx.error(
                node.location,
                path,
                format!(
                    "expected a duration {range}, got `{}`",
                    crate::duration::format(value)
                ),
            );
            None
        }
        Ok(value) => Some(value),
        Err(message) => {
            ctx.error(node.location, path, message);
            None
        }
    }
}

/// A secret reference (`env:NAME`, `file:./path`, `aws-secretsmanager:name`), never a literal secret.
pub(crate) fn secret(ctx: &mut Ctx, node: &Node, path: &str) -> Option<SecretRef> {
    let parsed = match &node.value {
        NodeValue::String(text) => SecretRef::parse(text),
        // Never echo the value: it may be a pasted secret.
        _ => Err("expected a secret reference such as `env:NAME`, `file:./path` or `aws-secretsmanager:name`".into()),
    };
    match parsed {
        Ok(secret) => Some(secret),
        Err(message) => {
            ctx.error(node.location, path, message);
            None
        }
    }
}

/// A list.
pub(crate) fn list<'n>(
    ctx: &mut Ctx,
    node: &'n Node,
    path: &str,
    expected: &str,
) -> Option<&'n [Node]> {
    match &node.value {
        NodeValue::List(items) => Some(items),
        _ => {
            ctx.error(
                node.location,
                path,
                format!("expected {expected}, got {}", node.describe()),
            );
            None
        }
    }
}

/// Why `name` is not a valid flow name, if it is not.
pub(crate) fn flow_name_problem(name: &str) -> Option<String> {
    let shown = preview(name);
    if name.is_empty() {
        Some("a flow name cannot be empty".into())
    } else if name.len() > 64 {
        Some(format!("flow name `{shown}` is longer than 64 characters"))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some(format!(
            "invalid flow name `{shown}`: use lowercase letters, digits and `-` only"
        ))
    } else if name.starts_with('-') || name.ends_with('-') {
        Some(format!(
            "invalid flow name `{shown}`: it must start and end with a letter or digit"
        ))
    } else {
        None
    }
}

/// Why `name` is not an identifier (letters, digits, `_`, not starting with a digit), if it is not.
pub(crate) fn identifier_problem(name: &str, what: &str) -> Option<String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    (!valid).then(|| {
        format!(
            "invalid {what} `{}`: use letters, digits and `_` (not starting with a digit, at most 64 characters)",
            preview(name)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let check = |word: &str, expected: Option<&str>| {
            assert_eq!(
                suggest(word, ["token", "hmac", "jwt", "public"]),
                expected,
                "{word}"
            );
        };
        check("tokn", Some("token"));
        check("toekn", Some("token"));
        check("Token", Some("token"));
        check("hmca", Some("hmac"));
        check("basic", None);
        check("", None);
    }

    #[test]
    fn validates_names() {
        assert_eq!(flow_name_problem("badge-access"), None);
        assert_eq!(flow_name_problem("a1"), None);
        assert!(flow_name_problem("Badge").is_some());
        assert!(flow_name_problem("-a").is_some());
        assert!(flow_name_problem("a_b").is_some());
        assert_eq!(identifier_problem("requester_1", "id"), None);
        assert!(identifier_problem("1st", "id").is_some());
        assert!(identifier_problem("a-b", "id").is_some());
    }
}
