//! The simulator's assembly: builder, running handle, router and the gate middleware that every
//! request passes (request id, journal, rate limit, faults, authentication).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::auth::{self, AuthState, DEFAULT_API_TOKEN, OAuthClient, ResourceRequest, TokenRequest};
use crate::clock::{Clock, SystemClock, lock};
use crate::context::{Ctx, Inner, Shared};
use crate::error::{ApiError, SimError};
use crate::governance::RequestSeed;
use crate::hooks;
use crate::journal::{JOURNALED_HEADERS, JournalEntry};
use crate::limits::{Family, Faults, RateLimit, RateLimiter};
use crate::routes;
use crate::state::{NewUser, Org, Principal, RequestMessage, UserStatus};

/// Largest request body the simulator reads (Okta refuses far smaller ones; this only bounds memory).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// Starts a [`Sim`]: `Sim::builder().seed_users(10).start().await`.
pub struct Sim;

impl Sim {
    /// A builder with Okta-like defaults: 127.0.0.1 on a free port, the system clock,
    /// [`DEFAULT_API_TOKEN`], Okta's default per-minute rate limits, no faults.
    pub fn builder() -> SimBuilder {
        SimBuilder {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            clock: Arc::new(SystemClock),
            token: DEFAULT_API_TOKEN.to_string(),
            api_tokens: Vec::new(),
            seed_users: 0,
            demo: false,
            groups: Vec::new(),
            apps: Vec::new(),
            rate_limits: Vec::new(),
            faults: Faults::default(),
            clients: Vec::new(),
            hook_timeout: Duration::from_secs(3),
            journal_capacity: None,
        }
    }
}

/// Configures a simulator before it starts.
pub struct SimBuilder {
    addr: SocketAddr,
    seed: u64,
    clock: Arc<dyn Clock>,
    token: String,
    api_tokens: Vec<String>,
    seed_users: usize,
    demo: bool,
    groups: Vec<String>,
    apps: Vec<String>,
    rate_limits: Vec<(Family, RateLimit)>,
    faults: Faults,
    clients: Vec<OAuthClient>,
    hook_timeout: Duration,
    journal_capacity: Option<usize>,
}

impl SimBuilder {
    /// Keeps only the newest `entries` journal entries (long-running demos and benchmarks);
    /// unbounded by default.
    pub fn journal_capacity(mut self, entries: usize) -> Self {
        self.journal_capacity = Some(entries);
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The seed for ids (same seed and same calls give the same ids).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The clock for timestamps, rate-limit windows and token expiry.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The org's SSWS token, in place of [`DEFAULT_API_TOKEN`]: what [`SimHandle::api_token`]
    /// returns and requests must carry.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Accepts another SSWS token.
    pub fn api_token(mut self, token: impl Into<String>) -> Self {
        self.api_tokens.push(token.into());
        self
    }

    /// Starts with the demo org: people, groups, apps, access requests and a few days of System
    /// Log history (sign-ins, failed ones included, a lockout, a breached credential); see
    /// [`SimHandle::play_demo_activity`] for what happens next.
    pub fn demo(mut self) -> Self {
        self.demo = true;
        self
    }

    /// Creates `count` active users with deterministic profiles before starting
    /// (`user{n}@example.com`, departments cycling through five values).
    pub fn seed_users(mut self, count: usize) -> Self {
        self.seed_users = count;
        self
    }

    /// Creates an Okta group with this name before starting.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.groups.push(name.into());
        self
    }

    /// Creates a bookmark app with this label before starting.
    pub fn app(mut self, label: impl Into<String>) -> Self {
        self.apps.push(label.into());
        self
    }

    /// Sets one endpoint family's budget.
    pub fn rate_limit(mut self, family: Family, limit: RateLimit) -> Self {
        self.rate_limits.push((family, limit));
        self
    }

    /// Injects faults from the first request.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Registers an OAuth 2.0 service app.
    pub fn oauth_client(mut self, client: OAuthClient) -> Self {
        self.clients.push(client);
        self
    }

