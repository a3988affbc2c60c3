//! Clocks: the system clock for production and a manual clock for tests.
//!
//! Everything that waits or measures an age in idflow does it through the [`Clock`] port, so a test
//! can replace hours of waiting, or a cache's lifetime, by one call to [`ManualClock::advance`].
//! These are the only readers of the system's wall and monotonic clocks.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::ports::Clock;

/// The system clock: wall time from the OS, monotonic readings from [`Instant`], sleeps on tokio
/// timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// The origin of [`SystemClock::monotonic`]: the first reading in the process. One origin for the
/// whole process keeps `SystemClock` a unit value, and every copy of it comparable with the others.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn monotonic(&self) -> Duration {
        ORIGIN.get_or_init(Instant::now).elapsed()
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

/// What a [`ManualClock`] shows.
#[derive(Debug, Clone, Copy)]
struct Reading {
    wall: DateTime<Utc>,
    monotonic: Duration,
}

/// A clock that moves only when told to. Cloning shares the same time.
///
/// [`Clock::sleep_until`] returns as soon as [`ManualClock::set`] or [`ManualClock::advance`] moves
/// the time to or past the deadline; nothing polls. The monotonic reading starts at zero and moves
/// forward with the wall time, never back.
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<watch::Sender<Reading>>,
}

impl ManualClock {
    /// A clock showing `start`, with a monotonic reading of zero.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            time: Arc::new(watch::Sender::new(Reading {
                wall: start,
                monotonic: Duration::ZERO,
            })),
        }
    }

    /// Moves the wall clock to `time` (backwards too) and wakes sleepers whose deadline has come.
    /// A move forward advances the monotonic reading by as much; a move back leaves it, as an NTP
    /// step back leaves a system's monotonic clock.
    pub fn set(&self, time: DateTime<Utc>) {
        self.time.send_modify(|reading| {
            let forward = (time - reading.wall).to_std().unwrap_or(Duration::ZERO);
            reading.monotonic = reading.monotonic.saturating_add(forward);
            reading.wall = time;
        });
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let wall_by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.time.send_modify(|reading| {
            reading.wall = reading
                .wall
                .checked_add_signed(wall_by)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            reading.monotonic = reading.monotonic.saturating_add(by);
        });
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.time.borrow().wall
    }

    fn monotonic(&self) -> Duration {
        self.time.borrow().monotonic
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        let mut time = self.time.subscribe();
        loop {
            if time.borrow_and_update().wall >= deadline {
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

    #[test]
    fn manual_monotonic_moves_forward_with_the_wall_and_never_back() {
        let clock = ManualClock::new(start());
        assert_eq!(clock.monotonic(), Duration::ZERO);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.monotonic(), Duration::from_secs(90));
        clock.set(start() + chrono::Duration::seconds(100));
        assert_eq!(clock.monotonic(), Duration::from_secs(100));
        // Setting the wall clock back (a correction) does not make ages negative.
        clock.set(start());
        assert_eq!(clock.now(), start());
        assert_eq!(clock.monotonic(), Duration::from_secs(100));
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.monotonic(), Duration::from_secs(105));
        // Clones share the same readings.
        assert_eq!(clock.clone().monotonic(), Duration::from_secs(105));
    }

    #[tokio::test]
    async fn system_clock_sleep_until_past_deadline_returns() {
        let clock = SystemClock;
        clock
            .sleep_until(clock.now() - chrono::Duration::seconds(1))
            .await;
    }
}
