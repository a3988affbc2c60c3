//! Checks for [`RunStore`] adapters.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{LEASE, at, queued_run, step_record};
use crate::ports::{Checkpoint, Created, Notified, ParkOutcome, RunStore, StoreError};
use crate::run::{Run, RunError, RunId, RunQuery, RunStatus, TriggerInfo};

async fn create(store: &dyn RunStore, run: &Run) {
    let created = store.create(run, None).await.expect("create succeeds");
    assert_eq!(
        created,
        Created::New,
        "a run without dedupe key is always new"
    );
}

async fn get(store: &dyn RunStore, id: RunId) -> Run {
    store
        .get(id)
        .await
        .expect("get succeeds")
        .expect("run exists")
}

/// Creates `count` queued runs of `flow` one second apart from `at(first_second)`, oldest first.
async fn create_series(
    store: &dyn RunStore,
    flow: &str,
    first_second: i64,
    count: i64,
) -> Vec<Run> {
    let mut runs = Vec::new();
    for i in 0..count {
        let run = queued_run(flow, at(first_second + i));
        create(store, &run).await;
        runs.push(run);
    }
    runs
}

/// Lists with `query` and returns the ids of the first page.
async fn list_ids(store: &dyn RunStore, query: RunQuery) -> Vec<RunId> {
    let page = store.list(&query).await.expect("list succeeds");
    page.runs.iter().map(|run| run.id).collect()
}

/// Ids newest first.
/// Claims a run that must be claimable, for `LEASE`.
async fn claimed(store: &dyn RunStore, id: RunId, owner: &str, now: DateTime<Utc>) -> Run {
    store
        .claim(id, owner, now, LEASE)
        .await
        .expect("claim")
        .expect("claimable")
}

fn newest_first(runs: &[Run]) -> Vec<RunId> {
    runs.iter().rev().map(|run| run.id).collect()
}

/// A checkpoint of `run` by `owner` that keeps it running, with a state and no step records.
pub fn checkpoint(run: &Run, owner: &str) -> Checkpoint {
    Checkpoint {
        run_id: run.id,
        owner: owner.to_owned(),
        status: RunStatus::Running,
        state: Some(json!({ "cursor": 1 })),
        steps: Vec::new(),
        wake_at: None,
        output: None,
        error: None,
        finished_at: None,
        drop_input: false,
        release: false,
    }
}

fn assert_conflict(result: Result<(), StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected a conflict, got {other:?}"),
    }
}

/// Every field of a run, nested JSON included, reads back as written.
pub async fn run_store_round_trips_every_field(store: &dyn RunStore) {
    let run = Run {
        id: RunId::new_at(at(0)),
        flow: "onboard-user".to_owned(),
        flow_version: "3f2a9c".to_owned(),
        trigger: TriggerInfo::Event(crate::run::EventStart {
            event_uuid: "e-1".to_owned(),
            event_type: "user.lifecycle.create".to_owned(),
        }),
        status: RunStatus::Waiting,
        input: json!({ "user": { "id": "00u1", "tags": ["a", 1, 2.5, true, null], "empty": {} }, "text": "é \"q\" \n" }),
        parent: Some(RunId::new_at(at(-10))),
        root: Some(RunId::new_at(at(-20))),
        created_at: at(0),
        started_at: Some(at(1) + chrono::Duration::milliseconds(250)),
        finished_at: Some(at(9)),
        wake_at: Some(at(3600)),
        output: Some(json!({ "status": 201, "headers": { "x-a": "b" }, "body": [1, 2] })),
        error: Some(RunError {
            code: "step_failed".to_owned(),
            message: "boom".to_owned(),
            step: Some("notify".to_owned()),
        }),
        state: Some(json!({ "frames": [{ "pc": 4 }], "vars": { "n": 12345678901_i64 } })),
        step_count: 0,
    };
    create(store, &run).await;
    assert_eq!(
        get(store, run.id).await,
        run,
        "the run reads back unchanged"
    );
    let missing = store.get(RunId::new_at(at(5))).await.expect("get succeeds");
    assert_eq!(missing, None, "an unknown id is not found");
    assert_eq!(
        store.steps(run.id).await.expect("steps succeed"),
        Vec::new(),
        "a new run has no step records"
    );
}

