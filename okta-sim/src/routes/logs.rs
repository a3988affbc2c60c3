//! `GET /api/v1/logs`: the System Log with `since`, `until`, `filter`, `q`, `limit`, `sortOrder`
//! and `after`.
//!
//! Like Okta, a request without `until` is a polling request: its answer always carries a `next`
//! link (even when empty) so a poller can keep asking for events that arrive later. A bounded
//! request (with `until`) has a `next` link only while more events remain.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{parse_filter, with_links};
use crate::context::Ctx;
use crate::context::Shared;
use crate::error::ApiError;

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::validation(
                name,
                vec![format!("{name}: '{text}' is not an ISO 8601 timestamp")],
            )
        })
}

/// The cursor is `<published millis>_<sequence>`: the position of the last event returned in
/// the (published, arrival) order, so events with equal timestamps are neither lost nor repeated.
fn parse_cursor(after: &str) -> Result<(i64, u64), ApiError> {
    after
        .split_once('_')
        .and_then(|(millis, seq)| Some((millis.parse().ok()?, seq.parse().ok()?)))
        .ok_or_else(|| super::bad_cursor(after))
}

fn position(event: &crate::state::LoggedEvent) -> (i64, u64) {
    (event.published.timestamp_millis(), event.seq)
}

/// `GET /api/v1/logs`
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, ApiError> {
    let limit = ctx.limit(100, 1000)?;
    let until = ctx
        .param("until")
        .map(|t| parse_time("until", t))
        .transpose()?;
    let since = match ctx.param("since") {
        Some(text) => parse_time("since", text)?,
        None => until.unwrap_or(ctx.now) - Duration::days(7),
    };
    let descending = match ctx.param("sortOrder") {
        None => false,
        Some(order) if order.eq_ignore_ascii_case("ASCENDING") => false,
        Some(order) if order.eq_ignore_ascii_case("DESCENDING") => true,
        Some(order) => {
            return Err(ApiError::validation(
                "sortOrder",
                vec![format!(
                    "sortOrder: '{order}' must be ASCENDING or DESCENDING"
                )],
            ));
        }
    };
    let filter = ctx
        .param("filter")
        .map(|f| parse_filter(f, false))
        .transpose()?;
    let keywords: Vec<String> = ctx
        .param("q")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let after = ctx.param("after").map(parse_cursor).transpose()?;
    let polling = until.is_none();
    let (page, next) = shared.org(&ctx, |org| {
        let matches = |event: &&crate::state::LoggedEvent| {
            event.published >= since
                && until.is_none_or(|u| event.published < u)
                && after.is_none_or(|a| {
                    if descending {
                        position(event) < a
                    } else {
                        position(event) > a
                    }
                })
                && filter
                    .as_ref()
                    .is_none_or(|f| f.matches(&event.event, false))
                && (keywords.is_empty() || {
                    let text = event.event.to_string().to_lowercase();
                    keywords.iter().all(|k| text.contains(k.as_str()))
                })
        };
        // Events are stored in arrival order; Okta orders by `published`, then arrival.
        let mut selected: Vec<&crate::state::LoggedEvent> =
            org.events.iter().filter(matches).collect();
        selected.sort_by_key(|e| position(e));
        if descending {
            selected.reverse();
        }
        let more = selected.len() > limit;
        selected.truncate(limit);
        let cursor = |e: &crate::state::LoggedEvent| {
            let (millis, seq) = position(e);
            format!("{millis}_{seq}")
        };
        let next = match selected.last() {
            Some(last) if more || polling => Some(cursor(last)),
            // An empty polling page keeps the caller's position.
            None if polling => Some(
                ctx.param("after")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}_0", ctx.now.timestamp_millis())),
            ),
            _ => None,
        };
        (
            selected
                .into_iter()
                .map(|e| e.event.clone())
                .collect::<Vec<_>>(),
            next,
        )
    });
    Ok(with_links(
        Value::Array(page),
        ctx.links(next.as_deref(), limit),
    ))
}
