//! The `schedule` Lambda's entry point: configuration and clients once per cold start, then one run
//! per EventBridge Scheduler invocation.

use std::sync::Arc;

use aws::lambda::cold_start;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

/// Counts allocations per thread so template renders are held to their memory budget.
#[global_allocator]
static ALLOCATOR: domain::budget::CountingAllocator = domain::budget::CountingAllocator;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (_, _, runtime) = cold_start().await?;
    let runtime = Arc::new(runtime);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let runtime = runtime.clone();
        async move {
            schedule::handle(&runtime, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
