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
//! A new HTTP trigger is a module here and one line in [`api_routes`] or [`hook_routes`].

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

/// The triggers outside services push to: Okta event hooks (served by `idflow serve` and the
/// `event-hook` Lambda).
pub fn hook_routes(state: ApiState) -> axum::Router {
    event::router(state)
}
