//! Helpers of the CLI-level tests: a fresh directory, a real `idflow serve` child process. Each test
//! binary uses some of them.
#![allow(dead_code)]

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `idflow serve` on an ephemeral port and returns it with its base URL, read from its
/// "listening on" line (no port guessing, no sleeping).
pub async fn serve(flows: &std::path::Path, data: &std::path::Path) -> (Child, String) {
    let (child, base, _) = serve_with(flows, data, "warn", &[], &[]).await;
    (child, base)
}

/// Starts `idflow serve` like [`serve`], with `IDFLOW_LOG=info`, extra environment variables and
/// no `NO_COLOR`, and returns what it logged before listening (its start-up warnings).
pub async fn serve_logging(
    flows: &std::path::Path,
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, String, Vec<String>) {
    serve_with(flows, data, "info", env, &["NO_COLOR"]).await
}

/// Starts `idflow serve` on an ephemeral port with `IDFLOW_LOG=<log>`, the variables in `remove`
/// taken out of its environment and those in `env` set, and returns it with its base URL and
/// what it logged before listening. Stderr keeps being drained, so the child never blocks on a
/// full pipe.
pub async fn serve_with(
    flows: &std::path::Path,
    data: &std::path::Path,
    log: &str,
    env: &[(&str, &str)],
    remove: &[&str],
) -> (Child, String, Vec<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_idflow"));
    command
        .args(["serve", "--no-reload", "--addr", "127.0.0.1:0", "--flows"])
        .arg(flows)
        .arg("--data")
        .arg(data)
        .env("IDFLOW_LOG", log)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for name in remove {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("idflow starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut logged = Vec::new();
    let base = loop {
        let line = lines
            .next_line()
            .await
            .expect("read stderr")
            .unwrap_or_else(|| panic!("idflow exited before listening:\n{}", logged.join("\n")));
        if let Some(url) = line.strip_prefix("idflow listening on ") {
            break url.trim().to_owned();
        }
        logged.push(line);
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base, logged)
}

/// Starts a run of `flow` with `input` through the admin API of the server at `base`; returns the
/// run's id.
pub async fn start_run(
    http: &reqwest::Client,
    base: &str,
    flow: &str,
    input: &serde_json::Value,
) -> String {
    let started: serde_json::Value = http
        .post(format!("{base}/api/flows/{flow}/runs"))
        .json(input)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    started["runId"].as_str().expect("a run id").to_owned()
}

/// The run `run_id` as the admin API shows it once it ended, waiting up to 30 s for its end.
pub async fn ended_run(http: &reqwest::Client, base: &str, run_id: &str) -> serde_json::Value {
    http.get(format!("{base}/api/runs/{run_id}?wait=30"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A fresh, empty directory under the system's temp dir.
pub fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("idflow-cli-{label}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
