//! AWS adapters: what the Lambda functions run on. Only the modules here name AWS SDK types; every
//! SDK error becomes a port error that keeps it as its `#[source]`.
//!
//! Built only with the `aws` feature of `shared`, so `idflow serve` does not compile the SDK.
//!
//! # Layout
//! - [`dynamo_runs`]: [`DynamoRunStore`], runs, step records and dedupe keys in one DynamoDB table,
//!   with GSIs to list runs by flow and by status newest first and a TTL attribute for retention.
//! - [`dynamo_flows`]: [`DynamoFlowStore`], deployed flows and every version they had.
//! - [`dynamo_tables`]: [`DynamoTableStore`], the rows of every idflow table in one DynamoDB table,
//!   versioned for optimistic concurrency.
//! - [`s3_blobs`]: [`S3BlobStore`], values runs hold out of line, one object each, in one bucket;
//!   S3's four operations as SigV4-signed requests of its own, without aws-sdk-s3.
//! - [`sqs`]: [`SqsRunQueue`], the run queue on a standard SQS queue with a dead-letter queue.
//! - [`scheduler`]: [`SchedulerSchedules`], one EventBridge Scheduler schedule `idflow-<flow>` per
//!   schedule flow in the `idflow` group.
//! - [`wakeups`]: [`SchedulerWakeups`], waits beyond SQS's 15-minute delay as one-time Scheduler
//!   schedules `idflow-wake-<run>-<time>` that send the run's message to the queue.
//! - [`ses`]: [`SesEmail`], `email.send` through Amazon SES v2 (the MIME message built as for SMTP).
//! - [`secrets`]: [`SecretsManagerSecrets`], `aws-secretsmanager:` references, cached per cold start.
//! - [`deploy`]: `idflow deploy --target aws`, the plan (validate, diff) and its application.
//! - [`emf`]: CloudWatch embedded-metric-format lines and [`emf::MeteredRunStore`], which emits
//!   the run and step metrics.
//! - [`http`]: [`http::ReqwestHttpClient`], the SDK's HTTP client over reqwest.
//! - [`lambda`]: [`lambda::LambdaConfig`], the functions' environment and the runtime built on it.
//!
//! # Configuration
//! [`sdk_config`] (the functions) reads region and credentials from the environment Lambda sets
//! ([`sdk`]); [`sdk_defaults`] (`idflow deploy`, the tests) loads them the standard way
//! (environment, profile, SSO, the instance role). `AWS_ENDPOINT_URL` points every client at an
//! emulator in tests. Both give the clients the HTTPS client of [`https_client`].

pub mod deploy;
pub mod dynamo_flows;
pub mod dynamo_runs;
pub mod dynamo_tables;
pub mod emf;
pub mod gateway;
pub mod http;
pub mod lambda;
pub mod s3_blobs;
pub mod s3_history;
pub mod scheduler;
pub mod sdk;
pub mod secrets;
pub mod ses;
pub mod sqs;
pub mod wakeups;

#[cfg(test)]
mod test_server;

pub use aws_types::SdkConfig;
pub use dynamo_flows::DynamoFlowStore;
pub use dynamo_runs::DynamoRunStore;
pub use dynamo_tables::DynamoTableStore;
pub use s3_blobs::S3BlobStore;
pub use scheduler::SchedulerSchedules;
pub use sdk::{SdkConfigError, sdk_config};
pub use secrets::SecretsManagerSecrets;
pub use ses::SesEmail;
pub use sqs::SqsRunQueue;
pub use wakeups::SchedulerWakeups;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use domain::ports::{QueueError, StoreError};

/// The SDK's defaults (latest behaviour version, the standard credential and region chain) with
/// the HTTPS client of [`https_client`]: for `idflow deploy` and the tests, which may run with a
/// profile or SSO; the functions use [`sdk_config`].
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// The HTTPS client every SDK client is given: [`http::ReqwestHttpClient`], the SDK's HTTP client
/// interface over reqwest (rustls on `ring`, the web PKI's trust roots, proxy settings from the
/// environment), so a function links one HTTP stack and one TLS stack.
///
/// The SDK's own client would add hyper-util's pooled client, hyper-rustls and HTTP/2 beside
/// reqwest, and its default TLS `aws-lc` beside `ring`. The SDK crates are built without
/// `default-https-client`, so a configuration without this client has no HTTP client and its
/// first call fails.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_runtime_api::client::http::SharedHttpClient::new(http::ReqwestHttpClient::new())
}

/// Error codes after which the same call may succeed: throttling and server-side trouble.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "InternalServerError",
    "InternalServerException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
];

/// Whether an SDK error is worth retrying: the request never got an answer, or the service said so.
fn is_retryable<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        other => other
            .code()
            .is_some_and(|code| RETRYABLE_CODES.contains(&code)),
    }
}

/// Converts an SDK error into a storage error, keeping it as the source.
pub(crate) fn store_error<E, R>(error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if is_retryable(&error) {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Backend(Box::new(error))
    }
}

/// Converts an SDK error into a queue error, keeping it as the source.
pub(crate) fn queue_error<E, R>(error: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if is_retryable(&error) {
        QueueError::Unavailable(Box::new(error))
    } else {
        QueueError::Backend(Box::new(error))
    }
}

/// Creates an on-demand DynamoDB table keyed by two strings, `partition` and `sort` (tests and
/// development against an emulator; template.yaml creates them in AWS).
pub(crate) async fn create_string_keyed_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    partition: &str,
    sort: &str,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest);
    for (name, key_type) in [(partition, KeyType::Hash), (sort, KeyType::Range)] {
        request = request
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_error)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(key_type)
                    .build()
                    .map_err(build_error)?,
            );
    }
    request.send().await.map_err(store_error)?;
    Ok(())
}

/// A request the SDK refused to build (a required field missing): a bug here, never retryable.
pub(crate) fn build_error(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Backend(Box::new(error))
}
