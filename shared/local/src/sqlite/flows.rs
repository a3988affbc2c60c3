//! [`SqliteFlowStore`]: every deployed version in `flow_versions`, the current one per flow in
//! `flows_current`, paused flows in `flow_pauses`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Fail, SqliteDb, parse_time, time_text};
use domain::ports::{FlowStore, PutOutcome, StoreError, StoredFlow};

/// Flows in SQLite. See [`FlowStore`] for the contract.
#[derive(Debug, Clone)]
pub struct SqliteFlowStore {
    db: SqliteDb,
}

impl SqliteFlowStore {
    /// A flow store on `db`.
    pub fn new(db: SqliteDb) -> SqliteFlowStore {
        SqliteFlowStore { db }
    }
}

/// How long a pause read from the file is trusted. A pause or resume through this database is seen
/// at once (it clears the entry); one written by another process on the same file within this time.
const PAUSE_TTL: Duration = Duration::from_secs(1);

/// Most flow names the pause cache holds.
const MAX_CACHED_PAUSES: usize = 4096;

/// Pauses recently read, by flow name, so an API request does not read the file to learn that its
/// flow is not paused. Lives in [`SqliteDb`] so that every flow store on one database shares it.
#[derive(Debug, Default)]
pub(crate) struct PauseCache {
    /// Bumped by every pause or resume: a read that began before one must not fill the cache.
    generation: u64,
    entries: HashMap<String, (Option<DateTime<Utc>>, Instant)>,
}

type FlowRow = (String, String, String, String, String);

fn read_row(row: &Row<'_>) -> Result<FlowRow, rusqlite::Error> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn decode((name, version, source, path, deployed_at): FlowRow) -> Result<StoredFlow, StoreError> {
    let deployed_at = parse_time(&format!("flow {name} version {version}"), &deployed_at)
        .map_err(Fail::into_store)?;
    Ok(StoredFlow {
        name,
        version,
        source,
        path,
        deployed_at,
    })
}

fn select_version(conn: &Connection, name: &str, version: &str) -> Result<Option<FlowRow>, Fail> {
    let mut select = conn.prepare_cached(
        "SELECT name, version, source, path, deployed_at FROM flow_versions WHERE name = ?1 AND version = ?2",
    )?;
    Ok(select.query_row([name, version], read_row).optional()?)
}

#[async_trait]
impl FlowStore for SqliteFlowStore {
    async fn put(&self, flow: &StoredFlow) -> Result<PutOutcome, StoreError> {
        let flow = flow.clone();
        let deployed_at = time_text(flow.deployed_at);
        self.db
            .write(move |conn| {
                let mut current = conn.prepare_cached("SELECT version FROM flows_current WHERE name = ?1")?;
                let current: Option<String> = current.query_row([&flow.name], |row| row.get(0)).optional()?;
                let outcome = match current {
                    Some(version) if version == flow.version => return Ok(PutOutcome::Unchanged),
                    Some(_) => PutOutcome::Updated,
                    None => PutOutcome::Added,
                };
                // A version deployed before (then replaced or removed) is the same text, since the
                // version is its hash; its path and deployment time become the latest ones.
                let mut version = conn.prepare_cached(
                    "INSERT INTO flow_versions (name, version, source, path, deployed_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (name, version) DO UPDATE SET source = ?3, path = ?4, deployed_at = ?5",
                )?;
                version.execute(params![flow.name, flow.version, flow.source, flow.path, deployed_at])?;
                let mut make_current = conn.prepare_cached(
                    "INSERT INTO flows_current (name, version) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET version = ?2",
                )?;
                make_current.execute([&flow.name, &flow.version])?;
                Ok(outcome)
            })
            .await
            .map_err(Fail::into_store)
    }

    async fn current(&self, name: &str) -> Result<Option<StoredFlow>, StoreError> {
        let name = name.to_owned();
        let row = self
            .db
            .read(move |conn| {
                let mut select = conn.prepare_cached(
                    "SELECT v.name, v.version, v.source, v.path, v.deployed_at \
                     FROM flows_current c JOIN flow_versions v ON v.name = c.name AND v.version = c.version \
                     WHERE c.name = ?1",
                )?;
                Ok(select.query_row([&name], read_row).optional()?)
            })
            .await
            .map_err(Fail::into_store)?;
        row.map(decode).transpose()
    }

    async fn version(&self, name: &str, version: &str) -> Result<Option<StoredFlow>, StoreError> {
        let (name, version) = (name.to_owned(), version.to_owned());
        let row = self
            .db
            .read(move |conn| select_version(conn, &name, &version))
            .await
            .map_err(Fail::into_store)?;
        row.map(decode).transpose()
    }

    async fn list(&self) -> Result<Vec<StoredFlow>, StoreError> {
        let rows = self
            .db
            .read(|conn| {
                let mut select = conn.prepare_cached(
                    "SELECT v.name, v.version, v.source, v.path, v.deployed_at \
                     FROM flows_current c JOIN flow_versions v ON v.name = c.name AND v.version = c.version \
                     ORDER BY c.name",
                )?;
                let rows = select.query_map([], read_row)?.collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
            .map_err(Fail::into_store)?;
        rows.into_iter().map(decode).collect()
    }

    async fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.db
            .write(move |conn| {
                let mut delete =
                    conn.prepare_cached("DELETE FROM flows_current WHERE name = ?1")?;
                Ok(delete.execute([&name])? > 0)
            })
            .await
            .map_err(Fail::into_store)
    }

    async fn set_paused(
        &self,
        name: &str,
        paused_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let key = name.to_owned();
        let paused_at = paused_at.map(time_text);
        let written = self
            .db
            .write(move |conn| {
                match &paused_at {
                    Some(at) => {
                        let mut insert = conn.prepare_cached(
                            "INSERT INTO flow_pauses (name, paused_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                        )?;
                        insert.execute([&key, at])?;
                    }
                    None => {
                        let mut delete =
                            conn.prepare_cached("DELETE FROM flow_pauses WHERE name = ?1")?;
                        delete.execute([&key])?;
                    }
                }
                Ok(())
            })
            .await
            .map_err(Fail::into_store);
        // Whether or not the write committed, the next read goes to the file.
        let mut pauses = self.db.pauses();
        pauses.generation = pauses.generation.wrapping_add(1);
        pauses.entries.remove(name);
        written
    }

    async fn paused(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let generation = {
            let pauses = self.db.pauses();
            if let Some((paused, read_at)) = pauses.entries.get(name)
                && read_at.elapsed() < PAUSE_TTL
            {
                return Ok(*paused);
            }
            pauses.generation
        };
        let read_at = Instant::now();
        let key = name.to_owned();
        let text: Option<String> = self
            .db
            .read(move |conn| {
                let mut select =
                    conn.prepare_cached("SELECT paused_at FROM flow_pauses WHERE name = ?1")?;
                Ok(select.query_row([&key], |row| row.get(0)).optional()?)
            })
            .await
            .map_err(Fail::into_store)?;
        let paused = text
            .map(|t| parse_time(&format!("pause of flow {name}"), &t).map_err(Fail::into_store))
            .transpose()?;
        let mut pauses = self.db.pauses();
        if pauses.generation == generation {
            // Names are those of deployed flows (triggers look the flow up first); the bound only
            // keeps a stream of odd lookups from growing the map without end.
            if pauses.entries.len() >= MAX_CACHED_PAUSES {
                pauses.entries.clear();
            }
            pauses.entries.insert(name.to_owned(), (paused, read_at));
        }
        Ok(paused)
    }
}
