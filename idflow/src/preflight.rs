//! What `idflow serve` checks about a flow directory before it serves it, beyond validation: which
//! secrets each flow needs and whether they resolve here, so a missing environment variable is
//! named at start rather than discovered by a failed run or a refused Okta delivery.
//!
//! A flow needs a secret when it names it directly (`secret('x')` in a template, its trigger's
//! token or HMAC secret) or through `idflow.yaml`: the credentials of the connections its cards
//! use (`connections.okta.auth.token`, an SMTP password…), `hooks.okta.secret` for an event flow,
//! `api.tokens.<flow>`, its delegated callers' tokens, an issuer's JWKS held in a secret. Only
//! references are reported, never values: a resolved value is dropped at once.

use std::collections::BTreeSet;

use serde_json::Value;

use domain::flowfile::LoadedProject;
use domain::model::{
    Flow, LoopBody, OnError, ProjectConfig, SecretRef, Step, StepKind, TriggerSecret,
};
use domain::ports::{SecretError, Secrets};

/// A secret a flow needs: where `idflow.yaml` or the flow names it, and the reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretUse {
    /// Where the reference is written, as a field path: `connections.okta.auth.token`,
    /// `secrets.crm-token`, `hooks.okta.secret`, `api.tokens.greet`, `trigger.api.hmac.secret`…
    pub name: String,
    /// The reference itself (`env:OKTA_API_TOKEN`), or `None` when the place is not set at all.
    pub reference: Option<SecretRef>,
}

/// A flow's secret that does not resolve here, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedSecret {
    /// The flow that needs it.
    pub flow: String,
    /// Where it is named, as in [`SecretUse::name`].
    pub name: String,
    /// The reference, or `None` when nothing is configured where one is needed.
    pub reference: Option<SecretRef>,
    /// What is wrong: `is not set`, `cannot be read`, `is not available here`, or what is missing.
    pub problem: String,
}

impl std::fmt::Display for UnresolvedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reference {
            Some(reference) => write!(
                f,
                "flow `{}` needs {} ({reference}), which {}",
                self.flow, self.name, self.problem
            ),
            None => write!(
                f,
                "flow `{}` needs {}, {}",
                self.flow, self.name, self.problem
            ),
        }
    }
}

