//! Rate limits and fault injection.
//!
//! Okta limits requests per endpoint family and reports the budget on every response in
//! `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (Unix seconds when the
//! window ends). The simulator uses fixed windows aligned to multiples of the window length on the
//! injected clock, so a test that moves a [`crate::ManualClock`] past the reset gets a fresh budget.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// An endpoint family with its own rate-limit budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `/api/v1/users…`
    Users,
    /// `/api/v1/groups…`
    Groups,
    /// `/api/v1/apps…`
    Apps,
    /// `/api/v1/logs`
    Logs,
    /// `/governance/api/…`
    Governance,
    /// `/oauth2/v1/token`
    Token,
    /// Anything else.
    Other,
}

impl Family {
    /// Every family, in a stable order.
    pub const ALL: [Family; 7] = [
        Family::Users,
        Family::Groups,
        Family::Apps,
        Family::Logs,
        Family::Governance,
        Family::Token,
        Family::Other,
    ];

    /// The family a request path belongs to.
    pub fn of_path(path: &str) -> Family {
        if path.starts_with("/api/v1/users") {
            Family::Users
        } else if path.starts_with("/api/v1/groups") {
            Family::Groups
        } else if path.starts_with("/api/v1/apps") {
            Family::Apps
        } else if path.starts_with("/api/v1/logs") {
            Family::Logs
        } else if path.starts_with("/governance/") {
            Family::Governance
        } else if path.starts_with("/oauth2/") {
            Family::Token
        } else {
            Family::Other
        }
    }

    /// The lowercase name used on the command line (`users`, `logs`…).
    pub fn name(self) -> &'static str {
        match self {
            Family::Users => "users",
            Family::Groups => "groups",
            Family::Apps => "apps",
            Family::Logs => "logs",
            Family::Governance => "governance",
            Family::Token => "token",
            Family::Other => "other",
        }
    }

    /// Okta's documented default for the family, per minute (the simulator's defaults).
    fn default_per_minute(self) -> u32 {
        match self {
            Family::Users => 600,
            Family::Groups => 500,
            Family::Apps => 100,
            Family::Logs => 120,
            Family::Governance => 600,
            Family::Token => 600,
            Family::Other => 600,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Family::ALL
            .into_iter()
            .find(|family| family.name() == text)
            .ok_or_else(|| format!("unknown endpoint family {text:?} (users, groups, apps, logs, governance, token, other)"))
    }
}

/// A budget: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub limit: u32,
    /// Window length (whole seconds; rounded up to at least one second).
    pub window: Duration,
}

impl RateLimit {
    /// `limit` requests per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }

    /// `limit` requests per minute, Okta's usual unit.
    pub fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    fn window_secs(&self) -> i64 {
        self.window.as_secs().max(1) as i64
    }
}

impl FromStr for RateLimit {
    type Err = String;

    /// `600/60s`, `10/1m`, `5/2s`, or a bare `600` (per minute).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (limit, window) = text.split_once('/').unwrap_or((text, "60s"));
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| format!("invalid request count in {text:?}"))?;
        let window = window.trim();
        let (digits, unit) = window.split_at(
            window
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(window.len()),
        );
        let amount: u64 = if digits.is_empty() {
            1
        } else {
            digits
                .parse()
                .map_err(|_| format!("invalid window in {text:?}"))?
        };
        let seconds = match unit {
            "" | "s" => amount,
            "m" => amount * 60,
            "h" => amount * 3600,
            _ => return Err(format!("invalid window unit in {text:?} (use s, m or h)")),
        };
        Ok(RateLimit::new(limit, Duration::from_secs(seconds)))
    }
}

/// Deterministic faults, counted over every request the simulator receives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Delay before each response.
    pub latency: Option<Duration>,
    /// Every Nth request answers 500 E0000009.
    pub error_every: Option<u64>,
    /// Every Nth request answers 429 E0000047 (with `X-Rate-Limit-Remaining: 0`).
    pub throttle_every: Option<u64>,
    /// Only requests whose path starts with this are counted and faulted (all when `None`).
    pub path_prefix: Option<String>,
}

/// The outcome of counting one request against its family's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub(crate) limit: u32,
    pub(crate) remaining: u32,
    pub(crate) reset: i64,
    pub(crate) exceeded: bool,
}

/// Fixed-window counters per family.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    limits: HashMap<Family, RateLimit>,
    windows: HashMap<Family, (i64, u32)>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        let limits = Family::ALL
            .into_iter()
            .map(|f| (f, RateLimit::per_minute(f.default_per_minute())))
            .collect();
        Self {
            limits,
            windows: HashMap::new(),
        }
    }
}

impl RateLimiter {
    pub(crate) fn set(&mut self, family: Family, limit: RateLimit) {
        self.limits.insert(family, limit);
        self.windows.remove(&family);
    }

    /// Counts a request at `now`; a request over the budget is not counted.
    pub(crate) fn take(&mut self, family: Family, now: DateTime<Utc>) -> Budget {
        let limit = self
            .limits
            .get(&family)
            .copied()
            .unwrap_or(RateLimit::per_minute(600));
        let window = limit.window_secs();
        let start = now.timestamp().div_euclid(window) * window;
        let entry = self.windows.entry(family).or_insert((start, 0));
        if entry.0 != start {
            *entry = (start, 0);
        }
        let exceeded = entry.1 >= limit.limit;
        if !exceeded {
            entry.1 += 1;
        }
        Budget {
            limit: limit.limit,
            remaining: limit.limit.saturating_sub(entry.1),
            reset: start + window,
            exceeded,
        }
    }

    /// The budget without counting (for responses refused before counting, like fault 429s).
    pub(crate) fn peek(&self, family: Family, now: DateTime<Utc>) -> Budget {
        let mut copy = self.clone();
        let mut budget = copy.take(family, now);
        if !budget.exceeded {
            budget.remaining += 1;
        }
        budget.exceeded = false;
        budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn parses_rate_limits() {
        let check = |text: &str, expected: Option<(u32, u64)>| {
            let parsed = text
                .parse::<RateLimit>()
                .ok()
                .map(|r| (r.limit, r.window.as_secs()));
            assert_eq!(parsed, expected, "{text}");
        };
        check("600/60s", Some((600, 60)));
        check("10/1m", Some((10, 60)));
        check("5/s", Some((5, 1)));
        check("100", Some((100, 60)));
        check("2/1h", Some((2, 3600)));
        check("x/60s", None);
        check("5/3d", None);
    }

    #[test]
    fn window_resets_on_the_boundary() {
        let mut limiter = RateLimiter::default();
        limiter.set(Family::Users, RateLimit::new(2, Duration::from_secs(60)));
        let t0 = Utc.timestamp_opt(1_700_000_040, 0).unwrap();
        let first = limiter.take(Family::Users, t0);
        assert_eq!(
            (first.remaining, first.reset, first.exceeded),
            (1, 1_700_000_100, false)
        );
        assert!(!limiter.take(Family::Users, t0).exceeded);
        let third = limiter.take(Family::Users, t0);
        assert!(third.exceeded);
        assert_eq!(third.remaining, 0);
        // Other families keep their own budget.
        assert!(!limiter.take(Family::Logs, t0).exceeded);
        let later = limiter.take(Family::Users, Utc.timestamp_opt(1_700_000_100, 0).unwrap());
        assert_eq!(
            (later.remaining, later.reset, later.exceeded),
            (1, 1_700_000_160, false)
        );
    }
}
