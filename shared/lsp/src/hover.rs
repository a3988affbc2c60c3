//! Hover in a flow file: a card's reference (summary, fields with their kinds and whether they are
//! required, output and its known shape) on a `card:` value, the step's card on `steps.<id>` in a
//! template, and a field's description on a `with:` key.

use domain::cards::{self, CardSpec};
use domain::checker::shapes::{self, Shape};
use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind, Position, Range};
use serde_json::Value;

use crate::context;
use crate::outline::Outline;
use crate::text::{byte_of_utf16, utf16_of_byte};

/// A card's reference as Markdown: the block of `docs/flow-reference.md`, and the fields of its
/// output where the checker knows their shape.
pub(crate) fn card_reference(card: &CardSpec) -> String {
    let mut text = domain::cards::doc::card_markdown(card);
    if let Some(shape) = shapes::card_output(card.name, &Value::Null) {
        text.push_str(&shape_markdown(&shape));
    }
    text
}

/// A known output shape in one line: what it is and its fields.
fn shape_markdown(shape: &Shape) -> String {
    match shape {
        Shape::List(inner) => match inner.as_ref() {
            Shape::Object { name, fields, .. } => format!(
                "Output shape: a list of {}: {}.\n",
                name.trim_start_matches("an ").trim_start_matches("a "),
                field_list(fields)
            ),
            _ => String::new(),
        },
        Shape::Object { name, fields, open } => {
            let open = if *open { " (and custom ones)" } else { "" };
            format!("Output shape: {name}: {}{open}.\n", field_list(fields))
        }
        Shape::Scalar(kind) => format!("Output shape: {kind}.\n"),
        Shape::Any => String::new(),
    }
}

fn field_list(fields: &[(String, Shape)]) -> String {
    fields
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hover at `position` in a flow file's `text`.
pub(crate) fn hover(text: &str, position: Position) -> Option<Hover> {
    let outline = Outline::new(text);
    let index = position.line as usize;
    let line = outline.texts.get(index).copied()?;
    let cursor = byte_of_utf16(line, position.character);
    let current = outline.line(index)?;
    let range_of = |start: usize, end: usize| {
        let number = position.line;
        Range::new(
            Position::new(number, utf16_of_byte(line, start)),
            Position::new(number, utf16_of_byte(line, end)),
        )
    };
    // A dotted name under the cursor inside a template: `steps.<id>...`.
    if current.block_of.is_some()
        || context::open_tag(line, cursor).is_some()
        || line.contains("{{")
    {
        let is_name = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-');
        let start = line
            .get(..cursor)?
            .char_indices()
            .rev()
            .take_while(|(_, c)| is_name(*c))
            .last()
            .map_or(cursor, |(i, _)| i);
        let end = line
            .get(cursor..)?
            .char_indices()
            .find(|(_, c)| !is_name(*c))
            .map_or(line.len(), |(i, _)| cursor + i);
        let token = line.get(start..end)?;
        let mut segments = token.split('.');
        if segments.next() == Some("steps")
            && let Some(id) = segments.next()
            && let Some(card) = context::step_card(&outline, id)
        {
            let value = format!(
                "Step `{id}` calls `{}`.\n\n{}",
                card.name,
                card_reference(card)
            );
            return Some(markdown(value, range_of(start, end)));
        }
    }
    if current.key == Some("card") && cursor >= current.value_start && current.block_of.is_none() {
        let value = crate::outline::unquote(current.value);
        let card = cards::lookup(value)?;
        let end = current.value_start + current.value.len();
        return Some(markdown(
            card_reference(card),
            range_of(current.value_start, end),
        ));
    }
    if let Some(key) = current.key
        && current.block_of.is_none()
        && cursor < current.value_start
        && let Some(with) = current.parent
        && let Some(card) = context::step_card_of_with(&outline, with).and_then(cards::lookup)
        && let Some(field) = card.fields.iter().find(|f| f.name == key)
    {
        let required = if field.required {
            "required"
        } else {
            "optional"
        };
        let value = format!(
            "`{}` of `{}` ({}, {required}): {}",
            field.name, card.name, field.kind, field.doc
        );
        let start = current.key_start;
        return Some(markdown(value, range_of(start, start + key.len())));
    }
    None
}

fn markdown(value: String, range: Range) -> Hover {
    Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(range),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = "steps:
  - id: lookup
    card: okta.read_user
    with:
      user: \"{{ input.login }}\"
  - card: text.compose
    with:
      text: \"Hi {{ steps.lookup.profile.firstName }}\"
";

    fn value(hover: Option<Hover>) -> String {
        match hover.map(|h| h.contents) {
            Some(HoverContents::Markup(markup)) => markup.value,
            other => panic!("no markdown hover: {other:?}"),
        }
    }

    #[test]
    fn a_card_value_shows_its_reference_and_output_shape() {
        let hover = hover(FLOW, Position::new(2, 12));
        let range = hover.as_ref().and_then(|h| h.range);
        let text = value(hover);
        assert!(text.starts_with("#### `okta.read_user`"), "{text}");
        assert!(text.contains("| `user` |"), "{text}");
        assert!(
            text.contains("Output shape: an Okta user: `activated`"),
            "{text}"
        );
        assert_eq!(
            range,
            Some(Range::new(Position::new(2, 10), Position::new(2, 24)))
        );
    }

    #[test]
    fn a_step_read_shows_the_steps_card() {
        let text = value(hover(FLOW, Position::new(7, 21)));
        assert!(
            text.starts_with("Step `lookup` calls `okta.read_user`."),
            "{text}"
        );
    }

    #[test]
    fn a_with_key_shows_its_field() {
        let text = value(hover(FLOW, Position::new(4, 7)));
        assert!(
            text.starts_with("`user` of `okta.read_user` (text, required)"),
            "{text}"
        );
        assert!(hover(FLOW, Position::new(0, 2)).is_none());
    }
}
