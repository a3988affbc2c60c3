//! [`DynamoTableStore`]: the rows of every idflow table in one DynamoDB table.
//!
//! # Items (partition key `pk`, sort key `sk`, both strings)
//! - row: `pk = TABLE#<table>`, `sk = <row key>`, the row's version in `version` (a number) and its
//!   values as a JSON object in `data` (a string). One partition per idflow table, so a table's rows
//!   come back in key order from one query, as in SQLite (both order keys by their UTF-8 bytes).
//!
//! Writes are conditional on `version`: an update reads the row, merges the changes and writes it
//! back only if the version is still the one read, so concurrent updates never lose one (a write that
//! named a version gets [`TableError::Conflict`], one that did not reads again and retries).
//!
//! Searches read the table's partition page by page (consistent reads) and apply the filters here,
//! with the same semantics as the SQLite adapter, until `limit` matching rows (plus one, to know
//! whether another page exists) are found. The cursor is the last returned key, encoded; the next
//! search starts after it with `ExclusiveStartKey`. Equality on the key column is one `GetItem`.
//!
//! DynamoDB refuses items over 400 KB: a bigger row is refused with [`TableError::RowTooLarge`]
//! before anything is sent.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, ReturnValue, Select, WriteRequest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::{build_error, store_error};
use domain::ports::StoreError;
use domain::tables::{
    Filter, OnDuplicate, Op, Row, RowPage, RowQuery, TableError, TableSchema, TableStore, key_text,
};

type Item = HashMap<String, AttributeValue>;

/// The partition key attribute (a string, `TABLE#<table>`).
pub const PARTITION_KEY: &str = "pk";
/// The sort key attribute (a string, the row's key).
pub const SORT_KEY: &str = "sk";
/// The row's version (a number).
pub const VERSION_ATTRIBUTE: &str = "version";
/// The row's values as a JSON object (a string).
pub const DATA_ATTRIBUTE: &str = "data";
/// Prefix of the partition key of a table's rows.
pub const PARTITION_PREFIX: &str = "TABLE#";
/// DynamoDB's largest item, in bytes (attribute names and values together).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// `BatchWriteItem` takes at most this many requests.
const BATCH: usize = 25;
/// The fewest rows one read of a search asks DynamoDB for (a read returns at most 1 MB anyway).
const MIN_READ: usize = 100;
/// Rounds of a `BatchWriteItem` whose unprocessed items are sent again before giving up.
const BATCH_ROUNDS: usize = 10;
/// Read-merge-write rounds of an update that names no version before it reports contention.
const UPDATE_ROUNDS: usize = 100;

/// A [`TableStore`] on one DynamoDB table (schema in the module docs).
pub struct DynamoTableStore {
    client: Client,
    table: String,
    /// Keys of tables without a key column: monotonic ULIDs, as in the SQLite adapter.
    keys: Mutex<ulid::Generator>,
}

