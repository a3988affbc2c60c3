//! The AWS SDK's HTTP client over reqwest, so a function links one HTTP stack.
//!
//! The SDK's own client (aws-smithy-http-client) brings hyper-util's pooled client, hyper-rustls
//! and HTTP/2 (h2), beside the reqwest client that the connectors and the webhook code already use:
//! two HTTP clients and two connection pools in every function. [`ReqwestHttpClient`] implements
//! the SDK's [`HttpClient`] with reqwest instead. Every AWS service idflow calls (DynamoDB, SQS, S3,
//! EventBridge Scheduler, SES, Secrets Manager, CloudFormation) speaks HTTP/1.1, and every request
//! body the SDK builds here is in memory, so the adapter sends bytes and reads the answer whole.
//!
//! SDK semantics kept: no redirects (a 3xx is the service's answer), the connect and read timeouts
//! of the client's [`HttpConnectorSettings`], and errors classified as the SDK's retry policy
//! expects (a timeout or a broken connection is transient and retried; a 5xx is a response, which
//! the SDK classifies itself).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

/// Why the adapter could not send a request or hand back its answer (the SDK receives these
/// inside a [`ConnectorError`]; reqwest's own errors are passed through as the source).
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// The SDK gave a streaming body; this client sends in-memory bodies only.
    #[error(
        "the request body is a stream; idflow's AWS HTTP client sends in-memory bodies only (build the body from bytes)"
    )]
    StreamingBody,
    /// The SDK built a request reqwest cannot send (a method, URI or header that is not HTTP).
    #[error("the SDK built a request that is not valid HTTP: {what}")]
    InvalidRequest {
        /// The part that is not valid.
        what: &'static str,
    },
    /// The service answered with something the SDK's response type cannot hold.
    #[error("the response cannot be handed to the SDK: {what}")]
    InvalidResponse {
        /// The part that is not valid.
        what: &'static str,
    },
    /// reqwest could not build a client (its TLS configuration).
    #[error("could not build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// The timeouts one reqwest client is built with: the part of [`HttpConnectorSettings`] it
/// honours, comparable, so clients can be cached by it.
pub(crate) type Timeouts = (Option<Duration>, Option<Duration>);

/// The SDK's [`HttpClient`] over reqwest: one reqwest client (and its connection pool) per
/// distinct connector settings, built on first use and shared by every SDK client given the same
/// settings.
#[derive(Debug, Default)]
pub struct ReqwestHttpClient {
    /// The connectors built so far. The SDK asks for a connector per client and per operation
    /// configuration; in practice there are one or two distinct settings, so a list is enough.
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl ReqwestHttpClient {
    /// A client with no connectors built yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        // A poisoned lock only means another thread panicked while pushing; the list is still a
        // list of complete entries.
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, connector)) = connectors.iter().find(|(key, _)| *key == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(ReqwestConnector::new(timeouts));
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

/// The reqwest client AWS requests are sent with, given the connect and read timeouts of an SDK
/// configuration: no redirects (a 3xx is the service's answer). The SDK's connectors and the S3
/// blob store ([`crate::s3_blobs`]) are built by this one function, so they behave alike.
pub(crate) fn reqwest_client(
    (connect_timeout, read_timeout): Timeouts,
) -> Result<reqwest::Client, HttpClientError> {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(timeout) = connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    if let Some(timeout) = read_timeout {
        builder = builder.read_timeout(timeout);
    }
    builder.build().map_err(HttpClientError::Build)
}

/// One reqwest client with the given timeouts, or why it could not be built (then every call
/// fails with that reason instead of the process panicking at configuration time).
#[derive(Debug, Clone)]
struct ReqwestConnector {
    client: Result<reqwest::Client, Arc<HttpClientError>>,
}

impl ReqwestConnector {
    fn new(timeouts: Timeouts) -> Self {
        Self {
            client: reqwest_client(timeouts).map_err(Arc::new),
        }
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let client = client.map_err(|error| ConnectorError::other(Box::new(error), None))?;
            let request = to_reqwest(&client, &request)?;
            let response = client.execute(request).await.map_err(connector_error)?;
            from_reqwest(response).await
        })
    }
}

/// The SDK's request as a reqwest request: method, URI, headers and the in-memory body.
fn to_reqwest(
    client: &reqwest::Client,
    request: &HttpRequest,
) -> Result<reqwest::Request, ConnectorError> {
    let invalid = |what| ConnectorError::user(Box::new(HttpClientError::InvalidRequest { what }));
    let body = request
        .body()
        .bytes()
        .ok_or_else(|| ConnectorError::user(Box::new(HttpClientError::StreamingBody)))?
        .to_vec();
    let method =
        reqwest::Method::from_bytes(request.method().as_bytes()).map_err(|_| invalid("method"))?;
    let url = reqwest::Url::parse(request.uri()).map_err(|_| invalid("URI"))?;
    let mut headers = reqwest::header::HeaderMap::with_capacity(request.headers().len());
    for (name, value) in request.headers() {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("header name"))?;
        let value =
            reqwest::header::HeaderValue::from_str(value).map_err(|_| invalid("header value"))?;
        headers.append(name, value);
    }
    client
        .request(method, url)
        .headers(headers)
        .body(body)
        .build()
        .map_err(connector_error)
}

/// The answer as the SDK's response: status, headers and the whole body.
async fn from_reqwest(response: reqwest::Response) -> Result<HttpResponse, ConnectorError> {
    let invalid =
        |what| ConnectorError::other(Box::new(HttpClientError::InvalidResponse { what }), None);
    let status = StatusCode::try_from(response.status().as_u16()).map_err(|_| invalid("status"))?;
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(connector_error)?;
    let mut sdk_response = HttpResponse::new(status, SdkBody::from(body));
    for (name, value) in &headers {
        // The SDK's headers are UTF-8 strings, as its own client requires of a response.
        let value = std::str::from_utf8(value.as_bytes()).map_err(|_| invalid("header value"))?;
        sdk_response
            .headers_mut()
            .try_append(name.as_str().to_owned(), value.to_owned())
            .map_err(|_| invalid("header"))?;
    }
    Ok(sdk_response)
}

