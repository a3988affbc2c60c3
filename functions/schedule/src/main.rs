//! The `schedule` Lambda's entry point: configuration and clients once per cold start, then one run
//! per EventBridge Scheduler invocation.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::adapters::aws::{lambda::LambdaConfig, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = LambdaConfig::from_env()?;
    let runtime = Arc::new(config.runtime(&sdk_config().await).await?);
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
