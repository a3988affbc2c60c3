//! Unit tests of flow tests.
