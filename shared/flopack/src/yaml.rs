//! A small YAML writer for the files the importer produces.
//!
//! The importer builds flow files as text from its own model rather than through the core's
//! types, so this writer only needs the block style of YAML 1.2 that idflow's parser reads: mappings,
//! sequences, comments, double-quoted strings with JSON-style escapes, and literal blocks (`|`) for
//! multi-line text when that is unambiguous. Every string it cannot write plainly is quoted, so the
//! parser reads back exactly the value that was written (a property test checks this).

/// A YAML value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    Seq(Vec<Item>),
    Map(Vec<Entry>),
}

/// A sequence item with the comment lines written above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub comments: Vec<String>,
    pub value: Node,
}

/// A mapping entry with the comment lines written above it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub comments: Vec<String>,
    pub key: String,
    pub value: Node,
}

impl Entry {
    pub fn new(key: impl Into<String>, value: Node) -> Entry {
        Entry {
            comments: Vec::new(),
            key: key.into(),
            value,
        }
    }
}

impl Item {
    pub fn new(value: Node) -> Item {
        Item {
            comments: Vec::new(),
            value,
        }
    }
}

impl Node {
    /// A JSON value as a node (object keys keep their order).
    pub fn from_json(value: &serde_json::Value) -> Node {
        match value {
            serde_json::Value::Null => Node::Null,
            serde_json::Value::Bool(b) => Node::Bool(*b),
            serde_json::Value::Number(n) => Node::Number(n.clone()),
            serde_json::Value::String(s) => Node::Str(s.clone()),
            serde_json::Value::Array(items) => Node::Seq(
                items
                    .iter()
                    .map(|v| Item::new(Node::from_json(v)))
                    .collect(),
            ),
            serde_json::Value::Object(map) => Node::Map(
                map.iter()
                    .map(|(k, v)| Entry::new(k.clone(), Node::from_json(v)))
                    .collect(),
            ),
        }
    }

    fn is_collection(&self) -> bool {
        matches!(self, Node::Seq(items) if !items.is_empty())
            || matches!(self, Node::Map(entries) if !entries.is_empty())
    }
}

/// Writes a document whose top level is `root`, with `header` comment lines first.
pub fn document(header: &[String], root: &Node) -> String {
    let mut out = String::new();
    for line in header {
        comment(&mut out, 0, line);
    }
    match root {
        Node::Map(entries) if !entries.is_empty() => map_entries(&mut out, 0, entries),
        Node::Seq(items) if !items.is_empty() => seq_items(&mut out, 0, items),
        other => {
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
    out
}

fn comment(out: &mut String, indent: usize, text: &str) {
    for line in text.lines() {
        let line = sanitize_comment(line);
        push_indent(out, indent);
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    if text.is_empty() {
        push_indent(out, indent);
        out.push_str("#\n");
    }
}

/// Comment text keeps printable characters only, so nothing in it can end the comment early.
fn sanitize_comment(line: &str) -> String {
    line.chars()
        .map(|c| if needs_escape(c) || c == '\t' { ' ' } else { c })
        .collect()
}

fn push_indent(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push(' ');
    }
}

fn map_entries(out: &mut String, indent: usize, entries: &[Entry]) {
    for entry in entries {
        for line in &entry.comments {
            comment(out, indent, line);
        }
        push_indent(out, indent);
        out.push_str(&key(&entry.key));
        out.push(':');
        value_after_key(out, indent, &entry.value);
    }
}

fn seq_items(out: &mut String, indent: usize, items: &[Item]) {
    for item in items {
        for line in &item.comments {
            comment(out, indent, line);
        }
        // The first entry of a mapping item goes on the dash's line, so its comments go above.
        if let Node::Map(entries) = &item.value
            && let Some(first) = entries.first()
        {
            for line in &first.comments {
                comment(out, indent, line);
            }
        }
        push_indent(out, indent);
        out.push('-');
        match &item.value {
            Node::Map(entries) if !entries.is_empty() => {
                // The first entry goes on the dash's line, the others align under it.
                let mut entries = entries.clone();
                if let Some(first) = entries.first_mut() {
                    first.comments.clear();
                }
                let mut text = String::new();
                map_entries(&mut text, indent + 2, &entries);
                let trimmed = text.trim_start_matches(' ');
                out.push(' ');
                out.push_str(trimmed);
            }
            Node::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                seq_items(out, indent + 2, inner);
            }
            other => scalar_after_marker(out, indent + 2, other),
        }
    }
}

fn value_after_key(out: &mut String, indent: usize, value: &Node) {
    if value.is_collection() {
        out.push('\n');
        match value {
            Node::Map(entries) => map_entries(out, indent + 2, entries),
            Node::Seq(items) => seq_items(out, indent + 2, items),
            _ => {}
        }
    } else {
        scalar_after_marker(out, indent + 2, value);
    }
}

/// Writes a scalar after `key:` or `-`: inline, or as a literal block for multi-line text.
fn scalar_after_marker(out: &mut String, block_indent: usize, value: &Node) {
    if let Node::Str(text) = value
        && let Some(header) = literal_block_header(text)
    {
        out.push(' ');
        out.push_str(header);
        out.push('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        for line in body.split('\n') {
            if !line.is_empty() {
                push_indent(out, block_indent);
                out.push_str(line);
            }
            out.push('\n');
        }
        return;
    }
    out.push(' ');
    out.push_str(&inline(value));
    out.push('\n');
}

/// `|` or `|-` when `text` reads back unchanged from a literal block, else `None`.
fn literal_block_header(text: &str) -> Option<&'static str> {
    if !text.contains('\n') || text.starts_with([' ', '\n']) || text.ends_with("\n\n") {
        return None;
    }
    if text
        .chars()
        .any(|c| c != '\n' && (needs_escape(c) || c == '\t'))
    {
        return None;
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    // A line of only spaces would be read as part of the indentation, and lost.
    if body
        .split('\n')
        .any(|line| !line.is_empty() && line.trim().is_empty())
    {
        return None;
    }
    Some(if text.ends_with('\n') { "|" } else { "|-" })
}

/// A value written on one line: plain or flow style.
fn inline(value: &Node) -> String {
    match value {
        Node::Null => "null".into(),
        Node::Bool(b) => b.to_string(),
        Node::Number(n) => n.to_string(),
        Node::Str(text) => string(text),
        Node::Seq(items) => {
            let parts: Vec<String> = items.iter().map(|i| inline(&i.value)).collect();
            format!("[{}]", parts.join(", "))
        }
        Node::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|e| format!("{}: {}", key(&e.key), inline(&e.value)))
                .collect();
            if parts.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", parts.join(", "))
            }
        }
    }
}

