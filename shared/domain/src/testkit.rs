//! Test doubles that run a flow through the one effect driver ([`crate::runner::driver`]), the
//! loop every production run and every flow test goes through. The engine's own tests use them, and
//! so do the crate's integration tests (the committed checkpoint fixtures), through the
//! `test-support` feature that the crate's dev-dependency on itself turns on: integration tests are
//! separate crates, built against the library without `cfg(test)`.
//!
//! - Card calls ([`CardCalls`]) are answered by a script: a function of the card, its input and the
//!   attempt, which answers at once or leaves the call in flight (a process that dies mid-call).
//! - Helper runs ([`ChildRuns`]) run in-process through the same driver and answer inline, or a
//!   script answers them: with the helper run's result, or not at all (the run waits for a helper
//!   run still going, or a detached start is never confirmed).
//! - The host ([`RunHost`]) keeps every checkpoint as JSON text and the values saved out of line in
//!   a map, and hands both back when the driver rereads a checkpoint.
//! - Time is an [`AutoAdvanceClock`]: a short timer is awaited in-process and the clock jumps to it;
//!   a longer one parks the run, and the host sleeps until its wake-up before resuming it, as a
//!   worker woken from the queue would. Waits and backoffs take no real time.
//!
//! Runs are driven with [`Restore::EveryStep`], so every engine test also proves the run resumes
//! from each of its checkpoints: the driver goes on from what each checkpoint reads back as, and
//! stops the test with [`DriveError::NotResumable`] if a resume would re-issue other effects than
//! the ones in flight.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::cards::{CardCall, CardError};
use crate::clock::AutoAdvanceClock;
use crate::engine::{Blob, CompiledFlow, Event, Progress, RunContext, RunState};
use crate::model::ProjectConfig;
use crate::ports::Clock;
use crate::run::{RunError, RunId, StepRecord};
use crate::runner::driver::{
    CardCalls, ChildRuns, DriveError, DriveOptions, Driven, Parked, Restore, RunDriver, RunHost,
};
use crate::values::OUT_OF_LINE_BYTES;

/// Timers due within this are awaited in-process (retry backoffs, throttling); longer ones park
/// the run (waits), so the tests go through both of the driver's ways of waiting.
const INLINE_WAIT: Duration = Duration::from_secs(60);

/// Advances after which a run that has not ended fails its test as endless.
const MAX_ROUNDS: usize = 10_000;

/// Answers a card call: `Some` at once, `None` never (the call stays in flight).
pub type Script<'s> = dyn FnMut(&CardCall) -> Option<Result<Value, CardError>> + Send + 's;

/// Answers a helper run (or a detached start): `Some` with its result, `None` never.
pub type HelperScript<'s> = dyn FnMut(&HelperRun) -> Option<Result<Value, RunError>> + Send + 's;

/// A helper run a run started, as the driver asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct HelperRun {
    /// The effect of the run that started it.
    pub effect: u64,
    /// The history name of the step that started it (`each[0]`).
    pub step: String,
    /// The helper flow's name.
    pub flow: String,
    /// The helper run's input.
    pub input: Value,
    /// Started without waiting for it (`flow.start`).
    pub detached: bool,
}

/// What a run left behind.
pub struct Trace {
    /// How the run ended; [`Progress::Pending`] when it waits for something no double answers (a
    /// call left in flight, a helper run left pending).
    pub progress: Progress,
    /// The step records the run wrote, in order.
    pub records: Vec<StepRecord>,
    /// Card attempts (`card#attempt`), helper runs (`child:flow`) and detached starts
    /// (`start:flow`), in the order they were issued, by the run and its helper runs.
    pub calls: Vec<String>,
    /// The clock when the run ended or stopped.
    pub now: DateTime<Utc>,
    /// The helper runs started, in order.
    pub helper_runs: Vec<HelperRun>,
    /// Every checkpoint of the state (written or parked), in order.
    pub states: Vec<SavedState>,
    /// The last of them, as it reads back: where a worker would resume the run.
    pub checkpoint: Option<Value>,
    /// The values saved out of line (before the run and by it), as JSON text by the SHA-256 of
    /// that text.
    pub values: BTreeMap<String, String>,
}

/// A checkpoint as the host kept it.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    /// The clock when it was written: where a worker resuming from it would start.
    pub at: DateTime<Utc>,
    /// The state, as JSON text.
    pub text: String,
}

