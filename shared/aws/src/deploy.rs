//! `idflow deploy <dir> --target aws`: validates a flow directory, then makes the stack's flow store
//! and schedule group match it.
//!
//! [`plan`] loads the directory with the loader `idflow validate` uses and refuses it whole on any
//! diagnostic, so a deploy never leaves half a project behind; otherwise it compares every flow, the
//! schedule of every schedule flow and the project files with what is deployed, without writing.
//! [`apply`] writes the plan: project files, new flow versions, schedules, then removals (a removed
//! flow's schedule goes before the flow, so it never fires a flow that is gone).
//!
//! [`StackOutputs`] reads table, group and ARNs from the CloudFormation stack template.yaml made,
//! so the user names the stack instead of copying five values.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::DynamoFlowStore;
use domain::diag::Diagnostic;
use domain::flowfile;
use domain::model::Trigger;
use domain::ports::{FlowStore, ScheduleSpec, Schedules, StoreError, StoredFlow};

/// What a deploy does to one flow, schedule or the project files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Not deployed yet.
    Added,
    /// Deployed with other content.
    Updated,
    /// Deployed, but no longer in the directory.
    Removed,
    /// Deployed with the same content.
    Unchanged,
}

impl Change {
    /// The word printed for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Updated => "updated",
            Change::Removed => "removed",
            Change::Unchanged => "unchanged",
        }
    }

    /// Whether applying it writes anything.
    pub fn writes(self) -> bool {
        self != Change::Unchanged
    }
}

/// One flow of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowChange {
    /// The flow's name.
    pub name: String,
    /// What happens to it.
    pub change: Change,
    /// The version to store (`None` when removed).
    pub flow: Option<StoredFlow>,
}

/// One schedule of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleChange {
    /// The schedule flow's name (the schedule is `idflow-<flow>`).
    pub flow: String,
    /// What happens to it.
    pub change: Change,
    /// The schedule as it will be (as it was, when removed).
    pub spec: ScheduleSpec,
}

/// Everything a deploy would change, computed without writing.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every flow in the directory or in the store, sorted by name.
    pub flows: Vec<FlowChange>,
    /// Every schedule wanted or deployed, sorted by flow.
    pub schedules: Vec<ScheduleChange>,
    /// The project files (`idflow.yaml`).
    pub project: Change,
    project_files: BTreeMap<String, String>,
}

/// Why a deploy did not happen or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The directory has problems; nothing was written.
    #[error("{} error(s) in {dir}; nothing was deployed:\n{}", .diagnostics.len(), list(.diagnostics))]
    Invalid {
        /// The directory.
        dir: String,
        /// Every problem, as `idflow validate` prints them.
        diagnostics: Vec<Diagnostic>,
    },
    /// The directory holds no flow file at all (most likely the wrong directory).
    #[error(
        "{dir} holds no flow files; deploying it would remove every deployed flow (pass the directory with the *.yaml flows)"
    )]
    Empty {
        /// The directory.
        dir: String,
    },
    /// DynamoDB or EventBridge Scheduler failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CloudFormation stack could not be read.
    #[error("cannot read the outputs of CloudFormation stack `{stack}`")]
    Stack {
        /// The stack.
        stack: String,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value neither given as a flag nor readable from a stack.
    #[error("{flag} is required without --stack (name the stack template.yaml created instead)")]
    MissingFlag {
        /// The flag.
        flag: &'static str,
    },
    /// The stack lacks an output the deploy needs.
    #[error(
        "CloudFormation stack `{stack}` has no output `{output}` (was it created from idflow's template.yaml?)"
    )]
    MissingOutput {
        /// The stack.
        stack: String,
        /// The output.
        output: &'static str,
    },
}

