//! [`SqliteRunStore`]: runs as one row each (JSON columns for nested values), step records in rows
//! of their own, the lease and the dedupe key as columns of the run.
//!
//! A row of `steps` holds the records one write added, under the `seq` of its first: one record
//! as a JSON object, several as a JSON array of consecutive records. A run of pure steps that ends
//! in one write adds one row, not one per step (a B-tree insert and a statement each: about a
//! tenth of the writer thread's instructions per run under `bench/instructions.sh`). Rows of one
//! record each, as earlier releases wrote them, read the same.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Fail, SqliteDb, parse_json, parse_time, time_text, to_json};
use domain::ports::{Checkpoint, Created, Notified, ParkOutcome, RunStore, StoreError};
use domain::run::{Run, RunId, RunPage, RunQuery, RunStatus, StepRecord};

/// Largest page of [`RunStore::list`].
pub const MAX_PAGE: u32 = 500;

const COLUMNS: &str = "id, flow, flow_version, trigger, status, input, parent, root, created_at, \
    started_at, finished_at, wake_at, output, error, state, step_count";

/// The SQL condition "not terminal".
const NOT_TERMINAL: &str = "status NOT IN ('succeeded', 'failed', 'cancelled')";

/// Runs in SQLite. See [`RunStore`] for the contract.
#[derive(Debug, Clone)]
pub struct SqliteRunStore {
    db: SqliteDb,
}

impl SqliteRunStore {
    /// A run store on `db`.
    pub fn new(db: SqliteDb) -> SqliteRunStore {
        SqliteRunStore { db }
    }

    /// A checkpoint ([`RunStore::checkpoint`]), or with `park` a park ([`RunStore::park`]) that a
    /// pending notification turns into "keep the lease, look again".
    ///
    /// With `settle` (a queue message's id and receipt), a checkpoint that is written also deletes
    /// that message when the receipt still matches; the answer's flag says whether it did.
    async fn write_checkpoint(
        &self,
        checkpoint: &Checkpoint,
        park: bool,
        settle: Option<(i64, String)>,
    ) -> Result<(ParkOutcome, bool), StoreError> {
        let encode = || -> Result<_, Fail> {
            Ok((
                StepRows::encode(&checkpoint.steps)?,
                checkpoint.state.as_ref().map(to_json).transpose()?,
                checkpoint.output.as_ref().map(to_json).transpose()?,
                checkpoint.error.as_ref().map(to_json).transpose()?,
            ))
        };
        let (steps, state, output, error) = encode().map_err(Fail::into_store)?;
        let id = checkpoint.run_id.to_string();
        let owner = checkpoint.owner.clone();
        let status = checkpoint.status.as_str();
        let wake_at = checkpoint.wake_at.map(time_text);
        let finished_at = checkpoint.finished_at.map(time_text);
        let (drop_input, release) = (checkpoint.drop_input, checkpoint.release);
        self.db
            .write(move |conn| {
                let mut current = conn.prepare_cached("SELECT status, step_count, lease_owner, notified FROM runs WHERE id = ?1")?;
                let found = current
                    .query_row([&id], |row| {
                        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, Option<String>>(2)?, row.get::<_, bool>(3)?))
                    })
                    .optional()?;
                let Some((current_status, step_count, lease_owner, notified)) = found else {
                    return Err(Fail::Conflict(format!("run {id} does not exist")));
                };
                if RunStatus::parse(&current_status).is_none_or(RunStatus::is_terminal) {
                    return Err(Fail::Conflict(format!("run {id} already ended ({current_status})")));
                }
                if lease_owner.as_deref() != Some(owner.as_str()) {
                    return Err(Fail::Conflict(format!("run {id} is not leased by {owner}")));
                }
                let next = steps.insert(conn, &id, step_count)?;
                if park && notified {
                    // A helper run ended while this worker drove the run: keep the lease and clear
                    // the mark; the worker looks at its helper runs again instead of parking.
                    let mut keep = conn.prepare_cached(
                        "UPDATE runs SET notified = 0, step_count = ?2 WHERE id = ?1",
                    )?;
                    keep.execute(params![id, next])?;
                    return Ok((ParkOutcome::Notified, false));
                }
                let mut update = conn.prepare_cached(
                    "UPDATE runs SET status = ?2, state = ?3, wake_at = ?4, output = ?5, error = ?6, \
                     finished_at = ?7, step_count = ?8, \
                     input = CASE WHEN ?9 THEN 'null' ELSE input END, \
                     lease_owner = CASE WHEN ?10 THEN NULL ELSE lease_owner END, \
                     lease_until = CASE WHEN ?10 THEN NULL ELSE lease_until END \
                     WHERE id = ?1",
                )?;
                update.execute(params![id, status, state, wake_at, output, error, finished_at, next, drop_input, release])?;
                let settled = match &settle {
                    Some((message, receipt)) => super::queue::delete_message(conn, *message, receipt)?,
                    None => false,
                };
                Ok((ParkOutcome::Parked, settled))
            })
            .await
            .map_err(Fail::into_store)
    }
}

