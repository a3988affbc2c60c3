//! [`DynamoRunStore`]: runs, step records and dedupe keys in one DynamoDB table.
//!
//! # Items (partition key `pk`, sort key `sk`, both strings)
//! - run: `pk = RUN#<id>`, `sk = RUN`; the run as JSON in `run`, plus the attributes the conditions
//!   and indexes need: `id`, `kind = run`, `flow`, `status`, `flow_status = <flow>#<status>`, `rev`
//!   (bumped by every write, the optimistic-concurrency guard), `owner` and `lease_until` (epoch ms)
//!   while leased, `notified = true` while a notification waits for the lease holder
//!   (`RunStore::notify`), and `expires_at` (epoch seconds, the table's TTL attribute) once the run
//!   ended.
//! - step record: `pk = RUN#<id>`, `sk = STEP#<seq, 10 digits>`, the record as JSON in `step`.
//! - dedupe key: `pk = DEDUPE#<key>`, `sk = DEDUPE`, `run_id`; written in the same transaction as
//!   the run, conditional on not existing.
//!
//! # Indexes (all project every attribute and sort by `id`, a ULID, so newest first is descending)
//! `by_created` (`kind`), `by_flow` (`flow`), `by_status` (`status`), `by_flow_status`
//! (`flow_status`). Only run items carry these attributes, so the indexes hold runs only.
//!
//! Every change to a run is read, changed in memory, then written conditional on `rev` being
//! unchanged; a lost race re-reads and decides again. That keeps the rules (lease, terminal states,
//! consecutive step records) in Rust, identical to the SQLite adapter's, instead of in condition
//! expressions.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{build_error, store_error};
use domain::ports::{Checkpoint, Created, Notified, ParkOutcome, RunStore, StoreError};
use domain::run::{Run, RunId, RunPage, RunQuery, RunStatus, StepRecord};

/// Item type of a DynamoDB row.
type Item = HashMap<String, AttributeValue>;

/// Index names, as template.yaml declares them.
pub const INDEX_BY_CREATED: &str = "by_created";
/// Runs of one flow, newest first.
pub const INDEX_BY_FLOW: &str = "by_flow";
/// Runs in one status, newest first.
pub const INDEX_BY_STATUS: &str = "by_status";
/// Runs of one flow in one status, newest first.
pub const INDEX_BY_FLOW_STATUS: &str = "by_flow_status";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// DynamoDB refuses items over 400 KB. Step data above this many bytes of JSON is replaced by a
/// marker, leaving room for keys and attribute names.
pub const STEP_DATA_LIMIT: usize = 300 * 1024;
/// A run item's JSON above this is refused: its input, output and engine state are needed whole.
const RUN_ITEM_LIMIT: usize = 380 * 1024;
/// DynamoDB transactions hold at most 100 items and 4 MB; step records are written in chunks below
/// both, each chunk together with the run item it advances.
const STEPS_PER_TRANSACTION: usize = 50;
const BYTES_PER_TRANSACTION: usize = 3 * 1024 * 1024;
/// Lost optimistic races before giving up with a retryable error.
const MAX_RACES: usize = 20;
/// Page size bounds of `list`.
const MAX_PAGE: u32 = 500;

/// A [`RunStore`] on one DynamoDB table (schema in the module docs and in template.yaml).
#[derive(Clone)]
pub struct DynamoRunStore {
    client: Client,
    table: String,
    retention: Option<Duration>,
}

/// A run item as read: the run and the attributes that guard writes to it.
#[derive(Debug, Clone)]
struct Stored {
    run: Run,
    rev: u64,
    owner: Option<String>,
    lease_until: Option<i64>,
    /// A notification waits for the lease holder ([`RunStore::notify`]).
    notified: bool,
}

/// What a read-decide step concluded.
enum Decision<T> {
    /// Write this run item (and these extra items), then answer `T`.
    Write(Box<Stored>, Vec<Item>, T),
    /// Answer without writing.
    Answer(T),
}

