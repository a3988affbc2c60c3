//! The flow model: what a flow file means once parsed and validated.
//!
//! These types carry no I/O and no behaviour beyond small helpers. The parser in
//! [`crate::flowfile`] builds them; the engine in [`crate::engine`] executes them. Template strings are
//! kept as written (`"{{ input.user }}"`); [`crate::template`] compiles them once per flow version.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A validated flow, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    /// Unique id: lowercase letters, digits and `-`.
    pub name: String,
    pub description: Option<String>,
    /// How runs start. A flow without `trigger:` is [`Trigger::Manual`].
    pub trigger: Trigger,
    /// How much of each run is kept once it ends.
    pub history: HistoryMode,
    /// Upper bound on a whole run, from its start; `None`: no bound beyond the steps' own
    /// (every card call, retry and wait is bounded).
    pub timeout: Option<Duration>,
    /// `limits:`: the run's working-memory and render budgets.
    pub limits: FlowLimits,
    /// The top-level step list.
    pub steps: Vec<Step>,
    /// Content hash of the source text (`sha256:` + 16 hex digits): the flow's version.
    pub version: String,
}

/// `limits: { memory, render }` of a flow, in bytes; `None` takes the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowLimits {
    /// Step outputs a run may hold at once (default 100 MiB).
    pub memory: Option<u64>,
    /// The largest value one template may render (default 10 MiB).
    pub render: Option<u64>,
}

/// Default of [`FlowLimits::memory`]: 100 MiB, the working memory Okta Workflows gives a run.
pub const DEFAULT_RUN_MEMORY: u64 = 100 << 20;

impl FlowLimits {
    /// The working-memory budget in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.unwrap_or(DEFAULT_RUN_MEMORY)
    }

    /// The render output budget in bytes.
    pub fn render_bytes(&self) -> u64 {
        self.render.unwrap_or(crate::template::DEFAULT_OUTPUT_BYTES)
    }
}

/// How much of a run the history keeps after it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryMode {
    /// Every step's input and output.
    #[default]
    All,
    /// Input and output only for steps that failed; metadata for the rest.
    Errors,
    /// Metadata only: statuses, timings, attempts. No inputs or outputs.
    None,
}

impl HistoryMode {
    /// The name used in flow files.
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryMode::All => "all",
            HistoryMode::Errors => "errors",
            HistoryMode::None => "none",
        }
    }
}

// The trigger kinds live in their own modules ([`crate::triggers`]); their types stay nameable
// here, where the rest of a flow's model is, so code that reads a flow has one place to import from.
pub use crate::triggers::api::{ApiAuth, ApiTrigger, HmacAuth, Respond, SignatureEncoding};
pub use crate::triggers::delegated::{DelegatedInput, DelegatedTrigger};
pub use crate::triggers::event::EventTrigger;
pub use crate::triggers::helper::HelperTrigger;
pub use crate::triggers::schedule::ScheduleTrigger;
pub use crate::triggers::{Trigger, TriggerKind, TriggerSecret};

/// Input kinds. Delegated flows take the scalar ones only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    Text,
    Number,
    Datetime,
    Boolean,
    Object,
    List,
    Any,
}

impl InputType {
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::Text => "text",
            InputType::Number => "number",
            InputType::Datetime => "datetime",
            InputType::Boolean => "boolean",
            InputType::Object => "object",
            InputType::List => "list",
            InputType::Any => "any",
        }
    }

    /// Whether a delegated flow may declare this kind.
    pub fn is_scalar(self) -> bool {
        matches!(
            self,
            InputType::Text | InputType::Number | InputType::Datetime | InputType::Boolean
        )
    }
}

/// A position in a source file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    pub line: u32,
    pub column: u32,
}

/// One step of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The key that names this step in `steps.<key>` and in history: the `id` when given, otherwise a
    /// generated `s<path>` such as `s3` or `s2.then.0`.
    pub key: String,
    /// Whether `key` was written by the author (only those are addressable as `steps.<id>`).
    pub has_id: bool,
    pub kind: StepKind,
    /// `if:` on a card step: skip the step unless the template is truthy.
    pub guard: Option<String>,
    pub retry: Option<RetryPolicy>,
    pub timeout: Option<Duration>,
    pub on_error: OnError,
    /// Where the step starts in its file.
    pub location: Location,
}

impl Step {
    /// The name this step has in history, inside a parent step named `parent` (a history name
    /// itself), in its `branch` (`then`, `else`, `steps`, `try`, `catch`, `on_error`) at `index`.
    /// A step with an `id` is named by it; an unnamed one after its parent's name, so a nested step
    /// under `id: printed` reads `printed.steps.0` rather than its bare position `s1.steps.0`.
    /// Top-level steps (no parent) are named by their key.
    pub fn history_name(&self, parent: Option<(&str, &str, usize)>) -> String {
        match parent {
            Some((parent, branch, index)) if !self.has_id => format!("{parent}.{branch}.{index}"),
            _ => self.key.clone(),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// `card:` + `with:`. `with` is a JSON tree whose strings may be templates.
    Card {
        card: String,
        with: serde_json::Value,
    },
    /// `if:` + `then:` (+ `else:`).
    If {
        condition: String,
        then: Vec<Step>,
        otherwise: Vec<Step>,
    },
    /// `continue_if:`: when falsy the run ends quietly as succeeded.
    ContinueIf { condition: String },
    /// `for_each:` (results discarded) or `map:` (results collected into a list).
    Loop(LoopStep),
    /// `try:` + `catch:`.
    Try { steps: Vec<Step>, catch: Vec<Step> },
    /// `wait: 10m`.
    Wait { duration: Duration },
    /// `wait_until: "{{ ts }}"`.
    WaitUntil { until: String },
}

/// `for_each` / `map`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopStep {
    /// `true` for `map` (collects results), `false` for `for_each`.
    pub collect: bool,
    /// Template that yields the list.
    pub items: String,
    /// Name of the loop variable (`as:`, default `item`).
    pub var: String,
    /// How many iterations may be in flight at once (default 1 for inline steps, 10 for helper flows).
    pub concurrency: u32,
    pub body: LoopBody,
}

/// The body of a loop.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopBody {
    /// Inline steps, run once per item with the item bound to the loop variable.
    Steps(Vec<Step>),
    /// A helper flow run once per item; `with` is rendered per item (default `{ <var>: item }`).
    Flow {
        flow: String,
        with: Option<serde_json::Value>,
    },
}

