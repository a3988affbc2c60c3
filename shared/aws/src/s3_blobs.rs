//! [`S3BlobStore`]: values runs hold out of line (see `domain::values`) as objects of one S3
//! bucket, under `runs/<run id>/<sha-256>`. The bucket is encrypted and expires objects after the
//! retention (template.yaml); the runner deletes a run's objects when the run ends.
//!
//! # Why S3 is spoken by hand here
//! idflow calls S3 for four operations: PutObject, GetObject, ListObjectsV2 by prefix and
//! DeleteObjects (plus CreateBucket for tests). aws-sdk-s3 cost every function 1.52 MiB of its
//! stripped binary: 0.37 MiB of its own named code (an endpoint resolver of 175 KiB, S3 Express
//! sessions, checksum interceptors, aws-chunked encoding), crc-fast, and the rest in data, unwind
//! tables and relocations; enough to keep the worker and api functions above Lambda's 10 MiB
//! target (functions/README.md, "Toward 10 MiB per function"). This adapter is 26 KiB. The four operations are plain HTTP
//! requests signed with SigV4, so this module builds them itself: signed by `aws-sigv4` (the SDK's
//! own signer, already linked by every other client), sent by reqwest with the construction and
//! timeouts of the SDK's HTTP client ([`crate::http`]), answered in XML read by `aws-smithy-xml`
//! (already linked too). The signature always goes in the `Authorization` header, never in a
//! presigned URL, so nothing computed from the secret key can reach a log or an error through a
//! URL.
//!
//! Behaviour kept from the SDK: the credentials and region of the [`SdkConfig`], its endpoint
//! override (path-style addressing, as emulators need), its connect and read timeouts, and up to
//! three attempts with jittered exponential backoff for what is worth retrying (5xx, 429,
//! `SlowDown`, `RequestTimeout`, timeouts and broken connections).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_smithy_async::time::SharedTimeSource;
use aws_smithy_xml::decode::{Document, try_data};
use aws_types::SdkConfig;
use base64::Engine;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Digest;

use crate::http::HttpClientError;
use domain::ports::{BlobStore, StoreError};

/// S3's limit of keys per `DeleteObjects` request.
const DELETE_BATCH: usize = 1000;

/// Attempts per operation, as the SDK's standard retry strategy makes.
const ATTEMPTS: u32 = 3;

/// The standard retry strategy's backoff: the first retry waits up to this long (jittered), each
/// later one up to twice the previous, never more than [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);

/// The standard retry strategy's longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Credentials are fetched again when they expire within this long, so a request signed with them
/// does not reach S3 after they expired (the SDK's identity cache uses the same margin).
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// What SigV4 and S3 leave unencoded in a URI: the unreserved characters. Everything else,
/// including `+`, `=` and spaces, is percent-encoded as UTF-8.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why an S3 request failed. The store's callers receive it inside a [`StoreError`] (retryable ones
/// as [`StoreError::Unavailable`]); no variant holds a request header, a signature or a credential.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// S3 answered with an error: its status, code and message, as S3 wrote them.
    #[error("S3 answered {status} {code}: {message}")]
    Service {
        /// The HTTP status.
        status: u16,
        /// S3's error code (`NoSuchBucket`, `AccessDenied`, `SlowDown`, ...), or `Unknown` when
        /// the answer had no error document.
        code: String,
        /// S3's message.
        message: String,
    },
    /// The request did not get an answer (a timeout, a refused or broken connection).
    #[error("S3 request failed")]
    Transport(#[source] reqwest::Error),
    /// The HTTP client could not be built.
    #[error("S3 client unavailable")]
    Client(#[source] Arc<HttpClientError>),
    /// The SDK configuration has no region.
    #[error("the S3 blob store needs a region (set AWS_REGION)")]
    NoRegion,
    /// The SDK configuration has no credentials provider.
    #[error(
        "the S3 blob store needs credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    NoCredentials,
    /// The credentials provider failed.
    #[error("could not load AWS credentials for S3")]
    Credentials(#[source] aws_credential_types::provider::error::CredentialsError),
    /// The endpoint override is not a URL (`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`).
    #[error("the S3 endpoint `{endpoint}` is not an http(s) URL")]
    Endpoint {
        /// The configured endpoint.
        endpoint: String,
    },
    /// The request could not be signed.
    #[error("could not sign the S3 request")]
    Signing(#[source] aws_sigv4::http_request::SigningError),
    /// The signing parameters are incomplete (a bug here).
    #[error("could not sign the S3 request")]
    SigningParams(#[source] aws_sigv4::sign::v4::signing_params::BuildError),
    /// S3 answered 200 with a document this store cannot read.
    #[error("S3 answered with an unreadable {operation} document: {reason}")]
    Malformed {
        /// The operation.
        operation: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// `DeleteObjects` succeeded but left a key, with S3's reason.
    #[error("S3 did not delete {key}: {message}")]
    NotDeleted {
        /// The key left.
        key: String,
        /// S3's reason.
        message: String,
    },
}

impl S3Error {
    /// Whether the same request may succeed later: S3 was overloaded or failed inside, or the
    /// request got no answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            S3Error::Service { status, code, .. } => {
                *status >= 500
                    || *status == 429
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "Throttling" | "ThrottlingException"
                    )
            }
            S3Error::Transport(error) => {
                error.is_timeout() || error.is_connect() || error.is_request() || error.is_body()
            }
            // A key S3 did not delete is usually a transient internal error; deleting is idempotent.
            S3Error::NotDeleted { .. } | S3Error::Credentials(_) => true,
            S3Error::Client(_)
            | S3Error::NoRegion
            | S3Error::NoCredentials
            | S3Error::Endpoint { .. }
            | S3Error::Signing(_)
            | S3Error::SigningParams(_)
            | S3Error::Malformed { .. } => false,
        }
    }
}

impl From<S3Error> for StoreError {
    fn from(error: S3Error) -> Self {
        if error.is_retryable() {
            StoreError::Unavailable(Box::new(error))
        } else {
            StoreError::Backend(Box::new(error))
        }
    }
}

/// How the adapter waits between attempts: the standard strategy's backoff, or none in tests.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 1): full jitter over an
    /// exponentially growing bound, as the SDK's standard retry strategy waits.
    fn before_retry(&self, attempt: u32) -> Duration {
        let bound = self
            .initial
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        bound.mul_f64(fastrand::f64())
    }
}

