//! Tables: typed rows that flows keep between runs (what Okta Workflows calls Tables).
//!
//! Tables are declared in `idflow.yaml` under `tables:`, or one per file in `tables/<name>.yaml`
//! beside it (see [`crate::flowfile::project_files`]), with typed columns (`text`, `number`,
//! `boolean`, `datetime`, `json`) and an optional key column, and deployed with the flows: the
//! declaration is the schema, the [`TableStore`] port keeps the rows. Values are checked against the
//! schema on every write, so a wrong type fails the step with the column's name instead of landing in
//! the store.
//!
//! Every row has a version that starts at 1 and grows by one with each write. An update that names the
//! version it read is applied only if the row is still at that version ([`TableError::Conflict`]
//! otherwise), so two runs that read, change and write the same row never lose an update.
//!
//! # Layout
//! - this file: schemas ([`TableSchema`]), rows, searches ([`RowQuery`]), errors and the port.
//! - [`csv`]: CSV export (streamed page by page) and import (a streaming reader).
//!
//! # Values as stored
//! Rows are JSON objects. Datetimes are normalised to UTC with millisecond precision
//! (`2026-01-05T07:00:00.000Z`) so that they sort and compare as text in every store. A key column
//! holds text or numbers; a row's key is that value as text (`42`, not `42.0`), and rows come back in
//! key order (as text). Tables without a key column get generated, time-ordered keys, so their rows
//! come back in insertion order.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::model::ProjectConfig;
use crate::ports::StoreError;

pub mod csv;

/// Rows a search returns when it gives no `limit`.
pub const DEFAULT_LIMIT: u32 = 100;
/// The largest page a search returns.
pub const MAX_LIMIT: u32 = 1000;

/// Errors of tables, from the schema to the store.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The table is not declared in `idflow.yaml` nor in a table file.
    #[error("table `{0}` is not declared under `tables:` in idflow.yaml nor in tables/{0}.yaml")]
    UnknownTable(String),
    /// The declaration in `idflow.yaml` cannot be used.
    #[error("table `{table}`: {message}")]
    InvalidSchema { table: String, message: String },
    /// A value does not fit its column (wrong type, unknown column, missing key).
    #[error("column `{column}`: {message}")]
    InvalidValue { column: String, message: String },
    /// A search the table cannot answer; `field` is the path in the card's input (`where.at.gte`).
    #[error("{field}: {message}")]
    InvalidQuery { field: String, message: String },
    /// No row has this key.
    #[error("table `{table}` has no row with key `{key}`")]
    NotFound { table: String, key: String },
    /// A row with this key exists already.
    #[error("table `{table}` already has a row with key `{key}`")]
    DuplicateKey { table: String, key: String },
    /// The row changed since it was read: a write naming an older version lost.
    #[error(
        "row `{key}` of table `{table}` changed since it was read: it is at version {found}, not {expected}"
    )]
    Conflict {
        table: String,
        key: String,
        expected: u64,
        found: u64,
    },
    /// A row too big for the store (DynamoDB keeps items up to 400 KB); nothing was written.
    #[error(
        "row `{key}` of table `{table}` is {bytes} bytes, over the store's limit of {limit} bytes per row"
    )]
    RowTooLarge {
        table: String,
        key: String,
        bytes: usize,
        limit: usize,
    },
    /// A search cursor this table did not issue.
    #[error("invalid cursor `{0}`")]
    InvalidCursor(String),
    /// An export would be larger than the limit given.
    #[error("the export is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Writing an export or reading an import failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TableError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            TableError::Store(error) => error.is_retryable(),
            _ => false,
        }
    }
}

/// A column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Number,
    Boolean,
    Datetime,
    Json,
}

impl ColumnType {
    /// Parses a type as written in `idflow.yaml`.
    pub fn parse(text: &str) -> Option<ColumnType> {
        Some(match text {
            "text" => ColumnType::Text,
            "number" => ColumnType::Number,
            "boolean" => ColumnType::Boolean,
            "datetime" => ColumnType::Datetime,
            "json" => ColumnType::Json,
            _ => return None,
        })
    }

