//! Tables end to end in `idflow serve`: declared in idflow.yaml, written by many runs at once,
//! read back and exported by another flow.

use domain::run::{RunId, RunStatus, TriggerInfo};
use serde_json::json;
use tests::TestServer;

const PROJECT: &str = "tables:\n  failed_logins:\n    key: id\n    columns: { id: text, user: text, at: datetime, count: number }\n";
const RECORD: &str = r#"
name: record
steps:
  - card: table.create_row
    with:
      table: failed_logins
      row: { id: "{{ input.id }}", user: "{{ input.user }}", at: "{{ input.at }}", count: "{{ input.count }}" }
"#;
const REPORT: &str = r#"
name: report
steps:
  - id: busy
    card: table.search_rows
    with: { table: failed_logins, where: { count: { gte: 3 } }, limit: 100 }
  - id: csv
    card: table.export_csv
    with: { table: failed_logins, where: { at: { gte: "2026-01-05T00:00:00Z" } }, columns: [id, count] }
  - card: flow.return
    with: { body: { busy: "{{ steps.busy.rows | length }}", csv: "{{ steps.csv }}" } }
"#;

async fn run(server: &TestServer, flow: &str, input: serde_json::Value) -> RunId {
    let (id, _) = server
        .runtime()
        .start_run(flow, input, TriggerInfo::Manual, None)
        .await
        .expect("run starts");
    id
}

#[tokio::test]
async fn runs_write_rows_that_other_runs_search_and_export() {
    let server = TestServer::start(&[
        ("idflow.yaml", PROJECT),
        ("record.yaml", RECORD),
        ("report.yaml", REPORT),
    ])
    .await;
    let mut ids = Vec::new();
    for n in 0..20 {
        let input = json!({ "id": format!("e{n:02}"), "user": format!("user{n}"), "at": format!("2026-01-0{}T12:00:00Z", 4 + n % 2), "count": n % 5 });
        ids.push(run(&server, "record", input).await);
    }
    for id in ids {
        let run = server.wait_run(&id.to_string()).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    }
    let wrong = run(
        &server,
        "record",
        json!({ "id": "x", "user": "u", "at": "2026-01-05T00:00:00Z", "count": "many" }),
    )
    .await;
    let failed = server.wait_run(&wrong.to_string()).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let message = failed.error.expect("error").message;
    assert!(
        message.contains("row.count"),
        "the error names the column: {message}"
    );

    let report = run(&server, "report", json!({})).await;
    let done = server.wait_run(&report.to_string()).await;
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let body = &done.output.expect("output")["body"];
    assert_eq!(body["busy"], 8, "counts 3 and 4 of 20 rows");
    let csv = body["csv"].as_str().expect("csv text");
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(lines[0], "id,count");
    assert_eq!(lines.len(), 11, "the 10 rows of January 5th and the header");
    assert_eq!(lines[1], "e01,1");
    server.stop().await;
}
