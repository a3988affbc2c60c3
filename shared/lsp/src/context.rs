//! What a position in a flow file means, read from the text alone (see [`crate::outline`]): the
//! template under the cursor and the names its field can read, the step a `with:` belongs to, a
//! step's card and the shape of its output.

use domain::cards::{self, CardSpec};
use domain::checker::shapes::{self, Shape};
use serde_json::{Map, Value};

use crate::outline::{Outline, unquote};

/// The names a step field's template starts from, as the checker judges them.
pub(crate) const STEP_ROOTS: &[&str] = &["input", "steps", "run", "vars"];
/// The names an event trigger's `filter` starts from.
pub(crate) const FILTER_ROOTS: &[&str] = &["event", "delivery", "vars"];
/// The fields of `run` in a template.
pub(crate) const RUN_FIELDS: &[&str] = &["id", "flow", "started_at"];

/// The key line a position on line `index` belongs to: the line itself, or the key whose block
/// scalar it is text of.
pub(crate) fn anchor(outline: &Outline<'_>, index: usize) -> usize {
    outline
        .line(index)
        .and_then(|l| l.block_of)
        .unwrap_or(index)
}

/// Whether the cursor at byte `cursor` of `line` is inside a `{{ }}` or `{% %}` tag opened on the
/// line; the byte where the tag's content starts.
pub(crate) fn open_tag(line: &str, cursor: usize) -> Option<usize> {
    let before = line.get(..cursor)?;
    let open = before
        .rfind("{{")
        .into_iter()
        .chain(before.rfind("{%"))
        .max()?;
    let inside = before.get(open + 2..)?;
    if inside.contains("}}") || inside.contains("%}") {
        return None;
    }
    Some(open + 2)
}

/// The names a template at line `anchor` can read: the roots of its field's context and the local
/// names bound around it (loop variables, `error`, an expression field's `item`).
pub(crate) fn roots(outline: &Outline<'_>, anchor: usize) -> Vec<String> {
    let chain = outline.ancestry(anchor);
    let key = |n: usize| chain.get(n).and_then(|&i| outline.key(i));
    if key(0) == Some("filter") && key(1) == Some("event") && key(2) == Some("trigger") {
        return FILTER_ROOTS.iter().map(|r| (*r).to_owned()).collect();
    }
    let mut names: Vec<String> = STEP_ROOTS.iter().map(|r| (*r).to_owned()).collect();
    for &line in &chain {
        match outline.key(line) {
            Some("catch" | "on_error") => names.push("error".into()),
            Some("steps" | "with") => {
                let siblings = outline.siblings(line);
                if siblings.contains_key("for_each") || siblings.contains_key("map") {
                    let var = outline
                        .sibling_value(line, "as")
                        .map(unquote)
                        .filter(|v| !v.is_empty())
                        .unwrap_or("item");
                    names.push(var.to_owned());
                    names.push("index".into());
                }
            }
            _ => {}
        }
    }
    if let Some(bound) = expression_locals(outline, anchor) {
        names.extend(bound.iter().map(|n| (*n).to_owned()));
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The names a card binds while it evaluates the expression field at line `anchor` (`where:` of
/// `list.filter`...), when it is one.
pub(crate) fn expression_locals(
    outline: &Outline<'_>,
    anchor: usize,
) -> Option<&'static [&'static str]> {
    let field = outline.key(anchor)?;
    let with = outline.line(anchor)?.parent?;
    let card = step_card_of_with(outline, with)?;
    let spec = cards::lookup(card)?;
    let expression = spec
        .fields
        .iter()
        .any(|f| f.name == field && f.kind == "expression");
    match (expression, card) {
        (false, _) => None,
        (true, "list.reduce") => Some(&["item", "index", "memo"]),
        (true, _) => Some(&["item", "index"]),
    }
}

/// The card of the step whose `with:` is line `with`.
pub(crate) fn step_card_of_with<'a>(outline: &Outline<'a>, with: usize) -> Option<&'a str> {
    if outline.key(with) != Some("with") || !outline.is_step_key(with) {
        return None;
    }
    outline
        .sibling_value(with, "card")
        .map(unquote)
        .filter(|c| !c.is_empty())
}