/// The secrets `flow` needs, each once, sorted by name.
pub fn secret_uses(flow: &Flow, config: &ProjectConfig) -> Vec<SecretUse> {
    let mut uses = BTreeSet::new();
    for need in flow.trigger.secrets(&flow.name, config) {
        match need {
            TriggerSecret::Named { name, reference } => {
                uses.insert(SecretUse { name, reference });
            }
            TriggerSecret::Caller(caller) => {
                if let Some(declared) = config.callers.get(&caller) {
                    references_in(declared, &format!("callers.{caller}"), &mut uses);
                }
            }
            TriggerSecret::Connection(connection) => {
                connection_uses(config, &connection, &mut uses)
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut connections = BTreeSet::new();
    steps_needs(&flow.steps, &mut names, &mut connections);
    for connection in connections {
        connection_uses(config, &connection, &mut uses);
    }
    for name in names {
        // An undeclared name is a validation error of its own; nothing to resolve here.
        if let Some(reference) = config.secrets.get(&name) {
            uses.insert(SecretUse {
                name: format!("secrets.{name}"),
                reference: Some(reference.clone()),
            });
        }
    }
    uses.into_iter().collect()
}

/// Every secret each valid flow of `project` needs that does not resolve with `secrets`, flow by
/// flow in file order.
pub async fn unresolved_secrets(
    project: &LoadedProject,
    secrets: &dyn Secrets,
) -> Vec<UnresolvedSecret> {
    let mut unresolved = Vec::new();
    for flow in project.valid_flows() {
        for SecretUse { name, reference } in secret_uses(flow, &project.config) {
            let problem = match &reference {
                None => Some(
                    "which idflow.yaml does not set: every Okta event hook delivery is refused"
                        .to_owned(),
                ),
                // The value is dropped here: only whether it resolves matters.
                Some(reference) => match secrets.resolve(reference).await {
                    Ok(_) => None,
                    Err(SecretError::Missing { .. }) => Some("is not set".to_owned()),
                    Err(SecretError::Unreadable { .. }) => Some("cannot be read".to_owned()),
                    Err(SecretError::Unsupported { .. }) => {
                        Some("is not available here (idflow serve reads env: and file:)".to_owned())
                    }
                },
            };
            if let Some(problem) = problem {
                unresolved.push(UnresolvedSecret {
                    flow: flow.name.clone(),
                    name,
                    reference,
                    problem,
                });
            }
        }
    }
    unresolved
}

/// The secret references inside a connection (its token, key, password, webhook…).
fn connection_uses(config: &ProjectConfig, connection: &str, uses: &mut BTreeSet<SecretUse>) {
    if let Some(declared) = config.connections.get(connection) {
        references_in(declared, &format!("connections.{connection}"), uses);
    }
}

/// Every string under `value` that is a secret reference, with its field path.
fn references_in(value: &Value, path: &str, uses: &mut BTreeSet<SecretUse>) {
    match value {
        Value::String(text) => {
            if let Ok(reference) = SecretRef::parse(text) {
                uses.insert(SecretUse {
                    name: path.to_owned(),
                    reference: Some(reference),
                });
            }
        }
        Value::Object(map) => {
            for (key, value) in map {
                references_in(value, &format!("{path}.{key}"), uses);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                references_in(value, &format!("{path}[{index}]"), uses);
            }
        }
        _ => {}
    }
}

/// The `secret('…')` names and the connections the steps use, nested steps included.
fn steps_needs(steps: &[Step], names: &mut BTreeSet<String>, connections: &mut BTreeSet<String>) {
    for step in steps {
        if let Some(guard) = &step.guard {
            template_names(guard, names);
        }
        match &step.kind {
            StepKind::Card { card, with } => {
                let family = card.split_once('.').map_or(card.as_str(), |(f, _)| f);
                let default = match family {
                    "okta" | "oig" => Some("okta"),
                    "email" => Some("email"),
                    "slack" => Some("slack"),
                    _ => None,
                };
                if let Some(default) = default {
                    // A templated connection name is chosen at run time; the default is the best
                    // guess, and a literal name is exact.
                    let named = with
                        .get("connection")
                        .and_then(Value::as_str)
                        .filter(|name| !name.contains("{{"));
                    connections.insert(named.unwrap_or(default).to_owned());
                }
                value_names(with, names);
            }
            StepKind::If {
                condition,
                then,
                otherwise,
            } => {
                template_names(condition, names);
                steps_needs(then, names, connections);
                steps_needs(otherwise, names, connections);
            }
            StepKind::ContinueIf { condition } => template_names(condition, names),
            StepKind::Loop(looped) => {
                template_names(&looped.items, names);
                match &looped.body {
                    LoopBody::Steps(body) => steps_needs(body, names, connections),
                    // The helper flow's own needs are reported for that flow.
                    LoopBody::Flow { with, .. } => {
                        if let Some(with) = with {
                            value_names(with, names);
                        }
                    }
                }
            }
            StepKind::Try { steps, catch } => {
                steps_needs(steps, names, connections);
                steps_needs(catch, names, connections);
            }
            StepKind::Wait { .. } => {}
            StepKind::WaitUntil { until } => template_names(until, names),
        }
        if let OnError::Steps(handler) = &step.on_error {
            steps_needs(handler, names, connections);
        }
    }
}

fn value_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => template_names(text, names),
        Value::Array(items) => items.iter().for_each(|v| value_names(v, names)),
        Value::Object(map) => map.values().for_each(|v| value_names(v, names)),
        _ => {}
    }
}

fn template_names(text: &str, names: &mut BTreeSet<String>) {
    if text.contains("secret") {
        // A malformed `secret(…)` is a validation error, reported by the loader.
        names.extend(domain::template::secret_names(text).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(config: &str, flows: &[(&str, &str)]) -> LoadedProject {
        let dir = std::env::temp_dir().join(format!("idflow-preflight-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("idflow.yaml"), config).expect("config");
        for (name, text) in flows {
            std::fs::write(dir.join(name), text).expect("flow");
        }
        let project = domain::flowfile::load_dir(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        // Cross-file checks (a token for a flow this test leaves out) do not matter here.
        assert!(
            project.flows.iter().all(|f| f.result.is_ok()),
            "{:?}",
            project.all_diagnostics()
        );
        project
    }

    fn names(project: &LoadedProject, flow: &str) -> Vec<String> {
        let flow = project
            .valid_flows()
            .find(|f| f.name == flow)
            .expect("the flow");
        secret_uses(flow, &project.config)
            .into_iter()
            .map(|u| match u.reference {
                Some(r) => format!("{} = {r}", u.name),
                None => format!("{} unset", u.name),
            })
            .collect()
    }

    const CONFIG: &str = r#"
connections:
  okta: { domain: "http://127.0.0.1:8089", auth: { type: ssws, token: "env:IDFLOW_TEST_UNSET_OKTA_TOKEN" } }
  other: { domain: "http://127.0.0.1:8090", auth: { type: ssws, token: "file:./other.token" } }
  email: { from: "a@example.com", smtp: { host: 127.0.0.1, port: 25, tls: none, username: u, password: "env:SMTP_PASSWORD" } }
secrets:
  crm: "env:CRM_TOKEN"
  unused: "env:UNUSED"
api:
  tokens: { ping: "env:PING_TOKEN" }
callers:
  bot: { token: "env:BOT_TOKEN" }
"#;

    #[test]
    fn each_flow_needs_the_secrets_of_what_it_uses() {
        let project = project(
            CONFIG,
            &[
                (
                    "sync.yaml",
                    "name: sync\nsteps:\n  - { card: okta.read_user, with: { user: a } }\n  - { card: okta.read_user, with: { user: a, connection: other } }\n  - try:\n      - { card: http.request, with: { method: GET, url: \"https://crm.example.com\", headers: { authorization: \"{{ secret('crm') }}\" } } }\n    catch:\n      - { card: email.send, with: { to: a@example.com, subject: s, body: b } }\n",
                ),
                (
                    "hook.yaml",
                    "name: hook\ntrigger: { event: { okta: [user.lifecycle.activate] } }\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
                ),
                (
                    "ping.yaml",
                    "name: ping\ntrigger: { api: { auth: token } }\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
                ),
                (
                    "signed.yaml",
                    "name: signed\ntrigger: { api: { auth: hmac, hmac: { header: x-sig, secret: \"env:SIG\" } } }\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
                ),
                (
                    "asked.yaml",
                    "name: asked\ntrigger: { delegated: { inputs: { a: text }, callers: [bot] } }\nsteps:\n  - { card: text.compose, with: { text: hi } }\n",
                ),
            ],
        );
        assert_eq!(
            names(&project, "sync"),
            [
                "connections.email.smtp.password = env:SMTP_PASSWORD",
                "connections.okta.auth.token = env:IDFLOW_TEST_UNSET_OKTA_TOKEN",
                "connections.other.auth.token = file:./other.token",
                "secrets.crm = env:CRM_TOKEN",
            ]
        );
        assert_eq!(names(&project, "hook"), ["hooks.okta.secret unset"]);
        assert_eq!(
            names(&project, "ping"),
            ["api.tokens.ping = env:PING_TOKEN"]
        );
        assert_eq!(
            names(&project, "signed"),
            ["trigger.api.hmac.secret = env:SIG"]
        );
        assert_eq!(
            names(&project, "asked"),
            ["callers.bot.token = env:BOT_TOKEN"]
        );
    }

    #[tokio::test]
    async fn only_references_that_do_not_resolve_are_reported_and_never_a_value() {
        let dir = std::env::temp_dir().join(format!("idflow-preflight-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("other.token"), "file-value-7").expect("token");
        let project = project(
            CONFIG,
            &[(
                "sync.yaml",
                "name: sync\nsteps:\n  - { card: okta.read_user, with: { user: a, connection: other } }\n  - { card: okta.read_user, with: { user: a } }\n",
            )],
        );
        let secrets = local::secrets::LocalSecrets::new(&dir);
        let unresolved = unresolved_secrets(&project, &secrets).await;
        let _ = std::fs::remove_dir_all(&dir);
        let lines: Vec<String> = unresolved.iter().map(ToString::to_string).collect();
        // The file resolves; the variable (surely unset in any test environment) does not.
        assert_eq!(
            lines,
            [
                "flow `sync` needs connections.okta.auth.token (env:IDFLOW_TEST_UNSET_OKTA_TOKEN), which is not set"
            ]
        );
        assert!(!lines.concat().contains("file-value-7"));
    }
}
