//! The local scheduler fires schedule flows on the clock port's time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::clock::ManualClock;
use tests::TestServer;

#[tokio::test]
async fn rate_schedule_fires_once_per_interval_on_the_manual_clock() {
    let start: DateTime<Utc> = "2026-03-02T07:59:30Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let flow = "name: tick\ntrigger: { schedule: { rate: 1 minute } }\nsteps:\n  - { id: t, card: text.compose, with: { text: \"{{ input.scheduled_for }}\" } }\n";
    let server =
        TestServer::start_with_clock(&[("tick.yaml", flow)], Arc::new(clock.clone())).await;
    let mut ended = server.runtime().subscribe();
    for minute in 1..=3 {
        clock.advance(Duration::from_secs(60));
        let done = tokio::time::timeout(Duration::from_secs(10), ended.recv())
            .await
            .expect("a run ends")
            .expect("event");
        let run = server.runtime().run(done.run_id).await.unwrap().unwrap();
        assert_eq!(run.status.as_str(), "succeeded");
        let expected = start + chrono::Duration::seconds(60 * minute);
        assert_eq!(
            run.trigger,
            domain::run::TriggerInfo::Schedule(domain::run::ScheduleStart {
                scheduled_for: expected
            })
        );
    }
    assert_eq!(server.run_count().await, 3);
    server.stop().await;
}

#[tokio::test]
async fn cron_schedule_in_a_time_zone_fires_at_local_time() {
    // 08:00 Paris on weekdays; 2026-03-02 is a Monday, Paris is UTC+1 in March before the DST change.
    let start: DateTime<Utc> = "2026-03-02T06:59:00Z".parse().unwrap();
    let clock = ManualClock::new(start);
    let flow = "name: morning\ntrigger: { schedule: { cron: \"0 8 ? * MON-FRI *\", timezone: Europe/Paris } }\nsteps:\n  - { id: t, card: text.compose, with: { text: hi } }\n";
    let server =
        TestServer::start_with_clock(&[("morning.yaml", flow)], Arc::new(clock.clone())).await;
    let mut ended = server.runtime().subscribe();
    clock.advance(Duration::from_secs(60));
    let done = tokio::time::timeout(Duration::from_secs(10), ended.recv())
        .await
        .expect("a run ends")
        .expect("event");
    let run = server.runtime().run(done.run_id).await.unwrap().unwrap();
    let expected: DateTime<Utc> = "2026-03-02T07:00:00Z".parse().unwrap();
    assert_eq!(
        run.trigger,
        domain::run::TriggerInfo::Schedule(domain::run::ScheduleStart {
            scheduled_for: expected
        })
    );
    server.stop().await;
}
