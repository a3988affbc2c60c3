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
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::ApiError;
use crate::filter::{self, Filter};
use crate::state::Principal;

/// What the gate learned about a request, handed to handlers as an extension.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) principal: Principal,
    pub(crate) now: DateTime<Utc>,
    pub(crate) request_id: String,
    pub(crate) base_url: String,
    pub(crate) path: String,
    pub(crate) raw_query: Option<String>,
    pub(crate) query: Vec<(String, String)>,
}

impl Ctx {
    /// A query parameter (the first if repeated); empty values count as absent.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `limit`, defaulted and capped like Okta (values above the cap are clamped, not refused).
    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.param("limit") {
            None => Ok(default.min(max)),
            Some(text) => match text.parse::<i64>() {
                Ok(n) => Ok((n.max(1) as usize).min(max)),
                Err(_) => Err(ApiError::validation(
                    "limit",
                    vec![format!("limit: '{text}' is not a number")],
                )),
            },
        }
    }

    /// A boolean query parameter.
    pub(crate) fn flag(&self, name: &str, default: bool) -> bool {
        match self.param(name) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => default,
        }
    }

    /// The `self` and (when `next_after` is set) `next` Link header values.
    pub(crate) fn links(&self, next_after: Option<&str>, limit: usize) -> Vec<String> {
        let here = format!("{}{}", self.base_url, self.path);
        let self_url = match &self.raw_query {
            Some(query) if !query.is_empty() => format!("{here}?{query}"),
            _ => here.clone(),
        };
        let mut links = vec![format!("<{self_url}>; rel=\"self\"")];
        if let Some(after) = next_after {
            links.push(format!("<{}>; rel=\"next\"", self.next_url(after, limit)));
        }
        links
    }

    /// This request's URL with `after` replaced by the cursor and `limit` made explicit.
    pub(crate) fn next_url(&self, after: &str, limit: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &self.query {
            if key != "after" && key != "limit" {
                query.append_pair(key, value);
            }
        }
        query.append_pair("after", after);
        query.append_pair("limit", &limit.to_string());
        format!("{}{}?{}", self.base_url, self.path, query.finish())
    }

    /// An absolute URL on the simulator.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

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
