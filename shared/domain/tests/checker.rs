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
        assert!(!project.flows.is_empty(), "{dir} has no flows");
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

/// The property names of schema `name` in an OpenAPI document, and whether it takes others
/// (`additionalProperties`).
fn schema_properties(spec: &yaml_rust2::Yaml, name: &str) -> Option<(Vec<String>, bool)> {
    let schema = &spec["components"]["schemas"][name];
    let properties = schema["properties"].as_hash()?;
    let mut keys: Vec<String> = properties
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    keys.sort();
    let open = match &schema["additionalProperties"] {
        yaml_rust2::Yaml::Boolean(open) => *open,
        yaml_rust2::Yaml::Hash(_) => true,
        _ => false,
    };
    Some((keys, open))
}

#[test]
fn the_okta_shapes_match_oktas_published_schemas() {
    use domain::checker::shapes;
    let dir = std::env::var_os("OKTA_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("../shared/okta"));
    let path = dir.join("okta-management-openapi.yaml");
    if !path.exists() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{} is missing; the shape test cannot run (CI=true)",
            path.display()
        );
        eprintln!(
            "\n!!!!!!!! SKIPPED: Okta shape test — {} not found (set OKTA_SPEC_DIR) !!!!!!!!\n",
            path.display()
        );
        return;
    }
    let text = std::fs::read_to_string(&path).expect("read the spec");
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("parse the spec");
    let spec = &docs[0];
    // (schema, the shape's fields, whether the shape is open)
    let cases: &[(&str, &[&str], bool)] = &[
        ("User", shapes::USER_FIELDS, false),
        ("UserProfile", shapes::USER_PROFILE_FIELDS, true),
        ("Group", shapes::GROUP_FIELDS, false),
        ("LogEvent", shapes::LOG_EVENT_FIELDS, false),
        ("LogActor", shapes::LOG_ACTOR_FIELDS, false),
        ("LogTarget", shapes::LOG_TARGET_FIELDS, false),
        ("LogOutcome", shapes::LOG_OUTCOME_FIELDS, false),
        ("LogClient", shapes::LOG_CLIENT_FIELDS, false),
    ];
    for (schema, fields, open) in cases {
        let (properties, spec_open) = schema_properties(spec, schema)
            .unwrap_or_else(|| panic!("schema {schema} not found in {}", path.display()));
        let mut ours: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        ours.sort();
        assert_eq!(ours, properties, "the fields of {schema}");
        assert_eq!(*open, spec_open, "whether {schema} is open");
    }
    // Okta group profiles take custom attributes although the schema lists two properties: the
    // shape is open on purpose.
    let (group_profile, _) =
        schema_properties(spec, "OktaUserGroupProfile").expect("OktaUserGroupProfile");
    assert_eq!(group_profile, shapes::GROUP_PROFILE_FIELDS);
}
