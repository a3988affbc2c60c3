//! CSV import and export of a table, on the SQLite table store.

use std::io::Cursor;

use domain::tables::csv::import;
use domain::tables::*;
use local::sqlite::{SqliteDb, SqliteTableStore};
use serde_json::{Value, json};

fn schema_of(config: Value) -> Result<TableSchema, String> {
    TableSchema::from_config("t", &config).map_err(|e| e.to_string())
}

fn logins() -> TableSchema {
    schema_of(json!({ "key": "id", "columns": { "id": "text", "user": "text", "count": "number", "at": "datetime" } }))
        .unwrap()
}

#[tokio::test]
async fn import_then_export_round_trips_and_reports_progress() {
    let store = SqliteTableStore::new(SqliteDb::open_in_memory().unwrap());
    let table = logins();
    let mut csv = String::from("user,id,count\n");
    for n in 0..600 {
        csv.push_str(&format!("\"user, {n}\",e{n:04},{n}\n"));
    }
    let mut reports = Vec::new();
    let done = import(
        &store,
        &table,
        Cursor::new(csv.into_bytes()),
        OnDuplicate::Fail,
        |p| reports.push(p.rows),
    )
    .await
    .expect("import");
    assert_eq!(done.rows, 600);
    assert_eq!(reports, [256, 512, 600], "progress after every batch");
    let mut out = Vec::new();
    let report = csv::export(
        &store,
        &table,
        &RowQuery::all(),
        &csv::ExportOptions::default(),
        &mut out,
    )
    .await
    .expect("export");
    assert_eq!(report.rows, 600);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "id,user,count,at");
    assert_eq!(lines[1], "e0000,\"user, 0\",0,");
    assert_eq!(lines[600], "e0599,\"user, 599\",599,");
    assert_eq!(report.bytes as usize, text.len());
}

#[tokio::test]
async fn import_stops_at_the_first_bad_line_and_names_it() {
    let check = |csv: &'static str, expected: &'static str| async move {
        let store = SqliteTableStore::new(SqliteDb::open_in_memory().unwrap());
        let result = import(
            &store,
            &logins(),
            Cursor::new(csv.as_bytes()),
            OnDuplicate::Fail,
            |_| {},
        )
        .await;
        match result {
            Err(error) => assert_eq!(error.to_string(), expected, "{csv:?}"),
            Ok(done) => panic!("{csv:?} imported {} rows", done.rows),
        }
    };
    check(
        "",
        "the file is empty: expected a header line naming the columns",
    )
    .await;
    check(
        "id,colour\n",
        "header: table `t` has no column `colour` (columns: id, user, count, at)",
    )
    .await;
    check("id,id\n", "header: column `id` appears twice").await;
    check(
        "id,count\ne1,1\ne2,two\n",
        "line 3: column `count`: expected a number, got `two`",
    )
    .await;
    check(
        "id,count\ne1,1,9\n",
        "line 2: expected 2 cells as in the header, got 3",
    )
    .await;
    check(
        "id,count\ne1,1\ne1,2\n",
        "line 3: table `t` already has a row with key `e1`",
    )
    .await;
    check(
        ",count\n,1\n",
        "header: table `t` has no column `` (columns: id, user, count, at)",
    )
    .await;
}
