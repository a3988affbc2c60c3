//! The load benchmarks' baseline: bare axum handlers that parse the same JSON bodies and answer,
//! storing nothing. `bench/load.sh` and `bench/hooks.sh` start it beside `idflow serve`.
//!
//! - `POST /api/flows/{name}/invoke`: 202 with a run id (the async API invoke).
//! - `POST /hooks/okta`: 200 once the event hook delivery is parsed and its events counted.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let app = axum::Router::new()
        .route(
            "/hooks/okta",
            post(|Json(body): Json<Value>| async move {
                let events = body
                    .pointer("/data/events")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let _ = events;
                StatusCode::OK
            }),
        )
        .route(
            "/api/flows/{name}/invoke",
            post(|Json(body): Json<Value>| async move {
                let _ = body;
                (
                    StatusCode::ACCEPTED,
                    Json(json!({ "runId": ulid::Ulid::new().to_string() })),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bare axum listening on {addr}");
    axum::serve(listener, app).await
}
