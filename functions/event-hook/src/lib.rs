//! The `event-hook` Lambda: Okta event hooks through API Gateway HTTP API (payload 2.0).
//!
//! `GET /hooks/okta` answers Okta's one-time verification (echoing
//! `x-okta-verification-challenge`); `POST /hooks/okta` checks the `Authorization` header against
//! `hooks.okta.secret` of `idflow.yaml` in constant time and starts one run per event per
//! subscribed flow, deduplicated by event id (see [`web::triggers::event`]). The function answers
//! 200 only once every run is durably queued, so Okta's retry after a 5xx never loses an event.

use std::sync::Arc;

use axum::Router;
use domain::runner::Runtime;
use web::auth::AdminAccess;
use web::body::DEFAULT_BODY_LIMIT;
use web::state::ApiState;

/// The routers' state. The event hook serves no admin route, so none is admitted.
pub fn state(runtime: Arc<Runtime>) -> ApiState {
    ApiState {
        runtime,
        admin: AdminAccess::VerifiedOnly,
        body_limit: DEFAULT_BODY_LIMIT,
    }
}

/// The function's router: the Okta event hook routes and a JSON 404 for anything else, every error
/// as JSON.
pub fn app(state: ApiState) -> Router {
    web::router::hooks_function(state)
}
