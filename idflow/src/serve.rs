//! `idflow serve`: the whole product in one process on the embedded store.
//!
//! [`Server::start`] opens the SQLite store, deploys the flows of a directory into it, and runs the
//! HTTP API, the queue worker, the local scheduler and the hot-reload watcher until shutdown. The
//! binary only parses flags and calls this; integration tests start it in-process with a manual clock.
//!
//! # The HTTP listener
//! The server runs its own accept loop on hyper (rather than `axum::serve`, which has no read
//! timeouts), so hostile traffic is bounded (see SECURITY.md, "HTTP surface"):
//! - a request head must arrive within [`ServeOptions::header_read_timeout`] (hyper's timer), which
//!   also closes idle keep-alive connections; a body within [`ServeOptions::body_read_timeout`], a
//!   deadline on the whole body (`DeadlineBody`), answered 408;
//! - at most [`ServeOptions::max_connections`] connections are open: the loop takes a slot before
//!   it accepts, so further clients wait in the kernel's listen backlog instead of costing a file
//!   descriptor each;
//! - a head over [`ServeOptions::max_header_bytes`] or [`MAX_HEADERS`] lines is answered a JSON 431
//!   by `limit_head`; hyper's own limits sit at twice those, so only a head it cannot buffer gets
//!   hyper's empty-bodied 431 (as does a request it cannot parse: 400).
//!
//! Shutdown is graceful: the loop stops accepting, idle connections close, requests in flight finish,
//! and a connection still sending its head closes at its header read timeout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};

use connectors::StandardExecutors;
use domain::cards::table::TableExecutor;
use domain::clock::SystemClock;
use domain::diag::Diagnostic;
use domain::flowfile::{self, LoadedProject};
use domain::model::Trigger;
use domain::ports::{Clock, FlowStore, Secrets, StoreError};
use domain::runner::{RunnerConfig, RunnerError, Runtime, SyncReport, Worker};
use domain::schedule::Schedule;
use local::secrets::LocalSecrets;
use local::sqlite::{
    SqliteBlobStore, SqliteDb, SqliteFlowStore, SqliteRunQueue, SqliteRunStore, SqliteTableStore,
};
use web::auth::{self, AdminAccess, AdminExposure, AdminTokenError};
use web::body::BodyReadTimeout;
use web::error::ApiError;
use web::state::ApiState;

