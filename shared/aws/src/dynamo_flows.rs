//! [`DynamoFlowStore`]: deployed flows and all their versions in one DynamoDB table.
//!
//! # Items (partition key `pk`, sort key `sk`, both strings)
//! - version: `pk = FLOW#<name>`, `sk = <version>`, the [`StoredFlow`] as JSON in `flow`. Written
//!   once and never changed, so runs in flight can always load the version they started with.
//! - current: `pk = CURRENT`, `sk = <name>`, the current [`StoredFlow`] as JSON in `flow` and its
//!   `version`. One query of the `CURRENT` partition lists every deployed flow sorted by name, with
//!   no index; the set is small (flows, not runs).
//! - project: `pk = PROJECT`, `sk = files`, the project's configuration files
//!   ([`domain::flowfile::project_files`]) as a JSON object of path → text in `files`, and their
//!   content hash in `version`. `idflow deploy` writes it; the functions read it at cold start.
//! - pause: `pk = PAUSED`, `sk = <name>`, `paused_at` (RFC 3339) while the flow is paused. Keyed by
//!   name, so a pause outlasts deploys and removal.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::store_error;
use domain::ports::{FlowStore, PutOutcome, StoreError, StoredFlow};

type Item = HashMap<String, AttributeValue>;

/// The partition holding the current version of every deployed flow.
const CURRENT: &str = "CURRENT";
/// The partition holding the project's configuration files.
const PROJECT: &str = "PROJECT";
/// The partition holding paused flows.
const PAUSED: &str = "PAUSED";

/// A [`FlowStore`] on one DynamoDB table (schema in the module docs and in template.yaml).
#[derive(Clone)]
pub struct DynamoFlowStore {
    client: Client,
    table: String,
}

impl DynamoFlowStore {
    /// A store on `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoFlowStore {
            client,
            table: table.into(),
        }
    }

    /// Creates the table as template.yaml does (for tests and development against an emulator).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        super::create_string_keyed_table(client, table, "pk", "sk").await
    }

    /// Stores the project's configuration files (`idflow.yaml`, table declarations), replacing the
    /// previous set. [`PutOutcome::Unchanged`] when the content is the same.
    pub async fn put_project(
        &self,
        files: &BTreeMap<String, String>,
    ) -> Result<PutOutcome, StoreError> {
        let text = serde_json::to_string(files).map_err(|e| StoreError::Corrupt {
            key: format!("{PROJECT}/files"),
            source: Box::new(e),
        })?;
        let version = domain::flowfile::version_of(&text);
        let previous = self.project_item().await?;
        if previous.as_ref().is_some_and(|(v, _)| *v == version) {
            return Ok(PutOutcome::Unchanged);
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(PROJECT.to_owned()))
            .item("sk", AttributeValue::S("files".to_owned()))
            .item("version", AttributeValue::S(version))
            .item("files", AttributeValue::S(text))
            .send()
            .await
            .map_err(store_error)?;
        Ok(if previous.is_some() {
            PutOutcome::Updated
        } else {
            PutOutcome::Added
        })
    }

    /// The project's configuration files, or `None` before the first deploy.
    pub async fn project(&self) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        Ok(self.project_item().await?.map(|(_, files)| files))
    }

    async fn project_item(&self) -> Result<Option<(String, BTreeMap<String, String>)>, StoreError> {
        let Some(item) = self.read(PROJECT, "files").await? else {
            return Ok(None);
        };
        let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
            key: format!("{PROJECT}/files"),
            source,
        };
        match (item.get("version"), item.get("files")) {
            (Some(AttributeValue::S(version)), Some(AttributeValue::S(text))) => {
                let files = serde_json::from_str(text).map_err(|e| corrupt(Box::new(e)))?;
                Ok(Some((version.clone(), files)))
            }
            _ => Err(corrupt("project item without `version` or `files`".into())),
        }
    }

    /// The item at `pk`/`sk`, read consistently (a deploy or a pause is seen at once).
    async fn read(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output.item)
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<StoredFlow>, StoreError> {
        self.read(pk, sk)
            .await?
            .map(|item| decode(&item))
            .transpose()
    }

    fn item(pk: String, sk: String, flow: &StoredFlow) -> Result<Item, StoreError> {
        let text = serde_json::to_string(flow).map_err(|e| StoreError::Corrupt {
            key: format!("{pk}/{sk}"),
            source: Box::new(e),
        })?;
        Ok(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk)),
            ("sk".to_owned(), AttributeValue::S(sk)),
            (
                "version".to_owned(),
                AttributeValue::S(flow.version.clone()),
            ),
            ("flow".to_owned(), AttributeValue::S(text)),
        ]))
    }
}

