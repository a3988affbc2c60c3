//! idflow integration tests: one binary made of modules, each a user-visible behaviour end to end.

mod api;
mod aws;
mod console;
mod delegated;
mod deploy;
mod functions;
mod hardening;
mod helpers;
mod hooks;
mod schedule;
mod seeds;
mod stream;
mod tables;
mod template;
mod waits;
