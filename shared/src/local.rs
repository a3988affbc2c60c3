//! `idflow serve`: the whole product in one process on the embedded store.
//!
//! [`Server::start`] opens the SQLite store, deploys the flows of a directory into it, and runs the
//! HTTP API, the queue worker, the local scheduler and the hot-reload watcher until shutdown. The
//! binary only parses flags and calls this; integration tests start it in-process with a manual clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::adapters::clock::SystemClock;
use crate::adapters::secrets::LocalSecrets;
use crate::adapters::sqlite::{
    SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore, SqliteTableStore,
};
use crate::api::{self, ApiState};
use crate::cards::table::TableExecutor;
use crate::diag::Diagnostic;
use crate::flowfile::{self, LoadedProject};
use crate::model::Trigger;
use crate::ports::{Clock, FlowStore, PutOutcome, Secrets, StoreError, StoredFlow};
use crate::runner::{RunnerConfig, Runtime, Worker};
use crate::schedule::Schedule;

/// Errors starting the local server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "refusing to listen on {addr}: no admin token is configured, so the admin API would be open to the network; set `admin: {{ token: \"env:IDFLOW_ADMIN_TOKEN\" }}` in idflow.yaml or listen on 127.0.0.1"
    )]
    OpenAdmin { addr: SocketAddr },
    #[error("the admin token cannot be read")]
    AdminToken(#[source] crate::ports::SecretError),
    #[error("refusing to listen on {addr}: the admin token has {length} characters; one the network can reach needs at least 32 characters (generate one with `openssl rand -hex 32`), or listen on 127.0.0.1")]
    WeakAdminToken { addr: SocketAddr, length: usize },
    #[error("another `idflow serve` is using the data directory {path}")]
    Locked { path: PathBuf },
    #[error("server failed")]
    Serve(#[source] std::io::Error),
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// Options of `idflow serve`.
///
/// [`ServeOptions::default`] holds the defaults of the command line; tests and embedders override
/// the fields they care about with `..ServeOptions::default()`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub flows_dir: PathBuf,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Largest accepted request body, in bytes; a larger one is answered 413.
    pub body_limit: usize,
    /// Runs processed at once by the worker.
    pub workers: usize,
    /// Poll the flows directory for changes.
    pub hot_reload: bool,
    /// How long a client has to send a whole request head (request line and headers), counted from
    /// the first byte it is awaited, so it also bounds how long an idle keep-alive connection stays
    /// open. A connection that misses it is closed without an answer.
    pub header_read_timeout: Duration,
    /// How long a client has to send a whole request body, counted from the end of its head. A
    /// total, not an idle timeout, so a body trickled a byte at a time cannot hold a connection; a
    /// request that misses it is answered 408.
    pub body_read_timeout: Duration,
    /// HTTP connections open at once. Beyond it the server stops accepting: new connections wait in
    /// the kernel's listen backlog until one closes.
    pub max_connections: usize,
    /// Largest accepted request head (request line and headers), in bytes; a larger one is
    /// answered 431.
    pub max_header_bytes: usize,
}

/// Default of [`ServeOptions::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ServeOptions::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServeOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default of [`ServeOptions::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            flows_dir: PathBuf::from("./flows"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./.idflow"),
            body_limit: api::DEFAULT_BODY_LIMIT,
            workers: 16,
            hot_reload: true,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// What a deploy of a directory changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Files that did not load; their previously deployed version (if any) stays current.
    pub diagnostics: Vec<Diagnostic>,
}

