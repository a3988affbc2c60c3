//! Reading flow files, `idflow.yaml` and `tables/*.yaml` (YAML or JSON) into the model, with file, line, column, field
//! path and what was expected on every error.
//!
//! Every problem in a file is reported, not just the first, and one bad file never stops the others
//! from loading: [`load_dir`] returns each file's own result plus the checks that span files (duplicate
//! names, called flows that do not exist, callers and tokens missing from `idflow.yaml`).
//!
//! # Layout
//! - `tree`: YAML and JSON text to a node tree that keeps the position of every node and key.
//! - `check`: typed readers over the tree (text, durations, secrets, choices with "did you mean").
//! - `flow`: a flow file's tree to [`Flow`]: triggers, steps, cards checked against the registry.
//! - `project`: the trees of `idflow.yaml` and the table files to [`ProjectConfig`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diag::Diagnostic;
use crate::engine::CompiledFlow;
use crate::model::{Flow, Location, ProjectConfig};

pub(crate) mod check;
pub(crate) mod flow;
mod project;
mod secrets;
pub(crate) mod tree;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use check::Ctx;
/// "Did you mean": the closest candidate within a few edits (shared with test files).
pub(crate) use check::suggest;
use flow::FlowFacts;
/// The parsers' key lists, which the JSON Schemas must match (checked in `crate::schema`).
#[cfg(test)]
pub(crate) mod keys {
    pub(crate) use super::flow::{INPUT_TYPES, STEP_KEYS, TOP_KEYS as FLOW_KEYS};
    pub(crate) use super::project::{COLUMN_TYPES, TABLE_FILE_KEYS, TOP_KEYS as PROJECT_KEYS};
}
use project::ProjectFacts;

/// The project config's file name inside a flow directory.
pub const PROJECT_FILE: &str = "idflow.yaml";

/// A parsed YAML or JSON document: its value, and the position of every node by field path
/// (`""` for the root, `steps[2].with.user` below it).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: serde_json::Value,
    pub locations: BTreeMap<String, Location>,
}

/// One flow file of a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedFlow {
    /// The file's path relative to the loaded directory.
    pub path: String,
    /// The file's text (empty when it could not be read).
    pub source: String,
    /// The flow, or every problem found in the file on its own.
    pub result: Result<Flow, Vec<Diagnostic>>,
    /// What the checker finds suspicious but possible (a step read that may not have run); `idflow
    /// validate --strict` treats these as errors.
    pub warnings: Vec<Diagnostic>,
}

/// A flow directory: the project config, every flow file, and the problems that span files.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadedProject {
    /// `idflow.yaml`, or the default config when the file is absent. When the file has errors this is
    /// what could be read of it; the errors are in `errors`.
    pub config: ProjectConfig,
    /// Flow files sorted by path.
    pub flows: Vec<LoadedFlow>,
    /// Problems in `idflow.yaml`, in the directory, and across files (unknown called flows, callers or
    /// tokens missing from `idflow.yaml`). A flow name already used by an earlier file is instead an
    /// error of the later file's own `result`, since that file cannot be deployed.
    pub errors: Vec<Diagnostic>,
}

impl LoadedProject {
    /// Every diagnostic: each flow file's own, then `errors`.
    pub fn all_diagnostics(&self) -> Vec<Diagnostic> {
        let mut all: Vec<Diagnostic> = Vec::new();
        for flow in &self.flows {
            if let Err(diagnostics) = &flow.result {
                all.extend(diagnostics.iter().cloned());
            }
        }
        all.extend(self.errors.iter().cloned());
        all
    }

    /// Every warning of every flow file.
    pub fn all_warnings(&self) -> Vec<Diagnostic> {
        self.flows
            .iter()
            .flat_map(|f| f.warnings.iter().cloned())
            .collect()
    }

    /// Whether the whole directory loaded without a single problem.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty() && self.flows.iter().all(|f| f.result.is_ok())
    }

    /// The flows that loaded.
    pub fn valid_flows(&self) -> impl Iterator<Item = &Flow> {
        self.flows.iter().filter_map(|f| f.result.as_ref().ok())
    }
}

