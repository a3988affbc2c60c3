//! [`SqliteRunQueue`]: the run queue with SQS semantics (visibility timeouts, delays, receive counts,
//! a dead-letter table), timed by the [`Clock`] port so tests move time by hand.
//!
//! A receipt is `<message id>.<random ULID>`, fresh on every receive and stored with the message: the
//! id finds the row through its primary key, the random part tells this delivery from earlier ones.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::runs::{RunRow, insert_run};
use super::{Fail, SqliteDb, SqliteError, parse_json, time_text, to_json};
use domain::ports::{
    Checkpoint, ClaimedRun, Clock, Created, Delivery, QueueError, QueueMessage, RunQueue,
    StoreError,
};
use domain::run::Run;

/// Longest delay of [`RunQueue::send`] (as on SQS).
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// Most messages one receive returns (as on SQS).
pub const MAX_RECEIVE: u32 = 10;

/// The run queue in SQLite. Every handle on the same [`SqliteDb`] sees the same queue.
#[derive(Clone)]
pub struct SqliteRunQueue {
    db: SqliteDb,
    clock: Arc<dyn Clock>,
    max_receive_count: u32,
}

impl std::fmt::Debug for SqliteRunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRunQueue")
            .field("max_receive_count", &self.max_receive_count)
            .finish()
    }
}

fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn after(now: i64, duration: Duration) -> i64 {
    now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

fn check_delay(delay: Duration) -> Result<(), Fail> {
    if delay > MAX_DELAY {
        return Err(SqliteError::DelayTooLong {
            seconds: delay.as_secs(),
        }
        .into());
    }
    Ok(())
}

fn insert_message(conn: &Connection, body: &str, now: i64, delay: Duration) -> Result<(), Fail> {
    let mut insert =
        conn.prepare_cached("INSERT INTO queue (body, sent_at, visible_at) VALUES (?1, ?2, ?3)")?;
    insert.execute(params![body, now, after(now, delay)])?;
    Ok(())
}

/// Splits a receipt into the message id; anything malformed is simply not a valid receipt.
pub(crate) fn message_id(receipt: &str) -> Result<i64, Fail> {
    receipt
        .split_once('.')
        .and_then(|(id, _)| id.parse().ok())
        .ok_or(Fail::StaleReceipt)
}

/// Deletes message `id` if it is still held under `receipt`; `false` when it is not (it was received
/// again since, or deleted already).
pub(crate) fn delete_message(conn: &Connection, id: i64, receipt: &str) -> Result<bool, Fail> {
    let mut delete = conn.prepare_cached("DELETE FROM queue WHERE id = ?1 AND receipt = ?2")?;
    Ok(delete.execute(params![id, receipt])? > 0)
}

/// A delivery as the writer produces it: receipt, body, receive count (decoded outside the writer).
type Received = (String, String, u32);

impl SqliteRunQueue {
    /// A queue on `db`, timed by `clock`. A message received more than `max_receive_count` times
    /// moves to the dead-letter table instead of being delivered again.
    pub fn new(db: SqliteDb, clock: Arc<dyn Clock>, max_receive_count: u32) -> SqliteRunQueue {
        SqliteRunQueue {
            db,
            clock,
            max_receive_count,
        }
    }

    /// Creates a run and sends its message in one write: the API's fast path, one trip to the writer
    /// instead of two, and never a run without its message. A duplicate (same dedupe key) sends
    /// nothing.
    pub async fn create_and_send(
        &self,
        run: &Run,
        dedupe_key: Option<&str>,
        delay: Duration,
    ) -> Result<Created, StoreError> {
        check_delay(delay).map_err(Fail::into_store)?;
        let row = RunRow::encode(run).map_err(Fail::into_store)?;
        let body = to_json(&QueueMessage { run_id: run.id }).map_err(Fail::into_store)?;
        let dedupe_key = dedupe_key.map(str::to_owned);
        let now = millis(self.clock.now());
        let created = self
            .db
            .write(move |conn| {
                let created = insert_run(conn, &row, dedupe_key.as_deref(), None)?;
                if created == Created::New {
                    insert_message(conn, &body, now, delay)?;
                }
                Ok(created)
            })
            .await
            .map_err(Fail::into_store)?;
        // A hidden message (a sync invoke's fallback, due long after any receiver's wait) would only
        // wake the workers for an empty look, a write that competes with the invoker's own
        // checkpoints; a receiver sees it when it looks next.
        if delay.is_zero() {
            self.db.queue_changed().notify_waiters();
        }
        Ok(created)
    }
}

#[async_trait]
impl domain::ports::RunIntake for SqliteRunQueue {
    async fn enqueue(
        &self,
        run: &Run,
        dedupe_key: Option<&str>,
        delay: Duration,
    ) -> Result<Created, StoreError> {
        self.create_and_send(run, dedupe_key, delay).await
    }

    /// One write: the run inserted as it stands after its first write (leased when it goes on),
    /// and the records of its steps so far.
    async fn create_driven(
        &self,
        run: &Run,
        checkpoint: &Checkpoint,
        lease_until: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let row = RunRow::encode_checkpointed(run, checkpoint).map_err(Fail::into_store)?;
        let steps = super::runs::StepRows::encode(&checkpoint.steps).map_err(Fail::into_store)?;
        let lease = lease_until.map(|until| (checkpoint.owner.clone(), time_text(until)));
        let id = run.id.to_string();
        self.db
            .write(move |conn| {
                insert_run(conn, &row, None, lease.as_ref())?;
                steps.insert(conn, &id, 0)?;
                Ok(())
            })
            .await
            .map_err(Fail::into_store)?;
        Ok(true)
    }

    /// One write: the run inserted leased to `owner`, and its fallback message inserted hidden
    /// with a receipt of its own (as if received), which the write ending the run deletes it by.
    async fn enqueue_claimed(
        &self,
        run: &Run,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        delay: Duration,
    ) -> Result<Option<ClaimedRun>, StoreError> {
        check_delay(delay).map_err(Fail::into_store)?;
        let until = domain::run::lease_end(now, lease);
        let claimed = run.clone().running_since(now);
        let row = RunRow::encode(&claimed).map_err(Fail::into_store)?;
        let body = to_json(&QueueMessage { run_id: run.id }).map_err(Fail::into_store)?;
        let lease = (owner.to_owned(), time_text(until));
        let sent = millis(self.clock.now());
        let tag = ulid::Ulid::new();
        let receipt = self
            .db
            .write(move |conn| {
                insert_run(conn, &row, None, Some(&lease))?;
                insert_message(conn, &body, sent, delay)?;
                let id = conn.last_insert_rowid();
                let receipt = format!("{id}.{tag}");
                let mut hold =
                    conn.prepare_cached("UPDATE queue SET receipt = ?2 WHERE id = ?1")?;
                hold.execute(params![id, receipt])?;
                Ok(receipt)
            })
            .await
            .map_err(Fail::into_store)?;
        Ok(Some(ClaimedRun {
            run: claimed,
            receipt,
        }))
    }
}

impl SqliteRunQueue {
    /// One pass over visible messages; also returns when the next hidden message becomes visible.
    fn receive_now(
        conn: &Connection,
        now: i64,
        max: u32,
        visibility: Duration,
        max_receive_count: u32,
    ) -> Result<(Vec<Received>, Option<i64>), Fail> {
        let mut delivered = Vec::new();
        let mut select = conn.prepare_cached(
            "SELECT id, body, receive_count FROM queue WHERE visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2",
        )?;
        let mut deliver = conn.prepare_cached(
            "UPDATE queue SET receive_count = ?2, receipt = ?3, visible_at = ?4 WHERE id = ?1",
        )?;
        let mut bury = conn.prepare_cached(
            "INSERT INTO dead_letters (body, sent_at, receive_count, moved_at) \
             SELECT body, sent_at, receive_count, ?2 FROM queue WHERE id = ?1",
        )?;
        let mut delete = conn.prepare_cached("DELETE FROM queue WHERE id = ?1")?;
        // Messages moved to the dead-letter table free their slot, so look again until the batch is
        // full or nothing visible is left.
        loop {
            let wanted = i64::from(max) - delivered.len() as i64;
            let candidates = select
                .query_map(params![now, wanted], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            if candidates.is_empty() {
                break;
            }
            let mut buried = false;
            for (id, body, count) in candidates {
                let count = u32::try_from(count).unwrap_or(u32::MAX).saturating_add(1);
                if count > max_receive_count {
                    bury.execute(params![id, now])?;
                    delete.execute([id])?;
                    buried = true;
                } else {
                    let receipt = format!("{id}.{}", ulid::Ulid::new());
                    deliver.execute(params![id, count, receipt, after(now, visibility)])?;
                    delivered.push((receipt, body, count));
                }
            }
            if !buried || delivered.len() >= max as usize {
                break;
            }
        }
        let next_visible = if delivered.is_empty() {
            let mut next = conn.prepare_cached("SELECT MIN(visible_at) FROM queue")?;
            next.query_row([], |row| row.get::<_, Option<i64>>(0))?
        } else {
            None
        };
        Ok((delivered, next_visible))
    }
}

/// What is in the queue at one instant, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Messages a worker could receive now.
    pub ready: u64,
    /// Messages not visible yet: delayed (waits, retries) or held by a worker.
    pub hidden: u64,
    /// How long the oldest ready message has been in the queue, in milliseconds (0 when none).
    pub oldest_ready_age_ms: u64,
    /// Messages moved to the dead-letter table.
    pub dead_letters: u64,
}

impl SqliteRunQueue {
    /// Counts the queue's messages now (one read; never waits for the writer).
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let now = millis(self.clock.now());
        self.db
            .read(move |conn| {
                let mut counts = conn.prepare_cached(
                    "SELECT COALESCE(SUM(visible_at <= ?1), 0), COALESCE(SUM(visible_at > ?1), 0), \
                     MIN(CASE WHEN visible_at <= ?1 THEN sent_at END) FROM queue",
                )?;
                let (ready, hidden, oldest): (i64, i64, Option<i64>) =
                    counts.query_row([now], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                let mut dead = conn.prepare_cached("SELECT COUNT(*) FROM dead_letters")?;
                let dead_letters: i64 = dead.query_row([], |row| row.get(0))?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                Ok(QueueStats {
                    ready: count(ready),
                    hidden: count(hidden),
                    oldest_ready_age_ms: oldest.map_or(0, |sent| count(now.saturating_sub(sent))),
                    dead_letters: count(dead_letters),
                })
            })
            .await
            .map_err(Fail::into_queue)
    }
}

#[async_trait]
impl RunQueue for SqliteRunQueue {
    async fn send(&self, message: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        check_delay(delay).map_err(Fail::into_queue)?;
        let body = to_json(message).map_err(Fail::into_queue)?;
        let now = millis(self.clock.now());
        self.db
            .write(move |conn| insert_message(conn, &body, now, delay))
            .await
            .map_err(Fail::into_queue)?;
        self.db.queue_changed().notify_waiters();
        Ok(())
    }

    /// Returns at most [`MAX_RECEIVE`] messages; `max` 0 counts as 1.
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let max = max.clamp(1, MAX_RECEIVE);
        let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        let deadline = self
            .clock
            .now()
            .checked_add_signed(wait)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let max_receive_count = self.max_receive_count;
        loop {
            // Register for wake-ups before looking, so a send committed between the look and the wait
            // is not missed.
            let changed = self.db.queue_changed().notified();
            tokio::pin!(changed);
            changed.as_mut().enable();

            let now = self.clock.now();
            let now_ms = millis(now);
            let (delivered, next_visible) = self
                .db
                .write(move |conn| {
                    SqliteRunQueue::receive_now(conn, now_ms, max, visibility, max_receive_count)
                })
                .await
                .map_err(Fail::into_queue)?;
            if !delivered.is_empty() {
                return delivered
                    .into_iter()
                    .map(|(receipt, body, receive_count)| {
                        let key = format!("queue message {receipt}");
                        let message = parse_json(&key, &body).map_err(Fail::into_queue)?;
                        Ok(Delivery {
                            receipt,
                            message,
                            receive_count,
                        })
                    })
                    .collect();
            }
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wake = next_visible
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .map_or(deadline, |visible| visible.min(deadline));
            tokio::select! {
                () = &mut changed => {}
                () = self.clock.sleep_until(wake) => {}
            }
        }
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        let id = message_id(receipt).map_err(Fail::into_queue)?;
        let receipt = receipt.to_owned();
        self.db
            .write(move |conn| {
                if !delete_message(conn, id, &receipt)? {
                    return Err(Fail::StaleReceipt);
                }
                Ok(())
            })
            .await
            .map_err(Fail::into_queue)
    }

    /// Fails with [`QueueError::StaleReceipt`] unless the message is still hidden under this receipt
    /// (as SQS does once a message is visible again).
    async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<(), QueueError> {
        let id = message_id(receipt).map_err(Fail::into_queue)?;
        let receipt = receipt.to_owned();
        let now = millis(self.clock.now());
        self.db
            .write(move |conn| {
                let mut change = conn.prepare_cached(
                    "UPDATE queue SET visible_at = ?3 WHERE id = ?1 AND receipt = ?2 AND visible_at > ?4",
                )?;
                if change.execute(params![id, receipt, after(now, visibility), now])? == 0 {
                    return Err(Fail::StaleReceipt);
                }
                Ok(())
            })
            .await
            .map_err(Fail::into_queue)?;
        self.db.queue_changed().notify_waiters();
        Ok(())
    }

    async fn dead_letters(&self, max: u32) -> Result<Vec<QueueMessage>, QueueError> {
        let bodies = self
            .db
            .read(move |conn| {
                let mut select =
                    conn.prepare_cached("SELECT id, body FROM dead_letters ORDER BY id LIMIT ?1")?;
                let bodies = select
                    .query_map([i64::from(max)], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(bodies)
            })
            .await
            .map_err(Fail::into_queue)?;
        bodies
            .into_iter()
            .map(|(id, body)| {
                parse_json(&format!("dead letter {id}"), &body).map_err(Fail::into_queue)
            })
            .collect()
    }
}
