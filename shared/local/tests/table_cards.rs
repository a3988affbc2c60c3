//! The table cards as a flow sees them: outputs, and errors that name the field at fault.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use domain::cards::table::TableExecutor;
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::model::ProjectConfig;
use domain::run::RunId;
use local::sqlite::{SqliteDb, SqliteTableStore};

fn project() -> Arc<ProjectConfig> {
    let mut project = ProjectConfig::default();
    project.tables.insert(
        "failed_logins".into(),
        json!({ "key": "id", "columns": { "id": "text", "user": "text", "at": "datetime", "count": "number", "raw": "json" } }),
    );
    project.tables.insert(
        "settings".into(),
        json!({ "key": "name", "columns": { "name": "text", "value": "text" } }),
    );
    Arc::new(project)
}

fn executor() -> TableExecutor {
    let db = SqliteDb::open_in_memory().expect("database");
    TableExecutor::new(Arc::new(SqliteTableStore::new(db)))
}

async fn call(executor: &TableExecutor, card: &str, input: Value) -> Result<Value, CardError> {
    let call = CardCall {
        card: card.to_owned(),
        input,
        timeout: Duration::from_secs(10),
        run_id: RunId::parse("01JH0000000000000000000000").expect("run id"),
        step: "s".into(),
        attempt: 1,
        project: project(),
    };
    executor.execute(&call).await
}

async fn ok(executor: &TableExecutor, card: &str, input: Value) -> Value {
    match call(executor, card, input.clone()).await {
        Ok(value) => value,
        Err(error) => panic!("{card} {input} failed: {error}"),
    }
}

