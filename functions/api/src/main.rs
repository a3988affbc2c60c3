//! The `api` Lambda's entry point: configuration and clients once per cold start, then the router
//! for every API Gateway request.

use std::sync::Arc;

use aws::gateway::Reply;
use aws::lambda::cold_start;
use lambda_http::tower::ServiceExt;

/// Counts allocations per thread so template renders are held to their memory budget.
#[global_allocator]
static ALLOCATOR: domain::budget::CountingAllocator = domain::budget::CountingAllocator;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (_, _, runtime) = cold_start().await?;
    let runtime = Arc::new(runtime);
    let state = api::state(runtime).await?;
    // Answers go to API Gateway through `Reply` (see `aws::gateway`), not `lambda_http`'s conversion.
    let app = ServiceExt::<lambda_http::Request>::map_response(api::app(state), Reply);
    lambda_http::run(app).await
}