/// Errors starting the local server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// `--flows` names no directory: nothing could be served.
    #[error(
        "the flows directory {path} does not exist (give the directory of your flow files and idflow.yaml with --flows)"
    )]
    FlowsDirMissing { path: PathBuf },
    #[error(
        "the flows directory {path} is not a directory (give the directory of your flow files and idflow.yaml with --flows)"
    )]
    FlowsNotADir { path: PathBuf },
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
    #[error("the admin token of idflow.yaml is not usable")]
    AdminToken(#[source] AdminTokenError),
    /// The admin token is too short for a listener the network can reach.
    #[error(
        "refusing to listen on {addr}: the admin token has {length} characters; one the network can reach needs at least {min} characters (generate one with `openssl rand -hex 32`), or listen on 127.0.0.1",
        min = auth::MIN_ADMIN_TOKEN_CHARS
    )]
    WeakAdminToken { addr: SocketAddr, length: usize },
    /// An option that would stop the server from serving.
    #[error("`{option}` must be more than zero")]
    ZeroOption { option: &'static str },
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
/// Header lines a request may have (hyper's own default, answered here as JSON).
pub const MAX_HEADERS: usize = 100;

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            flows_dir: PathBuf::from("./flows"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./.idflow"),
            body_limit: web::body::DEFAULT_BODY_LIMIT,
            workers: 16,
            hot_reload: true,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
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
        for (option, zero) in [
            ("header_read_timeout", options.header_read_timeout.is_zero()),
            ("body_read_timeout", options.body_read_timeout.is_zero()),
            ("max_connections", options.max_connections == 0),
            ("max_header_bytes", options.max_header_bytes == 0),
            ("body_limit", options.body_limit == 0),
        ] {
            if zero {
                return Err(ServeError::ZeroOption { option });
            }
        }
        // A mistyped --flows would otherwise serve an empty instance: refuse, as validate does.
        if !options.flows_dir.exists() {
            return Err(ServeError::FlowsDirMissing {
                path: options.flows_dir.clone(),
            });
        }
        if !options.flows_dir.is_dir() {
            return Err(ServeError::FlowsNotADir {
                path: options.flows_dir.clone(),
            });
        }
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
        // Runs and their first message go in one SQLite write; both are watched for `/metrics`.
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let queue_intake: Arc<dyn domain::ports::RunIntake> =
            Arc::new(crate::metrics::MeteredIntake {
                inner: queue.clone(),
                metrics: metrics.clone(),
            });
        let runs: Arc<dyn domain::ports::RunStore> =
            Arc::new(crate::metrics::MeteredRunStore::new(runs, metrics.clone()));
        let secrets: Arc<dyn Secrets> = Arc::new(LocalSecrets::new(options.flows_dir.clone()));

        let project = flowfile::load_dir(&options.flows_dir);
        let tables = TableExecutor::new(Arc::new(SqliteTableStore::new(db.clone())));
        let runtime = Arc::new(
            Runtime::new(
                flows,
                runs,
                queue.clone(),
                clock.clone(),
                secrets.clone(),
                project.config.clone(),
                config,
            )
            .with_standard_executors()
            .map_err(ServeError::HttpClient)?
            .with_executor("table", Arc::new(tables))
            .with_blobs(Arc::new(SqliteBlobStore::new(db.clone())))
            .with_intake(queue_intake),
        );
        let report = runtime.deploy(&project).await.map_err(runner_error)?;
        print_report(&options.flows_dir, &report, true);
        warn_before_serving(&options.flows_dir, &project, secrets.as_ref()).await;

        let exposure = if options.addr.ip().is_loopback() {
            AdminExposure::Loopback
        } else {
            AdminExposure::Network
        };
        let admin = auth::admin_access(
            secrets.as_ref(),
            project.config.admin_token.as_ref(),
            exposure,
        )
        .await
        .map_err(|error| match error {
            AdminTokenError::TooShort { length } => ServeError::WeakAdminToken {
                addr: options.addr,
                length,
            },
            other => ServeError::AdminToken(other),
        })?;
        match admin {
            // Nothing in front of `idflow serve` verifies callers: without a token, the admin API
            // would admit no one beyond loopback, so refuse to start instead.
            AdminAccess::VerifiedOnly => return Err(ServeError::OpenAdmin { addr: options.addr }),
            AdminAccess::Open => tracing::warn!(
                "no admin token configured: the admin API is open, so idflow listens on loopback only"
            ),
            AdminAccess::Token(_) => {}
        }

        let recovered = runtime.recover().await.map_err(runner_error)?;
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

        let metrics_route = axum::Router::new()
            .route("/metrics", axum::routing::get(crate::metrics::scrape))
            .with_state(crate::metrics::MetricsState {
                metrics,
                runtime: runtime.clone(),
                queue,
                admin_token: admin.token().map(Arc::from),
            });
        let app = web::router::router(ApiState {
            runtime: runtime.clone(),
            admin,
            body_limit: options.body_limit,
        })
        .merge(metrics_route)
        .layer(axum::middleware::from_fn_with_state(
            options.body_read_timeout,
            body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            options.max_header_bytes,
            limit_head,
        ));
        // Made before the server answers its first request: from then on, runs that triggers start
        // while a worker slot is free are driven at once (`Runtime::local_slots`).
        let worker = Worker::new(runtime.clone(), options.workers);
        let (connections_tx, connections) = watch::channel(0);
        tasks.push(tokio::spawn(serve_http(
            listener,
            app,
            HttpLimits::of(&options),
            connections_tx,
            shutdown_rx.clone(),
        )));

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
            clock: clock.clone(),
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
                warned: warnings_by_file(&project),
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
            connections,
        })
    }

    /// The number of open HTTP connections, updated as they open and close.
    pub fn connections(&self) -> watch::Receiver<usize> {
        self.connections.clone()
    }

    /// Stops every loop and waits for them. The HTTP listener stops accepting and waits for the
    /// requests in flight, at most as long as their read timeouts and handlers take.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The connection-level limits of the accept loop.
#[derive(Debug, Clone, Copy)]
struct HttpLimits {
    header_read_timeout: Duration,
    max_connections: usize,
    max_header_bytes: usize,
}

impl HttpLimits {
    fn of(options: &ServeOptions) -> HttpLimits {
        HttpLimits {
            header_read_timeout: options.header_read_timeout,
            max_connections: options.max_connections,
            max_header_bytes: options.max_header_bytes,
        }
    }
}

/// hyper's default read buffer limit (about 400 KB). The buffer holds a whole head, so it only grows
/// when a configured head limit needs more.
const HYPER_DEFAULT_BUFFER: usize = 8192 + 4096 * 100;

