//! The SCIM-style filter expressions Okta accepts in `search`, `filter` (users, groups, System Log)
//! and the OIG `filter` parameter: `profile.department eq "Engineering" and (status eq "ACTIVE" or
//! lastUpdated gt "2024-01-01T00:00:00.000Z")`.
//!
//! Supported: `eq ne sw co ew gt ge lt le pr`, `and`, `or`, `not`, parentheses, string / number /
//! boolean / null literals. Attribute paths are dotted and step into arrays (any element may match),
//! so `target.id eq "00u…"` matches a System Log event with that id anywhere in `target[]`.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(String),
    Compare {
        path: String,
        op: Op,
        value: Literal,
    },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Sw,
    Co,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal on the right of an operator.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// Why a filter expression was refused; the text goes into Okta's `errorCauses`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterError(pub(crate) String);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Str(String),
}

fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => match chars.next() {
                            Some(escaped) => text.push(escaped),
                            None => return Err(FilterError("unterminated string literal".into())),
                        },
                        Some('"') => break,
                        Some(other) => text.push(other),
                        None => return Err(FilterError("unterminated string literal".into())),
                    }
                }
                tokens.push(Token::Str(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.peek_keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.peek_keyword("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Filter, FilterError> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or()?;
                match self.tokens.get(self.pos) {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(FilterError("missing closing parenthesis".into())),
                }
            }
            Some(Token::Word(path)) => {
                self.pos += 1;
                let op = match self.tokens.get(self.pos) {
                    Some(Token::Word(op)) => op.to_ascii_lowercase(),
                    _ => return Err(FilterError(format!("expected an operator after {path}"))),
                };
                self.pos += 1;
                let op = match op.as_str() {
                    "pr" => return Ok(Filter::Present(path)),
                    "eq" => Op::Eq,
                    "ne" => Op::Ne,
                    "sw" => Op::Sw,
                    "co" => Op::Co,
                    "ew" => Op::Ew,
                    "gt" => Op::Gt,
                    "ge" => Op::Ge,
                    "lt" => Op::Lt,
                    "le" => Op::Le,
                    other => return Err(FilterError(format!("unsupported operator {other}"))),
                };
                let value = match self.tokens.get(self.pos).cloned() {
                    Some(Token::Str(text)) => Literal::Str(text),
                    Some(Token::Word(word)) => match word.to_ascii_lowercase().as_str() {
                        "true" => Literal::Bool(true),
                        "false" => Literal::Bool(false),
                        "null" => Literal::Null,
                        _ => match word.parse::<f64>() {
                            Ok(number) => Literal::Num(number),
                            Err(_) => {
                                return Err(FilterError(format!(
                                    "invalid value {word}: strings must be in double quotes"
                                )));
                            }
                        },
                    },
                    _ => return Err(FilterError(format!("expected a value after {path}"))),
                };
                self.pos += 1;
                Ok(Filter::Compare { path, op, value })
            }
            Some(Token::Close) => Err(FilterError("unexpected closing parenthesis".into())),
            Some(Token::Str(text)) => Err(FilterError(format!("unexpected string \"{text}\""))),
            None => Err(FilterError("unexpected end of expression".into())),
        }
    }
}

/// Parses a filter expression.
pub(crate) fn parse(input: &str) -> Result<Filter, FilterError> {
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(FilterError("empty filter expression".into()));
    }
    let mut parser = Parser { tokens, pos: 0 };
    let filter = parser.or()?;
    if parser.pos != parser.tokens.len() {
        return Err(FilterError("unexpected text after the expression".into()));
    }
    Ok(filter)
}

