//! An in-memory schedule table, for `idflow serve` runs that rebuild schedules from the flow files at
//! start-up and for tests. [`crate::sqlite::SqliteSchedules`] is the durable variant.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use domain::ports::{ScheduleSpec, Schedules, StoreError};

/// Schedules kept in memory, listed by flow name.
#[derive(Debug, Default)]
pub struct LocalSchedules {
    specs: Mutex<BTreeMap<String, ScheduleSpec>>,
}

impl LocalSchedules {
    /// An empty table.
    pub fn new() -> LocalSchedules {
        LocalSchedules::default()
    }

    fn specs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ScheduleSpec>> {
        // A panic while holding the lock cannot leave the map half-updated (every operation is one
        // map call), so a poisoned lock is still safe to use.
        self.specs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Schedules for LocalSchedules {
    async fn put(&self, spec: &ScheduleSpec) -> Result<(), StoreError> {
        self.specs().insert(spec.flow.clone(), spec.clone());
        Ok(())
    }

    async fn delete(&self, flow: &str) -> Result<bool, StoreError> {
        Ok(self.specs().remove(flow).is_some())
    }

    async fn list(&self) -> Result<Vec<ScheduleSpec>, StoreError> {
        Ok(self.specs().values().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    domain::schedules_conformance!(super::LocalSchedules::new());
}
