//! [`OktaClient`]: the reqwest implementation of [`OktaApi`].
//!
//! Per connection (name and settings) it keeps:
//! - the OAuth access token, cached until a minute before it expires and fetched by one caller at a
//!   time, so concurrent steps that find it missing wait for that one fetch;
//! - the DPoP key and the latest nonces of the token endpoint and of the resource server;
//! - a semaphore bounding requests in flight (`concurrency`, default 50);
//! - when each rate-limit bucket is exhausted until. A bucket is the collection part of the path
//!   (`/api/v1/users`, `/api/v1/logs`, `/governance/api/v1/requests`, `/oauth2`), close to how Okta
//!   groups its limits. A response with `X-Rate-Limit-Remaining: 0` blocks its bucket until
//!   `X-Rate-Limit-Reset`; a 429 does too and is retried after the reset plus jitter. Waits longer
//!   than `max_wait` become [`OktaError::Throttled`] so the engine parks the run instead of a worker.
//!
//! Every wait and every age goes through the [`Clock`] port; answers are read, and their waits worked
//! out (against the org's `Date`), by [`crate::client`], as for the other connectors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::HeaderName;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use ring::rand::SystemRandom;
use serde_json::Value;
use tokio::sync::Semaphore;

use super::auth::{AssertionKey, DpopKey, JWT_BEARER, random_id};
use super::connection::{Connection, ConnectionAuth, OAuthSettings};
use super::{ApiError, OktaApi, OktaError, OktaRequest, OktaResponse, header_text};
use crate::client::{self, Answer, ReadError};
use domain::ports::{Clock, Secrets};

/// An access token is not used in its last minute, so it never expires in flight.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(60);
// Process-wide, as a metrics facade would be: every connection's client adds to them and the
// `/metrics` endpoint of `idflow serve` reads them, without a registry threaded through the cards.
static RATE_LIMIT_WAITS: AtomicU64 = AtomicU64::new(0);
static RATE_LIMIT_WAIT_MS: AtomicU64 = AtomicU64::new(0);
static RATE_LIMIT_HANDED_BACK: AtomicU64 = AtomicU64::new(0);

/// Rate-limit waits of every Okta connection of this process since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitWaits {
    /// Waits held in the worker (a bucket exhausted, or a 429, reset within `max_wait`).
    pub held: u64,
    /// Their total length, in milliseconds.
    pub held_ms: u64,
    /// Waits longer than `max_wait`, handed back to the engine, which parks the run instead.
    pub handed_back: u64,
}

/// The rate-limit waits counted so far (see [`RateLimitWaits`]).
pub fn rate_limit_waits() -> RateLimitWaits {
    RateLimitWaits {
        held: RATE_LIMIT_WAITS.load(Ordering::Relaxed),
        held_ms: RATE_LIMIT_WAIT_MS.load(Ordering::Relaxed),
        handed_back: RATE_LIMIT_HANDED_BACK.load(Ordering::Relaxed),
    }
}

/// 429s waited out for one request before it is handed back as [`OktaError::Throttled`].
const MAX_THROTTLE_WAITS: u32 = 4;
/// The least a 429 waits when the reset is already past (clock skew, a window that just turned).
const MIN_THROTTLE_WAIT: Duration = Duration::from_millis(250);

const DPOP: HeaderName = HeaderName::from_static("dpop");
const DPOP_NONCE: &str = "dpop-nonce";

/// The Okta client: one per process, shared by every step.
pub struct OktaClient {
    http: reqwest::Client,
    secrets: Arc<dyn Secrets>,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    /// Per connection name; replaced when the connection's settings change.
    states: Mutex<HashMap<String, Arc<ConnectionState>>>,
    /// splitmix64 state for jitter: cheap, and seedable for reproducible tests.
    jitter: AtomicU64,
}

/// What one connection shares across calls.
struct ConnectionState {
    connection: Connection,
    permits: Semaphore,
    /// Held while a token is fetched, so there is one fetch at a time.
    token: tokio::sync::Mutex<Option<AccessToken>>,
    dpop: Option<DpopKey>,
    /// The token endpoint's latest `DPoP-Nonce`.
    auth_nonce: Mutex<Option<String>>,
    /// The resource server's latest `DPoP-Nonce`.
    api_nonce: Mutex<Option<String>>,
    /// Rate-limit buckets exhausted until the given time.
    blocked: Mutex<HashMap<String, DateTime<Utc>>>,
}

