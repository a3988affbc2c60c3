//! What every Lambda function shares: configuration from the environment (set by template.yaml),
//! validated once per cold start, and the [`Runtime`] assembled on the AWS adapters.
//!
//! The runtime built here has no card executors: only the `worker` function runs cards, and it adds
//! them itself (with the `table`, SES and Scheduler parts this module builds from the configuration),
//! so the `api`, `event-hook` and `schedule` functions link no connector, no SMTP client and no
//! Scheduler wake-ups.

use std::sync::Arc;
use std::time::Duration;

use super::emf::{self, MeteredRunStore};
use super::{
    DynamoFlowStore, DynamoRunStore, DynamoTableStore, S3BlobStore, SchedulerWakeups,
    SecretsManagerSecrets, SesEmail, SqsRunQueue,
};
use domain::clock::SystemClock;
use domain::flowfile;
use domain::model::ProjectConfig;
use domain::ports::{Clock, StoreError};
use domain::runner::{RunnerConfig, Runtime};

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
    /// `IDFLOW_TABLES_TABLE` (optional): the DynamoDB table holding every idflow table's rows; without
    /// it the `table.*` cards fail with "no table store".
    pub tables_table: Option<String>,
    /// `IDFLOW_BLOBS_BUCKET` (optional): the S3 bucket of the values runs hold out of line (the
    /// worker's); without it a run keeps every value in its checkpoints, and a run holding more than
    /// a DynamoDB item takes fails.
    pub blobs_bucket: Option<String>,
    /// `IDFLOW_SES_IDENTITY` (optional): the verified SES identity (address, domain or ARN) `email.send`
    /// sends from; without it `email.send` uses the project's SMTP `email` connection.
    pub ses_identity: Option<String>,
    /// Waits beyond SQS's 15-minute delay as one-time Scheduler schedules: set when all of
    /// `IDFLOW_SCHEDULE_GROUP`, `IDFLOW_QUEUE_ARN` and `IDFLOW_SCHEDULER_ROLE_ARN` are (some but not
    /// all is an error); without it long waits re-queue every 15 minutes.
    pub wakeups: Option<WakeupConfig>,
    /// `IDFLOW_RETENTION_DAYS` (default 30): ended runs expire (DynamoDB TTL) this long after.
    pub retention: Duration,
    /// `IDFLOW_SECRETS_TTL_SECONDS` (default 300): how long a secret is cached.
    pub secrets_ttl: Duration,
    /// `IDFLOW_MAX_RECEIVE_COUNT` (default 5): the queue's redrive `maxReceiveCount`.
    pub max_receive_count: u32,
    /// `IDFLOW_LEASE_SECONDS` (default 900): the worker's lease, at least its timeout.
    pub lease: Duration,
}

/// Where long waits' one-time wake-up schedules go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeupConfig {
    /// `IDFLOW_SCHEDULE_GROUP`: the idflow schedule group.
    pub group: String,
    /// `IDFLOW_QUEUE_ARN`: the run queue the schedules send to.
    pub queue_arn: String,
    /// `IDFLOW_SCHEDULER_ROLE_ARN`: the role Scheduler assumes to send.
    pub role_arn: String,
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
        let optional = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
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
            dead_letter_arn: optional("IDFLOW_DLQ_ARN"),
            tables_table: optional("IDFLOW_TABLES_TABLE"),
            blobs_bucket: optional("IDFLOW_BLOBS_BUCKET"),
            ses_identity: optional("IDFLOW_SES_IDENTITY"),
            wakeups: {
                let group = optional("IDFLOW_SCHEDULE_GROUP");
                let queue_arn = optional("IDFLOW_QUEUE_ARN");
                let role_arn = optional("IDFLOW_SCHEDULER_ROLE_ARN");
                match (group, queue_arn, role_arn) {
                    (Some(group), Some(queue_arn), Some(role_arn)) => Some(WakeupConfig {
                        group,
                        queue_arn,
                        role_arn,
                    }),
                    (None, None, None) => None,
                    (group, queue_arn, _) => {
                        return Err(ConfigError::Missing {
                            name: if group.is_none() {
                                "IDFLOW_SCHEDULE_GROUP"
                            } else if queue_arn.is_none() {
                                "IDFLOW_QUEUE_ARN"
                            } else {
                                "IDFLOW_SCHEDULER_ROLE_ARN"
                            },
                        });
                    }
                }
            },
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
    /// It has no card executors (the worker adds them, see the module docs); run and step metrics go
    /// to stdout in the embedded metric format ([`super::emf`]).
    pub async fn runtime(&self, sdk: &crate::SdkConfig) -> Result<Runtime, BuildError> {
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
        let mut dynamo_runs =
            DynamoRunStore::new(dynamo.clone(), &self.runs_table, Some(self.retention));
        // Run inputs, outputs and step data too big for an item go to the bucket (`history/`),
        // for every function: each one creates or reads runs.
        if let Some(blobs) = self.blob_store(sdk) {
            dynamo_runs = dynamo_runs.with_history_blobs(blobs);
        }
        let runs = MeteredRunStore::new(Arc::new(dynamo_runs), clock.clone(), emf::stdout_sink());
        let runtime = Runtime::new(
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
        );
        Ok(runtime)
    }

    /// The store of the `table` cards, when `IDFLOW_TABLES_TABLE` is set.
    pub fn table_store(&self, sdk: &crate::SdkConfig) -> Option<Arc<DynamoTableStore>> {
        self.tables_table.as_ref().map(|table| {
            Arc::new(DynamoTableStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                table,
            ))
        })
    }

    /// S3 as the store of values runs hold out of line, when `IDFLOW_BLOBS_BUCKET` is set. Only
    /// the worker checkpoints runs, so only it stores engine values (`runs/`); every function
    /// keeps run inputs, outputs and step data too big for a DynamoDB item there (`history/`).
    pub fn blob_store(&self, sdk: &crate::SdkConfig) -> Option<Arc<S3BlobStore>> {
        self.blobs_bucket
            .as_ref()
            .map(|bucket| Arc::new(S3BlobStore::new(sdk, bucket)))
    }

    /// SES as `email.send`'s sender, when `IDFLOW_SES_IDENTITY` is set.
    pub fn ses(&self, sdk: &crate::SdkConfig) -> Option<Arc<SesEmail>> {
        self.ses_identity.as_ref().map(|identity| {
            Arc::new(SesEmail::new(
                aws_sdk_sesv2::Client::new(sdk),
                identity.clone(),
            ))
        })
    }

    /// Scheduler wake-ups for long waits, when the three `IDFLOW_SCHEDULE_GROUP`,
    /// `IDFLOW_QUEUE_ARN` and `IDFLOW_SCHEDULER_ROLE_ARN` are set.
    pub fn wakeups(&self, sdk: &crate::SdkConfig) -> Option<Arc<SchedulerWakeups>> {
        self.wakeups.as_ref().map(|wake| {
            Arc::new(SchedulerWakeups::new(
                aws_sdk_scheduler::Client::new(sdk),
                wake.group.clone(),
                wake.queue_arn.clone(),
                wake.role_arn.clone(),
            ))
        })
    }
}