/// A [`BlobStore`] on one S3 bucket.
#[derive(Clone)]
pub struct S3BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    http: Result<reqwest::Client, Arc<HttpClientError>>,
    bucket: String,
    region: Option<String>,
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, without a trailing slash: path-style requests.
    endpoint: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
    /// The credentials last loaded, reused until shortly before they expire.
    cached: Mutex<Option<Credentials>>,
    time: Option<SharedTimeSource>,
    backoff: Backoff,
}

/// One request, before it is signed.
struct Request {
    method: reqwest::Method,
    /// The encoded path, from the first `/`.
    path: String,
    /// The encoded query, without `?`, empty for none.
    query: String,
    headers: Vec<(&'static str, String)>,
    /// Shared, so each attempt sends the same bytes without copying them.
    body: bytes::Bytes,
}

/// One answer: its status and whole body.
struct Answer {
    status: u16,
    body: bytes::Bytes,
}

impl S3BlobStore {
    /// A store on `bucket`, with the region, credentials, endpoint override and timeouts of `sdk`.
    /// A configuration without a region or credentials gives a store whose every call fails with
    /// an error naming what is missing.
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> Self {
        let timeouts = sdk.timeout_config().map_or((None, None), |timeouts| {
            (timeouts.connect_timeout(), timeouts.read_timeout())
        });
        let service_endpoint = sdk.service_config().and_then(|config| {
            let key = aws_types::service_config::ServiceConfigKey::builder()
                .service_id("S3")
                .env("AWS_ENDPOINT_URL_S3")
                .profile("endpoint_url")
                .build()
                .ok()?;
            config.load_config(key)
        });
        let endpoint = service_endpoint
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
            .map(|url| url.trim().trim_end_matches('/').to_owned());
        S3BlobStore {
            inner: Arc::new(Inner {
                http: crate::http::reqwest_client(timeouts).map_err(Arc::new),
                bucket: bucket.into(),
                region: sdk.region().map(|region| region.as_ref().to_owned()),
                endpoint,
                credentials: sdk.credentials_provider(),
                cached: Mutex::new(None),
                time: sdk.time_source(),
                backoff: Backoff {
                    initial: INITIAL_BACKOFF,
                    max: MAX_BACKOFF,
                },
            }),
        }
    }

