//! The structure of a YAML buffer read line by line, for completion and hover while the file is
//! being typed and often does not parse: each line's key, the key it sits under (by indentation),
//! and the sequence item it belongs to. Block scalars (`text: |`) are content, not keys; flow
//! collections (`with: { a: 1 }`) are values. It never fails: a line it cannot read has no key.

use std::collections::BTreeMap;

/// One line of the buffer.
#[derive(Debug, Clone)]
pub(crate) struct Line<'a> {
    /// The key column: leading spaces plus two for each `- ` item marker.
    pub(crate) indent: usize,
    /// Whether the line starts a sequence item (`- key: value`).
    pub(crate) item: bool,
    /// The mapping key on the line, when it has one.
    pub(crate) key: Option<&'a str>,
    /// The byte offset of the key (or of the content) in the line.
    pub(crate) key_start: usize,
    /// The value after the key's colon (or the whole text after the markers), trimmed, with a
    /// trailing ` # comment` removed.
    pub(crate) value: &'a str,
    /// The byte offset of `value` in the line.
    pub(crate) value_start: usize,
    /// The line holds nothing: blank, a comment, or the content of a block scalar.
    pub(crate) empty: bool,
    /// The line is the content of the block scalar started on this line.
    pub(crate) block_of: Option<usize>,
    /// The nearest line above with a smaller key column: the key this line is under.
    pub(crate) parent: Option<usize>,
    /// The first line of the mapping this line's key belongs to (the item's `- ` line in a
    /// sequence): two lines are keys of one mapping when they share a parent and this.
    pub(crate) mapping: usize,
}

/// A buffer's lines and their structure.
pub(crate) struct Outline<'a> {
    pub(crate) lines: Vec<Line<'a>>,
    pub(crate) texts: Vec<&'a str>,
}

/// The keys under which a list of steps is written.
pub(crate) const STEP_LISTS: &[&str] = &["steps", "then", "else", "try", "catch", "on_error"];

impl<'a> Outline<'a> {
    /// Reads `text`'s structure.
    pub(crate) fn new(text: &'a str) -> Outline<'a> {
        let texts = crate::text::lines(text);
        let mut lines: Vec<Line<'a>> = Vec::with_capacity(texts.len());
        // (key column, line) of the lines that may still be parents or siblings, outermost first.
        let mut stack: Vec<(usize, usize)> = Vec::new();
        // The block scalar being read: (its line, the key column its content must exceed).
        let mut block: Option<(usize, usize)> = None;
        for (index, text) in texts.iter().enumerate() {
            let mut line = read_line(text);
            let spaces = text.len() - text.trim_start_matches(' ').len();
            if let Some((owner, column)) = block {
                if line.empty || spaces > column {
                    line.empty = true;
                    line.key = None;
                    line.block_of = Some(owner);
                    line.parent = Some(owner);
                    line.mapping = index;
                    lines.push(line);
                    continue;
                }
                block = None;
            }
            if line.empty {
                line.mapping = index;
                lines.push(line);
                continue;
            }
            while stack
                .last()
                .is_some_and(|(column, _)| *column > line.indent)
            {
                stack.pop();
            }
            line.mapping = index;
            if let Some(&(column, sibling)) = stack.last()
                && column == line.indent
            {
                stack.pop();
                if !line.item {
                    line.mapping = lines.get(sibling).map_or(index, |s| s.mapping);
                }
            }
            line.parent = stack.last().map(|(_, parent)| *parent);
            if line.key.is_some() && (line.value.starts_with('|') || line.value.starts_with('>')) {
                block = Some((index, line.indent));
            }
            stack.push((line.indent, index));
            lines.push(line);
        }
        Outline { lines, texts }
    }

    /// The line at `index`, if the buffer has it.
    pub(crate) fn line(&self, index: usize) -> Option<&Line<'a>> {
        self.lines.get(index)
    }

    /// The key of line `index`.
    pub(crate) fn key(&self, index: usize) -> Option<&'a str> {
        self.lines.get(index).and_then(|l| l.key)
    }

    /// The line a key-less position (a blank line, or a key being typed) at key column `indent` on
    /// line `index` sits under: the nearest line above with a smaller key column, skipping block
    /// content and blank lines.
    pub(crate) fn parent_at(&self, index: usize, indent: usize) -> Option<usize> {
        (0..index.min(self.lines.len())).rev().find(|&i| {
            self.lines
                .get(i)
                .is_some_and(|l| !l.empty && l.indent < indent)
        })
    }

    /// The keys of the mapping line `index` is a key of, with their lines.
    pub(crate) fn siblings(&self, index: usize) -> BTreeMap<&'a str, usize> {
        let Some(line) = self.lines.get(index) else {
            return BTreeMap::new();
        };
        let mut keys = BTreeMap::new();
        for (i, other) in self.lines.iter().enumerate().skip(line.mapping) {
            if other.empty {
                continue;
            }
            if i > line.mapping && other.indent <= line.indent && other.mapping != line.mapping {
                break;
            }
            if other.mapping == line.mapping
                && other.parent == line.parent
                && let Some(key) = other.key
            {
                keys.entry(key).or_insert(i);
            }
        }
        keys
    }

    /// The value of key `key` in the mapping line `index` is a key of.
    pub(crate) fn sibling_value(&self, index: usize, key: &str) -> Option<&'a str> {
        let line = *self.siblings(index).get(key)?;
        self.lines.get(line).map(|l| l.value)
    }

    /// The lines directly under line `index` (its children), in order.
    pub(crate) fn children(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.lines
            .iter()
            .enumerate()
            .skip(index + 1)
            .filter(move |(_, l)| !l.empty && l.parent == Some(index))
            .map(|(i, _)| i)
    }

    /// Line `index` and the lines it is under, innermost first.
    pub(crate) fn ancestry(&self, index: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut current = Some(index);
        while let Some(i) = current {
            // Parents are always above, so this ends; the bound guards a malformed outline.
            if chain.len() > self.lines.len() {
                break;
            }
            chain.push(i);
            current = self.lines.get(i).and_then(|l| l.parent);
        }
        chain
    }

    /// Whether line `index` is a key of a step: a mapping that is an item of a list of steps
    /// (`steps:`, `then:`, `catch:`, ...) and not inside a `with:`.
    pub(crate) fn is_step_key(&self, index: usize) -> bool {
        let Some(line) = self.lines.get(index) else {
            return false;
        };
        let Some(list) = line.parent else {
            return false;
        };
        let under_list = self.key(list).is_some_and(|k| STEP_LISTS.contains(&k))
            && self.lines.get(line.mapping).is_some_and(|first| first.item);
        under_list
            && !self
                .ancestry(list)
                .iter()
                .any(|&a| self.key(a) == Some("with"))
    }

    /// The steps with an `id:`: (id, the line of the `id:` key), in document order.
    pub(crate) fn step_ids(&self) -> Vec<(&'a str, usize)> {
        self.lines
            .iter()
            .enumerate()
            .filter(|(i, l)| l.key == Some("id") && self.is_step_key(*i))
            .map(|(i, l)| (unquote(l.value), i))
            .filter(|(id, _)| !id.is_empty())
            .collect()
    }
}

