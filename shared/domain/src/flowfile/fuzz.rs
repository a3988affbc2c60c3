//! Fuzz targets of the flow parser (see [`crate::fuzzing`] for the short and long modes).
//!
//! Inputs are arbitrary text, text made of YAML/JSON/Jinja fragments, and — most of the cases —
//! the repository's example flows and project files mutated as a hurried author or an attacker
//! would: keys dropped or renamed, values of the wrong type, deep nesting, huge and unicode strings,
//! anchors and aliases, byte order marks, then written as block YAML, JSON, or JSON read as YAML.
//!
//! Properties: parsing never panics; every problem is a [`Diagnostic`] of the file it names, at a line
//! and column inside that file (0:0 only for whole-file problems); every flow that loads compiles
//! with [`CompiledFlow::new`].
//!
//! Long sessions: `IDFLOW_FUZZ_SECS=600 cargo test -p shared --lib fuzz_flow_ -- --test-threads 1 --nocapture`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

use super::*;
use crate::engine::CompiledFlow;
use crate::fuzzing::{fuzz, hostile_text, json_value, unicode_text};

/// The repository's example flows and project files: real, valid inputs to start mutating from.
const FLOW_SEEDS: &[(&str, &str)] = &[
    (
        "badge-access.yaml",
        include_str!("../../../../examples/flows/badge-access.yaml"),
    ),
    (
        "breached-password.yaml",
        include_str!("../../../../examples/flows/breached-password.yaml"),
    ),
    (
        "check-endpoint.yaml",
        include_str!("../../../../examples/flows/check-endpoint.yaml"),
    ),
    (
        "daily-digest.yaml",
        include_str!("../../../../examples/flows/daily-digest.yaml"),
    ),
    (
        "failed-logins.yaml",
        include_str!("../../../../examples/flows/failed-logins.yaml"),
    ),
    (
        "greet.yaml",
        include_str!("../../../../examples/flows/greet.yaml"),
    ),
    (
        "hello.yaml",
        include_str!("../../../../examples/flows/hello.yaml"),
    ),
    (
        "is-member-of-group.yaml",
        include_str!("../../../../examples/flows/is-member-of-group.yaml"),
    ),
    (
        "no-code-builders.yaml",
        include_str!("../../../../examples/flows/no-code-builders.yaml"),
    ),
    (
        "request-enrichment.yaml",
        include_str!("../../../../examples/flows/request-enrichment.yaml"),
    ),
    (
        "signup-webhook.yaml",
        include_str!("../../../../examples/flows/signup-webhook.yaml"),
    ),
    (
        "team-digest.yaml",
        include_str!("../../../../examples/flows/team-digest.yaml"),
    ),
    (
        "user-activated-slack.yaml",
        include_str!("../../../../examples/flows/user-activated-slack.yaml"),
    ),
    ("control.yaml", CONTROL_FLOW),
];

/// Control constructs the examples use little of: branches, loops, try/catch, waits, helpers.
const CONTROL_FLOW: &str = r#"
name: control
trigger: { api: { auth: public, respond: sync, timeout: 5s } }
history: all
timeout: 1m
steps:
  - id: first
    card: text.compose
    with: { text: "hi {{ input.body.name | default('you') }}" }
  - if: "{{ input.body.n > 2 }}"
    then:
      - id: big
        card: number.add
        with: { a: "{{ input.body.n }}", b: 1 }
    else:
      - card: flow.fail
        with: { message: "too small: {{ input.body.n }}" }
  - id: each
    for_each: "{{ input.body.items }}"
    as: item
    steps:
      - id: up
        card: text.upper
        with: { text: "{{ item }}" }
  - id: guarded
    try:
      - id: call
        card: http.request
        retry: { max: 2, backoff: 1s, on: [5xx, timeout] }
        timeout: 10s
        with: { url: "https://example.com/{{ input.body.name | urlencode }}", method: GET }
    catch:
      - card: text.compose
        with: { text: "failed: {{ error.message }}" }
  - id: pause
    wait: 5m
  - id: picked
    card: list.filter
    with: { list: "{{ input.body.items }}", where: "item != 'x'" }
  - card: flow.return
    with: { status: 200, body: { first: "{{ steps.first }}", picked: "{{ steps.picked }}" } }
"#;

const PROJECT_SEED: &str = include_str!("../../../../examples/flows/idflow.yaml");
const TABLE_SEEDS: &[(&str, &str)] = &[
    (
        "tables/failed-logins.yaml",
        include_str!("../../../../examples/flows/tables/failed-logins.yaml"),
    ),
    (
        "tables/settings.yaml",
        include_str!("../../../../examples/flows/tables/settings.yaml"),
    ),
];

