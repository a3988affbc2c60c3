//! A small YAML writer for recorded test cases: block style, short collections inline, and text
//! quoted (as JSON strings, which are valid YAML) whenever a plain scalar could be misread.

use serde_json::Value;

/// Collections whose inline form is at most this long are written inline (`{ status: 200 }`).
const INLINE_WIDTH: usize = 72;

/// Writes a mapping or list in block style, every line starting with `indent` spaces. Other values
/// are written as one scalar line.
pub fn to_yaml(value: &Value, indent: usize) -> String {
    let mut out = String::new();
    block(value, indent, &mut out);
    out
}

fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                out.push_str(&format!("{pad}{}:", scalar_text(key)));
                nested(item, indent + 2, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match item {
                    Value::Object(map) if !map.is_empty() && inline(item).is_none() => {
                        // The first key goes on the dash's line.
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                    Value::Array(list) if !list.is_empty() && inline(item).is_none() => {
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", flow_text(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", flow_text(other))),
    }
}

/// The value after `key:`: inline on the same line, or a nested block.
fn nested(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() && inline(value).is_none() => {
            out.push('\n');
            block(value, indent, out);
        }
        Value::Array(items) if !items.is_empty() && inline(value).is_none() => {
            out.push('\n');
            block(value, indent, out);
        }
        other => out.push_str(&format!(" {}\n", flow_text(other))),
    }
}

/// A value in flow style when it fits on one short line.
fn inline(value: &Value) -> Option<String> {
    let text = flow_text(value);
    (text.chars().count() <= INLINE_WIDTH && !text.contains('\n')).then_some(text)
}

/// A value in flow style, whatever its length.
fn flow_text(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".into(),
        Value::Array(items) if items.is_empty() => "[]".into(),
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar_text(k), flow_text(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(flow_text).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::String(s) => scalar_text(s),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Text as a plain scalar when nothing can misread it, else as a double-quoted (JSON) string.
pub fn scalar_text(text: &str) -> String {
    if is_plain(text) {
        text.to_owned()
    } else {
        Value::String(text.to_owned()).to_string()
    }
}

fn is_plain(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    let reserved = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
    ];
    first.is_ascii_alphabetic()
        && !text.ends_with(' ')
        && !reserved.contains(&text.to_ascii_lowercase().as_str())
        && text.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | '/' | '-' | '@' | '(' | ')')
        })
}