    /// How long event hook deliveries wait for the receiver (Okta: 3 seconds).
    pub fn hook_timeout(mut self, timeout: Duration) -> Self {
        self.hook_timeout = timeout;
        self
    }

    /// Binds, seeds the org and serves in a background task.
    pub async fn start(self) -> Result<SimHandle, SimError> {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| SimError::Bind {
                addr: self.addr,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| SimError::Bind {
            addr: self.addr,
            source,
        })?;
        let base_url = format!("http://{local}");
        let now = self.clock.now();
        let mut org = Org::new(self.seed, now);
        org.base_url = base_url.clone();
        let mut auth = AuthState::new(&mut org.ids);
        auth.api_tokens.insert(self.token.clone());
        auth.api_tokens.extend(self.api_tokens);
        for client in self.clients {
            auth.register(client)?;
        }
        seed_org(&mut org, now, self.seed_users, &self.groups, &self.apps);
        if self.demo {
            crate::demo::seed(&mut org, now);
        }
        let mut limiter = RateLimiter::default();
        for (family, limit) in self.rate_limits {
            limiter.set(family, limit);
        }
        let shared = Arc::new(Shared {
            clock: self.clock,
            inner: Mutex::new(Inner {
                org,
                auth,
                limiter,
                faults: self.faults,
                fault_counter: 0,
                journal: VecDeque::new(),
                journal_capacity: self.journal_capacity,
            }),
            base_url: base_url.clone(),
            hook_timeout: Mutex::new(self.hook_timeout),
        });
        let app = router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            // Serving ends only on shutdown or a listener error; neither needs reporting here.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await;
        });
        Ok(SimHandle {
            shared,
            base_url,
            api_token: self.token,
            local_addr: local,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

const FIRST_NAMES: [&str; 10] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis",
];
const LAST_NAMES: [&str; 10] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Ritchie",
];
const DEPARTMENTS: [&str; 5] = ["Engineering", "Sales", "Marketing", "Finance", "Support"];

fn seed_org(org: &mut Org, now: DateTime<Utc>, users: usize, groups: &[String], apps: &[String]) {
    for name in groups {
        org.insert_group(now, name, "", "OKTA_GROUP");
    }
    for label in apps {
        org.insert_app(now, label);
    }
    for n in 1..=users {
        let first = FIRST_NAMES[(n - 1) % FIRST_NAMES.len()];
        let last = LAST_NAMES[((n - 1) / FIRST_NAMES.len()) % LAST_NAMES.len()];
        let mut profile = Map::new();
        profile.insert("login".into(), json!(format!("user{n}@example.com")));
        profile.insert("email".into(), json!(format!("user{n}@example.com")));
        profile.insert("firstName".into(), json!(first));
        profile.insert("lastName".into(), json!(last));
        profile.insert(
            "department".into(),
            json!(DEPARTMENTS[(n - 1) % DEPARTMENTS.len()]),
        );
        profile.insert("employeeNumber".into(), json!(format!("{n}")));
        let new = NewUser {
            profile,
            activate: true,
            has_password: true,
            ..NewUser::default()
        };
        // Seeded profiles are valid by construction; a failure would be a bug in this function.
        let _ = org.create_user(now, &Principal::System, new);
    }
    // The org "existed" before the test: its System Log starts empty.
    org.events.clear();
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/api/v1/users",
            get(routes::users::list).post(routes::users::create),
        )
        .route(
            "/api/v1/users/{id}",
            get(routes::users::get_one).post(routes::users::update),
        )
        .route(
            "/api/v1/users/{id}/groups",
            get(routes::groups::user_groups),
        )
        .route(
            "/api/v1/users/{id}/lifecycle/{operation}",
            post(routes::users::lifecycle),
        )
        .route(
            "/api/v1/groups",
            get(routes::groups::list).post(routes::groups::create),
        )
        .route("/api/v1/groups/{id}", get(routes::groups::get_one))
        .route("/api/v1/groups/{id}/users", get(routes::groups::members))
        .route(
            "/api/v1/groups/{id}/users/{user}",
            put(routes::groups::add_member).delete(routes::groups::remove_member),
        )
        .route("/api/v1/apps/{id}", get(routes::apps::get_one))
        .route(
            "/api/v1/apps/{id}/users",
            get(routes::apps::list_users).post(routes::apps::assign_user),
        )
        .route("/api/v1/logs", get(routes::logs::list))
        .route(
            "/governance/api/v1/requests",
            get(routes::governance::list_v1),
        )
        .route(
            "/governance/api/v1/requests/{id}",
            get(routes::governance::get_v1),
        )
        .route(
            "/governance/api/v1/requests/{id}/messages",
            post(routes::governance::message_v1),
        )
        .route(
            "/governance/api/v2/requests",
            get(routes::governance::list_v2),
        )
        .route(
            "/governance/api/v2/requests/{id}",
            get(routes::governance::get_v2),
        )
        .route(
            "/governance/api/v2/requests/{id}/messages",
            post(routes::governance::message_v2),
        )
        .route("/oauth2/v1/token", post(token))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(request.uri().path(), "Endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "E0000022",
        "The endpoint does not support the provided HTTP method",
    )
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    // Parsed by hand so a wrong content type gets OAuth's error shape, not a framework rejection.
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let now = shared.clock.now();
    let token_url = format!("{}/oauth2/v1/token", shared.base_url);
    let dpop = headers.get("dpop").and_then(|v| v.to_str().ok());
    let mut inner = lock(&shared.inner);
    let Inner { org, auth, .. } = &mut *inner;
    let request = TokenRequest {
        form: &form,
        dpop,
        token_url: &token_url,
        now,
    };
    match auth::issue_token(auth, &mut org.ids, request) {
        Ok(body) => {
            let mut response = axum::Json(body).into_response();
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(error) => error.into_response(),
    }
}

