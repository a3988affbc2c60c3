//! idflow integration tests.