impl DynamoRunStore {
    /// A store on `table`. With `retention`, ended runs and step records carry a TTL so DynamoDB
    /// deletes them that long after they ended (or ran).
    pub fn new(client: Client, table: impl Into<String>, retention: Option<Duration>) -> Self {
        DynamoRunStore {
            client,
            table: table.into(),
            retention,
        }
    }

    /// Creates the table with its indexes and TTL, as template.yaml does (for tests and development
    /// against an emulator).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let string_attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(build_error)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(build_error)
        };
        let mut request = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?);
        for name in ["pk", "sk", "id", "kind", "flow", "status", "flow_status"] {
            request = request.attribute_definitions(string_attribute(name)?);
        }
        for (index, partition) in [
            (INDEX_BY_CREATED, "kind"),
            (INDEX_BY_FLOW, "flow"),
            (INDEX_BY_STATUS, "status"),
            (INDEX_BY_FLOW_STATUS, "flow_status"),
        ] {
            let gsi = GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(partition, KeyType::Hash)?)
                .key_schema(key("id", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(build_error)?;
            request = request.global_secondary_indexes(gsi);
        }
        request.send().await.map_err(store_error)?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(TTL_ATTRIBUTE)
                    .enabled(true)
                    .build()
                    .map_err(build_error)?,
            )
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    fn run_key(id: RunId) -> Item {
        HashMap::from([
            ("pk".to_owned(), s(format!("RUN#{id}"))),
            ("sk".to_owned(), s("RUN")),
        ])
    }

    async fn load(&self, id: RunId) -> Result<Option<Stored>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::run_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(|item| decode_stored(&item)).transpose()
    }

    /// The run item for `stored`, with the attributes its indexes and conditions need.
    fn encode_stored(&self, stored: &Stored) -> Result<Item, StoreError> {
        let run = &stored.run;
        let text = serde_json::to_string(run).map_err(|e| corrupt(run.id, e))?;
        if text.len() > RUN_ITEM_LIMIT {
            return Err(StoreError::Backend(Box::new(TooLarge {
                run_id: run.id,
                bytes: text.len(),
            })));
        }
        let mut item = Self::run_key(run.id);
        item.insert("id".to_owned(), s(run.id.to_string()));
        item.insert("kind".to_owned(), s("run"));
        item.insert("flow".to_owned(), s(&run.flow));
        item.insert("status".to_owned(), s(run.status.as_str()));
        item.insert(
            "flow_status".to_owned(),
            s(format!("{}#{}", run.flow, run.status.as_str())),
        );
        item.insert("rev".to_owned(), n(stored.rev));
        item.insert("run".to_owned(), s(text));
        if let Some(owner) = &stored.owner {
            item.insert("owner".to_owned(), s(owner));
        }
        if let Some(until) = stored.lease_until {
            item.insert("lease_until".to_owned(), n(until));
        }
        if stored.notified {
            item.insert("notified".to_owned(), AttributeValue::Bool(true));
        }
        if let (Some(retention), Some(finished)) = (self.retention, run.finished_at) {
            item.insert(TTL_ATTRIBUTE.to_owned(), n(expiry(finished, retention)));
        }
        Ok(item)
    }

    fn encode_step(&self, id: RunId, record: &StepRecord) -> Result<Item, StoreError> {
        let text = step_json(record).map_err(|e| corrupt(id, e))?;
        let mut item = HashMap::from([
            ("pk".to_owned(), s(format!("RUN#{id}"))),
            ("sk".to_owned(), s(format!("STEP#{:010}", record.seq))),
            ("step".to_owned(), s(text)),
        ]);
        if let Some(retention) = self.retention {
            item.insert(
                TTL_ATTRIBUTE.to_owned(),
                n(expiry(record.started_at, retention)),
            );
        }
        Ok(item)
    }

    /// Writes a run item conditional on its revision (or on not existing, for `expected = None`),
    /// together with `extra` items that must not exist yet. `Ok(false)` when a condition failed.
    async fn write(
        &self,
        run: Item,
        expected: Option<u64>,
        extra: Vec<Item>,
    ) -> Result<bool, StoreError> {
        let condition =
            |put: aws_sdk_dynamodb::types::builders::PutBuilder, rev: Option<u64>| match rev {
                Some(rev) => put
                    .condition_expression("#rev = :rev")
                    .expression_attribute_names("#rev", "rev")
                    .expression_attribute_values(":rev", n(rev)),
                None => put.condition_expression("attribute_not_exists(pk)"),
            };
        if extra.is_empty() {
            let mut request = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(run));
            request = match expected {
                Some(rev) => request
                    .condition_expression("#rev = :rev")
                    .expression_attribute_names("#rev", "rev")
                    .expression_attribute_values(":rev", n(rev)),
                None => request.condition_expression("attribute_not_exists(pk)"),
            };
            return match request.send().await {
                Ok(_) => Ok(true),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(false)
                }
                Err(error) => Err(store_error(error)),
            };
        }
        let mut items = Vec::with_capacity(extra.len() + 1);
        let put = condition(
            Put::builder().table_name(&self.table).set_item(Some(run)),
            expected,
        );
        items.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(build_error)?)
                .build(),
        );
        for item in extra {
            let put = condition(
                Put::builder().table_name(&self.table).set_item(Some(item)),
                None,
            );
            items.push(
                TransactWriteItem::builder()
                    .put(put.build().map_err(build_error)?)
                    .build(),
            );
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if error.as_service_error().is_some_and(|e| {
                    e.is_transaction_canceled_exception() && !is_retryable_cancel(e)
                }) =>
            {
                Ok(false)
            }
            Err(error) => Err(store_error(error)),
        }
    }

    /// A checkpoint ([`RunStore::checkpoint`]), or with `park` a park ([`RunStore::park`]) that a
    /// pending notification turns into "keep the lease, look again".
    async fn write_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        park: bool,
    ) -> Result<ParkOutcome, StoreError> {
        let id = checkpoint.run_id;
        let steps = checkpoint
            .steps
            .iter()
            .map(|record| self.encode_step(id, record))
            .collect::<Result<Vec<_>, _>>()?;
        let chunks = chunk_steps(steps);
        let last = chunks.len().saturating_sub(1);
        let mut written = 0_u32;
        for (index, chunk) in chunks.into_iter().enumerate() {
            let count = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            let seqs: Vec<u32> = checkpoint.steps[written as usize..(written + count) as usize]
                .iter()
                .map(|record| record.seq)
                .collect();
            let outcome = self
                .update(id, |current| {
                    let Some(mut stored) = current else {
                        return Err(StoreError::Conflict(format!("run {id} does not exist")));
                    };
                    if stored.run.status.is_terminal() {
                        return Err(StoreError::Conflict(format!("run {id} has ended")));
                    }
                    if stored.owner.as_deref() != Some(checkpoint.owner.as_str()) {
                        return Err(StoreError::Conflict(format!(
                            "run {id} is not leased by {}",
                            checkpoint.owner
                        )));
                    }
                    let mut next = stored.run.step_count;
                    for seq in &seqs {
                        if *seq != next {
                            return Err(StoreError::Conflict(format!(
                                "run {id}: expected step record {next}, got {seq}"
                            )));
                        }
                        next += 1;
                    }
                    stored.run.step_count = next;
                    let mut outcome = ParkOutcome::Parked;
                    if index == last {
                        if park && stored.notified {
                            // A helper run ended while this worker drove the run: keep the lease and
                            // clear the mark; the worker looks again instead of parking.
                            stored.notified = false;
                            outcome = ParkOutcome::Notified;
                        } else {
                            apply_checkpoint(&mut stored, checkpoint);
                        }
                    }
                    Ok(Decision::Write(Box::new(stored), chunk.clone(), outcome))
                })
                .await?;
            if index == last {
                return Ok(outcome);
            }
            written += count;
        }
        Ok(ParkOutcome::Parked)
    }

    /// Reads the run, lets `decide` choose, writes conditionally, and repeats after a lost race.
    async fn update<T>(
        &self,
        id: RunId,
        mut decide: impl FnMut(Option<Stored>) -> Result<Decision<T>, StoreError>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_RACES {
            let current = self.load(id).await?;
            let expected = current.as_ref().map(|stored| stored.rev);
            match decide(current)? {
                Decision::Answer(answer) => return Ok(answer),
                Decision::Write(mut next, extra, answer) => {
                    next.rev = expected.unwrap_or(0) + 1;
                    let item = self.encode_stored(&next)?;
                    if self.write(item, expected, extra).await? {
                        return Ok(answer);
                    }
                }
            }
        }
        Err(StoreError::Unavailable(Box::new(Contended { run_id: id })))
    }

    /// Runs of one index partition with ids in `lo..=hi`, in id order, at most `limit`.
    async fn query(
        &self,
        index: &str,
        partition: (&str, String),
        (lo, hi): (ulid::Ulid, ulid::Ulid),
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Run>, StoreError> {
        let mut runs = Vec::new();
        if lo > hi {
            return Ok(runs);
        }
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression("#p = :p AND #id BETWEEN :lo AND :hi")
                .expression_attribute_names("#p", partition.0)
                .expression_attribute_names("#id", "id")
                .expression_attribute_values(":p", s(&partition.1))
                .expression_attribute_values(":lo", s(lo.to_string()))
                .expression_attribute_values(":hi", s(hi.to_string()))
                .scan_index_forward(!newest_first)
                .limit(i32::try_from(limit - runs.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in output.items.unwrap_or_default() {
                runs.push(decode_stored(&item)?.run);
            }
            start = output.last_evaluated_key;
            if start.is_none() || runs.len() >= limit {
                runs.truncate(limit);
                return Ok(runs);
            }
        }
    }
}

#[async_trait]
impl RunStore for DynamoRunStore {
    async fn create(&self, run: &Run, dedupe_key: Option<&str>) -> Result<Created, StoreError> {
        let stored = Stored {
            run: run.clone(),
            rev: 1,
            owner: None,
            lease_until: None,
            notified: false,
        };
        let item = self.encode_stored(&stored)?;
        let extra = match dedupe_key {
            Some(key) => vec![HashMap::from([
                ("pk".to_owned(), s(format!("DEDUPE#{key}"))),
                ("sk".to_owned(), s("DEDUPE")),
                ("run_id".to_owned(), s(run.id.to_string())),
            ])],
            None => Vec::new(),
        };
        if self.write(item, None, extra).await? {
            return Ok(Created::New);
        }
        // Either the key is taken or the id exists; the key item says which.
        if let Some(key) = dedupe_key {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", s(format!("DEDUPE#{key}")))
                .key("sk", s("DEDUPE"))
                .consistent_read(true)
                .send()
                .await
                .map_err(store_error)?;
            if let Some(item) = output.item {
                let text = string(&item, "run_id").unwrap_or_default();
                let existing = RunId::parse(text).ok_or_else(|| StoreError::Corrupt {
                    key: format!("DEDUPE#{key}"),
                    source: "run_id is not a run id".into(),
                })?;
                return Ok(Created::Duplicate(existing));
            }
        }
        Err(StoreError::Conflict(format!("run {} exists", run.id)))
    }

    async fn get(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        Ok(self.load(id).await?.map(|stored| stored.run))
    }

    async fn list(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE) as usize;
        let cursor = match &query.cursor {
            Some(text) => {
                Some(RunId::parse(text).ok_or_else(|| StoreError::InvalidCursor(text.clone()))?)
            }
            None => None,
        };
        let (index, partition) = match (&query.flow, query.status) {
            (Some(flow), Some(status)) => (
                INDEX_BY_FLOW_STATUS,
                ("flow_status", format!("{flow}#{}", status.as_str())),
            ),
            (Some(flow), None) => (INDEX_BY_FLOW, ("flow", flow.clone())),
            (None, Some(status)) => (INDEX_BY_STATUS, ("status", status.as_str().to_owned())),
            (None, None) => (INDEX_BY_CREATED, ("kind", "run".to_owned())),
        };
        let bounds = id_bounds(query.since, query.until, cursor);
        let mut runs = self
            .query(index, partition, bounds, true, limit + 1)
            .await?;
        let next_cursor = if runs.len() > limit {
            runs.truncate(limit);
            runs.last().map(|run| run.id.to_string())
        } else {
            None
        };
        Ok(RunPage { runs, next_cursor })
    }

    async fn steps(&self, id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        let mut steps = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :step)")
                .expression_attribute_values(":pk", s(format!("RUN#{id}")))
                .expression_attribute_values(":step", s("STEP#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in output.items.unwrap_or_default() {
                let text = string(&item, "step").unwrap_or_default();
                steps.push(serde_json::from_str(text).map_err(|e| corrupt(id, e))?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(steps);
            }
        }
    }

    async fn claim(
        &self,
        id: RunId,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Run>, StoreError> {
        let now_ms = now.timestamp_millis();
        let until = now_ms.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        self.update(id, |current| {
            let Some(mut stored) = current else {
                return Ok(Decision::Answer(None));
            };
            let leased_by_other = stored.owner.as_deref().is_some_and(|o| o != owner)
                && stored.lease_until.is_some_and(|t| t > now_ms);
            if stored.run.status.is_terminal() || leased_by_other {
                return Ok(Decision::Answer(None));
            }
            stored.run.status = RunStatus::Running;
            stored.run.started_at.get_or_insert(now);
            stored.owner = Some(owner.to_owned());
            stored.lease_until = Some(until);
            // The claimer reads the run afresh: whatever a notification announced is in it.
            stored.notified = false;
            let run = stored.run.clone();
            Ok(Decision::Write(Box::new(stored), Vec::new(), Some(run)))
        })
        .await
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.write_checkpoint(checkpoint, false).await.map(|_| ())
    }

    async fn park(&self, checkpoint: &Checkpoint) -> Result<ParkOutcome, StoreError> {
        self.write_checkpoint(checkpoint, true).await
    }

    async fn notify(
        &self,
        id: RunId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Notified, StoreError> {
        let now_ms = now.timestamp_millis();
        // Conditional on the revision like every write: a park that commits first frees the lease
        // and this re-reads and answers `NotLeased`; a park that comes second sees the mark.
        self.update(id, |current| {
            let Some(mut stored) = current else {
                return Ok(Decision::Answer(Notified::Ended));
            };
            if stored.run.status.is_terminal() {
                return Ok(Decision::Answer(Notified::Ended));
            }
            let leased_by_other = stored.owner.as_deref().is_some_and(|o| o != owner)
                && stored.lease_until.is_some_and(|t| t > now_ms);
            if !leased_by_other {
                return Ok(Decision::Answer(Notified::NotLeased));
            }
            if stored.notified {
                return Ok(Decision::Answer(Notified::Marked));
            }
            stored.notified = true;
            Ok(Decision::Write(
                Box::new(stored),
                Vec::new(),
                Notified::Marked,
            ))
        })
        .await
    }

    async fn cancel(&self, id: RunId, now: DateTime<Utc>) -> Result<Option<Run>, StoreError> {
        self.update(id, |current| {
            let Some(mut stored) = current else {
                return Ok(Decision::Answer(None));
            };
            if stored.run.status.is_terminal() {
                return Ok(Decision::Answer(Some(stored.run)));
            }
            stored.run.status = RunStatus::Cancelled;
            stored.run.finished_at = Some(now);
            stored.run.wake_at = None;
            stored.run.state = None;
            stored.owner = None;
            stored.lease_until = None;
            let run = stored.run.clone();
            Ok(Decision::Write(Box::new(stored), Vec::new(), Some(run)))
        })
        .await
    }

    async fn unfinished(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        let limit = limit as usize;
        let mut runs = Vec::new();
        for status in [RunStatus::Queued, RunStatus::Running, RunStatus::Waiting] {
            let partition = ("status", status.as_str().to_owned());
            let bounds = id_bounds(None, None, None);
            runs.extend(
                self.query(INDEX_BY_STATUS, partition, bounds, false, limit)
                    .await?,
            );
        }
        runs.sort_by_key(|run| run.id);
        runs.truncate(limit);
        Ok(runs)
    }
}

/// Applies everything but the step records of a checkpoint to a run item.
fn apply_checkpoint(stored: &mut Stored, checkpoint: &Checkpoint) {
    let run = &mut stored.run;
    run.status = checkpoint.status;
    run.state = checkpoint.state.clone();
    run.wake_at = checkpoint.wake_at;
    run.output = checkpoint.output.clone();
    run.error = checkpoint.error.clone();
    run.finished_at = checkpoint.finished_at;
    if checkpoint.drop_input {
        run.input = serde_json::Value::Null;
    }
    if checkpoint.release {
        stored.owner = None;
        stored.lease_until = None;
    }
}

/// Splits step items into transactions below DynamoDB's item and size limits. Always at least one
/// chunk, so a checkpoint without records still writes the run.
fn chunk_steps(steps: Vec<Item>) -> Vec<Vec<Item>> {
    let mut chunks = vec![Vec::new()];
    let mut bytes = 0;
    for item in steps {
        let size = item_size(&item);
        let full = chunks.last().is_some_and(|chunk| {
            chunk.len() >= STEPS_PER_TRANSACTION
                || (!chunk.is_empty() && bytes + size > BYTES_PER_TRANSACTION)
        });
        if full {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(item);
        }
    }
    chunks
}

fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(key, value)| {
            key.len()
                + match value {
                    AttributeValue::S(text) | AttributeValue::N(text) => text.len(),
                    _ => 16,
                }
        })
        .sum()
}

