//! The load benchmark's baseline: a bare axum handler that parses the same JSON body and answers
//! 202 with a run id, storing nothing. `bench/load.sh` starts it beside `idflow serve`.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let app = axum::Router::new().route(
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
