//! [`SqliteSchedules`]: schedules that survive a restart of `idflow serve`.

use async_trait::async_trait;
use rusqlite::params;

use super::{Fail, SqliteDb};
use domain::ports::{ScheduleSpec, Schedules, StoreError};

/// Schedules in SQLite, listed by flow name.
#[derive(Debug, Clone)]
pub struct SqliteSchedules {
    db: SqliteDb,
}

impl SqliteSchedules {
    /// A schedule table on `db`.
    pub fn new(db: SqliteDb) -> SqliteSchedules {
        SqliteSchedules { db }
    }
}

#[async_trait]
impl Schedules for SqliteSchedules {
    async fn put(&self, spec: &ScheduleSpec) -> Result<(), StoreError> {
        let spec = spec.clone();
        self.db
            .write(move |conn| {
                let mut put = conn.prepare_cached(
                    "INSERT INTO schedules (flow, expression, timezone) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (flow) DO UPDATE SET expression = ?2, timezone = ?3",
                )?;
                put.execute(params![spec.flow, spec.expression, spec.timezone])?;
                Ok(())
            })
            .await
            .map_err(Fail::into_store)
    }

    async fn delete(&self, flow: &str) -> Result<bool, StoreError> {
        let flow = flow.to_owned();
        self.db
            .write(move |conn| {
                let mut delete = conn.prepare_cached("DELETE FROM schedules WHERE flow = ?1")?;
                Ok(delete.execute([&flow])? > 0)
            })
            .await
            .map_err(Fail::into_store)
    }

    async fn list(&self) -> Result<Vec<ScheduleSpec>, StoreError> {
        self.db
            .read(|conn| {
                let mut select = conn.prepare_cached(
                    "SELECT flow, expression, timezone FROM schedules ORDER BY flow",
                )?;
                let specs = select
                    .query_map([], |row| {
                        Ok(ScheduleSpec {
                            flow: row.get(0)?,
                            expression: row.get(1)?,
                            timezone: row.get(2)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(specs)
            })
            .await
            .map_err(Fail::into_store)
    }
}
