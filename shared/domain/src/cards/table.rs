//! `table.*`: rows of the typed tables declared in `idflow.yaml` or `tables/*.yaml`, through the
//! [`TableStore`](crate::tables::TableStore) port.
//!
//! The executor reads the table's declaration from the project config of the call, so a redeployed
//! `idflow.yaml` applies to the next step at once. Errors are classified for `on_error` and retry
//! policies: a value of the wrong type is `invalid_input` naming the field (`row.count`), a missing
//! row `not_found`, a key in use `duplicate_key`, a lost race on a version `conflict` (re-read the
//! row and try again), an unreachable store `table_unavailable` (retryable).

use std::sync::Arc;

use std::borrow::Cow;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::fields::{Fields, invalid};
use super::spec::{CardCall, CardError, CardExecutor, CardKind, CardSpec, FieldSpec};
use crate::tables::csv::{ExportOptions, export};
use crate::tables::{OnDuplicate, RowQuery, TableError, TableSchema, TableStore, schema};

/// The largest CSV `table.export_csv` returns (5 MiB): a step output is kept in run history.
pub const MAX_EXPORT_BYTES: usize = 5 * 1024 * 1024;

const TABLE: FieldSpec = FieldSpec {
    name: "table",
    kind: "text",
    required: true,
    doc: "a table declared under `tables:` in idflow.yaml or in a table file `tables/<name>.yaml`",
};

const KEY: FieldSpec = FieldSpec {
    name: "key",
    kind: "any",
    required: true,
    doc: "the row's key: the key column's value, or the `key` a table without a key column gave the row",
};

const VERSION: FieldSpec = FieldSpec {
    name: "version",
    kind: "integer",
    required: false,
    doc: "only if the row is still at this version (from `read_row`); otherwise the step fails with `conflict`",
};

const WHERE: FieldSpec = FieldSpec {
    name: "where",
    kind: "object",
    required: false,
    doc: "conditions that must all hold: `{ column: value }` for equality (`null` for no value), or operators `{ column: { gte: 3, lt: 10 } }` (`eq`, `ne`, `gt`, `gte`, `lt`, `lte`; ranges on text, number and datetime columns; json columns cannot be searched)",
};

const ROW_OUTPUT: &str = "`{ key, version, row }`: the row's key, its version (1 when created, +1 per write) and every column's value (datetimes in UTC, `2026-01-05T07:00:00.000Z`)";

/// The table cards.
pub const CARDS: &[CardSpec] = &[
    CardSpec {
        name: "table.clear",
        summary: "Deletes every row of a table",
        fields: &[TABLE],
        output: "`{ deleted }`: how many rows there were",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "table.create_row",
        summary: "Adds a row to a table; values are checked against the column types",
        fields: &[
            TABLE,
            FieldSpec {
                name: "row",
                kind: "object",
                required: true,
                doc: "values by column; columns left out are `null`; a table with a key column needs its value",
            },
            FieldSpec {
                name: "replace",
                kind: "boolean",
                required: false,
                doc: "when a row with the same key exists, replace it instead of failing with `duplicate_key`",
            },
        ],
        output: ROW_OUTPUT,
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "table.delete_row",
        summary: "Deletes a row by key",
        fields: &[TABLE, KEY, VERSION],
        output: "`{ deleted }`: `false` when there was no such row",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "table.export_csv",
        summary: "The rows of a table as CSV text, with a header line",
        fields: &[
            TABLE,
            WHERE,
            FieldSpec {
                name: "columns",
                kind: "list",
                required: false,
                doc: "only these columns, in this order (default: every column)",
            },
        ],
        output: "the CSV text (RFC 4180, CRLF line ends; text cells that a spreadsheet would run as a formula start with `'`). At most 5 MiB: export larger tables with `idflow tables show <table> --csv`",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "table.read_row",
        summary: "Reads a row by key",
        fields: &[
            TABLE,
            KEY,
            FieldSpec {
                name: "optional",
                kind: "boolean",
                required: false,
                doc: "give `null` when there is no such row instead of failing with `not_found`",
            },
        ],
        output: ROW_OUTPUT,
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "table.search_rows",
        summary: "Finds rows by equality and ranges on columns, a page at a time",
        fields: &[
            TABLE,
            WHERE,
            FieldSpec {
                name: "limit",
                kind: "integer",
                required: false,
                doc: "rows per page, 1 to 1000 (default 100)",
            },
            FieldSpec {
                name: "cursor",
                kind: "text",
                required: false,
                doc: "the `cursor` of the previous page, for the rows after it",
            },
        ],
        output: "`{ rows: [{ key, version, row }], cursor }`: rows in key order; `cursor` is `null` on the last page",
        kind: CardKind::Io,
        open: false,
    },
    CardSpec {
        name: "table.update_row",
        summary: "Changes some columns of a row; with `version`, only if nobody changed it since it was read",
        fields: &[
            TABLE,
            KEY,
            FieldSpec {
                name: "row",
                kind: "object",
                required: true,
                doc: "the columns to change and their new values; the others keep theirs; the key column cannot change",
            },
            VERSION,
        ],
        output: ROW_OUTPUT,
        kind: CardKind::Io,
        open: false,
    },
];

