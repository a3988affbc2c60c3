//! `idflow deploy --target aws` against moto: the plan it prints and what it leaves in DynamoDB and
//! EventBridge Scheduler, through the same library calls the CLI makes
//! (`aws::deploy`).

use std::path::Path;

use aws::deploy::{self, Change, DeployError, Plan, Progress};
use aws::{DynamoFlowStore, SchedulerSchedules};
use domain::ports::{FlowStore, ScheduleSpec, Schedules};
use tests::TempDir;

use crate::aws::{emulator, unique};

const HELLO: &str =
    "name: hello\nsteps:\n  - card: flow.return\n    with: { body: { hi: true } }\n";
const NIGHTLY: &str = "name: nightly\ntrigger:\n  schedule: { cron: \"0 3 * * ? *\", timezone: Europe/Paris }\nsteps:\n  - card: flow.return\n    with: { body: {} }\n";
const HOURLY: &str = "name: hourly\ntrigger:\n  schedule: { rate: 1 hour }\nsteps:\n  - card: flow.return\n    with: { body: {} }\n";
const PROJECT: &str = "vars:\n  org: Example Corp\n";

/// A fresh flows table and schedule group on the emulator, or `None` when it is not running.
async fn target() -> Option<(DynamoFlowStore, SchedulerSchedules)> {
    let config = emulator().await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let table = unique("deploy-flows");
    DynamoFlowStore::create_table(&dynamo, &table)
        .await
        .expect("create flows table");
    let scheduler = aws_sdk_scheduler::Client::new(&config);
    let group = unique("deploy");
    SchedulerSchedules::create_group(&scheduler, &group)
        .await
        .expect("create schedule group");
    Some((
        DynamoFlowStore::new(dynamo, table),
        SchedulerSchedules::new(
            scheduler,
            group,
            "arn:aws:lambda:us-east-1:123456789012:function:schedule",
            "arn:aws:iam::123456789012:role/idflow-scheduler",
        ),
    ))
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write fixture");
    }
}

/// Plans and applies like `idflow deploy`, returning the printed plan and the progress lines.
async fn deploy(
    dir: &Path,
    flows: &DynamoFlowStore,
    schedules: &SchedulerSchedules,
) -> (Plan, String, Vec<String>) {
    let plan = deploy::plan(dir, flows, schedules, chrono::Utc::now())
        .await
        .expect("plan");
    let mut lines = Vec::new();
    deploy::apply(&plan, flows, schedules, &mut |p: Progress| {
        lines.push(p.to_string())
    })
    .await
    .expect("apply");
    let printed = plan.to_string();
    (plan, printed, lines)
}

fn line_of<'a>(printed: &'a str, prefix: &str) -> &'a str {
    printed
        .lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line `{prefix}…` in:\n{printed}"))
}

#[tokio::test]
async fn deploy_uploads_flows_project_and_schedules_and_a_redeploy_changes_nothing() {
    let Some((flows, schedules)) = target().await else {
        return;
    };
    let dir = TempDir::new("deploy");
    write(
        &dir.0,
        &[
            ("hello.yaml", HELLO),
            ("nightly.yaml", NIGHTLY),
            ("hourly.yaml", HOURLY),
            ("idflow.yaml", PROJECT),
        ],
    );

    let (plan, printed, progress) = deploy(&dir.0, &flows, &schedules).await;
    assert_eq!(line_of(&printed, "flow hello:"), "flow hello: added");
    assert_eq!(line_of(&printed, "flow nightly:"), "flow nightly: added");
    assert_eq!(
        line_of(&printed, "schedule idflow-nightly:"),
        "schedule idflow-nightly: added (cron(0 3 * * ? *) Europe/Paris)"
    );
    assert_eq!(
        line_of(&printed, "schedule idflow-hourly:"),
        "schedule idflow-hourly: added (rate(1 hour))"
    );
    assert_eq!(line_of(&printed, "project files:"), "project files: added");
    assert!(
        printed.ends_with(
            "flows: 3 added, 0 updated, 0 removed, 0 unchanged; schedules: 2 added, 0 updated, 0 removed, 0 unchanged"
        ),
        "{printed}"
    );
    // project files + 3 flows + 2 schedules, numbered in order.
    assert_eq!(plan.writes(), 6);
    assert_eq!(progress.len(), 6, "{progress:?}");
    assert_eq!(progress[0], "[1/6] uploading project files");
    assert!(
        progress.contains(&"[2/6] uploading hello".to_owned()),
        "{progress:?}"
    );
    assert_eq!(progress[5], "[6/6] scheduling idflow-nightly");

    // What the functions will read.
    let stored = flows
        .current("hello")
        .await
        .unwrap()
        .expect("hello deployed");
    assert_eq!(stored.source, HELLO);
    assert_eq!(stored.path, "hello.yaml");
    let project = flows.project().await.unwrap().expect("project files");
    assert_eq!(
        project.get("idflow.yaml").map(String::as_str),
        Some(PROJECT)
    );
    assert_eq!(
        schedules.list().await.unwrap(),
        vec![
            ScheduleSpec {
                flow: "hourly".into(),
                expression: "rate(1 hour)".into(),
                timezone: None,
            },
            ScheduleSpec {
                flow: "nightly".into(),
                expression: "cron(0 3 * * ? *)".into(),
                timezone: Some("Europe/Paris".into()),
            },
        ]
    );

    // The same directory again: every line says unchanged and nothing is written.
    let (plan, printed, progress) = deploy(&dir.0, &flows, &schedules).await;
    assert!(plan.is_empty(), "{printed}");
    assert!(progress.is_empty(), "{progress:?}");
    assert_eq!(line_of(&printed, "flow hello:"), "flow hello: unchanged");
    assert_eq!(
        line_of(&printed, "schedule idflow-nightly:"),
        "schedule idflow-nightly: unchanged (cron(0 3 * * ? *) Europe/Paris)"
    );
    assert_eq!(
        line_of(&printed, "project files:"),
        "project files: unchanged"
    );
}