/// Each kind of trigger reads back as written.
pub async fn run_store_round_trips_every_trigger(store: &dyn RunStore) {
    let parent = RunId::new_at(at(-1));
    let triggers = [
        TriggerInfo::Manual,
        TriggerInfo::Schedule(crate::run::ScheduleStart {
            scheduled_for: at(-60),
        }),
        TriggerInfo::Event(crate::run::EventStart {
            event_uuid: "uuid-1".to_owned(),
            event_type: "group.user_membership.add".to_owned(),
        }),
        TriggerInfo::Api(crate::run::ApiStart {
            method: "POST".to_owned(),
        }),
        TriggerInfo::Helper(crate::run::HelperStart {
            parent,
            step: "each_user[3]".to_owned(),
        }),
        TriggerInfo::Delegated(crate::run::DelegatedStart {
            caller: "access-requests".to_owned(),
        }),
        TriggerInfo::Rerun { of: parent },
    ];
    for (i, trigger) in triggers.into_iter().enumerate() {
        let mut run = queued_run("f", at(i as i64));
        run.trigger = trigger;
        create(store, &run).await;
        assert_eq!(
            get(store, run.id).await,
            run,
            "trigger {} reads back unchanged",
            run.trigger.kind()
        );
    }
}

/// A second create with the same dedupe key writes nothing and names the first run.
pub async fn run_store_dedupes_create(store: &dyn RunStore) {
    let first = queued_run("hook", at(0));
    let second = queued_run("hook", at(1));
    let other = queued_run("hook", at(2));
    assert_eq!(
        store.create(&first, Some("evt-1")).await.expect("create"),
        Created::New
    );
    assert_eq!(
        store.create(&second, Some("evt-1")).await.expect("create"),
        Created::Duplicate(first.id)
    );
    assert_eq!(
        store.get(second.id).await.expect("get"),
        None,
        "the duplicate was not written"
    );
    assert_eq!(
        store.create(&other, Some("evt-2")).await.expect("create"),
        Created::New,
        "another key is new"
    );
    let third = queued_run("hook", at(3));
    assert_eq!(
        store.create(&third, Some("evt-1")).await.expect("create"),
        Created::Duplicate(first.id),
        "the key stays taken"
    );
    let page = store
        .list(&RunQuery {
            limit: 10,
            ..RunQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.runs.len(), 2, "only the two distinct runs exist");
}

/// Creating a run whose id exists is a conflict and leaves the first run alone.
pub async fn run_store_refuses_a_second_run_with_the_same_id(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    let mut again = run.clone();
    again.flow = "other".to_owned();
    match store.create(&again, None).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(get(store, run.id).await, run, "the first run is unchanged");
}

/// Lists return runs newest first, in full.
pub async fn run_store_lists_newest_first(store: &dyn RunStore) {
    let runs = create_series(store, "f", 0, 5).await;
    let page = store
        .list(&RunQuery {
            limit: 500,
            ..RunQuery::default()
        })
        .await
        .expect("list");
    let expected: Vec<Run> = runs.iter().rev().cloned().collect();
    assert_eq!(page.runs, expected, "newest first, every field as created");
    assert_eq!(page.next_cursor, None, "no more pages");
}

/// The flow filter returns only that flow's runs.
pub async fn run_store_lists_by_flow(store: &dyn RunStore) {
    let a = create_series(store, "alpha", 0, 3).await;
    let _b = create_series(store, "beta", 10, 3).await;
    let ids = list_ids(
        store,
        RunQuery {
            flow: Some("alpha".to_owned()),
            limit: 50,
            ..RunQuery::default()
        },
    )
    .await;
    assert_eq!(ids, newest_first(&a));
    let none = list_ids(
        store,
        RunQuery {
            flow: Some("gamma".to_owned()),
            limit: 50,
            ..RunQuery::default()
        },
    )
    .await;
    assert_eq!(none, Vec::new(), "an unknown flow lists nothing");
}

/// The status filter returns only runs in that status.
pub async fn run_store_lists_by_status(store: &dyn RunStore) {
    let mut cancelled = Vec::new();
    for i in 0..6 {
        let run = queued_run("f", at(i));
        create(store, &run).await;
        if i % 2 == 0 {
            store.cancel(run.id, at(100)).await.expect("cancel");
            cancelled.push(run);
        }
    }
    let query = |status| RunQuery {
        status: Some(status),
        limit: 50,
        ..RunQuery::default()
    };
    assert_eq!(
        list_ids(store, query(RunStatus::Cancelled)).await,
        newest_first(&cancelled)
    );
    assert_eq!(list_ids(store, query(RunStatus::Queued)).await.len(), 3);
    assert_eq!(list_ids(store, query(RunStatus::Running)).await, Vec::new());
    let both = RunQuery {
        flow: Some("f".to_owned()),
        status: Some(RunStatus::Cancelled),
        limit: 50,
        ..RunQuery::default()
    };
    assert_eq!(
        list_ids(store, both).await,
        newest_first(&cancelled),
        "flow and status combine"
    );
}

/// `since` is inclusive and `until` exclusive, on the creation time.
pub async fn run_store_lists_by_creation_time(store: &dyn RunStore) {
    let runs = create_series(store, "f", 0, 8).await;
    let query = |since: Option<i64>, until: Option<i64>| RunQuery {
        since: since.map(at),
        until: until.map(at),
        limit: 50,
        ..RunQuery::default()
    };
    assert_eq!(
        list_ids(store, query(Some(2), Some(5))).await,
        newest_first(&runs[2..5])
    );
    assert_eq!(
        list_ids(store, query(Some(6), None)).await,
        newest_first(&runs[6..])
    );
    assert_eq!(
        list_ids(store, query(None, Some(1))).await,
        newest_first(&runs[..1])
    );
    assert_eq!(list_ids(store, query(Some(3), Some(3))).await, Vec::new());
}

/// Following cursors visits every matching run exactly once, newest first.
pub async fn run_store_pages_without_gaps_or_duplicates(store: &dyn RunStore) {
    let wanted = create_series(store, "paged", 0, 23).await;
    let _noise = create_series(store, "other", 100, 5).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let query = RunQuery {
            flow: Some("paged".to_owned()),
            limit: 5,
            cursor,
            ..RunQuery::default()
        };
        let page = store.list(&query).await.expect("list");
        assert!(page.runs.len() <= 5, "a page holds at most `limit` runs");
        seen.extend(page.runs.iter().map(|run| run.id));
        pages += 1;
        assert!(pages <= 10, "paging does not end");
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        newest_first(&wanted),
        "all runs, once each, newest first"
    );
    let distinct: HashSet<RunId> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "no run appears twice");
}