/// Deploys the valid flows of a loaded project into a store and removes flows whose files are gone.
pub async fn sync_flows(
    store: &dyn FlowStore,
    project: &LoadedProject,
    now: DateTime<Utc>,
) -> Result<SyncReport, StoreError> {
    let mut report = SyncReport {
        diagnostics: project.all_diagnostics(),
        ..SyncReport::default()
    };
    let mut present = BTreeSet::new();
    for loaded in &project.flows {
        let name = match &loaded.result {
            Ok(flow) => flow.name.clone(),
            Err(_) => {
                // A broken file keeps its last good version deployed under its file stem, if any.
                if let Some(stem) = Path::new(&loaded.path).file_stem().and_then(|s| s.to_str()) {
                    present.insert(stem.to_owned());
                }
                continue;
            }
        };
        present.insert(name.clone());
        let stored = StoredFlow {
            name: name.clone(),
            version: flowfile::version_of(&loaded.source),
            source: loaded.source.clone(),
            path: loaded.path.clone(),
            deployed_at: now,
        };
        match store.put(&stored).await? {
            PutOutcome::Added => report.added.push(name),
            PutOutcome::Updated => report.updated.push(name),
            PutOutcome::Unchanged => report.unchanged.push(name),
        }
    }
    for existing in store.list().await? {
        if !present.contains(&existing.name) && store.remove(&existing.name).await? {
            report.removed.push(existing.name);
        }
    }
    Ok(report)
}

/// A running local server.
pub struct Server {
    pub runtime: Arc<Runtime>,
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Held for the server's life: the data directory lock.
    _lock: std::fs::File,
    /// The number of open HTTP connections.
    connections: watch::Receiver<usize>,
    /// Kept so the scheduler's watch stays open when nothing reloads the flows.
    _schedules: Option<watch::Sender<Vec<ScheduleEntry>>>,
}

impl Server {
    /// Opens the store, deploys the flows, and starts every loop. Returns once the port is bound.
    pub async fn start(options: ServeOptions, clock: Arc<dyn Clock>) -> Result<Server, ServeError> {
        std::fs::create_dir_all(&options.data_dir).map_err(|source| ServeError::DataDir {
            path: options.data_dir.clone(),
            source,
        })?;
        // One server per data directory: the lock is the kernel's, so it goes away with the process,
        // even after SIGKILL, and a restarted server may safely take over the runs the old one held.
        let lock_path = options.data_dir.join("serve.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| ServeError::DataDir {
                path: lock_path.clone(),
                source,
            })?;
        lock.try_lock().map_err(|_| ServeError::Locked {
            path: options.data_dir.clone(),
        })?;
        let db = SqliteDb::open(options.data_dir.join("idflow.db"))?;
        let flows: Arc<dyn FlowStore> = Arc::new(SqliteFlowStore::new(db.clone()));
        let runs = Arc::new(SqliteRunStore::new(db.clone()));
        // A stable lease owner per data directory: after a crash the restarted server owns the
        // leases of the runs that were in flight and resumes them at once instead of waiting for
        // the leases to expire.
        let data_dir = options
            .data_dir
            .canonicalize()
            .unwrap_or_else(|_| options.data_dir.clone());
        let config = RunnerConfig {
            owner: format!("serve:{}", data_dir.display()),
            ..RunnerConfig::default()
        };
        let queue = Arc::new(SqliteRunQueue::new(
            db.clone(),
            clock.clone(),
            config.max_receive_count,
        ));
        // Runs and their first message go in one SQLite write.
        let queue_intake: Arc<dyn crate::ports::RunIntake> = queue.clone();
        let secrets: Arc<dyn Secrets> = Arc::new(LocalSecrets::new(options.flows_dir.clone()));

        let project = flowfile::load_dir(&options.flows_dir);
        let report = sync_flows(flows.as_ref(), &project, clock.now()).await?;
        print_report(&options.flows_dir, &report);

        let admin_token = match &project.config.admin_token {
            Some(reference) => Some(Arc::<str>::from(
                secrets
                    .resolve(reference)
                    .await
                    .map_err(ServeError::AdminToken)?
                    .expose(),
            )),
            None => None,
        };
        if admin_token.is_none() && !options.addr.ip().is_loopback() {
            return Err(ServeError::OpenAdmin { addr: options.addr });
        }
        if admin_token.is_none() {
            tracing::warn!(
                "no admin token configured: the admin API is open, so idflow listens on loopback only"
            );
        }