#[tokio::test]
async fn changing_one_flow_and_removing_another_updates_one_and_removes_the_other_with_its_schedule()
 {
    let Some((flows, schedules)) = target().await else {
        return;
    };
    let dir = TempDir::new("deploy-change");
    write(
        &dir.0,
        &[
            ("hello.yaml", HELLO),
            ("nightly.yaml", NIGHTLY),
            ("hourly.yaml", HOURLY),
        ],
    );
    deploy(&dir.0, &flows, &schedules).await;
    let first = flows
        .current("hourly")
        .await
        .unwrap()
        .expect("hourly")
        .version;

    // hourly now runs every two hours; nightly's file is deleted.
    write(
        &dir.0,
        &[("hourly.yaml", &HOURLY.replace("1 hour", "2 hours"))],
    );
    std::fs::remove_file(dir.0.join("nightly.yaml")).unwrap();
    let (_, printed, progress) = deploy(&dir.0, &flows, &schedules).await;
    assert_eq!(line_of(&printed, "flow hello:"), "flow hello: unchanged");
    assert_eq!(line_of(&printed, "flow hourly:"), "flow hourly: updated");
    assert_eq!(line_of(&printed, "flow nightly:"), "flow nightly: removed");
    assert_eq!(
        line_of(&printed, "schedule idflow-hourly:"),
        "schedule idflow-hourly: updated (rate(2 hours))"
    );
    assert_eq!(
        line_of(&printed, "schedule idflow-nightly:"),
        "schedule idflow-nightly: removed (cron(0 3 * * ? *) Europe/Paris)"
    );
    // The schedule goes before its flow, so it never fires a flow that is gone.
    assert_eq!(
        progress,
        vec![
            "[1/4] uploading hourly",
            "[2/4] scheduling idflow-hourly",
            "[3/4] unscheduling idflow-nightly",
            "[4/4] removing nightly",
        ]
    );

    let names: Vec<String> = flows
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, vec!["hello", "hourly"]);
    let hourly = flows.current("hourly").await.unwrap().expect("hourly");
    assert_ne!(hourly.version, first);
    // Runs in flight keep their version.
    assert!(flows.version("hourly", &first).await.unwrap().is_some());
    let specs = schedules.list().await.unwrap();
    assert_eq!(specs.len(), 1, "{specs:?}");
    assert_eq!(specs[0].expression, "rate(2 hours)");
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_writes_nothing() {
    let Some((flows, schedules)) = target().await else {
        return;
    };
    let dir = TempDir::new("deploy-dry");
    write(&dir.0, &[("hello.yaml", HELLO), ("nightly.yaml", NIGHTLY)]);
    let plan = deploy::plan(&dir.0, &flows, &schedules, chrono::Utc::now())
        .await
        .expect("plan");
    let printed = plan.to_string();
    assert_eq!(line_of(&printed, "flow hello:"), "flow hello: added");
    assert_eq!(
        line_of(&printed, "schedule idflow-nightly:"),
        "schedule idflow-nightly: added (cron(0 3 * * ? *) Europe/Paris)"
    );
    assert!(flows.list().await.unwrap().is_empty());
    assert!(flows.project().await.unwrap().is_none());
    assert!(schedules.list().await.unwrap().is_empty());
    // Planning again sees the same: nothing was written in between.
    let again = deploy::plan(&dir.0, &flows, &schedules, chrono::Utc::now())
        .await
        .expect("plan");
    assert_eq!(again.flow_counts(), [2, 0, 0, 0]);
}