/// How the parser is asked to read a case.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// Block YAML, as people write flows.
    Yaml,
    /// JSON in a `.json` file.
    Json,
    /// JSON text in a `.yaml` file (YAML's flow style).
    JsonAsYaml,
}

/// One edit of a document tree, applied at the node `at` (an index into a pre-order walk).
#[derive(Debug, Clone)]
enum Mutation {
    DropKey { at: usize, key: usize },
    RenameKey { at: usize, key: usize, to: String },
    Replace { at: usize, with: Value },
    WrongType { at: usize, kind: u8 },
    Nest { at: usize, levels: usize },
    Huge { at: usize, bytes: usize, fill: char },
    Text { at: usize, text: String },
    Template { at: usize, template: &'static str },
    Duplicate { at: usize },
}

const TEMPLATES: &[&str] = &[
    "{{ input.body.x }}",
    "{{ secret('okta-api-token') }}",
    "Basic {{ ('svc:' ~ secret('x')) | b64encode }}",
    "{{ ",
    "{% for x in y %}",
    "{% include 'other' %}",
    "{{ steps.nope.deeper }}",
    "{{ 1 / 0 }}",
    "{{ range(100000) | list }}",
    "{# comment #}",
    "{% raw %}{{ x }}{% endraw %}",
    "{{ secret(input.name) }}",
    "{{ {'a': '}}'} }}",
    "{{ now() }}",
    "{{ '' ~ ('x' * 99999999) }}",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0usize..400;
    prop_oneof![
        3 => (at.clone(), 0usize..8).prop_map(|(at, key)| Mutation::DropKey { at, key }),
        3 => (at.clone(), 0usize..8, prop_oneof!["[a-z_]{0,10}", unicode_text(4), Just("<<".to_owned())])
            .prop_map(|(at, key, to)| Mutation::RenameKey { at, key, to }),
        2 => (at.clone(), json_value(3)).prop_map(|(at, with)| Mutation::Replace { at, with }),
        3 => (at.clone(), any::<u8>()).prop_map(|(at, kind)| Mutation::WrongType { at, kind }),
        1 => (at.clone(), prop_oneof![1usize..8, 60usize..70, 120usize..140])
            .prop_map(|(at, levels)| Mutation::Nest { at, levels }),
        1 => (at.clone(), prop_oneof![1usize..200, 4096usize..70_000], any::<char>())
            .prop_map(|(at, bytes, fill)| Mutation::Huge { at, bytes, fill }),
        2 => (at.clone(), unicode_text(12)).prop_map(|(at, text)| Mutation::Text { at, text }),
        2 => (at.clone(), proptest::sample::select(TEMPLATES))
            .prop_map(|(at, template)| Mutation::Template { at, template }),
        1 => at.prop_map(|at| Mutation::Duplicate { at }),
    ]
}

/// Text edits made after the tree is written, for what a tree cannot express.
#[derive(Debug, Clone)]
enum TextEdit {
    Insert { at: usize, text: String },
    Delete { at: usize, len: usize },
    DuplicateLine { line: usize },
    Bom,
    Crlf,
    Tabs,
}

fn text_edit() -> impl Strategy<Value = TextEdit> {
    prop_oneof![
        3 => (any::<usize>(), hostile_text(6)).prop_map(|(at, text)| TextEdit::Insert { at, text }),
        2 => (any::<usize>(), 1usize..12).prop_map(|(at, len)| TextEdit::Delete { at, len }),
        1 => any::<usize>().prop_map(|line| TextEdit::DuplicateLine { line }),
        1 => Just(TextEdit::Bom),
        1 => Just(TextEdit::Crlf),
        1 => Just(TextEdit::Tabs),
    ]
}

/// A seed document, mutated, written in a format, with anchors/aliases and text edits.
#[derive(Debug, Clone)]
struct MutatedCase {
    seed: usize,
    mutations: Vec<Mutation>,
    format: Format,
    /// Drives where anchors and aliases go when writing block YAML.
    aliasing: Vec<u8>,
    edits: Vec<TextEdit>,
}

fn mutated_case(seeds: usize) -> impl Strategy<Value = MutatedCase> {
    (
        0..seeds,
        proptest::collection::vec(mutation(), 0..5),
        prop_oneof![
            6 => Just(Format::Yaml),
            2 => Just(Format::Json),
            1 => Just(Format::JsonAsYaml),
        ],
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::collection::vec(any::<u8>(), 0..64),
        ],
        prop_oneof![
            3 => Just(Vec::new()),
            1 => proptest::collection::vec(text_edit(), 1..4),
        ],
    )
        .prop_map(|(seed, mutations, format, aliasing, edits)| MutatedCase {
            seed,
            mutations,
            format,
            aliasing,
            edits,
        })
}

