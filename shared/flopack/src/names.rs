//! Names idflow accepts, made from Okta Workflows' free-form names.

use std::collections::HashSet;

/// A flow name: lowercase letters, digits and `-`, at most 64 characters, never empty.
pub fn slug(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in text.chars() {
        let c = fold(c);
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
    }
    truncate(&mut out, 64, '-');
    if out.is_empty() {
        fallback.to_owned()
    } else {
        out
    }
}

/// An identifier: letters, digits and `_`, not starting with a digit, at most 64 characters, in
/// snake case (`First Name` → `first_name`).
pub fn ident(text: &str, fallback: &str) -> String {
    let mut out = String::new();
    let mut underscore = false;
    let mut previous_lower = false;
    for c in text.chars() {
        let c = fold(c);
        if c.is_ascii_alphanumeric() {
            // camelCase words are kept apart: `lastLogin` → `last_login`.
            if (underscore || (c.is_ascii_uppercase() && previous_lower)) && !out.is_empty() {
                out.push('_');
            }
            underscore = false;
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            underscore = true;
            previous_lower = false;
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    truncate(&mut out, 60, '_');
    if out.is_empty() {
        fallback.to_owned()
    } else {
        out
    }
}

/// An identifier that keeps the author's spelling when it already is one (`orgBaseUrl`), and
/// otherwise is [`ident`]'s snake case. Used for helper inputs, where the name is what callers see.
pub fn input_name(text: &str) -> String {
    let valid = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 60;
    if valid {
        text.to_owned()
    } else {
        ident(text, "input")
    }
}

/// Accented Latin letters become their base letter, so `Café` reads `cafe`.
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'A',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'È' | 'É' | 'Ê' | 'Ë' => 'E',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'O',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
        'ç' => 'c',
        'Ç' => 'C',
        'ñ' => 'n',
        'Ñ' => 'N',
        other => other,
    }
}

fn truncate(text: &mut String, max: usize, separator: char) {
    if text.len() > max {
        text.truncate(max);
    }
    while text.ends_with(separator) {
        text.pop();
    }
}

/// Text on one line, runs of whitespace as one space (for comments and descriptions).
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Hands out names that are unique within one set.
#[derive(Debug, Default, Clone)]
pub struct Unique {
    taken: HashSet<String>,
}

impl Unique {
    /// Marks a name as used.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_owned());
    }

    /// `base`, or `base-2`, `base-3`… (with `separator`) when taken. Stays within `max` bytes.
    pub fn take(&mut self, base: &str, separator: char, max: usize) -> String {
        let mut candidate = base.to_owned();
        let mut n = 2u32;
        while self.taken.contains(&candidate) || is_reserved_step_key(&candidate) {
            let suffix = format!("{separator}{n}");
            let mut head = base.to_owned();
            head.truncate(max.saturating_sub(suffix.len()));
            while head.ends_with(separator) {
                head.pop();
            }
            candidate = format!("{head}{suffix}");
            n += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}

/// `s<digits>` names generated step keys in idflow, so an id of that shape is refused.
fn is_reserved_step_key(name: &str) -> bool {
    name.len() > 1 && name.starts_with('s') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_flow_names() {
        assert_eq!(
            slug("[1.0] Read Transfer Status as Scheduled ", "flow"),
            "1-0-read-transfer-status-as-scheduled"
        );
        assert_eq!(
            slug("Child Flow \"Remove emails\"", "flow"),
            "child-flow-remove-emails"
        );
        assert_eq!(slug("Café ✓", "flow"), "cafe");
        assert_eq!(slug("!!!", "flow"), "flow");
        let long = slug(&"word ".repeat(40), "flow");
        assert!(long.len() <= 64 && !long.ends_with('-'), "{long}");
    }

    #[test]
    fn identifiers_are_snake_case() {
        assert_eq!(ident("First Name", "x"), "first_name");
        assert_eq!(ident("lastLogin", "x"), "last_login");
        assert_eq!(ident("1.0 Setup", "x"), "_1_0_setup");
        assert_eq!(ident("Read User", "x"), "read_user");
        assert_eq!(ident("✓", "x"), "x");
        assert_eq!(input_name("orgBaseUrl"), "orgBaseUrl");
        assert_eq!(input_name("Last Name"), "last_name");
    }

    #[test]
    fn unique_names_get_a_counter() {
        let mut names = Unique::default();
        assert_eq!(names.take("read_user", '_', 64), "read_user");
        assert_eq!(names.take("read_user", '_', 64), "read_user_2");
        assert_eq!(names.take("s1", '_', 64), "s1_2");
        let long = "a".repeat(64);
        let second = {
            names.take(&long, '-', 64);
            names.take(&long, '-', 64)
        };
        assert!(second.len() <= 64 && second.ends_with("-2"), "{second}");
    }
}
