//! Helpers shared by the integration tests: an in-process `idflow serve` on a temporary directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domain::ports::Clock;
use domain::run::{Run, RunId};
use idflow::serve::{ServeOptions, Server};
use serde_json::Value;

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("idflow-test-{label}-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `idflow serve` running in this process on 127.0.0.1:0.
pub struct TestServer {
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: TempDir,
}

impl TestServer {
    /// Writes `files` (name, content) into a fresh flows directory and starts the server.
    pub async fn start(files: &[(&str, &str)]) -> TestServer {
        Self::start_with_clock(files, idflow::serve::system_clock()).await
    }

    pub async fn start_with_clock(files: &[(&str, &str)], clock: Arc<dyn Clock>) -> TestServer {
        Self::start_with(files, clock, |_| {}).await
    }

    /// Like [`TestServer::start`], with `configure` changing the options first (limits, timeouts).
    pub async fn start_with_options(
        files: &[(&str, &str)],
        configure: impl FnOnce(&mut ServeOptions),
    ) -> TestServer {
        Self::start_with(files, idflow::serve::system_clock(), configure).await
    }

    async fn start_with(
        files: &[(&str, &str)],
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut ServeOptions),
    ) -> TestServer {
        let dir = TempDir::new("serve");
        let flows = dir.0.join("flows");
        std::fs::create_dir_all(&flows).expect("flows dir");
        for (name, content) in files {
            // Names may hold a folder, such as `tables/settings.yaml`.
            let path = flows.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("flows subdirectory");
            }
            std::fs::write(path, content).expect("write flow");
        }
        let mut options = ServeOptions {
            flows_dir: flows,
            addr: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.0.join("data"),
            body_limit: 64 * 1024,
            workers: 8,
            hot_reload: false,
            ..ServeOptions::default()
        };
        configure(&mut options);
        let server = Server::start(options, clock).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        TestServer {
            server: Some(server),
            base,
            http: reqwest::Client::new(),
            dir,
        }
    }

    pub fn runtime(&self) -> &domain::runner::Runtime {
        &self.server.as_ref().expect("running").runtime
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits (event-driven) until a run ends and returns it.
    pub async fn wait_run(&self, id: &str) -> Run {
        let runtime = self.runtime();
        let id = RunId::parse(id).expect("run id");
        let mut ended = runtime.subscribe();
        let timeout = Duration::from_secs(20);
        let wait = runtime.wait_for_end(&mut ended, id, timeout);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(Some(run))) => run,
            Ok(Ok(None)) | Err(_) => panic!("run {id} did not end within {timeout:?}"),
            Ok(Err(e)) => panic!("run {id} did not end: {e}"),
        }
    }

    /// `GET /api/runs/{id}` as JSON.
    pub async fn run_json(&self, id: &str) -> Value {
        self.http
            .get(self.url(&format!("/api/runs/{id}")))
            .send()
            .await
            .expect("get run")
            .json()
            .await
            .expect("json")
    }

    /// Runs a `table.*` card against the server's own table store, with the tables it loaded, as a
    /// flow step would (to seed rows before a run and read them back after).
    pub async fn table(&self, card: &str, input: Value) -> Result<Value, domain::cards::CardError> {
        let runtime = self.runtime();
        let executor = runtime.executor("table").expect("the table executor");
        let call = domain::cards::CardCall {
            card: card.to_owned(),
            input,
            timeout: Duration::from_secs(10),
            run_id: RunId::new_at(chrono::Utc::now()),
            step: "test".to_owned(),
            attempt: 1,
            project: runtime.project(),
        };
        executor.execute(&call).await
    }

    /// Number of runs in the store.
    pub async fn run_count(&self) -> usize {
        let page: Value = self
            .http
            .get(self.url("/api/runs?limit=500"))
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        page["runs"].as_array().map_or(0, Vec::len)
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}
