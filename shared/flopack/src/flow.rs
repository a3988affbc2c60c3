//! The importer's model of what it writes: idflow flow files and their steps, independent of the
//! core's types, turned into YAML text by [`FlowFile::to_yaml`].

use crate::yaml::{self, Entry, Item, Node};

/// A card field value: JSON whose strings are template text (literal text already escaped).
#[derive(Debug, Clone, PartialEq)]
pub enum Tv {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    /// Template text: literal parts escaped, expressions in `{{ }}`.
    Str(String),
    List(Vec<Tv>),
    Map(Vec<(String, Tv)>),
}

impl Tv {
    /// Literal text, escaped so that nothing in it is read as a template.
    pub fn text(literal: &str) -> Tv {
        Tv::Str(literal_text(literal))
    }

    /// One expression: keeps its JSON type when it renders.
    pub fn expr(expression: &str) -> Tv {
        Tv::Str(format!("{{{{ {expression} }}}}"))
    }

    /// A literal JSON value (strings escaped).
    pub fn json(value: &serde_json::Value) -> Tv {
        match value {
            serde_json::Value::Null => Tv::Null,
            serde_json::Value::Bool(b) => Tv::Bool(*b),
            serde_json::Value::Number(n) => Tv::Num(n.clone()),
            serde_json::Value::String(s) => Tv::text(s),
            serde_json::Value::Array(items) => Tv::List(items.iter().map(Tv::json).collect()),
            serde_json::Value::Object(map) => {
                Tv::Map(map.iter().map(|(k, v)| (k.clone(), Tv::json(v))).collect())
            }
        }
    }

    /// A whole number.
    pub fn int(n: i64) -> Tv {
        Tv::Num(n.into())
    }

    fn node(&self) -> Node {
        match self {
            Tv::Null => Node::Null,
            Tv::Bool(b) => Node::Bool(*b),
            Tv::Num(n) => Node::Number(n.clone()),
            Tv::Str(s) => Node::Str(s.clone()),
            Tv::List(items) => Node::Seq(items.iter().map(|v| Item::new(v.node())).collect()),
            Tv::Map(entries) => Node::Map(
                entries
                    .iter()
                    .map(|(k, v)| Entry::new(k.clone(), v.node()))
                    .collect(),
            ),
        }
    }
}

/// Escapes literal text for a template field: every `{` that would open `{{`, `{%` or `{#` is
/// written as the expression `{{ '{' }}`, which renders back to `{`.
pub fn literal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' && matches!(chars.peek(), Some('{' | '%' | '#')) {
            out.push_str("{{ '{' }}");
        } else {
            out.push(c);
        }
    }
    out
}

/// A flow file.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowFile {
    /// Comment lines at the top: where the flow came from and what to check.
    pub header: Vec<String>,
    pub name: String,
    pub description: Option<String>,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
}

/// How runs of an imported flow start.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    Manual,
    Schedule {
        cron: String,
        timezone: Option<String>,
    },
    Event {
        types: Vec<String>,
    },
    Api {
        auth: ApiAuth,
        sync: bool,
    },
    Helper {
        inputs: Vec<(String, &'static str)>,
    },
    Delegated {
        inputs: Vec<(String, &'static str)>,
        callers: Vec<String>,
    },
}

impl Trigger {
    /// The trigger kind as idflow names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule { .. } => "schedule",
            Trigger::Event { .. } => "event",
            Trigger::Api { .. } => "api",
            Trigger::Helper { .. } => "helper",
            Trigger::Delegated { .. } => "delegated",
        }
    }
}

/// How an API endpoint flow authenticates callers.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiAuth {
    /// A client token, from this secret reference.
    Token(String),
    /// An OAuth 2.0 bearer JWT.
    Jwt {
        issuer: String,
        audience: String,
    },
    Public,
}

/// One step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Comment lines above the step.
    pub comments: Vec<String>,
    pub id: Option<String>,
    pub kind: StepKind,
    /// `retry: { max, backoff, factor: 1 }`.
    pub retry: Option<Retry>,
}

