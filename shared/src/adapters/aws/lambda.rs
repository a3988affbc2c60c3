//! What every Lambda function shares: configuration from the environment (set by template.yaml),
//! validated once per cold start, and the [`Runtime`] assembled on the AWS adapters.

use std::sync::Arc;
use std::time::Duration;

use super::emf::{self, MeteredRunStore};
use super::{DynamoFlowStore, DynamoRunStore, SecretsManagerSecrets, SqsRunQueue};
use crate::adapters::clock::SystemClock;
use crate::flowfile;
use crate::model::ProjectConfig;
use crate::ports::{Clock, StoreError};
use crate::runner::{RunnerConfig, Runtime};

/// The functions' settings, read from environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaConfig {
    /// `IDFLOW_RUNS_TABLE`: the runs table.
    pub runs_table: String,
    /// `IDFLOW_FLOWS_TABLE`: the flows table.
    pub flows_table: String,
    /// `IDFLOW_QUEUE_URL`: the run queue.
    pub queue_url: String,
    /// `IDFLOW_DLQ_URL`: its dead-letter queue.
    pub dead_letter_url: String,
    /// `IDFLOW_DLQ_ARN` (optional): the dead-letter queue's ARN, set when the worker also consumes
    /// the dead-letter queue, whose records then fail their runs as poison messages.
    pub dead_letter_arn: Option<String>,
    /// `IDFLOW_RETENTION_DAYS` (default 30): ended runs expire (DynamoDB TTL) this long after.
    pub retention: Duration,
    /// `IDFLOW_SECRETS_TTL_SECONDS` (default 300): how long a secret is cached.
    pub secrets_ttl: Duration,
    /// `IDFLOW_MAX_RECEIVE_COUNT` (default 5): the queue's redrive `maxReceiveCount`.
    pub max_receive_count: u32,
    /// `IDFLOW_LEASE_SECONDS` (default 900): the worker's lease, at least its timeout.
    pub lease: Duration,
}

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {name} is required (template.yaml sets it)")]
    Missing {
        /// The variable.
        name: &'static str,
    },
    /// A variable is set to something unusable.
    #[error("environment variable {name} must be {expected}, got `{value}`")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        value: String,
    },
}

