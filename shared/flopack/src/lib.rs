//! Okta Workflows importer: reads `.flopack` exports and writes an idflow project.
//!
//! ```no_run
//! let import = flopack::import_paths(&["exports/onboarding.flopack".into()])?;
//! let written = import.write(std::path::Path::new("flows"))?;
//! println!("{}", import.summary(&written));
//! # Ok::<(), flopack::ImportError>(())
//! ```
//!
//! Every flow of an export becomes one flow file (slugified, unique names); every table a
//! `tables/<name>.yaml`; connections, secret references, API base URLs and callers go to
//! `idflow.yaml`. The [`Report`] says, per flow, whether it converted exactly, approximately, or
//! partially, and lists every card left as a `flow.fail` step. A written flow always passes
//! `idflow validate`: the importer checks each one with the core's parser and replaces any it got
//! wrong by a flow that fails loudly, so a bug in the importer never leaves a broken file.
//!
//! # Layout
//! - [`pack`]: the `.flopack` JSON read into typed values (lenient; only a non-flopack is an error).
//! - [`structure`]: orderings (edges between cards) to a sequence with nested If/Else branches.
//! - [`expr`]: expressions for card outputs and the shapes that rename Okta Workflows' fields.
//! - [`mapping`]: the card-by-card mapping table, the importer's single source.
//! - `convert`: per-flow conversion (triggers, control flow, data mapping, connector recipes).
//! - [`flow`] and [`yaml`]: the written flow files, as the importer's own model and YAML text.
//! - `project`: `idflow.yaml` and the table files.

use std::path::{Path, PathBuf};

pub mod error;
pub mod expr;
pub mod flow;
pub mod mapping;
pub mod names;
pub mod pack;
pub mod structure;
pub mod yaml;

mod convert;
mod project;

pub use convert::Unconverted;
pub use error::ImportError;

/// How completely a flow converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every card has an idflow equivalent with the same behaviour.
    Exact,
    /// Every card converted; some behave differently (the flow file's header says how).
    Approximate,
    /// Some cards are `flow.fail` steps a person must finish.
    Partial,
}

/// One flow of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlowReport {
    /// The idflow flow name.
    pub flow: String,
    /// The flow file, relative to the output directory.
    pub file: String,
    /// The trigger kind: manual, schedule, event, api, helper or delegated.
    pub trigger: String,
    pub status: Status,
    /// Cards left as `flow.fail` steps; empty when nothing was left behind.
    pub unconverted: Vec<Unconverted>,
}

/// The import report (`--report`): the contract tools rely on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub flows: Vec<FlowReport>,
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{\"flows\": []}".into())
    }
}

/// A converted flow, ready to write.
#[derive(Debug, Clone)]
struct WrittenFlow {
    file: String,
    text: String,
    report: FlowReport,
    okta_name: String,
}

/// The result of reading one or more flopacks: the project's files and the report.
#[derive(Debug, Clone)]
pub struct Import {
    /// The files read, as given.
    pub sources: Vec<String>,
    flows: Vec<WrittenFlow>,
    /// `tables/<name>.yaml` → text.
    tables: Vec<(String, String)>,
    config: String,
}

/// What [`Import::write`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub dir: PathBuf,
    /// Paths relative to `dir`.
    pub files: Vec<String>,
}

/// Imports `.flopack` files; a directory stands for every `.flopack` file under it.
pub fn import_paths(paths: &[PathBuf]) -> Result<Import, ImportError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            find_flopacks(path, &mut found, 0)?;
            if found.is_empty() {
                return Err(ImportError::NoFlopack { path: path.clone() });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut texts = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| ImportError::Read {
            path: file.clone(),
            source,
        })?;
        texts.push((file.display().to_string(), text));
    }
    import_texts(&texts)
}

/// How deep [`import_paths`] looks into directories.
const MAX_DIR_DEPTH: usize = 8;

fn find_flopacks(dir: &Path, found: &mut Vec<PathBuf>, depth: usize) -> Result<(), ImportError> {
    if depth > MAX_DIR_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ImportError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            find_flopacks(&path, found, depth + 1)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("flopack"))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// Imports flopack documents given as `(label, text)`. Any document that is not a flopack fails
/// the whole import, naming it.
pub fn import_texts(texts: &[(String, String)]) -> Result<Import, ImportError> {
    let mut packs = Vec::new();
    for (label, text) in texts {
        let pack = pack::read(text).map_err(|error| match error {
            ImportError::NotJson {
                line,
                column,
                message,
            } => ImportError::NotFlopack(format!(
                "{label} is not JSON (line {line}, column {column}: {message})"
            )),
            ImportError::NotFlopack(why) => ImportError::NotFlopack(format!("{label}: {why}")),
            other => other,
        })?;
        packs.push(pack);
    }
    Ok(build(
        &packs,
        texts.iter().map(|(l, _)| l.clone()).collect(),
    ))
}

fn build(packs: &[pack::Pack], sources: Vec<String>) -> Import {
    let index = convert::Index::new(packs);
    let mut plans: Vec<&convert::FlowPlan<'_>> = index.flows.values().collect();
    plans.sort_by(|a, b| a.name.cmp(&b.name));
    let mut results = Vec::new();
    for plan in plans {
        results.push(convert::convert_flow(&index, plan));
    }
    let mut flows = Vec::new();
    for result in &results {
        flows.push(checked(result));
    }
    let mut tables: Vec<(String, String)> = index
        .tables
        .values()
        .map(|table| {
            (
                format!("tables/{}.yaml", table.name),
                project::table_text(table),
            )
        })
        .collect();
    tables.sort();
    let declared: Vec<convert::ConnectionUse> = index.configs.values().cloned().collect();
    let config = project::config_text(&results, &declared, &sources);
    Import {
        sources,
        flows,
        tables,
        config,
    }
}