/// The world test runs live in: the card script, the helper flows, the clock and the saved values,
/// shared by a run and its helper runs.
pub struct Bench<'s> {
    clock: AutoAdvanceClock,
    script: Mutex<Box<Script<'s>>>,
    helpers: Vec<Arc<CompiledFlow>>,
    /// Answers helper runs instead of running them; `None`: they run in-process (and a detached
    /// start answers once queued).
    helper_script: Option<Mutex<Box<HelperScript<'s>>>>,
    helper_runs: Mutex<Vec<HelperRun>>,
    vars: Value,
    secrets: BTreeMap<String, String>,
    calls: Mutex<Vec<String>>,
    /// Values saved out of line, by the SHA-256 of their JSON.
    values: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Values of at least this many bytes of JSON are saved out of line.
    out_of_line_bytes: usize,
}

impl<'s> Bench<'s> {
    /// A world at `now` whose card calls `script` answers, with `helpers` deployed and run inline.
    pub fn new(
        now: DateTime<Utc>,
        helpers: &[&CompiledFlow],
        script: impl FnMut(&CardCall) -> Option<Result<Value, CardError>> + Send + 's,
    ) -> Bench<'s> {
        let helpers = helpers
            .iter()
            .map(|helper| {
                // A compiled flow is not `Clone`; compiling its flow again gives the same one.
                CompiledFlow::new(helper.flow.clone(), "helper.yaml")
                    .map(Arc::new)
                    .unwrap_or_else(|e| panic!("helper does not compile: {e:?}"))
            })
            .collect();
        Bench {
            clock: AutoAdvanceClock::new(now),
            script: Mutex::new(Box::new(script)),
            helpers,
            helper_script: None,
            helper_runs: Mutex::new(Vec::new()),
            vars: json!({}),
            secrets: BTreeMap::new(),
            calls: Mutex::new(Vec::new()),
            values: Mutex::new(BTreeMap::new()),
            out_of_line_bytes: OUT_OF_LINE_BYTES,
        }
    }

    /// Deploys `helpers` (already compiled and shared) instead of the ones given to [`Bench::new`],
    /// for callers that start many benches over the same flows.
    pub fn with_helpers(self, helpers: &[Arc<CompiledFlow>]) -> Bench<'s> {
        Bench {
            helpers: helpers.to_vec(),
            ..self
        }
    }

    /// Saves values of at least `bytes` bytes of JSON out of line instead of the runner's
    /// threshold, so even a small run has some.
    pub fn with_out_of_line_bytes(self, bytes: usize) -> Bench<'s> {
        Bench {
            out_of_line_bytes: bytes,
            ..self
        }
    }

    /// The vars and secrets runs see.
    pub fn with_context(mut self, vars: Value, secrets: BTreeMap<String, String>) -> Bench<'s> {
        self.vars = vars;
        self.secrets = secrets;
        self
    }

    /// Answers helper runs and detached starts with `script` instead of running them.
    pub fn with_helper_runs(
        self,
        script: impl FnMut(&HelperRun) -> Option<Result<Value, RunError>> + Send + 's,
    ) -> Bench<'s> {
        Bench {
            helper_script: Some(Mutex::new(Box::new(script))),
            ..self
        }
    }

    /// Values saved out of line before the run, as a store holding a run's values would have them.
    pub fn with_values(self, blobs: &[Blob]) -> Bench<'s> {
        lock(&self.values).extend(blobs.iter().map(|b| (b.sha256.clone(), b.json.clone())));
        self
    }

    /// A context for a run of `flow` started now with `input`, seeing the bench's vars and secrets.
    pub fn context(&self, run_id: &str, flow: &CompiledFlow, input: Value) -> RunContext {
        RunContext::new(
            run_id.to_owned(),
            flow.flow.name.clone(),
            self.clock.now(),
            input,
            self.vars.clone(),
            self.secrets.clone(),
            flow.flow.history,
        )
    }

    /// Starts a run of `flow` and drives it until it ends or waits for something no double
    /// answers.
    pub fn start(&self, flow: &CompiledFlow, ctx: &RunContext) -> Trace {
        self.drive(flow, ctx, RunState::new(), Event::Start)
    }

    /// Resumes a run from a saved checkpoint, loading its values from the bench as a worker does,
    /// and drives it until it ends or waits for something no double answers.
    pub fn resume(&self, flow: &CompiledFlow, ctx: &RunContext, saved: Value) -> Trace {
        self.try_resume(flow, ctx, saved).unwrap_or_else(|error| {
            panic!("driving `{}` failed: {}", flow.flow.name, chain(&error))
        })
    }

    /// [`Bench::resume`], handing back a driver error instead of failing the test: for tests that
    /// expect some runs to be refused.
    pub fn try_resume(
        &self,
        flow: &CompiledFlow,
        ctx: &RunContext,
        saved: Value,
    ) -> Result<Trace, DriveError> {
        // As a worker does: a state that does not decode fails its run (`RunState::restore`).
        let mut state = RunState::restore(saved);
        load_values(&lock(&self.values), &mut state);
        self.try_drive(flow, ctx, state, Event::Resume)
    }

    /// Drives a run from `state` with `first`. A driver error (a checkpoint a resume would go on
    /// from differently, an endless run) fails the test: the engine is wrong.
    pub fn drive(
        &self,
        flow: &CompiledFlow,
        ctx: &RunContext,
        state: RunState,
        first: Event,
    ) -> Trace {
        self.try_drive(flow, ctx, state, first)
            .unwrap_or_else(|error| {
                panic!("driving `{}` failed: {}", flow.flow.name, chain(&error))
            })
    }

    /// [`Bench::drive`], handing back a driver error instead of failing the test.
    pub fn try_drive(
        &self,
        flow: &CompiledFlow,
        ctx: &RunContext,
        mut state: RunState,
        first: Event,
    ) -> Result<Trace, DriveError> {
        let mut host = Host::new(self);
        let driver = self.driver(flow, ctx);
        let driven = self
            .clock
            .block_on(driver.drive(&mut host, &mut state, first));
        if let Some(Err(error)) = driven {
            return Err(error);
        }
        Ok(Trace {
            progress: host.progress.unwrap_or(Progress::Pending),
            records: host.records,
            calls: lock(&self.calls).clone(),
            helper_runs: lock(&self.helper_runs).clone(),
            now: self.clock.now(),
            checkpoint: host
                .stored
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            states: host.states,
            values: lock(&self.values)
                .iter()
                .map(|(sha256, json)| (sha256.clone(), String::from_utf8_lossy(json).into_owned()))
                .collect(),
        })
    }

    fn driver<'a>(
        &'a self,
        flow: &'a CompiledFlow,
        ctx: &'a RunContext,
    ) -> RunDriver<'a, DriveError> {
        RunDriver {
            flow,
            ctx,
            run_id: RunId::new_at(ctx.started_at),
            project: Arc::new(ProjectConfig::default()),
            clock: Arc::new(self.clock.clone()),
            cards: self,
            children: self,
            options: DriveOptions {
                inline_wait: INLINE_WAIT,
                restore: Restore::EveryStep,
                max_rounds: Some(MAX_ROUNDS),
            },
        }
    }

    /// Runs a helper flow to its end in-process; `None` while it waits.
    fn run_helper<'a>(
        &'a self,
        helper: &'a CompiledFlow,
        input: Value,
    ) -> BoxFuture<'a, Result<Option<Result<Value, RunError>>, DriveError>> {
        Box::pin(async move {
            let ctx = self.context("01HELPER", helper, input);
            let mut host = Host::new(self);
            let driven = self
                .driver(helper, &ctx)
                .drive(&mut host, &mut RunState::new(), Event::Start)
                .await?;
            Ok(match driven {
                Driven::Ended(Progress::Succeeded(output)) => {
                    Some(Ok(output.get("body").cloned().unwrap_or(Value::Null)))
                }
                Driven::Ended(Progress::Failed(error)) => Some(Err(error)),
                Driven::Ended(Progress::Pending) | Driven::Parked | Driven::Stopped => None,
            })
        })
    }

    fn note(&self, call: String) {
        lock(&self.calls).push(call);
    }

    /// Notes a helper run and answers it by the script: `None` when there is no script, `Some` of
    /// the script's answer otherwise.
    fn helper_run(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
        detached: bool,
    ) -> Option<Option<Result<Value, RunError>>> {
        let name = &helper.flow.name;
        self.note(format!(
            "{}:{name}",
            if detached { "start" } else { "child" }
        ));
        let run = HelperRun {
            effect,
            step: step.to_owned(),
            flow: name.clone(),
            input,
            detached,
        };
        lock(&self.helper_runs).push(run.clone());
        let script = self.helper_script.as_ref()?;
        Some((lock(script))(&run))
    }
}

