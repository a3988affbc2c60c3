//! `idflow test` (run flow tests, print a diff per failing case, optionally write JUnit XML) and
//! `idflow record` (turn a run from history into a test case). The logic lives in
//! `domain::testing`; this module finds the files, prints and writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use domain::diag::Diagnostic;
use domain::testing::{self, CaseReport, Outcome, SuiteRun};

use crate::client;
use crate::render::{self, Colors};

/// Runs the tests of `paths` (flow directories, test files or flow files; default `./flows`).
pub fn test(
    paths: Vec<PathBuf>,
    filter: Option<String>,
    junit: Option<PathBuf>,
) -> Result<ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("./flows")]
    } else {
        paths
    };
    // Test files grouped by flow directory (and by flow, when a flow file was named).
    let mut groups: BTreeMap<(PathBuf, Option<String>), Vec<PathBuf>> = BTreeMap::new();
    for path in &paths {
        if path.is_dir() {
            groups
                .entry((path.clone(), None))
                .or_default()
                .extend(testing::test_files(path));
        } else if path.is_file() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if testing::is_test_file_name(name) {
                groups
                    .entry((testing::flows_dir_of(path), None))
                    .or_default()
                    .push(path.clone());
            } else {
                // A flow file: run the tests of that flow found in its directory.
                let flow = domain::flowfile::load_file(path).map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    anyhow::anyhow!("{}", lines.join("\n"))
                })?;
                let dir = testing::flows_dir_of(path);
                let files = testing::test_files(&dir);
                groups
                    .entry((dir, Some(flow.name)))
                    .or_default()
                    .extend(files);
            }
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    let mut suite = SuiteRun::default();
    for ((dir, only_flow), mut files) in groups {
        files.sort();
        files.dedup();
        let run = testing::run_tests(&dir, &files, only_flow.as_deref(), filter.as_deref());
        suite.diagnostics.extend(run.diagnostics);
        suite.reports.extend(run.reports);
        suite.files += run.files;
    }
    print_suite(&suite, render::colors());
    if let Some(path) = junit {
        std::fs::write(&path, junit_xml(&suite))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let empty = suite.reports.is_empty() && suite.diagnostics.is_empty();
    if empty {
        let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        match &filter {
            Some(f) if suite.files > 0 => eprintln!("no case matches --filter {f}"),
            _ => eprintln!(
                "no test files (*.test.yaml) in {}; see docs/flow-tests.md",
                paths.join(", ")
            ),
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(if suite.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_suite(suite: &SuiteRun, c: Colors) {
    // Standard error gets its own colours: it may be a terminal while standard output is piped.
    let e = render::colors_stderr();
    for d in &suite.diagnostics {
        eprintln!("{}error{}: {d}", e.red, e.reset);
    }
    let mut current_file: Option<&str> = None;
    for report in &suite.reports {
        if current_file != Some(report.file.as_str()) {
            current_file = Some(&report.file);
            println!("{}{}{} ({})", c.bold, report.file, c.reset, report.flow);
        }
        if report.passed() {
            println!("  {}ok{}    {}", c.green, c.reset, report.name);
        } else {
            println!("  {}FAIL{}  {}", c.red, c.reset, report.name);
            print!("{}", report.render_failure("        "));
        }
        for warning in &report.warnings {
            println!("        {}warning{}: {warning}", c.yellow, c.reset);
        }
    }
    let passed = suite.reports.iter().filter(|r| r.passed()).count();
    let failed = suite.reports.len() - passed;
    let mut summary = format!("{passed} passed, {failed} failed");
    if !suite.diagnostics.is_empty() {
        summary.push_str(&format!(
            ", {} error(s) in flows or test files",
            suite.diagnostics.len()
        ));
    }
    summary.push_str(&format!(
        " ({} case(s) in {} file(s))",
        suite.reports.len(),
        suite.files
    ));
    let color = if suite.passed() { c.green } else { c.red };
    println!("{color}{summary}{}", c.reset);
}

/// The suite as JUnit XML: one `testsuite` per test file, problems in files as errors of their own.
pub fn junit_xml(suite: &SuiteRun) -> String {
    let mut by_file: BTreeMap<&str, Vec<&CaseReport>> = BTreeMap::new();
    for report in &suite.reports {
        by_file.entry(&report.file).or_default().push(report);
    }
    let count = |reports: &[&CaseReport], pick: fn(&Outcome) -> bool| {
        reports.iter().filter(|r| pick(&r.outcome)).count()
    };
    let is_failure = |o: &Outcome| matches!(o, Outcome::Failed(_));
    let is_error = |o: &Outcome| matches!(o, Outcome::Error(_));
    let all: Vec<&CaseReport> = suite.reports.iter().collect();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"idflow\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
        suite.reports.len() + suite.diagnostics.len(),
        count(&all, is_failure),
        count(&all, is_error) + suite.diagnostics.len()
    ));
    if !suite.diagnostics.is_empty() {
        xml.push_str(&format!(
            "  <testsuite name=\"flow and test files\" tests=\"{0}\" failures=\"0\" errors=\"{0}\">\n",
            suite.diagnostics.len()
        ));
        for d in &suite.diagnostics {
            xml.push_str(&diagnostic_case(d));
        }
        xml.push_str("  </testsuite>\n");
    }
    for (file, reports) in by_file {
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
            escape(file),
            reports.len(),
            count(&reports, is_failure),
            count(&reports, is_error)
        ));
        for report in reports {
            xml.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\"",
                escape(&report.flow),
                escape(&report.name),
                escape(&report.file)
            ));
            let details = report.render_failure("");
            let body = match &report.outcome {
                Outcome::Passed => String::new(),
                Outcome::Failed(m) => format!(
                    "      <failure message=\"{} expectation(s) not met\">{}</failure>\n",
                    m.len(),
                    escape(&details)
                ),
                Outcome::Error(message) => format!(
                    "      <error message=\"{}\">{}</error>\n",
                    escape(message),
                    escape(&details)
                ),
            };
            let warnings = if report.warnings.is_empty() {
                String::new()
            } else {
                format!(
                    "      <system-err>{}</system-err>\n",
                    escape(&report.warnings.join("\n"))
                )
            };
            if body.is_empty() && warnings.is_empty() {
                xml.push_str("/>\n");
            } else {
                xml.push_str(&format!(">\n{body}{warnings}    </testcase>\n"));
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn diagnostic_case(d: &Diagnostic) -> String {
    format!(
        "    <testcase classname=\"{}\" name=\"{}\"><error message=\"{}\"/></testcase>\n",
        escape(&d.file),
        escape(&format!("{}:{}", d.line, d.column)),
        escape(&d.to_string())
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped; ANSI colours never reach here.
            c if c.is_control() && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Fetches a run from the admin API and writes it as a test case (to stdout without `--out`).
pub async fn record(
    run_id: &str,
    out: Option<PathBuf>,
    server: &client::ServerArgs,
) -> Result<ExitCode> {
    let client = client::Client::new(server)?;
    let run = client.get_run(run_id).await?;
    let recorded = testing::record_case(&run)?;
    let Some(path) = out else {
        print!("{}", recorded.file_yaml);
        return Ok(ExitCode::SUCCESS);
    };
    write_recorded(&path, &recorded)?;
    eprintln!(
        "wrote case `{}` to {}; run it with `idflow test {}`",
        recorded.case_name,
        path.display(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates the test file, or appends the case to an existing one.
fn write_recorded(path: &Path, recorded: &testing::Recorded) -> Result<()> {
    let text = if path.exists() {
        let source = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        testing::append_case(&path.display().to_string(), &source, recorded)?
    } else {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        recorded.file_yaml.clone()
    };
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flows")
    }

    #[test]
    fn the_examples_pass_and_a_broken_test_file_fails_the_run() {
        assert_eq!(
            test(vec![examples()], None, None).ok(),
            Some(ExitCode::SUCCESS)
        );
        let dir = std::env::temp_dir().join(format!("idflow-test-cmd-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("tests")).ok();
        std::fs::write(
            dir.join("hello.yaml"),
            "name: hello\nsteps:\n  - { id: t, card: text.compose, with: { text: hi } }\n",
        )
        .ok();
        std::fs::write(
            dir.join("tests/hello.test.yaml"),
            "cases:\n  - name: a\n    expect: { status: succeded }\n",
        )
        .ok();
        let junit = dir.join("junit.xml");
        assert_eq!(
            test(vec![dir.clone()], None, Some(junit.clone())).ok(),
            Some(ExitCode::FAILURE)
        );
        let xml = std::fs::read_to_string(&junit).unwrap_or_default();
        assert!(xml.contains("errors=\"1\""), "{xml}");
        assert!(xml.contains("did you mean `succeeded`?"), "{xml}");
        // Nothing to run is a failure too: CI must not pass on an empty directory by mistake.
        std::fs::remove_file(dir.join("tests/hello.test.yaml")).ok();
        assert_eq!(
            test(vec![dir.clone()], None, None).ok(),
            Some(ExitCode::FAILURE)
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn junit_lists_each_case_with_its_failure_escaped() {
        let dir = examples();
        let files = testing::test_files(&dir);
        let mut suite = testing::run_tests(&dir, &files, None, Some("greet"));
        assert!(suite.passed());
        let xml = junit_xml(&suite);
        assert!(
            xml.contains("<testcase classname=\"greet\" name=\"counts the caller&apos;s groups\""),
            "{xml}"
        );
        suite.reports[0].outcome = Outcome::Failed(vec![domain::testing::Mismatch::values(
            "return.body",
            &serde_json::json!("<a & b>"),
            None,
        )]);
        let xml = junit_xml(&suite);
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(
            xml.contains("expected: &quot;&lt;a &amp; b&gt;&quot;"),
            "{xml}"
        );
    }
}
