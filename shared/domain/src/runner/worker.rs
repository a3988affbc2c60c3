//! [`Worker`]: the local queue consumer of `idflow serve`.

use std::sync::Arc;
use std::time::Duration;

use super::runtime::Runtime;

/// The local queue consumer of `idflow serve`.
pub struct Worker {
    runtime: Arc<Runtime>,
    /// One permit per run driven at once, shared with the runs triggers start in this process
    /// ([`Runtime::local_slots`]).
    slots: Arc<tokio::sync::Semaphore>,
}

impl Worker {
    /// A worker driving at most `concurrency` runs at once (counting the runs triggers start in
    /// this process and drive at once while a slot is free).
    pub fn new(runtime: Arc<Runtime>, concurrency: usize) -> Worker {
        let slots = runtime.local_slots(concurrency);
        Worker { runtime, slots }
    }

    /// Receives and processes messages until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let semaphore = self.slots.clone();
        tokio::pin!(shutdown);
        loop {
            let available = semaphore.available_permits().max(1);
            let batch = u32::try_from(available.min(10)).unwrap_or(10);
            let received = tokio::select! {
                () = &mut shutdown => return,
                received = self.runtime.queue.receive(batch, self.runtime.config.lease, Duration::from_secs(1)) => received,
            };
            let deliveries = match received {
                Ok(d) => d,
                Err(error) => {
                    tracing::warn!(error = %error, "queue receive failed");
                    let until = self.runtime.clock.now() + chrono::Duration::seconds(1);
                    self.runtime.clock.sleep_until(until).await;
                    continue;
                }
            };
            for delivery in deliveries {
                let Ok(permit) = semaphore.clone().acquire_owned().await else {
                    return;
                };
                let runtime = self.runtime.clone();
                tokio::spawn(async move {
                    let (disposition, settled) = runtime.process_settling(&delivery).await;
                    runtime.settle(&delivery, disposition, settled).await;
                    drop(permit);
                });
            }
        }
    }
}
