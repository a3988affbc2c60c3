//! The card registry: every card's name, fields and output. The validator checks flows against it,
//! the engine dispatches through it, and `docs/flow-reference.md` is checked against it by a test.

use super::{CardError, PureContext};

/// How a card is executed.
#[derive(Clone, Copy)]
pub enum CardKind {
    /// Runs inside the engine: no I/O, deterministic given its input and the step time.
    Pure(
        fn(
            &serde_json::Map<String, serde_json::Value>,
            &PureContext<'_>,
        ) -> Result<serde_json::Value, CardError>,
    ),
    /// Runs through a [`super::CardExecutor`] of the card's family.
    Io,
    /// Handled by the engine itself (`flow.call`, `flow.return`, `flow.fail`).
    Flow,
}

/// One input field of a card.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    /// Expected JSON kind: `text`, `number`, `integer`, `boolean`, `object`, `list`, `any`,
    /// `datetime`, `duration`, `expression`.
    pub kind: &'static str,
    pub required: bool,
    pub doc: &'static str,
}

/// A card.
#[derive(Clone, Copy)]
pub struct CardSpec {
    /// `family.action`, part of the flow-file contract.
    pub name: &'static str,
    pub summary: &'static str,
    pub fields: &'static [FieldSpec],
    /// What the step's output is.
    pub output: &'static str,
    pub kind: CardKind,
    /// Accept fields not listed (e.g. `flow.assign`).
    pub open: bool,
}

impl std::fmt::Debug for CardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CardSpec {
    /// Whether `secret('…')` may appear in this card's fields: only cards that send their input to
    /// an outside service (I/O cards), and not the `table` cards, which store it in idflow's own
    /// tables where the console and CLI show it. Everywhere else a secret would end up in history,
    /// a step output or a condition.
    pub fn may_receive_secrets(&self) -> bool {
        matches!(self.kind, CardKind::Io) && self.family() != "table"
    }

    /// The family: the part before the dot.
    pub fn family(&self) -> &'static str {
        self.name
            .split_once('.')
            .map_or(self.name, |(family, _)| family)
    }
}

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
    cards.extend_from_slice(super::functions::CARDS);
    cards.extend_from_slice(super::http::CARDS);
    cards.extend_from_slice(super::okta::CARDS);
    cards.extend_from_slice(super::okta::OIG_CARDS);
    cards.extend_from_slice(super::table::CARDS);
    cards.extend_from_slice(super::slack::CARDS);
    cards.extend_from_slice(super::email::CARDS);
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

/// Result type of pure cards.
pub type PureResult = Result<serde_json::Value, CardError>;
