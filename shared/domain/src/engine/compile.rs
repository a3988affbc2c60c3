//! A flow compiled for the engine: every template parsed once, the steps flattened into a tree of
//! numbered nodes.
//!
//! Node numbers are part of the checkpoint format: a saved frame or pending effect names its step by
//! number. The [`Builder`] numbers a step after its nested steps, in file order; changing that order
//! changes what every saved state means, so it needs a new state version and a migration
//! (`checkpoint.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cards::{self, CardSpec};
use crate::diag::Diagnostic;
use crate::model::{Flow, LoopBody, OnError, RetryPolicy, Step, StepKind};
use crate::template::{self, Compiled, TemplateError};

/// Default timeout of a card call when the step sets none.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Index of a step in [`CompiledFlow::nodes`].
pub(super) type NodeId = usize;

/// A flow with every template compiled, ready for the engine. Built once per flow version.
pub struct CompiledFlow {
    pub flow: Flow,
    nodes: Vec<Node>,
    root: Vec<NodeId>,
    /// Names passed to `secret('…')` anywhere in the flow; the runner resolves exactly these.
    pub secret_names: Vec<String>,
    /// Budgets of every render (from `limits.render`).
    pub(super) render_limits: template::Limits,
}

pub(super) struct Node {
    pub(super) key: String,
    /// The step's name in history and effects ([`Step::history_name`]), without its fiber's prefix.
    pub(super) name: String,
    /// Whether the author gave the step an `id`.
    pub(super) named: bool,
    pub(super) kind: NodeKind,
    pub(super) guard: Option<Compiled>,
    pub(super) retry: Option<RetryPolicy>,
    pub(super) timeout: Duration,
    pub(super) on_error: ErrorPlan,
}

pub(super) enum ErrorPlan {
    Fail,
    Continue,
    Steps(Vec<NodeId>),
}

pub(super) enum NodeKind {
    Card {
        spec: &'static CardSpec,
        with: Compiled,
    },
    If {
        condition: Compiled,
        then: Vec<NodeId>,
        otherwise: Vec<NodeId>,
    },
    ContinueIf {
        condition: Compiled,
    },
    Loop {
        collect: bool,
        items: Compiled,
        var: String,
        concurrency: u32,
        body: Body,
    },
    Try {
        steps: Vec<NodeId>,
        catch: Vec<NodeId>,
    },
    Wait {
        duration: Duration,
    },
    WaitUntil {
        until: Compiled,
    },
}

pub(super) enum Body {
    Steps(Vec<NodeId>),
    Flow {
        flow: String,
        with: Option<Compiled>,
    },
}

impl NodeKind {
    /// The card name, or the control keyword, as step records name it.
    pub(super) fn label(&self) -> &'static str {
        match self {
            NodeKind::Card { spec, .. } => spec.name,
            NodeKind::If { .. } => "if",
            NodeKind::ContinueIf { .. } => "continue_if",
            NodeKind::Loop { collect: true, .. } => "map",
            NodeKind::Loop { collect: false, .. } => "for_each",
            NodeKind::Try { .. } => "try",
            NodeKind::Wait { .. } => "wait",
            NodeKind::WaitUntil { .. } => "wait_until",
        }
    }
}

/// Which step list a sequence frame walks. Saved in checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", content = "node", rename_all = "snake_case")]
pub(super) enum ListRef {
    Root,
    Then(NodeId),
    Else(NodeId),
    Body(NodeId),
    Try(NodeId),
    Catch(NodeId),
    OnError(NodeId),
}

