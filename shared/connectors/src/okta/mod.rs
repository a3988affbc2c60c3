//! Okta and Okta Identity Governance: the client behind the [`OktaApi`] port, and the `okta.*` and
//! `oig.*` cards.
//!
//! # Layout
//! - `connection`: a named connection of the project config (`domain`, `auth`, `max_wait`,
//!   `concurrency`), parsed from the JSON `idflow.yaml` keeps.
//! - `client`: [`OktaClient`], the reqwest implementation of [`OktaApi`]: SSWS or OAuth 2.0 tokens
//!   (cached and shared), DPoP, rate limits, the per-connection concurrency cap, Okta's error fields.
//! - `auth`: the cryptography: `private_key_jwt` client assertions (RS256, ES256) and DPoP proofs.
//! - `cards`: [`OktaExecutor`], which turns a card call (specified in `domain::cards::okta`)
//!   into requests through any [`OktaApi`].
//!
//! Cards never see tokens, pages or rate limits: they build [`OktaRequest`]s, follow
//! `Link: <…>; rel="next"` through [`OktaResponse::next_link`], and get [`OktaError`]s that keep
//! Okta's `errorCode`, `errorSummary`, `errorCauses` and `X-Okta-Request-Id`.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};

use domain::cards::CardError;
use domain::ports::SecretError;

mod auth;
pub mod cards;
pub mod client;
pub mod connection;

pub use cards::OktaExecutor;
pub use client::OktaClient;
pub use connection::{Connection, ConnectionAuth, DEFAULT_CONNECTION, OAuthSettings};

/// One request to an Okta org.
#[derive(Debug, Clone, PartialEq)]
pub struct OktaRequest {
    pub method: http::Method,
    /// A path relative to the org (`/api/v1/users/00u1`, may carry a query string), or an absolute
    /// URL on the org's origin (a `Link` next URL). Other origins are refused.
    pub path: String,
    /// Query parameters appended to the URL.
    pub query: Vec<(String, String)>,
    /// Sent as JSON.
    pub body: Option<Value>,
}

