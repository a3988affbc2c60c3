//! The flows a test suite runs: every flow of a directory, compiled once, and what each step is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::diag::Diagnostic;
use crate::engine::CompiledFlow;
use crate::flowfile;
use crate::model::{Flow, LoopBody, OnError, Step, StepKind};

/// The compiled flows of a project and its `vars`.
pub struct TestProject {
    flows: BTreeMap<String, Arc<CompiledFlow>>,
    /// Names (or, failing that, file stems) of flow files that did not load or compile.
    failed: BTreeSet<String>,
    /// `vars` of `idflow.yaml`.
    pub vars: Map<String, Value>,
    /// Problems of the project itself: flow files, `idflow.yaml`, checks across files.
    pub diagnostics: Vec<Diagnostic>,
}

/// What a step is, for checking stubs and expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepInfo {
    /// A card step and its card.
    Card(String),
    /// A `for_each`/`map` over a helper flow: one helper run per item.
    HelperLoop,
    /// Any other control step (`if`, `try`, `wait`, inline loops, ...), by keyword.
    Control(&'static str),
}

impl TestProject {
    /// Loads and compiles every flow of a flow directory (see [`flowfile::load_dir`]).
    pub fn load(dir: &Path) -> TestProject {
        let loaded = flowfile::load_dir(dir);
        let mut failed = BTreeSet::new();
        for flow in &loaded.flows {
            if flow.result.is_err() {
                failed.insert(name_of_broken_file(&flow.path, &flow.source));
            }
        }
        let diagnostics = loaded.all_diagnostics();
        let flows: Vec<Flow> = loaded.valid_flows().cloned().collect();
        let labels: BTreeMap<String, String> = loaded
            .flows
            .iter()
            .filter_map(|f| {
                f.result
                    .as_ref()
                    .ok()
                    .map(|flow| (flow.name.clone(), f.path.clone()))
            })
            .collect();
        let mut project = TestProject::compile(flows, &labels, loaded.config.vars.clone());
        project.failed.extend(failed);
        let mut all = diagnostics;
        all.append(&mut project.diagnostics);
        project.diagnostics = all;
        project
    }

    /// A project made of already parsed flows (tests, documentation examples).
    pub fn from_flows(flows: Vec<Flow>, vars: Map<String, Value>) -> TestProject {
        let labels = flows
            .iter()
            .map(|f| (f.name.clone(), format!("{}.yaml", f.name)))
            .collect();
        TestProject::compile(flows, &labels, vars)
    }

    fn compile(
        flows: Vec<Flow>,
        labels: &BTreeMap<String, String>,
        vars: Map<String, Value>,
    ) -> TestProject {
        let mut project = TestProject {
            flows: BTreeMap::new(),
            failed: BTreeSet::new(),
            vars,
            diagnostics: Vec::new(),
        };
        for flow in flows {
            let name = flow.name.clone();
            let label = labels.get(&name).cloned().unwrap_or_else(|| name.clone());
            match CompiledFlow::new(flow, &label) {
                Ok(compiled) => {
                    project.flows.insert(name, Arc::new(compiled));
                }
                Err(errors) => {
                    project.diagnostics.extend(errors);
                    project.failed.insert(name);
                }
            }
        }
        project
    }

    /// A compiled flow by name.
    pub fn flow(&self, name: &str) -> Option<&Arc<CompiledFlow>> {
        self.flows.get(name)
    }

    /// Names of the flows that loaded.
    pub fn flow_names(&self) -> impl Iterator<Item = &str> {
        self.flows.keys().map(String::as_str)
    }

    /// Whether a flow of that name exists but has errors.
    pub fn failed_to_load(&self, name: &str) -> bool {
        self.failed.contains(name)
    }

    /// Every step of one flow by key, at any depth.
    pub fn steps_of(&self, name: &str) -> BTreeMap<String, StepInfo> {
        let mut out = BTreeMap::new();
        if let Some(flow) = self.flows.get(name) {
            collect_steps(&flow.flow.steps, &mut out, &mut BTreeSet::new());
        }
        out
    }

    /// Every step of a flow and of the helper flows it runs (`flow.call` with a literal flow name,
    /// loops over a helper flow), transitively.
    pub fn steps_reachable_from(&self, name: &str) -> BTreeMap<String, StepInfo> {
        let mut out = BTreeMap::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut queue = vec![name.to_owned()];
        while let Some(next) = queue.pop() {
            if !seen.insert(next.clone()) {
                continue;
            }
            let Some(flow) = self.flows.get(&next) else {
                continue;
            };
            let mut called = BTreeSet::new();
            collect_steps(&flow.flow.steps, &mut out, &mut called);
            queue.extend(called);
        }
        out
    }
}

/// The flow name a broken file probably declares, to say "has errors" rather than "unknown flow".
fn name_of_broken_file(path: &str, source: &str) -> String {
    flowfile::parse_document(path, source)
        .ok()
        .and_then(|doc| {
            doc.value
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| {
            let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
            file.split('.').next().unwrap_or(file).to_owned()
        })
}

fn collect_steps(
    steps: &[Step],
    out: &mut BTreeMap<String, StepInfo>,
    called: &mut BTreeSet<String>,
) {
    for step in steps {
        let info = match &step.kind {
            StepKind::Card { card, with } => {
                if matches!(card.as_str(), "flow.call" | "flow.start")
                    && let Some(flow) = with.get("flow").and_then(Value::as_str)
                    && !flow.contains("{{")
                {
                    called.insert(flow.to_owned());
                }
                StepInfo::Card(card.clone())
            }
            StepKind::If {
                then, otherwise, ..
            } => {
                collect_steps(then, out, called);
                collect_steps(otherwise, out, called);
                StepInfo::Control("if")
            }
            StepKind::ContinueIf { .. } => StepInfo::Control("continue_if"),
            StepKind::Loop(l) => {
                let keyword = if l.collect { "map" } else { "for_each" };
                match &l.body {
                    LoopBody::Steps(body) => {
                        collect_steps(body, out, called);
                        StepInfo::Control(keyword)
                    }
                    LoopBody::Flow { flow, .. } => {
                        called.insert(flow.clone());
                        StepInfo::HelperLoop
                    }
                }
            }
            StepKind::Try { steps, catch } => {
                collect_steps(steps, out, called);
                collect_steps(catch, out, called);
                StepInfo::Control("try")
            }
            StepKind::Wait { .. } => StepInfo::Control("wait"),
            StepKind::WaitUntil { .. } => StepInfo::Control("wait_until"),
        };
        if let OnError::Steps(handlers) = &step.on_error {
            collect_steps(handlers, out, called);
        }
        out.entry(step.key.clone()).or_insert(info);
    }
}
