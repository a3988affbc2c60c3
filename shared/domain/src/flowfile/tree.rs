//! A YAML or JSON document as a tree that remembers where every node and every key starts.
//!
//! yaml-rust2's own `Yaml` type drops positions, and diagnostics must name line and column, so this
//! module builds its tree from the event parser. It also enforces what the flow format wants from
//! YAML: one document, no duplicate keys, text keys only, core-schema scalars (YAML 1.2, so `on` and
//! `yes` stay text), aliases expanded within a budget, no merge keys and no custom tags.

use std::collections::{BTreeMap, HashMap};

use yaml_rust2::Event;
use yaml_rust2::parser::{Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::model::Location;

/// Deeper nesting than this is refused: every later pass recurses over the tree, and no flow needs it.
pub(crate) const MAX_DEPTH: usize = 64;

/// Aliases may expand to at most this many nodes in total, so a "billion laughs" file stays small.
const MAX_ALIAS_NODES: usize = 10_000;

/// One node with its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) location: Location,
    pub(crate) value: NodeValue,
}

/// The value of a node. Scalars are already resolved to JSON types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    List(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping with its own position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_location: Location,
    pub(crate) value: Node,
}

/// A problem found while reading a document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TreeError {
    pub(crate) location: Location,
    pub(crate) path: String,
    pub(crate) message: String,
    /// The text is not valid YAML (or JSON) at all, as opposed to valid YAML the format refuses.
    pub(crate) syntax: bool,
}