/// A step record as JSON, with input, output and error detail replaced by a marker when the record
/// would not fit in an item. The marker says how big the data was, so the history shows that
/// something was there.
pub fn step_json(record: &StepRecord) -> Result<String, serde_json::Error> {
    let text = serde_json::to_string(record)?;
    if text.len() <= STEP_DATA_LIMIT {
        return Ok(text);
    }
    let mut small = record.clone();
    let marker = |value: &serde_json::Value| {
        let bytes = serde_json::to_string(value).map(|t| t.len()).unwrap_or(0);
        json!({ "idflow_truncated": true, "bytes": bytes })
    };
    small.input = small.input.as_ref().map(marker);
    small.output = small.output.as_ref().map(marker);
    if let Some(error) = &mut small.error {
        error.detail = error.detail.as_ref().map(marker);
        error.message.truncate(
            (0..=error.message.len().min(4096))
                .rev()
                .find(|&i| error.message.is_char_boundary(i))
                .unwrap_or(0),
        );
    }
    serde_json::to_string(&small)
}

/// Inclusive ULID bounds for `since <= created < until` and `id < cursor`.
fn id_bounds(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<RunId>,
) -> (ulid::Ulid, ulid::Ulid) {
    let at_ms = |time: DateTime<Utc>| ulid::Ulid::from_parts(millis(time), 0).0;
    let lo = since.map(at_ms).unwrap_or(0);
    let mut hi_exclusive = u128::MAX;
    if let Some(until) = until {
        hi_exclusive = hi_exclusive.min(at_ms(until));
    }
    if let Some(cursor) = cursor {
        hi_exclusive = hi_exclusive.min(cursor.0.0);
    }
    // An empty range comes out as `lo > hi` and is answered without a query: DynamoDB refuses such
    // a BETWEEN.
    let hi = match hi_exclusive {
        u128::MAX => u128::MAX,
        0 => return (ulid::Ulid(1), ulid::Ulid(0)),
        exclusive => exclusive - 1,
    };
    (ulid::Ulid(lo), ulid::Ulid(hi))
}