    /// The same store waiting `initial` (doubling, jittered) between attempts: tests give zero.
    #[cfg(test)]
    fn with_backoff(self, initial: Duration) -> Self {
        let inner = Inner {
            http: self.inner.http.clone(),
            bucket: self.inner.bucket.clone(),
            region: self.inner.region.clone(),
            endpoint: self.inner.endpoint.clone(),
            credentials: self.inner.credentials.clone(),
            cached: Mutex::new(None),
            time: self.inner.time.clone(),
            backoff: Backoff {
                initial,
                max: MAX_BACKOFF,
            },
        };
        S3BlobStore {
            inner: Arc::new(inner),
        }
    }

    /// Creates the bucket (for tests and development against an emulator; template.yaml creates
    /// it in AWS, encrypted and with its lifecycle).
    pub async fn create_bucket(&self) -> Result<(), StoreError> {
        let region = self.inner.region.as_deref().ok_or(S3Error::NoRegion)?;
        // Outside us-east-1, S3 wants the bucket's region in the body.
        let body = if region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                xml_escape(region)
            )
        };
        let answer = self
            .send(Request {
                method: reqwest::Method::PUT,
                path: self.bucket_path(),
                query: String::new(),
                headers: Vec::new(),
                body: body.into(),
            })
            .await?;
        ok(answer)?;
        Ok(())
    }

    /// The keys under `prefix`, every page of `ListObjectsV2` read.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = format!("list-type=2&prefix={}", encode(prefix));
            if let Some(token) = &token {
                query.push_str("&continuation-token=");
                query.push_str(&encode(token));
            }
            let answer = ok(self
                .send(Request {
                    method: reqwest::Method::GET,
                    path: self.bucket_path(),
                    query,
                    headers: Vec::new(),
                    body: bytes::Bytes::new(),
                })
                .await?)?;
            let page = list_page(&answer.body)?;
            keys.extend(page.keys);
            match page.next {
                Some(next) if page.truncated => token = Some(next),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// The path of the bucket: `/bucket` on a path-style endpoint, `/` on the bucket's own host.
    fn bucket_path(&self) -> String {
        if self.virtual_host().is_some() {
            "/".to_owned()
        } else {
            format!("/{}", encode(&self.inner.bucket))
        }
    }

    /// The path of an object: each segment of the key percent-encoded, the `/` between them kept.
    fn object_path(&self, key: &str) -> String {
        let mut path = self.bucket_path();
        if !path.ends_with('/') {
            path.push('/');
        }
        let mut segments = key.split('/');
        if let Some(first) = segments.next() {
            path.extend(utf8_percent_encode(first, UNRESERVED));
        }
        for segment in segments {
            path.push('/');
            path.extend(utf8_percent_encode(segment, UNRESERVED));
        }
        path
    }

    /// The bucket's own host (`bucket.s3.region.amazonaws.com`) when the bucket is addressed
    /// virtual-hosted style: on AWS, for a bucket name valid as a host label. An endpoint override
    /// and dotted names (which a wildcard certificate does not cover) are addressed by path.
    fn virtual_host(&self) -> Option<String> {
        if self.inner.endpoint.is_some() {
            return None;
        }
        let bucket = &self.inner.bucket;
        let label = !bucket.is_empty()
            && bucket.len() <= 63
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !bucket.starts_with('-')
            && !bucket.ends_with('-');
        let region = self.inner.region.as_deref()?;
        label.then(|| format!("{bucket}.{}", s3_host(region)))
    }

    /// The scheme and authority requests go to.
    fn origin(&self, region: &str) -> Result<String, S3Error> {
        if let Some(endpoint) = &self.inner.endpoint {
            let valid = reqwest::Url::parse(endpoint).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https") && url.host_str().is_some()
            });
            return if valid {
                Ok(endpoint.clone())
            } else {
                Err(S3Error::Endpoint {
                    endpoint: endpoint.clone(),
                })
            };
        }
        Ok(match self.virtual_host() {
            Some(host) => format!("https://{host}"),
            None => format!("https://{}", s3_host(region)),
        })
    }

    /// The credentials to sign with: the cached ones while they are valid for a while yet.
    async fn credentials(&self) -> Result<Credentials, S3Error> {
        let now = self.now();
        let fresh = |credentials: &Credentials| {
            credentials
                .expiry()
                .is_none_or(|expiry| expiry > now + EXPIRY_MARGIN)
        };
        {
            let cached = self
                .inner
                .cached
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
                return Ok(credentials.clone());
            }
        }
        let provider = self
            .inner
            .credentials
            .as_ref()
            .ok_or(S3Error::NoCredentials)?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(S3Error::Credentials)?;
        *self
            .inner
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(credentials.clone());
        Ok(credentials)
    }

    fn now(&self) -> SystemTime {
        self.inner
            .time
            .as_ref()
            .map_or_else(SystemTime::now, |time| time.now())
    }

    /// Sends `request`, retrying what is worth retrying; the answer may be an error status, for
    /// the caller to read (a 404 may mean `None`).
    async fn send(&self, request: Request) -> Result<Answer, S3Error> {
        let mut attempt = 1;
        loop {
            let outcome = self.attempt(&request).await;
            let failure = match &outcome {
                Ok(answer) if answer.status >= 300 => Some(service_error(answer)),
                Ok(_) => None,
                Err(error) => Some(error_summary(error)),
            };
            match failure {
                Some((retryable, summary)) if retryable && attempt < ATTEMPTS => {
                    tracing::debug!(attempt, error = %summary, "S3 request failed; retrying");
                    tokio::time::sleep(self.inner.backoff.before_retry(attempt)).await;
                    attempt += 1;
                }
                _ => return outcome,
            }
        }
    }

    /// One signed attempt.
    async fn attempt(&self, request: &Request) -> Result<Answer, S3Error> {
        let http = self.inner.http.clone().map_err(S3Error::Client)?;
        let region = self.inner.region.as_deref().ok_or(S3Error::NoRegion)?;
        let credentials = self.credentials().await?;
        let mut url = format!("{}{}", self.origin(region)?, request.path);
        if !request.query.is_empty() {
            url.push('?');
            url.push_str(&request.query);
        }
        let identity = credentials.into();
        let settings = signing_settings();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name("s3")
            .time(self.now())
            .settings(settings)
            .build()
            .map_err(S3Error::SigningParams)?
            .into();
        let signable = SignableRequest::new(
            request.method.as_str(),
            url.as_str(),
            request
                .headers
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
            SignableBody::Bytes(&request.body),
        )
        .map_err(S3Error::Signing)?;
        let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
            .map_err(S3Error::Signing)?
            .into_parts();
        let mut builder = http.request(request.method.clone(), &url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        for (name, value) in instructions.headers() {
            let mut value =
                reqwest::header::HeaderValue::from_str(value).map_err(|_| S3Error::Malformed {
                    operation: "signing",
                    reason: format!("the signer produced an invalid {name} header"),
                })?;
            // Kept out of reqwest's debug output: the signature and the session token.
            value.set_sensitive(true);
            builder = builder.header(name, value);
        }
        let response = builder
            .body(request.body.clone())
            .send()
            .await
            .map_err(S3Error::Transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(S3Error::Transport)?;
        Ok(Answer { status, body })
    }
}

/// How S3 wants requests signed: the path as sent (encoded once, not normalised), and the payload
/// hash in `x-amz-content-sha256`.
fn signing_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings
}