/// What every function's `main` does first: JSON logs (`RUST_LOG` filters, `info` by default), the
/// configuration from the environment, and the runtime on clients built once for this cold start.
pub async fn cold_start() -> Result<(LambdaConfig, crate::SdkConfig, Runtime), ColdStartError> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .finish()
        .with(log_filter(std::env::var("RUST_LOG").ok().as_deref()))
        .init();
    let config = LambdaConfig::from_env()?;
    let sdk = super::sdk_config()?;
    let runtime = config.runtime(&sdk).await?;
    Ok((config, sdk, runtime))
}

/// The log filter of `RUST_LOG`: comma-separated `level` and `target=level` directives
/// (`info,aws_smithy_runtime=debug`), `info` when unset or unreadable. `Targets` rather than
/// `EnvFilter`: the same directives without span-field matching, and no regex engine in every
/// function.
fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    rust_log
        .filter(|text| !text.trim().is_empty())
        .and_then(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

/// A cold start that cannot go on: the function exits with this message.
#[derive(Debug, thiserror::Error)]
pub enum ColdStartError {
    /// The environment is incomplete or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The environment lacks the region or credentials Lambda sets.
    #[error(transparent)]
    Sdk(#[from] crate::SdkConfigError),
    /// The runtime could not be built on it.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The runtime cannot be built at a cold start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
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
    fn rust_log_sets_levels_per_target_and_defaults_to_info() {
        use tracing::Level;
        let enables = |rust_log: Option<&str>, target: &str, level: Level| {
            log_filter(rust_log).would_enable(target, &level)
        };
        for unset in [None, Some(""), Some("  "), Some("=nonsense=")] {
            assert!(enables(unset, "domain::runner", Level::INFO), "{unset:?}");
            assert!(!enables(unset, "domain::runner", Level::DEBUG), "{unset:?}");
        }
        let per_target = Some("warn,domain=debug");
        assert!(enables(per_target, "domain::runner", Level::DEBUG));
        assert!(!enables(per_target, "domain::runner", Level::TRACE));
        assert!(!enables(per_target, "aws_smithy_runtime", Level::INFO));
        assert!(enables(per_target, "aws_smithy_runtime", Level::WARN));
        assert!(enables(Some("debug"), "lambda_runtime", Level::DEBUG));
    }

    #[test]
    fn optional_adapters_are_on_only_when_configured() {
        let lookup = |vars: Vec<(&'static str, &'static str)>| {
            move |name: &str| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let bare = LambdaConfig::from_lookup(lookup(BASE.to_vec())).unwrap();
        assert_eq!(
            (bare.tables_table, bare.ses_identity, bare.wakeups),
            (None, None, None)
        );
        let mut all = BASE.to_vec();
        all.extend([
            ("IDFLOW_TABLES_TABLE", "tables"),
            ("IDFLOW_SES_IDENTITY", " "),
            ("IDFLOW_SCHEDULE_GROUP", "idflow"),
            ("IDFLOW_QUEUE_ARN", "arn:aws:sqs:us-east-1:1:q"),
            ("IDFLOW_SCHEDULER_ROLE_ARN", "arn:aws:iam::1:role/s"),
        ]);
        let full = LambdaConfig::from_lookup(lookup(all)).unwrap();
        assert_eq!(full.tables_table.as_deref(), Some("tables"));
        assert_eq!(
            full.ses_identity, None,
            "a blank SesIdentity parameter means SMTP"
        );
        assert_eq!(
            full.wakeups,
            Some(WakeupConfig {
                group: "idflow".into(),
                queue_arn: "arn:aws:sqs:us-east-1:1:q".into(),
                role_arn: "arn:aws:iam::1:role/s".into(),
            })
        );
    }

    #[test]
    fn configuration_names_what_is_missing_or_wrong() {
        check(&BASE, Ok(()));
        check(
            &BASE[1..],
            Err("environment variable IDFLOW_RUNS_TABLE is required (template.yaml sets it)"),
        );
        let mut partial = BASE.to_vec();
        partial.push(("IDFLOW_SCHEDULE_GROUP", "idflow"));
        partial.push(("IDFLOW_QUEUE_ARN", "arn:aws:sqs:us-east-1:1:q"));
        check(
            &partial,
            Err(
                "environment variable IDFLOW_SCHEDULER_ROLE_ARN is required (template.yaml sets it)",
            ),
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
