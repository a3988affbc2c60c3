//! `http.request`: any HTTP API, with bearer, basic or custom-header auth and timeouts.

use super::registry::CardSpec;

/// The HTTP cards.
pub const CARDS: &[CardSpec] = &[];
