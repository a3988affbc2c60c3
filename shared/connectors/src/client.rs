//! What every connector does with an HTTP answer: read it under one size cap, and work out how long
//! the server asked us to wait.
//!
//! `http.request`, `slack.post_message` and the Okta client build their own reqwest clients (the
//! first under the project's egress policy, the others for their configured origin only, see
//! [`crate::egress`]) but send and read through [`send`], so the three agree on:
//! - the largest body held in memory, [`MAX_RESPONSE_BYTES`], refused as [`ResponseTooLarge`] (for
//!   a card, `response_too_large`, not retried: the same request brings the same answer back);
//! - the wait a server asks for, [`retry_after`]: `Retry-After` in seconds or as an HTTP date, else
//!   Okta's `X-Rate-Limit-Reset` when the answer says the budget is spent, with dates measured
//!   against the answer's own `Date` so that our clock's skew does not count.
//!
//! Time comes from the [`Clock`] port only.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{DATE, HeaderMap, RETRY_AFTER};

use domain::cards::CardError;
use domain::ports::Clock;

/// The largest response body a connector reads, in bytes (10 MiB).
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// An answer larger than [`MAX_RESPONSE_BYTES`]: refused rather than held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the response is larger than {} MiB", MAX_RESPONSE_BYTES / (1024 * 1024))]
pub struct ResponseTooLarge;

impl From<ResponseTooLarge> for CardError {
    /// Not retryable: the same request brings the same answer back.
    fn from(error: ResponseTooLarge) -> CardError {
        CardError::Failed {
            code: "response_too_large".into(),
            message: error.to_string(),
            retryable: false,
        }
    }
}

/// Why an answer could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is over the cap.
    #[error(transparent)]
    TooLarge(#[from] ResponseTooLarge),
    /// Sending, or reading the body, failed; each connector says what that means for its card
    /// (and whether the URL may be shown).
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// An answer read in full.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// At most [`MAX_RESPONSE_BYTES`].
    pub body: Vec<u8>,
}

impl Answer {
    /// How long the server asked us to wait before trying again ([`retry_after`]).
    pub fn retry_after(&self, clock: &dyn Clock) -> Option<Duration> {
        retry_after(self.status, &self.headers, clock)
    }
}

/// Sends `request` and reads the whole answer ([`read`]).
pub async fn send(request: reqwest::RequestBuilder) -> Result<Answer, ReadError> {
    read(request.send().await?).await
}

/// Reads an answer to its end, refusing one whose `Content-Length` is over [`MAX_RESPONSE_BYTES`]
/// before reading anything, and one that grows past it while streaming (no length, or a false one).
pub async fn read(mut response: reqwest::Response) -> Result<Answer, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
    {
        return Err(ResponseTooLarge.into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ResponseTooLarge.into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status: response.status(),
        headers: std::mem::take(response.headers_mut()),
        body,
    })
}

/// How long the server asked us to wait, if it did:
/// 1. `Retry-After: <seconds>`;
/// 2. `Retry-After: <HTTP date>`, the time left until that date;
/// 3. Okta's `X-Rate-Limit-Reset: <Unix seconds>`, the time left until the window resets, but only
///    when the answer is a 429 or says `X-Rate-Limit-Remaining: 0` (Okta sends the reset on every
///    answer; on others it says nothing about waiting).
///
/// A `Retry-After` that is neither number nor date is ignored. A date already past is a wait of
/// zero. "Now" is the server's as its `Date` header gives it, so a skewed local clock neither
/// stretches nor cuts the wait; when our clock falls within the second that header names, ours is
/// used, since it is the finer reading of the same time.
pub fn retry_after(status: StatusCode, headers: &HeaderMap, clock: &dyn Clock) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };
    let until = |at: DateTime<Utc>| {
        (at - server_now(headers, clock))
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    if let Some(value) = text(RETRY_AFTER.as_str()) {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(value) {
            return Some(until(at.to_utc()));
        }
    }
    let spent = status == StatusCode::TOO_MANY_REQUESTS
        || text("x-rate-limit-remaining").and_then(|text| text.parse::<u64>().ok()) == Some(0);
    if !spent {
        return None;
    }
    let reset = text("x-rate-limit-reset")?.parse::<i64>().ok()?;
    DateTime::from_timestamp(reset, 0).map(until)
}