fn millis(time: DateTime<Utc>) -> u64 {
    u64::try_from(time.timestamp_millis()).unwrap_or(0)
}

fn expiry(from: DateTime<Utc>, retention: Duration) -> i64 {
    from.timestamp()
        .saturating_add(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX))
}

fn decode_stored(item: &Item) -> Result<Stored, StoreError> {
    let key = string(item, "pk").unwrap_or("?").to_owned();
    let bad = |what: &str| StoreError::Corrupt {
        key: key.clone(),
        source: what.to_owned().into(),
    };
    let text = string(item, "run").ok_or_else(|| bad("run item without `run`"))?;
    let run: Run = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        key: key.clone(),
        source: Box::new(e),
    })?;
    let rev = number(item, "rev").ok_or_else(|| bad("run item without `rev`"))?;
    Ok(Stored {
        run,
        rev: u64::try_from(rev).map_err(|_| bad("negative `rev`"))?,
        owner: string(item, "owner").map(str::to_owned),
        lease_until: number(item, "lease_until"),
        notified: matches!(item.get("notified"), Some(AttributeValue::Bool(true))),
    })
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}

fn s(text: impl Into<String>) -> AttributeValue {
    AttributeValue::S(text.into())
}

fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn corrupt(id: RunId, error: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: format!("RUN#{id}"),
        source: Box::new(error),
    }
}

