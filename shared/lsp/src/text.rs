//! Positions: the checker counts 1-based lines and 1-based columns in characters; LSP counts
//! 0-based lines and 0-based columns in UTF-16 code units. Every conversion between the two goes
//! through here, so a line with `é` or an emoji is underlined where the problem is.

use lsp_types::{Position, Range};

/// The lines of a document as the checker counts them: split at `\n`, a trailing `\r` dropped.
pub(crate) fn lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect()
}

/// The UTF-16 length of `text`.
fn utf16_len(text: &str) -> u32 {
    let units: usize = text.chars().map(char::len_utf16).sum();
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// The byte offset in `line` of an LSP column (UTF-16 units), clamped to the line's end. A column
/// inside a surrogate pair falls back to the start of its character.
pub(crate) fn byte_of_utf16(line: &str, character: u32) -> usize {
    let mut units = 0u32;
    for (index, c) in line.char_indices() {
        let next = units.saturating_add(u32::try_from(c.len_utf16()).unwrap_or(2));
        if next > character {
            return index;
        }
        units = next;
    }
    line.len()
}

/// The LSP column of a byte offset in `line` (clamped to the line, rounded down to a character).
pub(crate) fn utf16_of_byte(line: &str, byte: usize) -> u32 {
    let mut end = byte.min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    utf16_len(line.get(..end).unwrap_or(""))
}

/// The range an editor underlines for a problem the checker reports at `line`:`column` (1-based,
/// columns in characters): from there to the end of the name that starts there (at least one
/// character, none at the end of a line; a dotted name such as `steps.frist` whole). A problem without a position (line 0) is put on the
/// file's first character.
pub(crate) fn diagnostic_range(lines: &[&str], line: u32, column: u32) -> Range {
    if line == 0 {
        return Range::new(Position::new(0, 0), Position::new(0, 0));
    }
    let index = line - 1;
    let Some(text) = lines.get(index as usize) else {
        // Past the end (a problem reported at the end of the input): the end of the last line.
        let last = u32::try_from(lines.len().saturating_sub(1)).unwrap_or(0);
        let end = lines.last().map_or(0, |l| utf16_len(l));
        return Range::new(Position::new(last, end), Position::new(last, end));
    };
    let skip = column.saturating_sub(1) as usize;
    let start_byte = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
    let rest = text.get(start_byte..).unwrap_or("");
    let name_len: usize = rest
        .chars()
        .take_while(|c| is_name_char(*c) || *c == '.')
        .map(char::len_utf8)
        .sum();
    let end_byte = if name_len == 0 {
        rest.chars()
            .next()
            .map_or(start_byte, |c| start_byte + c.len_utf8())
    } else {
        start_byte + name_len
    };
    Range::new(
        Position::new(index, utf16_of_byte(text, start_byte)),
        Position::new(index, utf16_of_byte(text, end_byte)),
    )
}

/// Characters of a name in a template or a key: identifiers and `-` (step ids and secret names
/// take it).
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units_on_non_ascii_lines() {
        // `é` is one unit, `😀` two: the name at character 14 starts at unit 14 (13 characters
        // before it, one of them two units wide), not at byte 16.
        let lines = lines("text: \"é😀 {{ stpes.a }}\"");
        let range = diagnostic_range(&lines, 1, 14);
        assert_eq!(range.start, Position::new(0, 14));
        assert_eq!(
            range.end,
            Position::new(0, 21),
            "the name `stpes.a` is underlined"
        );
        assert_eq!(byte_of_utf16(lines[0], 7), 7, "`é` starts at byte 7");
        assert_eq!(byte_of_utf16(lines[0], 8), 9, "`😀` starts at byte 9");
        assert_eq!(byte_of_utf16(lines[0], 9), 9, "inside the pair: its start");
        assert_eq!(byte_of_utf16(lines[0], 10), 13);
        assert_eq!(byte_of_utf16(lines[0], 1000), lines[0].len());
        assert_eq!(utf16_of_byte(lines[0], 13), 10);
        assert_eq!(
            utf16_of_byte(lines[0], 10),
            8,
            "inside a character: its start"
        );
    }

    #[test]
    fn positions_outside_the_text_are_clamped() {
        let lines = lines("a: 1\r\nb: 2");
        assert_eq!(lines, vec!["a: 1", "b: 2"]);
        assert_eq!(
            diagnostic_range(&lines, 0, 0),
            Range::new(Position::new(0, 0), Position::new(0, 0))
        );
        assert_eq!(diagnostic_range(&lines, 9, 1).start, Position::new(1, 4));
        assert_eq!(
            diagnostic_range(&lines, 2, 50),
            Range::new(Position::new(1, 4), Position::new(1, 4))
        );
        assert_eq!(
            diagnostic_range(&lines, 2, 3),
            Range::new(Position::new(1, 2), Position::new(1, 3)),
            "a character that starts no name is underlined alone"
        );
    }
}
