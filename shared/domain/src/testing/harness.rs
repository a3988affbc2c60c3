//! The in-process side of a flow test: its runs are driven by the same effect driver as production
//! runs ([`crate::runner::driver`]), on stubs instead of executors, helper flows run in-process
//! instead of queued, a [`ManualClock`] that only timers move, and a host that keeps each
//! checkpoint as JSON text, the way the stores keep it.
//!
//! Runs are driven with [`Restore::EveryStep`]: after every step the state is written as a
//! checkpoint and the run goes on from what that text reads back as, and a resume from each
//! checkpoint is checked to re-issue exactly the calls in flight. Waits are taken by parking the
//! run, moving the clock to its wake-up time and resuming it from its checkpoint, as a worker
//! woken from the queue does. So a passing case shows the flow resumes from any of its checkpoints.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::format::{Answer, Stub};
use super::matching::{base_step, matches};
use super::project::TestProject;
use crate::cards::{self, CardCall, CardError, CardKind};
use crate::clock::ManualClock;
use crate::engine::{CompiledFlow, Event, Progress, RunContext, RunState};
use crate::model::{HistoryMode, ProjectConfig};
use crate::ports::Clock;
use crate::run::{RunError, RunId, StepRecord, StepStatus};
use crate::runner::driver::{
    CardCalls, ChildRuns, DriveError, DriveOptions, Parked, Restore, RunDriver, RunHost,
};

/// Helper flows may call helper flows this deep before a case stops (a flow that calls itself).
pub const MAX_DEPTH: usize = 32;

/// `advance` calls one run may take before the case stops as endless.
const MAX_ROUNDS: usize = 100_000;

/// Why a case could not run to its end; the message is shown as the case's error.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CaseError(pub String);

impl From<DriveError> for CaseError {
    fn from(error: DriveError) -> CaseError {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        CaseError(message)
    }
}

/// One call a run made: an I/O card attempt, a helper run (`flow.call`), or a pure card.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Call {
    /// The step's history name (`each[2].call`).
    pub step: String,
    pub card: String,
    pub input: Value,
}

/// A run that ended.
pub(super) struct Finished {
    pub flow: String,
    pub progress: Progress,
    pub records: Vec<StepRecord>,
}

/// What the runs of a case did, shared by the whole run tree.
#[derive(Default)]
pub(super) struct Log {
    /// Calls answered by each stub.
    pub used: Vec<usize>,
    pub calls: Vec<Call>,
    /// Runs started so far (for deterministic run ids).
    runs: u64,
}

/// The runs of one case.
pub(super) struct Harness<'p> {
    pub project: &'p TestProject,
    pub stubs: &'p [Stub],
    /// Shared by the whole run tree; only timers move it.
    pub clock: ManualClock,
    pub vars: Value,
    pub secrets: BTreeMap<String, String>,
    pub log: Mutex<Log>,
}

