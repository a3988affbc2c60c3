//! Completion in a flow file, from the text around the cursor (the buffer often does not parse
//! while it is typed): card names after `card:`, a card's `with:` fields, and inside a template the
//! names its field reads, step ids after `steps.`, output fields after `steps.<id>.`, `vars.` keys,
//! declared inputs, `secret('` names and filters after `|`.

use domain::cards;
use domain::checker::shapes;
use domain::model::ProjectConfig;
use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, MarkupContent,
    MarkupKind, Position, Range, TextEdit,
};

use crate::context;
use crate::outline::Outline;
use crate::text::{byte_of_utf16, utf16_of_byte};

/// The completions at `position` in a flow file's `text`; `project` is its `idflow.yaml`, when it
/// loaded.
pub(crate) fn complete(
    text: &str,
    position: Position,
    project: Option<&ProjectConfig>,
) -> Vec<CompletionItem> {
    let outline = Outline::new(text);
    let index = position.line as usize;
    let Some(line) = outline.texts.get(index).copied() else {
        return Vec::new();
    };
    let cursor = byte_of_utf16(line, position.character);
    let at = Place {
        line,
        index,
        cursor,
    };
    let anchor = context::anchor(&outline, index);
    if let Some(start) = context::open_tag(line, cursor) {
        return template(&outline, anchor, &at, start, project);
    }
    let Some(current) = outline.line(index) else {
        return Vec::new();
    };
    if current.block_of.is_none() && current.key.is_some() && cursor >= current.value_start {
        if current.key == Some("card") {
            return card_names(&at, current.value_start);
        }
        // An expression field (`where: item.x`) is an expression without `{{ }}`.
        if context::expression_locals(&outline, index).is_some() {
            return template(&outline, anchor, &at, current.value_start, project);
        }
        return Vec::new();
    }
    with_fields(&outline, &at)
}

/// The cursor: its line's text, number, and byte offset in the line.
struct Place<'a> {
    line: &'a str,
    index: usize,
    cursor: usize,
}

impl Place<'_> {
    /// The range from byte `start` of the line to the cursor: what a completion replaces.
    fn range_from(&self, start: usize) -> Range {
        self.range(start, self.cursor)
    }

    /// The range between two bytes of the line.
    fn range(&self, start: usize, end: usize) -> Range {
        let line = u32::try_from(self.index).unwrap_or(u32::MAX);
        Range::new(
            Position::new(line, utf16_of_byte(self.line, start)),
            Position::new(line, utf16_of_byte(self.line, end)),
        )
    }
}

fn item(
    label: &str,
    kind: CompletionItemKind,
    detail: Option<String>,
    range: Range,
) -> CompletionItem {
    CompletionItem {
        label: label.to_owned(),
        kind: Some(kind),
        detail,
        text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(
            range,
            label.to_owned(),
        ))),
        ..CompletionItem::default()
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

/// Every card, replacing what is typed after `card:` (card names hold dots, which editors take as
/// word breaks).
fn card_names(at: &Place<'_>, value_start: usize) -> Vec<CompletionItem> {
    let start = value_start.min(at.cursor);
    let range = at.range_from(start);
    cards::registry()
        .iter()
        .map(|card| CompletionItem {
            documentation: Some(markdown(crate::hover::card_reference(card))),
            ..item(
                card.name,
                CompletionItemKind::CLASS,
                Some(card.summary.to_owned()),
                range,
            )
        })
        .collect()
}

/// The fields of the card whose `with:` the cursor is a key of, less those already written.
fn with_fields(outline: &Outline<'_>, at: &Place<'_>) -> Vec<CompletionItem> {
    let before = at.line.get(..at.cursor).unwrap_or("");
    let typed = before.trim_start_matches([' ', '-']);
    if !typed.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Vec::new();
    }
    let indent = before.len() - typed.len();
    let Some(with) = outline.parent_at(at.index, indent) else {
        return Vec::new();
    };
    let Some(card) = context::step_card_of_with(outline, with).and_then(cards::lookup) else {
        return Vec::new();
    };
    let written: Vec<&str> = outline
        .children(with)
        .filter(|&i| i != at.index)
        .filter_map(|i| outline.key(i))
        .collect();
    // Renaming a key already followed by its colon replaces the key alone; a new key gets its
    // colon.
    let (range, colon) = match outline.key(at.index) {
        Some(key) if at.cursor <= indent + key.len() => (at.range(indent, indent + key.len()), ""),
        _ => (at.range_from(indent), ": "),
    };
    card.fields
        .iter()
        .filter(|field| !written.contains(&field.name))
        .map(|field| {
            let required = if field.required { ", required" } else { "" };
            let text = format!("{}{colon}", field.name);
            CompletionItem {
                documentation: Some(markdown(field.doc.to_owned())),
                insert_text: Some(text.clone()),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(range, text))),
                ..item(
                    field.name,
                    CompletionItemKind::FIELD,
                    Some(format!("{}{required}", field.kind)),
                    range,
                )
            }
        })
        .collect()
}