/// A fixed-delay retry policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Total attempts, the first included.
    pub max: u32,
    pub backoff_ms: u64,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    Card {
        card: String,
        with: Vec<(String, Tv)>,
    },
    If {
        condition: String,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    ContinueIf(String),
    Loop {
        /// `map` (collects results) rather than `for_each`.
        collect: bool,
        items: String,
        var: String,
        concurrency: Option<u32>,
        body: LoopBody,
    },
    Try {
        steps: Vec<Step>,
        catch: Vec<Step>,
    },
    WaitUntil(String),
}

/// The body of a loop.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopBody {
    Steps(Vec<Step>),
    Flow {
        flow: String,
        with: Vec<(String, Tv)>,
    },
}

impl Step {
    /// A card step.
    pub fn card(id: Option<String>, card: &str, with: Vec<(String, Tv)>) -> Step {
        Step {
            comments: Vec::new(),
            id,
            kind: StepKind::Card {
                card: card.to_owned(),
                with,
            },
            retry: None,
        }
    }

    /// A step of another kind.
    pub fn of(id: Option<String>, kind: StepKind) -> Step {
        Step {
            comments: Vec::new(),
            id,
            kind,
            retry: None,
        }
    }

    /// A step that does nothing, where idflow needs at least one step.
    pub fn placeholder(why: &str) -> Step {
        let mut step = Step::card(None, "flow.assign", Vec::new());
        step.comments.push(why.to_owned());
        step
    }

    /// Adds a comment line above the step.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Step {
        self.comments.push(comment.into());
        self
    }

    fn node(&self) -> Item {
        let mut entries = Vec::new();
        if let Some(id) = &self.id {
            entries.push(Entry::new("id", Node::Str(id.clone())));
        }
        match &self.kind {
            StepKind::Card { card, with } => {
                entries.push(Entry::new("card", Node::Str(card.clone())));
                if !with.is_empty() {
                    entries.push(Entry::new("with", fields(with)));
                }
            }
            StepKind::If {
                condition,
                then,
                otherwise,
            } => {
                entries.push(Entry::new("if", Node::Str(condition.clone())));
                entries.push(Entry::new("then", steps(then)));
                if !otherwise.is_empty() {
                    entries.push(Entry::new("else", steps(otherwise)));
                }
            }
            StepKind::ContinueIf(condition) => {
                entries.push(Entry::new("continue_if", Node::Str(condition.clone())));
            }
            StepKind::Loop {
                collect,
                items,
                var,
                concurrency,
                body,
            } => {
                let marker = if *collect { "map" } else { "for_each" };
                entries.push(Entry::new(marker, Node::Str(items.clone())));
                if var != "item" {
                    entries.push(Entry::new("as", Node::Str(var.clone())));
                }
                if let Some(concurrency) = concurrency {
                    entries.push(Entry::new(
                        "concurrency",
                        Node::Number((*concurrency).into()),
                    ));
                }
                match body {
                    LoopBody::Steps(body) => entries.push(Entry::new("steps", steps(body))),
                    LoopBody::Flow { flow, with } => {
                        entries.push(Entry::new("flow", Node::Str(flow.clone())));
                        entries.push(Entry::new("with", fields(with)));
                    }
                }
            }
            StepKind::Try { steps: body, catch } => {
                entries.push(Entry::new("try", steps(body)));
                entries.push(Entry::new("catch", steps(catch)));
            }
            StepKind::WaitUntil(until) => {
                entries.push(Entry::new("wait_until", Node::Str(until.clone())));
            }
        }
        if let Some(retry) = self.retry {
            entries.push(Entry::new(
                "retry",
                Node::Map(vec![
                    Entry::new("max", Node::Number(retry.max.into())),
                    Entry::new(
                        "backoff",
                        Node::Str(crate::convert::duration_text(retry.backoff_ms)),
                    ),
                    Entry::new("factor", Node::Number(1.into())),
                ]),
            ));
        }
        Item {
            comments: self.comments.clone(),
            value: Node::Map(entries),
        }
    }
}

fn fields(with: &[(String, Tv)]) -> Node {
    Node::Map(
        with.iter()
            .map(|(k, v)| Entry::new(k.clone(), v.node()))
            .collect(),
    )
}

fn steps(list: &[Step]) -> Node {
    Node::Seq(list.iter().map(Step::node).collect())
}