impl CompiledFlow {
    /// The families of the flow's I/O cards (`http`, `okta`, ...), once each: what a process needs
    /// an executor for to drive the flow's steps itself.
    pub fn io_families(&self) -> std::collections::BTreeSet<&'static str> {
        self.nodes
            .iter()
            .filter_map(|node| match &node.kind {
                NodeKind::Card { spec, .. } if matches!(spec.kind, crate::cards::CardKind::Io) => {
                    Some(
                        spec.name
                            .split_once('.')
                            .map_or(spec.name, |(family, _)| family),
                    )
                }
                _ => None,
            })
            .collect()
    }

    /// Compiles every template of a flow. Errors name the step and field.
    pub fn new(flow: Flow, file: &str) -> Result<CompiledFlow, Vec<Diagnostic>> {
        let mut builder = Builder {
            nodes: Vec::new(),
            errors: Vec::new(),
            secrets: Vec::new(),
            file,
        };
        let root = builder.list(&flow.steps, None);
        if !builder.errors.is_empty() {
            return Err(builder.errors);
        }
        let mut secret_names = builder.secrets;
        secret_names.sort();
        secret_names.dedup();
        let render_limits = template::Limits {
            output_bytes: flow.limits.render_bytes(),
            ..template::Limits::default()
        };
        Ok(CompiledFlow {
            flow,
            nodes: builder.nodes,
            root,
            secret_names,
            render_limits,
        })
    }

    /// When a run started at `started_at` must have ended (`timeout:`), if the flow sets one.
    pub fn deadline(&self, started_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let timeout = chrono::Duration::from_std(self.flow.timeout?).ok()?;
        started_at.checked_add_signed(timeout)
    }

    /// The node `id`; `None` when the flow has no such node (a restored state may name anything).
    pub(super) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// The steps of `list`; `None` when its node is missing or has no such list (a restored state
    /// may name anything).
    pub(super) fn list(&self, list: ListRef) -> Option<&[NodeId]> {
        let kind = |n: NodeId| self.nodes.get(n).map(|node| (&node.kind, &node.on_error));
        match list {
            ListRef::Root => Some(&self.root),
            ListRef::Then(n) => match kind(n)? {
                (NodeKind::If { then, .. }, _) => Some(then),
                _ => None,
            },
            ListRef::Else(n) => match kind(n)? {
                (NodeKind::If { otherwise, .. }, _) => Some(otherwise),
                _ => None,
            },
            ListRef::Body(n) => match kind(n)? {
                (
                    NodeKind::Loop {
                        body: Body::Steps(steps),
                        ..
                    },
                    _,
                ) => Some(steps),
                _ => None,
            },
            ListRef::Try(n) => match kind(n)? {
                (NodeKind::Try { steps, .. }, _) => Some(steps),
                _ => None,
            },
            ListRef::Catch(n) => match kind(n)? {
                (NodeKind::Try { catch, .. }, _) => Some(catch),
                _ => None,
            },
            ListRef::OnError(n) => match kind(n)? {
                (_, ErrorPlan::Steps(steps)) => Some(steps),
                _ => None,
            },
        }
    }
}

/// Turns a flow's steps into nodes, collecting every template error and every secret name.
struct Builder<'a> {
    nodes: Vec<Node>,
    errors: Vec<Diagnostic>,
    secrets: Vec<String>,
    file: &'a str,
}