/// The version of a flow: `sha256:` and the first 16 hex digits of the SHA-256 of its source text.
pub fn version_of(source: &str) -> String {
    let digest = Sha256::digest(source.as_bytes());
    let hex = hex::encode(digest);
    format!("sha256:{}", &hex[..16])
}

impl crate::ports::StoredFlow {
    /// Flow `name` deployed from `source` (read from `path`, relative to the flows directory) at
    /// `deployed_at`; its version is the content hash of `source` ([`version_of`]), so the two
    /// cannot disagree.
    pub fn new(
        name: &str,
        path: &str,
        source: &str,
        deployed_at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Self {
            name: name.to_owned(),
            version: version_of(source),
            source: source.to_owned(),
            path: path.to_owned(),
            deployed_at,
        }
    }
}

/// Parses YAML (or JSON when `file_label` ends in `.json`) into a value and the position of every
/// node. Duplicate keys, several documents, merge keys and custom tags are errors; aliases expand.
pub fn parse_document(file_label: &str, source: &str) -> Result<Document, Vec<Diagnostic>> {
    let node = read_tree(file_label, source)?;
    let mut locations = BTreeMap::new();
    node.collect_locations("", &mut locations);
    Ok(Document {
        value: node.to_json(),
        locations,
    })
}

/// Parses and validates one flow file's text. `file_label` names the file in diagnostics and picks
/// the format: JSON when it ends in `.json`, YAML otherwise.
pub fn parse_flow(file_label: &str, source: &str) -> Result<Flow, Vec<Diagnostic>> {
    flow_with_facts(file_label, source, None).0
}

/// [`parse_flow`] with the checker's warnings, and with `vars.*` and `secret()` checked against
/// `project` when given (a project config that loaded without errors).
pub fn check_flow_source(
    file_label: &str,
    source: &str,
    project: Option<&ProjectConfig>,
) -> (Result<Flow, Vec<Diagnostic>>, Vec<Diagnostic>) {
    let (result, _, warnings) = flow_with_facts(file_label, source, project);
    (result, warnings)
}

/// Parses and validates `idflow.yaml`'s text.
pub fn parse_project(file_label: &str, source: &str) -> Result<ProjectConfig, Vec<Diagnostic>> {
    let (config, _, diagnostics) = project_with_facts(file_label, source);
    if diagnostics.is_empty() {
        Ok(config)
    } else {
        Err(diagnostics)
    }
}

/// The files that make up a project's configuration, by path relative to the flow directory:
/// `idflow.yaml` when present, and every table file `tables/*.yaml` (or `.yml`; hidden files are
/// skipped). `idflow validate`, `idflow serve`, `idflow test` and `idflow tables` read the
/// configuration from these files, `idflow deploy` uploads exactly these next to the flows, and the
/// Lambda functions rebuild the [`ProjectConfig`] from them with [`parse_project_files`], so every
/// place sees the same tables. Any file that cannot be read is an error.
pub fn project_files(dir: &Path) -> Result<BTreeMap<String, String>, Vec<Diagnostic>> {
    let (files, errors) = read_project_files(dir);
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// Rebuilds the project configuration from the files [`project_files`] read (an empty set is the
/// default configuration): `idflow.yaml`, then the table files in path order. A table declared twice
/// (in `idflow.yaml` and a table file, or in two table files) is an error naming both places.
pub fn parse_project_files(
    files: &BTreeMap<String, String>,
) -> Result<ProjectConfig, Vec<Diagnostic>> {
    let (config, _, diagnostics) = project_from_files(files);
    if diagnostics.is_empty() {
        Ok(config)
    } else {
        Err(diagnostics)
    }
}

/// The folder of table files inside a flow directory.
pub const TABLES_DIR: &str = "tables";

/// Whether `name` (a file name inside [`TABLES_DIR`]) is a table file.
fn is_table_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !name.starts_with('.') && (lower.ends_with(".yaml") || lower.ends_with(".yml"))
}

