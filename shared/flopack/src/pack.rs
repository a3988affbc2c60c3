//! Reading a `.flopack` export into typed values.
//!
//! A flopack is JSON: `{"type": "flopack", "version", "data": {"flos", "tables", "configs",
//! "groups"}}`. Each flow (`data.flos[uuid]`) holds its cards in `data.methods`, the order in which
//! they run in `data.orderings` (edges `[from, to]`), and the data mapping in each card's `pins`
//! (`{outputId: {targetCardUuid: [{input, transform}]}}`). Inline sub-flows (If Error, If/ElseIf,
//! For Each over an event batch) are whole flow bodies inside a card input of type `flo`, or in the
//! card's error policy.
//!
//! Everything here is lenient: an export comes from outside, so a field that is missing or of the
//! wrong type reads as empty instead of failing, and nothing indexes into input. The only hard
//! error is a document that is not a flopack at all.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::ImportError;

/// A whole export: its flows, tables, connections and folders.
#[derive(Debug, Clone, Default)]
pub struct Pack {
    /// The export's `version` (such as `1.5.0`), for the summary.
    pub version: String,
    pub flows: Vec<Flo>,
    pub tables: Vec<TableDef>,
    pub configs: Vec<Config>,
    /// Folder id → folder name.
    pub groups: BTreeMap<String, String>,
}

/// One flow of the export.
#[derive(Debug, Clone, Default)]
pub struct Flo {
    pub id: String,
    pub name: String,
    pub description: String,
    /// The folder (`data.groups` id) the flow sits in.
    pub group: Option<String>,
    /// `true` for a scheduled flow; `cron` then says when.
    pub scheduled: bool,
    pub cron: Option<Cron>,
    /// API endpoint and delegated flows: `medium` (client token) or `high` (Okta OAuth).
    pub security_level: Option<String>,
    pub body: Body,
}

/// When a scheduled flow runs, as Okta Workflows stores it (cron-like fields and a time zone).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cron {
    pub minutes: String,
    pub hours: String,
    pub day_of_month: String,
    pub month: String,
    pub day_of_week: String,
    pub time_zone: String,
}

/// The cards of a flow (or of an inline sub-flow) and the order they run in.
#[derive(Debug, Clone, Default)]
pub struct Body {
    pub cards: Vec<Card>,
    /// Edges `(from card uuid, to card uuid)`, in file order.
    pub orderings: Vec<(String, String)>,
}

/// A card's address, `root:kernel:control:0.0.1:if` or `root:channels:http:okta:1.0.448:readUser`,
/// split into the parts that identify what the card does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// The address as written.
    pub raw: String,
    /// Built into Okta Workflows (`kernel`) rather than a connector.
    pub kernel: bool,
    /// The function family (`control`, `list`, …) or the connector (`okta`, `stash`, `gmail`, …),
    /// normalised: connector-builder suffixes and version digits are dropped (`kandji_edae…` →
    /// `kandji`, `marketo2_29` → `marketo`).
    pub channel: String,
    /// The action (`if`, `readUser`), with connector-builder suffixes dropped
    /// (`createChatCompletion_sE1HArGSjj` → `createChatCompletion`).
    pub action: String,
}

impl Address {
    /// Splits an address. Anything that does not look like one keeps its raw text and empty parts.
    pub fn parse(raw: &str) -> Address {
        let parts: Vec<&str> = raw.split(':').collect();
        let (kernel, channel, action) = match parts.as_slice() {
            ["root", "kernel", channel, _version, action] => (true, *channel, *action),
            ["root", "channels", _transport, channel, _version, action] => {
                (false, *channel, *action)
            }
            _ => (false, "", ""),
        };
        Address {
            raw: raw.to_owned(),
            kernel,
            channel: normalise_channel(channel),
            action: normalise_action(action),
        }
    }

    /// `channel:action`, the key of the mapping table.
    pub fn key(&self) -> String {
        format!("{}:{}", self.channel, self.action)
    }
}

/// Drops what the connector builder and connector versions add to a channel name.
fn normalise_channel(channel: &str) -> String {
    let mut name = channel;
    if let Some((head, tail)) = name.rsplit_once('_')
        && tail.len() == 32
        && tail.bytes().all(|b| b.is_ascii_hexdigit())
    {
        name = head;
    }
    // `marketo2_29`: a connector version in the name (`2`) and a build number (`_29`).
    if let Some((head, tail)) = name.rsplit_once('_')
        && !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_digit())
    {
        name = head.trim_end_matches(|c: char| c.is_ascii_digit());
    }
    name.to_owned()
}