/// The columns of a run that its checkpoints change, as the run holds them or as a checkpoint sets
/// them.
struct Progress<'a> {
    status: RunStatus,
    drop_input: bool,
    finished_at: Option<DateTime<Utc>>,
    wake_at: Option<DateTime<Utc>>,
    output: Option<&'a serde_json::Value>,
    error: Option<&'a domain::run::RunError>,
    state: Option<&'a serde_json::Value>,
    step_count: u32,
}

/// A run as its columns: the text the database holds.
pub(crate) struct RunRow {
    id: String,
    flow: String,
    flow_version: String,
    trigger: String,
    status: String,
    input: String,
    parent: Option<String>,
    root: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    wake_at: Option<String>,
    output: Option<String>,
    error: Option<String>,
    state: Option<String>,
    step_count: i64,
}

impl RunRow {
    pub(crate) fn encode(run: &Run) -> Result<RunRow, Fail> {
        RunRow::encode_with(
            run,
            &Progress {
                status: run.status,
                drop_input: false,
                finished_at: run.finished_at,
                wake_at: run.wake_at,
                output: run.output.as_ref(),
                error: run.error.as_ref(),
                state: run.state.as_ref(),
                step_count: run.step_count,
            },
        )
    }

    /// `run` as it stands once `checkpoint` is applied to it (see [`RunStore::checkpoint`]).
    pub(crate) fn encode_checkpointed(run: &Run, checkpoint: &Checkpoint) -> Result<RunRow, Fail> {
        RunRow::encode_with(
            run,
            &Progress {
                status: checkpoint.status,
                drop_input: checkpoint.drop_input,
                finished_at: checkpoint.finished_at,
                wake_at: checkpoint.wake_at,
                output: checkpoint.output.as_ref(),
                error: checkpoint.error.as_ref(),
                state: checkpoint.state.as_ref(),
                step_count: checkpoint
                    .steps
                    .last()
                    .map_or(run.step_count, |last| last.seq.saturating_add(1)),
            },
        )
    }

    /// The columns of `run` that never change after its creation, with the others from `progress`.
    fn encode_with(run: &Run, progress: &Progress<'_>) -> Result<RunRow, Fail> {
        Ok(RunRow {
            id: run.id.to_string(),
            flow: run.flow.clone(),
            flow_version: run.flow_version.clone(),
            trigger: to_json(&run.trigger)?,
            status: progress.status.as_str().to_owned(),
            input: if progress.drop_input {
                "null".to_owned()
            } else {
                to_json(&run.input)?
            },
            parent: run.parent.map(|id| id.to_string()),
            root: run.root.map(|id| id.to_string()),
            created_at: time_text(run.created_at),
            started_at: run.started_at.map(time_text),
            finished_at: progress.finished_at.map(time_text),
            wake_at: progress.wake_at.map(time_text),
            output: progress.output.map(to_json).transpose()?,
            error: progress.error.map(to_json).transpose()?,
            state: progress.state.map(to_json).transpose()?,
            step_count: i64::from(progress.step_count),
        })
    }

    /// Reads the [`COLUMNS`] of a row, in order.
    fn read(row: &Row<'_>) -> Result<RunRow, rusqlite::Error> {
        Ok(RunRow {
            id: row.get(0)?,
            flow: row.get(1)?,
            flow_version: row.get(2)?,
            trigger: row.get(3)?,
            status: row.get(4)?,
            input: row.get(5)?,
            parent: row.get(6)?,
            root: row.get(7)?,
            created_at: row.get(8)?,
            started_at: row.get(9)?,
            finished_at: row.get(10)?,
            wake_at: row.get(11)?,
            output: row.get(12)?,
            error: row.get(13)?,
            state: row.get(14)?,
            step_count: row.get(15)?,
        })
    }

