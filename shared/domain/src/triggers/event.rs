//! `trigger: { event: { okta, filter } }`: runs started by Okta event hook deliveries. The hook
//! endpoint (`web::triggers::event`) authenticates a delivery and hands its events to
//! [`crate::events`], which starts one run per matching flow and event.

use serde::{Deserialize, Serialize};

use super::{Kind, TriggerKind, TriggerSecret};
use crate::flowfile::check::{fields, list, nonempty_text, template};
use crate::flowfile::flow::FlowDecoder;
use crate::flowfile::tree::{Node, index_path, preview};
use crate::model::ProjectConfig;

/// `trigger: { event: { okta: [...], filter } }`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTrigger {
    /// System Log event types the flow subscribes to.
    pub okta: Vec<String>,
    /// A template evaluated against `event` (and `delivery`); the run starts only when truthy.
    pub filter: Option<String>,
}

/// What an event run records about its start: the System Log event that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventStart {
    pub event_uuid: String,
    pub event_type: String,
}

impl Kind for EventTrigger {
    const KIND: TriggerKind = TriggerKind {
        name: "event",
        description: "started by Okta event hook deliveries",
        example: "trigger: { event: { okta: [user.lifecycle.activate] } }",
    };

    fn decode(decoder: &mut FlowDecoder<'_>, node: &Node, path: &str) -> Option<Self> {
        let ctx = &mut *decoder.ctx;
        let event = fields(ctx, node, path, &["okta", "filter"])?;
        let okta = event.required(ctx, "okta", "a list of System Log event types").and_then(|node| {
            let okta_path = event.path_of("okta");
            let items = list(ctx, node, &okta_path, "a list of System Log event types such as [user.lifecycle.create]")?;
            if items.is_empty() {
                ctx.error(node.location, &okta_path, "expected at least one System Log event type");
                return None;
            }
            let mut types = Vec::new();
            let mut ok = true;
            for (index, item) in items.iter().enumerate() {
                let item_path = index_path(&okta_path, index);
                match nonempty_text(ctx, item, &item_path) {
                    Some(kind) if is_event_type(&kind) => types.push(kind),
                    Some(kind) => {
                        let message = format!("`{}` is not a System Log event type such as `user.lifecycle.create`", preview(&kind));
                        ctx.error(item.location, &item_path, message);
                        ok = false;
                    }
                    None => ok = false,
                }
            }
            ok.then_some(types)
        });
        let filter = match event.get("filter") {
            None => Some(None),
            Some(node) => template(
                ctx,
                node,
                &event.path_of("filter"),
                "{{ event.outcome.result == 'SUCCESS' }}",
            )
            .map(Some),
        };
        Some(EventTrigger {
            okta: okta?,
            filter: filter?,
        })
    }

    fn schema() -> serde_json::Value {
        use crate::schema::{object, props, text};
        object(
            props(vec![
                (
                    "okta",
                    serde_json::json!({ "type": "array", "items": { "type": "string" }, "description": "System Log event types" }),
                ),
                (
                    "filter",
                    text("a template over `event` and `delivery`; the run starts when it is true"),
                ),
            ]),
            &["okta"],
            false,
        )
    }

    fn summary(&self) -> String {
        self.okta.join(", ")
    }

    fn declared_inputs(&self) -> Option<Vec<String>> {
        Some(vec!["event".into(), "delivery".into()])
    }

    fn secrets(&self, _flow: &str, config: &ProjectConfig) -> Vec<TriggerSecret> {
        vec![TriggerSecret::Named {
            name: "hooks.okta.secret".into(),
            reference: config.okta_hook_secret.clone(),
        }]
    }
}

/// System Log event types look like `group.user_membership.add`.
fn is_event_type(text: &str) -> bool {
    text.contains('.')
        && !text.starts_with('.')
        && !text.ends_with('.')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
}
