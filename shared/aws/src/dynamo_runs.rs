//! [`DynamoRunStore`]: runs, step records and dedupe keys in one DynamoDB table.
//!
//! # Items (partition key `pk`, sort key `sk`, both strings)
//! - run: `pk = RUN#<id>`, `sk = RUN`; the run as JSON in `run`, plus the attributes the conditions
//!   and indexes need: `id`, `kind = run`, `flow`, `status`, `flow_status = <flow>#<status>`, `rev`
//!   (bumped by every write, the optimistic-concurrency guard), `owner` and `lease_until` (epoch ms)
//!   while leased, `notified = true` while a notification waits for the lease holder
//!   (`RunStore::notify`), and `expires_at` (epoch seconds, the table's TTL attribute) once the run
//!   ended.
//!   With a blob store ([`DynamoRunStore::with_history_blobs`]), an input or output whose JSON is
//!   above [`OUT_OF_ITEM_BYTES`] is kept there instead: the JSON holds `null` in its place and the
//!   item a reference (`input_ref`, `output_ref`: key, hash and size, see [`crate::s3_history`]).
//! - step record: `pk = RUN#<id>`, `sk = STEP#<seq, 10 digits>`, the record as JSON in `step`;
//!   with a blob store, its input, output or error detail above [`OUT_OF_ITEM_BYTES`] likewise
//!   (`input_ref`, `output_ref`, `detail_ref`). Reads give the full values back.
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
//!
//! [`OUT_OF_ITEM_BYTES`]: crate::s3_history::OUT_OF_ITEM_BYTES

use std::collections::HashMap;
use std::sync::Arc;
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

use super::s3_history::{HistoryValues, ValueRef, gone_marker};
use super::{build_error, store_error};
use domain::ports::{BlobStore, Checkpoint, Created, Notified, ParkOutcome, RunStore, StoreError};
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
    /// Where values too big for an item go; without it such a run is refused and such a step
    /// record keeps a size marker.
    history: Option<HistoryValues>,
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
    /// The run's values kept out of the item; `run` holds a placeholder in their place.
    refs: RunRefs,
}

/// References to the values of a run item kept in the blob store. While one is set, the run's
/// field holds a placeholder (`null`) that is never written back over it.
#[derive(Debug, Clone, Default)]
struct RunRefs {
    input: Option<ValueRef>,
    output: Option<ValueRef>,
}