#[async_trait]
impl FlowStore for DynamoFlowStore {
    async fn put(&self, flow: &StoredFlow) -> Result<PutOutcome, StoreError> {
        let current = self.get(CURRENT, &flow.name).await?;
        if current
            .as_ref()
            .is_some_and(|current| current.version == flow.version)
        {
            return Ok(PutOutcome::Unchanged);
        }
        // The version item first: once the pointer names a version, that version is readable.
        // Re-deploying an old version rewrites identical content, which is harmless.
        let version = Self::item(format!("FLOW#{}", flow.name), flow.version.clone(), flow)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(version))
            .send()
            .await
            .map_err(store_error)?;
        // Conditional on the pointer being what was read, so two concurrent deploys cannot both
        // believe they replaced the same version.
        let pointer = Self::item(CURRENT.to_owned(), flow.name.clone(), flow)?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(pointer));
        let request = match &current {
            Some(current) => request
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::S(current.version.clone())),
            None => request.condition_expression("attribute_not_exists(pk)"),
        };
        match request.send().await {
            Ok(_) if current.is_some() => Ok(PutOutcome::Updated),
            Ok(_) => Ok(PutOutcome::Added),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict(format!(
                    "flow {} was deployed concurrently",
                    flow.name
                )))
            }
            Err(error) => Err(store_error(error)),
        }
    }

    async fn current(&self, name: &str) -> Result<Option<StoredFlow>, StoreError> {
        self.get(CURRENT, name).await
    }

    async fn version(&self, name: &str, version: &str) -> Result<Option<StoredFlow>, StoreError> {
        self.get(&format!("FLOW#{name}"), version).await
    }

    async fn list(&self) -> Result<Vec<StoredFlow>, StoreError> {
        let mut flows = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(CURRENT.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in output.items.unwrap_or_default() {
                flows.push(decode(&item)?);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(flows);
            }
        }
    }

    async fn remove(&self, name: &str) -> Result<bool, StoreError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(CURRENT.to_owned()))
            .key("sk", AttributeValue::S(name.to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn set_paused(
        &self,
        name: &str,
        paused_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        match paused_at {
            Some(at) => {
                // A second pause keeps the first time: the write is conditional on no pause.
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("pk", AttributeValue::S(PAUSED.to_owned()))
                    .item("sk", AttributeValue::S(name.to_owned()))
                    .item("paused_at", AttributeValue::S(at.to_rfc3339()))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(error)
                        if error
                            .as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        Ok(())
                    }
                    Err(error) => Err(store_error(error)),
                }
            }
            None => {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(PAUSED.to_owned()))
                    .key("sk", AttributeValue::S(name.to_owned()))
                    .send()
                    .await
                    .map_err(store_error)?;
                Ok(())
            }
        }
    }

    async fn paused(&self, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let Some(item) = self.read(PAUSED, name).await? else {
            return Ok(None);
        };
        let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Corrupt {
            key: format!("{PAUSED}/{name}"),
            source,
        };
        match item.get("paused_at") {
            Some(AttributeValue::S(text)) => DateTime::parse_from_rfc3339(text)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| corrupt(Box::new(e))),
            _ => Err(corrupt("pause item without `paused_at`".into())),
        }
    }
}

fn decode(item: &Item) -> Result<StoredFlow, StoreError> {
    let key = match (item.get("pk"), item.get("sk")) {
        (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => format!("{pk}/{sk}"),
        _ => "?".to_owned(),
    };
    match item.get("flow") {
        Some(AttributeValue::S(text)) => {
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                key,
                source: Box::new(e),
            })
        }
        _ => Err(StoreError::Corrupt {
            key,
            source: "flow item without `flow`".into(),
        }),
    }
}
