//! Diagnostics: an open buffer read by the same parsers and checker as `idflow validate`, against
//! the project config of the directory it is in.
//!
//! The project is the nearest `idflow.yaml` found by walking up from the file. Its files
//! (`idflow.yaml` and `tables/*.yaml`) are read again at every check, with the editor's unsaved
//! buffers of them in place of the disk's, and decoded again only when their text changed; as in
//! `idflow validate`, `vars.*` and `secret()` are checked only against a config that loaded
//! without errors.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use domain::diag::Diagnostic as Problem;
use domain::flowfile::{self, PROJECT_FILE, TABLES_DIR};
use domain::model::ProjectConfig;
use lsp_types::{Diagnostic, DiagnosticSeverity, Url};

use crate::text::{diagnostic_range, lines};

/// What kind of file a document is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// `flows/*.yaml` (or `.yml`, `.json`).
    Flow,
    /// `<flow>.test.yaml`.
    FlowTest,
    /// `idflow.yaml`.
    Project,
    /// `tables/<name>.yaml`.
    Table,
    /// Anything else: not checked.
    Other,
}

impl FileKind {
    /// The kind of the file at `path`.
    pub(crate) fn of(path: &Path) -> FileKind {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let in_tables = path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|dir| dir == TABLES_DIR);
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if name == PROJECT_FILE || name == "idflow.yml" {
            FileKind::Project
        } else if domain::testing::is_test_file_name(&name) {
            FileKind::FlowTest
        } else if in_tables && yaml {
            FileKind::Table
        } else if yaml || name.ends_with(".json") {
            FileKind::Flow
        } else {
            FileKind::Other
        }
    }
}

/// The file system path of a document, when it has one.
pub(crate) fn path_of(uri: &Url) -> Option<PathBuf> {
    (uri.scheme() == "file")
        .then(|| uri.to_file_path().ok())
        .flatten()
}

/// A project's files as last read, and the config they decode to.
struct Cached {
    files: BTreeMap<String, String>,
    config: Option<ProjectConfig>,
}

/// The projects of the open documents, by directory.
#[derive(Default)]
pub(crate) struct Projects {
    cache: HashMap<PathBuf, Cached>,
}

impl Projects {
    /// The directory of the project `path` belongs to: the nearest one holding `idflow.yaml`.
    pub(crate) fn dir_of(path: &Path) -> Option<PathBuf> {
        path.ancestors()
            .skip(1)
            .find(|dir| dir.join(PROJECT_FILE).is_file())
            .map(Path::to_path_buf)
    }

    /// The config of the project in `dir`, with `buffers` (open documents by path) in place of
    /// the files on disk; `None` when it does not load whole.
    pub(crate) fn config(
        &mut self,
        dir: &Path,
        buffers: &HashMap<PathBuf, String>,
    ) -> Option<&ProjectConfig> {
        let mut files = flowfile::project_files(dir).ok()?;
        for (label, text) in &mut files {
            if let Some(open) = buffers.get(&dir.join(label)) {
                text.clone_from(open);
            }
        }
        let fresh = self
            .cache
            .get(dir)
            .is_none_or(|cached| cached.files != files);
        if fresh {
            let config = flowfile::parse_project_files(&files).ok();
            self.cache
                .insert(dir.to_path_buf(), Cached { files, config });
        }
        self.cache.get(dir).and_then(|c| c.config.as_ref())
    }
}