/// Accepts connections until shutdown, at most `limits.max_connections` open at once, and serves
/// each with `app`; then stops accepting and waits for the open connections to finish.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    connections: watch::Sender<usize>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Twice idflow's limits, so a head between the two is parsed and gets `limit_head`'s JSON
        // 431; beyond, hyper answers on its own (with an empty body) before any of our code runs.
        .max_headers(MAX_HEADERS * 2)
        .max_header_size(limits.max_header_bytes.saturating_mul(2))
        .max_buf_size(
            limits
                .max_header_bytes
                .saturating_mul(2)
                .max(HYPER_DEFAULT_BUFFER),
        );
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = Arc::new(connections);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        // The slot is taken before accepting: beyond the cap, connections wait in the kernel's
        // backlog and cost this process nothing.
        let slot = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted: wait a
                // moment rather than spin, as the condition rarely clears at once.
                tracing::warn!(error = %error, "cannot accept a connection");
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        let connections = connections.clone();
        connections.send_modify(|open| *open += 1);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client that went away or timed out is routine, not an error of the server.
                tracing::debug!(error = %error, "connection ended");
            }
            connections.send_modify(|open| *open = open.saturating_sub(1));
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Answers 431 to a request head over `max_header_bytes` (counted as on the wire: the request line
/// and each `name: value` line) or over [`MAX_HEADERS`] lines, before routing.
async fn limit_head(
    State(max_header_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let line = request.method().as_str().len()
        + request
            .uri()
            .path_and_query()
            .map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    let size = request.headers().iter().fold(line, |size, (name, value)| {
        size + name.as_str().len() + value.len() + ": \r\n".len()
    });
    if size > max_header_bytes || request.headers().len() > MAX_HEADERS {
        return ApiError::HeadersTooLarge {
            limit: max_header_bytes,
            max_headers: MAX_HEADERS,
        }
        .into_response();
    }
    next.run(request).await
}

/// Gives a request's body `timeout` to arrive in full, from the moment its head was read.
async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let request = request.map(|body| Body::new(DeadlineBody::new(body, timeout)));
    next.run(request).await
}

/// A request body that fails with [`BodyReadTimeout`] once its deadline passes, however steadily
/// bytes arrive: a deadline on the whole body, not an idle timeout a trickle would reset.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(inner: Body, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        // The deadline first: a body whose bytes are always ready would never let it be polled.
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(axum::Error::new(BodyReadTimeout { timeout }))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A runner error at start-up, as the store error it comes down to.
fn runner_error(error: RunnerError) -> ServeError {
    match error {
        RunnerError::Store(s) => ServeError::Store(s),
        other => ServeError::Store(StoreError::Backend(Box::new(other))),
    }
}

/// Logs what a deploy changed: at info level at start and when something changed, at debug level
/// when a reload changed nothing (so an idle server stays quiet).
fn print_report(dir: &Path, report: &SyncReport, at_start: bool) {
    for d in &report.diagnostics {
        tracing::error!("{d}");
    }
    let mut failing: Vec<&str> = report.diagnostics.iter().map(|d| d.file.as_str()).collect();
    failing.sort_unstable();
    failing.dedup();
    for file in failing {
        tracing::warn!(
            "{file} was not deployed: the version deployed before it (if any) keeps running until the file validates"
        );
    }
    macro_rules! deployed {
        ($level:ident) => {
            tracing::$level!(
                dir = %dir.display(),
                added = report.added.len(),
                updated = report.updated.len(),
                removed = report.removed.len(),
                unchanged = report.unchanged.len(),
                invalid = report.diagnostics.len(),
                "flows deployed"
            )
        };
    }
    if at_start || report.changed_anything() {
        deployed!(info);
    } else {
        deployed!(debug);
    }
}

/// Warns about what would make flows fail without a word at start: a project config where
/// nothing reads it, and each flow's secrets that do not resolve (by name and reference, never a
/// value).
async fn warn_before_serving(dir: &Path, project: &LoadedProject, secrets: &dyn Secrets) {
    log_checker_warnings(project);
    if let Some(stray) = flowfile::misplaced_project_file(dir) {
        tracing::warn!(
            "{} is not read: the project config belongs inside the flows directory, as {}",
            stray.display(),
            dir.join(flowfile::PROJECT_FILE).display()
        );
    }
    for unresolved in crate::preflight::unresolved_secrets(project, secrets).await {
        tracing::warn!(
            flow = %unresolved.flow,
            secret = %unresolved.name,
            "{unresolved}"
        );
    }
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
    clock: Arc<dyn Clock>,
    specs: watch::Receiver<Vec<ScheduleEntry>>,
    /// When the current set of schedules took effect (the origin of `rate` schedules).
    anchor: DateTime<Utc>,
}

impl LocalScheduler {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let clock = self.clock.clone();
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
                    match domain::runner::start_scheduled_run(&self.runtime, &e.flow, at).await {
                        // Logged and counted where it was refused; the fire time is skipped, not
                        // caught up on resume.
                        Ok(_) | Err(domain::runner::RunnerError::FlowPaused { .. }) => {}
                        Err(error) => {
                            tracing::error!(flow = %e.flow, error = %error, "scheduled run not started");
                        }
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
    /// The checker's warnings of each flow file as last logged (at start or by a reload), so a
    /// reload logs a file's warnings when the file or its warnings changed, not on every reload.
    warned: HashMap<String, Vec<Diagnostic>>,
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
            match self.runtime.deploy(&project).await {
                Ok(report) => {
                    print_report(&self.dir, &report, false);
                    self.log_new_warnings(&project, &report);
                }
                Err(error) => {
                    tracing::error!(error = %error, "reload failed");
                    continue;
                }
            }
            let _ = self.schedules.send(schedules_of(&project));
        }
    }
}

