//! Pure function cards: text, json, object, list, date, number and boolean.

use super::registry::CardSpec;

/// The function cards (unsorted; the registry sorts).
pub const CARDS: &[CardSpec] = &[];
