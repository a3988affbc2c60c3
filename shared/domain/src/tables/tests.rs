//! Schemas, value checks, and CSV in and out.

use std::io::Cursor;

use serde_json::{Value, json};

use super::csv::{CsvReader, value_from_cell};
use super::*;

fn schema_of(config: Value) -> Result<TableSchema, String> {
    TableSchema::from_config("t", &config).map_err(|e| e.to_string())
}

#[test]
fn declarations_become_schemas_or_say_what_is_wrong() {
    let check = |config: Value, expected: Result<(&str, Option<&str>), &str>| {
        let got = schema_of(config.clone());
        match expected {
            Ok((columns, key)) => {
                let schema = got.unwrap_or_else(|e| panic!("{config}: {e}"));
                let shown: Vec<String> = schema
                    .columns
                    .iter()
                    .map(|c| format!("{}:{}", c.name, c.kind.as_str()))
                    .collect();
                assert_eq!(shown.join(" "), columns, "{config}");
                assert_eq!(schema.key.as_deref(), key, "{config}");
            }
            Err(message) => assert_eq!(got.err().as_deref(), Some(message), "{config}"),
        }
    };
    check(
        json!({ "key": "id", "columns": { "id": "text", "at": "datetime", "n": "number", "ok": "boolean", "raw": "json" } }),
        Ok((
            "id:text at:datetime n:number ok:boolean raw:json",
            Some("id"),
        )),
    );
    check(
        json!({ "columns": { "n": "number" } }),
        Ok(("n:number", None)),
    );
    check(
        json!({ "columns": {} }),
        Err("table `t`: expected at least one column"),
    );
    check(
        json!({ "columns": { "n": "integer" } }),
        Err(
            "table `t`: column `n`: expected text, number, boolean, datetime or json, got \"integer\"",
        ),
    );
    check(
        json!({ "key": "raw", "columns": { "raw": "json" } }),
        Err("table `t`: key column `raw` is json: a key is text, a number or a datetime"),
    );
    check(
        json!({ "key": "id", "columns": { "n": "number" } }),
        Err("table `t`: key column `id` is not one of the columns"),
    );
}

#[test]
fn values_are_checked_and_normalised_by_column_type() {
    let check = |kind: ColumnType, value: Value, expected: Result<Value, &str>| {
        let column = Column {
            name: "c".into(),
            kind,
        };
        assert_eq!(
            check_value(&column, &value),
            expected.map_err(str::to_owned),
            "{value} as {}",
            kind.as_str()
        );
    };
    check(ColumnType::Text, json!("ada"), Ok(json!("ada")));
    check(
        ColumnType::Text,
        json!(3),
        Err("expected text, got the number 3"),
    );
    check(ColumnType::Number, json!(2.5), Ok(json!(2.5)));
    check(
        ColumnType::Number,
        json!("2"),
        Err("expected a number, got text `2`"),
    );
    check(ColumnType::Boolean, json!(false), Ok(json!(false)));
    check(
        ColumnType::Boolean,
        json!([true]),
        Err("expected a boolean, got a list"),
    );
    check(
        ColumnType::Datetime,
        json!("2026-01-05T08:00:00.123456+01:00"),
        Ok(json!("2026-01-05T07:00:00.123Z")),
    );
    check(
        ColumnType::Datetime,
        json!("2026-01-05"),
        Err("expected an RFC 3339 date-time such as 2026-01-05T07:00:00Z, got `2026-01-05`"),
    );
    check(
        ColumnType::Datetime,
        json!(1),
        Err("expected a date-time (text), got the number 1"),
    );
    check(
        ColumnType::Json,
        json!({ "a": [1] }),
        Ok(json!({ "a": [1] })),
    );
}

