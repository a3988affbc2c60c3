//! The `worker` Lambda's entry point: configuration and clients once per cold start, then one
//! partial-batch answer per SQS batch.

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::adapters::aws::{emf, lambda::LambdaConfig, sdk_config};

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
    let worker = worker::Worker {
        runtime: Arc::new(config.runtime(&sdk_config().await).await?),
        dead_letter_arn: config.dead_letter_arn.clone(),
        metrics: emf::stdout_sink(),
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<_, lambda_runtime::Error>(worker.handle(event.payload).await) }
    }))
    .await
}