/// Drops the random suffix the connector builder gives actions (`searchUsers_BAejT5bvR1Y`).
fn normalise_action(action: &str) -> String {
    if let Some((head, tail)) = action.rsplit_once('_')
        && (8..=12).contains(&tail.len())
        && tail.bytes().all(|b| b.is_ascii_alphanumeric())
        && head.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && head.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return head.to_owned();
    }
    action.to_owned()
}

/// Drops the suffix the connector builder gives field keys (`model_KM1ZNJ` → `model`).
pub fn normalise_key(key: &str) -> &str {
    if let Some((head, tail)) = key.rsplit_once('_')
        && tail.len() == 6
        && tail
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        && !head.is_empty()
    {
        return head;
    }
    key
}

/// One card of a flow.
#[derive(Debug, Clone, Default)]
pub struct Card {
    pub uuid: String,
    pub address: Address,
    /// The name shown on the card (`Read User`, or what the author renamed it to).
    pub name: String,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    /// Where this card's outputs go.
    pub pins: Vec<Pin>,
    /// If/Else: the first card of each branch and whether it is the `true` branch.
    pub branches: Vec<(String, bool)>,
    /// Join: which input feeds which output.
    pub joins: Vec<(String, String)>,
    pub policy: Policy,
    /// The connection (`data.configs` id) a connector card uses.
    pub config: Option<String>,
    /// The text of a Comment card.
    pub comment: Option<String>,
}

impl Card {
    /// The input with this key (and group, when given).
    pub fn input(&self, group: Option<&str>, key: &str) -> Option<&Io> {
        self.inputs
            .iter()
            .find(|io| io.key_is(key) && group.is_none_or(|g| io.group.as_deref() == Some(g)))
    }

    /// The output with this key (and group, when given).
    pub fn output(&self, group: Option<&str>, key: &str) -> Option<&Io> {
        self.outputs
            .iter()
            .find(|io| io.key_is(key) && group.is_none_or(|g| io.group.as_deref() == Some(g)))
    }

    /// Inputs of one group, in the order Okta Workflows shows them.
    pub fn inputs_in(&self, group: &str) -> Vec<&Io> {
        let mut found: Vec<&Io> = self
            .inputs
            .iter()
            .filter(|io| io.group.as_deref() == Some(group))
            .collect();
        found.sort_by_key(|io| io.index);
        found
    }

    /// Inputs without a group (most function cards), in display order.
    pub fn plain_inputs(&self) -> Vec<&Io> {
        let mut found: Vec<&Io> = self.inputs.iter().filter(|io| io.group.is_none()).collect();
        found.sort_by_key(|io| io.index);
        found
    }
}

/// The type of an input or output.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum IoType {
    #[default]
    String,
    Number,
    Boolean,
    Date,
    /// An object; with the declared fields when the type lists them.
    Object(Vec<(String, IoType, bool)>),
    /// A flow reference (helper flow uuid or an inline sub-flow).
    Flo,
    File,
    Other(String),
}

/// One input or output of a card.
#[derive(Debug, Clone, Default)]
pub struct Io {
    pub id: String,
    /// The group the field is shown in (`Profile`, `context`, `Streaming`, …).
    pub group: Option<String>,
    pub key: String,
    pub ty: IoType,
    /// A list of `ty`.
    pub collection: bool,
    /// The value typed into the card (for inputs) or the sample value (outputs).
    pub data: Value,
    /// For Each and friends: the input takes the current item (at `path` inside it).
    pub proxy: Option<Proxy>,
    /// An inline sub-flow held by this input.
    pub subflow: Option<Body>,
    /// Display order.
    pub index: i64,
    /// The input's metadata as written (used for a few card-specific settings).
    pub metadata: Value,
}

impl Io {
    /// Whether the key matches, ignoring connector-builder suffixes.
    pub fn key_is(&self, key: &str) -> bool {
        self.key == key || normalise_key(&self.key) == key
    }

    /// The key without connector-builder suffixes.
    pub fn base_key(&self) -> &str {
        normalise_key(&self.key)
    }

    /// The literal value as text, when it is one.
    pub fn text(&self) -> Option<&str> {
        self.data.as_str()
    }
}