/// A mapping key: plain when it is a simple word, else quoted.
fn key(text: &str) -> String {
    if is_plain(text) {
        text.to_owned()
    } else {
        quoted(text)
    }
}

/// A string value: plain when nothing in it could be read as something else, else quoted.
fn string(text: &str) -> String {
    if is_plain(text) {
        text.to_owned()
    } else {
        quoted(text)
    }
}

/// Words YAML parsers may read as booleans or null, in any case.
const RESERVED: &[&str] = &[
    "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
];

fn is_plain(text: &str) -> bool {
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !RESERVED.contains(&text.to_ascii_lowercase().as_str())
}

/// Characters a double-quoted string writes as escapes: controls and the characters some parsers
/// read as line breaks or byte order marks.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// A double-quoted string with JSON-style escapes (valid YAML 1.2).
pub fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Writes `value` and reads it back with idflow's own parser.
    fn round_trip(value: &serde_json::Value) -> serde_json::Value {
        let text = document(&["a comment".into()], &Node::from_json(value));
        match domain::flowfile::parse_document("x.yaml", &text) {
            Ok(document) => document.value,
            Err(errors) => panic!("{text}\n{errors:?}"),
        }
    }

    #[test]
    fn writes_what_the_parser_reads_back() {
        let value = json!({
            "name": "demo",
            "plain": "okta.read_user",
            "spaces": "Hello there",
            "reserved": ["true", "No", "null", "~", "on"],
            "numbers": [1, -2.5, "3", "0x10", "1e3"],
            "template": "{{ steps.user.profile.email }}",
            "multi": "line one\nline two\n",
            "multi_no_end": "a\nb",
            "indented": "  starts with spaces\nnext",
            "blank_line": "a\n  \nb",
            "quotes": "say \"hi\" \\ back",
            "controls": "tab\there\r\u{7f}\u{2028}\u{feff}",
            "colon": "a: b # not a comment",
            "empty": "",
            "nested": {"list": [{"a": 1, "b": [1, 2]}, [], {}], "map": {}},
            "weird key: #": {"-": null},
            "unicode": "café ✓ 日本",
        });
        assert_eq!(round_trip(&value), value);
    }

    #[test]
    fn multi_line_text_uses_literal_blocks() {
        let text = document(&[], &Node::from_json(&json!({ "text": "Hi\nthere\n" })));
        assert_eq!(text, "text: |\n  Hi\n  there\n");
        let text = document(&[], &Node::from_json(&json!({ "text": "a\n\nb" })));
        assert_eq!(text, "text: |-\n  a\n\n  b\n");
    }

    /// A small deterministic generator, so the property test needs no extra crate and repeats.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn random_text(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", " ", "\n", "\t", "\r", ":", "#", "-", "\"", "'", "\\", "{{", "}}", "|", ">",
            "&", "*", "!", "%", "@", "`", "é", "✓", "\u{2028}", "\u{85}", "\u{0}", "true", "null",
            "1", "0.5", "[", "]", "{", "}", ",", "?", "~",
        ];
        let len = rng.below(12);
        (0..len)
            .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
            .collect()
    }

    fn random_value(rng: &mut Rng, depth: u32) -> serde_json::Value {
        match rng.below(if depth > 3 { 4 } else { 6 }) {
            0 => serde_json::Value::Null,
            1 => json!(rng.below(2) == 1),
            2 => json!(rng.below(1000) as i64 - 500),
            3 => json!(random_text(rng)),
            4 => serde_json::Value::Array(
                (0..rng.below(4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..rng.below(4) {
                    map.insert(random_text(rng), random_value(rng, depth + 1));
                }
                serde_json::Value::Object(map)
            }
        }
    }

    #[test]
    fn any_value_reads_back_unchanged() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut map = serde_json::Map::new();
            map.insert("k".into(), random_value(&mut rng, 0));
            let value = serde_json::Value::Object(map);
            assert_eq!(round_trip(&value), value);
        }
    }
}
