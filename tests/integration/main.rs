//! idflow integration tests: one binary made of modules, each a user-visible behaviour end to end.

mod api;
mod helpers;
mod schedule;
mod tables;
mod waits;