impl Node {
    /// The node as plain JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        match &self.value {
            NodeValue::Null => serde_json::Value::Null,
            NodeValue::Bool(b) => serde_json::Value::Bool(*b),
            NodeValue::Number(n) => serde_json::Value::Number(n.clone()),
            NodeValue::String(s) => serde_json::Value::String(s.clone()),
            NodeValue::List(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            NodeValue::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Records the position of this node and every node below it, keyed by field path.
    pub(crate) fn collect_locations(&self, path: &str, out: &mut BTreeMap<String, Location>) {
        out.insert(path.to_owned(), self.location);
        match &self.value {
            NodeValue::List(items) => {
                for (index, item) in items.iter().enumerate() {
                    item.collect_locations(&index_path(path, index), out);
                }
            }
            NodeValue::Map(entries) => {
                for entry in entries {
                    entry
                        .value
                        .collect_locations(&key_path(path, &entry.key), out);
                }
            }
            _ => {}
        }
    }

    /// How the node reads in a message: `a list`, `the number 42`, `` the text `abc` ``.
    pub(crate) fn describe(&self) -> String {
        match &self.value {
            NodeValue::Null => "nothing (null)".into(),
            NodeValue::Bool(b) => format!("`{b}`"),
            NodeValue::Number(n) => format!("the number {n}"),
            NodeValue::String(s) => format!("`{}`", preview(s)),
            NodeValue::List(_) => "a list".into(),
            NodeValue::Map(_) => "a mapping".into(),
        }
    }

    /// Number of nodes in this subtree.
    fn size(&self) -> usize {
        1 + match &self.value {
            NodeValue::List(items) => items.iter().map(Node::size).sum(),
            NodeValue::Map(entries) => entries.iter().map(|e| e.value.size()).sum(),
            _ => 0,
        }
    }

    /// Nesting levels in this subtree (a scalar is 0).
    fn height(&self) -> usize {
        match &self.value {
            NodeValue::List(items) => 1 + items.iter().map(Node::height).max().unwrap_or(0),
            NodeValue::Map(entries) => {
                1 + entries.iter().map(|e| e.value.height()).max().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

/// Shortens long or multi-line text for a message.
pub(crate) fn preview(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or("");
    let mut out: String = first_line.chars().take(60).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// `parent.key`, or `key` at the root.
pub(crate) fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

fn location(mark: &Marker) -> Location {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Location {
        line: u32::try_from(mark.line()).unwrap_or(u32::MAX),
        column: u32::try_from(mark.col().saturating_add(1)).unwrap_or(u32::MAX),
    }
}

/// Moves a syntax error's position into the file. At the end of the text yaml-rust2 starts a line
/// that is not there (its scanner ends every stream with a line break), and serde_json counts the
/// column of a line break as 0; a diagnostic must point at a line and column of the file, so the
/// first becomes the end of the last line and the second column 1.
fn inside(source: &str, at: Location) -> Location {
    clamp(at, end_of(source))
}

/// The last line of a text (lines as YAML counts them: `\r\n`, `\r` and `\n` each end one; JSON
/// counts fewer lines, never more) and the column just past its end.
fn end_of(source: &str) -> Location {
    let mut line: u32 = 1;
    let mut width: u32 = 0;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if c == '\n' || c == '\r' {
            line = line.saturating_add(1);
            width = 0;
        } else {
            width = width.saturating_add(1);
        }
    }
    Location {
        line,
        column: width.saturating_add(1),
    }
}

fn clamp(at: Location, end: Location) -> Location {
    if at.line > end.line {
        return end;
    }
    Location {
        line: at.line.max(1),
        column: at.column.max(1),
    }
}

/// Parses YAML text into a tree. An empty document is a `Null` node at 1:1.
pub(crate) fn parse_yaml(source: &str) -> Result<Node, Vec<TreeError>> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    let mut documents = 0;
    // Nodes that start at the end of the text (an empty value) are placed there, not past it.
    let end = end_of(source);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(error) => {
                builder.errors.push(TreeError {
                    location: clamp(location(error.marker()), end),
                    path: String::new(),
                    message: format!("invalid YAML: {}", error.info()),
                    syntax: true,
                });
                break;
            }
        };
        let at = clamp(location(&mark), end);
        match event {
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    builder.refuse(
                        at,
                        "a file holds one YAML document; remove the second `---`".into(),
                    );
                    break;
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = match resolve_scalar(&text, style, tag.as_ref()) {
                    Ok(value) => Node {
                        location: at,
                        value,
                    },
                    Err(message) => {
                        builder.refuse(at, message);
                        Node {
                            location: at,
                            value: NodeValue::String(text.clone()),
                        }
                    }
                };
                let raw = (style == TScalarStyle::Plain).then_some(text);
                builder.complete(node, anchor, raw);
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(message) = collection_tag_error(tag.as_ref(), "seq") {
                    builder.refuse(at, message);
                }
                builder.frames.push(Frame::List {
                    location: at,
                    anchor,
                    items: Vec::new(),
                });
                if builder.frames.len() > MAX_DEPTH {
                    builder.refuse(at, format!("nested deeper than {MAX_DEPTH} levels"));
                    break;
                }
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(message) = collection_tag_error(tag.as_ref(), "map") {
                    builder.refuse(at, message);
                }
                builder.frames.push(Frame::Map {
                    location: at,
                    anchor,
                    entries: Vec::new(),
                    key: KeyState::Expect,
                });
                if builder.frames.len() > MAX_DEPTH {
                    builder.refuse(at, format!("nested deeper than {MAX_DEPTH} levels"));
                    break;
                }
            }
            Event::SequenceEnd | Event::MappingEnd => match builder.frames.pop() {
                Some(Frame::List {
                    location,
                    anchor,
                    items,
                }) => {
                    builder.complete(
                        Node {
                            location,
                            value: NodeValue::List(items),
                        },
                        anchor,
                        None,
                    );
                }
                Some(Frame::Map {
                    location,
                    anchor,
                    entries,
                    ..
                }) => {
                    builder.complete(
                        Node {
                            location,
                            value: NodeValue::Map(entries),
                        },
                        anchor,
                        None,
                    );
                }
                None => {}
            },
            Event::Alias(id) => {
                let Some(original) = builder.anchors.get(&id) else {
                    builder.refuse(at, "alias names no anchor".into());
                    break;
                };
                builder.alias_nodes = builder.alias_nodes.saturating_add(original.size());
                if builder.alias_nodes > MAX_ALIAS_NODES {
                    builder.refuse(
                        at,
                        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                    );
                    break;
                }
                if builder.frames.len() + original.height() > MAX_DEPTH {
                    builder.refuse(at, format!("nested deeper than {MAX_DEPTH} levels"));
                    break;
                }
                let mut copy = original.clone();
                copy.location = at;
                builder.complete(copy, 0, None);
            }
        }
    }
    if builder.errors.is_empty() {
        Ok(builder.root.unwrap_or(Node {
            location: Location { line: 1, column: 1 },
            value: NodeValue::Null,
        }))
    } else {
        Err(builder.errors)
    }
}

/// Parses JSON text. serde_json judges the syntax (its messages and positions are precise); the YAML
/// reader, which accepts JSON, then supplies positions. If the two ever disagree the serde_json value
/// wins and positions are dropped rather than wrong.
pub(crate) fn parse_json(source: &str) -> Result<Node, Vec<TreeError>> {
    let value: serde_json::Value = match serde_json::from_str(source) {
        Ok(value) => value,
        Err(error) => {
            let message = error.to_string();
            let message = match message.rfind(" at line ") {
                Some(cut) => message[..cut].to_owned(),
                None => message,
            };
            return Err(vec![TreeError {
                location: inside(
                    source,
                    Location {
                        line: u32::try_from(error.line()).unwrap_or(u32::MAX),
                        column: u32::try_from(error.column()).unwrap_or(u32::MAX),
                    },
                ),
                path: String::new(),
                message: format!("invalid JSON: {message}"),
                syntax: true,
            }]);
        }
    };
    // JSON allows tabs between tokens where YAML does not; a tab inside a JSON string must be escaped,
    // so swapping every tab for a space changes no value and keeps every column.
    let spaced = source.replace('\t', " ");
    match parse_yaml(&spaced) {
        Ok(node) if node.to_json() == value => Ok(node),
        Err(errors) if errors.iter().all(|e| !e.syntax) => Err(errors),
        _ => Ok(from_json(&value, 0)),
    }
}

/// A tree without positions, for the rare JSON the YAML reader reads differently.
fn from_json(value: &serde_json::Value, depth: usize) -> Node {
    let value = match value {
        serde_json::Value::Null => NodeValue::Null,
        serde_json::Value::Bool(b) => NodeValue::Bool(*b),
        serde_json::Value::Number(n) => NodeValue::Number(n.clone()),
        serde_json::Value::String(s) => NodeValue::String(s.clone()),
        // serde_json refuses nesting deeper than 128, so recursion is bounded; the depth guard keeps
        // the later passes within MAX_DEPTH all the same.
        _ if depth >= MAX_DEPTH => NodeValue::Null,
        serde_json::Value::Array(items) => {
            NodeValue::List(items.iter().map(|i| from_json(i, depth + 1)).collect())
        }
        serde_json::Value::Object(map) => NodeValue::Map(
            map.iter()
                .map(|(k, v)| Entry {
                    key: k.clone(),
                    key_location: Location::default(),
                    value: from_json(v, depth + 1),
                })
                .collect(),
        ),
    };
    Node {
        location: Location::default(),
        value,
    }
}

#[derive(Default)]
struct Builder {
    frames: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    errors: Vec<TreeError>,
    alias_nodes: usize,
}

enum Frame {
    List {
        location: Location,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        location: Location,
        anchor: usize,
        entries: Vec<Entry>,
        key: KeyState,
    },
}

enum KeyState {
    /// The next node is a key.
    Expect,
    /// The next node is the value of this key.
    Have(String, Location),
    /// The key was refused; drop the next node.
    Skip,
}

impl Builder {
    fn refuse(&mut self, location: Location, message: String) {
        let path = self.path();
        self.errors.push(TreeError {
            location,
            path,
            message,
            syntax: false,
        });
    }

