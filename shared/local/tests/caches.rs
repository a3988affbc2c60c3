//! The runtime's caches of the current flows age on the clock port: a deploy another process made
//! (straight into the store, as another Lambda does) is seen once `flow_cache` has passed on the
//! clock, and not before. No test here sleeps.
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::clock::ManualClock;
use domain::flowfile;
use domain::model::ProjectConfig;
use domain::ports::{Clock, FlowStore, StoredFlow};
use domain::runner::{RunnerConfig, Runtime};
use local::secrets::LocalSecrets;
use local::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};

const FLOW_CACHE: Duration = Duration::from_secs(5);

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().expect("time")
}

/// Stores `source` as the current version of `name`, as a deploy from another process would:
/// behind the runtime's back, so nothing is invalidated.
async fn deploy(flows: &SqliteFlowStore, name: &str, source: &str) -> String {
    let version = flowfile::version_of(source);
    flows
        .put(&StoredFlow {
            name: name.into(),
            version: version.clone(),
            source: source.to_owned(),
            path: format!("{name}.yaml"),
            deployed_at: t0(),
        })
        .await
        .expect("deploy");
    version
}

/// A runtime on SQLite whose clock is `clock`, caching current flows for [`FLOW_CACHE`], and its
/// flow store.
fn runtime(clock: &ManualClock) -> (Runtime, Arc<SqliteFlowStore>) {
    let db = SqliteDb::open_in_memory().expect("database");
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let flows = Arc::new(SqliteFlowStore::new(db.clone()));
    let runtime = Runtime::new(
        flows.clone(),
        Arc::new(SqliteRunStore::new(db.clone())),
        Arc::new(SqliteRunQueue::new(db, clock.clone(), 5)),
        clock,
        Arc::new(LocalSecrets::new(".")),
        ProjectConfig::default(),
        RunnerConfig {
            flow_cache: FLOW_CACHE,
            ..RunnerConfig::default()
        },
    );
    (runtime, flows)
}

fn greeting(text: &str) -> String {
    format!(
        "name: greet\nsteps:\n  - {{ id: say, card: text.compose, with: {{ text: {text} }} }}\n"
    )
}

#[tokio::test]
async fn a_current_flow_is_served_from_memory_until_the_clock_passes_the_flow_cache() {
    let clock = ManualClock::new(t0());
    let (runtime, flows) = runtime(&clock);
    let first = deploy(&flows, "greet", &greeting("one")).await;
    let current = || async {
        runtime
            .current_flow("greet")
            .await
            .expect("flow")
            .flow
            .version
            .clone()
    };
    assert_eq!(current().await, first);

    let second = deploy(&flows, "greet", &greeting("two")).await;
    assert_eq!(current().await, first, "served from memory");
    clock.advance(FLOW_CACHE - Duration::from_millis(1));
    assert_eq!(current().await, first, "still within the flow cache");
    clock.advance(Duration::from_millis(1));
    assert_eq!(current().await, second, "asked the store again");
}

#[tokio::test]
async fn the_trigger_index_is_rebuilt_once_the_clock_passes_the_flow_cache() {
    let clock = ManualClock::new(t0());
    let (runtime, flows) = runtime(&clock);
    let listeners = || async {
        runtime
            .trigger_index()
            .await
            .expect("index")
            .events
            .get("user.lifecycle.create")
            .map(|subscribers| {
                subscribers
                    .iter()
                    .map(|s| s.flow.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(listeners().await.is_empty());

    deploy(
        &flows,
        "welcome",
        "name: welcome\ntrigger:\n  event:\n    okta: [user.lifecycle.create]\nsteps:\n  - { id: say, card: text.compose, with: { text: hi } }\n",
    )
    .await;
    clock.advance(FLOW_CACHE - Duration::from_millis(1));
    assert!(listeners().await.is_empty(), "the index is still fresh");
    clock.advance(Duration::from_millis(1));
    assert_eq!(listeners().await, ["welcome"]);
}

#[tokio::test]
async fn setting_the_wall_clock_back_does_not_keep_a_stale_flow() {
    let clock = ManualClock::new(t0());
    let (runtime, flows) = runtime(&clock);
    deploy(&flows, "greet", &greeting("one")).await;
    runtime.current_flow("greet").await.expect("flow");
    let second = deploy(&flows, "greet", &greeting("two")).await;
    // A wall-clock correction back an hour, then the cache's lifetime: the age is measured on the
    // monotonic reading, which the correction did not move back.
    clock.set(t0() - chrono::Duration::hours(1));
    clock.advance(FLOW_CACHE);
    let current = runtime.current_flow("greet").await.expect("flow");
    assert_eq!(current.flow.version, second);
}