/// For Each inputs bound to the current item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Proxy {
    /// `true` when the value is the item (or a path inside it); `false` for a plain input.
    pub dynamic: bool,
    /// Path inside the item (`Row ID`), empty for the whole item.
    pub path: String,
}

/// One edge of the data mapping: an output of this card into an input of another card.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pin {
    pub output: String,
    pub target: String,
    pub input: String,
    /// A type conversion applied on the way (`parse`, `stringify`, `wrapArray`, …).
    pub convert: Option<Convert>,
}

/// A type conversion on a pin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Convert {
    pub kind: String,
    /// Wrap the converted value in a list.
    pub force_wrap: bool,
}

/// What happens when a card fails.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Retries after the first attempt.
    pub retry: Option<u32>,
    /// Delay between attempts, in milliseconds.
    pub delay_ms: Option<u64>,
    /// If Error: the steps that run when the guarded sub-flow fails.
    pub handler: Option<Body>,
}

/// A table schema of `data.tables`.
#[derive(Debug, Clone, Default)]
pub struct TableDef {
    pub id: String,
    pub name: String,
    pub columns: Vec<(String, String)>,
}

/// A connection of `data.configs` (credentials are never exported).
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub id: String,
    /// The connector (`okta`, `gmail`, …), normalised like [`Address::channel`].
    pub module: String,
    /// The name the author gave the connection.
    pub name: String,
}

/// Reads a flopack document. Fails only when `text` is not a flopack at all.
pub fn read(text: &str) -> Result<Pack, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text).map_err(|error| ImportError::NotJson {
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })?;
    from_value(&value)
}

/// Reads a flopack from parsed JSON.
pub fn from_value(value: &Value) -> Result<Pack, ImportError> {
    let Some(root) = value.as_object() else {
        return Err(ImportError::NotFlopack(
            "the document is not a JSON object".into(),
        ));
    };
    if let Some(kind) = root.get("type")
        && kind.as_str() != Some("flopack")
    {
        return Err(ImportError::NotFlopack(format!(
            "its `type` is {kind}, not \"flopack\""
        )));
    }
    let Some(data) = root.get("data").and_then(Value::as_object) else {
        return Err(ImportError::NotFlopack("it has no `data` object".into()));
    };
    let Some(flos) = data.get("flos").and_then(Value::as_object) else {
        return Err(ImportError::NotFlopack(
            "it has no `data.flos` object (the flows of an export)".into(),
        ));
    };
    let mut pack = Pack {
        version: text_of(root.get("version")),
        ..Pack::default()
    };
    for (key, flo) in flos {
        if let Some(flo) = read_flo(key, flo) {
            pack.flows.push(flo);
        }
    }
    if let Some(tables) = data.get("tables").and_then(Value::as_object) {
        for (key, table) in tables {
            pack.tables.push(read_table(key, table));
        }
    }
    if let Some(configs) = data.get("configs").and_then(Value::as_object) {
        for (key, config) in configs {
            pack.configs.push(Config {
                id: non_empty(text_of(config.get("id"))).unwrap_or_else(|| key.clone()),
                module: normalise_channel(&text_of(config.get("module"))),
                name: text_of(config.get("name")),
            });
        }
    }
    if let Some(groups) = data.get("groups").and_then(Value::as_object) {
        for (key, group) in groups {
            let name = text_of(group.pointer("/data/name"));
            pack.groups.insert(key.clone(), name);
        }
    }
    Ok(pack)
}

fn read_flo(key: &str, flo: &Value) -> Option<Flo> {
    let object = flo.as_object()?;
    let data = object.get("data").and_then(Value::as_object);
    let empty = Map::new();
    let data = data.unwrap_or(&empty);
    let cron = data
        .get("cron")
        .and_then(Value::as_object)
        .filter(|c| !c.is_empty())
        .map(|c| Cron {
            minutes: text_of(c.get("minutes")),
            hours: text_of(c.get("hours")),
            day_of_month: text_of(c.get("dayOfTheMonth")),
            month: text_of(c.get("month")),
            day_of_week: text_of(c.get("dayOfTheWeek")),
            time_zone: text_of(c.get("timeZone")),
        });
    Some(Flo {
        id: non_empty(text_of(object.get("id"))).unwrap_or_else(|| key.to_owned()),
        name: text_of(object.get("name")),
        description: text_of(object.get("description")),
        group: non_empty(text_of(data.get("group"))),
        scheduled: data.get("scheduled").and_then(Value::as_bool) == Some(true),
        cron,
        security_level: non_empty(text_of(data.get("security_level"))),
        body: read_body(data, 0),
    })
}

