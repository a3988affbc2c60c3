//! [`SqliteBlobStore`]: values kept out of line (see `domain::values`), in the same SQLite file as
//! the runs that reference them.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{Fail, SqliteDb};
use domain::ports::{BlobStore, StoreError};

/// Blobs in SQLite, one row per key.
#[derive(Debug, Clone)]
pub struct SqliteBlobStore {
    db: SqliteDb,
}

impl SqliteBlobStore {
    /// A blob table on `db`.
    pub fn new(db: SqliteDb) -> SqliteBlobStore {
        SqliteBlobStore { db }
    }
}

/// The first text after every key that starts with `prefix`: keys are UTF-8, compared bytewise, and
/// no UTF-8 text continues with a character above U+10FFFF.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

#[async_trait]
impl BlobStore for SqliteBlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.db.blob_put();
        self.db
            .write(move |conn| {
                let mut put = conn.prepare_cached(
                    "INSERT INTO blobs (key, data) VALUES (?1, ?2) \
                     ON CONFLICT (key) DO UPDATE SET data = ?2",
                )?;
                put.execute(params![key, bytes])?;
                Ok(())
            })
            .await
            .map_err(Fail::into_store)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_owned();
        self.db
            .read(move |conn| {
                let mut select = conn.prepare_cached("SELECT data FROM blobs WHERE key = ?1")?;
                Ok(select
                    .query_row([&key], |row| row.get::<_, Vec<u8>>(0))
                    .optional()?)
            })
            .await
            .map_err(Fail::into_store)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        if !self.db.blobs_maybe() {
            return Ok(0);
        }
        let (start, end) = (prefix.to_owned(), prefix_end(prefix));
        self.db
            .write(move |conn| {
                let mut delete =
                    conn.prepare_cached("DELETE FROM blobs WHERE key >= ?1 AND key < ?2")?;
                Ok(delete.execute(params![start, end])? as u64)
            })
            .await
            .map_err(Fail::into_store)
    }
}