impl<'p> Harness<'p> {
    pub fn new(
        project: &'p TestProject,
        stubs: &'p [Stub],
        now: DateTime<Utc>,
        vars: Value,
        secrets: BTreeMap<String, String>,
    ) -> Harness<'p> {
        Harness {
            project,
            stubs,
            clock: ManualClock::new(now),
            vars,
            secrets,
            log: Mutex::new(Log {
                used: vec![0; stubs.len()],
                ..Log::default()
            }),
        }
    }

    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `flow` with `input` to its end (`depth`: how many helper runs deep).
    pub fn run<'a>(
        &'a self,
        flow: &'a CompiledFlow,
        input: Value,
        depth: usize,
    ) -> BoxFuture<'a, Result<Finished, CaseError>> {
        Box::pin(async move {
            let now = self.clock.now();
            let runs = {
                let mut log = self.log();
                log.runs += 1;
                log.runs
            };
            let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
            let run_id = RunId(ulid::Ulid::from_parts(millis, u128::from(runs)));
            let secrets = flow
                .secret_names
                .iter()
                .map(|name| {
                    let value = self
                        .secrets
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| format!("test-secret-{name}"));
                    (name.clone(), value)
                })
                .collect();
            let ctx = RunContext::new(
                run_id.to_string(),
                flow.flow.name.clone(),
                now,
                input,
                self.vars.clone(),
                secrets,
                // Tests look at every step, whatever the flow keeps in production.
                HistoryMode::All,
            );
            let name = flow.flow.name.as_str();
            let driver = RunDriver {
                flow,
                ctx: &ctx,
                run_id,
                project: Arc::new(ProjectConfig::default()),
                clock: Arc::new(self.clock.clone()),
                cards: &Stubs {
                    harness: self,
                    flow: name,
                    depth,
                },
                children: &Helpers {
                    harness: self,
                    flow: name,
                    depth,
                },
                options: DriveOptions {
                    // Every wait parks the run, which the host resumes after moving the clock.
                    inline_wait: Duration::ZERO,
                    restore: Restore::EveryStep,
                    max_rounds: Some(MAX_ROUNDS),
                },
            };
            let mut host = CaseHost {
                harness: self,
                flow: name,
                stored: None,
                records: Vec::new(),
                progress: None,
            };
            driver
                .drive(&mut host, &mut RunState::new(), Event::Start)
                .await?;
            match host.progress {
                Some(progress) => Ok(Finished {
                    flow: name.to_owned(),
                    progress,
                    records: host.records,
                }),
                None => Err(CaseError(format!("run of `{name}` did not end"))),
            }
        })
    }

    /// Pure and engine-handled cards show up only as records; note them as calls.
    fn note_records(&self, records: &[StepRecord]) {
        let mut log = self.log();
        for record in records {
            if record.status == StepStatus::Skipped {
                continue;
            }
            let kind = cards::lookup(&record.card).map(|c| (c.name, c.kind));
            let counted = match kind {
                Some((_, CardKind::Pure(_))) => true,
                Some((name, CardKind::Flow)) => name != "flow.call",
                _ => false,
            };
            if counted {
                log.calls.push(Call {
                    step: record.step.clone(),
                    card: record.card.clone(),
                    input: record.input.clone().unwrap_or(Value::Null),
                });
            }
        }
    }

    /// Notes a call and answers it with the first stub that matches, if any.
    fn stubbed(&self, step: &str, card: &str, input: &Value) -> Result<Option<Answer>, CaseError> {
        let mut log = self.log();
        log.calls.push(Call {
            step: step.to_owned(),
            card: card.to_owned(),
            input: input.clone(),
        });
        for (index, stub) in self.stubs.iter().enumerate() {
            if !stub_matches(stub, step, card, input) {
                continue;
            }
            let Some(used) = log.used.get_mut(index) else {
                continue;
            };
            let n = *used;
            *used += 1;
            if !stub.sequence {
                return Ok(stub.answers.first().cloned());
            }
            return match stub.answers.get(n) {
                Some(answer) => Ok(Some(answer.clone())),
                None => Err(CaseError(format!(
                    "{} gave all {} answer(s) of its sequence; call {} of `{card}` at step `{step}` has no answer",
                    stub.describe(index),
                    stub.answers.len(),
                    n + 1
                ))),
            };
        }
        Ok(None)
    }
}

fn in_helper(flow: &str, depth: usize) -> String {
    if depth == 0 {
        String::new()
    } else {
        format!(" in helper flow `{flow}`")
    }
}

/// Card calls of one run, answered by the case's stubs as they are issued.
struct Stubs<'h, 'p> {
    harness: &'h Harness<'p>,
    flow: &'h str,
    depth: usize,
}

impl CardCalls<CaseError> for Stubs<'_, '_> {
    fn call(
        &self,
        call: CardCall,
    ) -> Result<BoxFuture<'static, Result<Value, CardError>>, CaseError> {
        let answer = self
            .harness
            .stubbed(&call.step, &call.card, &call.input)?
            .ok_or_else(|| {
                CaseError(format!(
                    "no stub for card `{}` at step `{}`{}; add one under `stubs:` (tests never call the network)",
                    call.card,
                    call.step,
                    in_helper(self.flow, self.depth)
                ))
            })?;
        // A stubbed timeout lasts the step's own timeout.
        let answer = match answer {
            Err(CardError::Timeout(_)) => Err(CardError::Timeout(call.timeout)),
            other => other,
        };
        Ok(futures::future::ready(answer).boxed())
    }
}

/// Helper runs of one run: a `flow.call` stub answers, or the helper flow of the project runs
/// in-process to its end.
struct Helpers<'h, 'p> {
    harness: &'h Harness<'p>,
    flow: &'h str,
    depth: usize,
}

#[async_trait]
impl ChildRuns<CaseError> for Helpers<'_, '_> {
    fn answer(
        &self,
        step: &str,
        helper: &str,
        with: &Value,
    ) -> Result<Option<Result<Value, RunError>>, CaseError> {
        let call_input = json!({ "flow": helper, "with": with });
        let answer = self.harness.stubbed(step, "flow.call", &call_input)?;
        Ok(answer.map(|answer| {
            answer.map_err(|error| {
                let error = error.to_step_error();
                RunError {
                    code: error.code,
                    message: error.message,
                    step: None,
                }
            })
        }))
    }