/// How deep inline sub-flows may nest before the rest is ignored (exports nest two or three
/// levels; a hostile file must not exhaust the stack).
const MAX_DEPTH: usize = 16;

fn read_body(data: &Map<String, Value>, depth: usize) -> Body {
    let mut body = Body::default();
    if let Some(methods) = data.get("methods").and_then(Value::as_array) {
        for method in methods {
            if let Some(card) = read_card(method, depth) {
                body.cards.push(card);
            }
        }
    }
    if let Some(orderings) = data.get("orderings").and_then(Value::as_object) {
        for edge in orderings.values() {
            if let Some([from, to]) = edge.as_array().map(Vec::as_slice)
                && let (Some(from), Some(to)) = (from.as_str(), to.as_str())
            {
                body.orderings.push((from.to_owned(), to.to_owned()));
            }
        }
    }
    body
}

fn read_card(method: &Value, depth: usize) -> Option<Card> {
    let object = method.as_object()?;
    let uuid = text_of(object.get("uuid"));
    if uuid.is_empty() {
        return None;
    }
    let address = Address::parse(&text_of(object.get("address")));
    let node = object.get("node");
    let model = node.and_then(|n| n.get("model"));
    let name = non_empty(text_of(node.and_then(|n| n.pointer("/data/name"))))
        .or_else(|| non_empty(text_of(model.and_then(|m| m.pointer("/metadata/name")))))
        .unwrap_or_else(|| address.action.clone());
    let inputs = read_ios(model.and_then(|m| m.pointer("/inputs/data")), depth);
    let outputs = read_ios(model.and_then(|m| m.pointer("/outputs/data")), depth);
    let mut pins = Vec::new();
    if let Some(map) = object.get("pins").and_then(Value::as_object) {
        for (output, targets) in map {
            let Some(targets) = targets.as_object() else {
                continue;
            };
            for (target, edges) in targets {
                for edge in edges.as_array().map(Vec::as_slice).unwrap_or_default() {
                    let input = text_of(edge.get("input"));
                    if input.is_empty() {
                        continue;
                    }
                    pins.push(Pin {
                        output: output.clone(),
                        target: target.clone(),
                        input,
                        convert: read_convert(edge.get("transform")),
                    });
                }
            }
        }
    }
    let mut branches = Vec::new();
    if let Some(map) = object.get("branches").and_then(Value::as_object) {
        for (head, value) in map {
            branches.push((head.clone(), value.as_bool() == Some(true)));
        }
    }
    let mut joins = Vec::new();
    if let Some(map) = object.get("joins").and_then(Value::as_object) {
        for (input, edges) in map {
            for edge in edges.as_array().map(Vec::as_slice).unwrap_or_default() {
                let output = text_of(edge.get("output"));
                if !output.is_empty() {
                    joins.push((input.clone(), output));
                }
            }
        }
    }
    let policy = model
        .and_then(|m| m.pointer("/policy/error"))
        .map(|error| Policy {
            retry: error
                .get("retry")
                .and_then(Value::as_u64)
                .and_then(|r| u32::try_from(r).ok()),
            delay_ms: error.get("delay").and_then(Value::as_u64),
            handler: error
                .get("flo")
                .and_then(Value::as_object)
                .filter(|_| depth < MAX_DEPTH)
                .map(|flo| read_body(flo, depth + 1)),
        })
        .unwrap_or_default();
    let comment = model
        .and_then(|m| m.get("comments"))
        .and_then(|c| c.get("markdown"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(Card {
        uuid,
        address,
        name,
        inputs,
        outputs,
        pins,
        branches,
        joins,
        policy,
        config: model
            .and_then(|m| m.get("config"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        comment,
    })
}

fn read_convert(transform: Option<&Value>) -> Option<Convert> {
    let map = transform?.as_object()?;
    let first = map.values().next()?;
    let kind = text_of(first.get("convert"));
    if kind.is_empty() {
        return None;
    }
    Some(Convert {
        kind,
        force_wrap: first.get("forceWrapArray").and_then(Value::as_bool) == Some(true),
    })
}

fn read_ios(data: Option<&Value>, depth: usize) -> Vec<Io> {
    let Some(map) = data.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut ios = Vec::new();
    for (key, io) in map {
        let Some(object) = io.as_object() else {
            continue;
        };
        let value = object.get("value");
        let ty = read_type(value.and_then(|v| v.get("type")), 0);
        let raw = value
            .and_then(|v| v.get("data"))
            .cloned()
            .unwrap_or(Value::Null);
        let subflow = (ty == IoType::Flo && depth < MAX_DEPTH)
            .then(|| raw.as_object().filter(|o| o.contains_key("methods")))
            .flatten()
            .map(|flo| read_body(flo, depth + 1));
        let data = if subflow.is_some() { Value::Null } else { raw };
        let proxy = value
            .and_then(|v| v.get("proxy"))
            .and_then(Value::as_object)
            .map(|p| Proxy {
                dynamic: p.get("dynamic").and_then(Value::as_bool) == Some(true),
                path: text_of(p.get("path")),
            });
        let metadata = object.get("metadata").cloned().unwrap_or(Value::Null);
        ios.push(Io {
            id: non_empty(text_of(object.get("id"))).unwrap_or_else(|| key.clone()),
            group: non_empty(text_of(object.get("group"))),
            key: text_of(object.get("key")),
            collection: value
                .and_then(|v| v.get("collection"))
                .and_then(Value::as_bool)
                == Some(true),
            ty,
            data,
            proxy,
            subflow,
            index: metadata.get("index").and_then(Value::as_i64).unwrap_or(0),
            metadata,
        });
    }
    ios.sort_by_key(|io| io.index);
    ios
}

fn read_type(ty: Option<&Value>, depth: usize) -> IoType {
    match ty {
        Some(Value::String(name)) => match name.as_str() {
            "string" => IoType::String,
            "number" => IoType::Number,
            "boolean" => IoType::Boolean,
            "Date" | "date" => IoType::Date,
            "object" => IoType::Object(Vec::new()),
            "flo" => IoType::Flo,
            "file" => IoType::File,
            other => IoType::Other(other.to_owned()),
        },
        Some(Value::Object(fields)) if depth < MAX_DEPTH => IoType::Object(
            fields
                .iter()
                .map(|(name, field)| {
                    (
                        name.clone(),
                        read_type(field.get("type"), depth + 1),
                        field.get("collection").and_then(Value::as_bool) == Some(true),
                    )
                })
                .collect(),
        ),
        Some(Value::Object(_)) => IoType::Object(Vec::new()),
        _ => IoType::Other(String::new()),
    }
}

fn read_table(key: &str, table: &Value) -> TableDef {
    let mut columns = Vec::new();
    if let Some(structure) = table.pointer("/data/structure").and_then(Value::as_array) {
        for column in structure {
            let name = text_of(column.get("name"));
            if !name.is_empty() {
                columns.push((name, text_of(column.get("type"))));
            }
        }
    }
    TableDef {
        id: non_empty(text_of(table.get("id"))).unwrap_or_else(|| key.to_owned()),
        name: text_of(table.get("name")),
        columns,
    }
}

/// A JSON value as text: strings as they are, numbers and booleans printed, anything else empty.
pub(crate) fn text_of(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn non_empty(text: String) -> Option<String> {
    (!text.trim().is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_channel_and_action() {
        let check = |raw: &str, kernel: bool, channel: &str, action: &str| {
            let address = Address::parse(raw);
            assert_eq!(
                (
                    address.kernel,
                    address.channel.as_str(),
                    address.action.as_str()
                ),
                (kernel, channel, action),
                "{raw}"
            );
        };
        check("root:kernel:control:0.0.1:if", true, "control", "if");
        check(
            "root:channels:http:okta:1.0.448:readUser",
            false,
            "okta",
            "readUser",
        );
        check(
            "root:channels:http:kandji_edae9b89cf1e4ca6a01a1ad6d985127b:0.267.0:searchDevices_MgiZyuVso",
            false,
            "kandji",
            "searchDevices",
        );
        check(
            "root:channels:http:marketo2_29:0.1.62:addLeadsToList",
            false,
            "marketo",
            "addLeadsToList",
        );
        check(
            "root:channels:http:openai:0.20.0:createChatCompletion_sE1HArGSjj",
            false,
            "openai",
            "createChatCompletion",
        );
        check(
            "root:channels:http:stash:0.7.148:searchRows2",
            false,
            "stash",
            "searchRows2",
        );
        check(
            "root:channels:http:auth0_293ca73ef2a04fe48eaa3bb7876df2e6:0.15.0:searchUsers_BAejT5bvR1Y",
            false,
            "auth0",
            "searchUsers",
        );
        check(
            "root:channels:http:jira2:0.3.217:issueUpdated",
            false,
            "jira2",
            "issueUpdated",
        );
        check("not an address", false, "", "");
    }

    #[test]
    fn connector_builder_field_keys_lose_their_suffix() {
        assert_eq!(normalise_key("model_KM1ZNJ"), "model");
        assert_eq!(normalise_key("relative_url_9KSKGU"), "relative_url");
        assert_eq!(
            normalise_key("Custom Search Criteria"),
            "Custom Search Criteria"
        );
        assert_eq!(normalise_key("shopify_customer_id"), "shopify_customer_id");
    }

    #[test]
    fn refuses_documents_that_are_not_flopacks() {
        let refused = |text: &str| match read(text) {
            Err(ImportError::NotJson { .. } | ImportError::NotFlopack(_)) => {}
            other => panic!("{text}: {other:?}"),
        };
        refused("");
        refused("not json");
        refused("[]");
        refused(r#"{"type": "flow"}"#);
        refused(r#"{"type": "flopack", "data": {}}"#);
        refused(r#"{"type": "flopack", "data": {"flos": []}}"#);
        assert!(read(r#"{"type": "flopack", "data": {"flos": {}}}"#).is_ok());
    }

    #[test]
    fn reads_cards_pins_and_inline_subflows() {
        let text = r#"{"type": "flopack", "version": "1.5.0", "data": {"flos": {"f1": {
            "id": "f1", "name": "Demo", "description": "",
            "data": {"scheduled": true, "security_level": null, "group": "g1",
              "cron": {"minutes": "0", "hours": "9", "dayOfTheMonth": "*", "month": "*", "dayOfTheWeek": "1", "timeZone": "Europe/Paris"},
              "orderings": {"e1": ["a", "b"], "bad": ["only-one"]},
              "methods": [
                {"uuid": "a", "address": "root:kernel:control:0.0.1:tryCatch", "node": {"data": {"name": "If Error"},
                  "model": {"inputs": {"data": {"i1": {"id": "i1", "key": "flo", "value": {"type": "flo",
                    "data": {"methods": [{"uuid": "c", "address": "root:kernel:control:0.0.1:return"}], "orderings": {}}}}}},
                    "outputs": {"data": {"o1": {"id": "o1", "key": "Message", "value": {"type": "string"}}}},
                    "policy": {"error": {"type": "handler", "retry": 3, "delay": 1000, "flo": {"methods": [], "orderings": {}}}}}},
                  "pins": {"o1": {"b": [{"input": "i2", "transform": {"o1": {"convert": "parse", "forceWrapArray": true}}}]}},
                  "branches": {}, "joins": {}},
                {"uuid": "b", "address": "root:kernel:control:0.0.1:let"},
                "garbage", {"no": "uuid"}
              ]}}},
            "tables": {"t1": {"id": "t1", "name": "Users", "data": {"structure": [{"name": "Login", "type": "str"}]}}},
            "configs": {"c1": {"id": "c1", "module": "okta", "name": "Okta", "data": null}},
            "groups": {"g1": {"id": "g1", "data": {"name": "Folder"}}}}}"#;
        let pack = read(text).expect("a flopack");
        assert_eq!(pack.version, "1.5.0");
        let flo = &pack.flows[0];
        assert!(flo.scheduled);
        assert_eq!(
            flo.cron.as_ref().map(|c| c.time_zone.as_str()),
            Some("Europe/Paris")
        );
        assert_eq!(flo.body.cards.len(), 2);
        assert_eq!(flo.body.orderings, vec![("a".to_owned(), "b".to_owned())]);
        let card = &flo.body.cards[0];
        assert_eq!(card.name, "If Error");
        assert_eq!(
            card.inputs[0].subflow.as_ref().map(|b| b.cards.len()),
            Some(1)
        );
        assert_eq!(card.policy.retry, Some(3));
        assert!(card.policy.handler.is_some());
        assert_eq!(
            card.pins[0].convert,
            Some(Convert {
                kind: "parse".into(),
                force_wrap: true
            })
        );
        assert_eq!(pack.tables[0].columns, vec![("Login".into(), "str".into())]);
        assert_eq!(pack.configs[0].module, "okta");
        assert_eq!(pack.groups.get("g1").map(String::as_str), Some("Folder"));
    }
}