    /// Decodes outside the writer thread, so the writer only moves text.
    fn decode(self) -> Result<Run, Fail> {
        let key = format!("run {}", self.id);
        let corrupt = |what: &str| Fail::Corrupt {
            key: key.clone(),
            source: format!("invalid {what}").into(),
        };
        let id_of = |text: &str| RunId::parse(text).ok_or_else(|| corrupt("run id"));
        let time = |text: Option<String>| text.map(|text| parse_time(&key, &text)).transpose();
        Ok(Run {
            id: id_of(&self.id)?,
            flow: self.flow,
            flow_version: self.flow_version,
            trigger: parse_json(&key, &self.trigger)?,
            status: RunStatus::parse(&self.status).ok_or_else(|| corrupt("status"))?,
            input: parse_json(&key, &self.input)?,
            parent: self.parent.as_deref().map(id_of).transpose()?,
            root: self.root.as_deref().map(id_of).transpose()?,
            created_at: parse_time(&key, &self.created_at)?,
            started_at: time(self.started_at)?,
            finished_at: time(self.finished_at)?,
            wake_at: time(self.wake_at)?,
            output: self
                .output
                .map(|text| parse_json(&key, &text))
                .transpose()?,
            error: self.error.map(|text| parse_json(&key, &text)).transpose()?,
            state: self.state.map(|text| parse_json(&key, &text)).transpose()?,
            step_count: u32::try_from(self.step_count).map_err(|_| corrupt("step count"))?,
        })
    }
}

fn decode_all(rows: Vec<RunRow>) -> Result<Vec<Run>, StoreError> {
    rows.into_iter()
        .map(|row| row.decode().map_err(Fail::into_store))
        .collect()
}

fn select_one(conn: &Connection, id: &str) -> Result<Option<RunRow>, Fail> {
    let mut select = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM runs WHERE id = ?1"))?;
    Ok(select.query_row([id], RunRow::read).optional()?)
}

fn is_constraint(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// Inserts a run unless its dedupe key is taken. Shared with the queue's combined fast path.
///
/// With `lease` (owner, until as time text) the run is created leased, as a claim leaves it.
pub(crate) fn insert_run(
    conn: &Connection,
    row: &RunRow,
    dedupe_key: Option<&str>,
    lease: Option<&(String, String)>,
) -> Result<Created, Fail> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO runs (id, flow, flow_version, trigger, status, input, parent, root, created_at, \
         started_at, finished_at, wake_at, output, error, state, step_count, dedupe_key, \
         lease_owner, lease_until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )?;
    let (lease_owner, lease_until) = lease.map(|(owner, until)| (owner, until)).unzip();
    let inserted = insert
        .execute(params![
            row.id,
            row.flow,
            row.flow_version,
            row.trigger,
            row.status,
            row.input,
            row.parent,
            row.root,
            row.created_at,
            row.started_at,
            row.finished_at,
            row.wake_at,
            row.output,
            row.error,
            row.state,
            row.step_count,
            dedupe_key,
            lease_owner,
            lease_until,
        ])
        .map_err(|error| {
            if is_constraint(&error) {
                Fail::Conflict(format!("run {} exists already", row.id))
            } else {
                error.into()
            }
        })?;
    if inserted == 1 {
        return Ok(Created::New);
    }
    let mut existing = conn.prepare_cached("SELECT id FROM runs WHERE dedupe_key = ?1")?;
    let id: String = existing.query_row([dedupe_key], |row| row.get(0))?;
    let id = RunId::parse(&id).ok_or_else(|| Fail::Corrupt {
        key: format!("run {id}"),
        source: "invalid run id".into(),
    })?;
    Ok(Created::Duplicate(id))
}

/// The step records of one write as the row of `steps` that holds them (see the module's docs).
pub(crate) struct StepRows(Option<(u32, u32, String)>);

impl StepRows {
    /// `steps`, which must be numbered consecutively, as one row: their first `seq`, their count
    /// and the text.
    pub(crate) fn encode(steps: &[StepRecord]) -> Result<StepRows, Fail> {
        let Some(first) = steps.first() else {
            return Ok(StepRows(None));
        };
        for (step, next) in steps.iter().zip(first.seq..) {
            if step.seq != next {
                return Err(Fail::Conflict(format!(
                    "step records must be consecutive: expected {next}, got {}",
                    step.seq
                )));
            }
        }
        let text = match steps {
            [one] => to_json(one)?,
            several => to_json(several)?,
        };
        let count = u32::try_from(steps.len()).unwrap_or(u32::MAX);
        Ok(StepRows(Some((first.seq, count, text))))
    }