/// The ids of the steps a template at line `anchor` may read: steps above it, except the steps
/// that enclose it and steps inside a loop's body that it is not in.
pub(crate) fn visible_steps<'a>(outline: &Outline<'a>, anchor: usize) -> Vec<&'a str> {
    let chain = outline.ancestry(anchor);
    let enclosing: Vec<usize> = chain
        .iter()
        .filter(|&&i| outline.is_step_key(i))
        .filter_map(|&i| outline.line(i).map(|l| l.mapping))
        .collect();
    let is_loop_body = |line: usize| {
        outline.key(line) == Some("steps") && {
            let siblings = outline.siblings(line);
            siblings.contains_key("for_each") || siblings.contains_key("map")
        }
    };
    let mut ids: Vec<&str> = Vec::new();
    for (id, line) in outline.step_ids() {
        if line >= anchor {
            break;
        }
        let Some(step) = outline.line(line).map(|l| l.mapping) else {
            continue;
        };
        if enclosing.contains(&step) {
            continue;
        }
        let hidden_in_loop = outline
            .ancestry(line)
            .into_iter()
            .any(|a| is_loop_body(a) && !chain.contains(&a));
        if !hidden_in_loop && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The line of the `id:` of step `id`.
fn step_line(outline: &Outline<'_>, id: &str) -> Option<usize> {
    outline
        .step_ids()
        .into_iter()
        .find(|(found, _)| *found == id)
        .map(|(_, line)| line)
}

/// The card step `id` calls, if it is a card step.
pub(crate) fn step_card<'a>(outline: &Outline<'a>, id: &str) -> Option<&'static CardSpec> {
    let line = step_line(outline, id)?;
    let card = outline.sibling_value(line, "card").map(unquote)?;
    cards::lookup(card)
}

/// The shape of step `id`'s output, where the checker knows it.
pub(crate) fn step_shape(outline: &Outline<'_>, id: &str) -> Option<Shape> {
    let line = step_line(outline, id)?;
    let card = outline.sibling_value(line, "card").map(unquote)?;
    let with = outline
        .siblings(line)
        .get("with")
        .map(|&with| with_value(outline, with))
        .unwrap_or(Value::Null);
    shapes::card_output(card, &with)
}

/// A `with:` as far as its shape depends on it: its keys (values as written), from a block
/// mapping or an inline `{ ... }`.
fn with_value(outline: &Outline<'_>, with: usize) -> Value {
    let inline = outline.line(with).map_or("", |l| l.value);
    if inline.starts_with('{') {
        return domain::flowfile::parse_document("with.yaml", inline)
            .map(|d| d.value)
            .unwrap_or(Value::Null);
    }
    let mut map = Map::new();
    for child in outline.children(with) {
        if let Some(line) = outline.line(child)
            && let Some(key) = line.key
        {
            map.insert(key.to_owned(), Value::String(line.value.to_owned()));
        }
    }
    Value::Object(map)
}

