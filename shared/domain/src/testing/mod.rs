//! Flow tests: `<flow>.test.yaml` files that run a flow against stubbed cards, in-process, with a
//! frozen clock, and check what it did. `docs/flow-tests.md` documents the format for users.
//!
//! A case runs its flow with the effect driver every run goes through ([`crate::runner::driver`]),
//! in-process: no store, no queue, no network. I/O card calls are answered by the case's stubs (a
//! call without a stub fails the case), helper flows of the same project run in-process unless a
//! `flow.call` stub answers for them, pure cards run for real, and time stands still at `now`
//! except when a timer (a retry delay, a `wait`) moves it forward. After every step the run's state
//! is written as a checkpoint and read back before the next one, and every wait is taken by
//! resuming the run from its checkpoint, so a passing case shows the flow resumes.
//!
//! Pure cards cannot be stubbed, on purpose: they compute only from their input and the step time,
//! both of which a test controls (stubs feed the inputs, `now:` fixes the time), so running them
//! for real costs nothing and keeps the test honest about what the flow does with the data.
//!
//! # Layout
//! - `format`: test files to [`TestFile`], with file/line/field diagnostics, and the checks against
//!   the project ([`TestFile::check`]).
//! - `project`: the compiled flows a suite runs ([`TestProject`]).
//! - `runner`: runs a case and compares the run with its expectations ([`run_case`]).
//! - `harness`: the in-process side of a case's runs: stubs, helper runs, the manual clock and the
//!   checkpoints, on the effect driver.
//! - `matching`: partial matching of JSON values and the diff a failure prints ([`Mismatch`]).
//! - `record`: turns a run from the admin API into a test case ([`record_case`]).

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;

mod format;
mod harness;
mod matching;
mod project;
mod record;
mod runner;
mod yaml;

#[cfg(test)]
mod tests;

/// The test-file parser's key lists, which the JSON Schema must match (checked in `crate::schema`).
#[cfg(test)]
pub(crate) mod keys {
    pub(crate) use super::format::{
        ANSWER_KEYS, CALL_KEYS, CASE_KEYS, ERROR_KEYS, EXPECT_KEYS, FILE_KEYS, RETURN_KEYS,
        RUN_ERROR_KEYS, STEP_EXPECT_KEYS, STUB_KEYS,
    };
}

pub use format::{
    Answer, CallExpect, Case, CaseTrigger, Defaults, Expect, StepExpect, Stub, TestFile,
    flow_name_from_file, parse_test_file,
};
pub use harness::{MAX_DEPTH, step_matches, stub_matches};
pub use matching::{Mismatch, base_step, diff, matches};
pub use project::{StepInfo, TestProject};
pub use record::{RecordError, Recorded, append_case, record_case};
pub use runner::{CaseReport, DEFAULT_NOW, Outcome, run_case, run_file, selected};

/// Whether a file name is a test file: `*.test.yaml`, `*.test.yml` or `*.test.json`.
pub fn is_test_file_name(name: &str) -> bool {
    !name.starts_with('.') && flow_name_from_file(name).is_some()
}

/// The test files of a flow directory: beside the flows and under `tests/`, sorted by path.
pub fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for folder in [dir.to_path_buf(), dir.join("tests")] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut here: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .filter(|e| e.file_name().to_str().is_some_and(is_test_file_name))
            .map(|e| e.path())
            .collect();
        here.sort();
        found.extend(here);
    }
    found
}

/// The flow directory a test file belongs to: its own directory, or the parent of a `tests/` one.
pub fn flows_dir_of(test_file: &Path) -> PathBuf {
    let parent = test_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if parent.file_name().is_some_and(|n| n == "tests") {
        parent.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        parent.to_path_buf()
    }
}

/// Reads and parses one test file, named in diagnostics as `path` is written.
pub fn load_test_file(path: &Path) -> Result<TestFile, Vec<Diagnostic>> {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => parse_test_file(&label, &source),
        Err(error) => Err(vec![Diagnostic {
            file: label,
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the file: {}", error.to_string().to_lowercase()),
        }]),
    }
}

/// What running test files produced.
#[derive(Debug, Default)]
pub struct SuiteRun {
    /// Problems in the flows, the project or the test files. Files with problems do not run.
    pub diagnostics: Vec<Diagnostic>,
    /// One report per case run.
    pub reports: Vec<CaseReport>,
    /// Test files read.
    pub files: usize,
}

impl SuiteRun {
    /// Whether every case passed and nothing was malformed.
    pub fn passed(&self) -> bool {
        self.diagnostics.is_empty() && self.reports.iter().all(CaseReport::passed)
    }
}

/// Runs test files against the flows of `dir`. With `only_flow`, files testing other flows are
/// skipped; with `filter`, only cases whose name or flow contains it run.
pub fn run_tests(
    dir: &Path,
    files: &[PathBuf],
    only_flow: Option<&str>,
    filter: Option<&str>,
) -> SuiteRun {
    let project = TestProject::load(dir);
    let mut run = SuiteRun {
        diagnostics: project.diagnostics.clone(),
        ..SuiteRun::default()
    };
    for path in files {
        let file = match load_test_file(path) {
            Ok(file) => file,
            Err(errors) => {
                run.files += 1;
                run.diagnostics.extend(errors);
                continue;
            }
        };
        if only_flow.is_some_and(|flow| flow != file.flow) {
            continue;
        }
        run.files += 1;
        let problems = file.check(&project);
        if !problems.is_empty() {
            run.diagnostics.extend(problems);
            continue;
        }
        run.reports.extend(run_file(&project, &file, filter));
    }
    run
}