    async fn helper(&self, name: &str) -> Result<Result<Arc<CompiledFlow>, String>, CaseError> {
        Ok(self
            .harness
            .project
            .flow(name)
            .cloned()
            .ok_or_else(|| format!("flow `{name}` is not deployed")))
    }

    async fn start(
        &self,
        _effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Option<Result<Value, RunError>>, CaseError> {
        if self.depth + 1 >= MAX_DEPTH {
            return Err(CaseError(format!(
                "helper flows call each other more than {MAX_DEPTH} levels deep (at step `{step}`{}); stub the `flow.call`",
                in_helper(self.flow, self.depth)
            )));
        }
        let finished = self.harness.run(helper, input, self.depth + 1).await?;
        Ok(Some(match finished.progress {
            Progress::Succeeded(output) => Ok(output.get("body").cloned().unwrap_or(Value::Null)),
            Progress::Failed(error) => Err(error),
            Progress::Pending => Err(RunError {
                code: "internal".into(),
                message: format!("helper run of `{}` did not end", finished.flow),
                step: None,
            }),
        }))
    }

    async fn start_detached(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Result<Value, RunError>, CaseError> {
        // The helper runs to its end here, so a test sees what it does; but as in `idflow serve`
        // its outcome is not the starter's: the step answers with a run id once the helper started.
        let name = helper.flow.name.clone();
        self.start(effect, step, helper, input).await?;
        Ok(Ok(json!({ "run_id": format!("test-run-of-{name}") })))
    }
}

/// Where a test run's progress goes: its records, and its checkpoints as JSON text.
struct CaseHost<'h, 'p> {
    harness: &'h Harness<'p>,
    flow: &'h str,
    /// The last checkpoint, as the stores keep it.
    stored: Option<String>,
    records: Vec<StepRecord>,
    progress: Option<Progress>,
}

impl CaseHost<'_, '_> {
    fn store(&mut self, state: &Value) {
        // Writing a `Value` as text cannot fail.
        self.stored = Some(state.to_string());
    }
}

#[async_trait]
impl RunHost<CaseError> for CaseHost<'_, '_> {
    async fn checkpoint(
        &mut self,
        state: Value,
        records: Vec<StepRecord>,
    ) -> Result<bool, CaseError> {
        self.store(&state);
        self.harness.note_records(&records);
        self.records.extend(records);
        Ok(true)
    }

    async fn finish(
        &mut self,
        records: Vec<StepRecord>,
        progress: Progress,
    ) -> Result<(), CaseError> {
        self.harness.note_records(&records);
        self.records.extend(records);
        self.progress = Some(progress);
        Ok(())
    }

    async fn park(
        &mut self,
        state: Value,
        wake_at: Option<DateTime<Utc>>,
    ) -> Result<Parked, CaseError> {
        self.store(&state);
        // Nothing is in flight in a test (stubs answer at once, helper runs run to their end), so
        // only a timer can wake the run: move the clock there and resume.
        let Some(wake_at) = wake_at else {
            return Err(CaseError(format!(
                "run of `{}` is stuck: it waits for nothing the test can answer",
                self.flow
            )));
        };
        let clock = &self.harness.clock;
        clock.set(clock.now().max(wake_at));
        Ok(Parked::Resume)
    }

    async fn reread(&mut self) -> Result<Option<Value>, CaseError> {
        let Some(text) = &self.stored else {
            return Ok(None);
        };
        let saved = serde_json::from_str(text).map_err(|source| DriveError::Decode {
            flow: self.flow.to_owned(),
            source,
        })?;
        Ok(Some(saved))
    }
}

/// Runs a test run to its end. Everything a test run waits for is answered before it is awaited
/// (stubs, in-process helper runs, a clock the host moves), so nothing is left pending; a future
/// that stays pending without a wake-up could never finish, and gives `None`.
pub(super) fn block_on<F: Future>(future: F) -> Option<F::Output> {
    crate::clock::run_until_stalled(future, || false)
}

/// Whether a stub answers a call made by `step` (history name) to `card` with `input`.
pub fn stub_matches(stub: &Stub, step: &str, card: &str, input: &Value) -> bool {
    if let Some(want) = &stub.step
        && !step_matches(want, step)
    {
        return false;
    }
    if let Some(want) = &stub.card
        && want != card
    {
        return false;
    }
    match &stub.input {
        Some(want) => matches(want, input),
        None => true,
    }
}

/// Whether a step named in a test (`call`, or `each[2].call`) names the step whose history name is
/// `actual`.
pub fn step_matches(wanted: &str, actual: &str) -> bool {
    wanted == actual || wanted == base_step(actual)
}
