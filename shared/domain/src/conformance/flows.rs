//! Checks for [`FlowStore`] adapters.

use super::at;
use crate::ports::{FlowStore, PutOutcome, StoredFlow};

fn flow(name: &str, version: &str, deployed_second: i64) -> StoredFlow {
    StoredFlow {
        name: name.to_owned(),
        version: version.to_owned(),
        source: format!("name: {name}\n# version {version}\ntrigger: manual\nsteps: []\n"),
        path: format!("flows/{name}.yaml"),
        deployed_at: at(deployed_second),
    }
}

async fn put(store: &dyn FlowStore, flow: &StoredFlow) -> PutOutcome {
    store.put(flow).await.expect("put succeeds")
}

/// The first put adds, a new version updates, the same version again changes nothing.
pub async fn flow_store_reports_added_updated_unchanged(store: &dyn FlowStore) {
    let v1 = flow("sync", "v1", 0);
    let v2 = flow("sync", "v2", 10);
    assert_eq!(put(store, &v1).await, PutOutcome::Added);
    assert_eq!(
        store.current("sync").await.expect("current"),
        Some(v1.clone())
    );
    assert_eq!(put(store, &v1).await, PutOutcome::Unchanged);
    assert_eq!(put(store, &v2).await, PutOutcome::Updated);
    assert_eq!(
        store.current("sync").await.expect("current"),
        Some(v2.clone())
    );
    let redeployed = flow("sync", "v2", 20);
    assert_eq!(put(store, &redeployed).await, PutOutcome::Unchanged);
    assert_eq!(
        store.current("sync").await.expect("current"),
        Some(v2),
        "an unchanged put writes nothing"
    );
    assert_eq!(store.current("unknown").await.expect("current"), None);
}

/// Replaced versions stay readable (runs in flight use them).
pub async fn flow_store_keeps_replaced_versions(store: &dyn FlowStore) {
    let v1 = flow("sync", "v1", 0);
    let v2 = flow("sync", "v2", 10);
    put(store, &v1).await;
    put(store, &v2).await;
    assert_eq!(
        store.version("sync", "v1").await.expect("version"),
        Some(v1.clone())
    );
    assert_eq!(
        store.version("sync", "v2").await.expect("version"),
        Some(v2)
    );
    assert_eq!(store.version("sync", "v3").await.expect("version"), None);
    assert_eq!(
        store.version("other", "v1").await.expect("version"),
        None,
        "versions belong to their flow"
    );
    assert_eq!(
        put(store, &v1).await,
        PutOutcome::Updated,
        "rolling back is an update"
    );
    assert_eq!(store.current("sync").await.expect("current"), Some(v1));
}

/// Removing a flow takes it out of the current set; its versions stay; putting it again adds it.
pub async fn flow_store_remove_keeps_versions(store: &dyn FlowStore) {
    let v1 = flow("offboard", "v1", 0);
    put(store, &v1).await;
    assert!(
        store.remove("offboard").await.expect("remove"),
        "it was there"
    );
    assert!(
        !store.remove("offboard").await.expect("remove"),
        "it is gone"
    );
    assert!(!store.remove("never-deployed").await.expect("remove"));
    assert_eq!(store.current("offboard").await.expect("current"), None);
    assert_eq!(store.list().await.expect("list"), Vec::new());
    assert_eq!(
        store.version("offboard", "v1").await.expect("version"),
        Some(v1.clone())
    );
    assert_eq!(
        put(store, &v1).await,
        PutOutcome::Added,
        "a removed flow comes back as added"
    );
    assert_eq!(store.current("offboard").await.expect("current"), Some(v1));
}

/// `list` returns the current version of every flow that is deployed, by name.
pub async fn flow_store_lists_current_versions_by_name(store: &dyn FlowStore) {
    let zeta = flow("zeta", "z1", 0);
    let alpha1 = flow("alpha", "a1", 1);
    let alpha2 = flow("alpha", "a2", 2);
    let mid = flow("mid", "m1", 3);
    for flow in [&zeta, &alpha1, &alpha2, &mid] {
        put(store, flow).await;
    }
    store.remove("mid").await.expect("remove");
    assert_eq!(store.list().await.expect("list"), vec![alpha2, zeta]);
}

/// A pause belongs to the flow's name: it survives new versions and removal, keeps its first time
/// when repeated, and a resume clears it (twice is harmless). Other flows are untouched.
pub async fn flow_store_pauses_and_resumes_by_name(store: &dyn FlowStore) {
    put(store, &flow("offboard", "v1", 0)).await;
    put(store, &flow("onboard", "v1", 0)).await;
    assert_eq!(store.paused("offboard").await.expect("paused"), None);
    store
        .set_paused("offboard", Some(at(10)))
        .await
        .expect("pause");
    store
        .set_paused("offboard", Some(at(20)))
        .await
        .expect("pause again");
    assert_eq!(
        store.paused("offboard").await.expect("paused"),
        Some(at(10)),
        "a second pause keeps the first time"
    );
    assert_eq!(store.paused("onboard").await.expect("paused"), None);
    put(store, &flow("offboard", "v2", 30)).await;
    store.remove("offboard").await.expect("remove");
    put(store, &flow("offboard", "v3", 40)).await;
    assert_eq!(
        store.paused("offboard").await.expect("paused"),
        Some(at(10)),
        "deploys and removal keep the pause"
    );
    store.set_paused("offboard", None).await.expect("resume");
    store
        .set_paused("offboard", None)
        .await
        .expect("resume again");
    assert_eq!(store.paused("offboard").await.expect("paused"), None);
}
