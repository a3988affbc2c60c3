//! The `event-hook` Lambda: Okta event hooks through API Gateway HTTP API (payload 2.0).
//!
//! `GET /hooks/okta` answers Okta's one-time verification (echoing
//! `x-okta-verification-challenge`); `POST /hooks/okta` checks the `Authorization` header against
//! `hooks.okta.secret` of `idflow.yaml` in constant time and starts one run per event per
//! subscribed flow, deduplicated by event id (see [`web::hooks`]). The function answers 200
//! only once every run is durably queued, so Okta's retry after a 5xx never loses an event.

use std::sync::Arc;

use axum::Router;
use domain::runner::Runtime;
use web::api::{ApiError, ApiState, DEFAULT_BODY_LIMIT};

/// The routers' state. The event hook has no admin routes, so no admin token.
pub fn state(runtime: Arc<Runtime>) -> ApiState {
    ApiState {
        runtime,
        admin_token: None,
        body_limit: DEFAULT_BODY_LIMIT,
    }
}

/// The function's router: the Okta event hook routes and a JSON 404 for anything else, every error
/// as JSON.
pub fn app(state: ApiState) -> Router {
    web::api::json_errors(web::hooks::hooks_router(state).fallback(|| async {
        ApiError::NotFound("no such route: this function serves /hooks/okta".into())
    }))
}
