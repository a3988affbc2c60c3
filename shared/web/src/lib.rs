//! idflow's HTTP surface: the axum routers shared by `idflow serve` and the Lambda functions.
//!
//! The decisions (which flows an event starts, what a delegated input may be, how a run advances)
//! are the `domain` crate's, reached through the runtime's use-cases; this crate decodes,
//! authenticates, calls them and encodes.
//!
//! # Layout
//! - [`triggers`]: one module per trigger kind that arrives over HTTP (API endpoints, delegated
//!   flows, Okta event hooks): decode → authenticate → build input → start.
//! - [`admin`]: the admin API (flows, manual runs, runs, re-run, cancel) and its route table.
//! - [`console`]: the web console at `/` and the admin API's OpenAPI document.
//! - [`router`]: the routers of each deployment, assembled from the above.
//! - Leaves every module may use: [`error`] (errors as JSON), [`state`] (what routes share),
//!   [`body`] (reading bodies), [`auth`] (constant-time checks, secrets for auth, the admin access
//!   rule and check), [`jwt`] (bearer JWT verification), [`view`] (JSON views of flows).

pub mod admin;
pub mod auth;
pub mod body;
pub mod console;
pub mod error;
pub mod jwt;
pub mod router;
pub mod state;
pub mod triggers;
pub mod view;
