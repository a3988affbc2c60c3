//! `trigger: { delegated: { inputs, callers, report_to_request } }`: runs started by delegated
//! callers such as OIG Access Requests, which list the flows they may run and run them with typed
//! inputs (`web::triggers::delegated`, over [`crate::delegation`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Kind, TriggerKind, TriggerSecret};
use crate::flowfile::check::{boolean, fields, list, nonempty_text};
use crate::flowfile::flow::{FlowDecoder, Reference};
use crate::flowfile::tree::{Node, index_path};
use crate::model::{InputType, ProjectConfig};

/// `trigger: { delegated: { inputs, callers } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegatedTrigger {
    pub inputs: BTreeMap<String, DelegatedInput>,
    /// Names of callers in `idflow.yaml` allowed to list and run the flow.
    pub callers: Vec<String>,
    /// Post the run's outcome to the access request named by the `accessRequestId` input.
    pub report_to_request: bool,
}

/// One typed delegated input.
#[derive(Debug, Clone, PartialEq)]
pub struct DelegatedInput {
    pub kind: InputType,
    pub required: bool,
    pub description: Option<String>,
}

/// What a delegated run records about its start: the caller (from `idflow.yaml`) that ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedStart {
    pub caller: String,
}

impl Kind for DelegatedTrigger {
    const KIND: TriggerKind = TriggerKind {
        name: "delegated",
        description: "started by delegated callers such as OIG Access Requests",
        example: "trigger: { delegated: { inputs: { a: text }, callers: [bot] } }",
    };

    fn decode(decoder: &mut FlowDecoder<'_>, node: &Node, path: &str) -> Option<Self> {
        let delegated = fields(
            decoder.ctx,
            node,
            path,
            &["inputs", "callers", "report_to_request"],
        )?;
        let inputs = match delegated.get("inputs") {
            None => Some(BTreeMap::new()),
            Some(node) => decoder.inputs(node, &delegated.path_of("inputs"), true),
        };
        let callers = delegated
            .required(
                decoder.ctx,
                "callers",
                "a list of caller names from idflow.yaml",
            )
            .and_then(|node| {
                let callers_path = delegated.path_of("callers");
                let items = list(
                    decoder.ctx,
                    node,
                    &callers_path,
                    "a list of caller names from idflow.yaml",
                )?;
                if items.is_empty() {
                    decoder
                        .ctx
                        .error(node.location, &callers_path, "expected at least one caller");
                    return None;
                }
                let mut callers = Vec::new();
                let mut ok = true;
                for (index, item) in items.iter().enumerate() {
                    let item_path = index_path(&callers_path, index);
                    match nonempty_text(decoder.ctx, item, &item_path) {
                        Some(name) => {
                            decoder.facts.callers.push(Reference {
                                name: name.clone(),
                                location: item.location,
                                path: item_path,
                            });
                            callers.push(name);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(callers)
            });
        let report_to_request = match delegated.get("report_to_request") {
            None => Some(false),
            Some(node) => boolean(decoder.ctx, node, &delegated.path_of("report_to_request")),
        };
        if let (Some(true), Some(inputs), Some(entry)) = (
            report_to_request,
            &inputs,
            delegated.entry("report_to_request"),
        ) && !inputs.contains_key("accessRequestId")
        {
            let message = "`report_to_request` posts to the request named by the `accessRequestId` input; declare it under `inputs`";
            decoder.ctx.error(
                entry.value.location,
                &delegated.path_of("report_to_request"),
                message,
            );
        }
        Some(DelegatedTrigger {
            inputs: inputs?,
            callers: callers?,
            report_to_request: report_to_request?,
        })
    }

    fn schema() -> serde_json::Value {
        use crate::schema::{inputs_schema, object, props};
        object(
            props(vec![
                ("inputs", inputs_schema()),
                (
                    "callers",
                    serde_json::json!({ "type": "array", "items": { "type": "string" }, "description": "callers from idflow.yaml allowed to list and run it" }),
                ),
                ("report_to_request", serde_json::json!({})),
            ]),
            &[],
            false,
        )
    }

    fn summary(&self) -> String {
        format!(
            "inputs: {}",
            self.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }

    fn declared_inputs(&self) -> Option<Vec<String>> {
        // Every delegated flow also takes the access request it was started from.
        let mut keys: Vec<String> = self.inputs.keys().cloned().collect();
        keys.push(crate::delegation::ACCESS_REQUEST_ID.to_owned());
        Some(keys)
    }

    fn secrets(&self, _flow: &str, _config: &ProjectConfig) -> Vec<TriggerSecret> {
        let mut needs: Vec<_> = self
            .callers
            .iter()
            .map(|caller| TriggerSecret::Caller(caller.clone()))
            .collect();
        if self.report_to_request {
            needs.push(TriggerSecret::Connection("okta".into()));
        }
        needs
    }

    fn check_test_input(&self, input: &serde_json::Value) -> Result<(), String> {
        for (name, declared) in &self.inputs {
            let given = input.get(name).is_some_and(|v| !v.is_null());
            if declared.required && !given {
                return Err(format!(
                    "delegated input `{name}` is required; a caller could not start this run without it"
                ));
            }
        }
        Ok(())
    }
}