/// The host of S3 in `region` (the `.com.cn` partition for China's regions).
fn s3_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("s3.{region}.amazonaws.com.cn")
    } else {
        format!("s3.{region}.amazonaws.com")
    }
}

/// `value` percent-encoded for a URI path segment or a query value, as SigV4 and S3 encode it.
fn encode(value: &str) -> String {
    utf8_percent_encode(value, UNRESERVED).to_string()
}

/// Whether a failed attempt is worth retrying, and what to log about it.
fn error_summary(error: &S3Error) -> (bool, String) {
    (error.is_retryable(), error.to_string())
}

/// An error answer's retryability and description (its code and message only).
fn service_error(answer: &Answer) -> (bool, String) {
    let error = to_error(answer);
    (error.is_retryable(), error.to_string())
}

/// The answer if it is a success, else S3's error.
fn ok(answer: Answer) -> Result<Answer, S3Error> {
    if answer.status < 300 {
        Ok(answer)
    } else {
        Err(to_error(&answer))
    }
}

/// An error answer as [`S3Error::Service`]: S3's `<Error><Code>` and `<Message>`, or the status
/// alone when the body is not an error document (a proxy's page, an empty HEAD-like answer).
fn to_error(answer: &Answer) -> S3Error {
    let (mut code, mut message) = (None, None);
    if let Ok(text) = std::str::from_utf8(&answer.body) {
        let mut document = Document::new(text);
        if let Ok(mut root) = document.root_element()
            && root.start_el().matches("Error")
        {
            while let Some(mut tag) = root.next_tag() {
                let slot = if tag.start_el().matches("Code") {
                    &mut code
                } else if tag.start_el().matches("Message") {
                    &mut message
                } else {
                    continue;
                };
                *slot = try_data(&mut tag).ok().map(|data| data.into_owned());
            }
        }
    }
    S3Error::Service {
        status: answer.status,
        code: code.unwrap_or_else(|| "Unknown".to_owned()),
        message: message.unwrap_or_else(|| "no message".to_owned()),
    }
}

