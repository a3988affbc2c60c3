//! The card reference in `docs/flow-reference.md`, generated from the registry.
//!
//! The block between [`BEGIN`] and [`END`] in that file is exactly [`reference_markdown`]; a test fails
//! when they differ, so the documentation cannot drift from the cards. Regenerate it with
//! `cargo test -p domain --lib -- --ignored regenerate_reference`.

use std::fmt::Write as _;

use super::registry::registry;
use super::spec::{CardKind, CardSpec};

/// Marks the start of the generated block.
pub const BEGIN: &str = "<!-- cards:begin -->";
/// Marks the end of the generated block.
pub const END: &str = "<!-- cards:end -->";

/// Where the reference lives, relative to the `shared` crate.
pub fn reference_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/flow-reference.md")
}

/// Every card of the registry as Markdown: grouped by family, each with its summary, fields and
/// output.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    let mut family = "";
    for card in registry() {
        if card.family() != family {
            family = card.family();
            let _ = writeln!(out, "### {family}\n");
        }
        write_card(&mut out, card);
    }
    out
}

/// One card's reference as Markdown, exactly as in `docs/flow-reference.md` (the language server's
/// hover shows it).
pub fn card_markdown(card: &CardSpec) -> String {
    let mut out = String::new();
    write_card(&mut out, card);
    out
}

fn write_card(out: &mut String, card: &CardSpec) {
    let runs = match card.kind {
        CardKind::Pure(_) => "function, runs inside the engine",
        CardKind::Io => "calls out",
        CardKind::Flow => "flow control, handled by the engine",
    };
    let _ = writeln!(out, "#### `{}`\n\n{} ({runs}).\n", card.name, card.summary);
    if card.fields.is_empty() {
        if card.open {
            let _ = writeln!(
                out,
                "Fields: any; each one you write becomes part of the output.\n"
            );
        } else {
            let _ = writeln!(out, "Fields: none.\n");
        }
    } else {
        let _ = writeln!(
            out,
            "| field | kind | required | description |\n| --- | --- | --- | --- |"
        );
        for field in card.fields {
            let required = if field.required { "yes" } else { "no" };
            let _ = writeln!(
                out,
                "| `{}` | {} | {required} | {} |",
                field.name,
                field.kind,
                cell(field.doc)
            );
        }
        if card.open {
            let _ = writeln!(out, "\nOther fields are accepted too.");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "Output: {}.\n", card.output.trim_end_matches('.'));
}

/// Escapes what would break a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `document` with its generated block replaced by [`reference_markdown`].
pub fn update_reference(document: &str) -> Result<String, String> {
    let (start, end) = block_bounds(document)?;
    Ok(format!(
        "{}{BEGIN}\n{}\n{END}{}",
        &document[..start],
        reference_markdown().trim(),
        &document[end..]
    ))
}

/// Byte range of the block, markers included.
fn block_bounds(document: &str) -> Result<(usize, usize), String> {
    let start = document
        .find(BEGIN)
        .ok_or_else(|| format!("the reference has no `{BEGIN}` marker"))?;
    let end = document[start..]
        .find(END)
        .map(|offset| start + offset + END.len())
        .ok_or_else(|| format!("the reference has no `{END}` marker after `{BEGIN}`"))?;
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_is_up_to_date() {
        let path = reference_path();
        let document = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        let expected =
            update_reference(&document).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        assert!(
            document == expected,
            "docs/flow-reference.md is out of date: run `cargo test -p domain --lib -- --ignored regenerate_reference` and commit the result"
        );
    }

    #[test]
    fn every_card_is_in_the_reference() {
        let generated = reference_markdown();
        for card in registry() {
            assert!(
                generated.contains(&format!("#### `{}`", card.name)),
                "{}",
                card.name
            );
        }
    }

    #[test]
    fn a_card_markdown_is_its_block_of_the_reference() {
        let card = crate::cards::lookup("okta.read_user").expect("a registered card");
        let markdown = card_markdown(card);
        assert!(markdown.starts_with("#### `okta.read_user`"));
        assert!(markdown.contains("| `user` |"));
        assert!(reference_markdown().contains(&markdown));
    }

    #[test]
    fn update_keeps_the_text_around_the_block() {
        let updated =
            update_reference(&format!("intro\n{BEGIN}\nSTALE BLOCK\n{END}\noutro\n")).unwrap();
        assert!(updated.starts_with(&format!("intro\n{BEGIN}\n")));
        assert!(updated.ends_with(&format!("\n{END}\noutro\n")));
        assert!(!updated.contains("STALE BLOCK"));
        assert!(
            update_reference("no markers")
                .unwrap_err()
                .contains("no `<!-- cards:begin -->` marker")
        );
    }

    /// Rewrites the generated block of `docs/flow-reference.md`.
    #[test]
    #[ignore]
    fn regenerate_reference() {
        let path = reference_path();
        let document = std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        let updated =
            update_reference(&document).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        std::fs::write(&path, updated)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    }
}