#[derive(Clone)]
struct AccessToken {
    value: String,
    /// `Bearer` or `DPoP`.
    scheme: String,
    /// The clock's monotonic reading from which the token is no longer used.
    usable_until: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl OktaClient {
    /// A client with rustls, user agent `idflow/<version>`, and no redirects (Okta does not
    /// redirect API calls; following one could send credentials elsewhere). The org's `domain` is
    /// trusted configuration, and [`Connection::url`] keeps every request on its origin, so this
    /// client needs no egress resolver ([`crate::egress::configured_client`]).
    pub fn new(
        secrets: Arc<dyn Secrets>,
        clock: Arc<dyn Clock>,
    ) -> Result<OktaClient, reqwest::Error> {
        let http = crate::egress::configured_client()?;
        Ok(OktaClient::with_http(http, secrets, clock))
    }

    /// Wraps a reqwest client built elsewhere.
    pub fn with_http(
        http: reqwest::Client,
        secrets: Arc<dyn Secrets>,
        clock: Arc<dyn Clock>,
    ) -> OktaClient {
        // Seeded from the process and the time so that workers of one deployment do not all jitter
        // alike; tests that want a fixed sequence call `with_jitter_seed`.
        let seed = u64::from(std::process::id())
            ^ clock.now().timestamp_nanos_opt().unwrap_or_default() as u64;
        OktaClient {
            http,
            secrets,
            clock,
            rng: SystemRandom::new(),
            states: Mutex::new(HashMap::new()),
            jitter: AtomicU64::new(seed),
        }
    }

    /// Fixes the jitter sequence.
    pub fn with_jitter_seed(self, seed: u64) -> OktaClient {
        self.jitter.store(seed, Ordering::Relaxed);
        self
    }

    fn state(&self, connection: &Connection) -> Result<Arc<ConnectionState>, OktaError> {
        let mut states = lock(&self.states);
        if let Some(state) = states.get(&connection.name)
            && state.connection == *connection
        {
            return Ok(state.clone());
        }
        let dpop = match &connection.auth {
            ConnectionAuth::PrivateKeyJwt(settings) if settings.dpop => {
                Some(DpopKey::generate(&self.rng)?)
            }
            _ => None,
        };
        let state = Arc::new(ConnectionState {
            connection: connection.clone(),
            permits: Semaphore::new(connection.concurrency),
            token: tokio::sync::Mutex::new(None),
            dpop,
            auth_nonce: Mutex::new(None),
            api_nonce: Mutex::new(None),
            blocked: Mutex::new(HashMap::new()),
        });
        states.insert(connection.name.clone(), state.clone());
        Ok(state)
    }

    /// Up to a fifth of the wait, at least 50 ms and at most 1 s: enough to spread waiters that
    /// wake at the same reset, small against one-second windows.
    fn jitter(&self, wait: Duration) -> Duration {
        let cap = (wait / 5).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut z = self
            .jitter
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(1000);
        Duration::from_millis(z % (cap_ms + 1))
    }

    /// Waits while `bucket` is exhausted, or hands back `Throttled` when that is longer than the
    /// connection's `max_wait`.
    async fn wait_for_budget(
        &self,
        state: &ConnectionState,
        bucket: &str,
    ) -> Result<(), OktaError> {
        let until = lock(&state.blocked).get(bucket).copied();
        let Some(until) = until else {
            return Ok(());
        };
        let now = self.clock.now();
        match (until - now).to_std() {
            Ok(wait) if !wait.is_zero() => self.hold(state, bucket, now, wait).await,
            _ => {
                let mut blocked = lock(&state.blocked);
                if blocked.get(bucket) == Some(&until) {
                    blocked.remove(bucket);
                }
                Ok(())
            }
        }
    }

    /// Sleeps `wait` plus jitter, or returns `Throttled` when `wait` exceeds `max_wait`. Either way
    /// it is counted in [`rate_limit_waits`].
    async fn hold(
        &self,
        state: &ConnectionState,
        bucket: &str,
        now: DateTime<Utc>,
        wait: Duration,
    ) -> Result<(), OktaError> {
        let after = wait + self.jitter(wait);
        if wait > state.connection.max_wait {
            RATE_LIMIT_HANDED_BACK.fetch_add(1, Ordering::Relaxed);
            return Err(OktaError::Throttled {
                after,
                bucket: bucket.to_owned(),
            });
        }
        let deadline = now + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        RATE_LIMIT_WAITS.fetch_add(1, Ordering::Relaxed);
        RATE_LIMIT_WAIT_MS.fetch_add(
            u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.clock.sleep_until(deadline).await;
        Ok(())
    }

    /// After a 429: blocks the bucket until the reset and waits, or returns `Throttled`.
    async fn throttled(
        &self,
        state: &ConnectionState,
        bucket: &str,
        raw: &Answer,
        waits: u32,
    ) -> Result<(), OktaError> {
        let now = self.clock.now();
        let wait = raw
            .retry_after(self.clock.as_ref())
            .unwrap_or(Duration::ZERO)
            .max(MIN_THROTTLE_WAIT);
        let until = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        {
            let mut blocked = lock(&state.blocked);
            let entry = blocked.entry(bucket.to_owned()).or_insert(until);
            *entry = (*entry).max(until);
        }
        if waits > MAX_THROTTLE_WAITS {
            return Err(OktaError::Throttled {
                after: wait + self.jitter(wait),
                bucket: bucket.to_owned(),
            });
        }
        self.hold(state, bucket, now, wait).await
    }

    /// Sends one request under the connection's concurrency cap and records what the answer says
    /// about rate limits and DPoP nonces.
    async fn transmit(
        &self,
        state: &ConnectionState,
        bucket: &str,
        request: reqwest::RequestBuilder,
        nonce_slot: &Mutex<Option<String>>,
    ) -> Result<Answer, OktaError> {
        let raw = {
            // The semaphore is never closed, so acquiring fails only if it were; then go uncapped
            // rather than fail the step.
            let _permit = state.permits.acquire().await.ok();
            client::send(request).await.map_err(|error| match error {
                ReadError::TooLarge(too_large) => OktaError::TooLarge(too_large),
                ReadError::Transport(error) => network_error(error),
            })?
        };
        if let Some(nonce) = header_text(&raw.headers, DPOP_NONCE) {
            *lock(nonce_slot) = Some(nonce.to_owned());
        }
        if raw.status.as_u16() != 429
            && header_text(&raw.headers, "x-rate-limit-remaining")
                .and_then(|text| text.trim().parse::<u64>().ok())
                == Some(0)
            && let Some(wait) = raw
                .retry_after(self.clock.as_ref())
                .filter(|wait| !wait.is_zero())
        {
            let reset = self.clock.now()
                + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            let mut blocked = lock(&state.blocked);
            let entry = blocked.entry(bucket.to_owned()).or_insert(reset);
            *entry = (*entry).max(reset);
        }
        Ok(raw)
    }

    /// A cached access token, or a fresh one fetched by exactly one caller.
    async fn access_token(
        &self,
        state: &ConnectionState,
        settings: &OAuthSettings,
    ) -> Result<AccessToken, OktaError> {
        let mut slot = state.token.lock().await;
        if let Some(token) = slot.as_ref()
            && self.clock.monotonic() < token.usable_until
        {
            return Ok(token.clone());
        }
        let token = self.fetch_token(state, settings).await?;
        *slot = (self.clock.monotonic() < token.usable_until).then(|| token.clone());
        Ok(token)
    }

    /// Forgets `used` if it is still the cached token (another caller may have replaced it).
    async fn forget_token(&self, state: &ConnectionState, used: &str) {
        let mut slot = state.token.lock().await;
        if slot.as_ref().is_some_and(|token| token.value == used) {
            *slot = None;
        }
    }

    async fn fetch_token(
        &self,
        state: &ConnectionState,
        settings: &OAuthSettings,
    ) -> Result<AccessToken, OktaError> {
        let connection = &state.connection;
        let pem = self.secrets.resolve(&settings.key).await?;
        let key = AssertionKey::from_pem(pem.expose())?;
        let token_url = connection.token_url();
        let url = connection.url("/oauth2/v1/token", &[])?;
        let bucket = "/oauth2";
        let scope = settings.scopes.join(" ");
        let mut nonce_retried = false;
        let mut waits = 0;
        loop {
            self.wait_for_budget(state, bucket).await?;
            let now = self.clock.now();
            let assertion = key.assertion(
                &settings.client_id,
                settings.key_id.as_deref(),
                &token_url,
                now,
                &random_id(&self.rng)?,
            )?;
            let form = [
                ("grant_type", "client_credentials"),
                ("scope", scope.as_str()),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion.as_str()),
            ]
            .iter()
            .map(|(name, value)| format!("{name}={}", domain::template::percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            if let Some(dpop) = &state.dpop {
                let nonce = lock(&state.auth_nonce).clone();
                let proof = dpop.proof(&self.rng, "POST", &url, now, nonce.as_deref(), None)?;
                headers.insert(DPOP, header_value(&proof)?);
            }
            let request = self
                .http
                .post(url.clone())
                .headers(headers)
                .body(form.into_bytes());
            let raw = self
                .transmit(state, bucket, request, &state.auth_nonce)
                .await?;
            let body: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
            if raw.status.as_u16() == 429 {
                waits += 1;
                self.throttled(state, bucket, &raw, waits).await?;
                continue;
            }
            if !raw.status.is_success() {
                let error = body.get("error").and_then(Value::as_str);
                if error == Some("use_dpop_nonce") && state.dpop.is_some() && !nonce_retried {
                    // `transmit` kept the nonce from the `DPoP-Nonce` header; prove again with it.
                    nonce_retried = true;
                    continue;
                }
                return Err(api_error(
                    &raw,
                    "POST /oauth2/v1/token",
                    self.clock.as_ref(),
                ));
            }
            let Some(value) = body.get("access_token").and_then(Value::as_str) else {
                return Err(OktaError::Response(
                    "the token endpoint answered without an access_token".into(),
                ));
            };
            let scheme = match body.get("token_type").and_then(Value::as_str) {
                Some(kind) if kind.eq_ignore_ascii_case("dpop") => "DPoP",
                _ => "Bearer",
            };
            // A lifetime within the margin (or negative) leaves the token unusable from the start:
            // it serves this request and is not cached.
            let lifetime = body
                .get("expires_in")
                .and_then(Value::as_i64)
                .unwrap_or(3600);
            let usable = u64::try_from(lifetime)
                .map(Duration::from_secs)
                .unwrap_or(Duration::ZERO)
                .saturating_sub(TOKEN_EXPIRY_MARGIN);
            return Ok(AccessToken {
                value: value.to_owned(),
                scheme: scheme.to_owned(),
                usable_until: self.clock.monotonic().saturating_add(usable),
            });
        }
    }
}

#[async_trait]
impl OktaApi for OktaClient {
    async fn send(
        &self,
        connection: &Connection,
        request: OktaRequest,
    ) -> Result<OktaResponse, OktaError> {
        let state = self.state(connection)?;
        let url = connection.url(&request.path, &request.query)?;
        let bucket = bucket_of(url.path());
        let body = request
            .body
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|err| OktaError::Response(format!("cannot encode the body: {err}")))?;
        let method = request.method;
        let mut nonce_retried = false;
        let mut token_renewed = false;
        let mut waits = 0;
        loop {
            self.wait_for_budget(&state, &bucket).await?;
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            if body.is_some() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
            let mut used_token = None;
            match &connection.auth {
                ConnectionAuth::Ssws { token } => {
                    let token = self.secrets.resolve(token).await?;
                    let mut value = header_value(&format!("SSWS {}", token.expose()))?;
                    value.set_sensitive(true);
                    headers.insert(AUTHORIZATION, value);
                }
                ConnectionAuth::PrivateKeyJwt(settings) => {
                    let token = self.access_token(&state, settings).await?;
                    let mut value = header_value(&format!("{} {}", token.scheme, token.value))?;
                    value.set_sensitive(true);
                    headers.insert(AUTHORIZATION, value);
                    if let Some(dpop) = &state.dpop {
                        let nonce = lock(&state.api_nonce).clone();
                        let proof = dpop.proof(
                            &self.rng,
                            method.as_str(),
                            &url,
                            self.clock.now(),
                            nonce.as_deref(),
                            Some(&token.value),
                        )?;
                        headers.insert(DPOP, header_value(&proof)?);
                    }
                    used_token = Some(token.value);
                }
            }
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .headers(headers);
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let raw = self
                .transmit(&state, &bucket, request, &state.api_nonce)
                .await?;
            if raw.status.as_u16() == 429 {
                waits += 1;
                self.throttled(&state, &bucket, &raw, waits).await?;
                continue;
            }
            if raw.status.as_u16() == 401
                && let Some(used) = &used_token
            {
                let challenge = header_text(&raw.headers, WWW_AUTHENTICATE.as_str()).unwrap_or("");
                if state.dpop.is_some() && challenge.contains("use_dpop_nonce") && !nonce_retried {
                    nonce_retried = true;
                    continue;
                }
                if !token_renewed {
                    // Revoked or expired early: one more try with a fresh token.
                    token_renewed = true;
                    self.forget_token(&state, used).await;
                    continue;
                }
            }
            let target = format!("{method} {}", url.path());
            if !raw.status.is_success() {
                return Err(api_error(&raw, &target, self.clock.as_ref()));
            }
            let body = if raw.body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&raw.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&raw.body).into_owned())
                })
            };
            return Ok(OktaResponse {
                status: raw.status.as_u16(),
                headers: raw.headers,
                body,
            });
        }
    }
}

