//! What a run's templates may read that does not change while it runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::model::HistoryMode;
use crate::template;

/// Everything about a run that templates may read and that does not change while it runs.
pub struct RunContext {
    pub run_id: String,
    pub flow: String,
    pub started_at: DateTime<Utc>,
    pub vars: Value,
    /// Resolved values of [`super::compile::CompiledFlow::secret_names`].
    pub secrets: BTreeMap<String, String>,
    pub history: HistoryMode,
    /// Caches of the above as template values, built once.
    pub(super) input_value: minijinja::Value,
    pub(super) vars_value: minijinja::Value,
    pub(super) run_value: minijinja::Value,
    pub(super) secrets_value: minijinja::Value,
}

impl RunContext {
    /// The context of one run; the template values are built here, once. The run's input is only
    /// read (into its template value), so a caller that keeps the input lends it.
    pub fn new(
        run_id: String,
        flow: String,
        started_at: DateTime<Utc>,
        input: impl std::borrow::Borrow<Value>,
        vars: Value,
        secrets: BTreeMap<String, String>,
        history: HistoryMode,
    ) -> RunContext {
        let input_value = template::to_value(input.borrow());
        let vars_value = template::to_value(&vars);
        let run_value = minijinja::Value::from_serialize(json!({
            "id": run_id,
            "flow": flow,
            "started_at": crate::datetime::rfc3339_utc(started_at, chrono::SecondsFormat::Millis),
        }));
        let secrets_value = template::secrets_value(secrets.clone());
        RunContext {
            run_id,
            flow,
            started_at,
            vars,
            secrets,
            history,
            input_value,
            vars_value,
            run_value,
            secrets_value,
        }
    }
}
