//! `http.request`: any HTTP API, with bearer, basic, custom-header or OAuth 2.0 client-credentials
//! auth and timeouts.
//!
//! The executor validates the rendered `with:` object into a request, checks its URL (and a
//! client-credentials `token_url`) against the project's egress policy, sends it with reqwest (rustls,
//! at most five redirects, each checked against the policy, names resolved by the policy's resolver)
//! and answers `{ status, headers, body }`. Failures are classified for retry policies: a non-2xx
//! answer is [`CardError::Status`] (with `Retry-After` when the server sent one), an unreachable host
//! is [`CardError::Network`], a destination the policy refuses is a non-retryable
//! [`CardError::Failed`] with code `egress_denied` (see [`crate::egress`]), and a call that outlives
//! the step timeout is [`CardError::Timeout`]. Responses larger than [`MAX_RESPONSE_BYTES`] are
//! refused rather than held in memory ([`crate::client`], shared with the other connectors).
//! Client-credentials tokens are cached per executor until shortly before they expire, measured on
//! the [`Clock`] port's monotonic reading.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

use crate::client::{self, ReadError};
use crate::egress::{CheckedClients, EgressDenied, EgressPolicy, Lookup};
use domain::cards::fields::{Fields, invalid};
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::ports::Clock;

pub use crate::client::MAX_RESPONSE_BYTES;
/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Executes `http.request`.
pub struct HttpExecutor {
    /// Clients that enforce the egress policy of the calling project.
    clients: CheckedClients,
    /// Reads `Retry-After` dates and ages the token cache.
    clock: Arc<dyn Clock>,
    /// Client-credentials access tokens by token request, with the clock's monotonic reading at
    /// which they stop being used.
    tokens: Mutex<HashMap<ClientCredentials, (String, Duration)>>,
}

/// A token is dropped this long before the provider says it expires, so it never expires in flight.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(30);

impl HttpExecutor {
    /// An executor with rustls, user agent `idflow/<version>`, at most [`MAX_REDIRECTS`] redirects
    /// and the system resolver, under the egress policy of each call's project.
    pub fn new(clock: Arc<dyn Clock>) -> Result<HttpExecutor, reqwest::Error> {
        Ok(HttpExecutor::with_clients(
            CheckedClients::new(MAX_REDIRECTS)?,
            clock,
        ))
    }

    /// The same, resolving names through `lookup` (tests give names fixed addresses).
    pub fn with_lookup(
        lookup: Arc<dyn Lookup>,
        clock: Arc<dyn Clock>,
    ) -> Result<HttpExecutor, reqwest::Error> {
        Ok(HttpExecutor::with_clients(
            CheckedClients::with_lookup(lookup, MAX_REDIRECTS)?,
            clock,
        ))
    }

