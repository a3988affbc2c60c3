//! Values out of line: the large values a run holds (step outputs, loop items and results) saved
//! once in a [`BlobStore`] and referenced by hash from every checkpoint after, so the bytes a
//! checkpoint writes follow what the step added, not everything the run holds.
//!
//! The engine decides which values are new and how big they are
//! ([`RunState::take_unsaved`](crate::engine::RunState::take_unsaved)); this module stores them
//! before the checkpoint that references them is written (so a checkpoint never names a value that
//! is not stored), loads them when a run is restored, and deletes them once the run has ended (its
//! state is dropped then, whatever the flow's history mode).
//!
//! Keys are `runs/<run id>/<sha-256 of the value's JSON>`: a value is written once per run however
//! many checkpoints reference it, and a run's values are deleted by prefix.

use crate::engine::RunState;
use crate::ports::{BlobStore, StoreError};
use crate::run::RunId;

/// A held value whose JSON is longer than this is saved out of line. Small enough that a run
/// holding hundreds of step outputs keeps a state far below DynamoDB's item limit, large enough
/// that most step outputs (a status, an id, a short message) stay inline and cost no extra write.
pub const OUT_OF_LINE_BYTES: usize = 1024;

/// The key prefix of every value of `run`.
pub fn run_prefix(run: RunId) -> String {
    format!("runs/{run}/")
}

fn key(run: RunId, sha256: &str) -> String {
    format!("runs/{run}/{sha256}")
}

/// Stores the values `state` took on since the last checkpoint and that go out of line. Call it
/// right before serializing `state` into a checkpoint. Returns the bytes stored.
pub async fn save(
    blobs: &dyn BlobStore,
    run: RunId,
    state: &mut RunState,
) -> Result<u64, StoreError> {
    let mut bytes = 0u64;
    for blob in state.take_unsaved(OUT_OF_LINE_BYTES) {
        bytes = bytes.saturating_add(blob.json.len() as u64);
        blobs.put(&key(run, &blob.sha256), blob.json).await?;
    }
    Ok(bytes)
}

/// Loads the out-of-line values a restored `state` references. A value that is gone or damaged is
/// left missing: the run's next advance fails it with `corrupt_state`, naming the value.
pub async fn load(
    blobs: &dyn BlobStore,
    run: RunId,
    state: &mut RunState,
) -> Result<(), StoreError> {
    for sha256 in state.missing_blobs() {
        if let Some(json) = blobs.get(&key(run, &sha256)).await?
            && let Err(reason) = state.load_blob(&sha256, &json)
        {
            tracing::warn!(%run, %reason, "a saved value of the run is damaged");
        }
    }
    Ok(())
}

/// Deletes every value of a run that has ended. Best effort: a value left behind is never read
/// again, and the store's retention removes it (S3 lifecycle in AWS).
pub async fn forget(blobs: &dyn BlobStore, run: RunId) {
    if let Err(error) = blobs.delete_prefix(&run_prefix(run)).await {
        tracing::warn!(%run, %error, "could not delete the saved values of an ended run");
    }
}
