//! Checks for [`RunQueue`] adapters. The queue under test has a max receive count of 3.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use super::at;
use crate::ports::{Delivery, QueueError, QueueMessage, RunQueue};
use crate::run::RunId;

/// Long enough that nothing becomes visible again during a check.
const HIDDEN: Duration = Duration::from_secs(600);

/// Receive attempts before a check gives up on messages that should be there. Cloud queues may
/// return fewer messages than are visible on any one short poll, so checks poll a few times.
const ATTEMPTS: usize = 50;

/// Message `n`: the same value every time, so checks can compare what they sent with what arrived.
fn message(n: i64) -> QueueMessage {
    let millis = u64::try_from(at(n).timestamp_millis()).unwrap_or(0);
    QueueMessage {
        run_id: RunId(ulid::Ulid::from_parts(millis, n.unsigned_abs().into())),
    }
}

async fn send(queue: &dyn RunQueue, message: &QueueMessage) {
    queue
        .send(message, Duration::ZERO)
        .await
        .expect("send succeeds");
}

async fn receive(queue: &dyn RunQueue, max: u32) -> Vec<Delivery> {
    queue
        .receive(max, HIDDEN, Duration::ZERO)
        .await
        .expect("receive succeeds")
}

/// Receives until `count` messages arrived (or attempts run out).
async fn receive_count(queue: &dyn RunQueue, count: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    for _ in 0..ATTEMPTS {
        if got.len() >= count {
            break;
        }
        let max = u32::try_from(count - got.len()).unwrap_or(10).min(10);
        got.extend(receive(queue, max).await);
    }
    got
}

/// Receives the one message expected to be visible.
async fn receive_one(queue: &dyn RunQueue) -> Delivery {
    let mut got = receive_count(queue, 1).await;
    assert_eq!(got.len(), 1, "exactly one message is visible");
    got.remove(0)
}

async fn assert_empty(queue: &dyn RunQueue, what: &str) {
    let got = receive(queue, 10).await;
    assert_eq!(got, Vec::new(), "{what}");
}

fn assert_stale(result: Result<(), QueueError>, what: &str) {
    match result {
        Err(QueueError::StaleReceipt) => {}
        other => panic!("{what}: expected a stale receipt, got {other:?}"),
    }
}

fn run_ids(deliveries: &[Delivery]) -> HashSet<RunId> {
    deliveries
        .iter()
        .map(|delivery| delivery.message.run_id)
        .collect()
}

/// Sent messages are received once each with a receive count of 1, and deleted ones are gone.
pub async fn run_queue_sends_receives_and_deletes(queue: &dyn RunQueue) {
    let sent = [message(1), message(2), message(3)];
    for message in &sent {
        send(queue, message).await;
    }
    let got = receive_count(queue, 3).await;
    assert_eq!(got.len(), 3, "all three messages arrive");
    assert_eq!(
        run_ids(&got),
        sent.iter().map(|message| message.run_id).collect(),
        "the same messages"
    );
    assert!(
        got.iter().all(|delivery| delivery.receive_count == 1),
        "first delivery counts 1"
    );
    let receipts: HashSet<&str> = got
        .iter()
        .map(|delivery| delivery.receipt.as_str())
        .collect();
    assert_eq!(receipts.len(), 3, "every delivery has its own receipt");
    for delivery in &got {
        queue
            .delete(&delivery.receipt)
            .await
            .expect("delete succeeds");
    }
    // Whatever a queue answers to the receipt of a deleted message, it must not bring it back.
    for delivery in &got {
        let _ = queue
            .change_visibility(&delivery.receipt, Duration::ZERO)
            .await;
    }
    assert_empty(queue, "deleted messages never come back").await;
}

/// A receive returns at most `max` messages.
pub async fn run_queue_returns_at_most_max(queue: &dyn RunQueue) {
    for n in 0..5 {
        send(queue, &message(n)).await;
    }
    let got = receive(queue, 2).await;
    assert!(got.len() <= 2, "got {} messages for max 2", got.len());
    let rest = receive_count(queue, 5 - got.len()).await;
    assert_eq!(got.len() + rest.len(), 5);
}

/// A received message stays hidden for its visibility timeout.
pub async fn run_queue_hides_messages_in_flight(queue: &dyn RunQueue) {
    send(queue, &message(1)).await;
    let first = receive_one(queue).await;
    assert_eq!(first.message, message(1));
    assert_empty(queue, "a message in flight is hidden").await;
}

/// Making a message visible again redelivers it with a new receipt and a higher receive count.
pub async fn run_queue_redelivers_after_visibility_change(queue: &dyn RunQueue) {
    send(queue, &message(1)).await;
    let first = receive_one(queue).await;
    queue
        .change_visibility(&first.receipt, Duration::ZERO)
        .await
        .expect("change visibility");
    let second = receive_one(queue).await;
    assert_eq!(second.message, first.message);
    assert_eq!(second.receive_count, 2);
    assert_ne!(
        second.receipt, first.receipt,
        "each delivery has a fresh receipt"
    );
    queue
        .change_visibility(&second.receipt, HIDDEN)
        .await
        .expect("extend visibility");
    assert_empty(queue, "an extended message stays hidden").await;
}

