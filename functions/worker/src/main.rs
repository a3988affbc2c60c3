//! The `worker` Lambda's entry point: configuration and clients once per cold start, then one
//! partial-batch answer per SQS batch.

use std::sync::Arc;

use aws::{emf, lambda::cold_start};
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

/// Counts allocations per thread so template renders are held to their memory budget.
#[global_allocator]
static ALLOCATOR: domain::budget::CountingAllocator = domain::budget::CountingAllocator;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk, runtime) = cold_start().await?;
    let runtime = worker::equip(runtime, &config, &sdk)?;
    let worker = worker::Worker {
        runtime: Arc::new(runtime),
        dead_letter_arn: config.dead_letter_arn.clone(),
        metrics: emf::stdout_sink(),
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, lambda_runtime::Error>(worker.handle(event.payload).await) }
    }))
    .await
}