/// A limit of 0 counts as 1 and a huge limit as 500.
pub async fn run_store_clamps_page_size(store: &dyn RunStore) {
    let runs = create_series(store, "f", 0, 3).await;
    let page = store
        .list(&RunQuery {
            limit: 0,
            ..RunQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.runs.iter().map(|run| run.id).collect::<Vec<_>>(),
        newest_first(&runs[2..])
    );
    assert!(page.next_cursor.is_some(), "more runs follow");
    let page = store
        .list(&RunQuery {
            limit: u32::MAX,
            ..RunQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(page.runs.len(), 3);
}

/// While one owner holds the lease, nobody else can claim; the owner can renew; after expiry another
/// owner takes over, and `started_at` stays the first claim's time.
pub async fn run_store_claim_is_exclusive_while_leased(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    let claimed = claimed(store, run.id, "worker-a", at(10)).await;
    assert_eq!(claimed.status, RunStatus::Running);
    assert_eq!(claimed.started_at, Some(at(10)));
    assert_eq!(claimed.id, run.id);
    assert_eq!(claimed.input, run.input);

    let refused = store
        .claim(run.id, "worker-b", at(20), LEASE)
        .await
        .expect("claim");
    assert_eq!(
        refused, None,
        "another owner is refused while the lease runs"
    );
    let renewed = store
        .claim(run.id, "worker-a", at(20), LEASE)
        .await
        .expect("claim");
    assert!(renewed.is_some(), "the owner may claim again");
    let refused = store
        .claim(run.id, "worker-b", at(45), LEASE)
        .await
        .expect("claim");
    assert_eq!(refused, None, "the renewed lease runs until 50s");

    let taken = store
        .claim(run.id, "worker-b", at(51), LEASE)
        .await
        .expect("claim")
        .expect("lease expired");
    assert_eq!(taken.started_at, Some(at(10)), "started_at is set once");
    assert_conflict(
        store.checkpoint(&checkpoint(&run, "worker-a")).await,
        "the old owner after takeover",
    );
    store
        .checkpoint(&checkpoint(&run, "worker-b"))
        .await
        .expect("the new owner checkpoints");
}

/// Of many concurrent claims, exactly one wins.
pub async fn run_store_claim_races_have_one_winner(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    let owners: Vec<String> = (0..8).map(|i| format!("worker-{i}")).collect();
    let claims = owners
        .iter()
        .map(|owner| store.claim(run.id, owner, at(1), LEASE));
    let results = futures::future::join_all(claims).await;
    let winners = results
        .into_iter()
        .map(|result| result.expect("claim"))
        .filter(Option::is_some)
        .count();
    assert_eq!(winners, 1, "exactly one claim wins");
}

/// Ended and unknown runs cannot be claimed.
pub async fn run_store_refuses_to_claim_ended_runs(store: &dyn RunStore) {
    for status in [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        let mut run = queued_run("f", at(0));
        run.status = status;
        run.finished_at = Some(at(1));
        create(store, &run).await;
        let claim = store
            .claim(run.id, "worker-a", at(2), LEASE)
            .await
            .expect("claim");
        assert_eq!(claim, None, "a {status} run cannot be claimed");
        assert_eq!(
            get(store, run.id).await,
            run,
            "a refused claim changes nothing"
        );
    }
    let unknown = store
        .claim(RunId::new_at(at(0)), "worker-a", at(2), LEASE)
        .await
        .expect("claim");
    assert_eq!(unknown, None, "an unknown run cannot be claimed");
}

/// A checkpoint by anyone but the lease owner (or on an unclaimed run) is a conflict and writes nothing.
pub async fn run_store_fences_checkpoints_by_owner(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    let mut write = checkpoint(&run, "worker-a");
    write.steps = vec![step_record(0)];
    assert_conflict(
        store.checkpoint(&write).await,
        "checkpoint of an unclaimed run",
    );

    let claimed = claimed(store, run.id, "worker-a", at(1)).await;
    let mut intruder = checkpoint(&run, "worker-b");
    intruder.steps = vec![step_record(0)];
    intruder.status = RunStatus::Succeeded;
    intruder.finished_at = Some(at(2));
    intruder.drop_input = true;
    assert_conflict(
        store.checkpoint(&intruder).await,
        "checkpoint by another owner",
    );
    assert_eq!(get(store, run.id).await, claimed, "the run is unchanged");
    assert_eq!(
        store.steps(run.id).await.expect("steps"),
        Vec::new(),
        "no step record was written"
    );

    let mut unknown = checkpoint(&run, "worker-a");
    unknown.run_id = RunId::new_at(at(3));
    assert_conflict(
        store.checkpoint(&unknown).await,
        "checkpoint of an unknown run",
    );
}

/// Step records must continue at `step_count` without gaps; a bad batch writes none of its records.
pub async fn run_store_keeps_step_sequence_consecutive(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    claimed(store, run.id, "w", at(1)).await;
    let with_steps = |seqs: &[u32]| {
        let mut write = checkpoint(&run, "w");
        write.steps = seqs.iter().copied().map(step_record).collect();
        write
    };
    store
        .checkpoint(&with_steps(&[0, 1]))
        .await
        .expect("records 0 and 1");
    assert_eq!(get(store, run.id).await.step_count, 2);
    assert_conflict(store.checkpoint(&with_steps(&[3])).await, "a gap");
    assert_conflict(
        store.checkpoint(&with_steps(&[1])).await,
        "a repeated record",
    );
    assert_conflict(
        store.checkpoint(&with_steps(&[2, 4])).await,
        "a gap inside the batch",
    );
    assert_eq!(
        get(store, run.id).await.step_count,
        2,
        "refused checkpoints changed nothing"
    );
    store.checkpoint(&with_steps(&[2])).await.expect("record 2");
    store
        .checkpoint(&with_steps(&[]))
        .await
        .expect("a checkpoint without records");
    let steps = store.steps(run.id).await.expect("steps");
    assert_eq!(
        steps,
        vec![step_record(0), step_record(1), step_record(2)],
        "records in order, as written"
    );
    assert_eq!(get(store, run.id).await.step_count, 3);
}

/// A final checkpoint writes status, output, error, times and drops input and state as asked.
pub async fn run_store_checkpoint_writes_the_outcome(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    claimed(store, run.id, "w", at(1)).await;

    let mut waiting = checkpoint(&run, "w");
    waiting.status = RunStatus::Waiting;
    waiting.wake_at = Some(at(600));
    waiting.state = Some(json!({ "resume": "timer" }));
    store
        .checkpoint(&waiting)
        .await
        .expect("waiting checkpoint");
    let stored = get(store, run.id).await;
    assert_eq!(stored.status, RunStatus::Waiting);
    assert_eq!(stored.wake_at, Some(at(600)));
    assert_eq!(stored.state, Some(json!({ "resume": "timer" })));
    assert_eq!(stored.input, run.input, "input kept unless dropped");

    let mut done = checkpoint(&run, "w");
    done.status = RunStatus::Failed;
    done.state = None;
    done.steps = vec![step_record(0)];
    done.output = Some(json!({ "partial": true }));
    done.error = Some(RunError {
        code: "step_failed".to_owned(),
        message: "HTTP 500".to_owned(),
        step: Some("step0".to_owned()),
    });
    done.finished_at = Some(at(5));
    done.drop_input = true;
    done.release = true;
    store.checkpoint(&done).await.expect("final checkpoint");
    let expected = Run {
        status: RunStatus::Failed,
        input: serde_json::Value::Null,
        started_at: Some(at(1)),
        finished_at: Some(at(5)),
        wake_at: None,
        output: done.output.clone(),
        error: done.error.clone(),
        state: None,
        step_count: 1,
        ..run.clone()
    };
    assert_eq!(get(store, run.id).await, expected);
    let late = store.checkpoint(&checkpoint(&run, "w")).await;
    assert_conflict(late, "a checkpoint after the run ended");
}

/// A checkpoint with `release` frees the lease at once.
pub async fn run_store_release_lets_another_worker_claim(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    claimed(store, run.id, "worker-a", at(1)).await;
    let mut release = checkpoint(&run, "worker-a");
    release.status = RunStatus::Waiting;
    release.wake_at = Some(at(60));
    release.release = true;
    store.checkpoint(&release).await.expect("release");
    let claimed = store
        .claim(run.id, "worker-b", at(2), LEASE)
        .await
        .expect("claim");
    assert!(
        claimed.is_some(),
        "a released run is free for the next worker"
    );
}

/// A parking checkpoint: the run waits for a helper run and gives its lease up.
fn parking(run: &Run, owner: &str) -> Checkpoint {
    Checkpoint {
        status: RunStatus::Waiting,
        state: Some(json!({ "cursor": 2 })),
        release: true,
        ..checkpoint(run, owner)
    }
}

/// A notification is marked only on a run another owner holds an unexpired lease on; for a free,
/// own or expired lease the caller is told to claim, for an unknown or ended run that nobody waits.
pub async fn run_store_notify_marks_only_a_run_leased_by_another(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    let unknown = RunId::new_at(at(0));
    let notified = |id, owner: &'static str, now| async move {
        store.notify(id, owner, now).await.expect("notify")
    };
    assert_eq!(
        notified(unknown, "b", at(1)).await,
        Notified::Ended,
        "unknown run"
    );
    create(store, &run).await;
    assert_eq!(
        notified(run.id, "b", at(1)).await,
        Notified::NotLeased,
        "a queued run nobody holds is claimed, not marked"
    );
    claimed(store, run.id, "a", at(1)).await;
    assert_eq!(
        notified(run.id, "a", at(2)).await,
        Notified::NotLeased,
        "the holder itself does not mark its own run"
    );
    assert_eq!(notified(run.id, "b", at(2)).await, Notified::Marked);
    assert_eq!(
        notified(run.id, "c", at(3)).await,
        Notified::Marked,
        "a second notification while one is pending is marked too"
    );
    assert_eq!(
        notified(run.id, "b", at(1) + LEASE).await,
        Notified::NotLeased,
        "an expired lease is claimed, not marked"
    );
    let mut done = checkpoint(&run, "a");
    done.status = RunStatus::Succeeded;
    done.state = None;
    done.finished_at = Some(at(4));
    done.release = true;
    store.checkpoint(&done).await.expect("finish");
    assert_eq!(
        notified(run.id, "b", at(5)).await,
        Notified::Ended,
        "ended run"
    );
}

/// A park while a notification is pending keeps the lease and the run's status and clears the
/// mark; the next park parks.
pub async fn run_store_park_is_refused_while_a_notification_is_pending(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    claimed(store, run.id, "a", at(1)).await;
    assert_eq!(
        store.notify(run.id, "b", at(2)).await.expect("notify"),
        Notified::Marked
    );
    let mut park = parking(&run, "a");
    park.steps = vec![step_record(0)];
    assert_eq!(
        store.park(&park).await.expect("park"),
        ParkOutcome::Notified,
        "a pending notification keeps the run with its holder"
    );
    let kept = get(store, run.id).await;
    assert_eq!(kept.status, RunStatus::Running, "the run is still running");
    assert_eq!(kept.step_count, 1, "the park's step records are kept");
    assert_eq!(
        store.steps(run.id).await.expect("steps").len(),
        1,
        "the park's step records are written"
    );
    assert!(
        store
            .claim(run.id, "b", at(3), LEASE)
            .await
            .expect("claim")
            .is_none(),
        "the holder keeps its lease"
    );
    assert_eq!(
        store.park(&parking(&run, "a")).await.expect("park"),
        ParkOutcome::Parked,
        "the mark was cleared: the next park parks"
    );
    let parked = get(store, run.id).await;
    assert_eq!(parked.status, RunStatus::Waiting);
    assert_eq!(parked.state, Some(json!({ "cursor": 2 })));
    assert!(
        store
            .claim(run.id, "b", at(4), LEASE)
            .await
            .expect("claim")
            .is_some(),
        "a parked run is free"
    );
    let late = store.park(&parking(&run, "a")).await.map(|_| ());
    assert_conflict(late, "a park by a worker that lost the lease");
}

/// A claim clears a pending notification: the claimer reads the run afresh, so its park parks.
pub async fn run_store_claim_clears_a_pending_notification(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    claimed(store, run.id, "a", at(1)).await;
    assert_eq!(
        store.notify(run.id, "b", at(2)).await.expect("notify"),
        Notified::Marked
    );
    // Worker `a` died; its lease expires and `c` takes the run over.
    store
        .claim(run.id, "c", at(2) + LEASE, LEASE)
        .await
        .expect("claim")
        .expect("an expired lease is claimable");
    assert_eq!(
        store.park(&parking(&run, "c")).await.expect("park"),
        ParkOutcome::Parked
    );
}

/// Cancelling marks the run cancelled with its finish time; the worker's next checkpoint conflicts.
pub async fn run_store_cancel_fences_the_worker(store: &dyn RunStore) {
    let run = queued_run("f", at(0));
    create(store, &run).await;
    claimed(store, run.id, "w", at(1)).await;
    let cancelled = store
        .cancel(run.id, at(2))
        .await
        .expect("cancel")
        .expect("run exists");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.finished_at, Some(at(2)));
    assert_eq!(
        get(store, run.id).await,
        cancelled,
        "cancel returns the run as stored"
    );

    let mut write = checkpoint(&run, "w");
    write.steps = vec![step_record(0)];
    assert_conflict(store.checkpoint(&write).await, "checkpoint after cancel");
    assert_eq!(
        store.steps(run.id).await.expect("steps"),
        Vec::new(),
        "no record written after cancel"
    );
    assert_eq!(
        store.claim(run.id, "w", at(3), LEASE).await.expect("claim"),
        None,
        "cancelled runs stay put"
    );

    let again = store
        .cancel(run.id, at(9))
        .await
        .expect("cancel")
        .expect("run exists");
    assert_eq!(
        again.finished_at,
        Some(at(2)),
        "a second cancel changes nothing"
    );
    assert_eq!(
        store
            .cancel(RunId::new_at(at(0)), at(9))
            .await
            .expect("cancel"),
        None,
        "unknown run"
    );
}

/// Cancel leaves runs that already ended as they are.
pub async fn run_store_cancel_keeps_ended_runs(store: &dyn RunStore) {
    let mut run = queued_run("f", at(0));
    run.status = RunStatus::Succeeded;
    run.finished_at = Some(at(1));
    run.output = Some(json!("done"));
    create(store, &run).await;
    let after = store
        .cancel(run.id, at(5))
        .await
        .expect("cancel")
        .expect("run exists");
    assert_eq!(after, run, "a succeeded run stays succeeded");
}

/// Queued, running and waiting runs, oldest first, up to the limit.
pub async fn run_store_lists_unfinished_oldest_first(store: &dyn RunStore) {
    let runs = create_series(store, "f", 0, 6).await;
    // 0 queued, 1 running, 2 waiting, 3 succeeded, 4 cancelled, 5 queued
    claimed(store, runs[1].id, "w", at(10)).await;
    claimed(store, runs[2].id, "w", at(10)).await;
    let mut wait = checkpoint(&runs[2], "w");
    wait.status = RunStatus::Waiting;
    wait.wake_at = Some(at(100));
    wait.release = true;
    store.checkpoint(&wait).await.expect("waiting");
    claimed(store, runs[3].id, "w", at(10)).await;
    let mut done = checkpoint(&runs[3], "w");
    done.status = RunStatus::Succeeded;
    done.state = None;
    done.finished_at = Some(at(11));
    done.release = true;
    store.checkpoint(&done).await.expect("succeeded");
    store.cancel(runs[4].id, at(12)).await.expect("cancel");

    let unfinished = store.unfinished(10).await.expect("unfinished");
    let ids: Vec<RunId> = unfinished.iter().map(|run| run.id).collect();
    assert_eq!(ids, vec![runs[0].id, runs[1].id, runs[2].id, runs[5].id]);
    let statuses: Vec<RunStatus> = unfinished.iter().map(|run| run.status).collect();
    assert_eq!(
        statuses,
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Waiting,
            RunStatus::Queued
        ]
    );
    let first_two: Vec<RunId> = store
        .unfinished(2)
        .await
        .expect("unfinished")
        .iter()
        .map(|run| run.id)
        .collect();
    assert_eq!(
        first_two,
        vec![runs[0].id, runs[1].id],
        "the limit keeps the oldest"
    );
}

