//! Checks for [`TableStore`] adapters, and the [`table_store_conformance!`](crate::table_store_conformance)
//! macro that runs them.

use serde_json::{Map, Value, json};

use crate::tables::{
    OnDuplicate, Row, RowQuery, TableError, TableSchema, TableStore, schema as table_schema,
};

/// The tables of the checks: `logins` keyed by `id`, `events` without a key column, `counters`
/// keyed by a number.
pub fn tables_fixture() -> crate::model::ProjectConfig {
    let mut project = crate::model::ProjectConfig::default();
    project.tables.insert(
        "logins".into(),
        json!({ "key": "id", "columns": { "id": "text", "user": "text", "at": "datetime", "count": "number", "locked": "boolean", "raw": "json" } }),
    );
    project.tables.insert(
        "events".into(),
        json!({ "columns": { "kind": "text", "n": "number" } }),
    );
    project.tables.insert(
        "counters".into(),
        json!({ "key": "id", "columns": { "id": "number", "value": "number" } }),
    );
    project
}

fn table(name: &str) -> TableSchema {
    table_schema(&tables_fixture(), name).expect("fixture table")
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("fixture is not an object: {other}"),
    }
}

fn login(id: &str, user: &str, at: &str, count: i64) -> Map<String, Value> {
    obj(
        json!({ "id": id, "user": user, "at": at, "count": count, "locked": count > 3, "raw": { "id": id } }),
    )
}

async fn keys_of(store: &dyn TableStore, table: &TableSchema, conditions: Value) -> Vec<String> {
    let query = RowQuery::parse(table, Some(&conditions), Some(&json!(1000)), None)
        .expect("valid conditions");
    let page = store.search(table, &query).await.expect("search");
    page.rows.into_iter().map(|row| row.key).collect()
}

/// A row comes back with every column, typed values kept, datetimes normalised to UTC milliseconds,
/// version 1, under its key; an unknown key is `None`.
pub async fn table_store_round_trips_rows(store: &dyn TableStore) {
    let logins = table("logins");
    let row = store
        .insert(
            &logins,
            &obj(json!({ "id": "e1", "user": "ada", "at": "2026-01-05T08:00:00+01:00", "count": 2.5, "locked": false, "raw": { "ip": ["10.0.0.1"] } })),
            OnDuplicate::Fail,
        )
        .await
        .expect("insert");
    let expected = Row {
        key: "e1".into(),
        version: 1,
        values: obj(
            json!({ "id": "e1", "user": "ada", "at": "2026-01-05T07:00:00.000Z", "count": 2.5, "locked": false, "raw": { "ip": ["10.0.0.1"] } }),
        ),
    };
    assert_eq!(row, expected, "insert returns the stored row");
    assert_eq!(
        store.get(&logins, "e1").await.expect("get"),
        Some(expected),
        "get returns what insert stored"
    );
    assert_eq!(store.get(&logins, "e2").await.expect("get"), None);
    let partial = store
        .insert(&logins, &obj(json!({ "id": "e2" })), OnDuplicate::Fail)
        .await
        .expect("insert with columns left out");
    assert_eq!(
        Value::Object(partial.values),
        json!({ "id": "e2", "user": null, "at": null, "count": null, "locked": null, "raw": null }),
        "columns left out are null"
    );
}

/// A key in use is refused, or replaces the row (version + 1) when asked to.
pub async fn table_store_refuses_or_replaces_duplicate_keys(store: &dyn TableStore) {
    let logins = table("logins");
    let first = login("e1", "ada", "2026-01-05T07:00:00Z", 1);
    store
        .insert(&logins, &first, OnDuplicate::Fail)
        .await
        .expect("insert");
    let again = store
        .insert(
            &logins,
            &login("e1", "bob", "2026-01-05T07:00:00Z", 9),
            OnDuplicate::Fail,
        )
        .await;
    assert!(
        matches!(again, Err(TableError::DuplicateKey { ref key, .. }) if key == "e1"),
        "a second row with key e1 is refused: {again:?}"
    );
    let kept = store.get(&logins, "e1").await.expect("get").expect("row");
    assert_eq!(
        kept.values["user"], "ada",
        "the refused insert wrote nothing"
    );
    let replaced = store
        .insert(
            &logins,
            &login("e1", "bob", "2026-01-05T07:00:00Z", 9),
            OnDuplicate::Replace,
        )
        .await
        .expect("replace");
    assert_eq!(replaced.version, 2);
    assert_eq!(replaced.values["user"], "bob");
    assert_eq!(store.get(&logins, "e1").await.expect("get"), Some(replaced));
}

