//! The `idflow` command line as a user runs it: validate, run --wait, runs, show, rerun, cancel,
//! completions, its exit codes and help, and what `serve` says at start.

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

#[test]
fn validate_checks_templates_and_strict_makes_warnings_errors() {
    let dir = temp_dir("validate-checker");
    std::fs::write(dir.join("idflow.yaml"), "vars: { org: Example }\n").unwrap();
    // An error the checker finds (a var idflow.yaml does not declare), and a flow that only
    // warns (a step read that may not have run).
    std::fs::write(
        dir.join("typo.yaml"),
        "name: typo\nsteps:\n  - { card: text.compose, with: { text: \"{{ vars.orgg }}\" } }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("maybe.yaml"),
        "name: maybe\nsteps:\n  - if: \"{{ input.go }}\"\n    then: [{ id: a, card: text.compose, with: { text: hi } }]\n  - { card: flow.return, with: { body: \"{{ steps.a }}\" } }\n",
    )
    .unwrap();
    let out = idflow(&["validate", dir.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("typo.yaml:3:45: step `s0`: with.text: unknown var `orgg`: idflow.yaml declares no `vars.orgg`; did you mean `org`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "warning: maybe.yaml:5:44: step `s1`: with.body: step `a` may not have run here"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("1 error(s); 1 flow(s) valid"), "{stderr}");

    std::fs::remove_file(dir.join("typo.yaml")).unwrap();
    let out = idflow(&["validate", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = idflow(&["validate", "--strict", "--json", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["errors"][0]["file"], "maybe.yaml");
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
    assert_eq!(out.status.code(), Some(2), "the run could not be started");
    assert!(String::from_utf8_lossy(&out.stderr).contains("flow `missing` does not exist"));

    child.kill().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs the CLI on a blocking thread (the server under test shares the runtime).
async fn cli(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        idflow(&args)
    })
    .await
    .expect("the CLI ran")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn rerun_cancel_and_wait_exit_with_distinct_codes() {
    let dir = temp_dir("rerun");
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
    std::fs::write(
        flows.join("sleepy.yaml"),
        "name: sleepy\nsteps:\n  - wait: 1h\n  - { card: text.compose, with: { text: awake } }\n",
    )
    .unwrap();
    let (mut child, base) = common::serve(&flows, &dir.join("data")).await;

    // Still going when --timeout passes: 3, and the run goes on.
    let out = cli(&[
        "run",
        "sleepy",
        "--wait",
        "--timeout",
        "0",
        "--json",
        "--server",
        &base,
    ])
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let sleepy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        ["queued", "running", "waiting"].contains(&sleepy["status"].as_str().unwrap_or_default()),
        "{sleepy}"
    );
    assert!(
        stderr(&out).contains("after 0s; it goes on"),
        "{}",
        stderr(&out)
    );
    let sleepy_id = sleepy["id"].as_str().unwrap().to_owned();

    // Cancel it (again: still cancelled, nothing else changes).
    let out = cli(&["cancel", &sleepy_id, "--server", &base]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("cancelled run {sleepy_id} of sleepy\n")
    );
    let out = cli(&["show", &sleepy_id, "--server", &base]).await;
    assert!(
        stdout(&out).contains("status    cancelled"),
        "{}",
        stdout(&out)
    );
    // Re-run a failed run: a new run with the same input, which fails again (1).
    let out = cli(&[
        "run",
        "broken",
        "--input",
        r#"{"name":"Bob"}"#,
        "--server",
        &base,
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    let broken_id = stdout(&out).trim().to_owned();
    let out = cli(&["rerun", &broken_id, "--wait", "--json", "--server", &base]).await;
    assert_eq!(out.status.code(), Some(1), "a failed run exits 1");
    let again: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(again["id"], broken_id.as_str());
    assert_eq!(again["trigger"]["kind"], "rerun");
    assert_eq!(
        again["error"]["message"], "no luck for Bob",
        "the same input"
    );

    // Without --wait, rerun prints the new run's id; with it, a success exits 0.
    let out = cli(&[
        "run",
        "hello",
        "--input",
        r#"{"name":"Ada"}"#,
        "--wait",
        "--server",
        &base,
    ])
    .await;
    assert_eq!(out.status.code(), Some(0));
    let hello_id = stdout(&out)
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_owned();
    let out = cli(&["rerun", &hello_id, "--server", &base]).await;
    assert_eq!(out.status.code(), Some(0));
    let new_id = stdout(&out).trim().to_owned();
    assert_eq!(new_id.len(), 26, "a run id: {new_id}");
    let out = cli(&["rerun", &new_id, "--wait", "--server", &base]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("\"Hello Ada\""), "{}", stdout(&out));

    // A run that ended is not cancelled: 2.
    let out = cli(&["cancel", &hello_id, "--server", &base]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("already ended as succeeded"),
        "{}",
        stderr(&out)
    );

    // An unknown run, and a server that does not answer: 2.
    let out = cli(&["rerun", "01JUNKNOWNRUN00000000000000", "--server", &base]).await;
    assert_eq!(out.status.code(), Some(2));
    child.kill().await.ok();
    let out = cli(&["runs", "--server", &base]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot reach the idflow server"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn runs_and_show_read_easily_and_show_lists_helper_runs() {
    let dir = temp_dir("show");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("idflow.yaml"),
        "hooks: { okta: { secret: \"file:./hook.secret\" } }\n",
    )
    .unwrap();
    std::fs::write(flows.join("hook.secret"), "cli-hook-secret").unwrap();
    std::fs::write(
        flows.join("watch.yaml"),
        "name: watch\ntrigger: { event: { okta: [user.session.start] } }\nsteps:\n  - { card: text.compose, with: { text: \"{{ input.event.actor.displayName }}\" } }\n",
    )
    .unwrap();
    std::fs::write(
        flows.join("fan.yaml"),
        "name: fan\nsteps:\n  - { id: each, map: \"{{ [1, 2] }}\", as: n, flow: leaf, with: { n: \"{{ n }}\" } }\n",
    )
    .unwrap();
    std::fs::write(
        flows.join("leaf.yaml"),
        "name: leaf\ntrigger: { helper: { inputs: { n: number } } }\nsteps:\n  - { card: flow.return, with: { body: \"{{ input.n * 10 }}\" } }\n",
    )
    .unwrap();
    let (mut child, base) = common::serve(&flows, &dir.join("data")).await;

    // An Okta event as Okta delivers it: the run's input is 80 lines of JSON.
    let event = serde_json::json!({
        "uuid": "f1d0b993-cc19-11ed-a688-db22c99ef6c4", "published": "2026-03-26T21:05:32.159Z",
        "eventType": "user.session.start", "version": "0", "displayMessage": "User login to Okta", "severity": "WARN",
        "client": { "userAgent": { "rawUserAgent": "Mozilla/5.0 (Macintosh)", "os": "Mac OS X", "browser": "CHROME" },
                    "zone": "null", "device": "Computer", "ipAddress": "203.0.113.9",
                    "geographicalContext": { "city": "Toronto", "state": "Ontario", "country": "Canada", "postalCode": "M4M" } },
        "actor": { "id": "00u1", "type": "User", "alternateId": "ada@example.com", "displayName": "Ada Lovelace" },
        "outcome": { "result": "FAILURE", "reason": "INVALID_CREDENTIALS" },
        "target": [{ "id": "lae1", "type": "AuthenticatorEnrollment", "alternateId": "unknown", "displayName": "Password" }],
        "transaction": { "type": "WEB", "id": "ZCCzm8j2wTvzwele2NwLnwAADSc", "detail": {} },
        "debugContext": { "debugData": { "requestUri": "/idp/idx/identify", "threatSuspected": "false" } },
        "authenticationContext": { "authenticationStep": 0, "externalSessionId": "idxyNcxVX2ESsSL0u462548Qg" },
        "securityContext": { "asNumber": null, "asOrg": null, "isp": null, "domain": null, "isProxy": null },
    });
    let envelope = serde_json::json!({
        "eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/who1", "eventId": "85b60edb-4263-4e13-993b-818e26201052",
        "data": { "events": [event] }, "eventTime": "2026-03-26T21:05:33.093Z", "contentType": "application/json",
    });
    let delivered = reqwest::Client::new()
        .post(format!("{base}/hooks/okta"))
        .header("authorization", "cli-hook-secret")
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 200);
    let out = cli(&["runs", "--flow", "watch", "--json", "--server", &base]).await;
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let event_run = page["runs"][0]["id"].as_str().unwrap().to_owned();
    let out = cli(&["show", &event_run, "--server", &base]).await;
    let shown = stdout(&out);
    let input: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with("  input"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        input,
        [
            format!("  input     (the whole input: idflow show {event_run} --json)").as_str(),
            "    event      user.session.start FAILURE (INVALID_CREDENTIALS)",
            "    published  2026-03-26 21:05:32  uuid f1d0b993-cc19-11ed-a688-db22c99ef6c4",
            "    actor      Ada Lovelace (ada@example.com)",
            "    target     AuthenticatorEnrollment Password (lae1)",
            "    client     203.0.113.9",
        ],
        "{shown}"
    );
    assert!(!shown.contains("rawUserAgent"), "{shown}");

    // A run with helper runs lists them after its steps.
    let out = cli(&["run", "fan", "--wait", "--server", &base]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let card = stdout(&out);
    let helpers: Vec<&str> = card
        .lines()
        .skip_while(|l| !l.starts_with("helper runs"))
        .collect();
    assert_eq!(helpers.first(), Some(&"helper runs (2)"), "{card}");
    assert_eq!(helpers.len(), 3, "{card}");
    assert!(
        helpers[1..]
            .iter()
            .all(|l| l.contains("  leaf  succeeded  ")),
        "{card}"
    );

    // `runs` prints times to the second, in UTC, and piped it has no colour codes.
    let out = cli(&["runs", "--server", &base]).await;
    let table = stdout(&out);
    assert!(table.starts_with("RUN "), "{table}");
    assert!(
        table.lines().next().unwrap().contains("CREATED (UTC)"),
        "{table}"
    );
    let created = table.lines().nth(1).unwrap();
    let stamp =
        regex_like_timestamp(created).unwrap_or_else(|| panic!("no readable time in {created:?}"));
    let out = cli(&["runs", "--json", "--limit", "1", "--server", &base]).await;
    let newest: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rfc3339 = newest["runs"][0]["createdAt"].as_str().unwrap().to_owned();
    assert_eq!(
        rfc3339.replace('T', " ")[..19],
        stamp,
        "the same instant, to the second"
    );
    assert!(!table.contains(&rfc3339), "no nanoseconds: {table}");
    let raw = std::process::Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(["runs", "--server", &base])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!raw.stdout.contains(&0x1b), "no ANSI codes when piped");

    child.kill().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `YYYY-MM-DD HH:MM:SS` in a line, if any.
fn regex_like_timestamp(line: &str) -> Option<String> {
    let chars: Vec<char> = line.chars().collect();
    (0..chars.len().saturating_sub(18)).find_map(|i| {
        let candidate: String = chars[i..i + 19].iter().collect();
        let shape = "dddd-dd-dd dd:dd:dd";
        let fits = candidate
            .chars()
            .zip(shape.chars())
            .all(|(c, s)| if s == 'd' { c.is_ascii_digit() } else { c == s });
        fits.then_some(candidate)
    })
}

#[test]
fn help_describes_every_flag_and_lists_every_command() {
    let top = stdout(&idflow(&["--help"]));
    for command in [
        "serve",
        "validate",
        "run",
        "runs",
        "show",
        "rerun",
        "cancel",
        "test",
        "tables",
        "deploy",
        "import",
        "record",
        "completions",
    ] {
        assert!(
            top.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "`{command}` missing from:\n{top}"
        );
    }
    assert!(top.contains("Exit codes:"), "{top}");
    let runs = stdout(&idflow(&["runs", "--help"]));
    for line in runs.lines().filter(|l| l.trim_start().starts_with("--")) {
        let (_, description) = line.trim().split_once("  ").unwrap_or(("", ""));
        assert!(!description.trim().is_empty(), "undescribed flag: {line}");
    }
    assert!(
        runs.contains("[possible values: queued, running, waiting, succeeded, failed, cancelled]"),
        "{runs}"
    );
    let run = stdout(&idflow(&["run", "--help"]));
    for code in [
        "0  success",
        "1  what the command checked or ran failed",
        "2  the command could not do its job",
        "3  run --wait",
    ] {
        assert!(run.contains(code), "{code} missing from:\n{run}");
    }
}

#[test]
fn completion_scripts_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = idflow(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        for command in ["rerun", "cancel", "tables", "record"] {
            assert!(script.contains(command), "{shell}: {command}");
        }
    }
    assert_eq!(idflow(&["completions", "tcsh"]).status.code(), Some(2));
}

#[tokio::test]
async fn serve_refuses_a_missing_flows_directory() {
    let dir = temp_dir("no-flows");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(["serve", "--addr", "127.0.0.1:0", "--flows"])
        .arg(dir.join("flowz"))
        .arg("--data")
        .arg(dir.join("data"))
        .output()
        .await
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("flowz does not exist"), "{err}");
    assert!(!dir.join("data").exists(), "nothing was created");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn serve_names_each_flows_unresolved_secrets_and_never_a_value() {
    let dir = temp_dir("secrets");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(
        flows.join("idflow.yaml"),
        "connections:\n  okta: { domain: \"http://127.0.0.1:9\", auth: { type: ssws, token: \"env:IDFLOW_CLI_TEST_UNSET_TOKEN\" } }\nhooks: { okta: { secret: \"file:./hook.secret\" } }\nsecrets:\n  crm: \"env:IDFLOW_CLI_TEST_SET_SECRET\"\n",
    )
    .unwrap();
    std::fs::write(
        flows.join("sync.yaml"),
        "name: sync\nsteps:\n  - { card: okta.read_user, with: { user: a } }\n  - { card: http.request, with: { method: GET, url: \"https://crm.example.com\", headers: { authorization: \"{{ secret('crm') }}\" } } }\n",
    )
    .unwrap();
    std::fs::write(
        flows.join("watch.yaml"),
        "name: watch\ntrigger: { event: { okta: [user.session.start] } }\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
    )
    .unwrap();
    let (mut child, _, logged) = common::serve_logging(
        &flows,
        &dir.join("data"),
        &[("IDFLOW_CLI_TEST_SET_SECRET", "value-that-must-not-show")],
    )
    .await;
    child.kill().await.ok();
    let log = logged.join("\n");
    assert!(
        log.contains("flow `sync` needs connections.okta.auth.token (env:IDFLOW_CLI_TEST_UNSET_TOKEN), which is not set"),
        "{log}"
    );
    assert!(
        log.contains("flow `watch` needs hooks.okta.secret (file:./hook.secret), which is not set"),
        "{log}"
    );
    assert!(
        !log.contains("secrets.crm"),
        "a secret that resolves is not mentioned: {log}"
    );
    assert!(!log.contains("value-that-must-not-show"), "{log}");
    // The log went to a pipe: plain text, no colour codes.
    assert!(!log.contains('\u{1b}'), "{log:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_idflow_yaml_beside_the_flows_directory_is_named_not_ignored() {
    let dir = temp_dir("misplaced");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    std::fs::write(dir.join("idflow.yaml"), "vars: { org: Example }\n").unwrap();
    std::fs::write(
        flows.join("hello.yaml"),
        "name: hello\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
    )
    .unwrap();
    let out = idflow(&["validate", flows.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "idflow.yaml is not read: the project config belongs inside the flows directory"
        ),
        "{err}"
    );
    let (mut child, _, logged) = common::serve_logging(&flows, &dir.join("data"), &[]).await;
    child.kill().await.ok();
    let log = logged.join("\n");
    assert!(log.contains("idflow.yaml is not read"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn importing_one_row_says_one_row() {
    let dir = temp_dir("import-one");
    let flows = dir.join("flows");
    std::fs::create_dir_all(flows.join("tables")).unwrap();
    std::fs::write(
        flows.join("tables/settings.yaml"),
        "key: name\ncolumns: { name: text, value: text }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("settings.csv"),
        "name,value\nokta_domain,http://127.0.0.1:8089\n",
    )
    .unwrap();
    let out = idflow(&[
        "tables",
        "import",
        "settings",
        dir.join("settings.csv").to_str().unwrap(),
        "--flows",
        flows.to_str().unwrap(),
        "--data",
        dir.join("data").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.starts_with("imported 1 row into settings in "), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a reloading `idflow serve` logs, line by line, as it comes.
struct ServeLog {
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl ServeLog {
    /// Reads lines until one contains `needle`, for at most 30 seconds (the reloader polls every
    /// second); returns the lines read on the way, that one included.
    async fn until(&mut self, needle: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut read = Vec::new();
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no log line with {needle:?} in 30 s; logged:\n{}",
                        self.seen.join("\n")
                    )
                })
                .unwrap_or_else(|| panic!("idflow exited; logged:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            read.push(line.clone());
            if line.contains(needle) {
                return read;
            }
        }
    }
}

#[tokio::test]
async fn hot_reload_logs_the_warnings_of_a_changed_flow_once() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = temp_dir("reload-warnings");
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let hello = "name: hello\nsteps:\n  - id: user\n    card: flow.assign\n    with: { login: \"{{ input.login }}\" }\n  - card: text.compose\n    with: { text: \"Hi {{ steps.user.login }}\" }\n";
    std::fs::write(flows.join("hello.yaml"), hello).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(["serve", "--addr", "127.0.0.1:0", "--flows"])
        .arg(&flows)
        .arg("--data")
        .arg(dir.join("data"))
        .env("IDFLOW_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("idflow starts");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = ServeLog {
        lines: rx,
        seen: Vec::new(),
    };
    let started = log.until("idflow listening on").await;
    assert!(
        !started.iter().any(|l| l.contains("hello.yaml:")),
        "{started:#?}"
    );

    // A typo in a field of a step's output: the flow is deployed, and the reload says what is
    // suspicious, where.
    let warning = "hello.yaml:7:26: step `s1`: with.text: step `user`: the `flow.assign` output has no field `logn`; did you mean `login`?";
    std::fs::write(
        flows.join("hello.yaml"),
        hello.replace("user.login", "user.logn"),
    )
    .unwrap();
    let reloaded = log.until("flows deployed").await;
    let reloaded = [reloaded, log.until(warning).await].concat();
    assert!(
        reloaded
            .iter()
            .any(|l| l.contains("WARN") && l.contains(warning)),
        "{reloaded:#?}"
    );
    assert!(
        reloaded.iter().any(|l| l.contains("updated=1")),
        "{reloaded:#?}"
    );

    // Another file changes: that reload does not repeat the warning of the flow left as it was.
    std::fs::write(
        flows.join("other.yaml"),
        "name: other\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
    )
    .unwrap();
    let other = log.until("added=1").await;
    // The warnings of a reload come right after its report; the next report closes them.
    std::fs::write(
        flows.join("other.yaml"),
        "name: other\nsteps:\n  - { card: text.compose, with: { text: hello } }\n",
    )
    .unwrap();
    let after = [other, log.until("updated=1").await].concat();
    assert!(
        !after.iter().any(|l| l.contains("hello.yaml:")),
        "the warning of an unchanged flow is logged once: {after:#?}"
    );
    child.kill().await.ok();
    let _ = std::fs::remove_dir_all(&dir);
}
