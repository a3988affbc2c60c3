//! [`Reply`]: a router's response as the `api` and `event-hook` functions hand it to API Gateway,
//! without `lambda_http`'s body conversion.
//!
//! `lambda_http` turns a response body into the text or base64 `body` of an HTTP API answer itself,
//! and decodes text from whatever `charset` the `Content-Type` names. That decoding links every
//! legacy encoding of `encoding_rs` (0.15 MiB of code and its tables) into both functions, for
//! bodies the routers always produce as UTF-8. [`Reply`] makes the same choice between text and
//! binary by the same rules, and sends text only when it is UTF-8; anything else goes as binary,
//! which API Gateway's HTTP API decodes back to the exact bytes. So a client receives the bytes
//! the router wrote, as before, for every body that is UTF-8 (with or without a byte order mark).
//! Where `lambda_http` would have re-encoded (a `charset` other than UTF-8, or bytes that are not
//! UTF-8 under a text type), the client now receives the bytes as written instead of U+FFFD
//! replacements or a second encoding; the routers produce neither.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use ::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use ::http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt as _;
use lambda_http::{Body, IntoResponse};

/// The header `lambda_http` reads to send a response of any content type as text.
const X_LAMBDA_HTTP_CONTENT_ENCODING: &str = "x-lambda-http-content-encoding";

/// Content types sent as text when they start with one of these (`lambda_http`'s list).
const TEXT_PREFIXES: [&str; 5] = [
    "text",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
];

/// Media types sent as text when they end with one of these (`lambda_http`'s list).
const TEXT_SUFFIXES: [&str; 3] = ["+xml", "+yaml", "+json"];

/// The labels the Encoding Standard gives UTF-8 (what `encoding_rs` resolves to UTF-8).
const UTF8_LABELS: [&str; 6] = [
    "unicode-1-1-utf-8",
    "unicode11utf8",
    "unicode20utf8",
    "utf-8",
    "utf8",
    "x-unicode20utf8",
];

/// A router's response, answered to API Gateway with a text body when it is UTF-8 text and a
/// binary (base64) body otherwise. Wrap the router with
/// `lambda_http::tower::ServiceExt::map_response(router, Reply)`.
#[derive(Debug)]
pub struct Reply<B>(pub Response<B>);

impl<B> IntoResponse for Reply<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Debug,
{
    // `lambda_http::ResponseFuture`, which the crate does not export by name.
    fn into_response(self) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let (parts, body) = self.0.into_parts();
        Box::pin(async move {
            match body.collect().await {
                Ok(collected) => {
                    let body = gateway_body(&parts.headers, collected.to_bytes().to_vec());
                    Response::from_parts(parts, body)
                }
                // The routers' bodies are in memory, so this does not happen; `lambda_http`
                // panics here, which would fail the invocation: a 500 tells the caller instead.
                Err(error) => {
                    tracing::error!(?error, "cannot read the response body");
                    let mut response = Response::new(Body::Empty);
                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    response
                }
            }
        })
    }
}

/// The body API Gateway gets for `bytes` under `headers`: text or binary by `lambda_http`'s rules,
/// text only when the bytes are UTF-8.
fn gateway_body(headers: &HeaderMap, bytes: Vec<u8>) -> Body {
    if headers.contains_key(CONTENT_ENCODING) {
        return Body::Binary(bytes);
    }
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return utf8_text(bytes);
    };
    let content_type = value.to_str().unwrap_or_default();
    let media_type = content_type.trim().split(';').next().unwrap_or_default();
    let text = TEXT_PREFIXES
        .iter()
        .any(|prefix| content_type.starts_with(prefix))
        || TEXT_SUFFIXES
            .iter()
            .any(|suffix| media_type.ends_with(suffix))
        || headers
            .get(X_LAMBDA_HTTP_CONTENT_ENCODING)
            .is_some_and(|value| value == "text");
    if !text {
        return Body::Binary(bytes);
    }
    // As `lambda_http`: a content type that does not parse, or names no charset, is UTF-8.
    let utf8 = match content_type.parse::<mime::Mime>() {
        Ok(mime) => mime.get_param(mime::CHARSET).is_none_or(|label| {
            let label = label
                .as_str()
                .trim_matches(['\t', '\n', '\x0C', '\r', ' '])
                .to_ascii_lowercase();
            UTF8_LABELS.contains(&label.as_str())
        }),
        Err(_) => true,
    };
    if utf8 {
        utf8_text(bytes)
    } else {
        Body::Binary(bytes)
    }
}