/// References to the parts of a step record kept in the blob store.
#[derive(Debug, Clone, Default)]
struct StepRefs {
    input: Option<ValueRef>,
    output: Option<ValueRef>,
    detail: Option<ValueRef>,
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
            history: None,
        }
    }

    /// Keeps run inputs and outputs and step data too big for an item in `blobs` (S3), under
    /// `history/<run id>/`, so a run with a 1 MB input or output, or a step with a 1 MB output,
    /// is stored and read back whole.
    pub fn with_history_blobs(mut self, blobs: Arc<dyn BlobStore>) -> Self {
        self.history = Some(HistoryValues::new(blobs));
        self
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
        encode_refs(
            &mut item,
            [
                ("input_ref", &stored.refs.input),
                ("output_ref", &stored.refs.output),
            ],
        );
        if let (Some(retention), Some(finished)) = (self.retention, run.finished_at) {
            item.insert(TTL_ATTRIBUTE.to_owned(), n(expiry(finished, retention)));
        }
        Ok(item)
    }

    fn encode_step(
        &self,
        id: RunId,
        record: &StepRecord,
        refs: &StepRefs,
    ) -> Result<Item, StoreError> {
        let text = step_json(record).map_err(|e| corrupt(id, e))?;
        let mut item = HashMap::from([
            ("pk".to_owned(), s(format!("RUN#{id}"))),
            ("sk".to_owned(), s(format!("STEP#{:010}", record.seq))),
            ("step".to_owned(), s(text)),
        ]);
        encode_refs(
            &mut item,
            [
                ("input_ref", &refs.input),
                ("output_ref", &refs.output),
                ("detail_ref", &refs.detail),
            ],
        );
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
        let mut steps = Vec::with_capacity(checkpoint.steps.len());
        for record in &checkpoint.steps {
            let (record, refs) = self.offload_step(id, record).await?;
            steps.push(self.encode_step(id, &record, &refs)?);
        }
        let chunks = chunk_steps(steps);
        let last = chunks.len().saturating_sub(1);
        let mut dropped_input = None;
        let mut written = 0_u32;
        let mut outcome_of_last = ParkOutcome::Parked;
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
                            if checkpoint.drop_input {
                                dropped_input = stored.refs.input.clone();
                            }
                            apply_checkpoint(&mut stored, checkpoint);
                        }
                    }
                    Ok(Decision::Write(Box::new(stored), chunk.clone(), outcome))
                })
                .await?;
            if index == last {
                outcome_of_last = outcome;
            }
            written += count;
        }
        if let Some(reference) = dropped_input {
            self.forget_value(id, &reference).await;
        }
        Ok(outcome_of_last)
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
                    self.offload_run(&mut next).await?;
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
                runs.push(self.filled(decode_stored(&item)?, false).await?);
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
        let mut stored = Stored {
            run: run.clone(),
            rev: 1,
            owner: None,
            lease_until: None,
            notified: false,
            refs: RunRefs::default(),
        };
        self.offload_run(&mut stored).await?;
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
        match self.load(id).await? {
            Some(stored) => Ok(Some(self.filled(stored, false).await?)),
            None => Ok(None),
        }
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
                let record = serde_json::from_str(text).map_err(|e| corrupt(id, e))?;
                steps.push(self.filled_step(record, &item).await?);
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
        let claimed = self
            .update(id, |current| {
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
                let answer = stored.clone();
                Ok(Decision::Write(Box::new(stored), Vec::new(), Some(answer)))
            })
            .await?;
        // The engine resumes from this run: its input must be whole, not a marker.
        match claimed {
            Some(stored) => Ok(Some(self.filled(stored, true).await?)),
            None => Ok(None),
        }
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.write_checkpoint(checkpoint, false).await.map(|_| ())
    }

    async fn park(&self, checkpoint: &Checkpoint) -> Result<ParkOutcome, StoreError> {
        self.write_checkpoint(checkpoint, true).await
    }

    /// Runs live in DynamoDB and messages in SQS, which share no transaction: the checkpoint is
    /// written alone and the caller deletes the message through the queue.
    async fn checkpoint_settling(
        &self,
        checkpoint: &Checkpoint,
        _receipt: &str,
    ) -> Result<bool, StoreError> {
        self.checkpoint(checkpoint).await.map(|()| false)
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
        let cancelled = self
            .update(id, |current| {
                let Some(mut stored) = current else {
                    return Ok(Decision::Answer(None));
                };
                if stored.run.status.is_terminal() {
                    return Ok(Decision::Answer(Some(stored)));
                }
                stored.run.status = RunStatus::Cancelled;
                stored.run.finished_at = Some(now);
                stored.run.wake_at = None;
                stored.run.state = None;
                stored.owner = None;
                stored.lease_until = None;
                let answer = stored.clone();
                Ok(Decision::Write(Box::new(stored), Vec::new(), Some(answer)))
            })
            .await?;
        match cancelled {
            Some(stored) => Ok(Some(self.filled(stored, false).await?)),
            None => Ok(None),
        }
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

/// Values too big for an item: kept in the blob store, referenced from the item, read back whole.
impl DynamoRunStore {
    /// Moves the run's input and output out of the item when they are too big for it (and a blob
    /// store is at hand); values already out of line are left as they are.
    async fn offload_run(&self, stored: &mut Stored) -> Result<(), StoreError> {
        let Some(history) = &self.history else {
            return Ok(());
        };
        let id = stored.run.id;
        if stored.refs.input.is_none()
            && let Some(reference) = history.offload(id, "input", &stored.run.input).await?
        {
            stored.refs.input = Some(reference);
            stored.run.input = serde_json::Value::Null;
        }
        if stored.refs.output.is_none()
            && let Some(output) = &stored.run.output
            && let Some(reference) = history.offload(id, "output", output).await?
        {
            stored.refs.output = Some(reference);
            stored.run.output = None;
        }
        Ok(())
    }

    /// The run of `stored` with its out-of-line values read back. A value that is gone is a
    /// corrupt record when `strict` (the engine cannot resume without its input), else a marker
    /// saying how big it was (history past the bucket's retention).
    async fn filled(&self, stored: Stored, strict: bool) -> Result<Run, StoreError> {
        let mut run = stored.run;
        if let Some(reference) = &stored.refs.input {
            run.input = self.fetch(reference, strict).await?;
        }
        if let Some(reference) = &stored.refs.output {
            run.output = Some(self.fetch(reference, strict).await?);
        }
        Ok(run)
    }

    async fn fetch(
        &self,
        reference: &ValueRef,
        strict: bool,
    ) -> Result<serde_json::Value, StoreError> {
        let Some(history) = &self.history else {
            return Err(StoreError::Backend(Box::new(NoBlobStore {
                key: reference.key.clone(),
            })));
        };
        match history.fetch(reference).await? {
            Some(value) => Ok(value),
            None if strict => Err(StoreError::Corrupt {
                key: reference.key.clone(),
                source: "the value is no longer in the blob store".into(),
            }),
            None => Ok(gone_marker(reference)),
        }
    }

    /// A step record with its input, output and error detail moved out of the item when they
    /// are too big for it, and the references to them.
    async fn offload_step(
        &self,
        id: RunId,
        record: &StepRecord,
    ) -> Result<(StepRecord, StepRefs), StoreError> {
        let mut refs = StepRefs::default();
        let Some(history) = &self.history else {
            return Ok((record.clone(), refs));
        };
        let seq = record.seq;
        if let Some(input) = &record.input {
            refs.input = history
                .offload(id, &format!("step-{seq}-input"), input)
                .await?;
        }
        if let Some(output) = &record.output {
            refs.output = history
                .offload(id, &format!("step-{seq}-output"), output)
                .await?;
        }
        if let Some(detail) = record.error.as_ref().and_then(|e| e.detail.as_ref()) {
            refs.detail = history
                .offload(id, &format!("step-{seq}-detail"), detail)
                .await?;
        }
        let mut small = record.clone();
        if refs.input.is_some() {
            small.input = None;
        }
        if refs.output.is_some() {
            small.output = None;
        }
        if refs.detail.is_some()
            && let Some(error) = &mut small.error
        {
            error.detail = None;
        }
        Ok((small, refs))
    }

    /// A step record as read, with the parts its item references read back.
    async fn filled_step(
        &self,
        mut record: StepRecord,
        item: &Item,
    ) -> Result<StepRecord, StoreError> {
        if let Some(reference) = decode_ref(item, "input_ref")? {
            record.input = Some(self.fetch(&reference, false).await?);
        }
        if let Some(reference) = decode_ref(item, "output_ref")? {
            record.output = Some(self.fetch(&reference, false).await?);
        }
        if let Some(reference) = decode_ref(item, "detail_ref")?
            && let Some(error) = &mut record.error
        {
            error.detail = Some(self.fetch(&reference, false).await?);
        }
        Ok(record)
    }

    /// Deletes a value the run no longer holds (its input, once `history: none` dropped it).
    /// Best effort: a value left behind is never read again and the bucket's lifecycle removes
    /// it.
    async fn forget_value(&self, id: RunId, reference: &ValueRef) {
        if let Some(history) = &self.history
            && let Err(error) = history.forget_key(&reference.key).await
        {
            tracing::warn!(run = %id, %error, "could not delete a dropped run input");
        }
    }
}

/// Writes the references that are set as string attributes of `item`.
fn encode_refs<const N: usize>(item: &mut Item, refs: [(&str, &Option<ValueRef>); N]) {
    for (name, reference) in refs {
        if let Some(reference) = reference {
            item.insert(name.to_owned(), s(reference.to_attribute()));
        }
    }
}

/// The reference in attribute `name` of `item`, if there is one.
fn decode_ref(item: &Item, name: &str) -> Result<Option<ValueRef>, StoreError> {
    let Some(text) = string(item, name) else {
        return Ok(None);
    };
    ValueRef::from_attribute(text)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            key: string(item, "pk").unwrap_or("?").to_owned(),
            source: Box::new(e),
        })
}

/// Applies everything but the step records of a checkpoint to a run item.
fn apply_checkpoint(stored: &mut Stored, checkpoint: &Checkpoint) {
    let run = &mut stored.run;
    run.status = checkpoint.status;
    run.state = checkpoint.state.clone();
    run.wake_at = checkpoint.wake_at;
    run.output = checkpoint.output.clone();
    // The new output is whole in memory: a reference to an older one would hide it.
    stored.refs.output = None;
    run.error = checkpoint.error.clone();
    run.finished_at = checkpoint.finished_at;
    if checkpoint.drop_input {
        run.input = serde_json::Value::Null;
        stored.refs.input = None;
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
        refs: RunRefs {
            input: decode_ref(item, "input_ref")?,
            output: decode_ref(item, "output_ref")?,
        },
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

/// An item references a value out of line, and this store was built without a blob store.
#[derive(Debug, thiserror::Error)]
#[error("{key} is kept in the blob store, and this run store has none")]
pub struct NoBlobStore {
    /// The value's key.
    pub key: String,
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
