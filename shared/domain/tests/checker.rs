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

/// One of Okta's published specs (`../shared/okta/<file>`, or `$OKTA_SPEC_DIR/<file>`), parsed, with
/// its path. `None` (said loudly) when it is missing, which fails under `CI=true`.
fn okta_spec(file: &str) -> Option<(yaml_rust2::Yaml, PathBuf)> {
    okta_spec_with(file, |text| text.to_owned())
}

/// The same, read through `keep` first.
fn okta_spec_with(
    file: &str,
    keep: impl Fn(&str) -> String,
) -> Option<(yaml_rust2::Yaml, PathBuf)> {
    let dir = std::env::var_os("OKTA_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("../shared/okta"));
    let path = dir.join(file);
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
        return None;
    }
    let text = std::fs::read_to_string(&path).expect("read the spec");
    let mut docs = yaml_rust2::YamlLoader::load_from_str(&keep(&text)).expect("parse the spec");
    Some((docs.swap_remove(0), path))
}

#[test]
fn the_okta_shapes_match_oktas_published_schemas() {
    use domain::checker::shapes;
    let Some((spec, path)) = okta_spec("okta-management-openapi.yaml") else {
        return;
    };
    let spec = &spec;
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
        ("AppUser", shapes::APP_USER_FIELDS, false),
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

/// The `paths:` and `components: schemas:` sections of an OpenAPI document's text, as a document.
/// A schema defined twice keeps its last definition, as lenient YAML readers do (the governance
/// spec defines `target-principal`, among others, twice, with the same properties).
fn paths_and_schemas(text: &str) -> String {
    let mut paths = String::new();
    // (schema name, its lines), in order; a repeated name replaces the lines of the first.
    let mut schemas: Vec<(String, String)> = Vec::new();
    let mut section = "";
    let mut in_schemas = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            section = line.trim_end();
            in_schemas = false;
            continue;
        }
        if section == "paths:" {
            paths.push_str(line);
            paths.push('\n');
        } else if section == "components:" {
            if line.starts_with("  ") && !line.starts_with("   ") {
                in_schemas = line.trim_end() == "  schemas:";
            } else if in_schemas {
                if line.starts_with("    ") && !line.starts_with("     ") {
                    let name = line.trim().to_owned();
                    schemas.retain(|(n, _)| *n != name);
                    schemas.push((name, String::new()));
                }
                if let Some((_, body)) = schemas.last_mut() {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    let mut out = format!("paths:\n{paths}components:\n  schemas:\n");
    for (_, body) in schemas {
        out.push_str(&body);
    }
    out
}

/// The property names of schema `name` with its `allOf` parts and every `oneOf`/`anyOf` variant
/// (a property of any variant may be there), following `$ref`s; and whether it takes others.
fn resolved_properties(spec: &yaml_rust2::Yaml, name: &str) -> Option<(Vec<String>, bool)> {
    fn walk(
        spec: &yaml_rust2::Yaml,
        schema: &yaml_rust2::Yaml,
        depth: usize,
        keys: &mut Vec<String>,
        open: &mut bool,
    ) {
        assert!(depth < 32, "the schema's references do not end");
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap_or_default();
            let target = &spec["components"]["schemas"][name];
            assert!(!target.is_badvalue(), "unresolved {reference}");
            return walk(spec, target, depth + 1, keys, open);
        }
        for combinator in ["allOf", "oneOf", "anyOf"] {
            for part in schema[combinator].as_vec().into_iter().flatten() {
                walk(spec, part, depth + 1, keys, open);
            }
        }
        if let Some(properties) = schema["properties"].as_hash() {
            keys.extend(
                properties
                    .keys()
                    .filter_map(|k| k.as_str().map(str::to_owned)),
            );
        }
        if matches!(
            &schema["additionalProperties"],
            yaml_rust2::Yaml::Boolean(true) | yaml_rust2::Yaml::Hash(_)
        ) {
            *open = true;
        }
    }
    let schema = &spec["components"]["schemas"][name];
    if schema.is_badvalue() {
        return None;
    }
    let (mut keys, mut open) = (Vec::new(), false);
    walk(spec, schema, 0, &mut keys, &mut open);
    keys.sort();
    keys.dedup();
    Some((keys, open))
}

#[test]
fn the_access_request_shapes_match_oktas_governance_spec() {
    use domain::checker::shapes;
    // The governance spec repeats keys in `components.responses` (`list-bad-request`), which a
    // strict YAML parser refuses; its `paths` and `components.schemas` are read alone.
    let Some((spec, path)) = okta_spec_with("okta-governance-openapi.yaml", paths_and_schemas)
    else {
        return;
    };
    // What `oig.get_request` reads (`GET /governance/api/v1|v2/requests/{id}`) and what
    // `oig.list_requests` lists (the `data` of `GET /governance/api/v1|v2/requests`).
    for (route, schema) in [
        ("/governance/api/v1/requests/{requestId}", "request-full"),
        ("/governance/api/v2/requests/{requestId}", "request-full-2"),
        ("/governance/api/v1/requests", "request-list"),
        ("/governance/api/v2/requests", "request-list-2"),
    ] {
        let answer = &spec["paths"][route]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"];
        assert_eq!(
            answer.as_str(),
            Some(format!("#/components/schemas/{schema}").as_str()),
            "the answer of GET {route}"
        );
    }
    for (list, item) in [
        ("request-list", "request-sparse"),
        ("request-list-2", "request-sparse-2"),
    ] {
        let data = &spec["components"]["schemas"][list]["properties"]["data"]["items"]["$ref"];
        assert_eq!(
            data.as_str(),
            Some(format!("#/components/schemas/{item}").as_str()),
            "the items of {list}"
        );
    }
    let cases: &[(&str, &[&str])] = &[
        ("request-full", shapes::ACCESS_REQUEST_V1_FIELDS),
        ("request-full-2", shapes::ACCESS_REQUEST_V2_FIELDS),
        ("request-sparse", shapes::ACCESS_REQUEST_V1_LISTED_FIELDS),
        ("request-sparse-2", shapes::ACCESS_REQUEST_V2_LISTED_FIELDS),
        ("target-principal", shapes::REQUEST_PRINCIPAL_FIELDS),
        ("requested", shapes::REQUESTED_FIELDS),
    ];
    for (schema, fields) in cases {
        let (properties, open) = resolved_properties(&spec, schema)
            .unwrap_or_else(|| panic!("schema {schema} not found in {}", path.display()));
        let mut ours: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        ours.sort();
        assert_eq!(ours, properties, "the fields of {schema}");
        assert!(!open, "{schema} is closed in the spec, as its shape is");
    }
}