    /// The type as written in `idflow.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Datetime => "datetime",
            ColumnType::Json => "json",
        }
    }
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnType,
}

/// A table as declared: its name, columns in declaration order and optional key column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    /// The key column; `None` means rows get generated keys.
    pub key: Option<String>,
    pub columns: Vec<Column>,
}

/// A stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The key column's value as text, or the generated key of a table without a key column.
    pub key: String,
    /// 1 when created, plus one per write.
    pub version: u64,
    /// The row's values by column, as stored.
    pub values: Map<String, Value>,
}

impl Row {
    /// The row as cards show it: `{ key, version, row }`, with every column of `schema` in order
    /// (`null` when the row has no value for it).
    pub fn to_json(&self, schema: &TableSchema) -> Value {
        let mut row = Map::new();
        for column in &schema.columns {
            let value = self
                .values
                .get(&column.name)
                .cloned()
                .unwrap_or(Value::Null);
            row.insert(column.name.clone(), value);
        }
        serde_json::json!({ "key": self.key, "version": self.version, "row": row })
    }
}

/// How [`TableStore::insert`] treats a key that is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    /// [`TableError::DuplicateKey`].
    Fail,
    /// The new values replace the row, whose version grows by one.
    Replace,
}

/// A comparison of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Op {
    /// The operator names of `where: { column: { gte: ... } }`.
    pub const NAMES: [&'static str; 6] = ["eq", "ne", "gt", "gte", "lt", "lte"];

    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "gte" => Op::Gte,
            "lt" => Op::Lt,
            "lte" => Op::Lte,
            _ => return None,
        })
    }

    /// Whether the operator orders values (not just compares them for equality).
    pub fn is_range(self) -> bool {
        !matches!(self, Op::Eq | Op::Ne)
    }
}

/// One condition of a search: `column op value`, the value already checked against the column.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: String,
    pub kind: ColumnType,
    pub op: Op,
    /// `null` only with [`Op::Eq`] (no value) or [`Op::Ne`] (any value).
    pub value: Value,
}

/// A search: every filter must hold. Rows come in key order, `limit` at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct RowQuery {
    pub filters: Vec<Filter>,
    pub limit: u32,
    /// Where the previous page ended ([`RowPage::cursor`]).
    pub cursor: Option<String>,
}

impl RowQuery {
    /// Every row, [`DEFAULT_LIMIT`] at a time.
    pub fn all() -> RowQuery {
        RowQuery {
            filters: Vec::new(),
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }

    /// Reads a card's `where`, `limit` and `cursor`. `where` maps columns to a value (equality, `null`
    /// for no value) or to operators: `{ count: { gte: 3 }, at: { gte: "...", lt: "..." } }`.
    pub fn parse(
        schema: &TableSchema,
        conditions: Option<&Value>,
        limit: Option<&Value>,
        cursor: Option<&Value>,
    ) -> Result<RowQuery, TableError> {
        let mut filters = Vec::new();
        match conditions {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, condition) in map {
                    let column = schema
                        .column(name)
                        .ok_or_else(|| TableError::InvalidQuery {
                            field: format!("where.{name}"),
                            message: format!(
                                "table `{}` has no column `{name}` (columns: {})",
                                schema.name,
                                schema.column_names().join(", ")
                            ),
                        })?;
                    match condition {
                        Value::Object(ops) => {
                            if ops.is_empty() {
                                return Err(TableError::InvalidQuery {
                                    field: format!("where.{name}"),
                                    message: format!(
                                        "expected a value or operators ({})",
                                        Op::NAMES.join(", ")
                                    ),
                                });
                            }
                            for (op_name, value) in ops {
                                let field = format!("where.{name}.{op_name}");
                                let op =
                                    Op::parse(op_name).ok_or_else(|| TableError::InvalidQuery {
                                        field: field.clone(),
                                        message: format!(
                                            "unknown operator `{op_name}`, expected one of {}",
                                            Op::NAMES.join(", ")
                                        ),
                                    })?;
                                filters.push(filter(column, op, value, &field)?);
                            }
                        }
                        value => {
                            filters.push(filter(column, Op::Eq, value, &format!("where.{name}"))?)
                        }
                    }
                }
            }
            Some(other) => {
                return Err(TableError::InvalidQuery {
                    field: "where".into(),
                    message: format!("expected an object of conditions, got {}", kind_of(other)),
                });
            }
        }
        let limit = match limit {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(value) => match value.as_u64() {
                Some(n) if (1..=u64::from(MAX_LIMIT)).contains(&n) => {
                    u32::try_from(n).unwrap_or(MAX_LIMIT)
                }
                _ => {
                    return Err(TableError::InvalidQuery {
                        field: "limit".into(),
                        message: format!(
                            "expected a whole number from 1 to {MAX_LIMIT}, got {value}"
                        ),
                    });
                }
            },
        };
        let cursor = match cursor {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.is_empty() => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => {
                return Err(TableError::InvalidQuery {
                    field: "cursor".into(),
                    message: format!(
                        "expected the cursor of a previous page, got {}",
                        kind_of(other)
                    ),
                });
            }
        };
        Ok(RowQuery {
            filters,
            limit,
            cursor,
        })
    }
}

