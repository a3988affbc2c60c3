//! Decoding `idflow.yaml` and `tables/*.yaml` into [`ProjectConfig`].
//!
//! The decoder is best effort: it returns a config even when it reports problems, so the cross-file
//! checks of a directory still know which callers and tokens exist.

use super::check::{
    Ctx, choice, fields, flow_name_problem, identifier_problem, list, mapping, nonempty_text,
    secret,
};
use super::flow::Reference;
use super::tree::{Node, NodeValue, preview};
use crate::model::ProjectConfig;

pub(crate) const TOP_KEYS: &[&str] = &[
    "connections",
    "hooks",
    "callers",
    "tables",
    "admin",
    "vars",
    "api",
    "secrets",
    "jwks",
    "egress",
];

/// Keys whose values are secrets wherever they appear in a connection or caller.
const SECRET_KEYS: &[&str] = &[
    "token",
    "key",
    "secret",
    "client_secret",
    "password",
    "private_key",
    "api_key",
    "api_token",
];

pub(crate) const COLUMN_TYPES: &[&str] = &["text", "number", "datetime", "boolean", "json"];

/// What the cross-file checks need from the project config.
#[derive(Debug, Default)]
pub(crate) struct ProjectFacts {
    /// `api.tokens.<flow>` keys.
    pub(crate) api_tokens: Vec<Reference>,
    /// The tables `idflow.yaml` declares under `tables:`, where their names are written.
    pub(crate) tables: Vec<Reference>,
}

/// Decodes the project config, reporting every problem into `ctx`.
pub(crate) fn decode_project(ctx: &mut Ctx, root: &Node) -> (ProjectConfig, ProjectFacts) {
    let mut config = ProjectConfig::default();
    let mut facts = ProjectFacts::default();
    if root.value == NodeValue::Null {
        return (config, facts);
    }
    let Some(top) = fields(ctx, root, "", TOP_KEYS) else {
        return (config, facts);
    };
    if let Some(node) = top.get("connections")
        && let Some(connections) = mapping(ctx, node, "connections")
    {
        for entry in connections.entries {
            let path = connections.path_of(&entry.key);
            name_check(
                ctx,
                &entry.key,
                entry.key_location,
                &path,
                "connection name",
            );
            if mapping(ctx, &entry.value, &path).is_some() {
                secrets_within(ctx, &entry.value, &path, 0);
                domain_check(ctx, &entry.value, &path);
            }
            config
                .connections
                .insert(entry.key.clone(), entry.value.to_json());
        }
    }
    if let Some(node) = top.get("hooks")
        && let Some(hooks) = fields(ctx, node, "hooks", &["okta"])
        && let Some(okta) = hooks
            .get("okta")
            .and_then(|node| fields(ctx, node, "hooks.okta", &["secret"]))
    {
        config.okta_hook_secret = okta
            .required(
                ctx,
                "secret",
                "the Authorization header value Okta sends, as a secret reference",
            )
            .and_then(|node| secret(ctx, node, "hooks.okta.secret"));
    }
    if let Some(node) = top.get("callers")
        && let Some(callers) = mapping(ctx, node, "callers")
    {
        for entry in callers.entries {
            let path = callers.path_of(&entry.key);
            name_check(ctx, &entry.key, entry.key_location, &path, "caller name");
            caller(ctx, &entry.value, &path);
            config
                .callers
                .insert(entry.key.clone(), entry.value.to_json());
        }
    }
    if let Some(node) = top.get("jwks")
        && let Some(jwks) = mapping(ctx, node, "jwks")
    {
        for entry in jwks.entries {
            let path = jwks.path_of(&entry.key);
            if let Some(source) = jwks_source(ctx, &entry.value, &path) {
                config.jwks.insert(entry.key.clone(), source);
            }
        }
    }
    if let Some(node) = top.get("tables")
        && let Some(tables) = mapping(ctx, node, "tables")
    {
        for entry in tables.entries {
            let path = tables.path_of(&entry.key);
            if let Some(problem) = identifier_problem(&entry.key, "table name") {
                ctx.error(entry.key_location, &path, problem);
            }
            table(ctx, &entry.value, &path, TABLE_KEYS);
            facts.tables.push(Reference {
                name: entry.key.clone(),
                location: entry.key_location,
                path: path.clone(),
            });
            config
                .tables
                .insert(entry.key.clone(), entry.value.to_json());
        }
    }
    if let Some(node) = top.get("admin")
        && let Some(admin) = fields(ctx, node, "admin", &["token"])
    {
        config.admin_token = admin
            .get("token")
            .and_then(|node| secret(ctx, node, "admin.token"));
    }
    if let Some(node) = top.get("vars")
        && mapping(ctx, node, "vars").is_some()
        && let serde_json::Value::Object(vars) = node.to_json()
    {
        config.vars = vars;
    }
    if let Some(node) = top.get("api")
        && let Some(api) = fields(ctx, node, "api", &["tokens"])
        && let Some(tokens) = api
            .get("tokens")
            .and_then(|node| mapping(ctx, node, "api.tokens"))
    {
        for entry in tokens.entries {
            let path = tokens.path_of(&entry.key);
            if let Some(problem) = flow_name_problem(&entry.key) {
                ctx.error(entry.key_location, &path, problem);
                continue;
            }
            facts.api_tokens.push(Reference {
                name: entry.key.clone(),
                location: entry.key_location,
                path: path.clone(),
            });
            if let Some(token) = secret(ctx, &entry.value, &path) {
                config.api_tokens.insert(entry.key.clone(), token);
            }
        }
    }
    if let Some(node) = top.get("secrets")
        && let Some(secrets) = mapping(ctx, node, "secrets")
    {
        for entry in secrets.entries {
            let path = secrets.path_of(&entry.key);
            name_check(ctx, &entry.key, entry.key_location, &path, "secret name");
            if let Some(reference) = secret(ctx, &entry.value, &path) {
                config.secrets.insert(entry.key.clone(), reference);
            }
        }
    }
    if let Some(node) = top.get("egress") {
        config.egress.allow = egress(ctx, node);
    }
    (config, facts)
}

