//! Reading runs and flows: the use-cases behind the admin API, the console and the CLI (a run and
//! its steps, run listings with the filters a store cannot apply itself, waiting for a run to end,
//! the deployed flows and one flow's detail and recent activity).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::engine::CompiledFlow;
use crate::ports::StoredFlow;
use crate::run::{Run, RunId, RunPage, RunQuery, StepRecord};

use super::error::RunnerError;
use super::runtime::{RunEnded, Runtime};

/// Runs examined at most by one filtered listing (`parent` or `text`) before it answers with a
/// cursor.
pub const SCAN_LIMIT: usize = 1000;

/// Runs counted at most for a flow's "runs in the last 24 h".
const COUNT_LIMIT: usize = 5000;

/// The first and the longest period of [`Runtime::wait_for_end`]'s fallback look at the store.
const FIRST_LOOK: Duration = Duration::from_millis(250);
const LONGEST_LOOK: Duration = Duration::from_secs(4);

/// Filters of a run listing that the run store cannot apply itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Only helper runs started by this run.
    pub parent: Option<RunId>,
    /// Only runs whose input, output, error or step records contain this text, ignoring case.
    pub text: Option<String>,
}

/// A flow's recent activity.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowStats {
    /// The newest run as `{id, status, createdAt}`, or null.
    pub last_run: Value,
    /// Runs created in the last 24 hours (counted up to 5000).
    pub runs_24h: usize,
    /// Since when the flow is paused, or `None` when its triggers start runs.
    pub paused: Option<DateTime<Utc>>,
}

/// A deployed flow: what the store keeps, and its compiled form or why it does not compile.
pub struct DeployedFlow {
    pub stored: StoredFlow,
    pub compiled: Result<Arc<CompiledFlow>, RunnerError>,
}

impl DeployedFlow {
    /// The trigger kind, or `invalid` when the flow does not compile.
    pub fn trigger_kind(&self) -> &'static str {
        match &self.compiled {
            Ok(flow) => flow.flow.trigger.kind(),
            Err(_) => "invalid",
        }
    }
}

impl Runtime {
    /// A run, if it exists.
    pub async fn run(&self, id: RunId) -> Result<Option<Run>, RunnerError> {
        Ok(self.runs.get(id).await?)
    }

    /// A run's step records, in order.
    pub async fn steps(&self, id: RunId) -> Result<Vec<StepRecord>, RunnerError> {
        Ok(self.runs.steps(id).await?)
    }

