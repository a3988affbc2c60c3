//! okta-sim's integration tests: one binary, one module per endpoint family, plus a schema test
//! that checks responses against Okta's published OpenAPI specs.

mod apps;
mod auth;
mod demo;
mod governance;
mod groups;
mod hooks;
mod limits;
mod logs;
mod openapi;
mod schema;
mod support;
mod users;