/// `bytes` as text when they are UTF-8 (a leading byte order mark dropped, as `lambda_http` did),
/// else as binary.
fn utf8_text(bytes: Vec<u8>) -> Body {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    match std::str::from_utf8(text) {
        Ok(text) => Body::Text(text.to_owned()),
        Err(_) => Body::Binary(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response with these headers and body, as the routers build it.
    fn response(
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response<http_body_util::Full<bytes::Bytes>> {
        let mut builder = Response::builder().status(201);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder
            .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
                body,
            )))
            .expect("a valid response")
    }

    async fn ours(headers: &[(&str, &str)], body: &[u8]) -> Response<Body> {
        Reply(response(headers, body)).into_response().await
    }

    async fn lambda_https(headers: &[(&str, &str)], body: &[u8]) -> Response<Body> {
        response(headers, body).into_response().await
    }

    /// The bytes a client of API Gateway's HTTP API receives for `body`.
    fn received(body: &Body) -> Vec<u8> {
        match body {
            Body::Empty => Vec::new(),
            Body::Text(text) => text.as_bytes().to_vec(),
            Body::Binary(bytes) => bytes.clone(),
            _ => panic!("unexpected body {body:?}"),
        }
    }

    #[tokio::test]
    async fn utf8_bodies_go_exactly_as_lambda_http_sends_them() {
        let texts: [&[u8]; 5] = [
            b"",
            b"{\"who\":\"Ada <ada@example.com>\",\"groups\":2}",
            "Ad\u{e0} \u{2713} \u{1f600} \u{fffd}".as_bytes(),
            b"\xEF\xBB\xBFwith a byte order mark",
            b"\x00\x01 control characters\n",
        ];
        let header_sets: [&[(&str, &str)]; 16] = [
            &[],
            &[("content-type", "application/json")],
            &[("content-type", "application/json; charset=utf-8")],
            &[("content-type", "text/plain; charset=\"UTF-8\"")],
            &[("content-type", "text/html;charset= utf8 ")],
            &[("content-type", "text/csv; charset=unicode-1-1-utf-8")],
            &[("content-type", "application/problem+json")],
            &[("content-type", "application/vnd.api+json; charset=utf-8")],
            &[("content-type", "application/yaml")],
            &[("content-type", "image/svg+xml")],
            &[("content-type", "not a media type")],
            &[("content-type", "application/octet-stream")],
            &[("content-type", "image/png")],
            &[
                ("content-type", "application/pdf"),
                ("x-lambda-http-content-encoding", "text"),
            ],
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &[
                ("content-type", "text/plain"),
                ("x-lambda-http-content-encoding", "binary"),
            ],
        ];
        for headers in header_sets {
            for text in texts {
                let (ours, theirs) = (ours(headers, text).await, lambda_https(headers, text).await);
                assert_eq!(ours.body(), theirs.body(), "{headers:?} {text:?}");
                assert_eq!(ours.status(), theirs.status());
                assert_eq!(ours.headers(), theirs.headers());
            }
        }
    }

    #[tokio::test]
    async fn binary_bodies_go_exactly_as_lambda_http_sends_them() {
        let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe";
        for headers in [
            &[("content-type", "image/png")][..],
            &[("content-type", "application/octet-stream")],
            &[("content-type", "text/plain"), ("content-encoding", "br")],
        ] {
            let (ours, theirs) = (ours(headers, png).await, lambda_https(headers, png).await);
            assert_eq!(ours.body(), theirs.body(), "{headers:?}");
            assert_eq!(ours.body(), &Body::Binary(png.to_vec()));
        }
    }

    #[tokio::test]
    async fn text_that_is_not_utf8_reaches_the_client_as_written() {
        // `café` in ISO-8859-1, under the charset that names it: `lambda_http` decoded it to
        // text, which API Gateway sent re-encoded as UTF-8 (two bytes for `é`); now the client
        // gets the four bytes its `Content-Type` describes.
        let latin1 = b"caf\xE9";
        let headers = [("content-type", "text/plain; charset=iso-8859-1")];
        let sent = ours(&headers, latin1).await;
        assert_eq!(sent.body(), &Body::Binary(latin1.to_vec()));
        let theirs = lambda_https(&headers, latin1).await;
        assert_eq!(received(theirs.body()), "caf\u{e9}".as_bytes());
        // Bytes that are not UTF-8 under a UTF-8 text type: no U+FFFD replacement any more.
        for (headers, bytes) in [
            (
                &[("content-type", "text/plain")][..],
                &b"\xFF\xFEh\x00i\x00"[..],
            ),
            (&[], b"half \xE2\x9C"),
            (
                &[("content-type", "application/json; charset=latin1")],
                b"{}",
            ),
        ] {
            let sent = ours(headers, bytes).await;
            assert_eq!(received(sent.body()), bytes, "{headers:?}");
            assert_eq!(sent.status(), 201);
        }
    }
}