/// `egress: { allow: [host, host:port, address, CIDR block, ...] }`: every entry is checked, and the
/// valid ones are kept.
fn egress(ctx: &mut Ctx, node: &Node) -> Vec<crate::egress::Allow> {
    let mut allowed = Vec::new();
    let Some(egress) = fields(ctx, node, "egress", &["allow"]) else {
        return allowed;
    };
    let expected = "a list of hosts, host:port, IP addresses or CIDR blocks such as [hooks.internal.example, \"127.0.0.1:8026\", 10.0.0.0/8]";
    let Some(items) = egress
        .get("allow")
        .and_then(|node| list(ctx, node, &egress.path_of("allow"), expected))
    else {
        return allowed;
    };
    for (index, item) in items.iter().enumerate() {
        let path = super::tree::index_path(&egress.path_of("allow"), index);
        let Some(text) = nonempty_text(ctx, item, &path) else {
            continue;
        };
        match crate::egress::Allow::parse(&text) {
            Ok(entry) => allowed.push(entry),
            Err(message) => ctx.error(item.location, &path, message),
        }
    }
    allowed
}

/// Names of connections, callers and secrets: letters, digits, `-`, `_` and `.`.
fn name_check(ctx: &mut Ctx, name: &str, location: crate::model::Location, path: &str, what: &str) {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        ctx.error(
            location,
            path,
            format!(
                "invalid {what} `{}`: use letters, digits, `-`, `_` and `.`",
                preview(name)
            ),
        );
    }
}

/// Every secret-like key under `node` must hold a reference, never the secret itself.
fn secrets_within(ctx: &mut Ctx, node: &Node, path: &str, depth: usize) {
    match &node.value {
        NodeValue::Map(entries) => {
            for entry in entries {
                let child = super::tree::key_path(path, &entry.key);
                if SECRET_KEYS.contains(&entry.key.as_str())
                    && !matches!(entry.value.value, NodeValue::Map(_))
                {
                    secret(ctx, &entry.value, &child);
                } else if depth < 8 {
                    secrets_within(ctx, &entry.value, &child, depth + 1);
                }
            }
        }
        NodeValue::List(items) if depth < 8 => {
            for (index, item) in items.iter().enumerate() {
                secrets_within(ctx, item, &super::tree::index_path(path, index), depth + 1);
            }
        }
        _ => {}
    }
}