    /// An executor over clients built elsewhere (fixed own addresses in tests).
    pub fn with_clients(clients: CheckedClients, clock: Arc<dyn Clock>) -> HttpExecutor {
        HttpExecutor {
            clients,
            clock,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    async fn send(&self, client: &reqwest::Client, request: Request) -> Result<Value, CardError> {
        let Request {
            method,
            url,
            mut headers,
            body,
            client_credentials,
        } = request;
        if let Some(credentials) = &client_credentials {
            let token = self.access_token(client, credentials).await?;
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| invalid("auth", "the token endpoint returned an unusable token"))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = client.request(method.clone(), url.clone()).headers(headers);
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let answer = client::send(builder).await.map_err(read_error)?;
        let status = answer.status;
        let response_headers = headers_json(&answer.headers);
        let retry_after = answer.retry_after(self.clock.as_ref());
        let is_json = answer
            .headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.to_ascii_lowercase().contains("json"));
        let bytes = answer.body;
        let body = if bytes.is_empty() {
            Value::Null
        } else if is_json {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        if status.is_success() {
            return Ok(
                json!({ "status": status.as_u16(), "headers": response_headers, "body": body }),
            );
        }
        if let (Some(credentials), reqwest::StatusCode::UNAUTHORIZED) =
            (&client_credentials, status)
        {
            // The token may have been revoked early: the next attempt fetches a fresh one.
            self.tokens
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(credentials);
        }
        // The query string is left out of the message: it may carry tokens.
        let target = format!("{}{}", url.host_str().unwrap_or(""), url.path());
        Err(CardError::Status {
            status: status.as_u16(),
            message: format!("{method} {target} answered {status}"),
            detail: Some(body),
            retry_after,
        })
    }
}

impl HttpExecutor {
    /// A cached or freshly requested client-credentials access token.
    async fn access_token(
        &self,
        client: &reqwest::Client,
        credentials: &ClientCredentials,
    ) -> Result<String, CardError> {
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(credentials)
            .cloned();
        if let Some((token, until)) = cached
            && self.clock.monotonic() < until
        {
            return Ok(token);
        }
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &credentials.scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = &credentials.audience {
            form.push(("audience", audience));
        }
        if credentials.secret_in_body {
            form.push(("client_id", &credentials.client_id));
            form.push(("client_secret", &credentials.client_secret));
        }
        let body = form
            .iter()
            .map(|(name, value)| format!("{name}={}", domain::template::percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = client
            .post(credentials.token_url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if !credentials.secret_in_body {
            request = request.basic_auth(&credentials.client_id, Some(&credentials.client_secret));
        }
        let response = client::send(request).await.map_err(read_error)?;
        let status = response.status;
        let retry_after = response.retry_after(self.clock.as_ref());
        let bytes = response.body;
        let answer: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        let target = format!(
            "{}{}",
            credentials.token_url.host_str().unwrap_or(""),
            credentials.token_url.path()
        );
        if !status.is_success() {
            return Err(CardError::Status {
                status: status.as_u16(),
                message: format!("token endpoint {target} answered {status}"),
                detail: Some(answer),
                retry_after,
            });
        }
        let Some(token) = answer
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(CardError::Failed {
                code: "token_response".into(),
                message: format!("token endpoint {target} answered without an access_token"),
                retryable: false,
            });
        };
        let lifetime = answer
            .get("expires_in")
            .and_then(Value::as_u64)
            .map_or(Duration::from_secs(300), Duration::from_secs);
        if let Some(usable) = lifetime
            .checked_sub(TOKEN_EXPIRY_MARGIN)
            .filter(|usable| !usable.is_zero())
        {
            let now = self.clock.monotonic();
            let mut tokens = self
                .tokens
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            tokens.retain(|_, (_, until)| now < *until);
            tokens.insert(
                credentials.clone(),
                (token.clone(), now.saturating_add(usable)),
            );
        }
        Ok(token)
    }
}

#[async_trait]
impl CardExecutor for HttpExecutor {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        if call.card != "http.request" {
            return Err(CardError::Failed {
                code: "unknown_card".into(),
                message: format!("the http executor does not run `{}`", call.card),
                retryable: false,
            });
        }
        let request = Request::from_input(&call.input)?;
        let (policy, client) =
            self.clients
                .for_project(&call.project)
                .map_err(|error| CardError::Failed {
                    code: "http_client".into(),
                    message: format!("cannot build the HTTP client: {}", error.without_url()),
                    retryable: false,
                })?;
        check_destinations(&policy, &request)?;
        match tokio::time::timeout(call.timeout, self.send(&client, request)).await {
            Ok(result) => result,
            Err(_) => Err(CardError::Timeout(call.timeout)),
        }
    }
}

/// Refuses a request whose URL or token endpoint the policy denies, before anything is sent. Names
/// that need resolving are checked again by the client's resolver, on the addresses it connects to.
fn check_destinations(policy: &EgressPolicy, request: &Request) -> Result<(), CardError> {
    policy.check_url(&request.url).map_err(egress_denied)?;
    if let Some(credentials) = &request.client_credentials {
        policy
            .check_url(&credentials.token_url)
            .map_err(egress_denied)?;
    }
    Ok(())
}

/// A refusal of the egress policy: never retried, since the same request is refused again.
fn egress_denied(denied: EgressDenied) -> CardError {
    CardError::Failed {
        code: "egress_denied".into(),
        message: denied.to_string(),
        retryable: false,
    }
}

/// A validated request.
#[derive(Debug)]
struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    /// `auth: { type: client_credentials }`: the bearer token is fetched just before sending.
    client_credentials: Option<ClientCredentials>,
}

/// An OAuth 2.0 client-credentials token request; also the key of the token cache.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientCredentials {
    token_url: Url,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    audience: Option<String>,
    /// `client_auth: body` sends the id and secret as form fields instead of HTTP Basic.
    secret_in_body: bool,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What `auth:` adds to a request.
enum Auth {
    Header(HeaderName, String),
    ClientCredentials(ClientCredentials),
}

impl Request {
    fn from_input(input: &Value) -> Result<Request, CardError> {
        let input = Fields::of_call(input)?;
        let method = match input.optional_text("method")? {
            None => Method::GET,
            Some(name) => {
                let name = name.trim().to_ascii_uppercase();
                match name.as_str() {
                    "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
                        Method::from_bytes(name.as_bytes())
                            .map_err(|_| invalid("method", format!("unknown method `{name}`")))?
                    }
                    _ => {
                        return Err(invalid(
                            "method",
                            format!(
                                "unknown method `{name}`; expected GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS"
                            ),
                        ));
                    }
                }
            }
        };

        let mut url = Url::parse(input.text("url")?.trim())
            .map_err(|err| invalid("url", format!("not a valid URL: {err}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                "url",
                format!(
                    "only http and https URLs are allowed, got `{}:`",
                    url.scheme()
                ),
            ));
        }

        if let Some(pairs) = input.optional_pairs("query")?
            && !pairs.is_empty()
        {
            url.query_pairs_mut().extend_pairs(pairs);
        }

        let mut headers = HeaderMap::new();
        for (name, text) in input.optional_pairs("headers")?.unwrap_or_default() {
            let field = format!("headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&field, "not a valid header name"))?;
            let value = HeaderValue::from_str(&text)
                .map_err(|_| invalid(&field, "not a valid header value"))?;
            headers.append(header, value);
        }

        let mut client_credentials = None;
        match input
            .nested("auth")?
            .map(|auth| auth_plan(&auth))
            .transpose()?
        {
            None => {}
            Some(Auth::Header(name, value)) => {
                let mut value = HeaderValue::from_str(&value)
                    .map_err(|_| invalid("auth", "the credentials are not a valid header value"))?;
                value.set_sensitive(true);
                headers.insert(name, value);
            }
            Some(Auth::ClientCredentials(credentials)) => client_credentials = Some(credentials),
        }

        let body = match (input.value("body"), input.optional_pairs("form")?) {
            (Some(_), Some(_)) => {
                return Err(invalid("form", "give either `body` or `form`, not both"));
            }
            (None, None) => None,
            (None, Some(form)) => {
                let mut pairs = Vec::new();
                for (name, text) in form {
                    pairs.push(format!(
                        "{}={}",
                        domain::template::percent_encode(&name),
                        domain::template::percent_encode(&text)
                    ));
                }
                set_default(&mut headers, "application/x-www-form-urlencoded");
                Some(pairs.join("&").into_bytes())
            }
            (Some(Value::String(text)), None) => {
                set_default(&mut headers, "text/plain; charset=utf-8");
                Some(text.clone().into_bytes())
            }
            (Some(other), None) => {
                set_default(&mut headers, "application/json");
                Some(serde_json::to_vec(other).map_err(|err| invalid("body", err.to_string()))?)
            }
        };

        Ok(Request {
            method,
            url,
            headers,
            body,
            client_credentials,
        })
    }
}

fn set_default(headers: &mut HeaderMap, content_type: &'static str) {
    if !headers.contains_key(CONTENT_TYPE) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
}

/// What `auth:` asks for; `auth` reads its fields, so errors name `auth.<field>`.
fn auth_plan(auth: &Fields<'_>) -> Result<Auth, CardError> {
    let kind = auth.text("type")?;
    match kind.as_ref() {
        "bearer" => Ok(Auth::Header(
            AUTHORIZATION,
            format!("Bearer {}", auth.text("token")?),
        )),
        "basic" => {
            let credentials = format!("{}:{}", auth.text("username")?, auth.text("password")?);
            Ok(Auth::Header(
                AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                ),
            ))
        }
        "header" => {
            let header = HeaderName::from_bytes(auth.text("name")?.as_bytes())
                .map_err(|_| auth.invalid("name", "not a valid header name"))?;
            Ok(Auth::Header(header, auth.text("value")?.into_owned()))
        }
        "client_credentials" => {
            let token_url = Url::parse(auth.text("token_url")?.trim())
                .map_err(|err| auth.invalid("token_url", format!("not a valid URL: {err}")))?;
            if !matches!(token_url.scheme(), "http" | "https") {
                return Err(auth.invalid("token_url", "only http and https URLs are allowed"));
            }
            let secret_in_body = match auth.optional_text("client_auth")?.as_deref() {
                None | Some("basic") => false,
                Some("body") => true,
                Some(other) => {
                    return Err(auth.invalid(
                        "client_auth",
                        format!("unknown client auth `{other}`; expected basic or body"),
                    ));
                }
            };
            Ok(Auth::ClientCredentials(ClientCredentials {
                token_url,
                client_id: auth.text("client_id")?.into_owned(),
                client_secret: auth.text("client_secret")?.into_owned(),
                scope: auth.optional_text("scope")?.map(Cow::into_owned),
                audience: auth.optional_text("audience")?.map(Cow::into_owned),
                secret_in_body,
            }))
        }
        other => Err(auth.invalid(
            "type",
            format!(
                "unknown auth type `{other}`; expected bearer, basic, header or client_credentials"
            ),
        )),
    }
}

fn headers_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        map.insert(name.as_str().to_owned(), Value::String(values.join(", ")));
    }
    Value::Object(map)
}

