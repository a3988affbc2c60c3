//! Scrubbing secrets out of what a run keeps: secret values, and the texts derived from them that a
//! card call was sent (an echoing server must not put them in history).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::run::StepError;
use crate::template;

/// Texts shorter than this are not scrubbed: they would redact ordinary words. Secrets that short
/// are not worth the name, and their owner is told so nowhere else.
const MIN_SCRUB_LEN: usize = 4;
/// Parts of a secret-derived text (split at whitespace, such as the token of `Bearer <token>`) at
/// least this long are scrubbed on their own too.
const MIN_SCRUB_PART_LEN: usize = 8;

/// Replaces secret values and secret-derived texts with `[redacted]` wherever they appear.
pub(super) struct Scrubber {
    needles: Vec<String>,
}

impl Scrubber {
    pub(super) fn new(secrets: &BTreeMap<String, String>, derived: &[String]) -> Scrubber {
        let mut needles: Vec<String> = secrets
            .values()
            .filter(|s| s.len() >= MIN_SCRUB_LEN)
            .cloned()
            .collect();
        for text in derived {
            if text.len() >= MIN_SCRUB_LEN {
                needles.push(text.clone());
            }
            needles.extend(
                text.split_whitespace()
                    .filter(|part| part.len() >= MIN_SCRUB_PART_LEN && part.len() < text.len())
                    .map(str::to_owned),
            );
        }
        // Longest first, so a secret inside a longer derived text does not break the longer match.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Scrubber { needles }
    }

    /// Whether there is nothing to scrub (the run has no secret).
    pub(super) fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub(super) fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), template::REDACTED);
            }
        }
        out
    }

    pub(super) fn value(&self, value: Value) -> Value {
        if self.needles.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(items) => Value::Array(items.into_iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.text(&k), self.value(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    pub(super) fn error(&self, mut error: StepError) -> StepError {
        if self.needles.is_empty() {
            return error;
        }
        error.message = self.text(&error.message);
        error.detail = error.detail.map(|d| self.value(d));
        error
    }
}

/// Replaces every occurrence of a secret value inside strings with `[redacted]`.
pub fn redact_secrets(value: Value, secrets: &BTreeMap<String, String>) -> Value {
    Scrubber::new(secrets, &[]).value(value)
}

/// Replaces every occurrence of a secret value inside `text` with `[redacted]`.
pub(super) fn redact_text(text: &str, secrets: &BTreeMap<String, String>) -> String {
    Scrubber::new(secrets, &[]).text(text)
}