    /// Waits up to `timeout` for a run to end, through in-process notifications with a look at the
    /// store as the fallback. `ended` must be subscribed (see [`Runtime::subscribe`]) before the run
    /// could end, so the notification is not missed. `None` when the run has not ended in time.
    ///
    /// A run that ends in this process (its worker, or [`Runtime::invoke_sync`] driving it) is
    /// announced at once; only this run's end (or a lagging channel) makes the store be read again.
    /// The fallback remains for runs that end elsewhere: a sync run that parked and was finished by
    /// a worker Lambda, a flow the invoking process cannot drive, a cancel through another process.
    /// Nothing can announce those here, so the store is looked at 250 ms after the start, then at
    /// doubling periods up to 4 s: waits that long are helper runs and timers, and the reads per
    /// wait stay few.
    pub async fn wait_for_end(
        &self,
        ended: &mut broadcast::Receiver<RunEnded>,
        run_id: RunId,
        timeout: Duration,
    ) -> Result<Option<Run>, RunnerError> {
        let deadline =
            self.clock.now() + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let mut period = FIRST_LOOK;
        loop {
            if let Some(run) = self.runs.get(run_id).await?
                && run.status.is_terminal()
            {
                return Ok(Some(run));
            }
            let now = self.clock.now();
            if now >= deadline {
                return Ok(None);
            }
            let look = (now + chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX))
                .min(deadline);
            period = period.saturating_mul(2).min(LONGEST_LOOK);
            loop {
                tokio::select! {
                    message = ended.recv() => match message {
                        // Another run's end: not worth a read.
                        Ok(end) if end.run_id != run_id => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            self.clock.sleep_until(look).await;
                            break;
                        }
                    },
                    () = self.clock.sleep_until(look) => break,
                }
            }
        }
    }

    /// Lists runs with the store's filters, then the [`RunFilter`] ones by scanning: whole store
    /// pages are examined until `limit` runs match or [`SCAN_LIMIT`] runs were examined, and the
    /// answer's cursor continues after the last page examined (so a page may hold fewer, or a few
    /// more, than `limit` runs; an empty page with a cursor means "keep going").
    pub async fn list_runs(
        &self,
        mut query: RunQuery,
        filter: &RunFilter,
    ) -> Result<RunPage, RunnerError> {
        if filter.parent.is_none() && filter.text.is_none() {
            return Ok(self.runs.list(&query).await?);
        }
        if let Some(parent) = filter.parent {
            // Helper runs are created after their parent: nothing older needs scanning.
            let Some(parent_run) = self.runs.get(parent).await? else {
                return Ok(RunPage {
                    runs: Vec::new(),
                    next_cursor: None,
                });
            };
            query.since = Some(
                query
                    .since
                    .map_or(parent_run.created_at, |s| s.max(parent_run.created_at)),
            );
        }
        let needle = filter.text.as_ref().map(|t| t.to_lowercase());
        let limit = query.limit as usize;
        let mut matched = Vec::new();
        let mut scanned = 0;
        loop {
            let page = self.runs.list(&query).await?;
            scanned += page.runs.len();
            for run in page.runs {
                if filter.parent.is_some() && run.parent != filter.parent {
                    continue;
                }
                if let Some(needle) = &needle
                    && !self.run_contains(&run, needle).await?
                {
                    continue;
                }
                matched.push(run);
            }
            match page.next_cursor {
                Some(cursor) if matched.len() < limit && scanned < SCAN_LIMIT => {
                    query.cursor = Some(cursor)
                }
                next_cursor => {
                    return Ok(RunPage {
                        runs: matched,
                        next_cursor,
                    });
                }
            }
        }
    }

    /// Whether a run's data or its step records mention `needle` (already lowercase). History is
    /// stored redacted, so the search cannot reveal a secret.
    async fn run_contains(&self, run: &Run, needle: &str) -> Result<bool, RunnerError> {
        let own = json!([run.id.to_string(), run.input, run.output, run.error]);
        if contains(&own, needle) {
            return Ok(true);
        }
        let steps = self.runs.steps(run.id).await?;
        Ok(steps.iter().any(|s| {
            s.step.to_lowercase().contains(needle)
                || contains(&json!([s.input, s.output, s.error]), needle)
        }))
    }

    /// Counts a flow's runs of the last 24 hours and finds its newest run.
    pub async fn flow_stats(&self, flow: &str) -> Result<FlowStats, RunnerError> {
        let now: DateTime<Utc> = self.clock.now();
        let mut query = RunQuery {
            flow: Some(flow.to_owned()),
            since: Some(now - chrono::Duration::hours(24)),
            limit: 500,
            ..RunQuery::default()
        };
        let mut runs_24h = 0;
        loop {
            let page = self.runs.list(&query).await?;
            runs_24h += page.runs.len();
            match page.next_cursor {
                Some(cursor) if runs_24h < COUNT_LIMIT => query.cursor = Some(cursor),
                _ => break,
            }
        }
        let newest = self
            .runs
            .list(&RunQuery {
                flow: Some(flow.to_owned()),
                limit: 1,
                ..RunQuery::default()
            })
            .await?;
        let last_run = newest.runs.first().map_or(
            Value::Null,
            |r| json!({ "id": r.id.to_string(), "status": r.status, "createdAt": r.created_at }),
        );
        let paused = self.flows.paused(flow).await?;
        Ok(FlowStats {
            last_run,
            runs_24h,
            paused,
        })
    }

    /// Since when `flow` is paused, or `None` when its triggers start runs.
    pub async fn paused(&self, flow: &str) -> Result<Option<DateTime<Utc>>, RunnerError> {
        Ok(self.flows.paused(flow).await?)
    }

    /// The current version of every deployed flow, compiled.
    pub async fn deployed_flows(&self) -> Result<Vec<DeployedFlow>, RunnerError> {
        let stored = self.flows.list().await?;
        Ok(stored
            .into_iter()
            .map(|stored| {
                let compiled =
                    self.compile(&stored.name, &stored.version, &stored.path, &stored.source);
                DeployedFlow { stored, compiled }
            })
            .collect())
    }

    /// The current version of one flow with its source, compiled; `None` when it is not deployed.
    pub async fn deployed_flow(&self, name: &str) -> Result<Option<DeployedFlow>, RunnerError> {
        let Some(stored) = self.flows.current(name).await? else {
            return Ok(None);
        };
        // The compiled form of the very version whose source is shown.
        let compiled = self.compile(&stored.name, &stored.version, &stored.path, &stored.source);
        Ok(Some(DeployedFlow { stored, compiled }))
    }
}

fn contains(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s.to_lowercase().contains(needle),
        Value::Array(items) => items.iter().any(|v| contains(v, needle)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k.to_lowercase().contains(needle) || contains(v, needle)),
        Value::Number(n) => n.to_string().contains(needle),
        Value::Bool(_) | Value::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn text_search_ignores_case_and_looks_into_keys_and_values() {
        let data = json!({ "user": { "Email": "Ada@Example.com", "age": 36 }, "tags": ["Ops"] });
        for (needle, found) in [
            ("ada@example", true),
            ("email", true),
            ("36", true),
            ("ops", true),
            ("bob", false),
        ] {
            assert_eq!(contains(&data, needle), found, "{needle}");
        }
    }
}
