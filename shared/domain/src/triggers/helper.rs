//! `trigger: { helper: { inputs } }`: flows started by another flow (`flow.call`, `for_each`,
//! `map`, streams). The effect driver starts them; nothing outside a run does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Kind, TriggerKind};
use crate::flowfile::flow::FlowDecoder;
use crate::flowfile::tree::{Node, NodeValue};
use crate::model::InputType;
use crate::run::RunId;

/// `trigger: { helper: { inputs } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct HelperTrigger {
    /// Declared inputs and their kinds; informative, checked loosely.
    pub inputs: BTreeMap<String, InputType>,
}

/// What a helper run records about its start: the run and step that called it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperStart {
    pub parent: RunId,
    pub step: String,
}

impl Kind for HelperTrigger {
    const KIND: TriggerKind = TriggerKind {
        name: "helper",
        description: "started by another flow (flow.call, for_each, map, streams)",
        example: "trigger: { helper: { inputs: { a: text } } }",
    };

    fn decode(decoder: &mut FlowDecoder<'_>, node: &Node, path: &str) -> Option<Self> {
        if node.value == NodeValue::Null {
            return Some(HelperTrigger {
                inputs: BTreeMap::new(),
            });
        }
        let helper = crate::flowfile::check::fields(decoder.ctx, node, path, &["inputs"])?;
        let Some(inputs_node) = helper.get("inputs") else {
            return Some(HelperTrigger {
                inputs: BTreeMap::new(),
            });
        };
        let decoded = decoder.inputs(inputs_node, &helper.path_of("inputs"), false)?;
        Some(HelperTrigger {
            inputs: decoded
                .into_iter()
                .map(|(name, input)| (name, input.kind))
                .collect(),
        })
    }

    fn schema() -> serde_json::Value {
        use crate::schema::{inputs_schema, object, props};
        object(props(vec![("inputs", inputs_schema())]), &[], false)
    }

    fn summary(&self) -> String {
        format!(
            "inputs: {}",
            self.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }

    fn declared_inputs(&self) -> Option<Vec<String>> {
        // Helpers that declare no inputs are called with whatever their caller passes.
        (!self.inputs.is_empty()).then(|| self.inputs.keys().cloned().collect())
    }
}