impl std::fmt::Debug for DynamoTableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoTableStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl DynamoTableStore {
    /// A store on the DynamoDB table `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTableStore {
            client,
            table: table.into(),
            keys: Mutex::new(ulid::Generator::new()),
        }
    }

    /// Creates the table (`pk`/`sk` strings, on-demand billing), as template.yaml does (for tests and
    /// development against an emulator).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        super::create_string_keyed_table(client, table, PARTITION_KEY, SORT_KEY).await
    }

    fn new_key(&self) -> String {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.generate()
            .unwrap_or_else(|_| ulid::Ulid::new())
            .to_string()
    }

    fn key(table: &TableSchema, key: &str) -> Item {
        HashMap::from([
            (
                PARTITION_KEY.to_owned(),
                AttributeValue::S(partition(table)),
            ),
            (SORT_KEY.to_owned(), AttributeValue::S(key.to_owned())),
        ])
    }

    /// The item of a row, refused when DynamoDB would refuse it.
    fn item(
        table: &TableSchema,
        key: &str,
        version: u64,
        values: &Map<String, Value>,
    ) -> Result<Item, TableError> {
        let data = serde_json::to_string(values).map_err(|e| {
            TableError::Store(StoreError::Corrupt {
                key: format!("{}/{key}", partition(table)),
                source: Box::new(e),
            })
        })?;
        let mut item = Self::key(table, key);
        item.insert(
            VERSION_ATTRIBUTE.to_owned(),
            AttributeValue::N(version.to_string()),
        );
        item.insert(DATA_ATTRIBUTE.to_owned(), AttributeValue::S(data));
        let bytes = item_size(&item);
        if bytes > MAX_ITEM_BYTES {
            return Err(TableError::RowTooLarge {
                table: table.name.clone(),
                key: key.to_owned(),
                bytes,
                limit: MAX_ITEM_BYTES,
            });
        }
        Ok(item)
    }

    async fn read(&self, table: &TableSchema, key: &str) -> Result<Option<Row>, TableError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(table, key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(|item| decode(table, &item)).transpose()
    }

    /// Writes `item` only if the row is at `version` (`None`: only if there is no such row).
    /// `false` when the condition failed.
    async fn put_if(&self, item: Item, version: Option<u64>) -> Result<bool, TableError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match version {
            None => request.condition_expression("attribute_not_exists(#pk)"),
            Some(version) => request
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION_ATTRIBUTE)
                .expression_attribute_values(":v", AttributeValue::N(version.to_string())),
        };
        let request = match version {
            None => request.expression_attribute_names("#pk", PARTITION_KEY),
            Some(_) => request,
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(store_error(error).into()),
        }
    }

    /// One page of a table's partition, in key order, after `start`.
    async fn page(
        &self,
        table: &TableSchema,
        start: Option<Item>,
        limit: Option<i32>,
        keys_only: bool,
    ) -> Result<(Vec<Item>, Option<Item>), TableError> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":pk", AttributeValue::S(partition(table)))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .set_limit(limit);
        let request = if keys_only {
            request
                .projection_expression("#pk, #sk")
                .expression_attribute_names("#sk", SORT_KEY)
        } else {
            request
        };
        let output = request.send().await.map_err(store_error)?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    }

    /// Equality on the key column: one read instead of a scan of the partition.
    async fn search_by_key(
        &self,
        table: &TableSchema,
        key: &str,
        query: &RowQuery,
        after: Option<&str>,
    ) -> Result<RowPage, TableError> {
        if after.is_some_and(|after| after >= key) {
            return Ok(RowPage {
                rows: Vec::new(),
                cursor: None,
            });
        }
        let rows = self
            .read(table, key)
            .await?
            .filter(|row| query.filters.iter().all(|f| holds(f, &row.values)))
            .into_iter()
            .collect();
        Ok(RowPage { rows, cursor: None })
    }

    /// Deletes up to 25 keys with `BatchWriteItem`, sending unprocessed ones again.
    async fn delete_batch(&self, keys: Vec<Item>) -> Result<(), TableError> {
        let mut requests = keys
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(build_error)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, TableError>>()?;
        for _ in 0..BATCH_ROUNDS {
            if requests.is_empty() {
                return Ok(());
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(store_error)?;
            requests = output
                .unprocessed_items
                .and_then(|mut items| items.remove(&self.table))
                .unwrap_or_default();
        }
        if requests.is_empty() {
            Ok(())
        } else {
            Err(TableError::Store(StoreError::Unavailable(Box::new(
                Unprocessed {
                    left: requests.len(),
                },
            ))))
        }
    }
}

/// Deletes DynamoDB kept leaving unprocessed (throttling).
#[derive(Debug, thiserror::Error)]
#[error("DynamoDB left {left} deletes unprocessed after {BATCH_ROUNDS} rounds")]
pub struct Unprocessed {
    /// Deletes still pending.
    pub left: usize,
}

fn partition(table: &TableSchema) -> String {
    format!("{PARTITION_PREFIX}{}", table.name)
}

fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(text) | AttributeValue::N(text) => text.len(),
                    _ => 16,
                }
        })
        .sum()
}

fn decode(table: &TableSchema, item: &Item) -> Result<Row, TableError> {
    let corrupt = |message: String| {
        TableError::Store(StoreError::Corrupt {
            key: format!("{}/{}", partition(table), sort_key(item).unwrap_or("?")),
            source: message.into(),
        })
    };
    let key = sort_key(item).ok_or_else(|| corrupt("item without a sort key".into()))?;
    let version = match item.get(VERSION_ATTRIBUTE) {
        Some(AttributeValue::N(n)) => n
            .parse::<u64>()
            .map_err(|_| corrupt(format!("version `{n}` is not a whole number")))?,
        _ => return Err(corrupt("item without a version".into())),
    };
    let values = match item.get(DATA_ATTRIBUTE) {
        Some(AttributeValue::S(text)) => {
            serde_json::from_str::<Map<String, Value>>(text).map_err(|e| corrupt(e.to_string()))?
        }
        _ => return Err(corrupt("item without data".into())),
    };
    Ok(Row {
        key: key.to_owned(),
        version,
        values,
    })
}

