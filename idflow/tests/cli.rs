//! The `idflow` command line as a user runs it: validate, run --wait, runs, show.

use std::process::Output;

use serde_json::Value;

mod common;

use common::temp_dir;

fn idflow(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("idflow runs")
}

#[test]
fn validate_prints_every_error_with_its_position_and_exits_1() {
    let dir = temp_dir("validate");
    std::fs::write(
        dir.join("good.yaml"),
        "name: good\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "name: bad\nhistroy: all\nsteps:\n  - card: text.compse\n    with: { text: hi }\n  - card: flow.return\n    with: { status: 999 }\n",
    )
    .unwrap();
    let out = idflow(&["validate", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bad.yaml:2:1: histroy"), "{stderr}");
    assert!(stderr.contains("did you mean `history`"), "{stderr}");
    assert!(stderr.contains("bad.yaml:4:11: steps[0].card"), "{stderr}");
    assert!(stderr.contains("text.compose"), "{stderr}");
    assert!(stderr.contains("steps[1].with.status"), "{stderr}");
    assert!(stderr.contains("3 error(s); 1 flow(s) valid"), "{stderr}");

    let out = idflow(&[
        "validate",
        "--json",
        dir.join("good.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn run_wait_runs_and_show_read_history_card_by_card() {
    let dir = temp_dir("run");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("hello.yaml"),
        "name: hello\nsteps:\n  - { id: greeting, card: text.compose, with: { text: \"Hello {{ input.name }}\" } }\n",
    )
    .unwrap();
    std::fs::write(
        flows.join("broken.yaml"),
        "name: broken\nsteps:\n  - { id: nope, card: flow.fail, with: { message: \"no luck for {{ input.name }}\" } }\n",
    )
    .unwrap();
    let (mut child, base) = common::serve(&flows, &dir.join("data")).await;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            idflow(&args)
        })
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();

    let out = run(s(&[
        "run",
        "hello",
        "--input",
        r#"{"name":"Ada"}"#,
        "--wait",
        "--server",
        &base,
    ]))
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("status    succeeded"), "{stdout}");
    assert!(
        stdout.contains("greeting text.compose  succeeded"),
        "{stdout}"
    );
    assert!(stdout.contains("\"Hello Ada\""), "{stdout}");

    let out = run(s(&[
        "run",
        "broken",
        "--input",
        r#"{"name":"Bob"}"#,
        "--wait",
        "--json",
        "--server",
        &base,
    ]))
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    let failed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["message"], "no luck for Bob");
    let failed_id = failed["id"].as_str().unwrap().to_owned();

    let out = run(s(&["show", &failed_id, "--server", &base]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("nope flow.fail  failed"), "{stdout}");
    assert!(
        stdout.contains("error flow_failed: no luck for Bob"),
        "{stdout}"
    );

    let out = run(s(&["runs", "--server", &base])).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("broken") && l.contains("failed")),
        "newest first: {stdout}"
    );
    assert!(
        stdout.contains("hello") && stdout.contains("succeeded"),
        "{stdout}"
    );

    let out = run(s(&[
        "runs", "--json", "--status", "failed", "--server", &base,
    ]))
    .await
    .unwrap();
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);

    let out = run(s(&["run", "missing", "--server", &base]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flow `missing` does not exist"));

    child.kill().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
}
