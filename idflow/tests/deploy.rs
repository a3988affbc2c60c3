//! `idflow deploy` as a user runs it, up to the point where AWS would be called: a broken directory
//! is refused with every diagnostic before any connection, and a missing target names its flag.
//! Deploying against the emulator is covered through the same library calls in
//! tests/integration/deploy.rs.
#![cfg(feature = "aws")]

mod common;

use std::process::Output;

use common::temp_dir;

fn idflow(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(args)
        .env("NO_COLOR", "1")
        // Nothing listens here: any AWS call would fail, so passing tests made none.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("IDFLOW_STACK")
        .env_remove("IDFLOW_FLOWS_TABLE")
        .env_remove("IDFLOW_SCHEDULE_TARGET_ARN")
        .env_remove("IDFLOW_SCHEDULER_ROLE_ARN")
        .output()
        .expect("idflow runs")
}

#[test]
fn deploy_refuses_an_invalid_directory_naming_file_and_line_before_touching_aws() {
    let dir = temp_dir("deploy-invalid");
    std::fs::write(
        dir.join("good.yaml"),
        "name: good\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "name: bad\nsteps:\n  - card: text.compse\n    with: { text: hi }\n",
    )
    .unwrap();
    let out = idflow(&[
        "deploy",
        dir.to_str().unwrap(),
        "--target",
        "aws",
        "--flows-table",
        "flows",
        "--schedule-target-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:schedule",
        "--scheduler-role-arn",
        "arn:aws:iam::123456789012:role/scheduler",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.yaml:3:11: steps[0].card"), "{stderr}");
    assert!(
        stderr.contains("1 error(s) in") && stderr.contains("nothing was deployed"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deploy_without_a_stack_or_table_names_the_missing_flag() {
    let dir = temp_dir("deploy-flags");
    std::fs::write(
        dir.join("good.yaml"),
        "name: good\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
    )
    .unwrap();
    let out = idflow(&["deploy", dir.to_str().unwrap(), "--target", "aws"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--flows-table is required without --stack"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