impl Reloader {
    /// Logs the checker's warnings of the flows this reload deployed anew (added or updated) and
    /// of those whose warnings changed (the project config changed under them), as the errors of
    /// the files it refused are logged; a flow left as it was is not logged again.
    fn log_new_warnings(&mut self, project: &LoadedProject, report: &SyncReport) {
        let deployed: HashSet<&str> = report
            .added
            .iter()
            .chain(&report.updated)
            .map(String::as_str)
            .collect();
        for loaded in &project.flows {
            let changed = loaded
                .result
                .as_ref()
                .is_ok_and(|flow| deployed.contains(flow.name.as_str()));
            if changed || self.warned.get(&loaded.path) != Some(&loaded.warnings) {
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
            }
        }
        self.warned = warnings_by_file(project);
    }
}

/// The checker's warnings of each flow file of `project`, by path.
fn warnings_by_file(project: &LoadedProject) -> HashMap<String, Vec<Diagnostic>> {
    project
        .flows
        .iter()
        .map(|loaded| (loaded.path.clone(), loaded.warnings.clone()))
        .collect()
}

fn fingerprint(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out = Vec::new();
    // The table files are project files too.
    for folder in [dir.to_path_buf(), dir.join(flowfile::TABLES_DIR)] {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        // Only the files a deploy reads: a log file, an editor's swap file or a data directory
        // kept in the flows directory changes all the time and would redeploy every second.
        let deployable = |name: &str| {
            let lower = name.to_ascii_lowercase();
            !name.starts_with('.')
                && [".yaml", ".yml", ".json"]
                    .iter()
                    .any(|ext| lower.ends_with(ext))
        };
        for entry in entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(deployable))
        {
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

/// Logs what the checker finds suspicious in the flows that loaded at start (they are deployed all
/// the same; `idflow validate --strict` refuses them).
fn log_checker_warnings(project: &LoadedProject) {
    for warning in project.all_warnings() {
        tracing::warn!("{warning}");
    }
}

/// The system clock as a shared port.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::{SyncReport, fingerprint};

    #[test]
    fn a_file_no_deploy_reads_leaves_the_fingerprint_alone() {
        let dir = std::env::temp_dir().join(format!("idflow-fingerprint-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(dir.join(".idflow")).expect("dirs");
        std::fs::write(dir.join("hello.yaml"), "name: hello\nsteps: []\n").expect("write");
        let before = fingerprint(&dir);
        // A log redirected into the flows directory, an editor's swap file, the data directory.
        std::fs::write(dir.join("serve.log"), "flows deployed\n").expect("write");
        std::fs::write(dir.join(".hello.yaml.swp"), "x").expect("write");
        std::fs::write(dir.join(".idflow/idflow.db-wal"), "x").expect("write");
        let after = fingerprint(&dir);
        std::fs::write(dir.join("other.json"), "{}").expect("write");
        let with_flow = fingerprint(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(before, after);
        assert_ne!(after, with_flow);
    }

    #[test]
    fn a_reload_that_changed_nothing_is_not_news() {
        let unchanged = SyncReport {
            unchanged: vec!["hello".into()],
            ..SyncReport::default()
        };
        assert!(!unchanged.changed_anything());
        let updated = SyncReport {
            updated: vec!["hello".into()],
            ..unchanged.clone()
        };
        assert!(updated.changed_anything());
    }

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