/// Executes the `table.*` cards against a [`TableStore`].
pub struct TableExecutor {
    store: Arc<dyn TableStore>,
    max_export: usize,
}

impl TableExecutor {
    /// An executor over `store`.
    pub fn new(store: Arc<dyn TableStore>) -> TableExecutor {
        TableExecutor {
            store,
            max_export: MAX_EXPORT_BYTES,
        }
    }

    /// The same with another limit on `table.export_csv` (default [`MAX_EXPORT_BYTES`]).
    pub fn with_export_limit(mut self, bytes: usize) -> TableExecutor {
        self.max_export = bytes;
        self
    }

    async fn run(&self, call: &CardCall) -> Result<Value, CardError> {
        let input = Fields::of_call(&call.input)?;
        let name = input.text("table")?;
        let table = schema(&call.project, &name).map_err(|e| card_error(e, "row"))?;
        let store = self.store.as_ref();
        match call.card.as_str() {
            "table.create_row" => {
                let row = input.object("row")?;
                let on_duplicate = if input.boolean_or("replace", false)? {
                    OnDuplicate::Replace
                } else {
                    OnDuplicate::Fail
                };
                let row = store
                    .insert(&table, row, on_duplicate)
                    .await
                    .map_err(|e| card_error(e, "row"))?;
                Ok(row.to_json(&table))
            }
            "table.read_row" => {
                let key = key(&table, &input)?;
                match store
                    .get(&table, &key)
                    .await
                    .map_err(|e| card_error(e, "key"))?
                {
                    Some(row) => Ok(row.to_json(&table)),
                    None if input.boolean_or("optional", false)? => Ok(Value::Null),
                    None => Err(card_error(
                        TableError::NotFound {
                            table: table.name.clone(),
                            key,
                        },
                        "key",
                    )),
                }
            }
            "table.search_rows" => {
                let raw = input.map();
                let query = RowQuery::parse(
                    &table,
                    raw.get("where"),
                    raw.get("limit"),
                    raw.get("cursor"),
                )
                .map_err(|e| card_error(e, "where"))?;
                let page = store
                    .search(&table, &query)
                    .await
                    .map_err(|e| card_error(e, "where"))?;
                let rows: Vec<Value> = page.rows.iter().map(|row| row.to_json(&table)).collect();
                Ok(json!({ "rows": rows, "cursor": page.cursor }))
            }
            "table.update_row" => {
                let key = key(&table, &input)?;
                let changes = input.object("row")?;
                let version = version(&input)?;
                let row = store
                    .update(&table, &key, changes, version)
                    .await
                    .map_err(|e| card_error(e, "row"))?;
                Ok(row.to_json(&table))
            }
            "table.delete_row" => {
                let key = key(&table, &input)?;
                let version = version(&input)?;
                let deleted = store
                    .delete(&table, &key, version)
                    .await
                    .map_err(|e| card_error(e, "key"))?;
                Ok(json!({ "deleted": deleted }))
            }
            "table.clear" => {
                let deleted = store
                    .clear(&table)
                    .await
                    .map_err(|e| card_error(e, "table"))?;
                Ok(json!({ "deleted": deleted }))
            }
            "table.export_csv" => {
                let query = RowQuery::parse(&table, input.map().get("where"), None, None)
                    .map_err(|e| card_error(e, "where"))?;
                let columns = input
                    .optional_texts("columns")?
                    .map(|names| names.into_iter().map(Cow::into_owned).collect());
                let options = ExportOptions {
                    guard_formulas: true,
                    max_bytes: Some(self.max_export),
                    columns,
                };
                let mut out = Vec::new();
                export(store, &table, &query, &options, &mut out)
                    .await
                    .map_err(|e| card_error(e, "where"))?;
                // Every cell came from a `String` or from JSON, so the bytes are UTF-8.
                Ok(Value::String(String::from_utf8_lossy(&out).into_owned()))
            }
            other => Err(CardError::Failed {
                code: "unknown_card".into(),
                message: format!("the table executor does not run `{other}`"),
                retryable: false,
            }),
        }
    }
}