impl MutatedCase {
    /// The file label and text of the case, from `seeds` (label, source).
    fn render(&self, seeds: &[(&str, &str)]) -> (String, String) {
        let (label, source) = seeds[self.seed % seeds.len()];
        let mut value = parse_document(label, source)
            .unwrap_or_else(|errors| panic!("seed {label} does not parse: {errors:?}"))
            .value;
        for mutation in &self.mutations {
            apply(&mut value, mutation);
        }
        let stem = label.rsplit_once('.').map_or(label, |(stem, _)| stem);
        let (label, mut text) = match self.format {
            Format::Yaml => {
                let mut writer = YamlWriter {
                    out: String::new(),
                    choices: self.aliasing.iter().copied().cycle().take(4096).collect(),
                    next: 0,
                    anchors: Vec::new(),
                };
                writer.node(&value, 0);
                (format!("{stem}.yaml"), writer.out)
            }
            Format::Json => (
                format!("{stem}.json"),
                serde_json::to_string_pretty(&value).unwrap_or_default(),
            ),
            Format::JsonAsYaml => (format!("{stem}.yaml"), value.to_string()),
        };
        for edit in &self.edits {
            edit_text(&mut text, edit);
        }
        (label, text)
    }
}

/// The nodes of `value` in pre-order, as mutable references, one at a time (`nth`).
fn nth_node(value: &mut Value, n: usize) -> &mut Value {
    fn count(value: &Value) -> usize {
        1 + match value {
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(map) => map.values().map(count).sum(),
            _ => 0,
        }
    }
    let total = count(value);
    let mut target = n % total;
    let mut current = value;
    loop {
        if target == 0 {
            return current;
        }
        target -= 1;
        let children: Vec<&mut Value> = match current {
            Value::Array(items) => items.iter_mut().collect(),
            Value::Object(map) => map.values_mut().collect(),
            _ => unreachable!("a scalar has no nodes below it"),
        };
        let mut chosen = None;
        for child in children {
            let size = count(child);
            if target < size {
                chosen = Some(child);
                break;
            }
            target -= size;
        }
        current = chosen.unwrap_or_else(|| unreachable!("the count covers every node"));
    }
}

fn apply(value: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::DropKey { at, key } => {
            if let Value::Object(map) = nth_node(value, *at)
                && !map.is_empty()
            {
                let name = map.keys().nth(key % map.len()).cloned().unwrap_or_default();
                map.shift_remove(&name);
            }
        }
        Mutation::RenameKey { at, key, to } => {
            if let Value::Object(map) = nth_node(value, *at)
                && !map.is_empty()
            {
                let name = map.keys().nth(key % map.len()).cloned().unwrap_or_default();
                if let Some(item) = map.shift_remove(&name) {
                    // A typo of the key half the time, a different key otherwise.
                    let renamed = if to.is_empty() {
                        format!("{name}s")
                    } else {
                        to.clone()
                    };
                    map.insert(renamed, item);
                }
            }
        }
        Mutation::Replace { at, with } => *nth_node(value, *at) = with.clone(),
        Mutation::WrongType { at, kind } => {
            let node = nth_node(value, *at);
            *node = match (kind % 6, &*node) {
                (0, Value::String(s)) => Value::Array(vec![Value::String(s.clone())]),
                (0, other) => Value::String(other.to_string()),
                (1, _) => Value::Null,
                (2, _) => Value::Bool(kind % 2 == 0),
                (3, _) => serde_json::json!(-1),
                (4, _) => serde_json::json!({}),
                _ => serde_json::json!(1e300),
            };
        }
        Mutation::Nest { at, levels } => {
            let node = nth_node(value, *at);
            let mut wrapped = node.take();
            for level in 0..*levels {
                wrapped = if level % 2 == 0 {
                    Value::Array(vec![wrapped])
                } else {
                    serde_json::json!({ "steps": wrapped })
                };
            }
            *node = wrapped;
        }
        Mutation::Huge { at, bytes, fill } => {
            let count = bytes / fill.len_utf8().max(1);
            *nth_node(value, *at) = Value::String(fill.to_string().repeat(count.max(1)));
        }
        Mutation::Text { at, text } => *nth_node(value, *at) = Value::String(text.clone()),
        Mutation::Template { at, template } => {
            *nth_node(value, *at) = Value::String((*template).to_owned());
        }
        Mutation::Duplicate { at } => {
            let node = nth_node(value, *at);
            let copy = node.clone();
            *node = Value::Array(vec![copy.clone(), copy]);
        }
    }
}