/// reqwest's error as the SDK's connector error, classified as the SDK's own client does: a
/// timeout is a timeout, a failed connection or a broken exchange is I/O (both retried by the
/// standard retry policy), a request reqwest refuses to build is the caller's, the rest is other.
fn connector_error(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(Box::new(error))
    } else if error.is_connect() {
        ConnectorError::io(Box::new(error)).never_connected()
    } else if error.is_request() || error.is_body() || error.is_decode() {
        ConnectorError::io(Box::new(error))
    } else if error.is_builder() {
        ConnectorError::user(Box::new(error))
    } else {
        ConnectorError::other(Box::new(error), None)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::net::TcpListener;

    use super::*;
    use crate::test_server::serve;

    /// An SDK request with the given method, URL, one custom header and body.
    fn request(method: &str, url: &str, body: SdkBody) -> HttpRequest {
        let request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .body(body)
            .expect("a valid request");
        HttpRequest::try_from(request).expect("an SDK request")
    }

    fn body(response: &HttpResponse) -> &str {
        std::str::from_utf8(response.body().bytes().expect("an in-memory body")).expect("UTF-8")
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-amzn-requestid: r-1\r\ncontent-length: 17\r\n\r\n{\"TableNames\":[]}";

    #[tokio::test]
    async fn a_request_goes_out_whole_and_the_answer_comes_back_whole() {
        let (url, _, first) = serve(vec![Some(OK)]).await;
        let connector = ReqwestConnector::new((None, None));
        let response = connector
            .call(request(
                "POST",
                &format!("{url}/tables?x=1"),
                SdkBody::from("{\"Limit\":3}"),
            ))
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("r-1"));
        assert_eq!(body(&response), "{\"TableNames\":[]}");
        let received = first.await.expect("the server saw the request");
        assert!(
            received.head.starts_with("POST /tables?x=1 HTTP/1.1\r\n"),
            "{}",
            received.head
        );
        assert!(
            received
                .head
                .to_ascii_lowercase()
                .contains("x-amz-target: dynamodb_20120810.listtables"),
            "{}",
            received.head
        );
        assert_eq!(received.body, b"{\"Limit\":3}");
    }

    #[tokio::test]
    async fn a_server_error_is_a_response_for_the_sdk_to_classify_not_a_connector_error() {
        let (url, _, _) = serve(vec![Some(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 26\r\n\r\n{\"__type\":\"InternalError\"}",
        )])
        .await;
        let response = ReqwestConnector::new((None, None))
            .call(request("POST", &url, SdkBody::empty()))
            .await
            .expect("a 500 is an answer");
        assert_eq!(response.status().as_u16(), 500);
        assert_eq!(body(&response), "{\"__type\":\"InternalError\"}");
    }

    #[tokio::test]
    async fn a_redirect_is_handed_to_the_sdk_not_followed() {
        let (url, count, _) = serve(vec![
            Some("HTTP/1.1 307 Temporary Redirect\r\nlocation: /elsewhere\r\ncontent-length: 0\r\n\r\n"),
            Some(OK),
        ])
        .await;
        let response = ReqwestConnector::new((None, None))
            .call(request("GET", &url, SdkBody::empty()))
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 307);
        assert_eq!(response.headers().get("location"), Some("/elsewhere"));
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_silent_server_past_the_read_timeout_is_a_timeout_error() {
        let (url, _, _) = serve(vec![None]).await;
        let error = ReqwestConnector::new((None, Some(Duration::from_millis(100))))
            .call(request("GET", &url, SdkBody::empty()))
            .await
            .expect_err("no answer within the read timeout");
        assert!(error.is_timeout(), "{error:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error() {
        // A port that was free a moment ago and has no listener now.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        drop(listener);
        let error = ReqwestConnector::new((None, None))
            .call(request("GET", &url, SdkBody::empty()))
            .await
            .expect_err("nobody listens");
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn a_streaming_body_is_refused_with_a_clear_error() {
        let (url, count, _) = serve(vec![Some(OK)]).await;
        let error = ReqwestConnector::new((None, None))
            .call(request("PUT", &url, SdkBody::taken()))
            .await
            .expect_err("a stream is not sent");
        assert!(error.is_user(), "{error:?}");
        let source = std::error::Error::source(&error)
            .expect("the reason")
            .to_string();
        assert!(source.contains("in-memory bodies only"), "{source}");
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    /// Through a real SDK client: the read timeout of the client's configuration reaches the
    /// connector, and the standard retry policy retries the timeout on a new connection.
    #[tokio::test]
    async fn the_sdk_retries_a_timed_out_call_and_gets_the_next_answer() {
        use aws_credential_types::Credentials;
        use aws_smithy_types::retry::RetryConfig;
        use aws_smithy_types::timeout::TimeoutConfig;

        let (url, count, _) = serve(vec![None, Some(OK)]).await;
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-3"))
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .endpoint_url(url)
            .http_client(crate::https_client())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(2)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .read_timeout(Duration::from_millis(200))
                    .build(),
            )
            .build();
        let tables = aws_sdk_dynamodb::Client::from_conf(config)
            .list_tables()
            .send()
            .await
            .expect("the second attempt is answered");
        assert_eq!(tables.table_names(), &[] as &[String]);
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "one timed-out attempt, one answered"
        );
    }
}
