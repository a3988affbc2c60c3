//! `okta-sim`: a local Okta org for idflow's tests, benchmarks and demos.
//!
//! It serves the parts of Okta's Management API, System Log, Okta Identity Governance request
//! API and OAuth 2.0 token endpoint that idflow uses, shaped as Okta's published OpenAPI specs
//! describe, with Okta's error bodies, `X-Okta-Request-Id`, Link paging, rate-limit headers and
//! 429s, SSWS and DPoP-bound OAuth tokens. State lives in memory; ids are deterministic.
//!
//! ```no_run
//! # async fn demo() -> Result<(), okta_sim::SimError> {
//! let sim = okta_sim::Sim::builder().seed_users(25).start().await?;
//! let url = format!("{}/api/v1/users?limit=10", sim.base_url());
//! let _auth = sim.ssws_header(); // "SSWS 00sim-default-api-token"
//! # let _ = url;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `server`: [`Sim`] builder, [`SimHandle`] (state helpers, journal, shutdown), router, and the
//!   gate middleware (request id, faults, rate limit, authentication, journal).
//! - `state`: the org (users, groups, apps, System Log) and its JSON rendering.
//! - `routes/`: handlers per endpoint family, Link paging.
//! - `auth`: SSWS, token endpoint with `private_key_jwt`, DPoP, scopes.
//! - `governance`: OIG v1/v2 access requests and their seeds.
//! - `filter`: SCIM filter expressions (`search`, `filter`).
//! - `limits`: endpoint families, rate limits, fault injection.
//! - `hooks`: event hook verification and delivery, Okta's side, and [`EventForwarder`], a hook
//!   that receives every event as it is logged.
//! - `demo`: the `--demo` org ([`SimBuilder::demo`], [`SimHandle::play_demo_activity`]).
//! - `sink`: [`WebhookSink`], a stand-in for the Slack incoming webhook the demo flows post to.
//! - `clock`, `ids`, `journal`, `error`: time, deterministic ids, request log, errors.

mod auth;
mod clock;
mod context;
mod demo;
mod error;
mod filter;
mod governance;
mod hooks;
mod ids;
mod journal;
mod limits;
mod routes;
mod server;
mod sink;
mod state;

pub use auth::{ClientKey, DEFAULT_API_TOKEN, KNOWN_SCOPES, OAuthClient, jwk_thumbprint};
pub use clock::{Clock, ManualClock, SystemClock, okta_time};
pub use error::{HookError, SimError};
pub use governance::RequestSeed;
pub use hooks::{BatchReport, DeliveryReport, EventForwarder};
pub use journal::JournalEntry;
pub use limits::{Family, Faults, RateLimit};
pub use server::{Sim, SimBuilder, SimHandle};
pub use sink::WebhookSink;
pub use state::{RequestMessage, UserStatus};
