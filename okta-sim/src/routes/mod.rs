//! HTTP handlers, one module per endpoint family, and the paging helpers they share.
//!
//! Paging follows Okta: a page holds at most `limit` items; `Link: <…>; rel="self"` always and
//! `Link: <…>; rel="next"` when more items follow, both absolute URLs to the simulator; the next
//! URL keeps the request's other parameters and carries an opaque `after` cursor.

pub(crate) mod apps;
pub(crate) mod governance;
pub(crate) mod groups;
pub(crate) mod logs;
pub(crate) mod users;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::filter::{self, Filter};

/// A JSON response with Link headers.
pub(crate) fn with_links(body: Value, links: Vec<String>) -> Response {
    let mut response = axum::Json(body).into_response();
    for link in links {
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().append(header::LINK, value);
        }
    }
    response
}

/// A JSON object body, or Okta's 400 E0000003.
pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ApiError::malformed_body()),
    }
}

/// Parses a `search` / `filter` expression, or answers Okta's 400.
pub(crate) fn parse_filter(text: &str, is_search: bool) -> Result<Filter, ApiError> {
    filter::parse(text).map_err(|error| {
        let (code, summary) = if is_search {
            ("E0000031", "Invalid search criteria.")
        } else {
            ("E0000030", "Bad request. Invalid filter parameter.")
        };
        ApiError::new(axum::http::StatusCode::BAD_REQUEST, code, summary).with_cause(error.0)
    })
}

/// Refuses an `after` cursor the simulator never handed out.
pub(crate) fn bad_cursor(after: &str) -> ApiError {
    ApiError::validation(
        "after",
        vec![format!("after: '{after}' is not a valid cursor")],
    )
}
