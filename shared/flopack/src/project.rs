//! The project around the flows: `idflow.yaml` (connections, secrets, variables, callers, the
//! event hook secret) and `tables/*.yaml`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::convert::vendors;
use crate::convert::{ConnectionUse, FlowResult, TablePlan};
use crate::names;
use crate::yaml::{Entry, Node};

/// `idflow.yaml`'s text for the imported flows.
pub fn config_text(flows: &[FlowResult], declared: &[ConnectionUse], sources: &[String]) -> String {
    // Every connection of the export gets an entry, used by a converted card or not, so nothing
    // the Okta Workflows project had is silently dropped.
    let mut connections: BTreeSet<ConnectionUse> = declared.iter().cloned().collect();
    let mut secrets: BTreeMap<String, String> = BTreeMap::new();
    let mut vars: BTreeMap<String, Value> = BTreeMap::new();
    let mut callers: BTreeSet<String> = BTreeSet::new();
    let mut events = false;
    for flow in flows {
        connections.extend(flow.connections.iter().cloned());
        secrets.extend(flow.secrets.clone());
        for (name, value) in &flow.vars {
            vars.entry(name.clone()).or_insert_with(|| value.clone());
        }
        callers.extend(flow.callers.iter().cloned());
        events |= flow.file.trigger.kind() == "event";
    }
    // Event flows and the okta.* cards need the Okta connection even when no card named a config.
    if (events || flows.iter().any(uses_okta_cards))
        && !connections.iter().any(|c| c.module == "okta")
    {
        connections.insert(ConnectionUse {
            module: "okta".into(),
            name: "okta".into(),
            label: String::new(),
        });
    }
    let mut header = vec![
        format!(
            "Project config written by `idflow import flopack` from {}.",
            sources.join(", ")
        ),
        "Secret values are references, never values: set the environment variables named below"
            .into(),
        "(or change the references to file: or aws-secretsmanager:) before `idflow serve`.".into(),
    ];
    let mut top = Vec::new();
    // One entry per name: a card that names no config uses the module's connection, which a
    // card naming the config may already have brought in with its label.
    let mut by_name: BTreeMap<String, ConnectionUse> = BTreeMap::new();
    for connection in connections {
        match by_name.get(&connection.name) {
            Some(existing) if !existing.label.is_empty() => {}
            _ => {
                by_name.insert(connection.name.clone(), connection);
            }
        }
    }
    let mut connection_entries = Vec::new();
    for connection in by_name.values() {
        let mut entry = connection_entry(connection, &secrets);
        if !connection.label.is_empty() {
            entry.comments.insert(
                0,
                format!(
                    "Okta Workflows connection \"{}\" ({})",
                    names::one_line(&connection.label),
                    connection.module
                ),
            );
        }
        connection_entries.push(entry);
    }
    if !connection_entries.is_empty() {
        top.push(Entry::new("connections", Node::Map(connection_entries)));
    }
    if !secrets.is_empty() {
        let mut entry = Entry::new(
            "secrets",
            Node::Map(
                secrets
                    .iter()
                    .map(|(name, reference)| Entry::new(name.clone(), Node::Str(reference.clone())))
                    .collect(),
            ),
        );
        entry.comments.push(
            "Credentials the http.request steps send, read in flows as secret('<name>').".into(),
        );
        top.push(entry);
    }
    if !vars.is_empty() {
        let mut entry = Entry::new(
            "vars",
            Node::Map(
                vars.iter()
                    .map(|(name, value)| Entry::new(name.clone(), Node::from_json(value)))
                    .collect(),
            ),
        );
        entry.comments.push(
            "Base URLs of the APIs the flows call: replace the YOUR-… placeholders with your tenant's.".into(),
        );
        top.push(entry);
    }
    if events {
        let mut entry = Entry::new(
            "hooks",
            Node::Map(vec![Entry::new(
                "okta",
                Node::Map(vec![Entry::new(
                    "secret",
                    Node::Str("env:OKTA_EVENT_HOOK_SECRET".into()),
                )]),
            )]),
        );
        entry.comments.push(
            "Event flows run from an Okta event hook pointed at /hooks/okta with this Authorization value."
                .into(),
        );
        top.push(entry);
    }
    if !callers.is_empty() {
        let mut entry = Entry::new(
            "callers",
            Node::Map(
                callers
                    .iter()
                    .map(|name| {
                        Entry::new(
                            name.clone(),
                            Node::Map(vec![Entry::new(
                                "jwt",
                                Node::Map(vec![
                                    Entry::new(
                                        "issuer",
                                        Node::Str("https://example.okta.com/oauth2/default".into()),
                                    ),
                                    Entry::new("audience", Node::Str("api://idflow".into())),
                                ]),
                            )]),
                        )
                    })
                    .collect(),
            ),
        );
        entry.comments.push(
            "Who may run the delegated flows: set your Okta authorization server's issuer and audience."
                .into(),
        );
        top.push(entry);
    }
    if top.is_empty() {
        header.push("The imported flows need no connection.".into());
        return crate::yaml::document(&header, &Node::Map(Vec::new()));
    }
    crate::yaml::document(&header, &Node::Map(top))
}