fn sort_key(item: &Item) -> Option<&str> {
    match item.get(SORT_KEY) {
        Some(AttributeValue::S(key)) => Some(key),
        _ => None,
    }
}

fn conditional_failed<E: ProvideConditional>(error: &aws_sdk_dynamodb::error::SdkError<E>) -> bool {
    error
        .as_service_error()
        .is_some_and(ProvideConditional::is_conditional)
}

/// Service errors that can report a failed condition.
trait ProvideConditional {
    fn is_conditional(&self) -> bool;
}

impl ProvideConditional for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_conditional(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ProvideConditional for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_conditional(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// Whether a row's values satisfy a filter, as SQLite's `json_extract` comparisons decide it:
/// `null` is only equal to `eq: null`, `ne` holds for `null`, ranges never hold for `null`.
fn holds(filter: &Filter, values: &Map<String, Value>) -> bool {
    let stored = values.get(&filter.column).unwrap_or(&Value::Null);
    if filter.value.is_null() {
        return match filter.op {
            Op::Eq => stored.is_null(),
            Op::Ne => !stored.is_null(),
            _ => false,
        };
    }
    let ordering = compare(stored, &filter.value);
    match filter.op {
        Op::Eq => ordering == Some(Ordering::Equal),
        Op::Ne => ordering != Some(Ordering::Equal),
        Op::Gt => ordering == Some(Ordering::Greater),
        Op::Gte => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => ordering == Some(Ordering::Less),
        Op::Lte => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
    }
}

/// Orders two values of one column's type; `None` when they cannot be compared (`null`, or types
/// that differ).
fn compare(stored: &Value, wanted: &Value) -> Option<Ordering> {
    match (stored, wanted) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
        },
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, TableError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| TableError::InvalidCursor(cursor.to_owned()))
}

