//! Helpers shared by the integration tests: an in-process `idflow serve` on a temporary directory
//! ([`TestServer`], with its JSON requests and run starts), the flows several test files deploy
//! ([`flows`]) and the big run's wiring ([`bigrun`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod bigrun;
pub mod flows;

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

    /// `GET path` on the server. Panics when the server cannot be reached: the test is over.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `GET path` on the server, its body as JSON. Panics when the body is not JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path)
            .await
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: the body is not JSON: {e}"))
    }

    /// `POST path` on the server with `body` as JSON. Panics when the server cannot be reached.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// `POST path` on the server with `body` as JSON, the answer's body as JSON. Panics when the
    /// answer is not JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Value {
        self.post(path, body)
            .await
            .json()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: the answer is not JSON: {e}"))
    }

    /// Starts a run of `flow` with `input` (`POST /api/flows/{flow}/runs`) and returns its id.
    /// Panics when the server does not start one.
    pub async fn start_run(&self, flow: &str, input: &Value) -> String {
        let started = self
            .post_json(&format!("/api/flows/{flow}/runs"), input)
            .await;
        match started["runId"].as_str() {
            Some(id) => id.to_owned(),
            None => panic!("no run of `{flow}` started: {started}"),
        }
    }

    /// `GET /api/runs/{id}` as JSON.
    pub async fn run_json(&self, id: &str) -> Value {
        self.get_json(&format!("/api/runs/{id}")).await
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
        let page = self.get_json("/api/runs?limit=500").await;
        page["runs"].as_array().map_or(0, Vec::len)
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}