/// After redelivery, the earlier receipt neither deletes nor hides the message.
pub async fn run_queue_rejects_stale_receipts(queue: &dyn RunQueue) {
    send(queue, &message(1)).await;
    let first = receive_one(queue).await;
    queue
        .change_visibility(&first.receipt, Duration::ZERO)
        .await
        .expect("change visibility");
    let second = receive_one(queue).await;
    assert_stale(
        queue.delete(&first.receipt).await,
        "delete with the earlier receipt",
    );
    assert_stale(
        queue
            .change_visibility(&first.receipt, Duration::ZERO)
            .await,
        "change visibility with the earlier receipt",
    );
    assert_empty(queue, "the stale receipt did not make the message visible").await;
    assert_stale(queue.delete("not-a-receipt").await, "a made-up receipt");
    queue
        .change_visibility(&second.receipt, Duration::ZERO)
        .await
        .expect("the current receipt works");
    let third = receive_one(queue).await;
    queue
        .delete(&third.receipt)
        .await
        .expect("delete with the current receipt");
    assert_empty(queue, "deleted").await;
}

/// A delayed message is invisible until its delay passes.
pub async fn run_queue_delays_messages(queue: &dyn RunQueue) {
    queue
        .send(&message(1), Duration::from_secs(600))
        .await
        .expect("send delayed");
    send(queue, &message(2)).await;
    let got = receive_one(queue).await;
    assert_eq!(
        got.message,
        message(2),
        "only the undelayed message is visible"
    );
    assert_empty(queue, "the delayed message is still hidden").await;
}

/// Delays longer than 15 minutes are refused (as on SQS) and nothing is sent.
pub async fn run_queue_refuses_delays_over_15_minutes(queue: &dyn RunQueue) {
    let refused = queue
        .send(&message(1), Duration::from_secs(15 * 60 + 1))
        .await;
    assert!(
        matches!(refused, Err(QueueError::Backend(_))),
        "got {refused:?}"
    );
    queue
        .send(&message(2), Duration::from_secs(15 * 60))
        .await
        .expect("15 minutes is allowed");
    assert_empty(queue, "nothing visible").await;
}

/// The fourth receive of a message (max receive count 3) moves it to the dead-letter queue.
pub async fn run_queue_dead_letters_after_max_receives(queue: &dyn RunQueue) {
    assert_eq!(
        queue.dead_letters(10).await.expect("dead letters"),
        Vec::new()
    );
    send(queue, &message(1)).await;
    for count in 1..=3 {
        let delivery = receive_one(queue).await;
        assert_eq!(delivery.receive_count, count);
        queue
            .change_visibility(&delivery.receipt, Duration::ZERO)
            .await
            .expect("change visibility");
    }
    assert_empty(queue, "the message went to the dead-letter queue").await;
    let mut dead = Vec::new();
    for _ in 0..ATTEMPTS {
        dead = queue.dead_letters(10).await.expect("dead letters");
        if !dead.is_empty() {
            break;
        }
    }
    assert_eq!(dead, vec![message(1)]);
}

/// A receive waiting for messages returns as soon as one is sent.
pub async fn run_queue_long_poll_wakes_on_send(queue: &dyn RunQueue) {
    let waiting = queue.receive(1, HIDDEN, Duration::from_secs(20));
    let sending = async {
        tokio::task::yield_now().await;
        send(queue, &message(1)).await;
    };
    // The guard only turns a hang into a failure; nothing waits for it to pass.
    let both = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(waiting, sending)
    });
    let (got, ()) = both.await.expect("the waiting receive returned");
    let got = got.expect("receive succeeds");
    assert_eq!(
        got.iter()
            .map(|delivery| delivery.message)
            .collect::<Vec<_>>(),
        vec![message(1)]
    );
}

/// Four concurrent receivers over 200 messages, each deleting what it gets: every message is delivered
/// exactly once.
pub async fn run_queue_never_delivers_a_message_twice_at_once(queue: &dyn RunQueue) {
    let duplicates = concurrent_receivers(queue).await;
    assert_eq!(duplicates, Vec::new(), "no message was delivered twice");
}

/// Four concurrent receivers over 200 messages, each deleting what it gets: every message is
/// delivered and the queue ends empty (a duplicate delivery is tolerated here).
pub async fn run_queue_delivers_every_message_to_concurrent_receivers(queue: &dyn RunQueue) {
    concurrent_receivers(queue).await;
}

/// Sends 200 messages, drains them with four concurrent receivers, checks that every message was
/// delivered and the queue is empty, and returns the messages that were delivered more than once.
async fn concurrent_receivers(queue: &dyn RunQueue) -> Vec<RunId> {
    const MESSAGES: i64 = 200;
    let sent: Vec<QueueMessage> = (0..MESSAGES).map(message).collect();
    for chunk in sent.chunks(20) {
        futures::future::join_all(chunk.iter().map(|message| send(queue, message))).await;
    }
    let seen = RefCell::new(HashSet::new());
    let duplicates = RefCell::new(Vec::new());
    let receiver = || async {
        let mut idle_polls = 0;
        while (seen.borrow().len() as i64) < MESSAGES && idle_polls < 200 {
            let got = receive(queue, 10).await;
            if got.is_empty() {
                idle_polls += 1;
                tokio::task::yield_now().await;
                continue;
            }
            for delivery in got {
                if !seen.borrow_mut().insert(delivery.message.run_id) {
                    duplicates.borrow_mut().push(delivery.message.run_id);
                }
                queue
                    .delete(&delivery.receipt)
                    .await
                    .expect("delete succeeds");
            }
        }
    };
    futures::future::join4(receiver(), receiver(), receiver(), receiver()).await;
    assert_eq!(
        seen.borrow().len() as i64,
        MESSAGES,
        "every message was delivered"
    );
    assert_empty(queue, "all deleted").await;
    duplicates.into_inner()
}