#[test]
fn keys_from_cards_match_the_stored_form() {
    let number = schema_of(json!({ "key": "id", "columns": { "id": "number" } })).unwrap();
    let text = schema_of(json!({ "key": "id", "columns": { "id": "text" } })).unwrap();
    let keyless = schema_of(json!({ "columns": { "n": "number" } })).unwrap();
    let check = |schema: &TableSchema, key: Value, expected: Result<&str, &str>| {
        let got = schema.key_from_input(&key).map_err(|e| e.to_string());
        assert_eq!(
            got.as_deref(),
            expected.map_err(|e| e.to_owned()).as_deref(),
            "{key}"
        );
    };
    check(&number, json!(42), Ok("42"));
    check(&number, json!(42.0), Ok("42"));
    check(&number, json!("42"), Ok("42"));
    check(&number, json!(1.5), Ok("1.5"));
    check(
        &number,
        json!("x"),
        Err("column `id`: expected a number, got text `x`"),
    );
    check(&text, json!("e1"), Ok("e1"));
    check(
        &text,
        json!(null),
        Err("column `id`: expected text, got null"),
    );
    check(&keyless, json!("01JH"), Ok("01JH"));
    check(
        &keyless,
        json!(3),
        Err("column `key`: expected the key of a row (text), got a number"),
    );
}

fn records(text: &str) -> Result<Vec<(u64, Vec<String>)>, String> {
    let mut reader = CsvReader::new(Cursor::new(text.as_bytes()));
    let mut out = Vec::new();
    loop {
        match reader.record() {
            Ok(Some(record)) => out.push(record),
            Ok(None) => return Ok(out),
            Err(error) => return Err(error.to_string()),
        }
    }
}

#[test]
fn csv_reader_handles_quotes_line_breaks_and_bom() {
    let check = |text: &str, expected: Result<Vec<(u64, Vec<&str>)>, &str>| {
        let expected = expected
            .map(|records| {
                records
                    .into_iter()
                    .map(|(line, cells)| (line, cells.into_iter().map(str::to_owned).collect()))
                    .collect::<Vec<_>>()
            })
            .map_err(str::to_owned);
        assert_eq!(records(text), expected, "{text:?}");
    };
    check(
        "a,b\r\n1,2\r\n",
        Ok(vec![(1, vec!["a", "b"]), (2, vec!["1", "2"])]),
    );
    check(
        "\u{feff}a,b\n1,2",
        Ok(vec![(1, vec!["a", "b"]), (2, vec!["1", "2"])]),
    );
    check(
        "a\n\"x, \"\"y\"\"\n z\",\n",
        Ok(vec![(1, vec!["a"]), (2, vec!["x, \"y\"\n z", ""])]),
    );
    check(",,\n", Ok(vec![(1, vec!["", "", ""])]));
    check("", Ok(vec![]));
    check("a\n\"open", Err("line 2: a quoted cell is not closed"));
    check(
        "\"a\"b\n",
        Err("line 1: text after the closing quote of a cell"),
    );
}

#[test]
fn csv_cells_become_typed_values() {
    let check = |kind: ColumnType, text: &str, expected: Result<Value, &str>| {
        let column = Column {
            name: "c".into(),
            kind,
        };
        assert_eq!(
            value_from_cell(&column, text),
            expected.map_err(str::to_owned),
            "{text:?}"
        );
    };
    check(ColumnType::Text, "", Ok(Value::Null));
    check(ColumnType::Text, " ada ", Ok(json!(" ada ")));
    check(ColumnType::Number, "12", Ok(json!(12)));
    check(ColumnType::Number, "-1.5", Ok(json!(-1.5)));
    check(
        ColumnType::Number,
        "12x",
        Err("expected a number, got `12x`"),
    );
    check(ColumnType::Boolean, "Yes", Ok(json!(true)));
    check(ColumnType::Boolean, "0", Ok(json!(false)));
    check(
        ColumnType::Boolean,
        "maybe",
        Err("expected true or false, got `maybe`"),
    );
    check(
        ColumnType::Datetime,
        "2026-01-05T07:00:00Z",
        Ok(json!("2026-01-05T07:00:00.000Z")),
    );
    check(ColumnType::Json, "{\"a\":1}", Ok(json!({ "a": 1 })));
    check(ColumnType::Json, "\"s\"", Ok(json!("s")));
}
