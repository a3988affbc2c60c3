//! Checks for [`BlobStore`] adapters.

use crate::ports::BlobStore;

async fn get(store: &dyn BlobStore, key: &str) -> Option<Vec<u8>> {
    store.get(key).await.expect("get succeeds")
}

/// Bytes read back as written, a missing key is `None`, and writing a key again keeps one value.
pub async fn blob_store_round_trips_bytes(store: &dyn BlobStore) {
    let bytes = b"{\"users\":[1,2,3]}\n\x00\xff".to_vec();
    store
        .put("runs/01A/abc", bytes.clone())
        .await
        .expect("put succeeds");
    assert_eq!(
        get(store, "runs/01A/abc").await,
        Some(bytes.clone()),
        "bytes read back"
    );
    assert_eq!(get(store, "runs/01A/other").await, None, "a missing key");
    store
        .put("runs/01A/abc", bytes.clone())
        .await
        .expect("a second put of the same value succeeds");
    assert_eq!(get(store, "runs/01A/abc").await, Some(bytes));
    store
        .put("runs/01A/empty", Vec::new())
        .await
        .expect("an empty value is stored");
    assert_eq!(get(store, "runs/01A/empty").await, Some(Vec::new()));
}

/// A value the size of a directory (12 MiB) is stored whole.
pub async fn blob_store_keeps_directory_sized_values(store: &dyn BlobStore) {
    let bytes: Vec<u8> = (0..12 * 1024 * 1024)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    store
        .put("runs/01B/big", bytes.clone())
        .await
        .expect("a 12 MiB put succeeds");
    let read = get(store, "runs/01B/big")
        .await
        .expect("the value is there");
    assert_eq!(read.len(), bytes.len(), "every byte is kept");
    assert!(read == bytes, "the bytes read back are the ones written");
}

/// `delete_prefix` deletes exactly the keys under the prefix, and says how many.
pub async fn blob_store_deletes_by_prefix(store: &dyn BlobStore) {
    for key in [
        "runs/01C/a",
        "runs/01C/b",
        "runs/01C/c",
        "runs/01CD/a",
        "runs/01D/a",
    ] {
        store
            .put(key, key.as_bytes().to_vec())
            .await
            .expect("put succeeds");
    }
    let deleted = store
        .delete_prefix("runs/01C/")
        .await
        .expect("delete succeeds");
    assert_eq!(deleted, 3, "the three keys under the prefix");
    for key in ["runs/01C/a", "runs/01C/b", "runs/01C/c"] {
        assert_eq!(get(store, key).await, None, "{key} is deleted");
    }
    for key in ["runs/01CD/a", "runs/01D/a"] {
        assert_eq!(
            get(store, key).await,
            Some(key.as_bytes().to_vec()),
            "{key} is outside the prefix and kept"
        );
    }
    assert_eq!(
        store
            .delete_prefix("runs/01C/")
            .await
            .expect("delete succeeds"),
        0,
        "nothing left to delete"
    );
}
