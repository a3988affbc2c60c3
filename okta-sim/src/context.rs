//! What every handler shares: the simulator's state behind its lock ([`Shared`]) and what the gate
//! learned about the request in hand ([`Ctx`]). Kept apart from `server` (which assembles the router)
//! and `routes` (the handlers) so both depend on it and neither on the other.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::auth::AuthState;
use crate::clock::{Clock, lock};
use crate::error::ApiError;
use crate::journal::JournalEntry;
use crate::limits::{Faults, RateLimiter};
use crate::state::{Org, Principal};

/// What the gate learned about a request, handed to handlers as an extension.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) principal: Principal,
    pub(crate) now: DateTime<Utc>,
    pub(crate) request_id: String,
    pub(crate) base_url: String,
    pub(crate) path: String,
    pub(crate) raw_query: Option<String>,
    pub(crate) query: Vec<(String, String)>,
}

impl Ctx {
    /// A query parameter (the first if repeated); empty values count as absent.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `limit`, defaulted and capped like Okta (values above the cap are clamped, not refused).
    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.param("limit") {
            None => Ok(default.min(max)),
            Some(text) => match text.parse::<i64>() {
                Ok(n) => Ok((n.max(1) as usize).min(max)),
                Err(_) => Err(ApiError::validation(
                    "limit",
                    vec![format!("limit: '{text}' is not a number")],
                )),
            },
        }
    }

    /// A boolean query parameter.
    pub(crate) fn flag(&self, name: &str, default: bool) -> bool {
        match self.param(name) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => default,
        }
    }

    /// The `self` and (when `next_after` is set) `next` Link header values.
    pub(crate) fn links(&self, next_after: Option<&str>, limit: usize) -> Vec<String> {
        let here = format!("{}{}", self.base_url, self.path);
        let self_url = match &self.raw_query {
            Some(query) if !query.is_empty() => format!("{here}?{query}"),
            _ => here.clone(),
        };
        let mut links = vec![format!("<{self_url}>; rel=\"self\"")];
        if let Some(after) = next_after {
            links.push(format!("<{}>; rel=\"next\"", self.next_url(after, limit)));
        }
        links
    }

    /// This request's URL with `after` replaced by the cursor and `limit` made explicit.
    pub(crate) fn next_url(&self, after: &str, limit: usize) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &self.query {
            if key != "after" && key != "limit" {
                query.append_pair(key, value);
            }
        }
        query.append_pair("after", after);
        query.append_pair("limit", &limit.to_string());
        format!("{}{}?{}", self.base_url, self.path, query.finish())
    }

    /// An absolute URL on the simulator.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Mutable simulator state behind one lock; handlers hold it briefly and never across an await.
pub(crate) struct Inner {
    pub(crate) org: Org,
    pub(crate) auth: AuthState,
    pub(crate) limiter: RateLimiter,
    pub(crate) faults: Faults,
    pub(crate) fault_counter: u64,
    pub(crate) journal: VecDeque<JournalEntry>,
    pub(crate) journal_capacity: Option<usize>,
}

/// What every handler shares.
pub(crate) struct Shared {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) base_url: String,
    pub(crate) hook_timeout: Mutex<Duration>,
}

impl Shared {
    pub(crate) fn next_token(&self, len: usize) -> String {
        lock(&self.inner).org.ids.token(len)
    }

    pub(crate) fn next_uuid(&self) -> String {
        lock(&self.inner).org.ids.uuid()
    }

    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Runs `f` on the org with the current request's id recorded for System Log events.
    pub(crate) fn org<R>(&self, ctx: &Ctx, f: impl FnOnce(&mut Org) -> R) -> R {
        let mut inner = lock(&self.inner);
        inner.org.current_request_id = Some(ctx.request_id.clone());
        inner.org.current_request_uri = ctx.path.clone();
        let result = f(&mut inner.org);
        inner.org.current_request_id = None;
        inner.org.current_request_uri.clear();
        result
    }
}
