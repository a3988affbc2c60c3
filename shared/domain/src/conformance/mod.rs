//! Port conformance suites: the behaviour every adapter of a port must show, written once and run
//! against each adapter (SQLite here, DynamoDB and SQS later).
//!
//! # Layout
//! - [`runs`]: `run_store_*` checks for [`RunStore`](crate::ports::RunStore).
//! - [`blobs`]: `blob_store_*` checks for [`BlobStore`](crate::ports::BlobStore).
//! - [`bigrun`]: a run that holds a directory (5,000 users, then 300 effectful steps), driven through
//!   a whole [`Runtime`](crate::runner::Runtime) on the adapters under test.
//! - [`flows`]: `flow_store_*` checks for [`FlowStore`](crate::ports::FlowStore).
//! - [`queue`]: `run_queue_*` checks for [`RunQueue`](crate::ports::RunQueue).
//! - [`schedules`]: `schedules_*` checks for [`Schedules`](crate::ports::Schedules).
//! - [`smtp`]: a real SMTP server (`aiosmtpd`) for the email tests, which checks delivered mail.
//! - [`tables`]: `table_store_*` checks for [`TableStore`](crate::tables::TableStore), with their own
//!   macro [`table_store_conformance!`](crate::table_store_conformance).
//! - the macros [`run_store_conformance!`](crate::run_store_conformance),
//!   [`flow_store_conformance!`](crate::flow_store_conformance),
//!   [`run_queue_conformance!`](crate::run_queue_conformance) and
//!   [`schedules_conformance!`](crate::schedules_conformance) expand to one `#[tokio::test]` per check,
//!   so a failure names the behaviour that broke.
//!
//! # Rules the checks follow
//! - Each check gets a fresh, empty port from the factory expression and may assume nothing else
//!   writes to it.
//! - No check waits for wall time to pass, so the same checks run against a real or emulated cloud
//!   service (real time) and against adapters on a [`ManualClock`](crate::clock::ManualClock)
//!   that never moves. Leases are tested through the `now` parameter, queue redelivery through
//!   `change_visibility(receipt, 0)`, hiding through long visibilities and delays with `wait = 0`.
//! - Times in fixtures are whole milliseconds: a store must keep at least millisecond precision.
//! - Checks panic with a message naming the broken promise; they are test code.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::run::{Run, RunId, RunStatus, StepRecord, StepStatus, TriggerInfo};

pub mod bigrun;
pub mod blobs;
pub mod flows;
pub mod queue;
pub mod runs;
pub mod schedules;
pub mod smtp;
pub mod tables;

pub use blobs::*;
pub use flows::*;
pub use queue::*;
pub use runs::*;
pub use schedules::*;
pub use tables::*;

/// The time fixtures start at: 2025-03-01T12:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_740_830_400, 0).unwrap_or_default()
}

/// `t0()` plus `seconds`.
pub fn at(seconds: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(seconds)
}

/// A queued run of `flow` created at `created_at`, with an id from that time.
pub fn queued_run(flow: &str, created_at: DateTime<Utc>) -> Run {
    Run {
        id: RunId::new_at(created_at),
        flow: flow.to_owned(),
        flow_version: "v1".to_owned(),
        trigger: TriggerInfo::Manual,
        status: RunStatus::Queued,
        input: serde_json::json!({ "user": "ada@example.com" }),
        parent: None,
        root: None,
        created_at,
        started_at: None,
        finished_at: None,
        wake_at: None,
        output: None,
        error: None,
        state: None,
        step_count: 0,
    }
}

/// A succeeded step record with sequence number `seq`.
pub fn step_record(seq: u32) -> StepRecord {
    StepRecord {
        seq,
        step: format!("step{seq}"),
        card: "http.request".to_owned(),
        status: StepStatus::Succeeded,
        input: Some(serde_json::json!({ "url": "https://example.com", "n": seq })),
        output: Some(serde_json::json!({ "status": 200, "body": { "ok": true } })),
        error: None,
        attempts: 1,
        started_at: at(i64::from(seq)),
        duration_ms: 12,
    }
}

/// A lease long enough never to expire within a check unless the check moves `now` past it.
pub const LEASE: Duration = Duration::from_secs(30);

/// Expands to one `#[tokio::test]` per check, each calling `$check(&port)` on a fresh port from
/// `$make`. Internal to the suite macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($make:expr; $($check:ident),* $(,)?) => {
        $(
            #[::tokio::test]
            async fn $check() {
                let port = $make;
                $crate::conformance::$check(&port).await;
            }
        )*
    };
}

