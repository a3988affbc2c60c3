//! [`SqliteTableStore`]: table rows in the `table_rows` table, one JSON object per row.
//!
//! Rows are stored under `(table, key)`, so key lookups and key-ordered pages use the primary key.
//! Searches on other columns filter with `json_extract` over the table's rows: local tables are small
//! enough (thousands to a few hundred thousand rows) for that to stay fast. Conditional writes (the
//! version check of an update) run on the single writer thread, so the read, the check and the
//! write are atomic without any extra locking.

use std::sync::Mutex;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use super::{Fail, SqliteDb, parse_json, to_json};
use domain::tables::{
    ColumnType, OnDuplicate, Op, Row, RowPage, RowQuery, TableError, TableSchema, TableStore,
    key_text,
};

/// Table rows in SQLite.
pub struct SqliteTableStore {
    db: SqliteDb,
    /// Keys of tables without a key column: ULIDs, monotonic so that rows created within one
    /// millisecond still come back in the order they were created.
    keys: Mutex<ulid::Generator>,
}

impl std::fmt::Debug for SqliteTableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTableStore")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl SqliteTableStore {
    /// Table rows on `db`.
    pub fn new(db: SqliteDb) -> SqliteTableStore {
        SqliteTableStore {
            db,
            keys: Mutex::new(ulid::Generator::new()),
        }
    }

    fn new_key(&self) -> String {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        // The generator only fails after 2^80 keys within one millisecond.
        keys.generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }
}

fn store_error(fail: Fail) -> TableError {
    TableError::Store(fail.into_store())
}

/// A table error raised inside a write, carried out of the writer as a [`Fail`].
enum Outcome<T> {
    Done(T),
    Refused(TableError),
}