/// A directory-sized value: about `bytes` of JSON, made of many distinct records (as a page of
/// users would be), so a store cannot pass by keeping a prefix or a repeated pattern.
pub fn megabyte_value(bytes: usize, tag: &str) -> serde_json::Value {
    let record = |i: usize| json!({ "id": format!("00u{tag}{i:08}"), "login": format!("user{i}@example.com"), "note": "x".repeat(80) });
    let per_record = serde_json::to_string(&record(0)).map_or(1, |t| t.len() + 1);
    let count = bytes.div_ceil(per_record);
    json!({ "tag": tag, "users": (0..count).map(record).collect::<Vec<_>>() })
}

/// A run started with a 1 MB input and ending with a 1 MB output reads back whole: through `get`,
/// `list`, and `claim` (what the engine resumes from), before and after it ends. (DynamoDB holds
/// 400 KB an item: its adapter keeps such values in the blob store.)
pub async fn run_store_keeps_a_megabyte_input_and_output(store: &dyn RunStore) {
    let mut run = queued_run("directory", at(0));
    run.input = megabyte_value(1024 * 1024, "in");
    create(store, &run).await;
    assert_eq!(
        get(store, run.id).await.input,
        run.input,
        "the input reads back"
    );
    let claimed = claimed(store, run.id, "w", at(1)).await;
    assert_eq!(
        claimed.input, run.input,
        "a claimed run has its whole input"
    );

    // A checkpoint in between (which rewrites the run) keeps the input as it was.
    store
        .checkpoint(&checkpoint(&run, "w"))
        .await
        .expect("a checkpoint of a run with a big input");
    assert_eq!(get(store, run.id).await.input, run.input);

    let output = megabyte_value(1024 * 1024, "out");
    let mut done = checkpoint(&run, "w");
    done.status = RunStatus::Succeeded;
    done.state = None;
    done.output = Some(output.clone());
    done.finished_at = Some(at(5));
    done.release = true;
    store
        .checkpoint(&done)
        .await
        .expect("a final checkpoint with a 1 MB output");
    let ended = get(store, run.id).await;
    assert_eq!(ended.status, RunStatus::Succeeded);
    assert_eq!(ended.input, run.input, "the input outlives the run's end");
    assert_eq!(ended.output, Some(output.clone()), "the output reads back");
    let page = store
        .list(&RunQuery {
            flow: Some("directory".to_owned()),
            ..RunQuery::default()
        })
        .await
        .expect("list");
    let listed = page.runs.first().expect("the run is listed");
    assert_eq!(listed.input, run.input, "a listed run has its whole input");
    assert_eq!(listed.output, Some(output), "and its whole output");
}