/// Inside a template whose content starts at byte `start` of the line.
fn template(
    outline: &Outline<'_>,
    anchor: usize,
    at: &Place<'_>,
    start: usize,
    project: Option<&ProjectConfig>,
) -> Vec<CompletionItem> {
    let before = at.line.get(start..at.cursor).unwrap_or("");
    if let Some(items) = secret_names(at, before, project) {
        return items;
    }
    // The dotted name being typed: `steps.lookup.pro`.
    let token_len: usize = before
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .map(char::len_utf8)
        .sum();
    let token = before.get(before.len() - token_len..).unwrap_or("");
    let segments: Vec<&str> = token.split('.').collect();
    let partial = segments.last().copied().unwrap_or("");
    let range = at.range_from(at.cursor - partial.len());
    let preceding = before
        .get(..before.len() - token_len)
        .unwrap_or("")
        .trim_end();
    if segments.len() == 1 && preceding.ends_with('|') {
        return domain::template::filter_names()
            .map(|name| item(name, CompletionItemKind::FUNCTION, None, range))
            .collect();
    }
    let Some((root, path)) = segments.split_first() else {
        return Vec::new();
    };
    let path = path.get(..path.len().saturating_sub(1)).unwrap_or(&[]);
    if segments.len() == 1 {
        let mut items: Vec<CompletionItem> = context::roots(outline, anchor)
            .iter()
            .map(|name| item(name, CompletionItemKind::VARIABLE, None, range))
            .collect();
        items.extend(domain::template::function_names().map(|name| {
            item(
                name,
                CompletionItemKind::FUNCTION,
                Some("function".into()),
                range,
            )
        }));
        return items;
    }
    let roots = context::roots(outline, anchor);
    if !roots.iter().any(|r| r == root) {
        return Vec::new();
    }
    let fields = |names: Vec<&str>, kind| -> Vec<CompletionItem> {
        names
            .into_iter()
            .map(|name| item(name, kind, None, range))
            .collect()
    };
    match *root {
        "steps" => match path.split_first() {
            None => context::visible_steps(outline, anchor)
                .into_iter()
                .map(|id| {
                    let card = context::step_card(outline, id).map(|c| c.name.to_owned());
                    item(id, CompletionItemKind::MODULE, card, range)
                })
                .collect(),
            Some((id, below)) => match context::step_shape(outline, id) {
                Some(shape) => fields(
                    context::shape_fields(&shape, below),
                    CompletionItemKind::FIELD,
                ),
                None => Vec::new(),
            },
        },
        "vars" => match project {
            Some(project) => fields(
                context::json_keys(&project.vars, path),
                CompletionItemKind::FIELD,
            ),
            None => Vec::new(),
        },
        "input" => match path.split_first() {
            None => fields(context::declared_inputs(outline), CompletionItemKind::FIELD),
            Some((&"event", below)) if context::declared_inputs(outline).contains(&"delivery") => {
                fields(
                    context::shape_fields(&shapes::log_event(), below),
                    CompletionItemKind::FIELD,
                )
            }
            Some(_) => Vec::new(),
        },
        "event" => fields(
            context::shape_fields(&shapes::log_event(), path),
            CompletionItemKind::FIELD,
        ),
        "run" if path.is_empty() => fields(context::RUN_FIELDS.to_vec(), CompletionItemKind::FIELD),
        _ => Vec::new(),
    }
}