    /// The field path of the node being built next.
    fn path(&self) -> String {
        let mut path = String::new();
        for frame in &self.frames {
            match frame {
                Frame::List { items, .. } => path = index_path(&path, items.len()),
                Frame::Map {
                    key: KeyState::Have(key, _),
                    ..
                } => path = key_path(&path, key),
                Frame::Map { .. } => {}
            }
        }
        path
    }

    /// Attaches a finished node to its parent. `raw` is the source text of a plain scalar (for keys).
    fn complete(&mut self, node: Node, anchor: usize, raw: Option<String>) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let path = self.path();
        match self.frames.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::List { items, .. }) => items.push(node),
            Some(Frame::Map {
                location,
                entries,
                key,
                ..
            }) => match std::mem::replace(key, KeyState::Expect) {
                KeyState::Expect => {
                    // A block mapping's start event points past its first key; the key is where it starts.
                    if entries.is_empty()
                        && (node.location.line, node.location.column)
                            < (location.line, location.column)
                    {
                        *location = node.location;
                    }
                    let text = match (&node.value, raw) {
                        (_, Some(raw)) if raw == "<<" => {
                            Err("merge keys (`<<`) are not supported; write the keys out".to_owned())
                        }
                        (NodeValue::String(s), _) => Ok(s.clone()),
                        (_, Some(raw)) => Ok(raw),
                        (NodeValue::Null, None) => Ok(String::new()),
                        (NodeValue::Bool(b), None) => Ok(b.to_string()),
                        (NodeValue::Number(n), None) => Ok(n.to_string()),
                        (NodeValue::Map(_), None) => Err(
                            "a key must be text; a value that starts with `{{` is read as a mapping, so quote templates: \"{{ ... }}\""
                                .to_owned(),
                        ),
                        (NodeValue::List(_), None) => Err("a key must be text, not a list".to_owned()),
                    };
                    match text {
                        Ok(text) => {
                            if let Some(first) = entries.iter().find(|e| e.key == text) {
                                let message = format!(
                                    "duplicate key `{text}` (first at line {})",
                                    first.key_location.line
                                );
                                *key = KeyState::Skip;
                                self.errors.push(TreeError {
                                    location: node.location,
                                    path: key_path(&path, &text),
                                    message,
                                    syntax: false,
                                });
                            } else {
                                *key = KeyState::Have(text, node.location);
                            }
                        }
                        Err(message) => {
                            *key = KeyState::Skip;
                            self.errors.push(TreeError {
                                location: node.location,
                                path,
                                message,
                                syntax: false,
                            });
                        }
                    }
                }
                KeyState::Have(text, key_location) => entries.push(Entry {
                    key: text,
                    key_location,
                    value: node,
                }),
                KeyState::Skip => {}
            },
        }
    }
}

