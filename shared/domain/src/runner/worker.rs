//! [`Worker`]: the local queue consumer of `idflow serve`.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::QueueError;

use super::drive::Disposition;
use super::runtime::Runtime;

/// The local queue consumer of `idflow serve`.
pub struct Worker {
    runtime: Arc<Runtime>,
    concurrency: usize,
}

impl Worker {
    pub fn new(runtime: Arc<Runtime>, concurrency: usize) -> Worker {
        Worker {
            runtime,
            concurrency: concurrency.max(1),
        }
    }

    /// Receives and processes messages until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
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
                    let result = match disposition {
                        // Deleted already, in the write that ended the run.
                        Disposition::Done if settled => Ok(()),
                        Disposition::Done => runtime.queue.delete(&delivery.receipt).await,
                        Disposition::Retry => {
                            runtime
                                .queue
                                .change_visibility(&delivery.receipt, Duration::from_secs(5))
                                .await
                        }
                    };
                    if let Err(error) = result
                        && !matches!(error, QueueError::StaleReceipt)
                    {
                        tracing::warn!(error = %error, "could not settle queue message");
                    }
                    drop(permit);
                });
            }
        }
    }
}