impl Builder<'_> {
    /// Compiles a step list; `parent` is the history name of the step that holds it and the
    /// list's branch (`then`, `steps`, …), `None` at the top.
    fn list(&mut self, steps: &[Step], parent: Option<(&str, &str)>) -> Vec<NodeId> {
        steps
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let name = s.history_name(parent.map(|(p, branch)| (p, branch, index)));
                self.step(s, name)
            })
            .collect()
    }

    fn compile(&mut self, step: &Step, field: &str, value: &Value) -> Compiled {
        self.collect_secrets(step, field, value);
        match Compiled::new(value) {
            Ok(compiled) => compiled,
            Err(error) => {
                self.error(step, field, &error);
                Compiled::new(&Value::Null).unwrap_or_else(|_| unreachable_literal())
            }
        }
    }

    fn compile_text(&mut self, step: &Step, field: &str, text: &str) -> Compiled {
        self.compile(step, field, &Value::String(text.to_owned()))
    }

    fn collect_secrets(&mut self, step: &Step, field: &str, value: &Value) {
        match value {
            Value::String(text) if text.contains("secret") => match template::secret_names(text) {
                Ok(names) => self.secrets.extend(names),
                Err(error) => self.error(step, field, &error),
            },
            Value::Array(items) => items
                .iter()
                .for_each(|v| self.collect_secrets(step, field, v)),
            Value::Object(map) => map
                .values()
                .for_each(|v| self.collect_secrets(step, field, v)),
            _ => {}
        }
    }

    fn error(&mut self, step: &Step, field: &str, error: &TemplateError) {
        let path = if error.path.is_empty() {
            field.to_owned()
        } else {
            format!("{field}.{}", error.path)
        };
        self.errors.push(Diagnostic {
            file: self.file.to_owned(),
            line: step.location.line,
            column: step.location.column,
            path: format!("step `{}`: {path}", step.key),
            message: error.message.clone(),
        });
    }

    /// Compiles one step and numbers it after its nested steps (the numbering checkpoints rely on).
    fn step(&mut self, step: &Step, name: String) -> NodeId {
        let guard = step
            .guard
            .as_ref()
            .map(|g| self.compile_text(step, "if", g));
        let kind = match &step.kind {
            StepKind::Card { card, with } => match cards::lookup(card) {
                Some(spec) => NodeKind::Card {
                    spec,
                    with: self.compile(step, "with", with),
                },
                None => {
                    self.errors.push(Diagnostic {
                        file: self.file.to_owned(),
                        line: step.location.line,
                        column: step.location.column,
                        path: format!("step `{}`: card", step.key),
                        message: format!("unknown card `{card}`"),
                    });
                    NodeKind::Wait {
                        duration: Duration::ZERO,
                    }
                }
            },
            StepKind::If {
                condition,
                then,
                otherwise,
            } => {
                let condition = self.compile_text(step, "if", condition);
                NodeKind::If {
                    condition,
                    then: self.list(then, Some((&name, "then"))),
                    otherwise: self.list(otherwise, Some((&name, "else"))),
                }
            }
            StepKind::ContinueIf { condition } => NodeKind::ContinueIf {
                condition: self.compile_text(step, "continue_if", condition),
            },
            StepKind::Loop(l) => {
                let field = if l.collect { "map" } else { "for_each" };
                let items = self.compile_text(step, field, &l.items);
                let body = match &l.body {
                    LoopBody::Steps(steps) => Body::Steps(self.list(steps, Some((&name, "steps")))),
                    LoopBody::Flow { flow, with } => Body::Flow {
                        flow: flow.clone(),
                        with: with.as_ref().map(|w| self.compile(step, "with", w)),
                    },
                };
                NodeKind::Loop {
                    collect: l.collect,
                    items,
                    var: l.var.clone(),
                    concurrency: l.concurrency.max(1),
                    body,
                }
            }
            StepKind::Try { steps, catch } => NodeKind::Try {
                steps: self.list(steps, Some((&name, "try"))),
                catch: self.list(catch, Some((&name, "catch"))),
            },
            StepKind::Wait { duration } => NodeKind::Wait {
                duration: *duration,
            },
            StepKind::WaitUntil { until } => NodeKind::WaitUntil {
                until: self.compile_text(step, "wait_until", until),
            },
        };
        let on_error = match &step.on_error {
            OnError::Fail => ErrorPlan::Fail,
            OnError::Continue => ErrorPlan::Continue,
            OnError::Steps(steps) => ErrorPlan::Steps(self.list(steps, Some((&name, "on_error")))),
        };
        self.nodes.push(Node {
            key: step.key.clone(),
            name,
            named: step.has_id,
            kind,
            guard,
            retry: step.retry.clone(),
            timeout: step.timeout.unwrap_or(DEFAULT_STEP_TIMEOUT),
            on_error,
        });
        self.nodes.len() - 1
    }
}

/// `Compiled::new(&Value::Null)` cannot fail; this keeps the builder free of `unwrap`.
fn unreachable_literal() -> Compiled {
    match Compiled::text("") {
        Ok(c) => c,
        Err(_) => unreachable!("an empty literal always compiles"),
    }
}