/// [`project_files`], keeping what could be read beside the errors.
fn read_project_files(dir: &Path) -> (BTreeMap<String, String>, Vec<Diagnostic>) {
    let mut files = BTreeMap::new();
    let mut errors = Vec::new();
    let mut read = |path: &Path, label: String| match std::fs::read_to_string(path) {
        Ok(source) => {
            files.insert(label, source);
        }
        Err(error) => errors.push(unreadable(&label, &error)),
    };
    let config_path = dir.join(PROJECT_FILE);
    if config_path.is_file() {
        read(&config_path, PROJECT_FILE.to_owned());
    }
    let tables = dir.join(TABLES_DIR);
    if tables.is_dir() {
        match std::fs::read_dir(&tables) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|name| is_table_file_name(name))
                    .collect();
                names.sort();
                for name in names {
                    read(&tables.join(&name), format!("{TABLES_DIR}/{name}"));
                }
            }
            Err(error) => errors.push(unreadable(TABLES_DIR, &error)),
        }
    }
    (files, errors)
}

/// Decodes the project files: `idflow.yaml`'s config and facts, with the table files' tables merged
/// in, and every problem found.
fn project_from_files(
    files: &BTreeMap<String, String>,
) -> (ProjectConfig, ProjectFacts, Vec<Diagnostic>) {
    let (mut config, facts, mut diagnostics) = match files.get(PROJECT_FILE) {
        Some(source) => project_with_facts(PROJECT_FILE, source),
        None => (
            ProjectConfig::default(),
            ProjectFacts::default(),
            Vec::new(),
        ),
    };
    // Where each table is declared: (name, file, line).
    let mut declared: Vec<(String, String, u32)> = facts
        .tables
        .iter()
        .map(|t| (t.name.clone(), PROJECT_FILE.to_owned(), t.location.line))
        .collect();
    for (path, source) in files {
        if path == PROJECT_FILE {
            continue;
        }
        let stem = path
            .strip_prefix(&format!("{TABLES_DIR}/"))
            .filter(|name| !name.contains('/') && is_table_file_name(name))
            .and_then(|name| name.rsplit_once('.'))
            .map(|(stem, _)| stem);
        let Some(stem) = stem else {
            diagnostics.push(Diagnostic {
                file: path.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!(
                    "not a project file: expected {PROJECT_FILE} or {TABLES_DIR}/<table>.yaml"
                ),
            });
            continue;
        };
        let root = match read_tree(path, source) {
            Ok(root) => root,
            Err(errors) => {
                diagnostics.extend(errors);
                continue;
            }
        };
        let mut ctx = Ctx::new(path);
        if let Some((table, declaration)) = project::decode_table_file(&mut ctx, &root, stem) {
            match declared.iter().find(|(name, _, _)| *name == table.name) {
                Some((_, first_file, first_line)) => {
                    let message = format!(
                        "table `{}` is declared twice: in {first_file}:{first_line} and in {path}:{}; declare each table once",
                        table.name, table.location.line
                    );
                    ctx.error(table.location, &table.path, message);
                }
                None => {
                    declared.push((table.name.clone(), path.clone(), table.location.line));
                    config.tables.insert(table.name, declaration);
                }
            }
        }
        diagnostics.extend(sorted(ctx.diagnostics));
    }
    (config, facts, diagnostics)
}

/// Reads and validates one flow file on its own (no cross-file checks). The file is named in
/// diagnostics as `path` is written.
pub fn load_file(path: &Path) -> Result<Flow, Vec<Diagnostic>> {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => parse_flow(&label, &source),
        Err(error) => Err(vec![unreadable(&label, &error)]),
    }
}

/// [`load_file`] with the checker's warnings.
pub fn load_file_checked(path: &Path) -> (Result<Flow, Vec<Diagnostic>>, Vec<Diagnostic>) {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => check_flow_source(&label, &source, None),
        Err(error) => (Err(vec![unreadable(&label, &error)]), Vec::new()),
    }
}

