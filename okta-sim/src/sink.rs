//! A stand-in for a Slack incoming webhook, so the demo's Slack messages land somewhere visible.
//!
//! idflow's example flows post their Slack messages to `vars.slackWebhook` (a local address in the
//! demo). The sink answers every POST as Slack does (`200 ok`) and hands each message to a callback;
//! the `okta-sim` binary prints them. It is a demo aid, not a Slack simulator: it checks nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::SimError;

/// Largest message the sink reads (Slack's own limit is far below).
const MAX_MESSAGE: usize = 1024 * 1024;

/// A running webhook sink; dropping it stops the listener.
pub struct WebhookSink {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl WebhookSink {
    /// Listens on `addr` and calls `on_message(path, body)` for every POST: the body as JSON, or
    /// as a JSON string when it is not JSON.
    pub async fn start(
        addr: SocketAddr,
        on_message: impl Fn(&str, Value) + Send + Sync + 'static,
    ) -> Result<WebhookSink, SimError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let on_message = Arc::new(on_message);
        let app = Router::new().fallback(move |request: Request| {
            let on_message = on_message.clone();
            async move {
                if request.method() != axum::http::Method::POST {
                    return (StatusCode::METHOD_NOT_ALLOWED, "post a message").into_response();
                }
                let path = request.uri().path().to_owned();
                let body: Bytes = match axum::body::to_bytes(request.into_body(), MAX_MESSAGE).await
                {
                    Ok(body) => body,
                    Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response(),
                };
                let message = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
                on_message(&path, message);
                (StatusCode::OK, "ok").into_response()
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(WebhookSink {
            local_addr,
            stop: Some(stop),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