impl OktaRequest {
    /// A request with no query and no body.
    pub fn new(method: http::Method, path: impl Into<String>) -> OktaRequest {
        OktaRequest {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> OktaRequest {
        OktaRequest::new(http::Method::GET, path)
    }

    /// `POST path` with a JSON body.
    pub fn post(path: impl Into<String>, body: Value) -> OktaRequest {
        OktaRequest::new(http::Method::POST, path).body(body)
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> OktaRequest {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Sets the JSON body.
    pub fn body(mut self, body: Value) -> OktaRequest {
        self.body = Some(body);
        self
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone)]
pub struct OktaResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// Parsed JSON; `null` when the body is empty (204), a string when it is not JSON.
    pub body: Value,
}

impl OktaResponse {
    /// The URL of the `Link: <…>; rel="next"` header, the only way Okta pages.
    pub fn next_link(&self) -> Option<String> {
        next_link(&self.headers)
    }

    /// The `X-Okta-Request-Id` header, which Okta support asks for.
    pub fn request_id(&self) -> Option<&str> {
        header_text(&self.headers, "x-okta-request-id")
    }

    /// The headers as a JSON object, lowercase names; repeated headers (`link`) become lists.
    pub fn headers_json(&self) -> Value {
        let mut out = Map::new();
        for name in self.headers.keys() {
            let values: Vec<Value> = self
                .headers
                .get_all(name)
                .iter()
                .map(|value| Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect();
            let value = if values.len() == 1 {
                values.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(values)
            };
            out.insert(name.as_str().to_owned(), value);
        }
        Value::Object(out)
    }
}

/// The port: sends one request on a connection. Implementations authenticate, honour rate limits
/// and the concurrency cap, and turn non-2xx answers into [`OktaError::Api`].
#[async_trait]
pub trait OktaApi: Send + Sync {
    async fn send(
        &self,
        connection: &Connection,
        request: OktaRequest,
    ) -> Result<OktaResponse, OktaError>;
}

/// Errors of the Okta client.
#[derive(Debug, thiserror::Error)]
pub enum OktaError {
    /// The connection is missing from the project config or is malformed.
    #[error("connection `{name}`: {message}")]
    Connection { name: String, message: String },
    /// A secret reference of the connection could not be resolved.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The `private_key_jwt` key cannot sign.
    #[error("signing key: {0}")]
    Key(String),
    /// Okta answered with an error (boxed: it is large and errors travel often).
    #[error("{}", api_message(.0.code.as_deref(), &.0.summary))]
    Api(Box<ApiError>),
    /// The rate limit resets later than the connection's `max_wait`: try again after `after`.
    #[error("rate limited on {bucket} for {}", domain::duration::format(*after))]
    Throttled { after: Duration, bucket: String },
    /// The org could not be reached or the connection broke.
    #[error("network error: {0}")]
    Network(String),
    /// Okta answered something this client cannot use (a next link to another origin, a token
    /// answer without `access_token`).
    #[error("unusable answer: {0}")]
    Response(String),
    /// The answer is over the size every connector reads ([`crate::client::MAX_RESPONSE_BYTES`]).
    #[error(transparent)]
    TooLarge(#[from] crate::client::ResponseTooLarge),
}

/// An error answer of Okta. For the token endpoint, `code` is OAuth's `error` and `summary` its
/// `error_description`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    /// `errorCode` (`E0000007`...), when the body had one.
    pub code: Option<String>,
    /// `errorSummary`, or a description of the status when the body had none.
    pub summary: String,
    /// `errorCauses` as Okta sent them (a list, often empty).
    pub causes: Value,
    /// `X-Okta-Request-Id`.
    pub request_id: Option<String>,
    /// `Retry-After`, when the answer carried one.
    pub retry_after: Option<Duration>,
    /// The body when it was not Okta's error shape.
    pub body: Option<Value>,
}

fn api_message(code: Option<&str>, summary: &str) -> String {
    match code {
        Some(code) => format!("{code}: {summary}"),
        None => summary.to_owned(),
    }
}

impl OktaError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            OktaError::Connection { .. } | OktaError::Key(_) | OktaError::TooLarge(_) => false,
            OktaError::Secret(error) => matches!(error, SecretError::Unreadable { .. }),
            OktaError::Api(error) => error.status == 429 || error.status >= 500,
            OktaError::Throttled { .. } | OktaError::Network(_) | OktaError::Response(_) => true,
        }
    }
}

impl From<OktaError> for CardError {
    fn from(error: OktaError) -> CardError {
        let retryable = error.is_retryable();
        match error {
            OktaError::Api(error) => {
                let ApiError {
                    status,
                    code,
                    summary,
                    causes,
                    request_id,
                    retry_after,
                    body,
                } = *error;
                let message = api_message(code.as_deref(), &summary);
                let mut detail = json!({
                    "errorCode": code,
                    "errorSummary": summary,
                    "errorCauses": causes,
                    "requestId": request_id,
                });
                if let (Some(body), Value::Object(map)) = (body, &mut detail) {
                    map.insert("body".into(), body);
                }
                CardError::Status {
                    status,
                    message,
                    detail: Some(detail),
                    retry_after,
                }
            }
            OktaError::Throttled { after, bucket } => CardError::Throttled {
                after,
                message: format!("okta rate limit on {bucket}"),
            },
            OktaError::Network(message) => CardError::Network(message),
            OktaError::TooLarge(too_large) => too_large.into(),
            other => {
                let code = match &other {
                    OktaError::Connection { .. } => "okta_connection",
                    OktaError::Secret(_) => "secret",
                    OktaError::Key(_) => "okta_key",
                    _ => "okta_response",
                };
                CardError::Failed {
                    code: code.into(),
                    message: other.to_string(),
                    retryable,
                }
            }
        }
    }
}

/// The text value of a header.
pub(crate) fn header_text<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The `rel="next"` URL among the `Link` headers, whether Okta sent one header per link or joined
/// them with commas.
pub(crate) fn next_link(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|link| {
            let (target, params) = link.split_once(';')?;
            let is_next = params.split(';').any(|param| {
                let param = param.trim();
                param
                    .strip_prefix("rel=")
                    .map(|rel| rel.trim_matches('"'))
                    .is_some_and(|rel| rel.split_whitespace().any(|r| r == "next"))
            });
            let target = target.trim();
            (is_next && target.starts_with('<') && target.ends_with('>'))
                .then(|| target[1..target.len() - 1].to_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_in_any_link_header_layout() {
        let check = |values: &[&str], expected: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            for value in values {
                headers.append(
                    http::header::LINK,
                    http::HeaderValue::from_str(value).expect("header"),
                );
            }
            assert_eq!(next_link(&headers).as_deref(), expected, "{values:?}");
        };
        check(
            &[
                "<https://o.okta.com/api/v1/users?limit=2>; rel=\"self\"",
                "<https://o.okta.com/api/v1/users?after=00u2&limit=2>; rel=\"next\"",
            ],
            Some("https://o.okta.com/api/v1/users?after=00u2&limit=2"),
        );
        check(
            &["<https://o/a?x=1>; rel=\"self\", <https://o/a?after=b>; rel=\"next\""],
            Some("https://o/a?after=b"),
        );
        check(&["<https://o/a>; rel=self"], None);
        check(&[], None);
        check(
            &["<https://o/a?after=c>;rel=next"],
            Some("https://o/a?after=c"),
        );
    }

    #[test]
    fn api_errors_keep_okta_fields_for_history() {
        let error = OktaError::Api(Box::new(ApiError {
            status: 404,
            code: Some("E0000007".into()),
            summary: "Not found: Resource not found: x (User)".into(),
            causes: json!([]),
            request_id: Some("req1".into()),
            retry_after: None,
            body: None,
        }));
        assert!(!error.is_retryable());
        let card: CardError = error.into();
        assert_eq!(
            card,
            CardError::Status {
                status: 404,
                message: "E0000007: Not found: Resource not found: x (User)".into(),
                detail: Some(json!({
                    "errorCode": "E0000007",
                    "errorSummary": "Not found: Resource not found: x (User)",
                    "errorCauses": [],
                    "requestId": "req1",
                })),
                retry_after: None,
            }
        );
    }
}
