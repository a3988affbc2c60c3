//! [`HistoryValues`]: the parts of a run's history too big for a DynamoDB item (a run's input or
//! output, a step record's input, output or error detail), kept in the blob store (S3) and
//! referenced from the item by key, hash and size.
//!
//! Keys are `history/<run id>/<role>-<sha-256>`, where the role is `input`, `output` or
//! `step-<seq>-<field>`: apart from `runs/<run id>/`, which holds the values a run's engine state
//! references and is deleted as soon as the run ends, because history outlives the run (until the
//! bucket's retention). The hash makes a key name one value only, so a writer that lost a race on
//! the run item never overwrites a value the winner references.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use domain::ports::{BlobStore, StoreError};
use domain::run::RunId;

/// A value whose JSON is longer than this is kept out of the item when a blob store is at hand:
/// three such values (a step record's input, output and error detail) plus the rest of a record
/// stay well below DynamoDB's 400 KB item limit.
pub const OUT_OF_ITEM_BYTES: usize = 64 * 1024;

/// Where a value kept out of the item is, as the item records it (JSON in a string attribute).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueRef {
    /// The blob store key.
    pub key: String,
    /// Lowercase hex SHA-256 of the value's JSON, checked when it is read back.
    pub sha256: String,
    /// Length of the value's JSON in bytes.
    pub bytes: u64,
}

impl ValueRef {
    /// The reference as an item attribute's text.
    pub fn to_attribute(&self) -> String {
        // A struct of two strings and a number always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A reference read from an item attribute.
    pub fn from_attribute(text: &str) -> Result<ValueRef, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// What a history read gives for a value that is no longer in the blob store (the bucket's
/// lifecycle expired it before DynamoDB's TTL removed the item): a marker saying how big it was,
/// the same shape as the marker of an oversized record without a blob store.
pub fn gone_marker(reference: &ValueRef) -> Value {
    json!({ "idflow_truncated": true, "bytes": reference.bytes, "expired": true })
}

/// A run's history values in a [`BlobStore`].
#[derive(Clone)]
pub struct HistoryValues {
    blobs: Arc<dyn BlobStore>,
}

/// The key prefix of every history value of `run`.
pub fn history_prefix(run: RunId) -> String {
    format!("history/{run}/")
}

impl HistoryValues {
    /// History values in `blobs`.
    pub fn new(blobs: Arc<dyn BlobStore>) -> Self {
        HistoryValues { blobs }
    }

    /// Stores `value` as `role` of `run` when its JSON is longer than [`OUT_OF_ITEM_BYTES`];
    /// `None` (nothing written) when it is small enough to stay in the item.
    pub async fn offload(
        &self,
        run: RunId,
        role: &str,
        value: &Value,
    ) -> Result<Option<ValueRef>, StoreError> {
        // Most values are small: size them without writing them out.
        if domain::budget::json_size(value, OUT_OF_ITEM_BYTES as u64 + 1)
            <= OUT_OF_ITEM_BYTES as u64
        {
            return Ok(None);
        }
        let json = serde_json::to_vec(value).map_err(|e| StoreError::Corrupt {
            key: format!("RUN#{run}"),
            source: Box::new(e),
        })?;
        let sha256 = hex::encode(sha2::Sha256::digest(&json));
        let reference = ValueRef {
            key: format!("{}{role}-{sha256}", history_prefix(run)),
            sha256,
            bytes: json.len() as u64,
        };
        self.blobs.put(&reference.key, json).await?;
        Ok(Some(reference))
    }

    /// The value `reference` names. `Ok(None)` when it is gone; bytes that do not match the
    /// reference's hash, or are not JSON, are a corrupt record.
    pub async fn fetch(&self, reference: &ValueRef) -> Result<Option<Value>, StoreError> {
        let Some(json) = self.blobs.get(&reference.key).await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            key: reference.key.clone(),
            source: reason.into(),
        };
        if hex::encode(sha2::Sha256::digest(&json)) != reference.sha256 {
            return Err(corrupt("the value does not match its hash".to_owned()));
        }
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| corrupt(format!("the value is not JSON: {e}")))
    }

    /// Deletes the value under `key` (a run's input, once `history: none` drops it).
    pub async fn forget_key(&self, key: &str) -> Result<u64, StoreError> {
        // A key is a prefix of itself only: no other key of the run starts with a whole key.
        self.blobs.delete_prefix(key).await
    }
}