fn uses_okta_cards(flow: &FlowResult) -> bool {
    fn walk(steps: &[crate::flow::Step]) -> bool {
        steps.iter().any(|step| match &step.kind {
            crate::flow::StepKind::Card { card, .. } => {
                card.starts_with("okta.") || card.starts_with("oig.")
            }
            crate::flow::StepKind::If {
                then, otherwise, ..
            } => walk(then) || walk(otherwise),
            crate::flow::StepKind::Try { steps, catch } => walk(steps) || walk(catch),
            crate::flow::StepKind::Loop {
                body: crate::flow::LoopBody::Steps(body),
                ..
            } => walk(body),
            _ => false,
        })
    }
    walk(&flow.file.steps)
}

/// One connection of `idflow.yaml`.
fn connection_entry(connection: &ConnectionUse, secrets: &BTreeMap<String, String>) -> Entry {
    match connection.module.as_str() {
        "okta" => {
            let env = if connection.name == "okta" {
                "OKTA_API_TOKEN".to_owned()
            } else {
                format!(
                    "{}_API_TOKEN",
                    connection.name.to_ascii_uppercase().replace('-', "_")
                )
            };
            let domain = okta_domain(&connection.label);
            let mut entry = Entry::new(
                connection.name.clone(),
                Node::Map(vec![
                    Entry::new("domain", Node::Str(domain)),
                    Entry::new(
                        "auth",
                        Node::Map(vec![
                            Entry::new("type", Node::Str("ssws".into())),
                            Entry::new("token", Node::Str(format!("env:{env}"))),
                        ]),
                    ),
                ]),
            );
            entry.comments.push(
                "The Okta org: set `domain`; private_key_jwt auth is also supported (see docs/flow-reference.md)."
                    .into(),
            );
            entry
        }
        "email" => {
            let mut entry = Entry::new(
                "email",
                Node::Map(vec![
                    Entry::new("from", Node::Str("idflow <idflow@example.com>".into())),
                    Entry::new(
                        "smtp",
                        Node::Map(vec![
                            Entry::new("host", Node::Str("smtp.example.com".into())),
                            Entry::new("port", Node::Number(587.into())),
                            Entry::new("tls", Node::Str("starttls".into())),
                            Entry::new("username", Node::Str("idflow@example.com".into())),
                            Entry::new("password", Node::Str("env:SMTP_PASSWORD".into())),
                        ]),
                    ),
                ]),
            );
            entry.comments.push(
                "Mail the converted Send Email cards go through (SMTP locally, `ses: { region }` in AWS)."
                    .into(),
            );
            entry
        }
        module => {
            let vendor = vendors::vendor(module);
            let secret_name = format!("{}-token", connection.name);
            let reference = secrets
                .get(&secret_name)
                .cloned()
                .or_else(|| {
                    vendor.map(|v| format!("env:{}", vendors::env_name(&connection.name, v)))
                })
                .unwrap_or_else(|| {
                    format!(
                        "env:{}_TOKEN",
                        connection.name.to_ascii_uppercase().replace('-', "_")
                    )
                });
            let mut fields = Vec::new();
            if let Some(vendor) = vendor.filter(|v| !v.base.is_empty()) {
                fields.push(Entry::new("base_url", Node::Str(vendor.base.to_owned())));
            }
            fields.push(Entry::new("token", Node::Str(reference)));
            let mut entry = Entry::new(connection.name.clone(), Node::Map(fields));
            let title = vendor.map_or(module, |v| v.title);
            let base = if vendor.is_some_and(|v| !v.base.is_empty()) {
                format!("vars.{module}_base_url and ")
            } else {
                String::new()
            };
            entry.comments.push(format!(
                "{title}: the http.request steps read {base}secret('{secret_name}')."
            ));
            entry
        }
    }
}