/// A scalar without its quotes.
pub(crate) fn unquote(value: &str) -> &str {
    let trimmed = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = trimmed
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    trimmed
}

fn read_line(text: &str) -> Line<'_> {
    let mut indent = text.len() - text.trim_start_matches(' ').len();
    let mut rest = &text[indent..];
    let mut item = false;
    loop {
        if rest == "-" {
            // An item whose content starts on the next line.
            item = true;
            indent += 1;
            rest = "";
            break;
        }
        let Some(after) = rest.strip_prefix('-') else {
            break;
        };
        if !after.starts_with(' ') {
            // `-foo` is a scalar, not an item.
            break;
        }
        let content = after.trim_start_matches(' ');
        item = true;
        indent += 1 + (after.len() - content.len());
        rest = content;
    }
    let empty = rest.is_empty() || rest.starts_with('#');
    let offset = text.len() - rest.len();
    let (key, value, value_start) = match key_of(rest) {
        Some((key, after_colon)) => {
            let value_offset = rest.len() - after_colon.len();
            let leading = after_colon.len() - after_colon.trim_start().len();
            let value = strip_comment(after_colon.trim_start());
            (Some(key), value, offset + value_offset + leading)
        }
        None => (None, strip_comment(rest), offset),
    };
    Line {
        indent,
        item,
        key: if empty { None } else { key },
        key_start: offset,
        value,
        value_start,
        empty: empty && !item,
        block_of: None,
        parent: None,
        mapping: 0,
    }
}

/// `key: rest` → (`key`, `rest`), for plain keys (letters, digits, `_`, `-`, `.`, `$`).
fn key_of(rest: &str) -> Option<(&str, &str)> {
    let end = rest.find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '$')))?;
    let (key, after) = rest.split_at(end);
    let after = after.strip_prefix(':')?;
    if key.is_empty() || !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    Some((key, after))
}

/// A value without a trailing ` # comment` (outside quotes).
fn strip_comment(value: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (index, c) in value.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => {
                return value.get(..index).unwrap_or(value).trim_end();
            }
            None => {}
        }
        previous = c;
    }
    value.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOW: &str = "name: demo
trigger:
  helper:
    inputs: { user: text }
steps:
  - id: first
    card: okta.read_user
    with:
      user: \"{{ input.user }}\"
      id: not-a-step
  - id: each
    for_each: \"{{ steps.first.x }}\"
    as: member
    steps:
      - id: inner
        card: text.compose
        with:
          text: |
            Name: {{ member }}
            id: still text
  - card: flow.fail # a comment
    with: { message: done }
";

    #[test]
    fn reads_keys_parents_and_mappings() {
        let outline = Outline::new(FLOW);
        let card = 6;
        assert_eq!(outline.key(card), Some("card"));
        assert_eq!(outline.lines[card].value, "okta.read_user");
        assert_eq!(
            outline.key(outline.lines[card].parent.unwrap()),
            Some("steps")
        );
        let keys: Vec<&str> = outline.siblings(card).into_keys().collect();
        assert_eq!(keys, vec!["card", "id", "with"]);
        assert_eq!(
            outline.sibling_value(12, "for_each"),
            Some("\"{{ steps.first.x }}\"")
        );
        assert_eq!(
            outline.lines[20].value, "flow.fail",
            "the comment is not the value"
        );
        let with_children: Vec<usize> = outline.children(7).collect();
        assert_eq!(with_children, vec![8, 9]);
    }

    #[test]
    fn block_scalars_are_content_and_with_fields_are_not_steps() {
        let outline = Outline::new(FLOW);
        assert!(outline.lines[18].empty && outline.lines[18].block_of == Some(17));
        assert_eq!(
            outline.key(19),
            None,
            "`id: still text` is text of the block"
        );
        let ids: Vec<&str> = outline.step_ids().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec!["first", "each", "inner"]);
        assert_eq!(outline.parent_at(21, 6), Some(20));
    }
}