/// A failed send or read: an oversized answer, or a transport error ([`send_error`]).
fn read_error(error: ReadError) -> CardError {
    match error {
        ReadError::TooLarge(too_large) => too_large.into(),
        ReadError::Transport(error) => send_error(error),
    }
}

/// Classifies a transport error. The URL is removed (its query may hold a token) and the causes are
/// kept, since reqwest's own message ("error sending request") says little.
fn send_error(err: reqwest::Error) -> CardError {
    if let Some(denied) = EgressDenied::find_in(&err) {
        return egress_denied(denied.clone());
    }
    if err.is_redirect() {
        return CardError::Failed {
            code: "too_many_redirects".into(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
            retryable: false,
        };
    }
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    CardError::Network(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::extract::{Path, RawQuery};
    use axum::http::{HeaderMap as AxumHeaders, Method as AxumMethod, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{any, get};

    use crate::egress::Allow;
    use chrono::{DateTime, Utc};
    use domain::clock::{ManualClock, SystemClock};
    use domain::model::ProjectConfig;
    use domain::run::RunId;

    /// The clock of tests that run against a live local server and need no control of time.
    fn system() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default()
    }

    async fn echo(
        method: AxumMethod,
        RawQuery(query): RawQuery,
        headers: AxumHeaders,
        body: Bytes,
    ) -> Response {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        axum::Json(json!({
            "method": method.as_str(),
            "query": query,
            "authorization": header("authorization"),
            "x_api_key": header("x-api-key"),
            "content_type": header("content-type"),
            "user_agent": header("user-agent"),
            "body": String::from_utf8_lossy(&body),
        }))
        .into_response()
    }

    async fn status(Path(code): Path<u16>) -> Response {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT);
        let mut response = (
            code,
            axum::Json(json!({ "errorCode": "E0000007", "errorSummary": "Not found" })),
        )
            .into_response();
        let headers = response.headers_mut();
        if code == StatusCode::TOO_MANY_REQUESTS {
            headers.insert("retry-after", HeaderValue::from_static("7"));
        }
        if code == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                "date",
                HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
            );
            headers.insert(
                "retry-after",
                HeaderValue::from_static("Wed, 21 Oct 2015 07:30:00 GMT"),
            );
        }
        response
    }

    static TOKEN_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// A token endpoint: client `app` / secret `pw` by Basic or form fields; `expires_in` comes from
    /// the `scope` so tests pick whether the token is cached.
    async fn token(headers: AxumHeaders, body: Bytes) -> Response {
        TOKEN_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let form = String::from_utf8_lossy(&body).into_owned();
        let basic = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            == Some("Basic YXBwOnB3");
        let in_body = form.contains("client_id=app") && form.contains("client_secret=pw");
        if !form.contains("grant_type=client_credentials") || !(basic || in_body) {
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({ "error": "invalid_client" })),
            )
                .into_response();
        }
        let expires_in = if form.contains("scope=short") {
            10
        } else {
            3600
        };
        axum::Json(json!({ "access_token": format!("tok-{}", TOKEN_CALLS.load(std::sync::atomic::Ordering::SeqCst)), "token_type": "Bearer", "expires_in": expires_in })).into_response()
    }

    async fn server() -> String {
        let app = Router::new()
            .route("/echo", any(echo))
            .route("/token", axum::routing::post(token))
            .route("/text", get(|| async { "plain text" }))
            .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
            .route("/status/{code}", get(status))
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [("location", "/text")]) }),
            )
            .route(
                "/loop",
                get(|| async { (StatusCode::FOUND, [("location", "/loop")]) }),
            )
            .route("/hang", get(std::future::pending::<&'static str>))
            .route(
                "/to",
                get(|RawQuery(query): RawQuery| async move {
                    // `/to?<url>` redirects to the URL given as the whole query.
                    let target = query.unwrap_or_default();
                    (StatusCode::FOUND, [("location", target)])
                }),
            )
            .route("/big", get(|| async { vec![b'x'; MAX_RESPONSE_BYTES + 1] }))
            .route(
                "/big-stream",
                get(|| async {
                    let chunks = (0..11)
                        .map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 1024 * 1024])));
                    Body::from_stream(futures::stream::iter(chunks))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    /// A project whose `egress.allow` lists the test server at `base` (`http://127.0.0.1:<port>`),
    /// or the default project for an empty `base`.
    fn allowing(base: &str) -> Arc<ProjectConfig> {
        let mut project = ProjectConfig::default();
        if let Some(host) = base.strip_prefix("http://") {
            project.egress.allow.push(Allow::parse(host).unwrap());
        }
        Arc::new(project)
    }

    /// Runs `http.request` with `input` in a project that allows the test server at `base`.
    async fn call(base: &str, input: Value, timeout: Duration) -> Result<Value, CardError> {
        run(
            &HttpExecutor::new(system()).unwrap(),
            allowing(base),
            input,
            timeout,
        )
        .await
    }

    async fn run(
        executor: &HttpExecutor,
        project: Arc<ProjectConfig>,
        input: Value,
        timeout: Duration,
    ) -> Result<Value, CardError> {
        let call = CardCall {
            card: "http.request".into(),
            input,
            timeout,
            run_id: RunId::new_at(t0()),
            step: "s1".into(),
            attempt: 1,
            project,
        };
        executor.execute(&call).await
    }

    /// Calls the test server with `input` (`url` relative to it) and compares the part of the output
    /// `expected` names (`status`, `body`, ...) or the error.
    async fn check(base: &str, mut input: Value, expected: Result<Value, CardError>) {
        input["url"] = json!(format!("{base}{}", input["url"].as_str().unwrap_or("")));
        let got = call(base, input.clone(), Duration::from_secs(5)).await;
        match (got, expected) {
            (Ok(output), Ok(Value::Object(fields))) => {
                for (name, value) in fields {
                    assert_eq!(output[&name], value, "{input}: {name} in {output}");
                }
            }
            (got, expected) => assert_eq!(got, expected, "{input}"),
        }
    }

    #[tokio::test]
    async fn sends_methods_bodies_and_query() {
        let base = server().await;
        check(&base, json!({ "url": "/echo" }), Ok(json!({ "status": 200, "body": { "method": "GET", "query": null, "authorization": null, "x_api_key": null, "content_type": null, "user_agent": concat!("idflow/", env!("CARGO_PKG_VERSION")), "body": "" } }))).await;
        let got = call(
            &base,
            json!({ "method": "post", "url": format!("{base}/echo"), "body": { "a": 1 } }),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            (
                got["body"]["method"].clone(),
                got["body"]["content_type"].clone(),
                got["body"]["body"].clone()
            ),
            (json!("POST"), json!("application/json"), json!("{\"a\":1}"))
        );
        assert_eq!(got["headers"]["content-type"], json!("application/json"));
        let got = call(
            &base,
            json!({ "method": "PUT", "url": format!("{base}/echo"), "body": "raw <text>" }),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(
            (
                got["body"]["method"].clone(),
                got["body"]["content_type"].clone(),
                got["body"]["body"].clone()
            ),
            (
                json!("PUT"),
                json!("text/plain; charset=utf-8"),
                json!("raw <text>")
            )
        );
        let got = call(&base, json!({ "method": "PATCH", "url": format!("{base}/echo"), "body": [1], "headers": { "content-type": "application/merge-patch+json" } }), Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            got["body"]["content_type"],
            json!("application/merge-patch+json")
        );
        let got = call(&base, json!({ "method": "POST", "url": format!("{base}/echo"), "form": { "grant_type": "client_credentials", "scope": "a b" } }), Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            (
                got["body"]["content_type"].clone(),
                got["body"]["body"].clone()
            ),
            (
                json!("application/x-www-form-urlencoded"),
                json!("grant_type=client_credentials&scope=a%20b")
            )
        );
        let got = call(&base, json!({ "method": "DELETE", "url": format!("{base}/echo?keep=1"), "query": { "q": "a b", "n": 2, "tag": ["x", "y"], "skip": null } }), Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            (got["body"]["method"].clone(), got["body"]["query"].clone()),
            (json!("DELETE"), json!("keep=1&q=a+b&n=2&tag=x&tag=y"))
        );
        check(
            &base,
            json!({ "url": "/text" }),
            Ok(json!({ "status": 200, "body": "plain text" })),
        )
        .await;
        check(
            &base,
            json!({ "url": "/empty" }),
            Ok(json!({ "status": 204, "body": null })),
        )
        .await;
        check(
            &base,
            json!({ "url": "/redirect" }),
            Ok(json!({ "status": 200, "body": "plain text" })),
        )
        .await;
        check(
            &base,
            json!({ "method": "HEAD", "url": "/text" }),
            Ok(json!({ "status": 200, "body": null })),
        )
        .await;
    }

    #[tokio::test]
    async fn sends_each_kind_of_auth() {
        let base = server().await;
        let seen = |auth: Value| {
            let base = base.clone();
            async move {
                call(
                    &base,
                    json!({ "url": format!("{base}/echo"), "auth": auth }),
                    Duration::from_secs(5),
                )
                .await
                .unwrap()["body"]
                    .clone()
            }
        };
        assert_eq!(
            seen(json!({ "type": "bearer", "token": "t0k" })).await["authorization"],
            json!("Bearer t0k")
        );
        assert_eq!(
            seen(json!({ "type": "basic", "username": "user", "password": "pass" })).await["authorization"],
            json!("Basic dXNlcjpwYXNz")
        );
        assert_eq!(
            seen(json!({ "type": "header", "name": "X-Api-Key", "value": "k3y" })).await["x_api_key"],
            json!("k3y")
        );
        let err = call(
            &base,
            json!({ "url": format!("{base}/echo"), "auth": { "type": "digest" } }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            invalid(
                "auth.type",
                "unknown auth type `digest`; expected bearer, basic, header or client_credentials"
            )
        );
        let err = call(
            &base,
            json!({ "url": format!("{base}/echo"), "auth": { "type": "bearer" } }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(err, invalid("auth.token", "is required"));
    }

    #[tokio::test]
    async fn fetches_and_caches_client_credentials_tokens() {
        let base = server().await;
        let executor = HttpExecutor::new(system()).unwrap();
        let run = |auth: Value| {
            let call = CardCall {
                card: "http.request".into(),
                input: json!({ "url": format!("{base}/echo"), "auth": auth }),
                timeout: Duration::from_secs(5),
                run_id: RunId::new_at(t0()),
                step: "s1".into(),
                attempt: 1,
                project: allowing(&base),
            };
            let executor = &executor;
            async move { executor.execute(&call).await }
        };
        let auth = |scope: &str, client_auth: &str, secret: &str| json!({ "type": "client_credentials", "token_url": format!("{base}/token"), "client_id": "app", "client_secret": secret, "scope": scope, "client_auth": client_auth });
        let calls = || TOKEN_CALLS.load(std::sync::atomic::Ordering::SeqCst);
        let before = calls();
        let first = run(auth("long", "basic", "pw")).await.unwrap();
        let second = run(auth("long", "basic", "pw")).await.unwrap();
        assert!(
            first["body"]["authorization"]
                .as_str()
                .unwrap()
                .starts_with("Bearer tok-"),
            "{first}"
        );
        assert_eq!(
            first["body"]["authorization"],
            second["body"]["authorization"]
        );
        assert_eq!(
            calls() - before,
            1,
            "the second call reuses the cached token"
        );

        // A token that expires within the safety margin is never cached.
        let before = calls();
        run(auth("short", "body", "pw")).await.unwrap();
        run(auth("short", "body", "pw")).await.unwrap();
        assert_eq!(calls() - before, 2);

        match run(auth("long", "basic", "wrong")).await {
            Err(CardError::Status {
                status: 401,
                message,
                detail,
                ..
            }) => {
                assert!(
                    message.starts_with("token endpoint 127.0.0.1/token answered 401"),
                    "{message}"
                );
                assert_eq!(detail, Some(json!({ "error": "invalid_client" })));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn maps_error_statuses_and_retry_after() {
        let base = server().await;
        let detail = Some(json!({ "errorCode": "E0000007", "errorSummary": "Not found" }));
        let status_error = |status: u16, reason: &str, retry_after: Option<Duration>| {
            Err(CardError::Status {
                status,
                message: format!("GET 127.0.0.1/status/{status} answered {status} {reason}"),
                detail: detail.clone(),
                retry_after,
            })
        };
        check(
            &base,
            json!({ "url": "/status/404" }),
            status_error(404, "Not Found", None),
        )
        .await;
        check(
            &base,
            json!({ "url": "/status/500" }),
            status_error(500, "Internal Server Error", None),
        )
        .await;
        check(
            &base,
            json!({ "url": "/status/429" }),
            status_error(429, "Too Many Requests", Some(Duration::from_secs(7))),
        )
        .await;
        check(
            &base,
            json!({ "url": "/status/503" }),
            status_error(503, "Service Unavailable", Some(Duration::from_secs(120))),
        )
        .await;
        let err = call(
            &base,
            json!({ "url": format!("{base}/status/404") }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(!err.is_retryable());
        let err = call(
            &base,
            json!({ "url": format!("{base}/status/429") }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn times_out_and_reports_network_errors() {
        let base = server().await;
        let timeout = Duration::from_millis(200);
        assert_eq!(
            call(&base, json!({ "url": format!("{base}/hang") }), timeout).await,
            Err(CardError::Timeout(timeout))
        );

        // A port that was just free: nothing listens there.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let err = call(
            &format!("http://{address}"),
            json!({ "url": format!("http://{address}/x?token=s3cr3t") }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, CardError::Network(message) if !message.contains("s3cr3t")),
            "{err:?}"
        );
        assert!(err.is_retryable());

        let err = call(
            &base,
            json!({ "url": format!("{base}/loop") }),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, CardError::Failed { code, .. } if code == "too_many_redirects"),
            "{err:?}"
        );
    }

    /// Names with fixed addresses, counting lookups: a name "resolving" to loopback without DNS.
    #[derive(Default)]
    struct FixedLookup {
        names: HashMap<String, Vec<std::net::IpAddr>>,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl FixedLookup {
        fn with(names: &[(&str, &str)]) -> Arc<FixedLookup> {
            Arc::new(FixedLookup {
                names: names
                    .iter()
                    .map(|(name, ip)| ((*name).to_owned(), vec![ip.parse().unwrap()]))
                    .collect(),
                lookups: Default::default(),
            })
        }

        fn lookups(&self) -> usize {
            self.lookups.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    impl Lookup for FixedLookup {
        fn lookup(
            &self,
            host: &str,
        ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<std::net::IpAddr>>> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let found = self.names.get(host).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, format!("no {host}"))
            });
            Box::pin(async move { found })
        }
    }

    /// A listener nobody serves: a connection made to it waits in its accept queue, so an empty
    /// queue after a call proves nothing (no header, no secret) reached it.
    struct Recorder(std::net::TcpListener);

    impl Recorder {
        fn new() -> Recorder {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            Recorder(listener)
        }

        fn port(&self) -> u16 {
            self.0.local_addr().unwrap().port()
        }

        fn connections(&self) -> usize {
            let mut count = 0;
            while self.0.accept().is_ok() {
                count += 1;
            }
            count
        }
    }

    /// The error code of a refused call, asserting it is not retried.
    fn denied_code(result: &Result<Value, CardError>) -> Option<String> {
        match result {
            Err(CardError::Failed {
                code,
                message,
                retryable: false,
            }) if code == "egress_denied" => {
                assert!(!message.contains("s3cr3t"), "{message}");
                Some(code.clone())
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn refuses_internal_destinations_and_sends_them_nothing() {
        let recorder = Recorder::new();
        let port = recorder.port();
        let lookup = FixedLookup::with(&[("rebind.test", "127.0.0.1")]);
        let executor = HttpExecutor::with_lookup(lookup.clone(), system()).unwrap();
        let secret = json!({ "type": "bearer", "token": "s3cr3t" });
        for url in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://localhost.:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://2130706433:{port}/"),
            format!("http://0177.0.0.1:{port}/"),
            format!("http://rebind.test:{port}/?token=s3cr3t"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "http://192.168.1.1/".to_owned(),
        ] {
            let before = lookup.lookups();
            let got = run(
                &executor,
                allowing(""),
                json!({ "url": url, "auth": secret }),
                Duration::from_secs(5),
            )
            .await;
            assert_eq!(
                denied_code(&got).as_deref(),
                Some("egress_denied"),
                "{url}: {got:?}"
            );
            // A name is looked up once, and the addresses checked are the ones connected to.
            let expected_lookups = usize::from(url.contains("rebind.test"));
            assert_eq!(lookup.lookups() - before, expected_lookups, "{url}");
        }
        assert_eq!(recorder.connections(), 0, "nothing reached loopback");

        // The client-credentials token endpoint is a destination too.
        let got = run(
            &executor,
            allowing(""),
            json!({ "url": "https://api.example.com/x", "auth": { "type": "client_credentials", "token_url": "http://169.254.169.254/token", "client_id": "app", "client_secret": "s3cr3t" } }),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            denied_code(&got).as_deref(),
            Some("egress_denied"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn checks_every_redirect_before_following_it() {
        let base = server().await;
        let recorder = Recorder::new();
        let port = recorder.port();
        let lookup = FixedLookup::with(&[("rebind.test", "127.0.0.1"), ("echo.test", "127.0.0.1")]);
        let executor = HttpExecutor::with_lookup(lookup, system()).unwrap();
        // The first hop is allowed (it stands for a public host); where it redirects is not.
        for target in [
            format!("http://127.0.0.1:{port}/"),
            format!("http://localhost:{port}/"),
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            format!("http://rebind.test:{port}/"),
            "http://169.254.169.254/latest/meta-data/".to_owned(),
        ] {
            let got = run(
                &executor,
                allowing(&base),
                json!({ "url": format!("{base}/to?{target}"), "auth": { "type": "bearer", "token": "s3cr3t" } }),
                Duration::from_secs(5),
            )
            .await;
            assert_eq!(
                denied_code(&got).as_deref(),
                Some("egress_denied"),
                "{target}: {got:?}"
            );
        }
        assert_eq!(recorder.connections(), 0, "no redirect reached loopback");

        // A redirect to an allowed destination is followed: to a trusted name on the test server.
        let echo_port = base.rsplit(':').next().unwrap();
        let mut project = (*allowing(&base)).clone();
        project
            .egress
            .allow
            .push(Allow::parse("echo.test").unwrap());
        let got = run(
            &executor,
            Arc::new(project),
            json!({ "url": format!("{base}/to?http://echo.test:{echo_port}/text") }),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(got["body"], json!("plain text"));
    }

    #[tokio::test]
    async fn follows_the_egress_config_of_each_calls_project() {
        let base = server().await;
        let executor = HttpExecutor::new(system()).unwrap();
        let input = json!({ "url": format!("{base}/text") });
        let timeout = Duration::from_secs(5);
        let denied = run(&executor, allowing(""), input.clone(), timeout).await;
        assert_eq!(denied_code(&denied).as_deref(), Some("egress_denied"));
        // idflow.yaml reloaded with an allow entry: the same executor now reaches the server...
        let allowed = run(&executor, allowing(&base), input.clone(), timeout).await;
        assert_eq!(allowed.unwrap()["body"], json!("plain text"));
        // ...and refuses it again once the entry is gone.
        let denied = run(&executor, allowing(""), input, timeout).await;
        assert_eq!(denied_code(&denied).as_deref(), Some("egress_denied"));
    }

    #[tokio::test]
    async fn a_connection_origin_is_trusted_without_an_allow_entry() {
        let base = server().await;
        let mut project = ProjectConfig::default();
        project.connections.insert(
            "okta".into(),
            json!({ "domain": base, "auth": { "type": "ssws", "token": "env:T" } }),
        );
        let got = run(
            &HttpExecutor::new(system()).unwrap(),
            Arc::new(project),
            json!({ "url": format!("{base}/text") }),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(got["body"], json!("plain text"));
    }

    #[tokio::test]
    async fn refuses_oversize_responses() {
        let base = server().await;
        for path in ["/big", "/big-stream"] {
            let err = call(
                &base,
                json!({ "url": format!("{base}{path}") }),
                Duration::from_secs(20),
            )
            .await
            .unwrap_err();
            assert!(
                matches!(&err, CardError::Failed { code, .. } if code == "response_too_large"),
                "{path}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn validates_input_before_sending() {
        let check_invalid = |input: Value, field: &str, fragment: &str| {
            let field = field.to_owned();
            let fragment = fragment.to_owned();
            async move {
                match call("", input.clone(), Duration::from_secs(1)).await {
                    Err(CardError::InvalidInput {
                        field: got,
                        message,
                    }) => {
                        assert_eq!(got, field, "{input}");
                        assert!(message.contains(&fragment), "{input}: {message}");
                    }
                    other => panic!("{input}: {other:?}"),
                }
            }
        };
        check_invalid(json!({}), "url", "is required").await;
        check_invalid(
            json!({ "url": "ftp://example.com/x" }),
            "url",
            "only http and https",
        )
        .await;
        check_invalid(json!({ "url": "not a url" }), "url", "not a valid URL").await;
        check_invalid(
            json!({ "url": "https://x.test", "method": "BREW" }),
            "method",
            "unknown method `BREW`",
        )
        .await;
        check_invalid(
            json!({ "url": "https://x.test", "headers": { "bad header": "x" } }),
            "headers.bad header",
            "not a valid header name",
        )
        .await;
        check_invalid(
            json!({ "url": "https://x.test", "headers": { "x-a": { "o": 1 } } }),
            "headers.x-a",
            "expected text",
        )
        .await;
        check_invalid(
            json!({ "url": "https://x.test", "query": "a=1" }),
            "query",
            "expected an object",
        )
        .await;
        check_invalid(
            json!({ "url": "https://x.test", "body": {}, "form": {} }),
            "form",
            "not both",
        )
        .await;
    }

    #[tokio::test]
    async fn a_cached_token_is_fetched_again_once_the_clock_passes_its_lifetime() {
        let base = server().await;
        let clock = ManualClock::new(t0());
        let executor = HttpExecutor::new(Arc::new(clock.clone())).unwrap();
        // The endpoint answers `expires_in: 3600` for this scope: usable for 3570 s, less the margin.
        let auth = json!({ "type": "client_credentials", "token_url": format!("{base}/token"), "client_id": "app", "client_secret": "pw", "scope": "long" });
        let sent_token = || {
            let input = json!({ "url": format!("{base}/echo"), "auth": auth });
            let (executor, project) = (&executor, allowing(&base));
            async move {
                run(executor, project, input, Duration::from_secs(5))
                    .await
                    .unwrap()["body"]["authorization"]
                    .clone()
            }
        };
        let first = sent_token().await;
        clock.advance(Duration::from_secs(3600) - TOKEN_EXPIRY_MARGIN - Duration::from_secs(1));
        assert_eq!(
            sent_token().await,
            first,
            "the token is still in its lifetime"
        );
        clock.advance(Duration::from_secs(1));
        let renewed = sent_token().await;
        assert_ne!(renewed, first, "the token was used past its lifetime");
        assert_eq!(
            sent_token().await,
            renewed,
            "the new token is cached in turn"
        );
    }
}