/// Loads a flow directory: the project files (see [`project_files`]; all optional) and every `*.yaml`, `*.yml` and `*.json` file at its
/// top level except `idflow.yaml` itself and tests (`*.test.yaml`, `*.test.yml`, `*.test.json`).
/// Hidden files are skipped. Files are read in name order and one bad file never stops the others.
pub fn load_dir(dir: &Path) -> LoadedProject {
    let mut project = LoadedProject::default();
    let (files, unreadable_files) = read_project_files(dir);
    project.errors.extend(unreadable_files);
    let (config, project_facts, diagnostics) = project_from_files(&files);
    project.config = config;
    // `vars.*` and `secret()` are checked against the project config only when it loaded whole:
    // a config with errors would make every use of what it failed to declare an error too.
    let checked_against =
        (diagnostics.is_empty() && project.errors.is_empty()).then(|| project.config.clone());
    project.errors.extend(diagnostics);
    let mut names = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_type()
                    .is_ok_and(|t| t.is_file() || t.is_symlink())
            })
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| is_flow_file_name(name))
            .collect::<Vec<_>>(),
        Err(error) => {
            project
                .errors
                .push(unreadable(&dir.display().to_string(), &error));
            return project;
        }
    };
    names.sort();
    let mut all_facts = Vec::new();
    for name in names {
        let path = dir.join(&name);
        match std::fs::read_to_string(&path) {
            Ok(source) => {
                let (result, facts, warnings) =
                    flow_with_facts(&name, &source, checked_against.as_ref());
                project.flows.push(LoadedFlow {
                    path: name,
                    source,
                    result,
                    warnings,
                });
                all_facts.push(facts);
            }
            Err(error) => {
                let result = Err(vec![unreadable(&name, &error)]);
                project.flows.push(LoadedFlow {
                    path: name,
                    source: String::new(),
                    result,
                    warnings: Vec::new(),
                });
                all_facts.push(FlowFacts::default());
            }
        }
    }
    reject_duplicate_names(&mut project.flows, &all_facts);
    let cross = cross_checks(&project.config, &project_facts, &project.flows, &all_facts);
    project.errors.extend(cross);
    project
}

/// A project config nothing reads: an `idflow.yaml` (or `idflow.yml`) in the parent of a flow
/// directory that has none of its own, or an `idflow.yml` inside it. The project config belongs
/// inside the flow directory, beside the flows, as [`PROJECT_FILE`]; [`load_dir`] reads nothing
/// else, so `idflow serve` and `idflow validate` name such a file instead of silently running
/// without it. `None` when the directory has its `idflow.yaml`, or no stray file is found.
pub fn misplaced_project_file(dir: &Path) -> Option<PathBuf> {
    if dir.join(PROJECT_FILE).is_file() {
        return None;
    }
    let inside = dir.join("idflow.yml");
    if inside.is_file() {
        return Some(inside);
    }
    // Canonical, so `.` and `flows/` have a parent to look in.
    let parent = dir.canonicalize().ok()?.parent()?.to_path_buf();
    [PROJECT_FILE, "idflow.yml"]
        .into_iter()
        .map(|name| parent.join(name))
        .find(|path| path.is_file())
}

/// Whether a directory entry is a flow file.
fn is_flow_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let flow_extension = [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| lower.ends_with(ext));
    let test = [".test.yaml", ".test.yml", ".test.json"]
        .iter()
        .any(|ext| lower.ends_with(ext));
    flow_extension
        && !test
        && !name.starts_with('.')
        && lower != PROJECT_FILE
        && lower != "idflow.yml"
}

fn unreadable(file: &str, error: &std::io::Error) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: 0,
        column: 0,
        path: String::new(),
        message: format!("cannot read the file: {}", error.to_string().to_lowercase()),
    }
}