#[async_trait]
impl CardExecutor for TableExecutor {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        self.run(call).await
    }
}

fn key(table: &TableSchema, input: &Fields<'_>) -> Result<String, CardError> {
    let value = input.value("key").unwrap_or(&Value::Null);
    table.key_from_input(value).map_err(|error| match error {
        TableError::InvalidValue { message, .. } => invalid("key", message),
        other => card_error(other, "key"),
    })
}

fn version(input: &Fields<'_>) -> Result<Option<u64>, CardError> {
    input
        .optional_integer("version")?
        .map(|version| {
            u64::try_from(version)
                .ok()
                .filter(|version| *version >= 1)
                .ok_or_else(|| {
                    invalid(
                        "version",
                        format!("expected a row version (a whole number from 1), got {version}"),
                    )
                })
        })
        .transpose()
}

/// A table error as a card error. `values` names the input field the column values came from.
fn card_error(error: TableError, values: &str) -> CardError {
    let message = error.to_string();
    let failed = |code: &str, retryable: bool| CardError::Failed {
        code: code.to_owned(),
        message: message.clone(),
        retryable,
    };
    match &error {
        TableError::UnknownTable(_) => invalid("table", message),
        TableError::InvalidSchema { .. } => failed("invalid_table", false),
        TableError::InvalidValue { column, message } => {
            let field = if values == "key" {
                "key".to_owned()
            } else {
                format!("{values}.{column}")
            };
            invalid(&field, message.clone())
        }
        TableError::InvalidQuery { field, message } => invalid(field, message.clone()),
        TableError::InvalidCursor(_) => invalid("cursor", "not a cursor of this table"),
        TableError::NotFound { .. } => failed("not_found", false),
        TableError::DuplicateKey { .. } => failed("duplicate_key", false),
        TableError::Conflict { .. } => failed("conflict", false),
        TableError::RowTooLarge { .. } => failed("row_too_large", false),
        TableError::TooLarge { .. } => CardError::Failed {
            code: "too_large".into(),
            message: format!(
                "{message}: narrow it with `where` or `columns`, or export with `idflow tables show <table> --csv`"
            ),
            retryable: false,
        },
        TableError::Io { .. } => failed("table_error", false),
        TableError::Store(store) => failed("table_unavailable", store.is_retryable()),
    }
}

// Tested on the SQLite table store: `local/tests/table_cards.rs`.