const CORE_TAG: &str = "tag:yaml.org,2002:";

fn tag_name(tag: &Tag) -> String {
    if tag.handle == CORE_TAG {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn collection_tag_error(tag: Option<&Tag>, expected: &str) -> Option<String> {
    let tag = tag?;
    if tag.handle == CORE_TAG && tag.suffix == expected {
        None
    } else {
        Some(format!("unsupported tag `{}`", tag_name(tag)))
    }
}

/// Resolves a scalar with the YAML 1.2 core schema, plus the core tags (`!!str 42`).
fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<NodeValue, String> {
    if let Some(tag) = tag {
        if tag.handle != CORE_TAG {
            return Err(format!("unsupported tag `{}`", tag_name(tag)));
        }
        let resolved = resolve_plain(text);
        let ok = match tag.suffix.as_str() {
            "str" => return Ok(NodeValue::String(text.to_owned())),
            "null" => matches!(resolved, NodeValue::Null),
            "bool" => matches!(resolved, NodeValue::Bool(_)),
            "int" => matches!(&resolved, NodeValue::Number(n) if !n.is_f64()),
            "float" => matches!(resolved, NodeValue::Number(_)),
            other => return Err(format!("unsupported tag `!!{other}`")),
        };
        return if ok {
            Ok(resolved)
        } else {
            Err(format!(
                "`{}` is not a valid `!!{}`",
                preview(text),
                tag.suffix
            ))
        };
    }
    Ok(match style {
        TScalarStyle::Plain => resolve_plain(text),
        _ => NodeValue::String(text.to_owned()),
    })
}

fn resolve_plain(text: &str) -> NodeValue {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return NodeValue::Null,
        "true" | "True" | "TRUE" => return NodeValue::Bool(true),
        "false" | "False" | "FALSE" => return NodeValue::Bool(false),
        _ => {}
    }
    if let Some(number) = resolve_int(text) {
        return NodeValue::Number(number);
    }
    if is_float(text)
        && let Some(number) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
    {
        return NodeValue::Number(number);
    }
    NodeValue::String(text.to_owned())
}

fn resolve_int(text: &str) -> Option<serde_json::Number> {
    let (digits, radix) = if let Some(hex) = text.strip_prefix("0x") {
        (hex, 16)
    } else if let Some(octal) = text.strip_prefix("0o") {
        (octal, 8)
    } else {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Ok(n) = text.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = unsigned.parse::<u64>()
            && !text.starts_with('-')
        {
            return Some(n.into());
        }
        return text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64);
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok().map(Into::into)
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(cut) => (&body[..cut], Some(&body[cut + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
                && (!int.is_empty() || !frac.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|b| b.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(source: &str) -> Node {
        parse_yaml(source).unwrap_or_else(|e| panic!("{source:?}: {e:?}"))
    }

    #[test]
    fn resolves_core_schema_scalars() {
        let node = tree(
            "a: 1\nb: 1.5\nc: true\nd: ~\ne: on\nf: '1'\ng: 0x1f\nh: 10m\ni: 5xx\nj: !!str 7\nk: -3\n",
        );
        assert_eq!(
            node.to_json(),
            serde_json::json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": "on", "f": "1", "g": 31, "h": "10m", "i": "5xx", "j": "7", "k": -3})
        );
    }

    #[test]
    fn keeps_positions_of_nodes_and_keys() {
        let node = tree("name: a\ntrigger:\n  api: { auth: tokn }\nsteps:\n  - card: x\n");
        let mut locations = BTreeMap::new();
        node.collect_locations("", &mut locations);
        let at = |path: &str| locations.get(path).map(|l| (l.line, l.column));
        assert_eq!(at(""), Some((1, 1)));
        assert_eq!(at("trigger"), Some((3, 3)));
        assert_eq!(at("trigger.api"), Some((3, 8)));
        assert_eq!(at("trigger.api.auth"), Some((3, 16)));
        assert_eq!(at("steps[0]"), Some((5, 5)));
        assert_eq!(at("steps[0].card"), Some((5, 11)));
    }

    #[test]
    fn expands_aliases_within_budget() {
        let node = tree("a: &x { b: 1 }\nc: *x\n");
        assert_eq!(
            node.to_json(),
            serde_json::json!({"a": {"b": 1}, "c": {"b": 1}})
        );
        let bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n";
        let errors = parse_yaml(bomb).expect_err("bomb");
        assert!(errors[0].message.contains("aliases expand"), "{errors:?}");
    }

    #[test]
    fn refuses_what_the_format_does_not_allow() {
        let check = |source: &str, expected: &str| {
            let errors = parse_yaml(source).expect_err(source);
            let got: Vec<String> = errors
                .iter()
                .map(|e| {
                    format!(
                        "{}:{} {}: {}",
                        e.location.line, e.location.column, e.path, e.message
                    )
                })
                .collect();
            assert_eq!(got.join("\n"), expected, "{source}");
        };
        check(
            "a: 1\nb: 2\na: 3\n",
            "3:1 a: duplicate key `a` (first at line 1)",
        );
        check(
            "x:\n  y: {{ input.a }}\n",
            "2:7 x.y: a key must be text; a value that starts with `{{` is read as a mapping, so quote templates: \"{{ ... }}\"",
        );
        check(
            "a: 1\n---\nb: 2\n",
            "2:1 : a file holds one YAML document; remove the second `---`",
        );
        check(
            "base: &b { x: 1 }\nc:\n  <<: *b\n",
            "3:3 c: merge keys (`<<`) are not supported; write the keys out",
        );
        check("a: !custom 1\n", "1:12 a: unsupported tag `!custom`");
        check(
            "a: [1\n",
            "2:1 : invalid YAML: while parsing a flow sequence, expected ',' or ']'",
        );
    }

    #[test]
    fn json_matches_yaml_and_reports_syntax_position() {
        let node = parse_json("{\n\t\"a\": [1, \"x\"],\n\t\"b\": {\"c\": null}\n}").expect("json");
        assert_eq!(
            node.to_json(),
            serde_json::json!({"a": [1, "x"], "b": {"c": null}})
        );
        let mut locations = BTreeMap::new();
        node.collect_locations("", &mut locations);
        assert_eq!(
            locations.get("b.c").map(|l| (l.line, l.column)),
            Some((3, 13))
        );
        let errors = parse_json("{\n  \"a\": 1,\n}").expect_err("trailing comma");
        assert_eq!((errors[0].location.line, errors[0].location.column), (3, 1));
        assert_eq!(errors[0].message, "invalid JSON: trailing comma");
        let errors = parse_json("{\"a\": 1, \"a\": 2}").expect_err("duplicate");
        assert_eq!(errors[0].message, "duplicate key `a` (first at line 1)");
    }

    #[test]
    fn syntax_errors_at_the_end_of_the_text_point_inside_the_file() {
        // Found by fuzzing: yaml-rust2 reported an unclosed mapping at the end of a file without a
        // final newline on a line past the end, and serde_json put errors at column 0.
        let at = |errors: Vec<TreeError>| (errors[0].location.line, errors[0].location.column);
        assert_eq!(at(parse_yaml("a: 1\nb: {c: 2").expect_err("open")), (2, 9));
        assert_eq!(at(parse_yaml("a: 1\r\nb: [").expect_err("open")), (2, 5));
        assert_eq!(at(parse_json("").expect_err("empty")), (1, 1));
        assert_eq!(
            at(parse_json("{\"a\": \"x\ny\"}").expect_err("raw newline")),
            (2, 1)
        );
        // A key with no value at the very end sits at the end of the last line.
        let node = parse_yaml("? \0").expect("a mapping with an empty key");
        let mut locations = BTreeMap::new();
        node.collect_locations("", &mut locations);
        assert!(locations.values().all(|l| l.line == 1), "{locations:?}");
    }

    #[test]
    fn refuses_deep_nesting() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let errors = parse_yaml(&deep).expect_err("deep");
        assert!(errors[0].message.contains("nested deeper"), "{errors:?}");
    }
}