fn list(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The schedule each schedule flow of a loaded, valid project wants.
fn wanted_schedules(project: &flowfile::LoadedProject) -> BTreeMap<String, ScheduleSpec> {
    project
        .flows
        .iter()
        .filter_map(|loaded| loaded.result.as_ref().ok())
        .filter_map(|flow| match &flow.trigger {
            Trigger::Schedule(schedule) => Some((
                flow.name.clone(),
                ScheduleSpec {
                    flow: flow.name.clone(),
                    expression: schedule.expression.clone(),
                    timezone: schedule.timezone.clone(),
                },
            )),
            _ => None,
        })
        .collect()
}

/// A flow directory that loaded without a single diagnostic: what [`plan`] compares.
#[derive(Debug, Clone)]
pub struct Validated {
    project: flowfile::LoadedProject,
    project_files: BTreeMap<String, String>,
}

impl Validated {
    /// How many flows the directory holds.
    pub fn flows(&self) -> usize {
        self.project.flows.len()
    }
}

/// Loads `dir` with the loader `idflow validate` uses; any diagnostic refuses the whole directory.
/// Needs no AWS access, so a broken directory fails before any connection is made.
pub fn validate(dir: &Path) -> Result<Validated, DeployError> {
    let project = flowfile::load_dir(dir);
    let mut diagnostics = project.all_diagnostics();
    let project_files = match flowfile::project_files(dir) {
        Ok(files) => files,
        Err(errors) => {
            diagnostics.extend(errors);
            BTreeMap::new()
        }
    };
    if !diagnostics.is_empty() {
        return Err(DeployError::Invalid {
            dir: dir.display().to_string(),
            diagnostics,
        });
    }
    if project.flows.is_empty() {
        return Err(DeployError::Empty {
            dir: dir.display().to_string(),
        });
    }
    Ok(Validated {
        project,
        project_files,
    })
}

/// Validates `dir` and compares it with what is deployed. Writes nothing.
pub async fn plan(
    dir: &Path,
    flows: &DynamoFlowStore,
    schedules: &dyn Schedules,
    now: DateTime<Utc>,
) -> Result<Plan, DeployError> {
    plan_validated(&validate(dir)?, flows, schedules, now).await
}

/// Compares a validated directory with what is deployed. Writes nothing.
pub async fn plan_validated(
    validated: &Validated,
    flows: &DynamoFlowStore,
    schedules: &dyn Schedules,
    now: DateTime<Utc>,
) -> Result<Plan, DeployError> {
    let project = &validated.project;
    let project_files = validated.project_files.clone();
    let deployed: HashMap<String, String> = flows
        .list()
        .await?
        .into_iter()
        .map(|flow| (flow.name, flow.version))
        .collect();
    let mut flow_changes = Vec::new();
    for loaded in &project.flows {
        let Ok(flow) = &loaded.result else { continue };
        let version = flowfile::version_of(&loaded.source);
        let change = match deployed.get(&flow.name) {
            None => Change::Added,
            Some(current) if *current == version => Change::Unchanged,
            Some(_) => Change::Updated,
        };
        flow_changes.push(FlowChange {
            name: flow.name.clone(),
            change,
            flow: Some(StoredFlow {
                name: flow.name.clone(),
                version,
                source: loaded.source.clone(),
                path: loaded.path.clone(),
                deployed_at: now,
            }),
        });
    }
    for name in deployed.keys() {
        if !flow_changes.iter().any(|f| f.name == *name) {
            flow_changes.push(FlowChange {
                name: name.clone(),
                change: Change::Removed,
                flow: None,
            });
        }
    }
    flow_changes.sort_by(|a, b| a.name.cmp(&b.name));

    let mut wanted = wanted_schedules(project);
    let mut schedule_changes = Vec::new();
    for existing in schedules.list().await? {
        let change = match wanted.remove(&existing.flow) {
            None => ScheduleChange {
                flow: existing.flow.clone(),
                change: Change::Removed,
                spec: existing,
            },
            Some(spec) if spec == existing => ScheduleChange {
                flow: spec.flow.clone(),
                change: Change::Unchanged,
                spec,
            },
            Some(spec) => ScheduleChange {
                flow: spec.flow.clone(),
                change: Change::Updated,
                spec,
            },
        };
        schedule_changes.push(change);
    }
    schedule_changes.extend(wanted.into_values().map(|spec| ScheduleChange {
        flow: spec.flow.clone(),
        change: Change::Added,
        spec,
    }));
    schedule_changes.sort_by(|a, b| a.flow.cmp(&b.flow));

    let project_change = match flows.project().await? {
        None => Change::Added,
        Some(current) if current == project_files => Change::Unchanged,
        Some(_) => Change::Updated,
    };
    Ok(Plan {
        flows: flow_changes,
        schedules: schedule_changes,
        project: project_change,
        project_files,
    })
}

/// One write of [`apply`], reported before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// 1-based position among the plan's writes.
    pub index: usize,
    /// How many writes the plan has.
    pub total: usize,
    /// What is being done, e.g. `uploading hello`.
    pub action: String,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}/{}] {}", self.index, self.total, self.action)
    }
}