    /// Inserts the row for run `id`, whose records must go on from `step_count`; returns the
    /// run's step count after them.
    pub(crate) fn insert(&self, conn: &Connection, id: &str, step_count: i64) -> Result<i64, Fail> {
        let Some((first, count, text)) = &self.0 else {
            return Ok(step_count);
        };
        if i64::from(*first) != step_count {
            return Err(Fail::Conflict(format!(
                "run {id}: expected step record {step_count}, got {first}"
            )));
        }
        let mut insert =
            conn.prepare_cached("INSERT INTO steps (run_id, seq, record) VALUES (?1, ?2, ?3)")?;
        insert.execute(params![id, first, text])?;
        Ok(step_count + i64::from(*count))
    }

    /// The records of a row as [`StepRows::insert`] (or an earlier release) wrote it.
    fn decode(key: &str, text: &str, into: &mut Vec<StepRecord>) -> Result<(), Fail> {
        if text.starts_with('[') {
            into.extend(parse_json::<Vec<StepRecord>>(key, text)?);
        } else {
            into.push(parse_json(key, text)?);
        }
        Ok(())
    }
}

#[async_trait]
impl RunStore for SqliteRunStore {
    async fn create(&self, run: &Run, dedupe_key: Option<&str>) -> Result<Created, StoreError> {
        let row = RunRow::encode(run).map_err(Fail::into_store)?;
        let dedupe_key = dedupe_key.map(str::to_owned);
        self.db
            .write(move |conn| insert_run(conn, &row, dedupe_key.as_deref(), None))
            .await
            .map_err(Fail::into_store)
    }

    async fn get(&self, id: RunId) -> Result<Option<Run>, StoreError> {
        let id = id.to_string();
        let row = self
            .db
            .read(move |conn| select_one(conn, &id))
            .await
            .map_err(Fail::into_store)?;
        row.map(|row| row.decode().map_err(Fail::into_store))
            .transpose()
    }

