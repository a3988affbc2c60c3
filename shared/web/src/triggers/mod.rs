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
//! A new HTTP trigger is a module here named after its kind, exporting its `TRIGGER` (its
//! [`Surface`], the `ROUTES` it serves and its `router`). The modules are declared, and
//! [`HTTP_TRIGGERS`] listed, from the core's list of kinds that arrive over HTTP
//! (`domain::http_trigger_kinds!`), so the module is the whole of a kind's HTTP side: the routers
//! of every deployment and the route tables the deployment template is checked against derive
//! from that list.

#[cfg(test)]
pub(crate) mod test_support;

use crate::state::ApiState;

/// Declares the module of every kind that arrives over HTTP and lists their [`HttpTrigger`]s.
macro_rules! http_triggers {
    ($($kind:ident),+) => {
        $(
            pub mod $kind;
            // The kind this module serves is one the core knows.
            #[allow(unused_imports)]
            use domain::triggers::$kind as _;
        )+

        /// Every trigger that arrives over HTTP: the one list the routers and route tables
        /// derive from.
        pub const HTTP_TRIGGERS: &[HttpTrigger] = &[$($kind::TRIGGER),+];
    };
}

domain::http_trigger_kinds!(http_triggers);

/// Which deployments serve an HTTP trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Reached by callers of idflow's API: served by `idflow serve` and the `api` Lambda.
    Api,
    /// Pushed to by outside services (Okta event hooks): served by `idflow serve` and the
    /// `event-hook` Lambda.
    Hooks,
}

/// One trigger that arrives over HTTP.
#[derive(Debug, Clone, Copy)]
pub struct HttpTrigger {
    /// The deployments that serve it.
    pub surface: Surface,
    /// The routes [`HttpTrigger::router`] serves, as `(method, path, behind the admin JWT
    /// authorizer)`: what the deployment template must route to the surface's Lambda.
    pub routes: &'static [(&'static str, &'static str, bool)],
    /// Its handlers: decode → authenticate → build input → start.
    pub router: fn(ApiState) -> axum::Router,
}

/// The routers of the triggers served on `surface`, merged.
fn routes_of(surface: Surface, state: ApiState) -> axum::Router {
    HTTP_TRIGGERS
        .iter()
        .filter(|trigger| trigger.surface == surface)
        .fold(axum::Router::new(), |router, trigger| {
            router.merge((trigger.router)(state.clone()))
        })
}

/// The routes of the triggers served on `surface`.
fn route_table_of(surface: Surface) -> Vec<(&'static str, &'static str, bool)> {
    HTTP_TRIGGERS
        .iter()
        .filter(|trigger| trigger.surface == surface)
        .flat_map(|trigger| trigger.routes.iter().copied())
        .collect()
}

/// The triggers callers reach through the API: API endpoint flows and delegated flows (served by
/// `idflow serve` and the `api` Lambda).
pub fn api_routes(state: ApiState) -> axum::Router {
    routes_of(Surface::Api, state)
}

/// The routes [`api_routes`] serves, as `(method, path, behind the admin JWT authorizer)`.
pub fn api_route_table() -> Vec<(&'static str, &'static str, bool)> {
    route_table_of(Surface::Api)
}

/// The routes [`hook_routes`] serves, as `(method, path, behind the admin JWT authorizer)`.
pub fn hook_route_table() -> Vec<(&'static str, &'static str, bool)> {
    route_table_of(Surface::Hooks)
}

/// The triggers outside services push to: Okta event hooks (served by `idflow serve` and the
/// `event-hook` Lambda).
pub fn hook_routes(state: ApiState) -> axum::Router {
    routes_of(Surface::Hooks, state)
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
