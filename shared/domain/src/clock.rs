//! Clocks: the system clock for production, and a manual and an auto-advancing clock for tests.
//!
//! Everything that waits or measures an age in idflow does it through the [`Clock`] port, so a test
//! can replace hours of waiting, or a cache's lifetime, by one call to [`ManualClock::advance`], or
//! let an [`AutoAdvanceClock`] jump to each deadline as soon as nothing else can happen.
//! These are the only readers of the system's wall and monotonic clocks.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
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

/// A [`ManualClock`] that moves by itself: when the future run by [`AutoAdvanceClock::block_on`]
/// can make no progress, the time jumps to the earliest deadline one of the clock's sleepers waits
/// for. Waits, retry backoffs and timeouts then take no real time, and they end in the order of
/// their deadlines, each at its own deadline, as they would on a real clock. Cloning shares the
/// same time and sleepers.
///
/// The time moves only when everything waits: a sleeper whose deadline is the earliest does not
/// move the clock while other work can still run, because that work may start a sleeper with an
/// earlier deadline (a run issuing a shorter timer once a call answers).
#[derive(Debug, Clone)]
pub struct AutoAdvanceClock {
    manual: ManualClock,
    /// The deadlines of the sleepers waiting now, with how many wait for each.
    sleepers: Arc<Mutex<BTreeMap<DateTime<Utc>, usize>>>,
}

impl AutoAdvanceClock {
    /// A clock showing `start`, with a monotonic reading of zero and no sleepers.
    pub fn new(start: DateTime<Utc>) -> AutoAdvanceClock {
        AutoAdvanceClock {
            manual: ManualClock::new(start),
            sleepers: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Moves the time forward to the earliest deadline a sleeper waits for, waking it (and every
    /// sleeper with the same deadline). `false` when no sleeper waits for a time still ahead.
    pub fn advance_to_next_deadline(&self) -> bool {
        let now = self.manual.now();
        let next = self.lock().keys().copied().find(|deadline| *deadline > now);
        match next {
            Some(deadline) => {
                self.manual.set(deadline);
                true
            }
            None => false,
        }
    }

    /// Runs `future` on this thread to its end, moving the time to the next sleeper's deadline
    /// whenever the future waits and nothing has woken it. `None` when the future waits for
    /// something other than this clock: nothing could ever wake it.
    pub fn block_on<F: Future>(&self, future: F) -> Option<F::Output> {
        run_until_stalled(future, || self.advance_to_next_deadline())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<DateTime<Utc>, usize>> {
        self.sleepers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `future` on this thread until it ends or stalls. When it waits and nothing has woken it,
/// `unstall` is asked to make something happen (move a test clock); `false` means it could not,
/// and the future, which nothing can wake any more, gives `None`. For tests and `idflow test`,
/// whose runs wait only for what the test itself answers.
pub fn run_until_stalled<F: Future>(
    future: F,
    mut unstall: impl FnMut() -> bool,
) -> Option<F::Output> {
    /// Records that the future asked to be polled again.
    struct Woken(AtomicBool);
    impl Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let woken = Arc::new(Woken(AtomicBool::new(false)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return Some(output),
            // Woken while polled (a sleeper whose deadline came, a stream yielding its turn): there
            // is work to do as things are, so nothing else is moved.
            Poll::Pending if woken.0.swap(false, Ordering::SeqCst) => {}
            Poll::Pending if unstall() => {}
            Poll::Pending => return None,
        }
    }
}

/// A sleeper's deadline, counted among the clock's sleepers for as long as the sleeper waits,
/// however its wait ends (its deadline came, or its future was dropped).
struct Sleeper<'c> {
    clock: &'c AutoAdvanceClock,
    deadline: DateTime<Utc>,
}

impl<'c> Sleeper<'c> {
    fn new(clock: &'c AutoAdvanceClock, deadline: DateTime<Utc>) -> Sleeper<'c> {
        *clock.lock().entry(deadline).or_insert(0) += 1;
        Sleeper { clock, deadline }
    }
}

impl Drop for Sleeper<'_> {
    fn drop(&mut self) {
        let mut sleepers = self.clock.lock();
        if let Some(count) = sleepers.get_mut(&self.deadline) {
            *count -= 1;
            if *count == 0 {
                sleepers.remove(&self.deadline);
            }
        }
    }
}

#[async_trait]
impl Clock for AutoAdvanceClock {
    fn now(&self) -> DateTime<Utc> {
        self.manual.now()
    }

    fn monotonic(&self) -> Duration {
        self.manual.monotonic()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        if self.manual.now() >= deadline {
            return;
        }
        let _sleeper = Sleeper::new(self, deadline);
        self.manual.sleep_until(deadline).await;
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

    #[test]
    fn auto_sleep_moves_the_time_to_its_deadline_at_once() {
        let clock = AutoAdvanceClock::new(start());
        let deadline = start() + chrono::Duration::hours(5);
        assert_eq!(clock.block_on(clock.sleep_until(deadline)), Some(()));
        assert_eq!(clock.now(), deadline);
        assert_eq!(clock.monotonic(), Duration::from_secs(5 * 3600));
        // A deadline already past returns without moving the time back.
        assert_eq!(clock.block_on(clock.sleep_until(start())), Some(()));
        assert_eq!(clock.now(), deadline);
    }

    #[test]
    fn auto_sleepers_wake_in_deadline_order_each_at_its_own_deadline() {
        let clock = AutoAdvanceClock::new(start());
        let at = |secs: i64| start() + chrono::Duration::seconds(secs);
        let woke = Mutex::new(Vec::new());
        let sleep = |name: &'static str, secs: i64| {
            let (clock, woke) = (&clock, &woke);
            async move {
                clock.sleep_until(at(secs)).await;
                woke.lock().map(|mut w| w.push((name, clock.now()))).ok();
            }
        };
        // `late` waits longest but is polled first; `chained` starts a second, shorter wait only
        // after its first ends, so the time may move only once everything waits.
        let chained = async {
            sleep("first", 2).await;
            sleep("second", 5).await;
        };
        let all = futures::future::join3(sleep("late", 10), chained, sleep("early", 1));
        assert_eq!(clock.block_on(all), Some(((), (), ())));
        assert_eq!(
            woke.into_inner().unwrap_or_default(),
            [
                ("early", at(1)),
                ("first", at(2)),
                ("second", at(5)),
                ("late", at(10))
            ]
        );
    }

    #[test]
    fn auto_a_sleeper_given_up_no_longer_moves_the_time_and_nothing_to_wait_for_is_none() {
        let clock = AutoAdvanceClock::new(start());
        let short = start() + chrono::Duration::minutes(1);
        let race = futures::future::select(
            Box::pin(clock.sleep_until(start() + chrono::Duration::hours(1))),
            Box::pin(clock.sleep_until(short)),
        );
        assert!(matches!(
            clock.block_on(race),
            Some(futures::future::Either::Right(_))
        ));
        assert_eq!(clock.now(), short);
        // The hour-long sleeper was dropped with the race: no deadline is left to jump to, and a
        // future that waits for something else can never end.
        assert!(!clock.advance_to_next_deadline());
        assert_eq!(clock.block_on(futures::future::pending::<()>()), None);
        assert_eq!(clock.now(), short);
    }

    #[tokio::test]
    async fn system_clock_sleep_until_past_deadline_returns() {
        let clock = SystemClock;
        clock
            .sleep_until(clock.now() - chrono::Duration::seconds(1))
            .await;
    }
}