/// `history: none` drops a big input at the run's end like a small one: nothing of it reads back.
pub async fn run_store_drops_a_megabyte_input(store: &dyn RunStore) {
    let mut run = queued_run("private", at(0));
    run.input = megabyte_value(1024 * 1024, "secret-ish");
    create(store, &run).await;
    claimed(store, run.id, "w", at(1)).await;
    let mut done = checkpoint(&run, "w");
    done.status = RunStatus::Succeeded;
    done.state = None;
    done.output = Some(json!({ "ok": true }));
    done.finished_at = Some(at(2));
    done.drop_input = true;
    done.release = true;
    store.checkpoint(&done).await.expect("final checkpoint");
    let ended = get(store, run.id).await;
    assert_eq!(ended.input, serde_json::Value::Null, "the input is dropped");
    assert_eq!(ended.output, Some(json!({ "ok": true })));
}

/// A step record with a 1 MB input, output and error detail reads back whole, between small ones.
pub async fn run_store_keeps_megabyte_step_records(store: &dyn RunStore) {
    let run = queued_run("directory", at(0));
    create(store, &run).await;
    claimed(store, run.id, "w", at(1)).await;
    let mut big = step_record(1);
    big.input = Some(megabyte_value(1024 * 1024, "step-in"));
    big.output = Some(megabyte_value(1024 * 1024, "step-out"));
    let mut failed = step_record(2);
    failed.status = crate::run::StepStatus::Failed;
    failed.output = None;
    failed.error = Some(crate::run::StepError {
        code: "http_status".to_owned(),
        message: "HTTP 500".to_owned(),
        status: Some(500),
        detail: Some(megabyte_value(1024 * 1024, "body")),
    });
    let records = vec![step_record(0), big, failed, step_record(3)];
    let mut write = checkpoint(&run, "w");
    write.steps = records.clone();
    store
        .checkpoint(&write)
        .await
        .expect("a checkpoint with 1 MB step records");
    let steps = store.steps(run.id).await.expect("steps");
    assert_eq!(steps.len(), records.len(), "every record is there");
    for (read, written) in steps.iter().zip(&records) {
        assert!(
            read == written,
            "step record {} reads back whole ({} bytes of output read, {} written)",
            written.seq,
            serde_json::to_string(&read.output).map_or(0, |t| t.len()),
            serde_json::to_string(&written.output).map_or(0, |t| t.len()),
        );
    }
}
