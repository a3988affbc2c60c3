//! idflow integration tests: one binary made of modules, each a user-visible behaviour end to end.

mod api;
mod aws;
mod bigrun;
mod console;
mod delegated;
mod deploy;
mod egress;
mod flopack;
mod functions;
mod fuzz;
mod hardening;
mod helpers;
mod hooks;
mod metrics;
mod pause;
mod schedule;
mod security;
mod seeds;
mod stream;
mod tables;
mod template;
mod waits;
mod wake;

/// Counts allocations like the binaries do, so render budgets hold in these tests too.
#[global_allocator]
static ALLOCATOR: domain::budget::CountingAllocator = domain::budget::CountingAllocator;