/// After `secret('` (or `secret("`): the secrets `idflow.yaml` declares.
fn secret_names(
    at: &Place<'_>,
    before: &str,
    project: Option<&ProjectConfig>,
) -> Option<Vec<CompletionItem>> {
    let partial_len: usize = before
        .chars()
        .rev()
        .take_while(|c| !matches!(c, '\'' | '"' | '(' | ' '))
        .map(char::len_utf8)
        .sum();
    let opened = before.get(..before.len() - partial_len)?;
    let opened = opened.strip_suffix(['\'', '"'])?;
    if !opened
        .trim_end()
        .strip_suffix('(')?
        .trim_end()
        .ends_with("secret")
    {
        return None;
    }
    let range = at.range_from(at.cursor - partial_len);
    Some(
        project
            .map(|p| p.secrets.keys().map(String::as_str).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|name| {
                item(
                    name,
                    CompletionItemKind::CONSTANT,
                    Some("secret".into()),
                    range,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labels offered where `‸` is in `text` (which is removed).
    fn labels(text: &str, project: Option<&ProjectConfig>) -> Vec<String> {
        let (line, column) = text
            .lines()
            .enumerate()
            .find_map(|(i, l)| l.find('‸').map(|c| (i, c)))
            .expect("a cursor");
        let text = text.replacen('‸', "", 1);
        let position = Position::new(
            u32::try_from(line).unwrap(),
            utf16_of_byte(text.lines().nth(line).unwrap(), column),
        );
        complete(&text, position, project)
            .into_iter()
            .map(|i| i.label)
            .collect()
    }

    fn project() -> ProjectConfig {
        domain::flowfile::parse_project(
            "idflow.yaml",
            "vars:\n  org: { name: acme, region: eu }\n  team: ops\nsecrets:\n  slack-token: env:SLACK\n",
        )
        .expect("a valid project")
    }

    const HEAD: &str =
        "name: demo\nsteps:\n  - id: user\n    card: okta.read_user\n    with: { user: x }\n";

    #[test]
    fn completes_card_names_after_card() {
        let found = labels("steps:\n  - card: okta.re‸\n", None);
        assert!(found.contains(&"okta.read_user".to_owned()));
        assert_eq!(found.len(), cards::registry().len(), "the editor filters");
        let found = labels("steps:\n  - card: ‸", None);
        assert!(found.contains(&"text.compose".to_owned()));
    }

    #[test]
    fn completes_with_fields_of_the_steps_card_less_those_written() {
        let text = format!("{HEAD}  - id: msg\n    card: text.compose\n    with:\n      ‸\n");
        assert_eq!(labels(&text, None), vec!["text"]);
        let text =
            format!("{HEAD}  - card: slack.post_message\n    with:\n      channel: x\n      te‸\n");
        let found = labels(&text, None);
        assert!(
            found.contains(&"text".to_owned()) && !found.contains(&"channel".to_owned()),
            "{found:?}"
        );
        assert!(
            labels("steps:\n  - card: text.compose\n    ti‸", None).is_empty(),
            "a step key, not a with field"
        );
        let text = "steps:\n  - card: text.compose\n    with:\n      texx: hi\n";
        let edits: Vec<String> = complete(text, Position::new(3, 8), None)
            .into_iter()
            .filter_map(|i| match i.text_edit {
                Some(CompletionTextEdit::Edit(edit)) => Some(format!(
                    "{}-{} {}",
                    edit.range.start.character, edit.range.end.character, edit.new_text
                )),
                _ => None,
            })
            .collect();
        assert_eq!(
            edits,
            vec!["6-10 text"],
            "a written key is replaced whole, its colon kept"
        );
    }

    #[test]
    fn completes_steps_and_output_fields_inside_templates_while_broken() {
        let text = format!("{HEAD}  - card: text.compose\n    with:\n      text: \"{{{{ steps.‸\n");
        assert_eq!(labels(&text, None), vec!["user"]);
        let text = format!(
            "{HEAD}  - card: text.compose\n    with:\n      text: \"{{{{ steps.user.profile.em‸\n"
        );
        let found = labels(&text, None);
        assert!(found.contains(&"email".to_owned()), "{found:?}");
        let text =
            format!("{HEAD}  - card: text.compose\n    with:\n      text: \"{{{{ st‸ }}}}\"\n");
        let found = labels(&text, None);
        assert!(
            found.contains(&"steps".to_owned()) && found.contains(&"secret".to_owned()),
            "{found:?}"
        );
        let text = format!(
            "{HEAD}  - card: text.compose\n    with:\n      text: \"{{{{ input.name | up‸\n"
        );
        assert!(labels(&text, None).contains(&"upper".to_owned()));
    }

    #[test]
    fn completes_vars_and_secrets_from_the_project() {
        let project = project();
        let text = format!("{HEAD}  - card: text.compose\n    with:\n      text: \"{{{{ vars.‸\n");
        assert_eq!(labels(&text, Some(&project)), vec!["org", "team"]);
        let text =
            format!("{HEAD}  - card: text.compose\n    with:\n      text: \"{{{{ vars.org.‸\n");
        assert_eq!(labels(&text, Some(&project)), vec!["name", "region"]);
        let text =
            format!("{HEAD}  - card: text.compose\n    with:\n      text: \"{{{{ secret('sl‸\n");
        assert_eq!(labels(&text, Some(&project)), vec!["slack-token"]);
    }

    #[test]
    fn completes_an_expression_field_and_the_filter_context() {
        let text =
            format!("{HEAD}  - card: list.filter\n    with:\n      list: []\n      where: it‸\n");
        assert!(labels(&text, None).contains(&"item".to_owned()));
        let text = "trigger:\n  event:\n    okta: [a]\n    filter: \"{{ event.act‸\"\n";
        assert!(labels(text, None).contains(&"actor".to_owned()));
        let text = "trigger:\n  event:\n    okta: [a]\n    filter: \"{{ ‸\"\n";
        let found = labels(text, None);
        assert!(found.contains(&"event".to_owned()) && !found.contains(&"steps".to_owned()));
    }
}
