//! The web console: one HTML page, one vanilla JS module and one stylesheet, embedded in the binary
//! so `idflow serve` and the `api` Lambda serve it at `/` without Node at run time.
//!
//! The page reads everything through the admin API (with the admin bearer token when the server has
//! one), so it shows nothing the API would not; what it reads (a flow's source and step tree,
//! per-flow run statistics, runs filtered by parent or by text) and what it changes (pausing and
//! resuming a flow) are the admin API's ([`crate::admin`]), and the data behind it the runtime's.

pub mod openapi;

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The console's static routes (`/`, `/console/app.js`, `/console/app.css`) and
/// `/api/openapi.json`. None of them carries data, so they need no token.
pub fn router() -> axum::Router {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Same-origin only: the console never loads or sends anything elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests;