        let tables = TableExecutor::new(Arc::new(SqliteTableStore::new(db.clone())));
        let runtime = Arc::new(
            Runtime::new(
                flows,
                runs,
                queue,
                clock.clone(),
                secrets,
                project.config.clone(),
                config,
            )
            .with_standard_executors()
            .map_err(ServeError::HttpClient)?
            .with_executor("table", Arc::new(tables))
            .with_intake(queue_intake),
        );
        let recovered = runtime.recover().await.map_err(|e| match e {
            crate::runner::RunnerError::Store(s) => ServeError::Store(s),
            other => ServeError::Store(StoreError::Backend(Box::new(other))),
        })?;
        if recovered > 0 {
            tracing::info!(recovered, "re-queued unfinished runs");
        }

        let listener = tokio::net::TcpListener::bind(options.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: options.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: options.addr,
            source,
        })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let app = api::router(ApiState {
            runtime: runtime.clone(),
            admin_token,
            body_limit: options.body_limit,
        });
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(error = %error, "http server stopped");
            }
        }));

        let worker = Worker::new(runtime.clone(), options.workers);
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            worker
                .run(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                })
                .await;
        }));

        let (schedules_tx, schedules_rx) = watch::channel(schedules_of(&project));
        // Anchor now, not when the task first runs, so a schedule counts from the moment the server is up.
        let scheduler = LocalScheduler {
            runtime: runtime.clone(),
            specs: schedules_rx,
            anchor: clock.now(),
        };
        let rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(scheduler.run(rx)));

        let mut kept_schedules = None;
        if !options.hot_reload {
            kept_schedules = Some(schedules_tx);
        } else {
            let reloader = Reloader {
                runtime: runtime.clone(),
                dir: options.flows_dir.clone(),
                schedules: schedules_tx,
                fingerprint: fingerprint(&options.flows_dir),
            };
            let rx = shutdown_rx.clone();
            tasks.push(tokio::spawn(reloader.run(rx)));
        }

        tracing::info!(%addr, flows = %options.flows_dir.display(), data = %options.data_dir.display(), "idflow serve is ready");
        Ok(Server {
            runtime,
            addr,
            shutdown,
            tasks,
            _schedules: kept_schedules,
            _lock: lock,
            connections: watch::channel(0).1,
        })
    }

    /// The number of open HTTP connections, updated as they open and close.
    pub fn connections(&self) -> watch::Receiver<usize> {
        self.connections.clone()
    }

    /// Stops every loop and waits for them.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn print_report(dir: &Path, report: &SyncReport) {
    for d in &report.diagnostics {
        tracing::error!("{d}");
    }
    tracing::info!(
        dir = %dir.display(),
        added = report.added.len(),
        updated = report.updated.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged.len(),
        invalid = report.diagnostics.len(),
        "flows deployed"
    );
}

/// A schedule flow's parsed schedule.
#[derive(Clone)]
struct ScheduleEntry {
    flow: String,
    schedule: Schedule,
}

fn schedules_of(project: &LoadedProject) -> Vec<ScheduleEntry> {
    project
        .flows
        .iter()
        .filter_map(|loaded| loaded.result.as_ref().ok())
        .filter_map(|flow| match &flow.trigger {
            Trigger::Schedule(s) => match Schedule::parse(&s.expression, s.timezone.as_deref()) {
                Ok(schedule) => Some(ScheduleEntry {
                    flow: flow.name.clone(),
                    schedule,
                }),
                Err(error) => {
                    tracing::error!(flow = %flow.name, error = %error, "schedule ignored");
                    None
                }
            },
            _ => None,
        })
        .collect()
}