/// A connection's `domain` is a base URL.
fn domain_check(ctx: &mut Ctx, node: &Node, path: &str) {
    let NodeValue::Map(entries) = &node.value else {
        return;
    };
    let Some(entry) = entries.iter().find(|e| e.key == "domain") else {
        return;
    };
    let domain_path = super::tree::key_path(path, "domain");
    if let Some(domain) = nonempty_text(ctx, &entry.value, &domain_path)
        && !(domain.starts_with("https://") || domain.starts_with("http://"))
    {
        let message = format!(
            "expected a base URL such as https://example.okta.com, got `{}`",
            preview(&domain)
        );
        ctx.error(entry.value.location, &domain_path, message);
    }
}

/// `{ jwt: { issuer, audience, sub } }` or `{ token: "env:..." }`.
fn caller(ctx: &mut Ctx, node: &Node, path: &str) {
    let Some(caller) = fields(ctx, node, path, &["jwt", "token"]) else {
        return;
    };
    match (caller.get("jwt"), caller.get("token")) {
        (Some(_), Some(_)) => {
            let location = caller
                .entry("token")
                .map_or(caller.location, |e| e.key_location);
            ctx.error(
                location,
                &caller.path_of("token"),
                "a caller authenticates with `jwt` or `token`, not both",
            );
        }
        (None, None) => ctx.error(
            caller.location,
            path,
            "a caller needs `jwt: { issuer, audience }` or `token: env:NAME`",
        ),
        (Some(jwt), None) => {
            if let Some(jwt) = fields(
                ctx,
                jwt,
                &caller.path_of("jwt"),
                &["issuer", "audience", "sub", "jwks"],
            ) {
                for key in ["issuer", "audience"] {
                    if let Some(node) = jwt.required(ctx, key, "text") {
                        nonempty_text(ctx, node, &jwt.path_of(key));
                    }
                }
                if let Some(node) = jwt.get("sub") {
                    nonempty_text(ctx, node, &jwt.path_of("sub"));
                }
                if let Some(node) = jwt.get("jwks") {
                    jwks_source(ctx, node, &jwt.path_of("jwks"));
                }
            }
        }
        (None, Some(token)) => {
            secret(ctx, token, &caller.path_of("token"));
        }
    }
}

/// A JWKS location: an `https://` URL or a secret reference holding the document.
fn jwks_source(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    let text = nonempty_text(ctx, node, path)?;
    match crate::jwks::JwksSource::parse(&text) {
        Ok(_) => Some(text),
        Err(message) => {
            ctx.error(node.location, path, message);
            None
        }
    }
}

/// The keys of a table declaration under `tables:` in `idflow.yaml`.
const TABLE_KEYS: &[&str] = &["key", "columns"];
/// The keys of a table file `tables/<name>.yaml`: a declaration, and the name when it is not the
/// file's.
pub(crate) const TABLE_FILE_KEYS: &[&str] = &["name", "key", "columns"];

/// Decodes a table file (`tables/<stem>.yaml`): one declaration `{ name, key, columns }` shaped like
/// an entry of `idflow.yaml`'s `tables:`, naming the table `name` or else the file's stem. Returns
/// the table's name (and where it is written) and its declaration without `name`.
pub(crate) fn decode_table_file(
    ctx: &mut Ctx,
    root: &Node,
    stem: &str,
) -> Option<(Reference, serde_json::Value)> {
    // `table` reports the keys and the shape; the name is read here without reporting them twice.
    table(ctx, root, "", TABLE_FILE_KEYS);
    let NodeValue::Map(entries) = &root.value else {
        return None;
    };
    let reference = match entries.iter().find(|e| e.key == "name").map(|e| &e.value) {
        Some(node) => {
            let name = nonempty_text(ctx, node, "name")?;
            if let Some(problem) = identifier_problem(&name, "table name") {
                ctx.error(node.location, "name", problem);
            }
            Reference {
                name,
                location: node.location,
                path: "name".to_owned(),
            }
        }
        None => {
            if let Some(problem) = identifier_problem(stem, "table name") {
                ctx.error(
                    root.location,
                    "",
                    format!(
                        "{problem}; the file name names the table, so rename the file or add `name: <table>`"
                    ),
                );
            }
            Reference {
                name: stem.to_owned(),
                location: root.location,
                path: String::new(),
            }
        }
    };
    let mut declaration = root.to_json();
    if let serde_json::Value::Object(map) = &mut declaration {
        map.remove("name");
    }
    Some((reference, declaration))
}

