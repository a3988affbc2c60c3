//! Checks for [`Schedules`] adapters.

use crate::ports::{ScheduleSpec, Schedules};

fn spec(flow: &str, expression: &str, timezone: Option<&str>) -> ScheduleSpec {
    ScheduleSpec {
        flow: flow.to_owned(),
        expression: expression.to_owned(),
        timezone: timezone.map(str::to_owned),
    }
}

/// `put` creates or replaces a flow's schedule, `delete` removes it, `list` shows what is left by flow.
pub async fn schedules_put_replaces_and_delete_removes(schedules: &dyn Schedules) {
    assert_eq!(schedules.list().await.expect("list"), Vec::new());
    let nightly = spec("nightly", "cron(0 2 * * ? *)", Some("Europe/Paris"));
    let hourly = spec("audit", "rate(1 hour)", None);
    schedules.put(&nightly).await.expect("put");
    schedules.put(&hourly).await.expect("put");
    assert_eq!(
        schedules.list().await.expect("list"),
        vec![hourly.clone(), nightly]
    );
    let moved = spec("nightly", "cron(0 3 * * ? *)", None);
    schedules.put(&moved).await.expect("put replaces");
    assert_eq!(
        schedules.list().await.expect("list"),
        vec![hourly.clone(), moved]
    );
    assert!(schedules.delete("nightly").await.expect("delete"));
    assert!(
        !schedules.delete("nightly").await.expect("delete"),
        "already gone"
    );
    assert_eq!(schedules.list().await.expect("list"), vec![hourly]);
}