impl LambdaConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<LambdaConfig, ConfigError> {
        LambdaConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<LambdaConfig, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .ok_or(ConfigError::Missing { name })
        };
        let number = |name: &'static str, default: u64| match lookup(name) {
            None => Ok(default),
            Some(value) => match value.trim().parse::<u64>() {
                Ok(parsed) if parsed > 0 => Ok(parsed),
                _ => Err(ConfigError::Invalid {
                    name,
                    expected: "a positive whole number",
                    value,
                }),
            },
        };
        Ok(LambdaConfig {
            runs_table: required("IDFLOW_RUNS_TABLE")?,
            flows_table: required("IDFLOW_FLOWS_TABLE")?,
            queue_url: required("IDFLOW_QUEUE_URL")?,
            dead_letter_url: required("IDFLOW_DLQ_URL")?,
            dead_letter_arn: lookup("IDFLOW_DLQ_ARN").filter(|arn| !arn.trim().is_empty()),
            retention: Duration::from_secs(number("IDFLOW_RETENTION_DAYS", 30)? * 86_400),
            secrets_ttl: Duration::from_secs(number("IDFLOW_SECRETS_TTL_SECONDS", 300)?),
            max_receive_count: u32::try_from(number("IDFLOW_MAX_RECEIVE_COUNT", 5)?).map_err(
                |_| ConfigError::Invalid {
                    name: "IDFLOW_MAX_RECEIVE_COUNT",
                    expected: "a positive whole number",
                    value: lookup("IDFLOW_MAX_RECEIVE_COUNT").unwrap_or_default(),
                },
            )?,
            lease: Duration::from_secs(number("IDFLOW_LEASE_SECONDS", 900)?),
        })
    }

    /// The runtime on DynamoDB, SQS and Secrets Manager, with clients built from `sdk`. Built once
    /// per cold start and shared by every invocation.
    ///
    /// The project configuration (`idflow.yaml`) is the one `idflow deploy` stored beside the flows;
    /// it is read here, once, so a deploy that changes it reaches a function at its next cold start.
    /// The executors are the ones `idflow serve` registers ([`Runtime::with_standard_executors`]);
    /// run and step metrics go to stdout in the embedded metric format ([`super::emf`]).
    pub async fn runtime(&self, sdk: &aws_config::SdkConfig) -> Result<Runtime, BuildError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let flows = DynamoFlowStore::new(dynamo.clone(), &self.flows_table);
        let project = match flows.project().await {
            Ok(Some(files)) => flowfile::parse_project_files(&files).map_err(|diagnostics| {
                BuildError::Project {
                    table: self.flows_table.clone(),
                    problems: diagnostics
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            })?,
            Ok(None) => {
                tracing::warn!(
                    table = %self.flows_table,
                    "no project configuration deployed yet: running with the defaults of an empty idflow.yaml"
                );
                ProjectConfig::default()
            }
            Err(source) => {
                return Err(BuildError::ProjectUnreadable {
                    table: self.flows_table.clone(),
                    source,
                });
            }
        };
        let runner = RunnerConfig {
            lease: self.lease,
            max_receive_count: self.max_receive_count,
            ..RunnerConfig::default()
        };
        let runs = MeteredRunStore::new(
            Arc::new(DynamoRunStore::new(
                dynamo,
                &self.runs_table,
                Some(self.retention),
            )),
            clock.clone(),
            emf::stdout_sink(),
        );
        Runtime::new(
            Arc::new(flows),
            Arc::new(runs),
            Arc::new(SqsRunQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                &self.queue_url,
                &self.dead_letter_url,
            )),
            clock.clone(),
            Arc::new(SecretsManagerSecrets::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                clock,
                self.secrets_ttl,
            )),
            project,
            runner,
        )
        .with_standard_executors()
        .map_err(BuildError::HttpClient)
    }
}

/// The runtime cannot be built at a cold start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client of the `http`, `okta`, `oig` and `slack` cards.
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// The flows table could not be read (permissions, a wrong `IDFLOW_FLOWS_TABLE`, throttling).
    #[error("cannot read the deployed project configuration from the flows table `{table}`")]
    ProjectUnreadable {
        /// The flows table.
        table: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The deployed `idflow.yaml` does not parse: fix it and run `idflow deploy` again.
    #[error(
        "the idflow.yaml deployed to the flows table `{table}` is invalid (fix it and run `idflow deploy` again): {problems}"
    )]
    Project {
        /// The flows table.
        table: String,
        /// Every problem, with file and line.
        problems: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(vars: &[(&str, &str)], expected: Result<(), &str>) {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        match (LambdaConfig::from_lookup(lookup), expected) {
            (Ok(_), Ok(())) => {}
            (Err(error), Err(message)) => assert_eq!(error.to_string(), message),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    const BASE: [(&str, &str); 4] = [
        ("IDFLOW_RUNS_TABLE", "runs"),
        ("IDFLOW_FLOWS_TABLE", "flows"),
        ("IDFLOW_QUEUE_URL", "https://sqs/q"),
        ("IDFLOW_DLQ_URL", "https://sqs/dlq"),
    ];

    #[test]
    fn configuration_names_what_is_missing_or_wrong() {
        check(&BASE, Ok(()));
        check(
            &BASE[1..],
            Err("environment variable IDFLOW_RUNS_TABLE is required (template.yaml sets it)"),
        );
        let mut bad = BASE.to_vec();
        bad.push(("IDFLOW_RETENTION_DAYS", "a month"));
        check(
            &bad,
            Err(
                "environment variable IDFLOW_RETENTION_DAYS must be a positive whole number, got `a month`",
            ),
        );
    }
}
