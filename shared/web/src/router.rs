//! Assembles the routers of each deployment: everything for `idflow serve`, and what each HTTP
//! Lambda serves. Every one ends with the same fallbacks and [`json_errors`], so a route that does
//! not exist, a method it does not take and any error the stack writes answer JSON.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

use crate::error::{ApiError, json_errors};
use crate::state::ApiState;
use crate::{admin, console, triggers};

/// `idflow serve`: the triggers, the admin API, the console, `/healthz`.
pub fn router(state: ApiState) -> axum::Router {
    let routes = axum::Router::new()
        .merge(triggers::api_routes(state.clone()))
        .merge(triggers::hook_routes(state.clone()))
        .merge(admin::router(state))
        .merge(console::router());
    finish(routes, "no such route")
}

/// The `api` Lambda: API endpoint and delegated flows, the admin API, `/healthz`. Its deployment
/// marks requests API Gateway's JWT authorizer verified ([`crate::auth::VerifiedAdmin`]) in a layer
/// around this router.
pub fn api_function(state: ApiState) -> axum::Router {
    let routes = axum::Router::new()
        .merge(triggers::api_routes(state.clone()))
        .merge(admin::router(state));
    finish(routes, "no such route")
}

/// The `event-hook` Lambda: Okta event hooks only.
pub fn hooks_function(state: ApiState) -> axum::Router {
    json_errors(triggers::hook_routes(state).fallback(|| async {
        ApiError::NotFound("no such route: this function serves /hooks/okta".into())
    }))
}

fn finish(routes: axum::Router, not_found: &'static str) -> axum::Router {
    let router = routes
        .route("/healthz", get(|| async { Json(json!({ "ok": true })) }))
        .fallback(move || async move { ApiError::NotFound(not_found.into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({ "error": { "code": "method_not_allowed", "message": "method not allowed on this route" } })),
            )
        });
    json_errors(router)
}