/// The diagnostics of a document of `kind`, labelled `label` (its path inside its project), with
/// `project` its project's config when it loaded.
pub(crate) fn diagnostics(
    kind: FileKind,
    label: &str,
    text: &str,
    project: Option<&ProjectConfig>,
) -> Vec<Diagnostic> {
    let (errors, warnings) = match kind {
        FileKind::Flow => {
            let (result, warnings) = flowfile::check_flow_source(label, text, project);
            (result.err().unwrap_or_default(), warnings)
        }
        FileKind::FlowTest => (
            domain::testing::parse_test_file(label, text)
                .err()
                .unwrap_or_default(),
            Vec::new(),
        ),
        FileKind::Project => (
            flowfile::parse_project(label, text)
                .err()
                .unwrap_or_default(),
            Vec::new(),
        ),
        FileKind::Table => {
            let files = BTreeMap::from([(label.to_owned(), text.to_owned())]);
            (
                flowfile::parse_project_files(&files)
                    .err()
                    .unwrap_or_default(),
                Vec::new(),
            )
        }
        FileKind::Other => (Vec::new(), Vec::new()),
    };
    let lines = lines(text.strip_prefix('\u{feff}').unwrap_or(text));
    let convert = |problem: &Problem, severity| {
        let message = if problem.path.is_empty() {
            problem.message.clone()
        } else {
            format!("{}: {}", problem.path, problem.message)
        };
        Diagnostic {
            range: diagnostic_range(&lines, problem.line, problem.column),
            severity: Some(severity),
            source: Some("idflow".into()),
            message,
            ..Diagnostic::default()
        }
    };
    errors
        .iter()
        .filter(|p| p.file == label)
        .map(|p| convert(p, DiagnosticSeverity::ERROR))
        .chain(
            warnings
                .iter()
                .filter(|p| p.file == label)
                .map(|p| convert(p, DiagnosticSeverity::WARNING)),
        )
        .collect()
}

/// How a document is named in its diagnostics: its path inside its project (a table file keeps
/// its `tables/` folder, which decides how it is read), else its file name.
pub(crate) fn label_of(path: &Path, project: Option<&Path>) -> String {
    if let Some(relative) = project.and_then(|dir| path.strip_prefix(dir).ok()) {
        return relative.to_string_lossy().replace('\\', "/");
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if FileKind::of(path) == FileKind::Table {
        format!("{TABLES_DIR}/{name}")
    } else {
        name.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_types::Position;

    #[test]
    fn file_kinds_follow_the_names_validate_uses() {
        assert_eq!(FileKind::of(Path::new("/p/flows/a.yaml")), FileKind::Flow);
        assert_eq!(
            FileKind::of(Path::new("/p/flows/a.test.yaml")),
            FileKind::FlowTest
        );
        assert_eq!(
            FileKind::of(Path::new("/p/flows/idflow.yaml")),
            FileKind::Project
        );
        assert_eq!(
            FileKind::of(Path::new("/p/flows/tables/t.yml")),
            FileKind::Table
        );
        assert_eq!(
            FileKind::of(Path::new("/p/flows/notes.md")),
            FileKind::Other
        );
    }

    #[test]
    fn errors_and_warnings_land_where_the_checker_puts_them() {
        let text = "name: demo\nsteps:\n  - id: maybe\n    if: \"{{ input.go }}\"\n    card: text.compose\n    with: { text: a }\n  - card: text.compose\n    with: { text: \"é {{ stpes.a }} {{ steps.maybe }}\" }\n";
        let found = diagnostics(FileKind::Flow, "demo.yaml", text, None);
        let error = found
            .iter()
            .find(|d| d.severity == Some(DiagnosticSeverity::ERROR))
            .expect("an error");
        assert!(
            error.message.contains("unknown name `stpes`"),
            "{}",
            error.message
        );
        // `é` is one UTF-16 unit: `stpes` starts at unit 24 of line 8.
        assert_eq!(error.range.start, Position::new(7, 24));
        assert_eq!(error.range.end, Position::new(7, 31));
        assert!(
            found
                .iter()
                .any(|d| d.severity == Some(DiagnosticSeverity::WARNING)
                    && d.message.contains("may not have run"))
        );
    }

    #[test]
    fn vars_are_checked_against_the_project_and_project_files_are_checked_too() {
        let text =
            "name: demo\nsteps:\n  - card: text.compose\n    with: { text: \"{{ vars.orgg }}\" }\n";
        let project = flowfile::parse_project("idflow.yaml", "vars:\n  org: acme\n").unwrap();
        let found = diagnostics(FileKind::Flow, "demo.yaml", text, Some(&project));
        assert!(
            found[0].message.contains("did you mean `org`?"),
            "{found:?}"
        );
        assert!(diagnostics(FileKind::Flow, "demo.yaml", text, None).is_empty());
        let broken = diagnostics(FileKind::Project, "idflow.yaml", "vars: [1]\n", None);
        assert_eq!(broken.len(), 1, "{broken:?}");
        let test = diagnostics(FileKind::FlowTest, "demo.test.yaml", "cases: 3\n", None);
        assert!(!test.is_empty());
    }
}
