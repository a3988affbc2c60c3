//! The request journal: every request the simulator answered, for tests to assert on.

use chrono::{DateTime, Utc};

/// Request headers the journal keeps (lowercase).
pub(crate) const JOURNALED_HEADERS: [&str; 8] = [
    "authorization",
    "dpop",
    "content-type",
    "accept",
    "user-agent",
    "if-match",
    "prefer",
    "x-okta-user-agent-extended",
];

/// One answered request.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// When it arrived (sim clock).
    pub at: DateTime<Utc>,
    /// `GET`, `POST`…
    pub method: String,
    /// The path, e.g. `/api/v1/users`.
    pub path: String,
    /// The raw query string, if any (still percent-encoded).
    pub query: Option<String>,
    /// Selected request headers (authorization, dpop, content-type, accept, user-agent, if-match,
    /// prefer), lowercase names, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The request body as text (lossy UTF-8).
    pub body: String,
    /// The status answered.
    pub status: u16,
    /// The `X-Okta-Request-Id` answered.
    pub request_id: String,
}

impl JournalEntry {
    /// The first value of a journaled header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}