/// `{ key: column, columns: { name: type } }` (and the other `allowed` keys).
fn table(ctx: &mut Ctx, node: &Node, path: &str, allowed: &[&str]) {
    let Some(table) = fields(ctx, node, path, allowed) else {
        return;
    };
    let mut names = Vec::new();
    if let Some(columns) = table
        .required(ctx, "columns", "a mapping of column names to types")
        .and_then(|node| mapping(ctx, node, &table.path_of("columns")))
    {
        if columns.entries.is_empty() {
            ctx.error(
                columns.location,
                &columns.path,
                "expected at least one column",
            );
        }
        for entry in columns.entries {
            let column_path = columns.path_of(&entry.key);
            if let Some(problem) = identifier_problem(&entry.key, "column name") {
                ctx.error(entry.key_location, &column_path, problem);
            }
            choice(ctx, &entry.value, &column_path, COLUMN_TYPES);
            names.push(entry.key.as_str());
        }
        if let Some(key) = table.get("key")
            && let Some(column) = nonempty_text(ctx, key, &table.path_of("key"))
            && !names.contains(&column.as_str())
        {
            let message = format!(
                "key column `{}` is not one of the columns ({})",
                preview(&column),
                names.join(", ")
            );
            ctx.error(key.location, &table.path_of("key"), message);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::egress::Allow;
    use crate::flowfile::parse_project;

    #[test]
    fn egress_allow_entries_are_read_and_every_bad_one_is_located() {
        let source = r#"
egress:
  allow:
    - hooks.internal.example
    - 127.0.0.1:9
    - "[::1]:8080"
    - 10.0.0.0/8
    - "*.corp.example"
"#;
        let config = parse_project("idflow.yaml", source).expect("valid config");
        let shown: Vec<String> = config.egress.allow.iter().map(Allow::to_string).collect();
        assert_eq!(
            shown,
            [
                "hooks.internal.example",
                "127.0.0.1:9",
                "[::1]:8080",
                "10.0.0.0/8",
                "*.corp.example"
            ]
        );
        // Flow style, as the examples write it.
        let config = parse_project(
            "idflow.yaml",
            "egress: { allow: [127.0.0.1:8026, 127.0.0.1:9] }\n",
        )
        .expect("valid config");
        assert_eq!(config.egress.allow.len(), 2);

        let check = |source: &str, expected: &[&str]| {
            let got: Vec<String> = match parse_project("idflow.yaml", source) {
                Ok(_) => Vec::new(),
                Err(diagnostics) => diagnostics.iter().map(ToString::to_string).collect(),
            };
            assert_eq!(got, expected, "\n{source}");
        };
        check(
            "egress:\n  allow:\n    - https://hooks.example.com/x\n    - 10.0.0.1/8\n    - 8080\n    - ok.example\n    - \"\"\n",
            &[
                "idflow.yaml:3:7: egress.allow[0]: `https://hooks.example.com/x` is a URL: an entry names a host, host:port, IP address or CIDR block; write `hooks.example.com`",
                "idflow.yaml:4:7: egress.allow[1]: `10.0.0.1/8` has bits set past the prefix; did you mean `10.0.0.0/8`?",
                "idflow.yaml:5:7: egress.allow[2]: expected text, got the number 8080",
                "idflow.yaml:7:7: egress.allow[4]: expected text, got an empty value",
            ],
        );
        check(
            "egress: { alow: [x.example] }\n",
            &[
                "idflow.yaml:1:11: egress.alow: unknown key `alow`, expected one of allow; did you mean `allow`?",
            ],
        );
        check(
            "egress: { allow: x.example }\n",
            &[
                "idflow.yaml:1:18: egress.allow: expected a list of hosts, host:port, IP addresses or CIDR blocks such as [hooks.internal.example, \"127.0.0.1:8026\", 10.0.0.0/8], got `x.example`",
            ],
        );
        check(
            "egress: [x.example]\n",
            &["idflow.yaml:1:9: egress: expected a mapping, got a list"],
        );
    }
}