impl Plan {
    /// How many writes applying the plan takes.
    pub fn writes(&self) -> usize {
        usize::from(self.project.writes())
            + self.flows.iter().filter(|f| f.change.writes()).count()
            + self.schedules.iter().filter(|s| s.change.writes()).count()
    }

    /// Whether the deployed state already matches the directory.
    pub fn is_empty(&self) -> bool {
        self.writes() == 0
    }

    /// `(added, updated, removed, unchanged)` counts of the flows.
    pub fn flow_counts(&self) -> [usize; 4] {
        counts(self.flows.iter().map(|f| f.change))
    }

    /// `(added, updated, removed, unchanged)` counts of the schedules.
    pub fn schedule_counts(&self) -> [usize; 4] {
        counts(self.schedules.iter().map(|s| s.change))
    }
}

fn counts(changes: impl Iterator<Item = Change>) -> [usize; 4] {
    let mut counts = [0; 4];
    for change in changes {
        counts[change as usize] += 1;
    }
    counts
}

/// One line per flow, schedule and the project files, then a summary line.
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for flow in &self.flows {
            writeln!(f, "flow {}: {}", flow.name, flow.change.as_str())?;
        }
        for schedule in &self.schedules {
            write!(
                f,
                "schedule {}{}: {} ({}",
                super::scheduler::NAME_PREFIX,
                schedule.flow,
                schedule.change.as_str(),
                schedule.spec.expression
            )?;
            if let Some(timezone) = &schedule.spec.timezone {
                write!(f, " {timezone}")?;
            }
            writeln!(f, ")")?;
        }
        writeln!(f, "project files: {}", self.project.as_str())?;
        let [fa, fu, fr, fs] = self.flow_counts();
        let [sa, su, sr, ss] = self.schedule_counts();
        write!(
            f,
            "flows: {fa} added, {fu} updated, {fr} removed, {fs} unchanged; \
             schedules: {sa} added, {su} updated, {sr} removed, {ss} unchanged"
        )
    }
}

/// Writes `plan`, calling `progress` before each write. Stops at the first error; what was written
/// stays written, and deploying again finishes the job (every write is idempotent).
pub async fn apply(
    plan: &Plan,
    flows: &DynamoFlowStore,
    schedules: &dyn Schedules,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), DeployError> {
    let total = plan.writes();
    let mut index = 0;
    let mut step = |action: String| {
        index += 1;
        progress(Progress {
            index,
            total,
            action,
        });
    };
    if plan.project.writes() {
        step("uploading project files".to_owned());
        flows.put_project(&plan.project_files).await?;
    }
    for change in &plan.flows {
        if let (Change::Added | Change::Updated, Some(flow)) = (change.change, &change.flow) {
            step(format!("uploading {}", change.name));
            flows.put(flow).await?;
        }
    }
    for change in &plan.schedules {
        match change.change {
            Change::Added | Change::Updated => {
                step(format!(
                    "scheduling {}{}",
                    super::scheduler::NAME_PREFIX,
                    change.flow
                ));
                schedules.put(&change.spec).await?;
            }
            Change::Removed => {
                step(format!(
                    "unscheduling {}{}",
                    super::scheduler::NAME_PREFIX,
                    change.flow
                ));
                schedules.delete(&change.flow).await?;
            }
            Change::Unchanged => {}
        }
    }
    for change in &plan.flows {
        if change.change == Change::Removed {
            step(format!("removing {}", change.name));
            flows.remove(&change.name).await?;
        }
    }
    Ok(())
}