/// A cancelled transaction is a lost condition unless one of its reasons is throttling or a
/// conflicting transaction, which are worth retrying as they are.
fn is_retryable_cancel(
    error: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match error {
        TransactWriteItemsError::TransactionCanceledException(cancel) => {
            cancel.cancellation_reasons().iter().any(|reason| {
                matches!(
                    reason.code(),
                    Some(
                        "ThrottlingError" | "TransactionConflict" | "ProvisionedThroughputExceeded"
                    )
                )
            })
        }
        _ => false,
    }
}

/// A run item that would exceed DynamoDB's 400 KB item limit.
#[derive(Debug, thiserror::Error)]
#[error("run {run_id} is {bytes} bytes as JSON, over the item limit")]
pub struct TooLarge {
    /// The run that did not fit.
    pub run_id: RunId,
    /// Its size as JSON.
    pub bytes: usize,
}

/// Writers kept racing on the same run.
#[derive(Debug, thiserror::Error)]
#[error("run {run_id} kept changing while being written")]
pub struct Contended {
    /// The contended run.
    pub run_id: RunId,
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::conformance::{at, step_record};

    #[test]
    fn large_step_data_is_replaced_by_a_marker() {
        let mut record = step_record(0);
        record.output = Some(json!({ "body": "x".repeat(STEP_DATA_LIMIT) }));
        let text = step_json(&record).expect("serializes");
        assert!(text.len() < STEP_DATA_LIMIT);
        let back: StepRecord = serde_json::from_str(&text).expect("parses");
        assert_eq!(
            back.output.as_ref().and_then(|o| o.get("idflow_truncated")),
            Some(&json!(true))
        );
        assert_eq!(back.step, record.step, "the rest of the record is kept");
        let small = step_record(1);
        assert_eq!(
            step_json(&small).expect("serializes"),
            serde_json::to_string(&small).expect("serializes"),
            "small records are kept whole"
        );
    }

    #[test]
    fn bounds_cover_since_until_and_cursor() {
        let (lo, hi) = id_bounds(Some(at(2)), Some(at(5)), None);
        assert_eq!(lo.timestamp_ms(), millis(at(2)));
        assert_eq!(hi.timestamp_ms(), millis(at(5)) - 1);
        let cursor = RunId::new_at(at(3));
        let (_, hi) = id_bounds(None, Some(at(5)), Some(cursor));
        assert_eq!(hi.0, cursor.0.0 - 1);
        let (lo, hi) = id_bounds(Some(at(3)), Some(at(3)), None);
        assert!(lo > hi, "an empty range");
    }
}