/// One page of `ListObjectsV2`.
#[derive(Debug, Default, PartialEq)]
struct ListPage {
    keys: Vec<String>,
    truncated: bool,
    next: Option<String>,
}

fn malformed(operation: &'static str, reason: impl ToString) -> S3Error {
    S3Error::Malformed {
        operation,
        reason: reason.to_string(),
    }
}

/// Reads a `ListBucketResult`: the keys of its `Contents`, `IsTruncated` and
/// `NextContinuationToken`.
fn list_page(body: &[u8]) -> Result<ListPage, S3Error> {
    const OPERATION: &str = "ListObjectsV2";
    let text = std::str::from_utf8(body).map_err(|e| malformed(OPERATION, e))?;
    let mut document = Document::new(text);
    let mut root = document
        .root_element()
        .map_err(|e| malformed(OPERATION, e))?;
    if !root.start_el().matches("ListBucketResult") {
        return Err(malformed(OPERATION, "the root is not ListBucketResult"));
    }
    let mut page = ListPage::default();
    while let Some(mut tag) = root.next_tag() {
        if tag.start_el().matches("Contents") {
            while let Some(mut field) = tag.next_tag() {
                if field.start_el().matches("Key") {
                    let key = try_data(&mut field).map_err(|e| malformed(OPERATION, e))?;
                    page.keys.push(key.into_owned());
                }
            }
        } else if tag.start_el().matches("IsTruncated") {
            let value = try_data(&mut tag).map_err(|e| malformed(OPERATION, e))?;
            page.truncated = value.trim() == "true";
        } else if tag.start_el().matches("NextContinuationToken") {
            let value = try_data(&mut tag).map_err(|e| malformed(OPERATION, e))?;
            page.next = Some(value.into_owned());
        }
    }
    if page.truncated && page.next.is_none() {
        return Err(malformed(
            OPERATION,
            "a truncated page without NextContinuationToken",
        ));
    }
    Ok(page)
}