    async fn list(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let cursor = match &query.cursor {
            Some(cursor) => Some(
                RunId::parse(cursor)
                    .ok_or_else(|| StoreError::InvalidCursor(cursor.clone()))?
                    .to_string(),
            ),
            None => None,
        };
        // One statement text per combination of filters, so each can use its index (a `?1 IS NULL OR`
        // condition would hide the index from the planner); the statement cache keeps all sixteen.
        let mut sql = format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1");
        for (present, condition) in [
            (query.flow.is_some(), " AND flow = ?1"),
            (query.status.is_some(), " AND status = ?2"),
            (query.since.is_some(), " AND created_at >= ?3"),
            (query.until.is_some(), " AND created_at < ?4"),
            (cursor.is_some(), " AND id < ?5"),
        ] {
            if present {
                sql.push_str(condition);
            }
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?6");
        let flow = query.flow.clone();
        let status = query.status.map(RunStatus::as_str);
        let since = query.since.map(time_text);
        let until = query.until.map(time_text);
        let rows = self
            .db
            .read(move |conn| {
                let mut select = conn.prepare_cached(&sql)?;
                let rows = select
                    .query_map(
                        params![flow, status, since, until, cursor, i64::from(limit) + 1],
                        RunRow::read,
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .map_err(Fail::into_store)?;
        let mut runs = decode_all(rows)?;
        let next_cursor = if runs.len() > limit as usize {
            runs.truncate(limit as usize);
            runs.last().map(|run| run.id.to_string())
        } else {
            None
        };
        Ok(RunPage { runs, next_cursor })
    }

    async fn steps(&self, id: RunId) -> Result<Vec<StepRecord>, StoreError> {
        let id = id.to_string();
        let key = format!("steps of run {id}");
        let records = self
            .db
            .read(move |conn| {
                let mut select =
                    conn.prepare_cached("SELECT record FROM steps WHERE run_id = ?1 ORDER BY seq")?;
                let records = select
                    .query_map([&id], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(records)
            })
            .await
            .map_err(Fail::into_store)?;
        let mut steps = Vec::with_capacity(records.len());
        for record in &records {
            StepRows::decode(&key, record, &mut steps).map_err(Fail::into_store)?;
        }
        Ok(steps)
    }

    async fn claim(
        &self,
        id: RunId,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Run>, StoreError> {
        let id = id.to_string();
        let owner = owner.to_owned();
        let until = domain::run::lease_end(now, lease);
        let (now, until) = (time_text(now), time_text(until));
        let row = self
            .db
            .write(move |conn| {
                let mut claim = conn.prepare_cached(&format!(
                    "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?3), \
                     lease_owner = ?2, lease_until = ?4, notified = 0 \
                     WHERE id = ?1 AND {NOT_TERMINAL} \
                     AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_until <= ?3) \
                     RETURNING {COLUMNS}"
                ))?;
                Ok(claim
                    .query_row(params![id, owner, now, until], RunRow::read)
                    .optional()?)
            })
            .await
            .map_err(Fail::into_store)?;
        row.map(|row| row.decode().map_err(Fail::into_store))
            .transpose()
    }

    async fn checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        self.write_checkpoint(checkpoint, false, None)
            .await
            .map(|_| ())
    }

    async fn park(&self, checkpoint: &Checkpoint) -> Result<ParkOutcome, StoreError> {
        self.write_checkpoint(checkpoint, true, None)
            .await
            .map(|(outcome, _)| outcome)
    }

    async fn checkpoint_settling(
        &self,
        checkpoint: &Checkpoint,
        receipt: &str,
    ) -> Result<bool, StoreError> {
        // A receipt this queue did not issue cannot match a message: write the checkpoint alone.
        let settle = super::queue::message_id(receipt)
            .ok()
            .map(|message| (message, receipt.to_owned()));
        self.write_checkpoint(checkpoint, false, settle)
            .await
            .map(|(_, settled)| settled)
    }

    async fn notify(
        &self,
        id: RunId,
        owner: &str,
        now: DateTime<Utc>,
    ) -> Result<Notified, StoreError> {
        let id = id.to_string();
        let owner = owner.to_owned();
        let now = time_text(now);
        self.db
            .write(move |conn| {
                // One statement: the writer is single, so a park either commits before this (the
                // lease is free and nothing is marked) or after it (and sees the mark).
                let mut mark = conn.prepare_cached(&format!(
                    "UPDATE runs SET notified = 1 WHERE id = ?1 AND {NOT_TERMINAL} \
                     AND lease_owner IS NOT NULL AND lease_owner <> ?2 AND lease_until > ?3"
                ))?;
                if mark.execute(params![id, owner, now])? > 0 {
                    return Ok(Notified::Marked);
                }
                let mut status = conn.prepare_cached("SELECT status FROM runs WHERE id = ?1")?;
                let found = status
                    .query_row([&id], |row| row.get::<_, String>(0))
                    .optional()?;
                Ok(match found.as_deref().and_then(RunStatus::parse) {
                    Some(status) if !status.is_terminal() => Notified::NotLeased,
                    _ => Notified::Ended,
                })
            })
            .await
            .map_err(Fail::into_store)
    }

    async fn cancel(&self, id: RunId, now: DateTime<Utc>) -> Result<Option<Run>, StoreError> {
        let id = id.to_string();
        let now = time_text(now);
        let row = self
            .db
            .write(move |conn| {
                // Dropping the lease and the engine state is what "ended" means for every other path;
                // the worker holding the lease finds out at its next checkpoint (a conflict).
                let mut cancel = conn.prepare_cached(&format!(
                    "UPDATE runs SET status = 'cancelled', finished_at = ?2, wake_at = NULL, state = NULL, \
                     lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND {NOT_TERMINAL}"
                ))?;
                cancel.execute(params![id, now])?;
                select_one(conn, &id)
            })
            .await
            .map_err(Fail::into_store)?;
        row.map(|row| row.decode().map_err(Fail::into_store))
            .transpose()
    }

    async fn unfinished(&self, limit: u32) -> Result<Vec<Run>, StoreError> {
        let rows = self
            .db
            .read(move |conn| {
                let mut select = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM runs WHERE status IN ('queued', 'running', 'waiting') \
                     ORDER BY id LIMIT ?1"
                ))?;
                let rows = select
                    .query_map([i64::from(limit)], RunRow::read)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .map_err(Fail::into_store)?;
        decode_all(rows)
    }
}