fn read_tree(file_label: &str, source: &str) -> Result<tree::Node, Vec<Diagnostic>> {
    // Some Windows editors start files with a byte order mark, which serde_json refuses.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let parsed = if file_label.to_ascii_lowercase().ends_with(".json") {
        tree::parse_json(source)
    } else {
        tree::parse_yaml(source)
    };
    parsed.map_err(|errors| {
        errors
            .into_iter()
            .map(|e| Diagnostic {
                file: file_label.to_owned(),
                line: e.location.line,
                column: e.location.column,
                path: e.path,
                message: e.message,
            })
            .collect()
    })
}

fn sorted(mut diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    // Stable, so problems at one position keep the order they were found in.
    diagnostics.sort_by_key(|d| (d.line, d.column));
    diagnostics
}

/// One flow file: decoded, checked (see [`crate::checker`]) and compiled. Returns the flow or its
/// errors, what the cross-file checks need, and the checker's warnings.
fn flow_with_facts(
    file_label: &str,
    source: &str,
    project: Option<&ProjectConfig>,
) -> (Result<Flow, Vec<Diagnostic>>, FlowFacts, Vec<Diagnostic>) {
    let root = match read_tree(file_label, source) {
        Ok(root) => root,
        Err(diagnostics) => return (Err(diagnostics), FlowFacts::default(), Vec::new()),
    };
    let mut ctx = Ctx::new(file_label);
    let (flow, facts) = flow::decode_flow(&mut ctx, &root, version_of(source));
    secrets::check(&mut ctx, &root);
    let flow = match flow {
        Some(flow) if ctx.is_clean() => flow,
        _ => return (Err(sorted(ctx.diagnostics)), facts, Vec::new()),
    };
    // Every template is checked against the context it will render in, so a flow that reads a
    // step that does not exist, a misspelt filter or an undeclared var fails here, at its line,
    // instead of failing every run.
    let mut locations = BTreeMap::new();
    root.collect_locations("", &mut locations);
    let findings = crate::checker::check_flow(
        &flow,
        &crate::checker::Source {
            file: file_label,
            text: source.strip_prefix('\u{feff}').unwrap_or(source),
            locations: &locations,
        },
        project,
    );
    if !findings.errors.is_empty() {
        return (Err(findings.errors), facts, findings.warnings);
    }
    // The engine compiles every template when a run starts; compiling here too makes a template
    // that cannot compile a diagnostic of `idflow validate` at its step, instead of a flow that
    // validates, deploys, and then fails every run (the checker above reports syntax errors at
    // their column; this is the backstop for what only compiling finds, such as `{% include %}`).
    match CompiledFlow::new(flow.clone(), file_label) {
        Ok(_) => (Ok(flow), facts, findings.warnings),
        Err(diagnostics) => (Err(sorted(diagnostics)), facts, findings.warnings),
    }
}

fn project_with_facts(
    file_label: &str,
    source: &str,
) -> (ProjectConfig, ProjectFacts, Vec<Diagnostic>) {
    let root = match read_tree(file_label, source) {
        Ok(root) => root,
        Err(diagnostics) => {
            return (
                ProjectConfig::default(),
                ProjectFacts::default(),
                diagnostics,
            );
        }
    };
    let mut ctx = Ctx::new(file_label);
    let (config, facts) = project::decode_project(&mut ctx, &root);
    (config, facts, sorted(ctx.diagnostics))
}

/// A file whose flow name an earlier file (in name order) already uses cannot be deployed, so the
/// error becomes that file's own.
fn reject_duplicate_names(flows: &mut [LoadedFlow], facts: &[FlowFacts]) {
    let mut first_by_name: HashMap<&str, String> = HashMap::new();
    for (flow, facts) in flows.iter_mut().zip(facts) {
        let Some(name) = &facts.name else { continue };
        let Some(first) = first_by_name.get(name.name.as_str()) else {
            first_by_name.insert(&name.name, flow.path.clone());
            continue;
        };
        let diagnostic = Diagnostic {
            file: flow.path.clone(),
            line: name.location.line,
            column: name.location.column,
            path: name.path.clone(),
            message: format!(
                "flow name `{}` is already used by {first}; flow names are unique in a directory",
                name.name
            ),
        };
        match &mut flow.result {
            Ok(_) => flow.result = Err(vec![diagnostic]),
            Err(diagnostics) => {
                diagnostics.push(diagnostic);
                let all = std::mem::take(diagnostics);
                *diagnostics = sorted(all);
            }
        }
    }
}

