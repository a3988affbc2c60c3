//! Clocks: the wall clock for production and a manual clock for tests.
//!
//! Everything that waits in idflow waits through the [`Clock`] port, so a test can replace hours of
//! waiting by one call to [`ManualClock::advance`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::ports::Clock;

/// The wall clock; sleeps on tokio timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        // Tokio's timer runs on the monotonic clock while the deadline is wall time; the two can drift
        // (NTP adjustments), so sleep again until the wall clock agrees.
        loop {
            let left = deadline - Utc::now();
            match left.to_std() {
                Ok(left) if !left.is_zero() => tokio::time::sleep(left).await,
                _ => return,
            }
        }
    }
}

/// A clock that moves only when told to. Cloning shares the same time.
///
/// [`Clock::sleep_until`] returns as soon as [`ManualClock::set`] or [`ManualClock::advance`] moves
/// the time to or past the deadline; nothing polls.
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            time: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves the clock to `time` (backwards too) and wakes sleepers whose deadline has come.
    pub fn set(&self, time: DateTime<Utc>) {
        self.time.send_replace(time);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.time.send_modify(|time| {
            *time = time
                .checked_add_signed(by)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
        });
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.time.borrow()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let mut time = self.time.subscribe();
        loop {
            if *time.borrow_and_update() >= deadline {
                return;
            }
            // The sender lives in `self`, which outlives this future, so `changed` cannot fail; if it
            // ever did, returning beats hanging forever.
            if time.changed().await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn manual_sleep_wakes_when_time_reaches_deadline() {
        let clock = ManualClock::new(start());
        let deadline = start() + chrono::Duration::seconds(60);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before the deadline");
        clock.advance(Duration::from_secs(1));
        sleeper.await.expect("sleeper finishes");
        assert_eq!(clock.now(), deadline);
    }

    #[tokio::test]
    async fn manual_sleep_in_the_past_returns_at_once() {
        let clock = ManualClock::new(start());
        clock.sleep_until(start()).await;
        clock.set(start() + chrono::Duration::hours(1));
        clock.sleep_until(start()).await;
    }

    #[tokio::test]
    async fn system_clock_sleep_until_past_deadline_returns() {
        let clock = SystemClock;
        clock
            .sleep_until(clock.now() - chrono::Duration::seconds(1))
            .await;
    }
}