#[tokio::test]
async fn an_invalid_flow_names_file_and_line_and_nothing_is_written() {
    let Some((flows, schedules)) = target().await else {
        return;
    };
    let dir = TempDir::new("deploy-invalid");
    write(&dir.0, &[("hello.yaml", HELLO)]);
    deploy(&dir.0, &flows, &schedules).await;

    // A new valid flow, a changed valid flow and one broken file: nothing at all is deployed.
    write(
        &dir.0,
        &[
            ("nightly.yaml", NIGHTLY),
            ("hello.yaml", &HELLO.replace("hi: true", "hi: false")),
            (
                "broken.yaml",
                "name: broken\nsteps:\n  - card: no.such.card\n    with: {}\n",
            ),
        ],
    );
    let error = deploy::plan(&dir.0, &flows, &schedules, chrono::Utc::now())
        .await
        .expect_err("an invalid directory must not deploy");
    let DeployError::Invalid { diagnostics, .. } = &error else {
        panic!("want Invalid, got {error}");
    };
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].file, "broken.yaml");
    assert_eq!(diagnostics[0].line, 3, "{}", diagnostics[0]);
    let message = error.to_string();
    assert!(message.contains("broken.yaml:3:"), "{message}");
    assert!(message.contains("nothing was deployed"), "{message}");

    let deployed = flows.list().await.unwrap();
    assert_eq!(deployed.len(), 1);
    assert_eq!(deployed[0].source, HELLO);
    assert!(schedules.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_directory_is_refused_instead_of_removing_every_flow() {
    let Some((flows, schedules)) = target().await else {
        return;
    };
    let dir = TempDir::new("deploy-empty");
    write(&dir.0, &[("hello.yaml", HELLO)]);
    deploy(&dir.0, &flows, &schedules).await;
    let empty = TempDir::new("deploy-empty-2");
    let error = deploy::plan(&empty.0, &flows, &schedules, chrono::Utc::now())
        .await
        .expect_err("an empty directory must not deploy");
    assert!(matches!(error, DeployError::Empty { .. }), "{error}");
    assert_eq!(flows.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_examples_deploy_with_a_schedule_for_every_schedule_flow() {
    let Some((flows, schedules)) = target().await else {
        return;
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flows");
    let (plan, printed, _) = deploy(&examples, &flows, &schedules).await;
    assert!(
        plan.flows.iter().all(|f| f.change == Change::Added),
        "{printed}"
    );
    assert!(plan.flows.iter().any(|f| f.name == "hello"), "{printed}");
    let scheduled: Vec<String> = schedules
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.flow)
        .collect();
    assert!(
        scheduled.contains(&"daily-digest".to_owned()),
        "{scheduled:?}"
    );
    assert_eq!(scheduled.len(), plan.schedule_counts()[0]);
    assert_eq!(flows.list().await.unwrap().len(), plan.flows.len());
}

/// `--stack`: table, group and ARNs come from the outputs of the stack template.yaml created.
#[tokio::test]
async fn the_stack_outputs_name_the_table_group_and_arns() {
    let Some(config) = emulator().await else {
        return;
    };
    let client = aws_sdk_cloudformation::Client::new(&config);
    let outputs = [
        ("FlowsTable", "idflow-FlowsTable-1"),
        ("ScheduleGroup", "idflow"),
        (
            "ScheduleFunctionArn",
            "arn:aws:lambda:us-east-1:123456789012:function:idflow-schedule",
        ),
        (
            "SchedulerRoleArn",
            "arn:aws:iam::123456789012:role/idflow-SchedulerRole",
        ),
    ];
    let template = |outputs: &[(&str, &str)]| {
        let outputs: serde_json::Map<String, serde_json::Value> = outputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!({ "Value": v })))
            .collect();
        serde_json::json!({
            "Resources": { "Queue": { "Type": "AWS::SQS::Queue" } },
            "Outputs": outputs,
        })
        .to_string()
    };
    let stack = unique("stack");
    client
        .create_stack()
        .stack_name(&stack)
        .template_body(template(&outputs))
        .send()
        .await
        .expect("create stack");
    let read = deploy::StackOutputs::read(&client, &stack)
        .await
        .expect("stack outputs");
    assert_eq!(read.flows_table, "idflow-FlowsTable-1");
    assert_eq!(read.schedule_group, "idflow");
    assert_eq!(read.schedule_target_arn, outputs[2].1);
    assert_eq!(read.scheduler_role_arn, outputs[3].1);

    // A stack that is not idflow's names the output it lacks.
    let other = unique("stack");
    client
        .create_stack()
        .stack_name(&other)
        .template_body(template(&outputs[..3]))
        .send()
        .await
        .expect("create stack");
    let error = deploy::StackOutputs::read(&client, &other)
        .await
        .expect_err("no SchedulerRoleArn");
    assert_eq!(
        error.to_string(),
        format!(
            "CloudFormation stack `{other}` has no output `SchedulerRoleArn` (was it created from idflow's template.yaml?)"
        )
    );
}
