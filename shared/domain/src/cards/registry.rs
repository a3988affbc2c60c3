//! The card registry: every card's name, fields and output. The validator checks flows against it,
//! the engine dispatches through it, and `docs/flow-reference.md` is checked against it by a test.

use super::spec::{CardKind, CardSpec, FieldSpec};

/// Cards the engine handles itself.
const FLOW_CARDS: &[CardSpec] = &[
    CardSpec {
        name: "flow.call",
        summary: "Runs a helper flow and waits for its result",
        fields: &[
            FieldSpec {
                name: "flow",
                kind: "text",
                required: true,
                doc: "name of the helper flow",
            },
            FieldSpec {
                name: "with",
                kind: "object",
                required: false,
                doc: "the helper's input",
            },
        ],
        output: "the helper's `flow.return` body (or its last step's output)",
        kind: CardKind::Flow,
        open: false,
    },
    CardSpec {
        name: "flow.start",
        summary: "Starts a helper flow and goes on without waiting for it (fire and forget)",
        fields: &[
            FieldSpec {
                name: "flow",
                kind: "text",
                required: true,
                doc: "name of the helper flow",
            },
            FieldSpec {
                name: "with",
                kind: "object",
                required: false,
                doc: "the helper's input",
            },
        ],
        output: "`{run_id}` of the helper run, once it is durably queued; its outcome does not affect this run",
        kind: CardKind::Flow,
        open: false,
    },
    CardSpec {
        name: "flow.fail",
        summary: "Ends the run as failed with a message",
        fields: &[
            FieldSpec {
                name: "message",
                kind: "text",
                required: true,
                doc: "why the run failed",
            },
            FieldSpec {
                name: "code",
                kind: "text",
                required: false,
                doc: "machine-readable reason (default `flow_failed`)",
            },
        ],
        output: "ends the run",
        kind: CardKind::Flow,
        open: false,
    },
    CardSpec {
        name: "flow.return",
        summary: "Ends the run with a result; for `respond: sync` API flows, the HTTP response",
        fields: &[
            FieldSpec {
                name: "status",
                kind: "integer",
                required: false,
                doc: "HTTP status (default 200)",
            },
            FieldSpec {
                name: "headers",
                kind: "object",
                required: false,
                doc: "HTTP response headers",
            },
            FieldSpec {
                name: "body",
                kind: "any",
                required: false,
                doc: "the result (JSON)",
            },
        ],
        output: "ends the run",
        kind: CardKind::Flow,
        open: false,
    },
];

static REGISTRY: std::sync::LazyLock<Vec<CardSpec>> = std::sync::LazyLock::new(|| {
    let mut cards: Vec<CardSpec> = Vec::new();
    cards.extend_from_slice(FLOW_CARDS);
    for family in super::functions::FAMILIES {
        cards.extend_from_slice(family);
    }
    cards.extend_from_slice(super::http::CARDS);
    cards.extend_from_slice(super::okta::CARDS);
    cards.extend_from_slice(super::okta::OIG_CARDS);
    cards.extend_from_slice(super::table::CARDS);
    cards.extend_from_slice(super::slack::CARDS);
    cards.extend_from_slice(super::email::CARDS);
    cards.extend_from_slice(super::crypto::CARDS);
    cards.sort_by(|a, b| a.name.cmp(b.name));
    cards
});

/// Every card, sorted by name.
pub fn registry() -> &'static [CardSpec] {
    REGISTRY.as_slice()
}

/// A card by name.
pub fn lookup(name: &str) -> Option<&'static CardSpec> {
    let cards = registry();
    cards
        .binary_search_by(|c| c.name.cmp(name))
        .ok()
        .map(|i| &cards[i])
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn every_function_card_is_registered_under_its_family() {
        for family in super::super::functions::FAMILIES {
            let name = family.first().map(|card| card.family());
            for card in family.iter() {
                assert_eq!(
                    Some(card.family()),
                    name,
                    "{} is in another family's module",
                    card.name
                );
                assert!(
                    lookup(card.name).is_some(),
                    "{} is not in the registry",
                    card.name
                );
            }
        }
    }
}