/// The server's time: its `Date` header, or our clock when that falls within the header's second
/// (HTTP dates have no fraction) or the header is missing or malformed.
fn server_now(headers: &HeaderMap, clock: &dyn Clock) -> DateTime<Utc> {
    let ours = clock.now();
    let Some(date) = headers
        .get(DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| DateTime::parse_from_rfc2822(value.trim()).ok())
        .map(|date| date.to_utc())
    else {
        return ours;
    };
    let within = ours >= date && ours - date < chrono::Duration::seconds(1);
    if within { ours } else { date }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::clock::ManualClock;
    use reqwest::header::HeaderValue;

    /// 2015-10-21T07:28:00Z, the `Date` most tests below send.
    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_445_412_480, 0).unwrap_or_default()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    /// `retry_after` of a 429 with `pairs`, on a clock showing `now`.
    fn wait(now: DateTime<Utc>, pairs: &[(&'static str, &'static str)]) -> Option<Duration> {
        retry_after(
            StatusCode::TOO_MANY_REQUESTS,
            &headers(pairs),
            &ManualClock::new(now),
        )
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_okta_reset() {
        assert_eq!(
            wait(t0(), &[("retry-after", "30")]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            wait(
                t0(),
                &[
                    ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                    ("retry-after", "Wed, 21 Oct 2015 07:28:45 GMT")
                ]
            ),
            Some(Duration::from_secs(45))
        );
        assert_eq!(
            wait(
                t0(),
                &[
                    ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                    ("x-rate-limit-reset", "1445412500")
                ]
            ),
            Some(Duration::from_secs(20))
        );
        assert_eq!(wait(t0(), &[("retry-after", "soon")]), None);
        assert_eq!(wait(t0(), &[]), None);
    }

    /// Slack used to read only seconds: a date, or Okta's reset, gave no wait at all.
    #[test]
    fn an_http_date_retry_after_is_honoured_without_a_date_header() {
        assert_eq!(
            wait(t0(), &[("retry-after", "Wed, 21 Oct 2015 07:29:00 GMT")]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            wait(t0(), &[("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT")]),
            Some(Duration::ZERO),
            "a date already past asks for no wait"
        );
    }

    /// The Okta client used to measure `X-Rate-Limit-Reset` against our clock alone; a clock an
    /// hour behind the org's waited an hour too long.
    #[test]
    fn waits_are_measured_on_the_servers_clock_not_ours() {
        let behind = t0() - chrono::Duration::hours(1);
        let reset = [
            ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
            ("x-rate-limit-reset", "1445412500"),
        ];
        assert_eq!(wait(behind, &reset), Some(Duration::from_secs(20)));
        // Without a `Date`, our clock is all there is.
        assert_eq!(
            wait(behind, &[("x-rate-limit-reset", "1445412500")]),
            Some(Duration::from_secs(3600 + 20))
        );
        // Within the second the `Date` names, our finer reading is kept.
        let later = t0() + chrono::Duration::milliseconds(400);
        assert_eq!(wait(later, &reset), Some(Duration::from_millis(19_600)));
        // A malformed `Date` is no evidence of skew.
        assert_eq!(
            wait(
                behind,
                &[("date", "yesterday"), ("x-rate-limit-reset", "1445412500")]
            ),
            Some(Duration::from_secs(3600 + 20))
        );
    }

    /// `Retry-After` wins over `X-Rate-Limit-Reset` (the Okta client read the reset first): it is
    /// the server's answer about this request, the reset only about the window.
    #[test]
    fn retry_after_wins_over_the_rate_limit_reset() {
        assert_eq!(
            wait(
                t0(),
                &[
                    ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                    ("retry-after", "5"),
                    ("x-rate-limit-reset", "1445412500")
                ]
            ),
            Some(Duration::from_secs(5))
        );
        // An unreadable `Retry-After` falls back to the reset instead of hiding it.
        assert_eq!(
            wait(
                t0(),
                &[
                    ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                    ("retry-after", "soon"),
                    ("x-rate-limit-reset", "1445412500")
                ]
            ),
            Some(Duration::from_secs(20))
        );
    }

    /// `http.request` used to turn Okta's reset into a wait on any error answer, so a 404 from an
    /// Okta API "asked" for a wait of up to a minute.
    #[test]
    fn the_rate_limit_reset_counts_only_when_the_budget_is_spent() {
        let clock = ManualClock::new(t0());
        let okta = |remaining: &'static str| {
            headers(&[
                ("date", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("x-rate-limit-remaining", remaining),
                ("x-rate-limit-reset", "1445412500"),
            ])
        };
        assert_eq!(
            retry_after(StatusCode::NOT_FOUND, &okta("599"), &clock),
            None
        );
        assert_eq!(
            retry_after(StatusCode::NOT_FOUND, &okta("0"), &clock),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after(StatusCode::OK, &okta("0"), &clock),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after(StatusCode::TOO_MANY_REQUESTS, &okta("599"), &clock),
            Some(Duration::from_secs(20))
        );
        // `Retry-After` needs no spent budget: servers send it with 503s too.
        assert_eq!(
            retry_after(
                StatusCode::SERVICE_UNAVAILABLE,
                &headers(&[("retry-after", "7")]),
                &clock
            ),
            Some(Duration::from_secs(7))
        );
    }

    /// Slack's answers were capped at 1 MiB and an oversized one was a retryable network error;
    /// Okta's was a retryable "unusable answer". All three now refuse over 10 MiB, not retried.
    #[test]
    fn an_oversized_answer_is_one_error_not_retried() {
        let error = CardError::from(ResponseTooLarge);
        assert_eq!(
            error,
            CardError::Failed {
                code: "response_too_large".into(),
                message: "the response is larger than 10 MiB".into(),
                retryable: false,
            }
        );
        assert!(!error.is_retryable());
    }
}