#[async_trait]
impl TableStore for DynamoTableStore {
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
        let item = Self::item(table, &key, 1, &row)?;
        if self.put_if(item.clone(), None).await? {
            return Ok(Row {
                key,
                version: 1,
                values: row,
            });
        }
        if on_duplicate == OnDuplicate::Fail {
            return Err(TableError::DuplicateKey {
                table: table.name.clone(),
                key,
            });
        }
        // Replace: one atomic write that bumps whatever version the row has (or starts at 1 when
        // it was deleted meanwhile).
        let data = item
            .get(DATA_ATTRIBUTE)
            .cloned()
            .unwrap_or(AttributeValue::S("{}".into()));
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(table, &key)))
            .update_expression("SET #d = :d, #v = if_not_exists(#v, :zero) + :one")
            .expression_attribute_names("#d", DATA_ATTRIBUTE)
            .expression_attribute_names("#v", VERSION_ATTRIBUTE)
            .expression_attribute_values(":d", data)
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(store_error)?;
        let stored = decode(table, &output.attributes.unwrap_or_default())?;
        Ok(Row {
            key,
            version: stored.version,
            values: row,
        })
    }

    async fn get(&self, table: &TableSchema, key: &str) -> Result<Option<Row>, TableError> {
        self.read(table, key).await
    }

    async fn update(
        &self,
        table: &TableSchema,
        key: &str,
        changes: &Map<String, Value>,
        expected_version: Option<u64>,
    ) -> Result<Row, TableError> {
        let changes = table.check_changes(changes)?;
        let mut last_seen = 0;
        for _ in 0..UPDATE_ROUNDS {
            let Some(mut row) = self.read(table, key).await? else {
                return Err(TableError::NotFound {
                    table: table.name.clone(),
                    key: key.to_owned(),
                });
            };
            if let Some(expected) = expected_version
                && expected != row.version
            {
                return Err(TableError::Conflict {
                    table: table.name.clone(),
                    key: key.to_owned(),
                    expected,
                    found: row.version,
                });
            }
            let read = row.version;
            last_seen = read;
            for (column, value) in &changes {
                row.values.insert(column.clone(), value.clone());
            }
            row.version += 1;
            let item = Self::item(table, key, row.version, &row.values)?;
            if self.put_if(item, Some(read)).await? {
                return Ok(row);
            }
            // Someone wrote in between: a named version has lost, otherwise merge again.
        }
        let found = self
            .read(table, key)
            .await?
            .map_or(last_seen, |r| r.version);
        Err(TableError::Conflict {
            table: table.name.clone(),
            key: key.to_owned(),
            expected: expected_version.unwrap_or(last_seen),
            found,
        })
    }

    async fn delete(
        &self,
        table: &TableSchema,
        key: &str,
        expected_version: Option<u64>,
    ) -> Result<bool, TableError> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(table, key)))
            .return_values(ReturnValue::AllOld);
        let request = match expected_version {
            Some(version) => request
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION_ATTRIBUTE)
                .expression_attribute_values(":v", AttributeValue::N(version.to_string())),
            None => request,
        };
        match request.send().await {
            Ok(output) => Ok(output.attributes.is_some_and(|old| !old.is_empty())),
            Err(error) if conditional_failed(&error) => match self.read(table, key).await? {
                None => Ok(false),
                Some(row) => Err(TableError::Conflict {
                    table: table.name.clone(),
                    key: key.to_owned(),
                    expected: expected_version.unwrap_or(row.version),
                    found: row.version,
                }),
            },
            Err(error) => Err(store_error(error).into()),
        }
    }

    async fn search(&self, table: &TableSchema, query: &RowQuery) -> Result<RowPage, TableError> {
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        if let Some(key) = query.filters.iter().find_map(|f| {
            (table.key.as_deref() == Some(f.column.as_str()) && f.op == Op::Eq)
                .then(|| key_text(&f.value))
                .flatten()
        }) {
            return self
                .search_by_key(table, &key, query, after.as_deref())
                .await;
        }
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        // Without filters every row read is a match, so DynamoDB can stop at the page's end; with
        // filters, reads of the same size (at least MIN_READ rows) until enough rows matched.
        let read_limit = if query.filters.is_empty() {
            Some(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX))
        } else {
            Some(i32::try_from(limit.saturating_add(1).max(MIN_READ)).unwrap_or(i32::MAX))
        };
        let mut start = after.map(|key| Self::key(table, &key));
        let mut rows = Vec::new();
        loop {
            let (items, next) = self.page(table, start, read_limit, false).await?;
            for item in &items {
                let row = decode(table, item)?;
                if query.filters.iter().all(|f| holds(f, &row.values)) {
                    rows.push(row);
                }
            }
            if rows.len() > limit || next.is_none() {
                break;
            }
            start = next;
        }
        // One row more than the page was looked for: it tells whether another page exists.
        let cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| encode_cursor(&row.key))
        } else {
            None
        };
        Ok(RowPage { rows, cursor })
    }

    async fn clear(&self, table: &TableSchema) -> Result<u64, TableError> {
        let mut deleted = 0u64;
        let mut start = None;
        loop {
            let (items, next) = self.page(table, start, None, true).await?;
            for chunk in items.chunks(BATCH) {
                let keys: Vec<Item> = chunk
                    .iter()
                    .map(|item| {
                        item.iter()
                            .filter(|(name, _)| *name == PARTITION_KEY || *name == SORT_KEY)
                            .map(|(name, value)| (name.clone(), value.clone()))
                            .collect()
                    })
                    .collect();
                let n = keys.len() as u64;
                self.delete_batch(keys).await?;
                deleted += n;
            }
            match next {
                Some(next) => start = Some(next),
                None => return Ok(deleted),
            }
        }
    }

    async fn count(&self, table: &TableSchema) -> Result<u64, TableError> {
        let mut count = 0u64;
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PARTITION_KEY)
                .expression_attribute_values(":pk", AttributeValue::S(partition(table)))
                .consistent_read(true)
                .select(Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            count += u64::try_from(output.count).unwrap_or(0);
            match output.last_evaluated_key {
                Some(next) => start = Some(next),
                None => return Ok(count),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use domain::tables::ColumnType;

    fn filter(op: Op, value: Value) -> Filter {
        Filter {
            column: "n".into(),
            kind: ColumnType::Number,
            op,
            value,
        }
    }

    #[test]
    fn filters_compare_like_sqlite() {
        let row = |n: Value| json!({ "n": n }).as_object().cloned().unwrap_or_default();
        assert!(holds(&filter(Op::Eq, json!(2)), &row(json!(2.0))));
        assert!(holds(&filter(Op::Ne, json!(2)), &row(Value::Null)));
        assert!(!holds(&filter(Op::Gt, json!(2)), &row(Value::Null)));
        assert!(holds(&filter(Op::Lte, json!(2.5)), &row(json!(1))));
        assert!(holds(&filter(Op::Eq, Value::Null), &row(Value::Null)));
        assert!(!holds(&filter(Op::Ne, Value::Null), &row(Value::Null)));
        assert!(holds(&filter(Op::Gte, json!(-3)), &row(json!(-3))));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        assert_eq!(
            decode_cursor(&encode_cursor("r07")).ok(),
            Some("r07".into())
        );
        assert!(matches!(
            decode_cursor("%%%"),
            Err(TableError::InvalidCursor(_))
        ));
    }
}