/// Writes block YAML, quoting every string that could read as something else, with anchors on
/// some collections and aliases to them in place of some later nodes.
struct YamlWriter {
    out: String,
    choices: Vec<u8>,
    next: usize,
    anchors: Vec<String>,
}

impl YamlWriter {
    fn choice(&mut self) -> u8 {
        let choice = self.choices.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        choice
    }

    /// Writes `value` as the value after `key:` or `- ` (the caller wrote the key and no newline).
    fn node(&mut self, value: &Value, indent: usize) {
        let choice = self.choice();
        if choice >= 240 && !self.anchors.is_empty() {
            let name = self.anchors[usize::from(choice) % self.anchors.len()].clone();
            let _ = writeln!(self.out, " *{name}");
            return;
        }
        let anchor = if choice >= 200 && matches!(value, Value::Array(_) | Value::Object(_)) {
            let name = format!("a{}", self.anchors.len());
            self.anchors.push(name.clone());
            format!(" &{name}")
        } else {
            String::new()
        };
        let pad = " ".repeat(indent);
        match value {
            Value::Array(items) if !items.is_empty() => {
                let _ = writeln!(self.out, "{anchor}");
                for item in items {
                    let _ = write!(self.out, "{pad}-");
                    self.node(item, indent + 2);
                }
            }
            Value::Object(map) if !map.is_empty() => {
                let _ = writeln!(self.out, "{anchor}");
                for (key, item) in map {
                    let _ = write!(
                        self.out,
                        "{pad}{}:",
                        scalar_text(&Value::String(key.clone()))
                    );
                    self.node(item, indent + 2);
                }
            }
            Value::Array(_) => {
                let _ = writeln!(self.out, "{anchor} []");
            }
            Value::Object(_) => {
                let _ = writeln!(self.out, "{anchor} {{}}");
            }
            scalar => {
                let _ = writeln!(self.out, " {}", scalar_text(scalar));
            }
        }
    }
}

/// A scalar as YAML: plain when it reads back as the same string, double-quoted JSON otherwise.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => {
            let plain = !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ' '))
                && text.starts_with(|c: char| c.is_ascii_alphabetic())
                && !text.ends_with(' ')
                && matches!(tree::parse_yaml(text).map(|n| n.to_json()), Ok(Value::String(s)) if &s == text);
            if plain {
                text.clone()
            } else {
                value.to_string()
            }
        }
        other => other.to_string(),
    }
}

/// The byte index of the char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn edit_text(text: &mut String, edit: &TextEdit) {
    match edit {
        TextEdit::Insert { at, text: insert } => {
            let at = boundary(text, *at);
            text.insert_str(at, insert);
        }
        TextEdit::Delete { at, len } => {
            let start = boundary(text, *at);
            let end = boundary(text, start.saturating_add(*len).min(text.len()));
            if end > start {
                text.replace_range(start..end, "");
            }
        }
        TextEdit::DuplicateLine { line } => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            if !lines.is_empty() {
                let index = line % lines.len();
                let mut out: Vec<&str> = lines.clone();
                out.insert(index, lines[index]);
                *text = out.concat();
            }
        }
        TextEdit::Bom => text.insert(0, '\u{feff}'),
        TextEdit::Crlf => *text = text.replace('\n', "\r\n"),
        TextEdit::Tabs => *text = text.replace("  ", "\t"),
    }
}

