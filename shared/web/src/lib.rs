//! idflow's HTTP surface: the axum routers shared by `idflow serve` and the Lambda functions.
//!
//! # Layout
//! - [`api`]: `GET|POST /api/flows/{name}/invoke` (API endpoint flows, authenticated by each flow's
//!   trigger), the admin API, the body reader, JSON errors, and [`api::router`] assembling them all.
//! - [`hooks`]: Okta event hooks (`/hooks/okta`): verification and deliveries.
//! - [`delegated`]: delegated flows (`/api/delegated/flows`), authenticated per caller.
//! - [`jwt`]: bearer JWT verification (JWKS from a secret, a URL or OpenID discovery).
//! - [`console`]: the web console at `/` and the admin API's OpenAPI document.
//!
//! The decisions (which flows an event starts, what a delegated input may be, how a run advances)
//! are the `domain` crate's; this crate decodes, authenticates, calls it and encodes.

pub mod api;
pub mod console;
pub mod delegated;
pub mod hooks;
pub mod jwt;