fn invalid_field(result: Result<Value, CardError>) -> (String, String) {
    match result {
        Err(CardError::InvalidInput { field, message }) => (field, message),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn failed_code(result: Result<Value, CardError>) -> String {
    match result {
        Err(CardError::Failed { code, .. }) => code,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn rows_are_created_read_updated_and_deleted() {
    let tables = executor();
    let created = ok(
        &tables,
        "table.create_row",
        json!({ "table": "failed_logins", "row": { "id": "e1", "user": "ada", "at": "2026-01-05T08:00:00+01:00", "count": 1 } }),
    )
    .await;
    assert_eq!(
        created,
        json!({ "key": "e1", "version": 1, "row": { "id": "e1", "user": "ada", "at": "2026-01-05T07:00:00.000Z", "count": 1, "raw": null } })
    );
    let read = ok(
        &tables,
        "table.read_row",
        json!({ "table": "failed_logins", "key": "e1" }),
    )
    .await;
    assert_eq!(read, created);
    let updated = ok(
        &tables,
        "table.update_row",
        json!({ "table": "failed_logins", "key": "e1", "row": { "count": 2 }, "version": 1 }),
    )
    .await;
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["row"]["count"], 2);
    assert_eq!(updated["row"]["user"], "ada");
    let deleted = ok(
        &tables,
        "table.delete_row",
        json!({ "table": "failed_logins", "key": "e1" }),
    )
    .await;
    assert_eq!(deleted, json!({ "deleted": true }));
    let missing = call(
        &tables,
        "table.read_row",
        json!({ "table": "failed_logins", "key": "e1" }),
    )
    .await;
    assert_eq!(failed_code(missing), "not_found");
    let optional = ok(
        &tables,
        "table.read_row",
        json!({ "table": "failed_logins", "key": "e1", "optional": true }),
    )
    .await;
    assert_eq!(optional, Value::Null);
}

#[tokio::test]
async fn a_wrong_type_fails_the_step_naming_the_column() {
    let tables = executor();
    let check = |input: Value, field: &'static str, says: &'static str| {
        let tables = &tables;
        async move {
            let card = if input.get("key").is_some() {
                "table.update_row"
            } else {
                "table.create_row"
            };
            let (named, message) = invalid_field(call(tables, card, input).await);
            assert_eq!(named, field);
            assert!(message.contains(says), "{message:?} should say {says:?}");
        }
    };
    check(
        json!({ "table": "failed_logins", "row": { "id": "e1", "count": "three" } }),
        "row.count",
        "expected a number, got text `three`",
    )
    .await;
    check(
        json!({ "table": "failed_logins", "row": { "id": "e1", "at": "last tuesday" } }),
        "row.at",
        "RFC 3339",
    )
    .await;
    check(
        json!({ "table": "failed_logins", "row": { "id": "e1", "colour": "red" } }),
        "row.colour",
        "no such column",
    )
    .await;
    check(
        json!({ "table": "failed_logins", "row": { "user": "ada" } }),
        "row.id",
        "needs a value",
    )
    .await;
    ok(
        &tables,
        "table.create_row",
        json!({ "table": "failed_logins", "row": { "id": "e1" } }),
    )
    .await;
    check(
        json!({ "table": "failed_logins", "key": "e1", "row": { "count": true } }),
        "row.count",
        "expected a number, got the boolean true",
    )
    .await;
    let (field, message) = invalid_field(
        call(
            &tables,
            "table.read_row",
            json!({ "table": "nope", "key": "x" }),
        )
        .await,
    );
    assert_eq!(field, "table");
    assert!(message.contains("`nope` is not declared"), "{message}");
}

#[tokio::test]
async fn duplicate_keys_and_stale_versions_are_reported() {
    let tables = executor();
    let row =
        json!({ "table": "settings", "row": { "name": "okta_domain", "value": "a.okta.com" } });
    ok(&tables, "table.create_row", row.clone()).await;
    assert_eq!(
        failed_code(call(&tables, "table.create_row", row.clone()).await),
        "duplicate_key"
    );
    let mut replace = row.clone();
    replace["replace"] = json!(true);
    replace["row"]["value"] = json!("b.okta.com");
    assert_eq!(ok(&tables, "table.create_row", replace).await["version"], 2);
    let stale = call(
        &tables,
        "table.update_row",
        json!({ "table": "settings", "key": "okta_domain", "row": { "value": "c" }, "version": 1 }),
    )
    .await;
    match stale {
        Err(CardError::Failed {
            code,
            message,
            retryable,
        }) => {
            assert_eq!(code, "conflict");
            assert!(!retryable, "the same input would conflict again");
            assert!(message.contains("version 2, not 1"), "{message}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn search_pages_and_reports_bad_conditions() {
    let tables = executor();
    for n in 1..=5 {
        ok(
            &tables,
            "table.create_row",
            json!({ "table": "failed_logins", "row": { "id": format!("e{n}"), "user": "ada", "count": n, "at": format!("2026-01-0{n}T00:00:00Z") } }),
        )
        .await;
    }
    let first = ok(
        &tables,
        "table.search_rows",
        json!({ "table": "failed_logins", "where": { "count": { "gte": 2 } }, "limit": 2 }),
    )
    .await;
    let keys = |page: &Value| -> Vec<String> {
        page["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["key"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(keys(&first), ["e2", "e3"]);
    let second = ok(
        &tables,
        "table.search_rows",
        json!({ "table": "failed_logins", "where": { "count": { "gte": 2 } }, "limit": 2, "cursor": first["cursor"] }),
    )
    .await;
    assert_eq!(keys(&second), ["e4", "e5"]);
    assert_eq!(second["cursor"], Value::Null);
    let check = |input: Value, field: &'static str| {
        let tables = &tables;
        async move {
            let (named, _) = invalid_field(call(tables, "table.search_rows", input).await);
            assert_eq!(named, field);
        }
    };
    check(
        json!({ "table": "failed_logins", "where": { "count": { "between": [1, 2] } } }),
        "where.count.between",
    )
    .await;
    check(
        json!({ "table": "failed_logins", "where": { "raw": { "a": 1 } } }),
        "where.raw.a",
    )
    .await;
    check(
        json!({ "table": "failed_logins", "where": { "nope": 1 } }),
        "where.nope",
    )
    .await;
    check(
        json!({ "table": "failed_logins", "where": { "count": "x" } }),
        "where.count",
    )
    .await;
    check(json!({ "table": "failed_logins", "limit": 5000 }), "limit").await;
    check(
        json!({ "table": "failed_logins", "cursor": "!!" }),
        "cursor",
    )
    .await;
}

#[tokio::test]
async fn export_gives_csv_text_guarded_for_spreadsheets_and_bounded() {
    let tables = executor();
    for (id, user, count) in [("e1", "ada, lovelace", 1), ("e2", "=HYPERLINK(\"x\")", 2)] {
        ok(
            &tables,
            "table.create_row",
            json!({ "table": "failed_logins", "row": { "id": id, "user": user, "count": count, "raw": { "ip": "10.0.0.1" } } }),
        )
        .await;
    }
    let csv = ok(
        &tables,
        "table.export_csv",
        json!({ "table": "failed_logins" }),
    )
    .await;
    assert_eq!(
        csv,
        json!(
            "id,user,at,count,raw\r\n\
             e1,\"ada, lovelace\",,1,\"{\"\"ip\"\":\"\"10.0.0.1\"\"}\"\r\n\
             e2,\"'=HYPERLINK(\"\"x\"\")\",,2,\"{\"\"ip\"\":\"\"10.0.0.1\"\"}\"\r\n"
        )
    );
    let some = ok(
        &tables,
        "table.export_csv",
        json!({ "table": "failed_logins", "where": { "count": 1 }, "columns": ["count", "id"] }),
    )
    .await;
    assert_eq!(some, json!("count,id\r\n1,e1\r\n"));
    let small = executor().with_export_limit(30);
    for n in 0..5 {
        ok(
            &small,
            "table.create_row",
            json!({ "table": "settings", "row": { "name": format!("n{n}"), "value": "vvvvv" } }),
        )
        .await;
    }
    assert_eq!(
        failed_code(call(&small, "table.export_csv", json!({ "table": "settings" })).await),
        "too_large"
    );
    assert_eq!(
        ok(&small, "table.clear", json!({ "table": "settings" })).await,
        json!({ "deleted": 5 })
    );
}