/// Where a diagnostic may point in `source`: on a line of the file, within that line (or one past
/// its end), or 0:0 for the whole file.
fn check_location(source: &str, diagnostic: &Diagnostic) -> Result<(), TestCaseError> {
    let shown = diagnostic.to_string();
    prop_assert!(
        !diagnostic.message.trim().is_empty(),
        "empty message: {shown}"
    );
    if diagnostic.line == 0 {
        prop_assert_eq!(diagnostic.column, 0, "line 0 with a column: {}", shown);
        return Ok(());
    }
    prop_assert!(
        diagnostic.column >= 1,
        "column 0 on line {}: {}",
        diagnostic.line,
        shown
    );
    // YAML breaks lines at `\n`, `\r\n` and a lone `\r`; JSON at `\n` only.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let normalized = source.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    let plain: Vec<&str> = source.split('\n').collect();
    let line = diagnostic.line as usize;
    prop_assert!(
        line <= lines.len().max(plain.len()),
        "line {} of a {}-line file: {}",
        line,
        lines.len(),
        shown
    );
    let width = [lines.get(line - 1), plain.get(line - 1)]
        .into_iter()
        .flatten()
        .map(|text| text.len())
        .max()
        .unwrap_or(0);
    prop_assert!(
        diagnostic.column as usize <= width + 1,
        "column {} on line {} of {} bytes: {}",
        diagnostic.column,
        line,
        width,
        shown
    );
    Ok(())
}

/// The properties of one flow file: no panic (the runner catches one), located diagnostics of
/// this file, and valid flows that compile.
fn check_flow(label: &str, source: &str) -> Result<(), TestCaseError> {
    match parse_flow(label, source) {
        Ok(flow) => {
            if let Err(errors) = CompiledFlow::new(flow, label) {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return Err(TestCaseError::fail(format!(
                    "a flow that loads does not compile:\n{}",
                    lines.join("\n")
                )));
            }
        }
        Err(diagnostics) => {
            prop_assert!(!diagnostics.is_empty(), "an error without a diagnostic");
            for diagnostic in &diagnostics {
                prop_assert_eq!(&diagnostic.file, label);
                check_location(source, diagnostic)?;
            }
        }
    }
    Ok(())
}

fn check_project(label: &str, source: &str) -> Result<(), TestCaseError> {
    if let Err(diagnostics) = parse_project(label, source) {
        prop_assert!(!diagnostics.is_empty(), "an error without a diagnostic");
        for diagnostic in &diagnostics {
            prop_assert_eq!(&diagnostic.file, label);
            check_location(source, diagnostic)?;
        }
    }
    Ok(())
}

/// Arbitrary text: random characters, or fragments of YAML, JSON and Jinja syntax.
fn arbitrary_source() -> impl Strategy<Value = (String, String)> {
    let label = prop_oneof![Just("f.yaml".to_owned()), Just("f.json".to_owned())];
    let text = prop_oneof![
        2 => any::<String>(),
        3 => hostile_text(120),
        1 => (1usize..300).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => (1usize..300).prop_map(|n| format!("{}1{}", "{a: ".repeat(n), "}".repeat(n))),
        1 => (1usize..200).prop_map(|n| (0..n).map(|i| format!("{}- x\n", "  ".repeat(i))).collect()),
    ];
    (label, text)
}

#[test]
fn fuzz_flow_parser_on_arbitrary_text() {
    fuzz(
        "flow parser, arbitrary text",
        256,
        arbitrary_source(),
        |(label, text)| {
            check_flow(&label, &text)?;
            check_project(&label, &text)
        },
    );
}

#[test]
fn fuzz_flow_parser_on_mutated_flows() {
    fuzz(
        "flow parser, mutated flows",
        256,
        mutated_case(FLOW_SEEDS.len()),
        |case| {
            let (label, text) = case.render(FLOW_SEEDS);
            check_flow(&label, &text)
        },
    );
}

#[test]
fn fuzz_flow_parser_on_mutated_project_files() {
    let mut seeds: Vec<(&str, &str)> = vec![(PROJECT_FILE, PROJECT_SEED)];
    seeds.extend(TABLE_SEEDS);
    let count = seeds.len();
    fuzz(
        "project parser, mutated idflow.yaml and tables",
        128,
        mutated_case(count),
        |case| {
            let (label, text) = case.render(&seeds);
            check_project(&label, &text)?;
            // The table files go through the directory reader; idflow.yaml through both.
            let mut files = BTreeMap::new();
            let name = if case.seed % count == 0 {
                PROJECT_FILE.to_owned()
            } else {
                format!("{TABLES_DIR}/{label}")
            };
            files.insert(name.clone(), text.clone());
            if let Err(diagnostics) = parse_project_files(&files) {
                for diagnostic in &diagnostics {
                    prop_assert_eq!(&diagnostic.file, &name);
                    check_location(&text, diagnostic)?;
                }
            }
            Ok(())
        },
    );
}

/// A directory of a few files, each a mutated seed or arbitrary text, under names that exercise
/// the directory rules (tests, hidden files, JSON, tables, duplicate flow names).
#[derive(Debug, Clone)]
struct DirCase {
    files: Vec<(String, MutatedCase)>,
    project: Option<MutatedCase>,
    table: Option<MutatedCase>,
    junk: Option<(String, String)>,
}