/// The [`RunStore`](crate::ports::RunStore) suite: one test per check.
///
/// `make` is evaluated once per test (it may use `.await`) and must give a fresh, empty store whose
/// type implements `RunStore` (not an `Arc` of it). Invoke it in a module of its own:
///
/// ```ignore
/// mod run_store {
///     shared::run_store_conformance!(make_store().await);
/// }
/// ```
#[macro_export]
macro_rules! run_store_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!($make;
            run_store_round_trips_every_field,
            run_store_round_trips_every_trigger,
            run_store_dedupes_create,
            run_store_refuses_a_second_run_with_the_same_id,
            run_store_lists_newest_first,
            run_store_lists_by_flow,
            run_store_lists_by_status,
            run_store_lists_by_creation_time,
            run_store_pages_without_gaps_or_duplicates,
            run_store_clamps_page_size,
            run_store_claim_is_exclusive_while_leased,
            run_store_claim_races_have_one_winner,
            run_store_refuses_to_claim_ended_runs,
            run_store_fences_checkpoints_by_owner,
            run_store_keeps_step_sequence_consecutive,
            run_store_checkpoint_writes_the_outcome,
            run_store_release_lets_another_worker_claim,
            run_store_notify_marks_only_a_run_leased_by_another,
            run_store_park_is_refused_while_a_notification_is_pending,
            run_store_claim_clears_a_pending_notification,
            run_store_cancel_fences_the_worker,
            run_store_cancel_keeps_ended_runs,
            run_store_lists_unfinished_oldest_first,
            run_store_keeps_a_megabyte_input_and_output,
            run_store_drops_a_megabyte_input,
            run_store_keeps_megabyte_step_records,
        );
    };
}

/// The [`BlobStore`](crate::ports::BlobStore) suite: one test per check. `make` as in
/// [`run_store_conformance!`](crate::run_store_conformance).
#[macro_export]
macro_rules! blob_store_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!($make;
            blob_store_round_trips_bytes,
            blob_store_keeps_directory_sized_values,
            blob_store_deletes_by_prefix,
        );
    };
}

/// The [`FlowStore`](crate::ports::FlowStore) suite: one test per check. `make` as in
/// [`run_store_conformance!`](crate::run_store_conformance).
#[macro_export]
macro_rules! flow_store_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!($make;
            flow_store_reports_added_updated_unchanged,
            flow_store_keeps_replaced_versions,
            flow_store_remove_keeps_versions,
            flow_store_lists_current_versions_by_name,
            flow_store_pauses_and_resumes_by_name,
        );
    };
}

/// The [`RunQueue`](crate::ports::RunQueue) suite: one test per check.
///
/// `make` as in [`run_store_conformance!`](crate::run_store_conformance), and the queue it gives must
/// have a **max receive count of 3**: the fourth receive of a message moves it to the dead-letter queue.
/// The checks never wait for time to pass, so the queue may run on a clock that stands still.
///
/// `at_least_once: make` is for queues that document occasional duplicate deliveries (SQS standard
/// queues): they must still deliver every message to concurrent receivers, but the check that no
/// message is handed to two receivers at once is left out. The runner never relies on it: a run is
/// only advanced by the holder of its lease in the run store.
#[macro_export]
macro_rules! run_queue_conformance {
    (at_least_once: $make:expr) => {
        $crate::__conformance_tests!($make;
            run_queue_sends_receives_and_deletes,
            run_queue_returns_at_most_max,
            run_queue_hides_messages_in_flight,
            run_queue_redelivers_after_visibility_change,
            run_queue_rejects_stale_receipts,
            run_queue_delays_messages,
            run_queue_refuses_delays_over_15_minutes,
            run_queue_dead_letters_after_max_receives,
            run_queue_long_poll_wakes_on_send,
            run_queue_delivers_every_message_to_concurrent_receivers,
        );
    };
    ($make:expr) => {
        $crate::__conformance_tests!($make;
            run_queue_delivers_every_message_to_concurrent_receivers,
            run_queue_sends_receives_and_deletes,
            run_queue_returns_at_most_max,
            run_queue_hides_messages_in_flight,
            run_queue_redelivers_after_visibility_change,
            run_queue_rejects_stale_receipts,
            run_queue_delays_messages,
            run_queue_refuses_delays_over_15_minutes,
            run_queue_dead_letters_after_max_receives,
            run_queue_long_poll_wakes_on_send,
            run_queue_never_delivers_a_message_twice_at_once,
        );
    };
}

/// The [`Schedules`](crate::ports::Schedules) suite: one test per check. `make` as in
/// [`run_store_conformance!`](crate::run_store_conformance).
#[macro_export]
macro_rules! schedules_conformance {
    ($make:expr) => {
        $crate::__conformance_tests!($make;
            schedules_put_replaces_and_delete_removes,
        );
    };
}