/// Rows of a table without a key column get distinct keys and come back in insertion order.
pub async fn table_store_generates_ordered_keys(store: &dyn TableStore) {
    let events = table("events");
    let mut keys = Vec::new();
    for n in 0..20 {
        let row = store
            .insert(
                &events,
                &obj(json!({ "kind": "login", "n": n })),
                OnDuplicate::Fail,
            )
            .await
            .expect("insert");
        keys.push(row.key);
    }
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(unique.len(), 20, "every row has its own key");
    assert_eq!(
        keys_of(store, &events, json!({})).await,
        keys,
        "insertion order"
    );
    let third = store
        .get(&events, &keys[2])
        .await
        .expect("get")
        .expect("row");
    assert_eq!(third.values["n"], 2);
}

/// A value of the wrong type is refused with the column's name and nothing is written.
pub async fn table_store_checks_types_naming_the_column(store: &dyn TableStore) {
    let logins = &table("logins");
    let check = |values: Value, column: &'static str| {
        let values = obj(values);
        async move {
            let result = store.insert(logins, &values, OnDuplicate::Fail).await;
            match result {
                Err(TableError::InvalidValue { column: named, .. }) => {
                    assert_eq!(named, column, "the error names the column");
                }
                other => panic!("{values:?} should be refused for `{column}`, got {other:?}"),
            }
        }
    };
    check(json!({ "id": "a", "count": "three" }), "count").await;
    check(json!({ "id": "a", "locked": "yes" }), "locked").await;
    check(json!({ "id": "a", "at": "yesterday" }), "at").await;
    check(json!({ "id": "a", "user": 42 }), "user").await;
    check(json!({ "id": 7 }), "id").await;
    check(json!({ "user": "ada" }), "id").await;
    check(json!({ "id": "a", "colour": "red" }), "colour").await;
    assert_eq!(
        store.count(logins).await.expect("count"),
        0,
        "nothing written"
    );
    store
        .insert(
            logins,
            &login("a", "ada", "2026-01-05T07:00:00Z", 1),
            OnDuplicate::Fail,
        )
        .await
        .expect("insert");
    let update = store
        .update(logins, "a", &obj(json!({ "count": "many" })), None)
        .await;
    assert!(
        matches!(update, Err(TableError::InvalidValue { ref column, .. }) if column == "count"),
        "updates are checked too: {update:?}"
    );
}

/// An update sets the given columns, keeps the others and bumps the version; the key cannot change;
/// a missing row is `NotFound`.
pub async fn table_store_updates_merge_and_bump_the_version(store: &dyn TableStore) {
    let logins = table("logins");
    store
        .insert(
            &logins,
            &login("e1", "ada", "2026-01-05T07:00:00Z", 1),
            OnDuplicate::Fail,
        )
        .await
        .expect("insert");
    let updated = store
        .update(
            &logins,
            "e1",
            &obj(json!({ "count": 2, "raw": null })),
            None,
        )
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(
        Value::Object(updated.values.clone()),
        json!({ "id": "e1", "user": "ada", "at": "2026-01-05T07:00:00.000Z", "count": 2, "locked": false, "raw": null })
    );
    assert_eq!(store.get(&logins, "e1").await.expect("get"), Some(updated));
    let rekey = store
        .update(&logins, "e1", &obj(json!({ "id": "e9" })), None)
        .await;
    assert!(
        matches!(rekey, Err(TableError::InvalidValue { ref column, .. }) if column == "id"),
        "the key column cannot change: {rekey:?}"
    );
    let missing = store
        .update(&logins, "nope", &obj(json!({ "count": 1 })), None)
        .await;
    assert!(
        matches!(missing, Err(TableError::NotFound { .. })),
        "{missing:?}"
    );
}