impl CardCalls<DriveError> for Bench<'_> {
    fn call(
        &self,
        call: CardCall,
    ) -> Result<BoxFuture<'static, Result<Value, CardError>>, DriveError> {
        self.note(format!("{}#{}", call.card, call.attempt));
        let answer = (lock(&self.script))(&call);
        Ok(match answer {
            Some(answer) => futures::future::ready(answer).boxed(),
            None => futures::future::pending().boxed(),
        })
    }
}

#[async_trait]
impl ChildRuns<DriveError> for Bench<'_> {
    async fn helper(&self, name: &str) -> Result<Result<Arc<CompiledFlow>, String>, DriveError> {
        Ok(self
            .helpers
            .iter()
            .find(|helper| helper.flow.name == name)
            .cloned()
            .ok_or_else(|| format!("flow `{name}` is not deployed")))
    }

    async fn start(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Option<Result<Value, RunError>>, DriveError> {
        match self.helper_run(effect, step, helper, input.clone(), false) {
            Some(answer) => Ok(answer),
            None => self.run_helper(helper, input).await,
        }
    }

    async fn start_detached(
        &self,
        effect: u64,
        step: &str,
        helper: &CompiledFlow,
        input: Value,
    ) -> Result<Result<Value, RunError>, DriveError> {
        match self.helper_run(effect, step, helper, input, true) {
            Some(Some(answer)) => Ok(answer),
            // The start is never confirmed: the process dies while it waits.
            Some(None) => futures::future::pending().await,
            // Answered once the helper run is queued; what it does is its own, not the starter's.
            None => Ok(Ok(
                json!({ "run_id": format!("run-of-{}", helper.flow.name) }),
            )),
        }
    }
}