fn filter(column: &Column, op: Op, value: &Value, field: &str) -> Result<Filter, TableError> {
    let invalid = |message: String| TableError::InvalidQuery {
        field: field.to_owned(),
        message,
    };
    if column.kind == ColumnType::Json {
        return Err(invalid(format!(
            "`{}` is a json column: json columns cannot be searched",
            column.name
        )));
    }
    if value.is_null() {
        if op.is_range() {
            return Err(invalid("a range needs a value, not null".into()));
        }
        return Ok(Filter {
            column: column.name.clone(),
            kind: column.kind,
            op,
            value: Value::Null,
        });
    }
    if op.is_range() && column.kind == ColumnType::Boolean {
        return Err(invalid(format!(
            "`{}` is a boolean column: use equality, not a range",
            column.name
        )));
    }
    let value = check_value(column, value).map_err(invalid)?;
    Ok(Filter {
        column: column.name.clone(),
        kind: column.kind,
        op,
        value,
    })
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct RowPage {
    pub rows: Vec<Row>,
    /// Pass to the next search for the rows after these; `None` on the last page.
    pub cursor: Option<String>,
}

impl TableSchema {
    /// Reads a table's declaration as kept in [`ProjectConfig::tables`]:
    /// `{ key: column, columns: { name: type } }`.
    pub fn from_config(name: &str, config: &Value) -> Result<TableSchema, TableError> {
        let invalid = |message: String| TableError::InvalidSchema {
            table: name.to_owned(),
            message,
        };
        if !is_identifier(name) {
            return Err(invalid("use letters, digits and `_` in table names".into()));
        }
        let columns = config
            .get("columns")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("expected `columns:`, a mapping of names to types".into()))?;
        if columns.is_empty() {
            return Err(invalid("expected at least one column".into()));
        }
        let mut out = Vec::with_capacity(columns.len());
        for (column, kind) in columns {
            if !is_identifier(column) {
                return Err(invalid(format!(
                    "invalid column name `{column}`: use letters, digits and `_`"
                )));
            }
            let kind = kind.as_str().and_then(ColumnType::parse).ok_or_else(|| {
                invalid(format!(
                    "column `{column}`: expected text, number, boolean, datetime or json, got {kind}"
                ))
            })?;
            out.push(Column {
                name: column.clone(),
                kind,
            });
        }
        let key = match config.get("key") {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => {
                let column = out.iter().find(|c| &c.name == key).ok_or_else(|| {
                    invalid(format!("key column `{key}` is not one of the columns"))
                })?;
                if !matches!(
                    column.kind,
                    ColumnType::Text | ColumnType::Number | ColumnType::Datetime
                ) {
                    return Err(invalid(format!(
                        "key column `{key}` is {}: a key is text, a number or a datetime",
                        column.kind.as_str()
                    )));
                }
                Some(key.clone())
            }
            Some(other) => {
                return Err(invalid(format!("`key` must name a column, got {other}")));
            }
        };
        Ok(TableSchema {
            name: name.to_owned(),
            key,
            columns: out,
        })
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Column names in declaration order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Checks a whole new row: known columns, typed values, the key present. Returns the row with
    /// every column (missing ones `null`) and normalised values.
    pub fn check_row(&self, values: &Map<String, Value>) -> Result<Map<String, Value>, TableError> {
        self.reject_unknown(values)?;
        let mut row = Map::new();
        for column in &self.columns {
            let value = match values.get(&column.name) {
                None | Some(Value::Null) => Value::Null,
                Some(value) => {
                    check_value(column, value).map_err(|message| TableError::InvalidValue {
                        column: column.name.clone(),
                        message,
                    })?
                }
            };
            if value.is_null() && self.key.as_deref() == Some(column.name.as_str()) {
                return Err(TableError::InvalidValue {
                    column: column.name.clone(),
                    message: "the key column needs a value".into(),
                });
            }
            row.insert(column.name.clone(), value);
        }
        Ok(row)
    }

    /// Checks the changes of an update: known columns, typed values, and the key left alone (a row
    /// keeps its key; delete it and create another instead).
    pub fn check_changes(
        &self,
        changes: &Map<String, Value>,
    ) -> Result<Map<String, Value>, TableError> {
        self.reject_unknown(changes)?;
        let mut out = Map::new();
        for (name, value) in changes {
            let Some(column) = self.column(name) else {
                continue;
            };
            if self.key.as_deref() == Some(name.as_str()) {
                return Err(TableError::InvalidValue {
                    column: name.clone(),
                    message: "the key column cannot be changed; delete the row and create another"
                        .into(),
                });
            }
            let value = if value.is_null() {
                Value::Null
            } else {
                check_value(column, value).map_err(|message| TableError::InvalidValue {
                    column: name.clone(),
                    message,
                })?
            };
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    /// The key of a checked row: the key column's value as text, or `None` for a table without one.
    pub fn key_of(&self, row: &Map<String, Value>) -> Option<String> {
        let key = self.key.as_ref()?;
        row.get(key).and_then(key_text)
    }

    /// A key as a card gives it (text or number) in the form rows are stored under.
    pub fn key_from_input(&self, key: &Value) -> Result<String, TableError> {
        let invalid = |message: String| TableError::InvalidValue {
            column: self.key.clone().unwrap_or_else(|| "key".into()),
            message,
        };
        match (self.key.as_ref().and_then(|k| self.column(k)), key) {
            (None, Value::String(text)) if !text.is_empty() => Ok(text.clone()),
            (None, other) => Err(invalid(format!(
                "expected the key of a row (text), got {}",
                kind_of(other)
            ))),
            (Some(column), Value::String(text)) if column.kind == ColumnType::Number => {
                let number: serde_json::Number = text.trim().parse().map_err(|_| {
                    invalid(format!("expected a number, got text `{}`", preview(text)))
                })?;
                Ok(number_text(&number))
            }
            (Some(column), value) => {
                let value = check_value(column, value).map_err(invalid)?;
                key_text(&value).ok_or_else(|| invalid("a key cannot be null".into()))
            }
        }
    }

    fn reject_unknown(&self, values: &Map<String, Value>) -> Result<(), TableError> {
        for name in values.keys() {
            if self.column(name).is_none() {
                return Err(TableError::InvalidValue {
                    column: name.clone(),
                    message: format!(
                        "table `{}` has no such column (columns: {})",
                        self.name,
                        self.column_names().join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Checks one non-null value against its column and normalises it (datetimes to UTC milliseconds).
/// The error says what was expected and what came.
pub fn check_value(column: &Column, value: &Value) -> Result<Value, String> {
    match (column.kind, value) {
        (ColumnType::Text, Value::String(_))
        | (ColumnType::Number, Value::Number(_))
        | (ColumnType::Boolean, Value::Bool(_))
        | (ColumnType::Json, _) => Ok(value.clone()),
        (ColumnType::Datetime, Value::String(text)) => {
            normalize_datetime(text).map(Value::String).ok_or_else(|| {
                format!(
                    "expected an RFC 3339 date-time such as 2026-01-05T07:00:00Z, got `{}`",
                    preview(text)
                )
            })
        }
        (kind, other) => Err(format!(
            "expected {}, got {}",
            article(kind),
            describe(other)
        )),
    }
}

/// An RFC 3339 date-time in UTC with millisecond precision, or `None` when `text` is not one.
pub fn normalize_datetime(text: &str) -> Option<String> {
    let time = DateTime::parse_from_rfc3339(text.trim()).ok()?;
    Some(datetime_text(time.with_timezone(&Utc)))
}

/// The stored form of a time: `2026-01-05T07:00:00.000Z`.
pub fn datetime_text(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A key value as text: numbers without a useless `.0`.
pub fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number_text(number)),
        _ => None,
    }
}

fn number_text(number: &serde_json::Number) -> String {
    if number.is_i64() || number.is_u64() {
        return number.to_string();
    }
    match number.as_f64() {
        // Whole floats within the exact range of f64 are written as integers, so 42.0 and 42 are one key.
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => format!("{}", f as i64),
        _ => number.to_string(),
    }
}

fn article(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Text => "text",
        ColumnType::Number => "a number",
        ColumnType::Boolean => "a boolean",
        ColumnType::Datetime => "a date-time (text)",
        ColumnType::Json => "any JSON value",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("text `{}`", preview(text)),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("the boolean {b}"),
        other => kind_of(other).to_owned(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// At most 40 characters of a value, for error messages.
fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// Every table declared in a project, by name. A declaration that cannot be used is left out with its
/// error (`idflow validate` reports it with file and line).
pub fn schemas(project: &ProjectConfig) -> (BTreeMap<String, TableSchema>, Vec<TableError>) {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, config) in &project.tables {
        match TableSchema::from_config(name, config) {
            Ok(schema) => {
                out.insert(name.clone(), schema);
            }
            Err(error) => errors.push(error),
        }
    }
    (out, errors)
}

/// One declared table of a project.
pub fn schema(project: &ProjectConfig, name: &str) -> Result<TableSchema, TableError> {
    let config = project
        .tables
        .get(name)
        .ok_or_else(|| TableError::UnknownTable(name.to_owned()))?;
    TableSchema::from_config(name, config)
}

/// Where table rows live: SQLite locally, DynamoDB in AWS.
///
/// Every method takes the table's schema: the store needs no deployment step of its own, and checks
/// values against the schema on every write ([`TableSchema::check_row`],
/// [`TableSchema::check_changes`]). Tables are independent: the same key in two tables is two rows.
#[async_trait]
pub trait TableStore: Send + Sync {
    /// Adds a row at version 1. A table with a key column refuses a key in use unless `on_duplicate`
    /// is [`OnDuplicate::Replace`]; a table without one gives the row a new key.
    async fn insert(
        &self,
        table: &TableSchema,
        values: &Map<String, Value>,
        on_duplicate: OnDuplicate,
    ) -> Result<Row, TableError>;

    /// A row by key.
    async fn get(&self, table: &TableSchema, key: &str) -> Result<Option<Row>, TableError>;

    /// Sets the given columns of a row, leaving the others, and bumps its version. With
    /// `expected_version`, only if the row is still at that version ([`TableError::Conflict`]
    /// otherwise); the read, the check and the write are one atomic step. [`TableError::NotFound`]
    /// when there is no such row.
    async fn update(
        &self,
        table: &TableSchema,
        key: &str,
        changes: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> Result<Row, TableError>;

    /// Deletes a row (only at `expected_version`, when given). `false` when there was no such row.
    async fn delete(
        &self,
        table: &TableSchema,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, TableError>;

    /// Rows matching every filter, in key order, one page at a time.
    async fn search(&self, table: &TableSchema, query: &RowQuery) -> Result<RowPage, TableError>;

    /// Deletes every row of a table; returns how many there were.
    async fn clear(&self, table: &TableSchema) -> Result<u64, TableError>;

    /// How many rows a table has.
    async fn count(&self, table: &TableSchema) -> Result<u64, TableError>;
}

#[cfg(test)]
mod tests;
