//! Request bodies: every route reads its body through [`read_body`], so the answers agree: over
//! the limit is 413 (refused before reading when `Content-Length` already says so), past the body
//! read timeout is 408, and a body that is not what its framing announced is 400.

use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use http_body_util::BodyExt;

use crate::error::ApiError;

/// Default limit of request bodies.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A request body was not read within the server's body read timeout: the error the server's body
/// wrapper (`idflow serve`'s accept loop) yields, which [`read_body`] answers 408.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {}", domain::duration::format(*timeout))]
pub struct BodyReadTimeout {
    /// The timeout that passed.
    pub timeout: Duration,
}

/// Reads a whole request body of at most `limit` bytes. Every route reads bodies here, so the
/// answers agree: over the limit is 413 (refused before reading when `Content-Length` already says
/// so), past the body read timeout is 408, and a body that is not what its framing announced (a
/// malformed chunk, a connection closed early) is 400.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(ApiError::TooLarge { limit });
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(body_error(error.as_ref(), limit)),
    }
}

/// Tells the causes of a failed body read apart: the limit, the timeout, or the client's framing.
fn body_error(error: &(dyn std::error::Error + 'static), limit: usize) -> ApiError {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            return ApiError::TooLarge { limit };
        }
        if let Some(timeout) = current.downcast_ref::<BodyReadTimeout>() {
            return ApiError::RequestTimeout {
                timeout: timeout.timeout,
            };
        }
        cause = current.source();
    }
    ApiError::BadRequest(
        "the request body is malformed or incomplete: its chunked encoding or Content-Length does not match what was sent".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_body_tells_the_limit_the_timeout_and_bad_framing_apart() {
        let stream = |items: Vec<Result<&'static str, std::io::Error>>| {
            Body::from_stream(futures::stream::iter(
                items
                    .into_iter()
                    .map(|item| item.map(|text| Bytes::from_static(text.as_bytes()))),
            ))
        };
        let cases: Vec<(Body, Result<&str, &str>)> = vec![
            (Body::from("{}"), Ok("{}")),
            (Body::from("x".repeat(11)), Err("payload_too_large")),
            (
                stream(vec![Ok("12345"), Ok("678901")]),
                Err("payload_too_large"),
            ),
            (
                stream(vec![
                    Ok("{"),
                    Err(std::io::Error::other("invalid chunk size")),
                ]),
                Err("bad_request"),
            ),
            (
                Body::new(http_body_util::StreamBody::new(futures::stream::iter([
                    Err::<http_body::Frame<Bytes>, _>(axum::Error::new(BodyReadTimeout {
                        timeout: Duration::from_millis(200),
                    })),
                ]))),
                Err("request_timeout"),
            ),
        ];
        for (i, (body, expected)) in cases.into_iter().enumerate() {
            match (read_body(body, 10).await, expected) {
                (Ok(bytes), Ok(text)) => assert_eq!(&bytes[..], text.as_bytes(), "case {i}"),
                (Err(error), Err(code)) => assert_eq!(error.code(), code, "case {i}: {error}"),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
    }
}