/// An update or delete naming an older version is a conflict and writes nothing.
pub async fn table_store_refuses_stale_versions(store: &dyn TableStore) {
    let logins = table("logins");
    store
        .insert(
            &logins,
            &login("e1", "ada", "2026-01-05T07:00:00Z", 1),
            OnDuplicate::Fail,
        )
        .await
        .expect("insert");
    store
        .update(&logins, "e1", &obj(json!({ "count": 2 })), Some(1))
        .await
        .expect("update at the version read");
    let stale = store
        .update(&logins, "e1", &obj(json!({ "count": 5 })), Some(1))
        .await;
    match stale {
        Err(TableError::Conflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (1, 2)),
        other => panic!("an update at version 1 of a row at version 2 must conflict: {other:?}"),
    }
    let stale_delete = store.delete(&logins, "e1", Some(1)).await;
    assert!(
        matches!(stale_delete, Err(TableError::Conflict { .. })),
        "{stale_delete:?}"
    );
    let row = store.get(&logins, "e1").await.expect("get").expect("row");
    assert_eq!((row.version, row.values["count"].clone()), (2, json!(2)));
    assert!(store.delete(&logins, "e1", Some(2)).await.expect("delete"));
    assert!(
        !store
            .delete(&logins, "e1", None)
            .await
            .expect("delete again")
    );
    assert_eq!(store.get(&logins, "e1").await.expect("get"), None);
}

/// Many writers each read a counter and write it back plus one, at the version they read, retrying
/// on conflict: no increment is lost.
pub async fn table_store_concurrent_increments_lose_nothing(store: &dyn TableStore) {
    const WRITERS: u64 = 24;
    let counters = table("counters");
    store
        .insert(
            &counters,
            &obj(json!({ "id": 1, "value": 0 })),
            OnDuplicate::Fail,
        )
        .await
        .expect("insert");
    let increment = || async {
        let mut conflicts = 0u32;
        loop {
            let row = store.get(&counters, "1").await.expect("get").expect("row");
            let value = row.values["value"].as_u64().expect("a number");
            let changes = obj(json!({ "value": value + 1 }));
            match store
                .update(&counters, "1", &changes, Some(row.version))
                .await
            {
                Ok(_) => return conflicts,
                Err(TableError::Conflict { .. }) => conflicts += 1,
                Err(other) => panic!("increment failed: {other}"),
            }
            assert!(conflicts < 1000, "an increment never got through");
        }
    };
    let conflicts: u32 = futures::future::join_all((0..WRITERS).map(|_| increment()))
        .await
        .into_iter()
        .sum();
    let row = store.get(&counters, "1").await.expect("get").expect("row");
    assert_eq!(
        row.values["value"],
        json!(WRITERS),
        "every increment counted ({conflicts} conflicts retried)"
    );
    assert_eq!(row.version, WRITERS + 1);
}

/// Searches combine equality, ranges on numbers, datetimes and text, booleans and null.
pub async fn table_store_searches_by_equality_and_range(store: &dyn TableStore) {
    let logins = table("logins");
    for (id, user, at, count) in [
        ("e1", "ada", "2026-01-05T07:00:00Z", 1),
        ("e2", "bob", "2026-01-05T09:30:00Z", 5),
        ("e3", "ada", "2026-01-06T07:00:00Z", 7),
        ("e4", "cy", "2026-01-07T00:00:00.5Z", 3),
    ] {
        store
            .insert(&logins, &login(id, user, at, count), OnDuplicate::Fail)
            .await
            .expect("insert");
    }
    store
        .insert(
            &logins,
            &obj(json!({ "id": "e5", "user": "dee" })),
            OnDuplicate::Fail,
        )
        .await
        .expect("insert");
    let logins = &logins;
    let check = |conditions: Value, expected: &'static [&'static str]| async move {
        assert_eq!(
            keys_of(store, logins, conditions.clone()).await,
            expected,
            "where {conditions}"
        );
    };
    check(json!({}), &["e1", "e2", "e3", "e4", "e5"]).await;
    check(json!({ "user": "ada" }), &["e1", "e3"]).await;
    check(json!({ "id": "e2" }), &["e2"]).await;
    check(json!({ "count": { "gte": 3 } }), &["e2", "e3", "e4"]).await;
    check(json!({ "count": { "gt": 3, "lt": 7 } }), &["e2"]).await;
    check(json!({ "count": { "lte": 2.5 } }), &["e1"]).await;
    check(json!({ "user": "ada", "count": { "gte": 2 } }), &["e3"]).await;
    check(
        json!({ "at": { "gte": "2026-01-05T08:30:00+01:00", "lt": "2026-01-07T00:00:00.500Z" } }),
        &["e2", "e3"],
    )
    .await;
    check(json!({ "at": { "gt": "2026-01-07T00:00:00Z" } }), &["e4"]).await;
    check(json!({ "user": { "gte": "b", "lt": "d" } }), &["e2", "e4"]).await;
    check(json!({ "locked": true }), &["e2", "e3"]).await;
    check(json!({ "locked": false }), &["e1", "e4"]).await;
    check(json!({ "count": null }), &["e5"]).await;
    check(
        json!({ "count": { "ne": null } }),
        &["e1", "e2", "e3", "e4"],
    )
    .await;
    check(json!({ "user": { "ne": "ada" } }), &["e2", "e4", "e5"]).await;
}