/// The flow's text once the core's parser accepts it; otherwise a flow that fails loudly, so an
/// importer bug never writes a file idflow refuses.
fn checked(result: &convert::FlowResult) -> WrittenFlow {
    let mut text = result.file.to_yaml();
    let mut unconverted = result.unconverted.clone();
    if let Err(diagnostics) = domain::flowfile::parse_flow(&result.file_name, &text) {
        let first = diagnostics
            .first()
            .map(|d| d.to_string())
            .unwrap_or_default();
        unconverted.push(Unconverted {
            card: result.okta_name.clone(),
            address: String::new(),
            reason: format!("the importer wrote a flow idflow refuses ({first}); the whole flow must be rewritten by hand"),
        });
        let fallback = flow::FlowFile {
            header: vec![
                format!(
                    "Okta Workflows flow \"{}\" could not be imported.",
                    result.okta_name
                ),
                format!("The importer's conversion was refused by idflow: {first}"),
            ],
            name: result.file.name.clone(),
            description: result.file.description.clone(),
            trigger: flow::Trigger::Manual,
            steps: vec![flow::Step::card(
                None,
                "flow.fail",
                vec![(
                    "message".into(),
                    flow::Tv::text(&format!(
                        "Okta Workflows flow `{}` was not imported; rewrite it by hand",
                        result.okta_name
                    )),
                )],
            )],
        };
        text = fallback.to_yaml();
    }
    let status = if !unconverted.is_empty() {
        Status::Partial
    } else if result.approximate {
        Status::Approximate
    } else {
        Status::Exact
    };
    WrittenFlow {
        file: result.file_name.clone(),
        text,
        okta_name: result.okta_name.clone(),
        report: FlowReport {
            flow: result.file.name.clone(),
            file: result.file_name.clone(),
            trigger: result.file.trigger.kind().to_owned(),
            status,
            unconverted,
        },
    }
}

impl Import {
    /// The report: one entry per flow, in file name order.
    pub fn report(&self) -> Report {
        Report {
            flows: self.flows.iter().map(|f| f.report.clone()).collect(),
        }
    }

    /// Every file the import writes, relative to the output directory, with its text.
    pub fn files(&self) -> Vec<(String, &str)> {
        let mut files: Vec<(String, &str)> = self
            .flows
            .iter()
            .map(|f| (f.file.clone(), f.text.as_str()))
            .collect();
        files.extend(self.tables.iter().map(|(p, t)| (p.clone(), t.as_str())));
        files.push(("idflow.yaml".into(), self.config.as_str()));
        files
    }

    /// Writes the project into `dir` (created when missing). Refuses to replace an existing file.
    pub fn write(&self, dir: &Path) -> Result<Written, ImportError> {
        let files = self.files();
        for (path, _) in &files {
            if dir.join(path).exists() {
                return Err(ImportError::OutputNotEmpty {
                    path: dir.to_owned(),
                    file: path.clone(),
                });
            }
        }
        let write_error = |path: PathBuf| move |source| ImportError::Write { path, source };
        std::fs::create_dir_all(dir).map_err(write_error(dir.to_owned()))?;
        if !self.tables.is_empty() {
            let tables = dir.join("tables");
            std::fs::create_dir_all(&tables).map_err(write_error(tables.clone()))?;
        }
        let mut written = Vec::new();
        for (path, text) in files {
            let target = dir.join(&path);
            std::fs::write(&target, text).map_err(write_error(target.clone()))?;
            written.push(path);
        }
        Ok(Written {
            dir: dir.to_owned(),
            files: written,
        })
    }

    /// A short human summary of the import.
    pub fn summary(&self, written: &Written) -> String {
        let report = self.report();
        let count = |status: Status| report.flows.iter().filter(|f| f.status == status).count();
        let cards: usize = report.flows.iter().map(|f| f.unconverted.len()).sum();
        let mut out = format!(
            "Imported {} flow(s) from {} file(s) into {}: {} exact, {} approximate, {} partial",
            report.flows.len(),
            self.sources.len(),
            written.dir.display(),
            count(Status::Exact),
            count(Status::Approximate),
            count(Status::Partial),
        );
        if cards > 0 {
            out.push_str(&format!(
                " ({cards} card(s) left as flow.fail steps marked TODO)"
            ));
        }
        out.push('\n');
        if !self.tables.is_empty() {
            out.push_str(&format!("Tables: {}\n", self.tables.len()));
        }
        for flow in &self.flows {
            if flow.report.status == Status::Partial {
                out.push_str(&format!(
                    "  partial: {} ({}):",
                    flow.report.file,
                    names::one_line(&flow.okta_name)
                ));
                for gap in &flow.report.unconverted {
                    out.push_str(&format!(" `{}` ({})", gap.card, gap.reason));
                }
                out.push('\n');
            }
        }
        out.push_str(&format!(
            "Next: fill in the connections, secrets and vars of {}, then `idflow validate {}`.\n",
            written.dir.join("idflow.yaml").display(),
            written.dir.display()
        ));
        out
    }
}
