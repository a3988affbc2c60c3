//! `idflow deploy <dir> --target aws`: validates the flows, then uploads them, the project files and
//! the schedules to the stack template.yaml created, printing what changed.
//!
//! Table, group and ARNs come from flags or from the CloudFormation stack's outputs (`--stack`).
//! Reading the stack costs one more SDK crate (CloudFormation) in the CLI build, which the `aws`
//! feature already pays for DynamoDB and Scheduler; in exchange the user names one stack instead
//! of copying four values out of `sam deploy`'s output, and they cannot go stale.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use aws::deploy::{self, DeployError, Target, TargetArgs};
use clap::{Args, ValueEnum};

/// Where `idflow deploy` deploys to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeployTarget {
    /// The stack template.yaml describes (DynamoDB, EventBridge Scheduler).
    Aws,
}

/// Flags of `idflow deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Directory with the flow files and idflow.yaml.
    pub dir: PathBuf,
    /// Where to deploy.
    #[arg(long, value_enum)]
    pub target: DeployTarget,
    /// Print the plan (what would be added, updated, removed) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// CloudFormation stack whose outputs name the table, group and ARNs.
    #[arg(long, env = "IDFLOW_STACK")]
    pub stack: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// The flows table (default: the stack's FlowsTable output).
    #[arg(long, env = "IDFLOW_FLOWS_TABLE")]
    pub flows_table: Option<String>,
    /// The schedule group (default: the stack's ScheduleGroup output, else `idflow`).
    #[arg(long, env = "IDFLOW_SCHEDULE_GROUP")]
    pub schedule_group: Option<String>,
    /// ARN of the schedule function (default: the stack's ScheduleFunctionArn output).
    #[arg(long, env = "IDFLOW_SCHEDULE_TARGET_ARN")]
    pub schedule_target_arn: Option<String>,
    /// ARN of the role Scheduler assumes (default: the stack's SchedulerRoleArn output).
    #[arg(long, env = "IDFLOW_SCHEDULER_ROLE_ARN")]
    pub scheduler_role_arn: Option<String>,
}

/// Runs the command: plan, print, apply unless `--dry-run`.
pub async fn run(args: DeployArgs) -> Result<ExitCode> {
    let DeployTarget::Aws = args.target;
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    // Validate first: a broken directory fails without credentials or network.
    let validated = match deploy::validate(&args.dir) {
        Ok(validated) => validated,
        Err(DeployError::Invalid { diagnostics, .. }) => {
            let colors = crate::render::colors_stderr();
            for d in &diagnostics {
                eprintln!("{}{}{}", colors.red, d, colors.reset);
            }
            eprintln!(
                "{} error(s) in {}; nothing was deployed",
                diagnostics.len(),
                args.dir.display()
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(other) => return Err(other.into()),
    };
    let target = Target::connect(&TargetArgs {
        region: args.region,
        stack: args.stack,
        flows_table: args.flows_table,
        schedule_group: args.schedule_group,
        schedule_target_arn: args.schedule_target_arn,
        scheduler_role_arn: args.scheduler_role_arn,
    })
    .await?;
    let plan = deploy::plan_validated(
        &validated,
        &target.flows,
        &target.schedules,
        chrono::Utc::now(),
    )
    .await?;
    if args.dry_run {
        println!("{plan}");
        println!("dry run: nothing was written to {}", target.description);
        return Ok(ExitCode::SUCCESS);
    }
    deploy::apply(&plan, &target.flows, &target.schedules, &mut |progress| {
        eprintln!("{progress}");
    })
    .await?;
    println!("{plan}");
    println!("deployed to {}", target.description);
    Ok(ExitCode::SUCCESS)
}