/// Every request passes here: id, faults, rate limit, authentication, then the handler; then
/// rate-limit headers, `X-Okta-Request-Id` and the journal.
async fn gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let now = shared.clock.now();
    let (mut parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let method = parts.method.as_str().to_string();
    let family = Family::of_path(&path);

    enum Verdict {
        Throttle,
        Fail,
        Pass,
    }
    let (request_id, budget, verdict, latency) = {
        let mut inner = lock(&shared.inner);
        let request_id = inner.org.ids.token(27);
        let counted = inner
            .faults
            .path_prefix
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix));
        let mut verdict = Verdict::Pass;
        if counted {
            inner.fault_counter += 1;
            let n = inner.fault_counter;
            if inner
                .faults
                .throttle_every
                .is_some_and(|every| every > 0 && n % every == 0)
            {
                verdict = Verdict::Throttle;
            } else if inner
                .faults
                .error_every
                .is_some_and(|every| every > 0 && n % every == 0)
            {
                verdict = Verdict::Fail;
            }
        }
        let budget = match verdict {
            Verdict::Throttle => {
                let mut budget = inner.limiter.peek(family, now);
                budget.remaining = 0;
                budget
            }
            _ => inner.limiter.take(family, now),
        };
        let latency = if counted { inner.faults.latency } else { None };
        (request_id, budget, verdict, latency)
    };
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }

    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut response = if budget.exceeded || matches!(verdict, Verdict::Throttle) {
        ApiError::rate_limited().into_response()
    } else if matches!(verdict, Verdict::Fail) {
        ApiError::internal().into_response()
    } else if family == Family::Token {
        next.run(Request::from_parts(parts.clone(), Body::from(body.clone())))
            .await
    } else {
        let authorization = header("authorization");
        let dpop = header("dpop");
        let url_without_query = format!("{}{path}", shared.base_url);
        let verdict = {
            let mut inner = lock(&shared.inner);
            auth::authenticate(
                &mut inner.auth,
                ResourceRequest {
                    authorization: authorization.as_deref(),
                    dpop: dpop.as_deref(),
                    method: &method,
                    url_without_query: &url_without_query,
                    path: &path,
                    now,
                },
            )
        };
        match verdict {
            Ok(principal) => {
                let query = raw_query
                    .as_deref()
                    .map(|q| {
                        url::form_urlencoded::parse(q.as_bytes())
                            .into_owned()
                            .collect()
                    })
                    .unwrap_or_default();
                parts.extensions.insert(Ctx {
                    principal,
                    now,
                    request_id: request_id.clone(),
                    base_url: shared.base_url.clone(),
                    path: path.clone(),
                    raw_query: raw_query.clone(),
                    query,
                });
                next.run(Request::from_parts(parts.clone(), Body::from(body.clone())))
                    .await
            }
            Err(error) => error.into_response(),
        }
    };

    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-okta-request-id", request_id.clone());
    set("x-rate-limit-limit", budget.limit.to_string());
    set("x-rate-limit-remaining", budget.remaining.to_string());
    set("x-rate-limit-reset", budget.reset.to_string());

    let journaled = JOURNALED_HEADERS
        .iter()
        .flat_map(|name| {
            parts
                .headers
                .get_all(*name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(|v| (name.to_string(), v.to_string()))
        })
        .collect();
    let entry = JournalEntry {
        at: now,
        method,
        path,
        query: raw_query,
        headers: journaled,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: response.status().as_u16(),
        request_id,
    };
    let mut inner = lock(&shared.inner);
    if inner
        .journal_capacity
        .is_some_and(|capacity| inner.journal.len() >= capacity)
    {
        inner.journal.pop_front();
    }
    if inner.journal_capacity != Some(0) {
        inner.journal.push_back(entry);
    }
    drop(inner);
    response
}

