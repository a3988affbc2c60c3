//! The triggers that arrive over HTTP, one module per kind. Each does the same four things in the
//! same order: decode the request → authenticate the caller (by the flow's own rule, or the
//! project's) → build the run's input → start the run on the compiled flow version it
//! authenticated against (`Runtime::start_flow`), or through the domain's trigger use-case.
//!
//! The manual trigger is the admin API's ([`crate::admin`]); the schedule trigger's start is the
//! domain's (`domain::runner::start_scheduled_run`), used by `idflow serve`'s scheduler and the
//! `schedule` Lambda; helper runs are started by the effect driver.
//!
//! # Layout
//! - [`api`]: `trigger: { api }` flows, `GET|POST /api/flows/{name}/invoke`.
//! - [`delegated`]: `trigger: { delegated }` flows, `/api/delegated/flows`.
//! - [`event`]: `trigger: { event }` flows, Okta event hooks at `/hooks/okta`.
//!
//! A new HTTP trigger is a module here (its `router` and the `ROUTES` it serves) and one line in
//! [`api_routes`] or [`hook_routes`] and their route tables.

pub mod api;
pub mod delegated;
pub mod event;
#[cfg(test)]
pub(crate) mod test_support;

use crate::state::ApiState;

/// The triggers callers reach through the API: API endpoint flows and delegated flows (served by
/// `idflow serve` and the `api` Lambda).
pub fn api_routes(state: ApiState) -> axum::Router {
    axum::Router::new()
        .merge(api::router(state.clone()))
        .merge(delegated::router(state))
}

/// The routes [`api_routes`] serves, as `(method, path, behind the admin JWT authorizer)`.
pub fn api_route_table() -> Vec<(&'static str, &'static str, bool)> {
    [api::ROUTES, delegated::ROUTES].concat()
}

/// The routes [`hook_routes`] serves, as `(method, path, behind the admin JWT authorizer)`.
pub fn hook_route_table() -> Vec<(&'static str, &'static str, bool)> {
    event::ROUTES.to_vec()
}

/// The triggers outside services push to: Okta event hooks (served by `idflow serve` and the
/// `event-hook` Lambda).
pub fn hook_routes(state: ApiState) -> axum::Router {
    event::router(state)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use super::test_support::{DeployAfterFirstLookup, stored};
    use super::*;

    const FLOW: &str = "name: ping\nsteps:\n  - { card: text.compose, with: { text: hi } }\n";

    /// Every route in a route table reaches a handler of its router: the router answers neither
    /// 405 nor its own empty 404 (the handlers answer with a JSON body, even to refuse), so the
    /// tables the deployment template is checked against are the routes really served.
    #[tokio::test]
    async fn the_route_tables_are_the_routes_the_routers_serve() {
        let deploy = DeployAfterFirstLookup::new(stored("ping", FLOW), stored("ping", FLOW));
        let (_runtime, state) = deploy.runtime(Default::default(), ".").await;
        let served = [
            (api_routes(state.clone()), api_route_table()),
            (hook_routes(state), hook_route_table()),
        ];
        for (router, table) in served {
            assert!(!table.is_empty());
            for (method, path, _) in table {
                let uri = path.replace("{name}", "ping");
                let request = http::Request::builder()
                    .method(method)
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap_or_else(|e| panic!("{e}"));
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_ne!(
                    status,
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert!(
                    status != http::StatusCode::NOT_FOUND || !body.is_empty(),
                    "{method} {path} is not routed"
                );
            }
        }
    }
}