/// Where a test run's progress goes.
struct Host<'b, 's> {
    bench: &'b Bench<'s>,
    /// The last checkpoint, as the stores keep it.
    stored: Option<String>,
    states: Vec<SavedState>,
    records: Vec<StepRecord>,
    progress: Option<Progress>,
}

impl<'b, 's> Host<'b, 's> {
    fn new(bench: &'b Bench<'s>) -> Host<'b, 's> {
        Host {
            bench,
            stored: None,
            states: Vec::new(),
            records: Vec::new(),
            progress: None,
        }
    }

    fn store(&mut self, state: &Value) {
        let text = state.to_string();
        self.states.push(SavedState {
            at: self.bench.clock.now(),
            text: text.clone(),
        });
        self.stored = Some(text);
    }
}

#[async_trait]
impl RunHost<DriveError> for Host<'_, '_> {
    async fn save_values(&mut self, state: &mut RunState) -> Result<(), DriveError> {
        let blobs = state.take_unsaved(self.bench.out_of_line_bytes);
        lock(&self.bench.values).extend(blobs.into_iter().map(|b| (b.sha256, b.json)));
        Ok(())
    }

    async fn checkpoint(
        &mut self,
        state: Value,
        records: Vec<StepRecord>,
    ) -> Result<bool, DriveError> {
        self.store(&state);
        self.records.extend(records);
        Ok(true)
    }

    async fn finish(
        &mut self,
        records: Vec<StepRecord>,
        progress: Progress,
    ) -> Result<(), DriveError> {
        self.records.extend(records);
        self.progress = Some(progress);
        Ok(())
    }

    async fn park(
        &mut self,
        state: Value,
        wake_at: Option<DateTime<Utc>>,
    ) -> Result<Parked, DriveError> {
        self.store(&state);
        match wake_at {
            // As a worker woken from the queue at `wake_at`: the clock jumps there.
            Some(at) => {
                self.bench.clock.sleep_until(at).await;
                Ok(Parked::Resume)
            }
            // Waiting for a helper run left pending.
            None => Ok(Parked::Stop),
        }
    }

    async fn reread(&mut self) -> Result<Option<Value>, DriveError> {
        let Some(text) = &self.stored else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|source| DriveError::Decode {
                flow: "test".to_owned(),
                source,
            })
    }

    async fn load_values(&mut self, state: &mut RunState) -> Result<(), DriveError> {
        load_values(&lock(&self.bench.values), state);
        Ok(())
    }
}

/// Loads the values `state` references from `saved`. A value that is not there, or does not match
/// its hash, stays missing, and the run's next advance fails it with `corrupt_state`.
fn load_values(saved: &BTreeMap<String, Vec<u8>>, state: &mut RunState) {
    for sha256 in state.missing_blobs() {
        if let Some(json) = saved.get(&sha256) {
            // Refused bytes leave the value missing, which the engine reports; nothing to add here.
            let _refused = state.load_blob(&sha256, json);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// An error with its causes, for a test failure.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}