/// Collects the values at a dotted path, stepping into arrays.
fn collect<'a>(doc: &'a Value, path: &[&str], out: &mut Vec<&'a Value>) {
    match doc {
        Value::Array(items) => items.iter().for_each(|item| collect(item, path, out)),
        _ if path.is_empty() => out.push(doc),
        Value::Object(map) => {
            if let Some(child) = map.get(path[0]) {
                collect(child, &path[1..], out);
            }
        }
        _ => {}
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn compare_one(actual: &Value, op: Op, expected: &Literal, fold_case: bool) -> bool {
    use std::cmp::Ordering;
    let fold = |s: &str| {
        if fold_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    match (actual, expected) {
        (Value::String(a), Literal::Str(e)) => {
            let ordering = match (parse_time(a), parse_time(e)) {
                (Some(a), Some(e)) => a.cmp(&e),
                _ => fold(a).cmp(&fold(e)),
            };
            let (a, e) = (fold(a), fold(e));
            match op {
                Op::Eq => a == e,
                Op::Ne => a != e,
                Op::Sw => a.starts_with(&e),
                Op::Co => a.contains(&e),
                Op::Ew => a.ends_with(&e),
                Op::Gt => ordering == Ordering::Greater,
                Op::Ge => ordering != Ordering::Less,
                Op::Lt => ordering == Ordering::Less,
                Op::Le => ordering != Ordering::Greater,
            }
        }
        (Value::Number(a), Literal::Num(e)) => {
            let Some(a) = a.as_f64() else { return false };
            match op {
                Op::Eq => a == *e,
                Op::Ne => a != *e,
                Op::Gt => a > *e,
                Op::Ge => a >= *e,
                Op::Lt => a < *e,
                Op::Le => a <= *e,
                Op::Sw | Op::Co | Op::Ew => false,
            }
        }
        (Value::Bool(a), Literal::Bool(e)) => match op {
            Op::Eq => a == e,
            Op::Ne => a != e,
            _ => false,
        },
        (Value::Null, Literal::Null) => op == Op::Eq,
        (_, Literal::Null) => op == Op::Ne,
        _ => op == Op::Ne,
    }
}

impl Filter {
    /// Whether `doc` satisfies the filter. `fold_case` makes string values compare
    /// case-insensitively (Okta's `search`); property names are always case-sensitive.
    pub(crate) fn matches(&self, doc: &Value, fold_case: bool) -> bool {
        match self {
            Filter::And(a, b) => a.matches(doc, fold_case) && b.matches(doc, fold_case),
            Filter::Or(a, b) => a.matches(doc, fold_case) || b.matches(doc, fold_case),
            Filter::Not(inner) => !inner.matches(doc, fold_case),
            Filter::Present(path) => {
                let mut found = Vec::new();
                collect(doc, &path.split('.').collect::<Vec<_>>(), &mut found);
                found.iter().any(|v| !v.is_null())
            }
            Filter::Compare { path, op, value } => {
                let mut found = Vec::new();
                collect(doc, &path.split('.').collect::<Vec<_>>(), &mut found);
                if found.is_empty() {
                    // An absent attribute equals null and differs from everything else.
                    return match value {
                        Literal::Null => *op == Op::Eq,
                        _ => *op == Op::Ne,
                    };
                }
                if *op == Op::Ne {
                    return found
                        .iter()
                        .all(|actual| compare_one(actual, Op::Ne, value, fold_case));
                }
                found
                    .iter()
                    .any(|actual| compare_one(actual, *op, value, fold_case))
            }
        }
    }

    /// Rewrites attribute paths (the OIG v2 list filters `requestedFor` to
    /// `requestedFor.externalId`, for instance).
    pub(crate) fn map_paths(self, rename: &impl Fn(&str) -> Option<String>) -> Filter {
        match self {
            Filter::And(a, b) => {
                Filter::And(Box::new(a.map_paths(rename)), Box::new(b.map_paths(rename)))
            }
            Filter::Or(a, b) => {
                Filter::Or(Box::new(a.map_paths(rename)), Box::new(b.map_paths(rename)))
            }
            Filter::Not(inner) => Filter::Not(Box::new(inner.map_paths(rename))),
            Filter::Present(path) => Filter::Present(rename(&path).unwrap_or(path)),
            Filter::Compare { path, op, value } => Filter::Compare {
                path: rename(&path).unwrap_or(path),
                op,
                value,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(expression: &str, doc: &Value, expected: bool) {
        let filter = parse(expression).unwrap_or_else(|e| panic!("{expression}: {e:?}"));
        assert_eq!(filter.matches(doc, true), expected, "{expression}");
    }

    #[test]
    fn evaluates_okta_examples() {
        let user = json!({
            "id": "00u1", "status": "ACTIVE", "created": "2013-06-01T00:00:00.000Z",
            "lastUpdated": "2024-03-01T10:00:00.000Z",
            "profile": {"department": "Engineering", "login": "Isaac.Brock@example.com",
                        "arrayAttr": ["a1", "a2"], "age": 40, "manager": null}
        });
        check(r#"status eq "ACTIVE""#, &user, true);
        check(r#"status eq "active""#, &user, true);
        check(r#"status eq "STAGED""#, &user, false);
        check(r#"profile.login sw "isaac""#, &user, true);
        check(r#"profile.login co "brock@""#, &user, true);
        check(r#"profile.login ew ".com""#, &user, true);
        check(r#"lastUpdated gt "2024-01-01T00:00:00.000Z""#, &user, true);
        check(r#"lastUpdated lt "2024-01-01T00:00:00Z""#, &user, false);
        check(
            r#"profile.department eq "Engineering" and (created lt "2014-01-01T00:00:00.000Z" or status eq "ACTIVE")"#,
            &user,
            true,
        );
        check(r#"(status lt "STAGED" or status gt "STAGED")"#, &user, true);
        check(r#"profile.arrayAttr eq "a2""#, &user, true);
        check(r#"profile.age ge 40"#, &user, true);
        check(r#"profile.manager eq null"#, &user, true);
        check(r#"profile.missing eq null"#, &user, true);
        check(r#"profile.missing ne "x""#, &user, true);
        check(r#"profile.department pr"#, &user, true);
        check(r#"profile.manager pr"#, &user, false);
        check(r#"not (status eq "ACTIVE")"#, &user, false);
        check(r#"STATUS EQ "ACTIVE" AND profile.age LT 50"#, &user, false);
    }

    #[test]
    fn steps_into_arrays_of_objects() {
        let event = json!({"eventType": "group.user_membership.add",
            "target": [{"id": "00u1", "type": "User"}, {"id": "00g1", "type": "UserGroup"}]});
        check(r#"target.id eq "00g1""#, &event, true);
        check(r#"target.id eq "00g2""#, &event, false);
        check(
            r#"eventType eq "group.user_membership.add" and target.type eq "User""#,
            &event,
            true,
        );
    }

    #[test]
    fn refuses_malformed_expressions() {
        for bad in [
            "",
            "status",
            "status eq",
            "status eq ACTIVE",
            "(status eq \"A\"",
            "status foo \"A\"",
            "status eq \"A",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
