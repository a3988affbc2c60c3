//! The `api` Lambda's entry point: configuration and clients once per cold start, then the router
//! for every API Gateway request.

use std::sync::Arc;

use shared::adapters::aws::lambda::cold_start;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (_, runtime) = cold_start().await?;
    let runtime = Arc::new(runtime);
    let state = api::state(runtime).await?;
    lambda_http::run(api::app(state)).await
}
