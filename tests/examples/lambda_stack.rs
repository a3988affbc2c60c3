//! Creates what the functions run on, on the AWS emulator, for running them locally (not a test):
//! the runs and flows tables, the run queue and its dead-letter queue, the client-token secret of
//! `events/api-invoke.json`, and a deployed `provision-account` flow. Writes the functions'
//! environment to a file for `cargo lambda watch --env-file` and for `bench/lambda-start.py`.
//!
//! ```sh
//! cargo run -p tests --example lambda_stack -- /tmp/idflow-lambda.env
//! ```

use std::collections::BTreeMap;

use anyhow::Context;
use aws::{DynamoFlowStore, DynamoRunStore, SqsRunQueue};
use aws_config::Region;
use aws_sdk_dynamodb::config::Credentials;
use domain::ports::{FlowStore, StoredFlow};

const PROVISION: &str = r#"name: provision-account
trigger:
  api: { auth: token }
steps:
  - id: greeting
    card: text.compose
    with: { text: "provisioning {{ input.body.login }}" }
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .context("usage: lambda_stack <env file to write>")?;
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:5005".to_owned());
    let sdk = aws::sdk_defaults()
        .region(Region::new("us-east-1"))
        .endpoint_url(&endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "emulator"))
        .load()
        .await;
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let runs_table = format!("idflow-runs-{suffix}");
    let flows_table = format!("idflow-flows-{suffix}");
    DynamoRunStore::create_table(&dynamo, &runs_table).await?;
    DynamoFlowStore::create_table(&dynamo, &flows_table).await?;
    let (queue_url, dlq_url) = SqsRunQueue::create_queues(
        &aws_sdk_sqs::Client::new(&sdk),
        &format!("idflow-runs-{suffix}"),
        5,
    )
    .await?;
    let secret = format!("idflow/provision-token-{suffix}");
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&secret)
        .secret_string("example-client-token-0c5b1f")
        .send()
        .await?;
    let flows = DynamoFlowStore::new(dynamo, &flows_table);
    flows
        .put(&StoredFlow {
            name: "provision-account".into(),
            version: domain::flowfile::version_of(PROVISION),
            source: PROVISION.into(),
            path: "provision-account.yaml".into(),
            deployed_at: chrono::Utc::now(),
        })
        .await?;
    flows
        .put_project(&BTreeMap::from([(
            "idflow.yaml".to_owned(),
            format!("api:\n  tokens:\n    provision-account: \"aws-secretsmanager:{secret}\"\n"),
        )]))
        .await?;
    let env = format!(
        "IDFLOW_RUNS_TABLE={runs_table}\nIDFLOW_FLOWS_TABLE={flows_table}\nIDFLOW_QUEUE_URL={queue_url}\nIDFLOW_DLQ_URL={dlq_url}\nAWS_ENDPOINT_URL={endpoint}\nAWS_REGION=us-east-1\nAWS_ACCESS_KEY_ID=test\nAWS_SECRET_ACCESS_KEY=test\n"
    );
    std::fs::write(&out, env).with_context(|| format!("cannot write {out}"))?;
    println!("wrote {out}");
    Ok(())
}
