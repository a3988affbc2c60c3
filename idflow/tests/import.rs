//! `idflow import flopack` as a user runs it: a project and a report from an export, exit 1 and
//! nothing written for a file that is not a flopack.

use std::process::Output;

use serde_json::{Value, json};

mod common;

use common::temp_dir;

fn idflow(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("idflow runs")
}

/// A small export: a helper flow that composes a greeting and returns it.
fn export() -> Value {
    let card =
        |uuid: &str, address: &str, name: &str, inputs: Value, outputs: Value, pins: Value| {
            json!({ "uuid": uuid, "address": address, "node": { "data": { "name": name },
            "model": { "inputs": { "data": inputs }, "outputs": { "data": outputs } } },
            "pins": pins, "branches": {}, "joins": {} })
        };
    let field = |id: &str, key: &str| json!({ "id": id, "key": key, "value": { "type": "string", "data": "" } });
    json!({ "type": "flopack", "version": "1.5.0", "data": {
        "flos": { "f1": { "id": "f1", "name": "Say Hello", "description": "", "data": {
            "scheduled": false, "cron": {}, "security_level": null,
            "orderings": { "e1": ["start", "hello"], "e2": ["hello", "done"] },
            "methods": [
                card("start", "root:kernel:control:0.0.1:callable", "Helper Flow", json!({}),
                    json!({ "o1": field("o1", "Name") }), json!({ "o1": { "hello": [{ "input": "i1" }] } })),
                card("hello", "root:kernel:string:0.0.1:compose", "Compose",
                    json!({ "t": { "id": "t", "key": "_text_", "value": { "type": "string", "data": "Hello {{{n}}}" } }, "i1": field("i1", "n") }),
                    json!({ "o2": field("o2", "output") }), json!({ "o2": { "done": [{ "input": "i2" }] } })),
                card("done", "root:kernel:control:0.0.1:return", "Return",
                    json!({ "i2": field("i2", "greeting") }), json!({}), json!({})),
            ] } } },
        "tables": {}, "configs": { "c1": { "id": "c1", "module": "okta", "name": "Okta", "data": null } }, "groups": {} } })
}

#[test]
fn import_writes_a_project_that_validates_and_a_report() {
    let dir = temp_dir("import");
    let file = dir.join("export.flopack");
    std::fs::write(&file, export().to_string()).unwrap();
    let out_dir = dir.join("flows");
    let report = dir.join("report.json");
    let out = idflow(&[
        "import",
        "flopack",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Imported 1 flow(s) from 1 file(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 exact"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        report,
        json!({ "flows": [{ "flow": "say-hello", "file": "say-hello.yaml", "trigger": "helper", "status": "exact", "unconverted": [] }] })
    );
    let config = std::fs::read_to_string(out_dir.join("idflow.yaml")).unwrap();
    assert!(config.contains("token: \"env:OKTA_API_TOKEN\""), "{config}");
    let out = idflow(&["validate", out_dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second import into the same directory replaces nothing.
    let before = std::fs::read_to_string(out_dir.join("say-hello.yaml")).unwrap();
    let out = idflow(&[
        "import",
        "flopack",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds say-hello.yaml"));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("say-hello.yaml")).unwrap(),
        before
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_that_is_not_a_flopack_exits_1_and_writes_nothing() {
    let dir = temp_dir("import-bad");
    let file = dir.join("flows.json");
    std::fs::write(&file, r#"{"name": "not an export"}"#).unwrap();
    let out_dir = dir.join("out");
    let out = idflow(&[
        "import",
        "flopack",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a flopack"), "{stderr}");
    assert!(stderr.contains("flows.json"), "{stderr}");
    assert!(!out_dir.exists(), "nothing is written");
    let _ = std::fs::remove_dir_all(&dir);
}