impl FlowFile {
    /// The flow file's YAML text.
    pub fn to_yaml(&self) -> String {
        let mut entries = vec![Entry::new("name", Node::Str(self.name.clone()))];
        if let Some(description) = &self.description {
            entries.push(Entry::new("description", Node::Str(description.clone())));
        }
        if let Some(trigger) = self.trigger_node() {
            entries.push(Entry::new("trigger", trigger));
        }
        let mut steps_entry = Entry::new("steps", steps(&self.steps));
        steps_entry.comments.clear();
        entries.push(steps_entry);
        yaml::document(&self.header, &Node::Map(entries))
    }

    fn trigger_node(&self) -> Option<Node> {
        let map = |entries: Vec<(&str, Node)>| {
            Node::Map(entries.into_iter().map(|(k, v)| Entry::new(k, v)).collect())
        };
        let str = |s: &str| Node::Str(s.to_owned());
        let kind = match &self.trigger {
            Trigger::Manual => return None,
            Trigger::Schedule { cron, timezone } => {
                let mut entries = vec![("cron", str(cron))];
                if let Some(zone) = timezone {
                    entries.push(("timezone", str(zone)));
                }
                ("schedule", map(entries))
            }
            Trigger::Event { types } => (
                "event",
                map(vec![(
                    "okta",
                    Node::Seq(types.iter().map(|t| Item::new(str(t))).collect()),
                )]),
            ),
            Trigger::Api { auth, sync } => {
                let mut entries = Vec::new();
                match auth {
                    ApiAuth::Token(secret) => {
                        entries.push(("auth", str("token")));
                        entries.push(("token", str(secret)));
                    }
                    ApiAuth::Jwt { issuer, audience } => {
                        entries.push(("auth", str("jwt")));
                        entries.push((
                            "jwt",
                            map(vec![("issuer", str(issuer)), ("audience", str(audience))]),
                        ));
                    }
                    ApiAuth::Public => entries.push(("auth", str("public"))),
                }
                entries.push(("respond", str(if *sync { "sync" } else { "async" })));
                ("api", map(entries))
            }
            Trigger::Helper { inputs } => {
                let inputs = map(inputs.iter().map(|(k, t)| (k.as_str(), str(t))).collect());
                ("helper", map(vec![("inputs", inputs)]))
            }
            Trigger::Delegated { inputs, callers } => {
                let declared = inputs
                    .iter()
                    .map(|(k, t)| {
                        (
                            k.as_str(),
                            map(vec![("type", str(t)), ("required", Node::Bool(false))]),
                        )
                    })
                    .collect();
                (
                    "delegated",
                    map(vec![
                        ("inputs", map(declared)),
                        (
                            "callers",
                            Node::Seq(callers.iter().map(|c| Item::new(str(c))).collect()),
                        ),
                    ]),
                )
            }
        };
        Some(map(vec![kind]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_text_renders_back_unchanged() {
        assert_eq!(literal_text("plain {text}"), "plain {text}");
        assert_eq!(literal_text("a {{b}}"), "a {{ '{' }}{b}}");
        assert_eq!(literal_text("{%x%}{#c#}"), "{{ '{' }}%x%}{{ '{' }}#c#}");
        assert_eq!(literal_text("{{{"), "{{ '{' }}{{ '{' }}{");
    }

    #[test]
    fn writes_a_flow_idflow_accepts() {
        let flow = FlowFile {
            header: vec!["Imported from Okta Workflows".into()],
            name: "demo".into(),
            description: Some("A demo: with colons".into()),
            trigger: Trigger::Api {
                auth: ApiAuth::Token("env:DEMO_TOKEN".into()),
                sync: true,
            },
            steps: vec![
                Step::card(
                    Some("text".into()),
                    "text.compose",
                    vec![("text".into(), Tv::Str("Hi {{ input.body.name }}\n".into()))],
                )
                .with_comment("Compose"),
                Step::of(
                    None,
                    StepKind::If {
                        condition: "{{ steps.text == 'x' }}".into(),
                        then: vec![Step::placeholder("nothing")],
                        otherwise: vec![],
                    },
                ),
                Step::card(
                    None,
                    "flow.return",
                    vec![(
                        "body".into(),
                        Tv::Map(vec![("greeting".into(), Tv::expr("steps.text"))]),
                    )],
                ),
            ],
        };
        let text = flow.to_yaml();
        let parsed = domain::flowfile::parse_flow("demo.yaml", &text);
        assert!(parsed.is_ok(), "{text}\n{parsed:?}");
    }
}