/// `retry: { max, backoff, factor, on }`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, first included (`max: 3` = up to 3 attempts).
    pub max: u32,
    /// Delay before the second attempt.
    pub backoff: Duration,
    /// Multiplier applied to the delay after each attempt (default 2; 1 = fixed delay).
    pub factor: f64,
    /// Which failures are retried; empty means every retryable failure.
    pub on: Vec<RetryOn>,
}

/// A class of failure a retry policy covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// One HTTP status, such as 429.
    Status(u16),
    /// A class of statuses: 4 for `4xx`, 5 for `5xx`.
    Class(u8),
    /// The step timed out.
    Timeout,
    /// A connection could not be made or was lost.
    Network,
    /// Any error at all.
    Any,
}

/// `on_error:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum OnError {
    /// The run fails (default).
    #[default]
    Fail,
    /// The step's output becomes `{ "error": {...} }` and the run goes on.
    Continue,
    /// These steps run with `error` in scope, then the run goes on after the failed step.
    Steps(Vec<Step>),
}

/// A reference to a secret: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// `env:NAME`
    Env(String),
    /// `file:./path` (relative to the project directory)
    File(String),
    /// `aws-secretsmanager:<arn or name>`
    AwsSecretsManager(String),
}

impl SecretRef {
    /// Parses `env:`, `file:` or `aws-secretsmanager:` references.
    pub fn parse(text: &str) -> Result<SecretRef, String> {
        let (scheme, rest) = text.split_once(':').ok_or_else(|| {
            format!("expected a secret reference such as `env:NAME`, `file:./path` or `aws-secretsmanager:name`, got `{}`", redact_preview(text))
        })?;
        if rest.is_empty() {
            return Err(format!("secret reference `{scheme}:` names nothing"));
        }
        match scheme {
            "env" => Ok(SecretRef::Env(rest.to_owned())),
            "file" => Ok(SecretRef::File(rest.to_owned())),
            "aws-secretsmanager" => Ok(SecretRef::AwsSecretsManager(rest.to_owned())),
            other => Err(format!(
                "unknown secret scheme `{other}:`; expected `env:`, `file:` or `aws-secretsmanager:`"
            )),
        }
    }
}

/// Shows at most the first few characters of something that may be a pasted secret.
fn redact_preview(text: &str) -> String {
    let head: String = text.chars().take(3).collect();
    if text.chars().count() > 3 {
        format!("{head}…")
    } else {
        head
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        SecretRef::parse(&value)
    }
}

impl From<SecretRef> for String {
    fn from(value: SecretRef) -> String {
        value.to_string()
    }
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{path}"),
            SecretRef::AwsSecretsManager(id) => write!(f, "aws-secretsmanager:{id}"),
        }
    }
}

/// `idflow.yaml`: connections, secrets, callers, tables, admin auth and variables.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProjectConfig {
    /// Named connections; flows refer to them by name (`okta` by default). Kept as JSON here and
    /// interpreted by the card family that uses them.
    pub connections: BTreeMap<String, serde_json::Value>,
    /// `hooks.okta.secret`: the Authorization header value Okta event hooks send.
    pub okta_hook_secret: Option<SecretRef>,
    /// Principals allowed to list and run delegated flows.
    pub callers: BTreeMap<String, serde_json::Value>,
    /// `jwks.<issuer>`: where the signing keys of a JWT issuer are (an `https://` URL or a secret
    /// reference holding the JWKS document, such as `file:./jwks.json`). Issuers not listed are
    /// looked up by OpenID discovery.
    pub jwks: BTreeMap<String, String>,
    /// Typed tables (used by `table.*` cards).
    pub tables: BTreeMap<String, serde_json::Value>,
    /// `admin.token`: bearer token for the admin API and console.
    pub admin_token: Option<SecretRef>,
    /// `api.tokens.<flow>`: per-flow client tokens for `auth: token` flows.
    pub api_tokens: BTreeMap<String, SecretRef>,
    /// `secrets.<name>`: named references usable as `secret('name')` in templates.
    pub secrets: BTreeMap<String, SecretRef>,
    /// `vars`: constants available as `vars.*` in templates.
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// `egress`: where requests that flows build may go besides public addresses and the
    /// connections' own origins.
    pub egress: EgressConfig,
}

impl ProjectConfig {
    /// The egress policy this configuration sets: its `egress.allow` entries and the origins of its
    /// connections.
    pub fn egress_policy(&self) -> crate::egress::EgressPolicy {
        crate::egress::EgressPolicy::new(&self.egress.allow, self.connections.values())
    }
}

/// `egress: { allow: [...] }` of `idflow.yaml` (see [`crate::egress`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EgressConfig {
    /// Hosts, `host:port`s, addresses and CIDR blocks that flows' requests may reach although the
    /// default rules refuse them (loopback, private ranges, ...).
    pub allow: Vec<crate::egress::Allow>,
}