/// Where a deploy writes: read from the stack's outputs (template.yaml's `Outputs`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StackOutputs {
    /// `FlowsTable`.
    pub flows_table: String,
    /// `ScheduleGroup`.
    pub schedule_group: String,
    /// `ScheduleFunctionArn`: what each schedule invokes.
    pub schedule_target_arn: String,
    /// `SchedulerRoleArn`: the role Scheduler assumes.
    pub scheduler_role_arn: String,
}

impl StackOutputs {
    /// Reads the outputs of `stack`.
    pub async fn read(
        client: &aws_sdk_cloudformation::Client,
        stack: &str,
    ) -> Result<StackOutputs, DeployError> {
        let output = client
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| DeployError::Stack {
                stack: stack.to_owned(),
                source: Box::new(e),
            })?;
        let outputs: HashMap<String, String> = output
            .stacks()
            .iter()
            .flat_map(|s| s.outputs())
            .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
            .collect();
        let get = |name: &'static str| {
            outputs
                .get(name)
                .cloned()
                .ok_or_else(|| DeployError::MissingOutput {
                    stack: stack.to_owned(),
                    output: name,
                })
        };
        Ok(StackOutputs {
            flows_table: get("FlowsTable")?,
            schedule_group: get("ScheduleGroup")?,
            schedule_target_arn: get("ScheduleFunctionArn")?,
            scheduler_role_arn: get("SchedulerRoleArn")?,
        })
    }
}

/// Where `idflow deploy` writes, as given on the command line; what is missing comes from the
/// stack's outputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetArgs {
    /// The region (default: the SDK's usual chain, `AWS_REGION` or the profile).
    pub region: Option<String>,
    /// The CloudFormation stack whose outputs fill in the rest.
    pub stack: Option<String>,
    /// The flows table.
    pub flows_table: Option<String>,
    /// The schedule group.
    pub schedule_group: Option<String>,
    /// The ARN of the `schedule` function.
    pub schedule_target_arn: Option<String>,
    /// The role Scheduler assumes.
    pub scheduler_role_arn: Option<String>,
}

/// The stores a deploy writes to, connected.
pub struct Target {
    /// The flows table.
    pub flows: DynamoFlowStore,
    /// The schedule group.
    pub schedules: super::SchedulerSchedules,
    /// Where they are, for the user: `flows table T, schedule group G`.
    pub description: String,
}

impl Target {
    /// Resolves `args` (flags first, then the stack's outputs) and builds the clients.
    pub async fn connect(args: &TargetArgs) -> Result<Target, DeployError> {
        let mut loader = super::sdk_defaults();
        if let Some(region) = &args.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        let outputs = match &args.stack {
            Some(stack) => {
                Some(StackOutputs::read(&aws_sdk_cloudformation::Client::new(&sdk), stack).await?)
            }
            None => None,
        };
        let pick = |flag: Option<&String>,
                    output: fn(&StackOutputs) -> &String,
                    name: &'static str|
         -> Result<String, DeployError> {
            flag.cloned()
                .or_else(|| outputs.as_ref().map(|o| output(o).clone()))
                .ok_or(DeployError::MissingFlag { flag: name })
        };
        let flows_table = pick(
            args.flows_table.as_ref(),
            |o| &o.flows_table,
            "--flows-table",
        )?;
        let group = match pick(
            args.schedule_group.as_ref(),
            |o| &o.schedule_group,
            "--schedule-group",
        ) {
            Ok(group) => group,
            Err(_) => super::scheduler::DEFAULT_GROUP.to_owned(),
        };
        let target_arn = pick(
            args.schedule_target_arn.as_ref(),
            |o| &o.schedule_target_arn,
            "--schedule-target-arn",
        )?;
        let role_arn = pick(
            args.scheduler_role_arn.as_ref(),
            |o| &o.scheduler_role_arn,
            "--scheduler-role-arn",
        )?;
        Ok(Target {
            description: format!("flows table {flows_table}, schedule group {group}"),
            flows: DynamoFlowStore::new(aws_sdk_dynamodb::Client::new(&sdk), flows_table),
            schedules: super::SchedulerSchedules::new(
                aws_sdk_scheduler::Client::new(&sdk),
                group,
                target_arn,
                role_arn,
            ),
        })
    }
}