/// The org URL when the connection's name is an Okta org's host name, else a placeholder.
fn okta_domain(label: &str) -> String {
    let host = label
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let is_org = [
        ".okta.com",
        ".oktapreview.com",
        ".okta-emea.com",
        ".okta-gov.com",
    ]
    .iter()
    .any(|suffix| host.ends_with(suffix))
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    if is_org {
        format!("https://{host}")
    } else {
        "https://example.okta.com".into()
    }
}

/// A table file `tables/<name>.yaml`.
pub fn table_text(table: &TablePlan) -> String {
    let header = vec![format!(
        "Okta Workflows table \"{}\". Okta's Row ID is the key idflow gives each row.",
        names::one_line(&table.okta)
    )];
    let mut columns: Vec<Entry> = table
        .columns
        .iter()
        .map(|(okta, ident, kind)| {
            let mut entry = Entry::new(ident.clone(), Node::Str((*kind).to_owned()));
            if okta != ident {
                entry
                    .comments
                    .push(format!("\"{}\" in Okta Workflows", names::one_line(okta)));
            }
            entry
        })
        .collect();
    if columns.is_empty() {
        let mut entry = Entry::new("value", Node::Str("json".into()));
        entry
            .comments
            .push("The Okta Workflows table had no columns; idflow needs one.".into());
        columns.push(entry);
    }
    crate::yaml::document(
        &header,
        &Node::Map(vec![Entry::new("columns", Node::Map(columns))]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_org_names_become_domains() {
        assert_eq!(
            okta_domain("workflowsoie.oktapreview.com"),
            "https://workflowsoie.oktapreview.com"
        );
        assert_eq!(okta_domain("Okta Connection"), "https://example.okta.com");
        assert_eq!(
            okta_domain("evil.okta.com/../x"),
            "https://example.okta.com"
        );
    }

    #[test]
    fn table_files_are_valid() {
        let table = TablePlan {
            okta: "Inactive Users".into(),
            name: "inactive_users".into(),
            columns: vec![
                ("User ID".into(), "user_id".into(), "text"),
                ("count".into(), "count".into(), "number"),
            ],
        };
        let text = table_text(&table);
        let mut files = std::collections::BTreeMap::new();
        files.insert("tables/inactive_users.yaml".to_owned(), text.clone());
        let config = domain::flowfile::parse_project_files(&files);
        assert!(config.is_ok(), "{text}\n{config:?}");
        let empty = TablePlan {
            columns: Vec::new(),
            ..table
        };
        files.insert("tables/inactive_users.yaml".to_owned(), table_text(&empty));
        assert!(domain::flowfile::parse_project_files(&files).is_ok());
    }
}