/// The rate-limit bucket of a path: its collection part.
fn bucket_of(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let keep = match segments.first().copied() {
        Some("api") => 3,
        Some("governance") => 4,
        _ => 1,
    };
    let kept: Vec<&str> = segments.into_iter().take(keep).collect();
    format!("/{}", kept.join("/"))
}

fn header_value(text: &str) -> Result<HeaderValue, OktaError> {
    HeaderValue::from_str(text).map_err(|_| {
        OktaError::Key("a credential contains characters not allowed in a header".into())
    })
}

fn network_error(error: reqwest::Error) -> OktaError {
    // reqwest's message may hold the URL with its query, which carries no secret here (credentials
    // travel in headers).
    OktaError::Network(error.to_string())
}

/// An error answer as [`OktaError::Api`]: Okta's fields, or OAuth's `error` and
/// `error_description`, or the status when the body is neither.
fn api_error(raw: &Answer, target: &str, clock: &dyn Clock) -> OktaError {
    let body: Option<Value> = serde_json::from_slice(&raw.body).ok();
    let text = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (code, summary, shaped) = match (text("errorCode"), text("error")) {
        (Some(code), _) => (Some(code), text("errorSummary").unwrap_or_default(), true),
        (None, Some(error)) => (
            Some(error),
            text("error_description").unwrap_or_default(),
            true,
        ),
        (None, None) => (
            None,
            format!("{target} answered {}", raw.status.as_u16()),
            false,
        ),
    };
    let causes = body
        .as_ref()
        .and_then(|b| b.get("errorCauses"))
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let retry_after = raw.retry_after(clock);
    let leftover = if shaped || raw.body.is_empty() {
        None
    } else {
        Some(body.unwrap_or_else(|| Value::String(String::from_utf8_lossy(&raw.body).into_owned())))
    };
    OktaError::Api(Box::new(ApiError {
        status: raw.status.as_u16(),
        code,
        summary,
        causes,
        request_id: header_text(&raw.headers, "x-okta-request-id").map(str::to_owned),
        retry_after,
        body: leftover,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okta::connection::Connection;
    use domain::cards::CardError;
    use domain::model::SecretRef;
    use domain::ports::{SecretError, SecretValue};

    struct TokenSecrets;

    #[async_trait]
    impl Secrets for TokenSecrets {
        async fn resolve(&self, _: &SecretRef) -> Result<SecretValue, SecretError> {
            Ok(SecretValue::new("00-ssws-s3cr3t"))
        }
    }

    #[tokio::test]
    async fn a_redirect_from_the_org_is_not_followed_so_the_token_stays_there() {
        // A listener nobody serves: a connection to it would wait in its accept queue.
        let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        elsewhere.set_nonblocking(true).unwrap();
        let target = format!("http://{}/api/v1/users", elsewhere.local_addr().unwrap());
        let org = axum::Router::new().fallback(move || {
            let target = target.clone();
            async move {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [("location", target)],
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let domain = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, org).await });
        let connection = Connection::parse(
            "okta",
            &serde_json::json!({ "domain": domain, "auth": { "type": "ssws", "token": "env:T" } }),
        )
        .unwrap();
        let client =
            OktaClient::new(Arc::new(TokenSecrets), Arc::new(domain::clock::SystemClock)).unwrap();

        let got = client
            .send(&connection, OktaRequest::get("/api/v1/users/me"))
            .await;
        match got {
            Err(OktaError::Api(error)) => assert_eq!(error.status, 307),
            other => panic!("expected the 307 as an error, got {other:?}"),
        }
        assert!(
            elsewhere.accept().is_err(),
            "nothing (no SSWS token) was sent where the redirect pointed"
        );
    }

    /// An org at a fresh local address answering every request with `answer`; an SSWS connection
    /// to it with `max_wait: 10s`.
    async fn org(answer: axum::Router) -> Connection {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let domain = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, answer).await });
        Connection::parse(
            "okta",
            &serde_json::json!({ "domain": domain, "max_wait": "10s", "auth": { "type": "ssws", "token": "env:T" } }),
        )
        .unwrap()
    }

    /// The client measured `X-Rate-Limit-Reset` against its own clock: an hour behind the org's, a
    /// 20 s reset looked like a wait of an hour. It now measures against the org's `Date`.
    #[tokio::test]
    async fn a_rate_limit_reset_is_measured_on_the_orgs_clock() {
        let connection = org(axum::Router::new().fallback(|| async {
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [
                    ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                    ("x-rate-limit-remaining", "0"),
                    ("x-rate-limit-reset", "1445412500"),
                ],
            )
        }))
        .await;
        let an_hour_behind = DateTime::from_timestamp(1_445_412_480 - 3600, 0).unwrap();
        let clock = domain::clock::ManualClock::new(an_hour_behind);
        let client = OktaClient::new(Arc::new(TokenSecrets), Arc::new(clock)).unwrap();
        // 20 s is over `max_wait`, so the wait is handed back instead of held: its length shows.
        match client
            .send(&connection, OktaRequest::get("/api/v1/users/me"))
            .await
        {
            Err(OktaError::Throttled { after, bucket }) => {
                assert_eq!(bucket, "/api/v1/users");
                assert!(
                    after >= Duration::from_secs(20) && after <= Duration::from_secs(21),
                    "{after:?}"
                );
            }
            other => panic!("expected Throttled, got {other:?}"),
        }
    }

    /// The client stopped at 10 MiB with a retryable "unusable answer"; now the one error of every
    /// connector, not retried.
    #[tokio::test]
    async fn an_oversized_answer_is_refused_and_not_retried() {
        let connection = org(axum::Router::new()
            .fallback(|| async { vec![b' '; crate::client::MAX_RESPONSE_BYTES + 1] }))
        .await;
        let client =
            OktaClient::new(Arc::new(TokenSecrets), Arc::new(domain::clock::SystemClock)).unwrap();
        let error = client
            .send(&connection, OktaRequest::get("/api/v1/users/me"))
            .await
            .unwrap_err();
        assert!(!error.is_retryable(), "{error:?}");
        match CardError::from(error) {
            CardError::Failed {
                code, retryable, ..
            } => assert_eq!((code.as_str(), retryable), ("response_too_large", false)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn buckets_group_paths_by_collection() {
        let check = |path: &str, expected: &str| assert_eq!(bucket_of(path), expected, "{path}");
        check("/api/v1/users", "/api/v1/users");
        check("/api/v1/users/00u1/lifecycle/suspend", "/api/v1/users");
        check("/api/v1/groups/00g1/users/00u1", "/api/v1/groups");
        check("/api/v1/logs", "/api/v1/logs");
        check(
            "/governance/api/v2/requests/req1/messages",
            "/governance/api/v2/requests",
        );
        check("/oauth2/v1/token", "/oauth2");
        check("/", "/");
    }
}
