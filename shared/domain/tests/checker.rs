//! The checker's test table: every flow file in `tests/fixtures/checker/` is loaded as
//! `idflow validate` loads a directory, and must report exactly the diagnostics its `# expect:`
//! (errors) and `# warn:` (warnings) lines list, in order. A file with neither must be valid.
//! The flows of `examples/` and the complete flows of the docs must load with no error and no
//! warning, so the checker has no false positives there.

use std::path::{Path, PathBuf};

use domain::flowfile;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn expected(source: &str, marker: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| line.strip_prefix(marker))
        .map(|line| line.trim().to_owned())
        .collect()
}

#[test]
fn every_broken_flow_of_the_table_is_reported_at_its_line() {
    let dir = repo("shared/domain/tests/fixtures/checker");
    let project = flowfile::load_dir(&dir);
    assert!(project.errors.is_empty(), "{:#?}", project.errors);
    let mut failures = Vec::new();
    let mut cases = 0;
    for flow in &project.flows {
        cases += 1;
        let errors: Vec<String> = match &flow.result {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
        };
        let warnings: Vec<String> = flow.warnings.iter().map(ToString::to_string).collect();
        let want_errors = expected(&flow.source, "# expect:");
        let want_warnings = expected(&flow.source, "# warn:");
        if errors != want_errors || warnings != want_warnings {
            failures.push(format!(
                "{}:\n  errors   got {errors:#?}\n           want {want_errors:#?}\n  warnings got {warnings:#?}\n           want {want_warnings:#?}",
                flow.path
            ));
        }
    }
    assert!(cases >= 20, "the table has only {cases} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_examples_have_no_error_and_no_warning() {
    for dir in ["examples/flows", "docs/examples/failed-logins"] {
        let project = flowfile::load_dir(&repo(dir));
        assert!(project.flows.len() > 0, "{dir} has no flows");
        assert_eq!(project.all_diagnostics(), Vec::new(), "{dir}");
        assert_eq!(project.all_warnings(), Vec::new(), "{dir}");
    }
}

/// The ```yaml blocks of the docs and the README that are whole flows (`name:` and `steps:` at the
/// top level).
fn doc_flows() -> Vec<(String, String)> {
    let mut flows = Vec::new();
    let mut files = vec![repo("README.md")];
    if let Ok(entries) = std::fs::read_dir(repo("docs")) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "md") {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut block: Option<(usize, String)> = None;
        for (number, line) in text.lines().enumerate() {
            match &mut block {
                None if line.trim_start() == "```yaml" => block = Some((number + 2, String::new())),
                Some((start, body)) if line.trim_start() == "```" => {
                    let whole = body.lines().any(|l| l.starts_with("name:"))
                        && body.lines().any(|l| l.starts_with("steps:"));
                    if whole {
                        flows.push((format!("{name}:{start}"), body.clone()));
                    }
                    block = None;
                }
                Some((_, body)) => {
                    body.push_str(line);
                    body.push('\n');
                }
                None => {}
            }
        }
    }
    flows
}

#[test]
fn the_flows_in_the_docs_have_no_error_and_no_warning() {
    let flows = doc_flows();
    assert!(!flows.is_empty(), "no flow found in the docs");
    let mut failures = Vec::new();
    for (label, source) in &flows {
        let (result, warnings) = flowfile::check_flow_source(label, source, None);
        if let Err(errors) = result {
            failures.extend(errors.iter().map(ToString::to_string));
        }
        failures.extend(warnings.iter().map(|w| format!("warning: {w}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
