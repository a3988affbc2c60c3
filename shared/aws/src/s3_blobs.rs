//! [`S3BlobStore`]: values runs hold out of line (see `domain::values`) as objects of one S3
//! bucket, under `runs/<run id>/<sha-256>`. The bucket is encrypted and expires objects after the
//! retention (template.yaml); the runner deletes a run's objects when the run ends.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::store_error;
use domain::ports::{BlobStore, StoreError};

/// S3's limit of keys per `DeleteObjects` request.
const DELETE_BATCH: usize = 1000;

/// A [`BlobStore`] on one S3 bucket.
#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
}

impl S3BlobStore {
    /// A store on `bucket`.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3BlobStore {
            client,
            bucket: bucket.into(),
        }
    }

    /// Creates the bucket (for tests and development against an emulator; template.yaml creates
    /// it in AWS, encrypted and with its lifecycle).
    pub async fn create_bucket(client: &Client, bucket: &str) -> Result<(), StoreError> {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(error))
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(error) => return Err(store_error(error)),
        };
        let body = output
            .body
            .collect()
            .await
            // The connection broke while the body was read: worth another try.
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(store_error)?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|object| object.key().map(str::to_owned)),
            );
        }
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|key| {
                    ObjectIdentifier::builder()
                        .key(key)
                        .build()
                        .map_err(backend)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(backend)?;
            let output = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(store_error)?;
            if let Some(failed) = output.errors().first() {
                return Err(StoreError::Unavailable(
                    format!(
                        "S3 did not delete {}: {}",
                        failed.key().unwrap_or("?"),
                        failed.message().unwrap_or("no reason given")
                    )
                    .into(),
                ));
            }
        }
        Ok(keys.len() as u64)
    }
}