/// Pages follow each other by cursor with no row missed or repeated; the last has no cursor.
pub async fn table_store_pages_with_a_cursor(store: &dyn TableStore) {
    let logins = table("logins");
    let mut all = Vec::new();
    for n in 0..23 {
        let id = format!("r{n:02}");
        store
            .insert(
                &logins,
                &login(&id, "ada", "2026-01-05T07:00:00Z", n),
                OnDuplicate::Fail,
            )
            .await
            .expect("insert");
        all.push(id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let cursor_value = cursor.clone().map(Value::String);
        let query = RowQuery::parse(
            &logins,
            Some(&json!({ "count": { "gte": 0 } })),
            Some(&json!(5)),
            cursor_value.as_ref(),
        )
        .expect("query");
        let page = store.search(&logins, &query).await.expect("search");
        assert!(page.rows.len() <= 5, "a page holds at most `limit` rows");
        seen.extend(page.rows.into_iter().map(|row| row.key));
        pages += 1;
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "the pages never end");
    }
    assert_eq!(seen, all);
    assert_eq!(pages, 5);
    let bad = RowQuery {
        cursor: Some("%%%".into()),
        ..RowQuery::all()
    };
    let result = store.search(&logins, &bad).await;
    assert!(
        matches!(result, Err(TableError::InvalidCursor(_))),
        "{result:?}"
    );
}

/// `clear` empties one table and leaves the others; `count` follows.
pub async fn table_store_clears_one_table(store: &dyn TableStore) {
    let logins = table("logins");
    let events = table("events");
    for n in 0..3 {
        store
            .insert(
                &logins,
                &login(&format!("e{n}"), "ada", "2026-01-05T07:00:00Z", n),
                OnDuplicate::Fail,
            )
            .await
            .expect("insert");
        store
            .insert(
                &events,
                &obj(json!({ "kind": "x", "n": n })),
                OnDuplicate::Fail,
            )
            .await
            .expect("insert");
    }
    assert_eq!(store.count(&logins).await.expect("count"), 3);
    assert_eq!(store.clear(&logins).await.expect("clear"), 3);
    assert_eq!(store.count(&logins).await.expect("count"), 0);
    assert_eq!(
        store.count(&events).await.expect("count"),
        3,
        "other tables keep their rows"
    );
    assert_eq!(
        keys_of(store, &logins, json!({})).await,
        Vec::<String>::new()
    );
}

/// Number keys are one key whatever way the number is written (`7`, `7.0`, `"7"`).
pub async fn table_store_number_keys_are_canonical(store: &dyn TableStore) {
    let counters = table("counters");
    let row = store
        .insert(
            &counters,
            &obj(json!({ "id": 7.0, "value": 1 })),
            OnDuplicate::Fail,
        )
        .await
        .expect("insert");
    assert_eq!(row.key, "7");
    let again = store
        .insert(
            &counters,
            &obj(json!({ "id": 7, "value": 2 })),
            OnDuplicate::Fail,
        )
        .await;
    assert!(
        matches!(again, Err(TableError::DuplicateKey { .. })),
        "{again:?}"
    );
    let key = counters.key_from_input(&json!("7")).expect("key");
    assert!(store.get(&counters, &key).await.expect("get").is_some());
    assert_eq!(keys_of(store, &counters, json!({ "id": 7 })).await, ["7"]);
}

/// The [`TableStore`] suite: one test per check. `make` as in
/// [`run_store_conformance!`](crate::run_store_conformance).
#[macro_export]
macro_rules! table_store_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!($make;
            table_store_round_trips_rows,
            table_store_refuses_or_replaces_duplicate_keys,
            table_store_generates_ordered_keys,
            table_store_checks_types_naming_the_column,
            table_store_updates_merge_and_bump_the_version,
            table_store_refuses_stale_versions,
            table_store_concurrent_increments_lose_nothing,
            table_store_searches_by_equality_and_range,
            table_store_pages_with_a_cursor,
            table_store_clears_one_table,
            table_store_number_keys_are_canonical,
        );
    };
}
