//! Pure function cards, one module a family: text, json, object, list, date, number and boolean,
//! plus `flow.assign`.
//!
//! They run inside the engine with no I/O: the output depends only on the rendered `with:` object,
//! the step time ([`PureContext::now`](super::spec::PureContext::now)) and, for predicates, the
//! expression evaluator ([`PureContext::eval`](super::spec::PureContext::eval)). Every field is read
//! through a strict [`Fields`](super::fields::Fields) reader; a value of the wrong kind is a
//! [`CardError::InvalidInput`](super::spec::CardError::InvalidInput) naming the field. Integers stay
//! integers wherever the inputs are.
//!
//! # Layout
//! Each family module holds its cards' specs (`CARDS`), their functions and their tests; the registry
//! collects every family listed in [`FAMILIES`]. A new card of an existing family touches that
//! family's module (and the generated `docs/flow-reference.md`), nothing else.
//! - [`text`], [`json`], [`object`], [`list`], [`date`], [`number`], [`boolean`]: the families.
//! - [`flow`]: `flow.assign`, the one pure card of the `flow` family.
//! - `path`: the paths (`profile.emails[0].value`) the object and list cards read and write.

pub mod boolean;
pub mod date;
pub mod flow;
pub mod json;
pub mod list;
pub mod number;
pub mod object;
mod path;
#[cfg(test)]
mod testing;
pub mod text;

use super::spec::CardSpec;

/// The cards of every family (unsorted; the registry sorts).
pub const FAMILIES: &[&[CardSpec]] = &[
    text::CARDS,
    json::CARDS,
    object::CARDS,
    list::CARDS,
    date::CARDS,
    number::CARDS,
    boolean::CARDS,
    flow::CARDS,
];

#[cfg(test)]
mod tests {
    use super::FAMILIES;
    use crate::cards::spec::CardKind;

    #[test]
    fn every_function_card_is_documented() {
        for spec in FAMILIES.iter().copied().flatten() {
            assert!(
                !spec.summary.is_empty() && !spec.output.is_empty(),
                "{}",
                spec.name
            );
            assert!(
                spec.fields.iter().all(|field| !field.doc.is_empty()),
                "{}",
                spec.name
            );
            assert!(matches!(spec.kind, CardKind::Pure(_)), "{}", spec.name);
        }
    }
}