fn dir_case() -> impl Strategy<Value = DirCase> {
    let name = prop_oneof![
        Just("a.yaml"),
        Just("b.yml"),
        Just("c.json"),
        Just("d.test.yaml"),
        Just(".hidden.yaml"),
        Just("IDFLOW.YAML"),
        Just("é.yaml"),
    ]
    .prop_map(str::to_owned);
    (
        proptest::collection::vec((name, mutated_case(FLOW_SEEDS.len())), 0..4),
        proptest::option::of(mutated_case(1)),
        proptest::option::of(mutated_case(TABLE_SEEDS.len())),
        proptest::option::of((
            prop_oneof![Just("z.yaml".to_owned()), Just("tables/z.yaml".to_owned())],
            hostile_text(60),
        )),
    )
        .prop_map(|(files, project, table, junk)| DirCase {
            files,
            project,
            table,
            junk,
        })
}

#[test]
fn fuzz_load_dir_on_generated_directories() {
    let root = std::env::temp_dir().join(format!("idflow-fuzz-dir-{}", ulid::Ulid::new()));
    let result = std::panic::catch_unwind(|| {
        fuzz("load_dir, generated directories", 64, dir_case(), |case| {
            let dir = root.join(ulid::Ulid::new().to_string());
            std::fs::create_dir_all(dir.join(TABLES_DIR))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut written: BTreeMap<String, String> = BTreeMap::new();
            for (name, mutated) in &case.files {
                let (label, text) = mutated.render(FLOW_SEEDS);
                // Keep the generated format's extension so JSON is read as JSON.
                let name = if label.ends_with(".json") && !name.ends_with(".json") {
                    format!("{name}.json")
                } else {
                    name.clone()
                };
                written.insert(name, text);
            }
            if let Some(mutated) = &case.project {
                written.insert(
                    PROJECT_FILE.to_owned(),
                    mutated.render(&[(PROJECT_FILE, PROJECT_SEED)]).1,
                );
            }
            if let Some(mutated) = &case.table {
                let (label, text) = mutated.render(TABLE_SEEDS);
                let stem = label
                    .rsplit('/')
                    .next()
                    .unwrap_or(&label)
                    .replace(".json", ".yaml");
                written.insert(format!("{TABLES_DIR}/{stem}"), text);
            }
            if let Some((name, text)) = &case.junk {
                written.insert(name.clone(), text.clone());
            }
            for (name, text) in &written {
                std::fs::write(dir.join(name), text)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            let project = load_dir(&dir);
            let outcome = (|| {
                for diagnostic in project.all_diagnostics() {
                    let Some(source) = written.get(&diagnostic.file) else {
                        return Err(TestCaseError::fail(format!(
                            "a diagnostic names a file that was not written: {diagnostic}"
                        )));
                    };
                    check_location(source, &diagnostic)?;
                }
                for loaded in &project.flows {
                    prop_assert!(
                        written.contains_key(&loaded.path),
                        "loaded {} which was not written",
                        loaded.path
                    );
                    if let Ok(flow) = &loaded.result {
                        prop_assert!(
                            CompiledFlow::new(flow.clone(), &loaded.path).is_ok(),
                            "{} loads but does not compile",
                            loaded.path
                        );
                    }
                }
                Ok(())
            })();
            let _ = std::fs::remove_dir_all(&dir);
            outcome
        })
    });
    let _ = std::fs::remove_dir_all(&root);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn mutated_cases_start_from_flows_that_load() {
    // The generators are only as good as their seeds: each must be a valid flow as written.
    for (label, source) in FLOW_SEEDS {
        let flow = parse_flow(label, source).unwrap_or_else(|e| panic!("{label}: {e:?}"));
        assert!(CompiledFlow::new(flow, label).is_ok(), "{label}");
    }
    // And the YAML writer writes them back as the same document.
    for (label, source) in FLOW_SEEDS {
        let value = parse_document(label, source).expect("seed").value;
        let mut writer = YamlWriter {
            out: String::new(),
            choices: Vec::new(),
            next: 0,
            anchors: Vec::new(),
        };
        writer.node(&value, 0);
        let back = parse_document(label, &writer.out)
            .unwrap_or_else(|e| panic!("{label} written back:\n{}\n{e:?}", writer.out))
            .value;
        assert_eq!(back, value, "{label}");
    }
}