/// Fires schedule flows at their times, like EventBridge Scheduler would.
struct LocalScheduler {
    runtime: Arc<Runtime>,
    specs: watch::Receiver<Vec<ScheduleEntry>>,
    /// When the current set of schedules took effect (the origin of `rate` schedules).
    anchor: DateTime<Utc>,
}

impl LocalScheduler {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let clock = self.runtime.clock.clone();
        loop {
            let entries = self.specs.borrow_and_update().clone();
            let anchor = self.anchor;
            let mut next: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
            for e in &entries {
                if let Some(t) = e.schedule.next_after(anchor, anchor) {
                    next.insert(e.flow.clone(), t);
                }
            }
            loop {
                let Some(due) = next.values().min().copied() else {
                    tokio::select! {
                        _ = shutdown.wait_for(|s| *s) => return,
                        changed = self.specs.changed() => { if changed.is_err() { return; } break; }
                    }
                };
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    changed = self.specs.changed() => {
                        if changed.is_err() { return; }
                        self.anchor = clock.now();
                        break;
                    }
                    () = clock.sleep_until(due) => {}
                }
                let now = clock.now();
                for e in &entries {
                    let Some(at) = next.get(&e.flow).copied() else {
                        continue;
                    };
                    if at > now {
                        continue;
                    }
                    if let Err(error) =
                        crate::schedule::start_scheduled_run(&self.runtime, &e.flow, at).await
                    {
                        tracing::error!(flow = %e.flow, error = %error, "scheduled run not started");
                    }
                    match e.schedule.next_after(at.max(now), anchor) {
                        Some(t) => {
                            next.insert(e.flow.clone(), t);
                        }
                        None => {
                            next.remove(&e.flow);
                        }
                    }
                }
            }
        }
    }
}

/// Polls the flows directory and redeploys on change.
struct Reloader {
    runtime: Arc<Runtime>,
    dir: PathBuf,
    schedules: watch::Sender<Vec<ScheduleEntry>>,
    fingerprint: Vec<(PathBuf, SystemTime, u64)>,
}

impl Reloader {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            // Polling is portable and cheap for a few dozen files; the wall clock is right here because
            // file modification times are wall-clock times.
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let current = fingerprint(&self.dir);
            if current == self.fingerprint {
                continue;
            }
            self.fingerprint = current;
            let project = flowfile::load_dir(&self.dir);
            match sync_flows(
                self.runtime.flows.as_ref(),
                &project,
                self.runtime.clock.now(),
            )
            .await
            {
                Ok(report) => print_report(&self.dir, &report),
                Err(error) => {
                    tracing::error!(error = %error, "reload failed");
                    continue;
                }
            }
            self.runtime.invalidate_flows();
            self.runtime.set_project(project.config.clone());
            let _ = self.schedules.send(schedules_of(&project));
        }
    }
}

fn fingerprint(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out = Vec::new();
    // The table files are project files too.
    for folder in [dir.to_path_buf(), dir.join(flowfile::TABLES_DIR)] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Ok(meta) = entry.metadata() {
                out.push((
                    entry.path(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    meta.len(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The system clock as a shared port.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn a_changed_table_file_changes_the_fingerprint_the_reloader_watches() {
        let dir = std::env::temp_dir().join(format!("idflow-fingerprint-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(dir.join("tables")).expect("dirs");
        std::fs::write(dir.join("idflow.yaml"), "vars: {}\n").expect("write");
        std::fs::write(dir.join("tables/t.yaml"), "columns: { a: text }\n").expect("write");
        let before = fingerprint(&dir);
        // Same modification time is possible at coarse resolutions, so the size changes too.
        std::fs::write(
            dir.join("tables/t.yaml"),
            "columns: { a: text, b: number }\n",
        )
        .expect("write");
        let after = fingerprint(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            after
                .iter()
                .any(|(path, _, _)| path.ends_with("tables/t.yaml")),
            "{after:?}"
        );
        assert_ne!(before, after);
    }
}