/// Checks that need more than one file.
fn cross_checks(
    config: &ProjectConfig,
    project_facts: &ProjectFacts,
    flows: &[LoadedFlow],
    facts: &[FlowFacts],
) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let error = |file: &str, location: Location, path: &str, message: String| Diagnostic {
        file: file.to_owned(),
        line: location.line,
        column: location.column,
        path: path.to_owned(),
        message,
    };
    // Name → (file, trigger kind) of the first file that claims it; later claims are already errors
    // of their own files.
    let mut by_name: HashMap<&str, (&str, Option<&str>)> = HashMap::new();
    for (flow, facts) in flows.iter().zip(facts) {
        if let Some(name) = &facts.name {
            by_name
                .entry(&name.name)
                .or_insert((&flow.path, facts.trigger_kind.as_deref()));
        }
    }
    let known: Vec<&str> = {
        let mut known: Vec<&str> = by_name.keys().copied().collect();
        known.sort_unstable();
        known
    };
    // Files that failed before their name could be read may hold a flow another file calls.
    let nameless: Vec<&str> = flows
        .iter()
        .zip(facts)
        .filter(|(flow, facts)| facts.name.is_none() && flow.result.is_err())
        .map(|(flow, _)| flow.path.as_str())
        .collect();
    let callers: Vec<&str> = config.callers.keys().map(String::as_str).collect();
    for (flow, facts) in flows.iter().zip(facts) {
        for call in &facts.calls {
            match by_name.get(call.name.as_str()) {
                None => {
                    let mut message = format!("unknown flow `{}`", call.name);
                    if let Some(close) = suggest(&call.name, known.iter().copied()) {
                        message.push_str(&format!("; did you mean `{close}`?"));
                    } else if !nameless.is_empty() {
                        message.push_str(&format!(" (unless it is in {}, which failed to load)", nameless.join(", ")));
                    }
                    errors.push(error(&flow.path, call.location, &call.path, message));
                }
                Some((file, Some(kind))) if !matches!(*kind, "helper" | "manual") => errors.push(error(
                    &flow.path,
                    call.location,
                    &call.path,
                    format!(
                        "flow `{}` ({file}) has a `{kind}` trigger; a flow run by another flow needs a `helper` trigger or none",
                        call.name
                    ),
                )),
                Some(_) => {}
            }
        }
        for caller in &facts.callers {
            if !config.callers.contains_key(&caller.name) {
                let mut message = format!(
                    "unknown caller `{}`; declare it under `callers:` in {PROJECT_FILE}",
                    caller.name
                );
                if let Some(close) = suggest(&caller.name, callers.iter().copied()) {
                    message.push_str(&format!("; did you mean `{close}`?"));
                }
                errors.push(error(&flow.path, caller.location, &caller.path, message));
            }
        }
        if let (Some(token), Some(name)) = (&facts.config_token, &facts.name)
            && !project_facts.api_tokens.iter().any(|t| t.name == name.name)
        {
            let message = format!(
                "`auth: token` without `token:` takes its token from `api.tokens.{}` in {PROJECT_FILE}, which is missing",
                name.name
            );
            errors.push(error(&flow.path, token.location, &token.path, message));
        }
    }
    for token in &project_facts.api_tokens {
        if !by_name.contains_key(token.name.as_str()) {
            let mut message = format!("api token for unknown flow `{}`", token.name);
            if let Some(close) = suggest(&token.name, known.iter().copied()) {
                message.push_str(&format!("; did you mean `{close}`?"));
            }
            errors.push(error(PROJECT_FILE, token.location, &token.path, message));
        }
    }
    errors
}
