//! Deploying a directory's flows into the flow store: `idflow serve` at start and on every change
//! of its flows directory, and tests that change the flows of a running server.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::diag::Diagnostic;
use crate::flowfile::LoadedProject;
use crate::ports::{FlowStore, PutOutcome, StoreError, StoredFlow};

use super::error::RunnerError;
use super::runtime::Runtime;

/// What a deploy of a directory changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Files that did not load; their previously deployed version (if any) stays current.
    pub diagnostics: Vec<Diagnostic>,
}

impl SyncReport {
    /// Whether the deploy added, updated or removed a flow, or found a broken file.
    pub fn changed_anything(&self) -> bool {
        !(self.added.is_empty()
            && self.updated.is_empty()
            && self.removed.is_empty()
            && self.diagnostics.is_empty())
    }
}

/// Deploys the valid flows of a loaded project into a store and removes flows whose files are gone.
pub async fn sync_flows(
    store: &dyn FlowStore,
    project: &LoadedProject,
    now: DateTime<Utc>,
) -> Result<SyncReport, StoreError> {
    let mut report = SyncReport {
        diagnostics: project.all_diagnostics(),
        ..SyncReport::default()
    };
    let mut present = BTreeSet::new();
    for loaded in &project.flows {
        let name = match &loaded.result {
            Ok(flow) => flow.name.clone(),
            Err(_) => {
                // A broken file keeps its last good version deployed under its file stem, if any.
                if let Some(stem) = Path::new(&loaded.path).file_stem().and_then(|s| s.to_str()) {
                    present.insert(stem.to_owned());
                }
                continue;
            }
        };
        present.insert(name.clone());
        let stored = StoredFlow::new(&name, &loaded.path, &loaded.source, now);
        match store.put(&stored).await? {
            PutOutcome::Added => report.added.push(name),
            PutOutcome::Updated => report.updated.push(name),
            PutOutcome::Unchanged => report.unchanged.push(name),
        }
    }
    for existing in store.list().await? {
        if !present.contains(&existing.name) && store.remove(&existing.name).await? {
            report.removed.push(existing.name);
        }
    }
    Ok(report)
}

impl Runtime {
    /// Deploys `project`'s flows into the runtime's flow store, then serves them and its
    /// `idflow.yaml` at once in this process (the caches are dropped, the project config replaced).
    pub async fn deploy(&self, project: &LoadedProject) -> Result<SyncReport, RunnerError> {
        let report = sync_flows(self.flows.as_ref(), project, self.clock.now()).await?;
        let rejected: HashMap<String, Vec<Diagnostic>> = project
            .flows
            .iter()
            .filter_map(|loaded| {
                let errors = loaded.result.as_ref().err()?;
                // The name `sync_flows` keeps a broken file's deployed version under.
                let stem = Path::new(&loaded.path).file_stem()?.to_str()?;
                Some((stem.to_owned(), errors.clone()))
            })
            .collect();
        *self.rejected.lock().unwrap_or_else(|p| p.into_inner()) = rejected;
        self.invalidate_flows();
        self.set_project(project.config.clone());
        Ok(report)
    }

    /// The errors that made the last deploy in this process refuse the file of flow `name`, whose
    /// previously deployed version (if any) is still the current one; empty when it was not
    /// refused. A deployment that never deploys from a directory (the Lambdas) refuses nothing.
    pub fn rejected_file(&self, name: &str) -> Vec<Diagnostic> {
        self.rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }
}