fn read_row(conn: &Connection, table: &str, key: &str) -> Result<Option<Row>, Fail> {
    let mut select =
        conn.prepare_cached("SELECT version, data FROM table_rows WHERE tbl = ?1 AND id = ?2")?;
    let found = select
        .query_row(params![table, key], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .optional()?;
    match found {
        None => Ok(None),
        Some((version, data)) => Ok(Some(Row {
            key: key.to_owned(),
            version: u64::try_from(version).unwrap_or(0),
            values: parse_json(&format!("table {table} row {key}"), &data)?,
        })),
    }
}

#[async_trait]
impl TableStore for SqliteTableStore {
    async fn insert(
        &self,
        table: &TableSchema,
        values: &Map<String, Value>,
        on_duplicate: OnDuplicate,
    ) -> Result<Row, TableError> {
        let row = table.check_row(values)?;
        let key = match table.key_of(&row) {
            Some(key) => key,
            None if table.key.is_none() => self.new_key(),
            None => {
                return Err(TableError::InvalidValue {
                    column: table.key.clone().unwrap_or_default(),
                    message: "the key column needs a value".into(),
                });
            }
        };
        let name = table.name.clone();
        let data = to_json(&row).map_err(store_error)?;
        let outcome = self
            .db
            .write(move |conn| {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO table_rows (tbl, id, version, data) VALUES (?1, ?2, 1, ?3) \
                     ON CONFLICT (tbl, id) DO NOTHING",
                )?;
                if insert.execute(params![name, key, data])? == 1 {
                    return Ok(Outcome::Done(Row {
                        key: key.clone(),
                        version: 1,
                        values: row.clone(),
                    }));
                }
                if on_duplicate == OnDuplicate::Fail {
                    return Ok(Outcome::Refused(TableError::DuplicateKey {
                        table: name.clone(),
                        key: key.clone(),
                    }));
                }
                let mut replace = conn.prepare_cached(
                    "UPDATE table_rows SET version = version + 1, data = ?3 \
                     WHERE tbl = ?1 AND id = ?2 RETURNING version",
                )?;
                let version: i64 = replace.query_row(params![name, key, data], |r| r.get(0))?;
                Ok(Outcome::Done(Row {
                    key: key.clone(),
                    version: u64::try_from(version).unwrap_or(0),
                    values: row.clone(),
                }))
            })
            .await
            .map_err(store_error)?;
        match outcome {
            Outcome::Done(row) => Ok(row),
            Outcome::Refused(error) => Err(error),
        }
    }

    async fn get(&self, table: &TableSchema, key: &str) -> Result<Option<Row>, TableError> {
        let name = table.name.clone();
        let key = key.to_owned();
        self.db
            .read(move |conn| read_row(conn, &name, &key))
            .await
            .map_err(store_error)
    }

    async fn update(
        &self,
        table: &TableSchema,
        key: &str,
        changes: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> Result<Row, TableError> {
        let changes = table.check_changes(changes)?;
        let name = table.name.clone();
        let key = key.to_owned();
        let outcome = self
            .db
            .write(move |conn| {
                let Some(mut row) = read_row(conn, &name, &key)? else {
                    return Ok(Outcome::Refused(TableError::NotFound {
                        table: name.clone(),
                        key: key.clone(),
                    }));
                };
                if let Some(expected) = expected_version
                    && expected != row.version
                {
                    return Ok(Outcome::Refused(TableError::Conflict {
                        table: name.clone(),
                        key: key.clone(),
                        expected,
                        found: row.version,
                    }));
                }
                for (column, value) in &changes {
                    row.values.insert(column.clone(), value.clone());
                }
                let data = to_json(&row.values)?;
                let mut update = conn.prepare_cached(
                    "UPDATE table_rows SET version = version + 1, data = ?3 \
                     WHERE tbl = ?1 AND id = ?2",
                )?;
                update.execute(params![name, key, data])?;
                row.version += 1;
                Ok(Outcome::Done(row))
            })
            .await
            .map_err(store_error)?;
        match outcome {
            Outcome::Done(row) => Ok(row),
            Outcome::Refused(error) => Err(error),
        }
    }

    async fn delete(
        &self,
        table: &TableSchema,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, TableError> {
        let name = table.name.clone();
        let key = key.to_owned();
        let outcome = self
            .db
            .write(move |conn| {
                let mut select = conn
                    .prepare_cached("SELECT version FROM table_rows WHERE tbl = ?1 AND id = ?2")?;
                let found: Option<i64> = select
                    .query_row(params![name, key], |r| r.get(0))
                    .optional()?;
                let Some(found) = found else {
                    return Ok(Outcome::Done(false));
                };
                let found = u64::try_from(found).unwrap_or(0);
                if let Some(expected) = expected_version
                    && expected != found
                {
                    return Ok(Outcome::Refused(TableError::Conflict {
                        table: name.clone(),
                        key: key.clone(),
                        expected,
                        found,
                    }));
                }
                let mut delete =
                    conn.prepare_cached("DELETE FROM table_rows WHERE tbl = ?1 AND id = ?2")?;
                delete.execute(params![name, key])?;
                Ok(Outcome::Done(true))
            })
            .await
            .map_err(store_error)?;
        match outcome {
            Outcome::Done(deleted) => Ok(deleted),
            Outcome::Refused(error) => Err(error),
        }
    }

    async fn search(&self, table: &TableSchema, query: &RowQuery) -> Result<RowPage, TableError> {
        let (sql, values) = search_sql(table, query)?;
        let name = table.name.clone();
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let rows = self
            .db
            .read(move |conn| {
                let mut select = conn.prepare(&sql)?;
                let found = select
                    .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                found
                    .into_iter()
                    .map(|(key, version, data)| {
                        let values = parse_json(&format!("table {name} row {key}"), &data)?;
                        Ok(Row {
                            key,
                            version: u64::try_from(version).unwrap_or(0),
                            values,
                        })
                    })
                    .collect::<Result<Vec<_>, Fail>>()
            })
            .await
            .map_err(store_error)?;
        let mut rows = rows;
        // One row more than the page was read: it tells whether another page exists.
        let cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|row| URL_SAFE_NO_PAD.encode(row.key.as_bytes()))
        } else {
            None
        };
        Ok(RowPage { rows, cursor })
    }

    async fn clear(&self, table: &TableSchema) -> Result<u64, TableError> {
        let name = table.name.clone();
        self.db
            .write(move |conn| {
                let mut delete = conn.prepare_cached("DELETE FROM table_rows WHERE tbl = ?1")?;
                Ok(delete.execute([&name])? as u64)
            })
            .await
            .map_err(store_error)
    }

    async fn count(&self, table: &TableSchema) -> Result<u64, TableError> {
        let name = table.name.clone();
        self.db
            .read(move |conn| {
                let mut count =
                    conn.prepare_cached("SELECT count(*) FROM table_rows WHERE tbl = ?1")?;
                let n: i64 = count.query_row([&name], |r| r.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await
            .map_err(store_error)
    }
}

/// The SELECT of a search and its parameters.
fn search_sql(
    table: &TableSchema,
    query: &RowQuery,
) -> Result<(String, Vec<SqlValue>), TableError> {
    let mut sql = String::from("SELECT id, version, data FROM table_rows WHERE tbl = ?");
    let mut values = vec![SqlValue::Text(table.name.clone())];
    for filter in &query.filters {
        let is_key = table.key.as_deref() == Some(filter.column.as_str());
        if is_key && filter.op == Op::Eq && !filter.value.is_null() {
            // Equality on the key uses the primary key.
            if let Some(key) = key_text(&filter.value) {
                sql.push_str(" AND id = ?");
                values.push(SqlValue::Text(key));
                continue;
            }
        }
        sql.push_str(" AND json_extract(data, ?)");
        values.push(SqlValue::Text(format!("$.{}", filter.column)));
        if filter.value.is_null() {
            sql.push_str(if filter.op == Op::Eq {
                " IS NULL"
            } else {
                " IS NOT NULL"
            });
            continue;
        }
        sql.push_str(match filter.op {
            Op::Eq => " = ?",
            Op::Ne => " IS NOT ?",
            Op::Gt => " > ?",
            Op::Gte => " >= ?",
            Op::Lt => " < ?",
            Op::Lte => " <= ?",
        });
        values.push(sql_value(filter.kind, &filter.value));
    }
    if let Some(cursor) = &query.cursor {
        let after = URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| TableError::InvalidCursor(cursor.clone()))?;
        sql.push_str(" AND id > ?");
        values.push(SqlValue::Text(after));
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    values.push(SqlValue::Integer(i64::from(query.limit) + 1));
    Ok((sql, values))
}

/// A checked filter value as SQLite compares it with what `json_extract` returns.
fn sql_value(kind: ColumnType, value: &Value) -> SqlValue {
    match value {
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => SqlValue::Integer(i),
            (None, Some(f)) => SqlValue::Real(f),
            (None, None) => SqlValue::Null,
        },
        Value::String(text) => SqlValue::Text(text.clone()),
        other => {
            // Json columns are refused by the query parser; keep the value comparable anyway.
            debug_assert!(kind == ColumnType::Json);
            SqlValue::Text(other.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteTableStore;
    use crate::sqlite::SqliteDb;

    fn memory() -> SqliteTableStore {
        SqliteTableStore::new(SqliteDb::open_in_memory().expect("in-memory database"))
    }

    fn file() -> SqliteTableStore {
        SqliteTableStore::new(SqliteDb::open_temporary().expect("temporary database"))
    }

    mod memory_table_store {
        domain::table_store_conformance!(super::memory());
    }

    mod file_table_store {
        domain::table_store_conformance!(super::file());
    }
}
