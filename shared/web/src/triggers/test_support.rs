//! What the triggers' tests share: a deploy that lands between a trigger's check and its start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::response::Response;
use domain::clock::SystemClock;
use domain::model::ProjectConfig;
use domain::ports::{Clock, FlowStore, PutOutcome, StoreError, StoredFlow};
use domain::run::{Run, RunId};
use domain::runner::{RunnerConfig, Runtime};
use local::secrets::LocalSecrets;
use local::sqlite::{SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore};

use crate::auth::AdminAccess;
use crate::body::DEFAULT_BODY_LIMIT;
use crate::state::ApiState;

/// `source` as deployed flow `name`.
pub fn stored(name: &str, source: &str) -> StoredFlow {
    StoredFlow::new(name, &format!("{name}.yaml"), source, SystemClock.now())
}

/// A flow store holding `first`, where `next` is deployed right after the first lookup of the
/// current version: the deploy lands between a trigger's authentication and its start.
pub struct DeployAfterFirstLookup {
    db: SqliteDb,
    inner: SqliteFlowStore,
    first: StoredFlow,
    next: StoredFlow,
    deployed: AtomicBool,
}

impl DeployAfterFirstLookup {
    pub fn new(first: StoredFlow, next: StoredFlow) -> Arc<DeployAfterFirstLookup> {
        let db = SqliteDb::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        Arc::new(DeployAfterFirstLookup {
            inner: SqliteFlowStore::new(db.clone()),
            db,
            first,
            next,
            deployed: AtomicBool::new(false),
        })
    }

    /// A runtime on this store (every lookup asks the store, as a process that did not deploy
    /// `next` itself would once its cache expires) and the routers' state.
    pub async fn runtime(
        self: &Arc<Self>,
        project: ProjectConfig,
        secrets_dir: &str,
    ) -> (Arc<Runtime>, ApiState) {
        self.inner
            .put(&self.first)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let runtime = Arc::new(Runtime::new(
            self.clone(),
            Arc::new(SqliteRunStore::new(self.db.clone())),
            Arc::new(SqliteRunQueue::new(self.db.clone(), clock.clone(), 5)),
            clock,
            Arc::new(LocalSecrets::new(secrets_dir)),
            project,
            RunnerConfig {
                flow_cache: std::time::Duration::ZERO,
                ..RunnerConfig::default()
            },
        ));
        let state = ApiState {
            runtime: runtime.clone(),
            admin: AdminAccess::Open,
            body_limit: DEFAULT_BODY_LIMIT,
        };
        (runtime, state)
    }

    /// The run a `202 {runId}` answer started.
    pub async fn started_run(&self, runtime: &Runtime, response: Response) -> Run {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let run_id = answer["runId"]
            .as_str()
            .and_then(RunId::parse)
            .unwrap_or_else(|| panic!("no run id in {answer}"));
        runtime
            .run(run_id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("run {run_id} was not created"))
    }
}

impl DeployAfterFirstLookup {
    /// Deploys `next`, the first time only.
    async fn deploy_once(&self) -> Result<(), StoreError> {
        if !self.deployed.swap(true, Ordering::SeqCst) {
            self.inner.put(&self.next).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl FlowStore for DeployAfterFirstLookup {
    async fn put(&self, flow: &StoredFlow) -> Result<PutOutcome, StoreError> {
        self.inner.put(flow).await
    }

    async fn current(&self, name: &str) -> Result<Option<StoredFlow>, StoreError> {
        let found = self.inner.current(name).await?;
        self.deploy_once().await?;
        Ok(found)
    }

    async fn version(&self, name: &str, version: &str) -> Result<Option<StoredFlow>, StoreError> {
        self.inner.version(name, version).await
    }

    async fn list(&self) -> Result<Vec<StoredFlow>, StoreError> {
        let found = self.inner.list().await?;
        self.deploy_once().await?;
        Ok(found)
    }

    async fn remove(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.remove(name).await
    }

    async fn set_paused(
        &self,
        name: &str,
        paused_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        self.inner.set_paused(name, paused_at).await
    }

    async fn paused(
        &self,
        name: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.paused(name).await
    }
}
