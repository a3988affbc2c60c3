//! Where `secret('…')` may be written.
//!
//! A secret is for the service it authenticates to. idflow lets a flow send a secret (or text
//! computed from one) in the fields of a card that talks to an outside service — `http.request`,
//! `okta.*`, `slack.post_message`, … (see [`crate::cards::CardSpec::may_receive_secrets`]) — and
//! masks it in history. Anywhere else its value would be kept where people read it: a pure card's
//! output, a condition (an oracle: `if secret('x') < input.guess`), a helper run's input, the run's
//! result or error, a table row. Those flows could only leak, so they are refused here, at the line
//! that reads the secret; the engine refuses the same at run time as a second line of defence.

use super::check::Ctx;
use super::tree::{Node, NodeValue, index_path, key_path};

/// Reports every `secret('…')` outside the fields of a card that may receive secrets.
pub(crate) fn check(ctx: &mut Ctx, root: &Node) {
    walk(ctx, root, "", Place::Flow);
}

#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// Flow structure: steps, conditions, triggers.
    Flow,
    /// Inside the `with:` of a card, `allowed` when the card may receive secrets.
    With { card: &'static str, allowed: bool },
    /// Inside `with.stream` of a card: its state becomes every helper run's input.
    Stream { card: &'static str },
}

fn walk(ctx: &mut Ctx, node: &Node, path: &str, place: Place) {
    match &node.value {
        NodeValue::String(text) => {
            if !text.contains("secret") {
                return;
            }
            let Ok(names) = crate::template::secret_names(text) else {
                // A malformed call is reported where the template is compiled.
                return;
            };
            let Some(name) = names.first() else { return };
            let message = match place {
                Place::With { allowed: true, .. } => return,
                Place::With { card, .. } if card.starts_with("table.") => format!(
                    "secret('{name}') cannot be used here: `{card}` stores its input in a table, where the console and CLI show it; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`)"
                ),
                Place::With { card, .. } => format!(
                    "secret('{name}') cannot be used in `{card}`: its input and output are kept in history; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`), where history shows them as [redacted]"
                ),
                Place::Stream { card } => format!(
                    "secret('{name}') cannot be used in the `stream` of `{card}`: it is passed to every helper run as input, which history keeps; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`)"
                ),
                Place::Flow => format!(
                    "secret('{name}') cannot be used here: a condition, loop list or trigger setting is not sent to a connection, and its result would reveal the secret; secrets may only be sent to a connection (the fields of cards such as `http.request` or `okta.api`)"
                ),
            };
            ctx.error(node.location, path, message);
        }
        NodeValue::List(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(ctx, item, &index_path(path, index), place);
            }
        }
        NodeValue::Map(entries) => {
            // A step: a mapping with a known `card`, outside any `with:`.
            let card =
                match place {
                    Place::Flow => entries
                        .iter()
                        .find(|e| e.key == "card")
                        .and_then(|e| match &e.value.value {
                            NodeValue::String(name) => crate::cards::lookup(name),
                            _ => None,
                        }),
                    Place::With { .. } | Place::Stream { .. } => None,
                };
            for entry in entries {
                let child = key_path(path, &entry.key);
                let child_place = match (place, card) {
                    (Place::Flow, Some(spec)) if entry.key == "with" => Place::With {
                        card: spec.name,
                        allowed: spec.may_receive_secrets(),
                    },
                    // `stream.state` becomes every helper run's input.
                    (Place::With { card, .. }, _) if entry.key == "stream" && is_with(path) => {
                        Place::Stream { card }
                    }
                    (other, _) => other,
                };
                walk(ctx, &entry.value, &child, child_place);
            }
        }
        NodeValue::Null | NodeValue::Bool(_) | NodeValue::Number(_) => {}
    }
}

/// Whether `path` is a step's `with` itself (so a key under it is a card field).
fn is_with(path: &str) -> bool {
    path.ends_with(".with") || path == "with"
}