/// `text` as XML character data: the five special characters as entities, and carriage returns
/// and other control characters as character references, so S3 reads back the key as written.
fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c if c.is_control() => escaped.push_str(&format!("&#x{:X};", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The body of a quiet `DeleteObjects` request for `keys`, each key XML-escaped.
fn delete_body(keys: &[String]) -> String {
    let mut body = String::from(
        "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>",
    );
    for key in keys {
        body.push_str("<Object><Key>");
        body.push_str(&xml_escape(key));
        body.push_str("</Key></Object>");
    }
    body.push_str("</Delete>");
    body
}

/// The first key a `DeleteResult` reports as not deleted, with S3's message.
fn first_not_deleted(body: &[u8]) -> Result<Option<S3Error>, S3Error> {
    const OPERATION: &str = "DeleteObjects";
    let text = std::str::from_utf8(body).map_err(|e| malformed(OPERATION, e))?;
    let mut document = Document::new(text);
    let mut root = document
        .root_element()
        .map_err(|e| malformed(OPERATION, e))?;
    while let Some(mut tag) = root.next_tag() {
        if !tag.start_el().matches("Error") {
            continue;
        }
        let (mut key, mut code, mut message) = (None, None, None);
        while let Some(mut field) = tag.next_tag() {
            let slot = if field.start_el().matches("Key") {
                &mut key
            } else if field.start_el().matches("Code") {
                &mut code
            } else if field.start_el().matches("Message") {
                &mut message
            } else {
                continue;
            };
            *slot = Some(
                try_data(&mut field)
                    .map_err(|e| malformed(OPERATION, e))?
                    .into_owned(),
            );
        }
        return Ok(Some(S3Error::NotDeleted {
            key: key.unwrap_or_else(|| "?".to_owned()),
            message: match (code, message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (code, message) => message
                    .or(code)
                    .unwrap_or_else(|| "no reason given".to_owned()),
            },
        }));
    }
    Ok(None)
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let answer = self
            .send(Request {
                method: reqwest::Method::PUT,
                path: self.object_path(key),
                query: String::new(),
                headers: vec![("content-type", "application/json".to_owned())],
                body: bytes.into(),
            })
            .await?;
        ok(answer)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let answer = self
            .send(Request {
                method: reqwest::Method::GET,
                path: self.object_path(key),
                query: String::new(),
                headers: Vec::new(),
                body: bytes::Bytes::new(),
            })
            .await?;
        match ok(answer) {
            Ok(answer) => Ok(Some(Vec::from(answer.body))),
            Err(S3Error::Service {
                status: 404, code, ..
            }) if code == "NoSuchKey" => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let keys = self.list_keys(prefix).await?;
        for batch in keys.chunks(DELETE_BATCH) {
            let body = delete_body(batch);
            // DeleteObjects requires an integrity checksum of its body: SHA-256, which signing
            // computes anyway, where Content-MD5 would link an MD5 implementation for this alone.
            let checksum = base64::engine::general_purpose::STANDARD
                .encode(sha2::Sha256::digest(body.as_bytes()));
            let answer = ok(self
                .send(Request {
                    method: reqwest::Method::POST,
                    path: self.bucket_path(),
                    query: "delete".to_owned(),
                    headers: vec![
                        ("content-type", "application/xml".to_owned()),
                        ("x-amz-sdk-checksum-algorithm", "SHA256".to_owned()),
                        ("x-amz-checksum-sha256", checksum),
                    ],
                    body: body.into(),
                })
                .await?)?;
            if let Some(error) = first_not_deleted(&answer.body)? {
                return Err(error.into());
            }
        }
        Ok(keys.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_credential_types::provider::future::ProvideCredentials as CredentialsFuture;
    use aws_types::region::Region;

    use super::*;
    use crate::test_server::serve;

    const ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "session-token-example";

    /// An SDK configuration with a region, session credentials and, for a local server, an
    /// endpoint override.
    fn sdk(
        endpoint: Option<&str>,
        region: &str,
        credentials: SharedCredentialsProvider,
    ) -> SdkConfig {
        let mut builder = SdkConfig::builder()
            .region(Region::new(region.to_owned()))
            .credentials_provider(credentials);
        builder.set_endpoint_url(endpoint.map(str::to_owned));
        builder.build()
    }

    fn session_credentials() -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY,
            SECRET,
            Some(TOKEN.to_owned()),
            None,
            "test",
        ))
    }

    /// A store on bucket `bucket` of the local server at `url`, retrying without waiting.
    fn store(url: &str) -> S3BlobStore {
        S3BlobStore::new(
            &sdk(Some(url), "eu-west-3", session_credentials()),
            "bucket",
        )
        .with_backoff(Duration::ZERO)
    }

    /// A raw HTTP/1.1 response closing its connection (the test server answers one request per
    /// connection).
    fn answer(status: &str, body: &str) -> Option<&'static str> {
        Some(Box::leak(
            format!(
                "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        ))
    }

    fn s3_error(status: &str, code: &str, message: &str) -> Option<&'static str> {
        answer(
            status,
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>r-1</RequestId></Error>"
            ),
        )
    }

    /// The error and every source below it, as a log line would show them.
    fn chain(error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(next) = source {
            text.push_str(": ");
            text.push_str(&next.to_string());
            source = next.source();
        }
        text
    }

    /// The value of header `name` in a request head.
    fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The request goes to the key's path, each segment encoded once, and the signature in its
    /// `Authorization` header is the one SigV4 gives for exactly the request the server received:
    /// what was signed is what was sent.
    #[tokio::test]
    async fn a_put_is_signed_in_its_headers_for_the_path_it_is_sent_to() {
        let (url, _, first) = serve(vec![answer("200 OK", "")]).await;
        let key = "runs/a b+c=d/é&~.json";
        store(&url)
            .put(key, b"{\"x\":1}".to_vec())
            .await
            .expect("stored");
        let received = first.await.expect("the server saw the put");
        let head = received.head;
        let path = "/bucket/runs/a%20b%2Bc%3Dd/%C3%A9%26~.json";
        assert!(
            head.starts_with(&format!("PUT {path} HTTP/1.1\r\n")),
            "{head}"
        );
        assert_eq!(received.body, b"{\"x\":1}");
        assert_eq!(
            header(&head, "x-amz-content-sha256"),
            Some(hex::encode(sha2::Sha256::digest(b"{\"x\":1}")).as_str())
        );
        assert_eq!(header(&head, "x-amz-security-token"), Some(TOKEN));
        assert!(
            !head.contains("X-Amz-Signature"),
            "never in the URL: {head}"
        );

        let authorization = header(&head, "authorization").expect("signed in a header");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{authorization}"
        );
        assert!(
            authorization.contains("/eu-west-3/s3/aws4_request"),
            "{authorization}"
        );
        let sent_signature = authorization
            .rsplit_once("Signature=")
            .map(|(_, signature)| signature)
            .expect("a signature");

        // Signs the received request again, as S3 would check it.
        let date = header(&head, "x-amz-date").expect("a signing time");
        let time = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
            .expect("a SigV4 time")
            .and_utc();
        let time = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(time.timestamp()).expect("after 1970"));
        let host = header(&head, "host").expect("a host");
        let identity =
            Credentials::new(ACCESS_KEY, SECRET, Some(TOKEN.to_owned()), None, "test").into();
        let settings = signing_settings();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("eu-west-3")
            .name("s3")
            .time(time)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let content_type = header(&head, "content-type").expect("a content type");
        let signable = SignableRequest::new(
            "PUT",
            format!("http://{host}{path}"),
            [("content-type", content_type)].into_iter(),
            SignableBody::Bytes(&received.body),
        )
        .expect("signable");
        let (_, expected) = aws_sigv4::http_request::sign(signable, &params)
            .expect("signed")
            .into_parts();
        assert_eq!(sent_signature, expected);
    }

    #[tokio::test]
    async fn a_busy_answer_twice_then_success_is_a_success_on_the_third_attempt() {
        let busy = || {
            s3_error(
                "503 Slow Down",
                "SlowDown",
                "Please reduce your request rate.",
            )
        };
        let (url, count, _) = serve(vec![busy(), busy(), answer("200 OK", "{\"v\":2}")]).await;
        let value = store(&url)
            .get("runs/r/k")
            .await
            .expect("the third attempt");
        assert_eq!(value.as_deref(), Some(&b"{\"v\":2}"[..]));
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_server_failing_every_time_gives_a_retryable_error_after_three_attempts() {
        let failing = || {
            s3_error(
                "500 Internal Server Error",
                "InternalError",
                "We encountered an internal error.",
            )
        };
        // A fourth answer is ready, so a fourth attempt would succeed and fail the test.
        let (url, count, _) =
            serve(vec![failing(), failing(), failing(), answer("200 OK", "")]).await;
        let error = store(&url)
            .put("runs/r/k", b"{}".to_vec())
            .await
            .expect_err("every attempt failed");
        assert!(error.is_retryable(), "{error:?}");
        assert!(chain(&error).contains("InternalError"), "{}", chain(&error));
        assert_eq!(count.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried_and_names_s3s_code_but_nothing_of_the_signature() {
        let (url, count, _) = serve(vec![
            s3_error("403 Forbidden", "AccessDenied", "Access Denied"),
            answer("200 OK", ""),
        ])
        .await;
        let error = store(&url)
            .put("runs/r/k", b"{}".to_vec())
            .await
            .expect_err("refused");
        assert!(!error.is_retryable(), "{error:?}");
        let text = format!("{} {error:?}", chain(&error));
        assert!(text.contains("403 AccessDenied: Access Denied"), "{text}");
        for secret in ["Signature=", "AWS4-HMAC", SECRET, TOKEN] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_missing_key_is_none_and_a_missing_bucket_an_error() {
        let (url, _, _) = serve(vec![
            s3_error(
                "404 Not Found",
                "NoSuchKey",
                "The specified key does not exist.",
            ),
            s3_error(
                "404 Not Found",
                "NoSuchBucket",
                "The specified bucket does not exist",
            ),
        ])
        .await;
        let store = store(&url);
        assert_eq!(store.get("runs/r/k").await.expect("no such key"), None);
        let error = store.get("runs/r/k").await.expect_err("no such bucket");
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        assert!(chain(&error).contains("NoSuchBucket"), "{}", chain(&error));
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        drop(listener);
        let error = store(&url).get("k").await.expect_err("nobody listens");
        assert!(error.is_retryable(), "{error:?}");
    }

    #[tokio::test]
    async fn an_endpoint_that_is_not_a_url_fails_every_call_without_sending() {
        let error = store("not a url").get("k").await.expect_err("no endpoint");
        assert!(!error.is_retryable(), "{error:?}");
        assert!(
            chain(&error).contains("`not a url` is not an http(s) URL"),
            "{}",
            chain(&error)
        );
    }

    /// A provider counting its calls, giving credentials that expire `valid_for` from now.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        valid_for: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> CredentialsFuture<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            CredentialsFuture::ready(Ok(Credentials::new(
                ACCESS_KEY,
                SECRET,
                None,
                Some(SystemTime::now() + self.valid_for),
                "test",
            )))
        }
    }

    async fn provider_calls_for_two_puts(valid_for: Duration) -> usize {
        let (url, _, _) = serve(vec![answer("200 OK", ""), answer("200 OK", "")]).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = SharedCredentialsProvider::new(Counting {
            calls: calls.clone(),
            valid_for,
        });
        let store = S3BlobStore::new(&sdk(Some(&url), "eu-west-3", provider), "bucket");
        for _ in 0..2 {
            store.put("k", b"{}".to_vec()).await.expect("stored");
        }
        calls.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn credentials_are_reused_until_shortly_before_they_expire() {
        assert_eq!(
            provider_calls_for_two_puts(Duration::from_secs(3600)).await,
            1
        );
        assert_eq!(
            provider_calls_for_two_puts(Duration::from_secs(60)).await,
            2
        );
    }

    #[test]
    fn buckets_are_addressed_on_their_own_host_on_aws_and_by_path_otherwise() {
        let on_aws = |region: &str, bucket: &str| {
            let store = S3BlobStore::new(&sdk(None, region, session_credentials()), bucket);
            (
                store.origin(region).expect("an origin"),
                store.object_path("runs/r/a b"),
            )
        };
        assert_eq!(
            on_aws("eu-west-3", "idflow-values"),
            (
                "https://idflow-values.s3.eu-west-3.amazonaws.com".to_owned(),
                "/runs/r/a%20b".to_owned()
            )
        );
        assert_eq!(
            on_aws("cn-north-1", "values").0,
            "https://values.s3.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            on_aws("eu-west-3", "idflow.values"),
            (
                "https://s3.eu-west-3.amazonaws.com".to_owned(),
                "/idflow.values/runs/r/a%20b".to_owned()
            )
        );
        let emulated = store("http://127.0.0.1:5005/");
        assert_eq!(
            emulated.origin("eu-west-3").expect("an origin"),
            "http://127.0.0.1:5005"
        );
        assert_eq!(emulated.bucket_path(), "/bucket");
    }

    #[test]
    fn a_list_page_gives_its_keys_unescaped_and_whether_more_follow() {
        let page = list_page(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>runs/</Prefix>
<Contents><Key>runs/a&amp;b</Key><Size>3</Size></Contents><Contents><Key>runs/&lt;c&gt; é</Key></Contents>
<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcx+/A==</NextContinuationToken></ListBucketResult>"#
                .as_bytes(),
        )
        .expect("a page");
        assert_eq!(
            page,
            ListPage {
                keys: vec!["runs/a&b".to_owned(), "runs/<c> é".to_owned()],
                truncated: true,
                next: Some("1ueGcx+/A==".to_owned()),
            }
        );
        let error =
            list_page(b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
                .expect_err("no token to go on with");
        assert!(
            error.to_string().contains("NextContinuationToken"),
            "{error}"
        );
        assert!(list_page(b"<html>busy</html>").is_err());
        assert!(list_page(b"\xff").is_err());
    }

    #[test]
    fn a_delete_body_escapes_keys_and_its_answer_names_the_first_key_left() {
        assert_eq!(
            delete_body(&["a&b".to_owned(), "<c>\r".to_owned()]),
            "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key>&lt;c&gt;&#xD;</Key></Object></Delete>"
        );
        assert!(
            first_not_deleted(b"<DeleteResult></DeleteResult>")
                .expect("a result")
                .is_none()
        );
        let left = first_not_deleted(
            b"<DeleteResult><Error><Key>runs/x</Key><Code>InternalError</Code><Message>try again</Message></Error></DeleteResult>",
        )
        .expect("a result")
        .expect("a key left");
        assert_eq!(
            left.to_string(),
            "S3 did not delete runs/x: InternalError: try again"
        );
        assert!(left.is_retryable());
    }

    #[test]
    fn an_answer_without_an_error_document_is_described_by_its_status() {
        let error = to_error(&Answer {
            status: 502,
            body: bytes::Bytes::from_static(b"<html>Bad Gateway</html>"),
        });
        assert_eq!(error.to_string(), "S3 answered 502 Unknown: no message");
        assert!(error.is_retryable());
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_stays_bounded() {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(20),
        };
        for _ in 0..100 {
            assert!(backoff.before_retry(1) <= Duration::from_secs(1));
            assert!(backoff.before_retry(2) <= Duration::from_secs(2));
            assert!(backoff.before_retry(40) <= Duration::from_secs(20));
        }
    }
}
