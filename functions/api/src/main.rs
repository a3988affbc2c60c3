//! The `api` Lambda's entry point: configuration and clients once per cold start, then the router
//! for every API Gateway request.

use std::sync::Arc;

use shared::adapters::aws::{lambda::LambdaConfig, sdk_config};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
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
    let state = api::state(runtime).await?;
    lambda_http::run(api::app(state)).await
}