/// A running simulator. Dropping it stops the server; [`SimHandle::shutdown`] waits for it.
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
    base_url: String,
    api_token: String,
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// The org URL, e.g. `http://127.0.0.1:49152` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The token endpoint URL (the `aud` of client assertions, the `htu` of token DPoP proofs).
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/token", self.base_url)
    }

    /// The org's SSWS token: [`DEFAULT_API_TOKEN`] unless [`SimBuilder::token`] set another.
    pub fn api_token(&self) -> &str {
        &self.api_token
    }

    /// `SSWS <the org's token>`, ready for an `Authorization` header.
    pub fn ssws_header(&self) -> String {
        format!("SSWS {}", self.api_token)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.shared.inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// Every request answered so far, oldest first.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.inner().journal.iter().cloned().collect()
    }

    /// Forgets the journal.
    pub fn clear_journal(&self) {
        self.inner().journal.clear();
    }

    /// Replaces the fault injection settings and restarts the fault counter.
    pub fn set_faults(&self, faults: Faults) {
        let mut inner = self.inner();
        inner.faults = faults;
        inner.fault_counter = 0;
    }

    /// Replaces one family's budget (and starts a fresh window).
    pub fn set_rate_limit(&self, family: Family, limit: RateLimit) {
        self.inner().limiter.set(family, limit);
    }

    /// Accepts another SSWS token.
    pub fn add_api_token(&self, token: impl Into<String>) {
        self.inner().auth.api_tokens.insert(token.into());
    }

    /// Registers (or replaces) an OAuth 2.0 service app.
    pub fn register_client(&self, client: OAuthClient) -> Result<(), SimError> {
        self.inner().auth.register(client)
    }

    /// The DPoP nonce the token endpoint currently asks for.
    pub fn dpop_nonce(&self) -> String {
        self.inner().auth.nonce.clone()
    }

    /// Starts a new DPoP nonce (the previous one stays accepted) and returns it.
    pub fn rotate_dpop_nonce(&self) -> String {
        let mut inner = self.inner();
        let Inner { org, auth, .. } = &mut *inner;
        auth.rotate_nonce(&mut org.ids)
    }

    /// Creates a user as `POST /api/v1/users?activate=true` with a password would (status
    /// `ACTIVE`, events logged). `profile` needs `login`, `email`, `firstName`, `lastName`.
    pub fn create_user(&self, profile: Value) -> Result<String, SimError> {
        let now = self.now();
        let mut inner = self.inner();
        let profile = match profile {
            Value::Object(map) => map,
            _ => {
                return Err(SimError::Rejected {
                    summary: "profile must be a JSON object".into(),
                });
            }
        };
        let new = NewUser {
            profile,
            activate: true,
            has_password: true,
            ..NewUser::default()
        };
        let seq = inner
            .org
            .create_user(now, &Principal::System, new)
            .map_err(rejected)?;
        Ok(inner
            .org
            .user_by_seq(seq)
            .map(|u| u.id.clone())
            .unwrap_or_default())
    }

    /// A user as `GET /api/v1/users/{idOrLogin}` returns it.
    pub fn user(&self, id_or_login: &str) -> Option<Value> {
        let inner = self.inner();
        let user = inner.org.find_user(id_or_login).ok()?;
        Some(inner.org.render_user(user, true))
    }

    /// Forces a user's status without lifecycle rules or events (e.g. `LOCKED_OUT`).
    pub fn set_user_status(&self, id_or_login: &str, status: UserStatus) -> bool {
        let now = self.now();
        let mut inner = self.inner();
        match inner.org.user_seq(id_or_login) {
            Some(seq) => {
                inner.org.set_status(now, seq, status);
                true
            }
            None => false,
        }
    }

    /// Creates an Okta group and returns its id.
    pub fn create_group(&self, name: &str, description: &str) -> String {
        let now = self.now();
        let mut inner = self.inner();
        let seq = inner.org.insert_group(now, name, description, "OKTA_GROUP");
        inner
            .org
            .groups
            .rows
            .get(&seq)
            .map(|g| g.id.clone())
            .unwrap_or_default()
    }

    /// The id of the group with this name.
    pub fn group_id(&self, name: &str) -> Option<String> {
        let inner = self.inner();
        let found = inner
            .org
            .groups
            .rows
            .values()
            .find(|g| g.profile.get("name").and_then(Value::as_str) == Some(name));
        found.map(|g| g.id.clone())
    }

    /// Adds a user to a group, logging `group.user_membership.add`; false if either is unknown.
    pub fn add_to_group(&self, group_id: &str, user: &str) -> bool {
        let now = self.now();
        let mut inner = self.inner();
        match (inner.org.groups.seq(group_id), inner.org.user_seq(user)) {
            (Some(group), Some(user)) => {
                inner
                    .org
                    .add_member_seq(now, &Principal::System, group, user);
                true
            }
            _ => false,
        }
    }

    /// Member user ids of a group, in membership-list order.
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        let inner = self.inner();
        let Some(group) = inner.org.groups.get(group_id) else {
            return Vec::new();
        };
        group
            .members
            .iter()
            .filter_map(|seq| inner.org.user_by_seq(*seq))
            .map(|u| u.id.clone())
            .collect()
    }

    /// Creates a bookmark app and returns its id.
    pub fn create_app(&self, label: &str) -> String {
        let now = self.now();
        let mut inner = self.inner();
        let seq = inner.org.insert_app(now, label);
        inner
            .org
            .apps
            .rows
            .get(&seq)
            .map(|a| a.id.clone())
            .unwrap_or_default()
    }

    /// User ids assigned to an app.
    pub fn app_users(&self, app_id: &str) -> Vec<String> {
        let inner = self.inner();
        let Some(app) = inner.org.apps.get(app_id) else {
            return Vec::new();
        };
        app.users
            .keys()
            .filter_map(|seq| inner.org.user_by_seq(*seq))
            .map(|u| u.id.clone())
            .collect()
    }

    /// Adds an event to the System Log (e.g. `access.request.create` with
    /// `debugContext.debugData.accessRequestId`, or a failed `user.session.start`). Missing
    /// `uuid`, `published` (sim clock), `version`, `severity`, `actor`, `outcome`, `target`… are
    /// filled in. Returns the event's uuid.
    pub fn inject_event(&self, event: Value) -> String {
        let now = self.now();
        self.inner().org.push_event(now, event)
    }

    /// The System Log, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.inner()
            .org
            .events
            .iter()
            .map(|e| e.event.clone())
            .collect()
    }

    /// Adds an OIG access request readable at `/governance/api/v1/requests/{id}`; returns the
    /// 24-hex id.
    pub fn seed_request_v1(&self, seed: RequestSeed) -> String {
        let now = self.now();
        crate::governance::seed_v1(&mut self.inner().org, now, seed)
    }

    /// Adds an OIG access request readable at `/governance/api/v2/requests/{id}`; returns the
    /// `req…` id.
    pub fn seed_request_v2(&self, seed: RequestSeed) -> String {
        let now = self.now();
        crate::governance::seed_v2(&mut self.inner().org, now, seed)
    }

    /// A request (v1 or v2 id) as the API returns it.
    pub fn request(&self, id: &str) -> Option<Value> {
        let inner = self.inner();
        inner
            .org
            .requests_v1
            .get(id)
            .or_else(|| inner.org.requests_v2.get(id))
            .cloned()
    }

    /// Messages posted on a request, oldest first.
    pub fn request_messages(&self, id: &str) -> Vec<RequestMessage> {
        self.inner()
            .org
            .messages
            .iter()
            .filter(|m| m.request_id == id)
            .cloned()
            .collect()
    }

    /// Changes how long event hook deliveries wait for the receiver.
    pub fn set_hook_timeout(&self, timeout: Duration) {
        *lock(&self.shared.hook_timeout) = timeout;
    }

    /// Okta's one-time event hook verification: a GET with `x-okta-verification-challenge` (and
    /// the configured `authorization` value); the answer must be `{"verification": "<challenge>"}`.
    pub async fn verify_event_hook(
        &self,
        url: &str,
        authorization: &str,
    ) -> Result<(), crate::HookError> {
        hooks::verify(&self.shared, url, authorization).await
    }

    /// Delivers events like Okta: batches of at most `batch_size` in the
    /// `com.okta.event_hook` envelope, each POSTed with `Authorization: <authorization>`, retried
    /// once after a timeout or a 5xx.
    pub async fn deliver_events(
        &self,
        url: &str,
        authorization: &str,
        events: Vec<Value>,
        batch_size: usize,
    ) -> hooks::DeliveryReport {
        hooks::deliver(&self.shared, url, authorization, events, batch_size).await
    }

    /// Delivers every System Log event logged from now on to an event hook at `url`, as Okta does
    /// once a hook is verified: in the `com.okta.event_hook` envelope, in batches, each retried
    /// once after a timeout or a 5xx. Delivery goes on in the background until the returned
    /// [`EventForwarder`] is dropped; its reports say how each batch went.
    pub fn forward_events(&self, url: &str, authorization: &str) -> hooks::EventForwarder {
        hooks::EventForwarder::start(self.shared.clone(), url, authorization)
    }

    /// Plays the demo org's live activity now (a [`SimBuilder::demo`] org; on another org only
    /// what applies): the new hire is activated and joins Engineering, Ada Lovelace joins
    /// "No-Code Builders", a breached credential is detected, and each seeded access request is
    /// created. Returns the uuids of the events logged, oldest first.
    pub fn play_demo_activity(&self) -> Vec<String> {
        let now = self.now();
        crate::demo::activity(&mut self.inner().org, now)
    }

    /// Stops serving and waits for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves until Ctrl-C (for the binary).
    pub async fn serve_until_ctrl_c(self) {
        let _ = tokio::signal::ctrl_c().await;
        self.shutdown().await;
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn rejected(error: ApiError) -> SimError {
    let mut summary = error.summary;
    if !error.causes.is_empty() {
        summary = format!("{summary} ({})", error.causes.join("; "));
    }
    SimError::Rejected { summary }
}
