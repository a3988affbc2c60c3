//! [`SecretsManagerSecrets`]: `aws-secretsmanager:<name or ARN>` references, read from Secrets
//! Manager and cached for a TTL per cold start, so a busy worker does not call Secrets Manager once
//! per step while a rotated secret still takes effect within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use chrono::{DateTime, Utc};

use domain::model::SecretRef;
use domain::ports::{Clock, SecretError, SecretValue, Secrets};

/// Resolves `aws-secretsmanager:` references; every other scheme is
/// [`SecretError::Unsupported`] (Lambdas have no project directory for `file:`, and secrets do not
/// belong in function environment variables).
pub struct SecretsManagerSecrets {
    client: Client,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (DateTime<Utc>, SecretValue)>>,
}

impl SecretsManagerSecrets {
    /// Secrets read through `client`, each kept for `ttl` as measured by `clock`.
    pub fn new(client: Client, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        SecretsManagerSecrets {
            client,
            clock,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, id: &str) -> Option<SecretValue> {
        let now = self.clock.now();
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(id)
            .filter(|(expires, _)| *expires > now)
            .map(|(_, value)| value.clone())
    }
}

#[async_trait]
impl Secrets for SecretsManagerSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        let SecretRef::AwsSecretsManager(id) = reference else {
            return Err(SecretError::Unsupported {
                reference: reference.to_string(),
            });
        };
        if let Some(value) = self.cached(id) {
            return Ok(value);
        }
        let output = match self.client.get_secret_value().secret_id(id).send().await {
            Ok(output) => output,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Err(SecretError::Missing {
                    reference: reference.to_string(),
                });
            }
            Err(error) => {
                return Err(SecretError::Unreadable {
                    reference: reference.to_string(),
                    source: Box::new(error),
                });
            }
        };
        let value = match output.secret_string {
            Some(text) if !text.is_empty() => SecretValue::new(text),
            _ => {
                return Err(SecretError::Missing {
                    reference: reference.to_string(),
                });
            }
        };
        let expires = self.clock.now()
            + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::zero());
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), (expires, value.clone()));
        Ok(value)
    }
}