/// The fields of the value at `path` below `shape`, when it is an object.
pub(crate) fn shape_fields<'s>(shape: &'s Shape, path: &[&str]) -> Vec<&'s str> {
    let mut current = shape;
    for key in path {
        match current {
            Shape::Object { fields, .. } => match fields.iter().find(|(k, _)| k == key) {
                Some((_, next)) => current = next,
                None => return Vec::new(),
            },
            _ => return Vec::new(),
        }
    }
    match current {
        Shape::Object { fields, .. } => fields.iter().map(|(k, _)| k.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// The inputs the flow's trigger declares (`delegated:` or `helper:` with `inputs:`), or `event`
/// and `delivery` for an event trigger; empty when the trigger takes any input.
pub(crate) fn declared_inputs<'a>(outline: &Outline<'a>) -> Vec<&'a str> {
    let Some(trigger) = (0..outline.lines.len()).find(|&i| {
        outline.key(i) == Some("trigger") && outline.line(i).is_some_and(|l| l.parent.is_none())
    }) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for kind in outline.children(trigger) {
        match outline.key(kind) {
            Some("event") => return vec!["event", "delivery"],
            Some("delegated" | "helper") => {
                let Some(inputs) = outline
                    .children(kind)
                    .find(|&i| outline.key(i) == Some("inputs"))
                else {
                    continue;
                };
                let inline = outline.line(inputs).map_or("", |l| l.value);
                if inline.starts_with('{') {
                    // An inline mapping: its keys are before each `:`.
                    for part in inline.trim_matches(['{', '}']).split(',') {
                        if let Some((key, _)) = part.split_once(':') {
                            let key = unquote(key);
                            if !key.is_empty() {
                                names.push(key);
                            }
                        }
                    }
                } else {
                    names.extend(outline.children(inputs).filter_map(|i| outline.key(i)));
                }
                if outline.key(kind) == Some("delegated") {
                    names.push(domain::delegation::ACCESS_REQUEST_ID);
                }
            }
            _ => {}
        }
    }
    names
}

/// The fields of the value at `path` below a project var.
pub(crate) fn json_keys<'v>(value: &'v Map<String, Value>, path: &[&str]) -> Vec<&'v str> {
    let mut current = value;
    for key in path {
        match current.get(*key) {
            Some(Value::Object(next)) => current = next,
            _ => return Vec::new(),
        }
    }
    current.keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = "name: demo
trigger:
  event:
    okta: [user.lifecycle.activate]
    filter: \"{{ event.x }}\"
steps:
  - id: first
    card: okta.read_user
    with: { user: \"{{ input.event.target[0].id }}\" }
  - id: each
    for_each: \"{{ steps.first.x }}\"
    as: member
    steps:
      - id: inner
        card: list.filter
        with:
          list: \"{{ member }}\"
          where: item.x
  - try:
      - id: tried
        card: text.compose
        with: { text: hi }
    catch:
      - card: flow.fail
        with:
          message: \"{{ error }}\"
  - id: names
    card: flow.assign
    with:
      a: 1
      b: 2
";

    #[test]
    fn roots_follow_the_field_context() {
        let outline = Outline::new(FLOW);
        assert_eq!(roots(&outline, 4), vec!["event", "delivery", "vars"]);
        assert_eq!(
            roots(&outline, 16),
            vec!["input", "steps", "run", "vars", "member", "index"]
        );
        let expression = roots(&outline, 17);
        assert!(expression.contains(&"item".to_owned()), "{expression:?}");
        assert!(roots(&outline, 25).contains(&"error".to_owned()));
        assert!(!roots(&outline, 8).contains(&"error".to_owned()));
        assert_eq!(
            expression_locals(&outline, 17),
            Some(&["item", "index"][..])
        );
        assert_eq!(expression_locals(&outline, 16), None);
    }

    #[test]
    fn visible_steps_are_earlier_and_outside_other_loops() {
        let outline = Outline::new(FLOW);
        assert_eq!(visible_steps(&outline, 16), vec!["first"]);
        assert_eq!(visible_steps(&outline, 25), vec!["first", "each", "tried"]);
        assert_eq!(visible_steps(&outline, 8), Vec::<&str>::new());
    }

    #[test]
    fn step_cards_and_shapes_come_from_the_text() {
        let outline = Outline::new(FLOW);
        assert_eq!(
            step_card(&outline, "first").map(|c| c.name),
            Some("okta.read_user")
        );
        let user = step_shape(&outline, "first").expect("an Okta user");
        assert!(shape_fields(&user, &["profile"]).contains(&"email"));
        let names = step_shape(&outline, "names").expect("flow.assign's keys");
        assert_eq!(shape_fields(&names, &[]), vec!["a", "b"]);
        assert_eq!(declared_inputs(&outline), vec!["event", "delivery"]);
        assert_eq!(open_tag("a: \"{{ steps.x", 14), Some(6));
        assert_eq!(open_tag("a: \"{{ x }} y", 13), None);
    }
}
