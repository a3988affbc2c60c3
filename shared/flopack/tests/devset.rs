//! Imports every template of the dev set (Okta's official templates, `shared/flopack/` beside the
//! repository, or `$FLOPACK_DEVSET_DIR`) and checks what idflow makes of the result. Without the
//! dev set the test fails under `CI=true` and is skipped, loudly, elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn devset() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOPACK_DEVSET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/flopack")
        });
    if !dir.is_dir() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{} is missing; the dev-set import test cannot run (CI=true)",
                dir.display()
            );
        }
        eprintln!(
            "\n!!!!!!!! SKIPPED: dev-set import test — {} not found (set FLOPACK_DEVSET_DIR) !!!!!!!!\n",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

fn templates(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .expect("read the dev set")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("workflow.flopack").is_file())
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, p.join("workflow.flopack"))
        })
        .collect();
    found.sort();
    found
}

fn scratch(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!("flopack-devset-{}-{label}", std::process::id()))
}

#[test]
fn every_template_imports_into_a_project_idflow_accepts() {
    let Some(dir) = devset() else { return };
    let templates = templates(&dir);
    assert!(!templates.is_empty(), "no template in {}", dir.display());
    let mut failures = Vec::new();
    let mut imported = 0;
    let mut valid_projects = 0;
    let mut flows = 0;
    let mut valid_flows = 0;
    let mut complete = 0;
    let mut exact = 0;
    let mut missing_cards: BTreeMap<String, usize> = BTreeMap::new();
    let mut gaps_by_connector: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, file) in &templates {
        let import = match flopack::import_paths(std::slice::from_ref(file)) {
            Ok(import) => import,
            Err(error) => {
                failures.push(format!("{name}: import failed: {error}"));
                continue;
            }
        };
        imported += 1;
        let keep = std::env::var_os("FLOPACK_DEVSET_OUT").map(PathBuf::from);
        let out = keep
            .as_ref()
            .map_or_else(|| scratch(name), |dir| dir.join(name));
        let _ = std::fs::remove_dir_all(&out);
        if let Err(error) = import.write(&out) {
            failures.push(format!("{name}: write failed: {error}"));
            continue;
        }
        let project = domain::flowfile::load_dir(&out);
        let diagnostics = project.all_diagnostics();
        if diagnostics.is_empty() {
            valid_projects += 1;
        }
        for d in &diagnostics {
            failures.push(format!("{name}: {d}"));
        }
        for loaded in &project.flows {
            flows += 1;
            // Beyond loading, the engine compiles every template, as `idflow serve` does.
            if let Ok(flow) = &loaded.result {
                match domain::engine::CompiledFlow::new(flow.clone(), &loaded.path) {
                    Ok(_) => valid_flows += 1,
                    Err(errors) => {
                        for e in errors {
                            failures.push(format!("{name}: {e}"));
                        }
                    }
                }
            }
        }
        for flow in import.report().flows {
            if flow.unconverted.is_empty() {
                complete += 1;
            }
            if flow.status == flopack::Status::Exact {
                exact += 1;
            }
            for gap in &flow.unconverted {
                if gap.reason.contains("idflow refuses") {
                    failures.push(format!("{name}/{}: {}", flow.flow, gap.reason));
                }
                if let Some(card) = gap.reason.strip_prefix("needs card ") {
                    *missing_cards.entry(card.to_owned()).or_default() += 1;
                }
                let connector = flopack::pack::Address::parse(&gap.address).key();
                gaps_by_connector
                    .entry(connector)
                    .or_default()
                    .push(format!("{name}/{}: {}", flow.flow, gap.reason));
            }
        }
        if keep.is_none() {
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    let share = if flows == 0 {
        0.0
    } else {
        100.0 * complete as f64 / flows as f64
    };
    eprintln!("\n==== dev-set import ({} templates) ====", templates.len());
    eprintln!(
        "templates imported without error: {imported}/{}",
        templates.len()
    );
    eprintln!(
        "projects with no diagnostic:      {valid_projects}/{}",
        templates.len()
    );
    eprintln!("written flows that validate:      {valid_flows}/{flows}");
    eprintln!(
        "flows with nothing unconverted:   {complete}/{flows} ({share:.1} %), exact: {exact}"
    );
    eprintln!("missing cards (uses):");
    for (card, uses) in &missing_cards {
        eprintln!("  {card}: {uses}");
    }
    eprintln!("unconverted cards by connector:");
    for (connector, gaps) in &gaps_by_connector {
        eprintln!("  {connector}: {}", gaps.len());
        for gap in gaps {
            eprintln!("    {gap}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(imported, templates.len());
    assert_eq!(valid_flows, flows);
}
