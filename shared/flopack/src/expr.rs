//! Expressions for card outputs, and the shapes that map Okta Workflows' flattened field names onto
//! the API objects idflow's cards return.
//!
//! Okta Workflows shows an Okta user as `ID`, `Status`, `First Name`, `Last Login`…; idflow's
//! `okta.read_user` returns the API object (`id`, `status`, `profile.firstName`, `lastLogin`). An
//! [`Out`] is a minijinja expression for an output plus its [`Shape`]: projecting `Last Login` out of
//! a user-shaped value yields `….lastLogin`, and using the whole value where Okta Workflows would
//! pass its flattened object builds that object (`{'ID': ….id, …}`) so a helper flow written against
//! Okta Workflows' field names still finds them.

use std::rc::Rc;

/// One step of a path inside a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    Index(i64),
}

impl Seg {
    /// A path segment from an Okta Workflows path part: digits index a list.
    pub fn parse(part: &str) -> Seg {
        match part.parse::<i64>() {
            Ok(index) if !part.starts_with('+') => Seg::Index(index),
            _ => Seg::Key(part.to_owned()),
        }
    }
}

/// Splits a dotted path (`profile.firstName`, `Target.0.id`) into segments.
pub fn path(dotted: &str) -> Vec<Seg> {
    if dotted.is_empty() {
        return Vec::new();
    }
    // Paths nest at most this deep; the rest stays one key (no export nests further, and a
    // hostile one must not make nesting unbounded).
    let mut parts = dotted.splitn(MAX_PATH, '.');
    let mut segs: Vec<Seg> = parts.by_ref().take(MAX_PATH - 1).map(Seg::parse).collect();
    if let Some(rest) = parts.next() {
        segs.push(Seg::Key(rest.to_owned()));
    }
    segs
}

/// The most segments a path has.
const MAX_PATH: usize = 32;

/// How a field of a record is reached from the record's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldRef {
    /// A path inside the value (empty: the value itself).
    Path(Vec<Seg>),
    /// An expression where `{}` stands for the value (such as selecting an event target by type).
    Expr(String),
    /// An expression that does not depend on the value (what idflow has no equivalent for).
    Const(String),
}

/// One field of a record: its Okta Workflows name and where it is in the API object.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub okta: String,
    pub to: FieldRef,
    /// Always present in the API object, so read strictly.
    pub required: bool,
    pub shape: Shape,
    /// idflow has no exact equivalent; reading it is an approximation.
    pub approximate: bool,
}

/// Where fields a record does not list are found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fallback {
    /// Under the same name.
    Same,
    /// Under `profile.` (custom attributes of Okta users).
    Profile,
    /// Under the name with a lower-case first letter (`Target` → `target`), an approximation.
    LowerFirst,
}

/// An object whose Okta Workflows field names differ from the API object's.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: &'static str,
    pub fields: Vec<Field>,
    pub fallback: Fallback,
}

/// What a value looks like, as far as renaming fields goes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Shape {
    /// Field names are the same in Okta Workflows and idflow.
    #[default]
    Plain,
    Record(Rc<Record>),
    List(Box<Shape>),
}

impl Shape {
    /// The shape of a list's items.
    pub fn item(&self) -> Shape {
        match self {
            Shape::List(inner) => (**inner).clone(),
            _ => Shape::Plain,
        }
    }

    pub fn list(self) -> Shape {
        Shape::List(Box::new(self))
    }
}

/// A card output (or a value derived from one): an expression, a path inside it, and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    /// A minijinja expression for the root value (`steps.read_user`, `input.event`, `item`).
    pub base: String,
    pub path: Vec<Seg>,
    /// The value may be absent: read it with `default(none)`, as Okta Workflows reads a missing
    /// field as empty.
    pub lenient: bool,
    pub shape: Shape,
    /// Okta Workflows sees this value as JSON text while idflow holds it parsed (an API endpoint's
    /// raw body): used whole it is written back to text, parsed it is used as is.
    pub json_text: bool,
    /// Reading this value is an approximation of what Okta Workflows gives.
    pub approximate: bool,
    /// What differs, reported on the flow that reads the value.
    pub note: Option<String>,
}

impl Out {
    /// An expression with no path.
    pub fn new(base: impl Into<String>) -> Out {
        Out {
            base: base.into(),
            path: Vec::new(),
            lenient: false,
            shape: Shape::Plain,
            json_text: false,
            approximate: false,
            note: None,
        }
    }

    /// A step's output (`steps.<id>`).
    pub fn step(id: &str) -> Out {
        Out::new(format!("steps.{id}"))
    }

    pub fn shaped(mut self, shape: Shape) -> Out {
        self.shape = shape;
        self
    }

    pub fn at(mut self, dotted: &str) -> Out {
        self.path.extend(path(dotted));
        self
    }

    pub fn lenient(mut self) -> Out {
        self.lenient = true;
        self
    }

    pub fn approximate(mut self) -> Out {
        self.approximate = true;
        self
    }

    /// A constant expression (for outputs idflow cannot give).
    pub fn constant(expression: &str) -> Out {
        Out::new(expression).approximate()
    }

    /// An output idflow has no equivalent for: it reads as empty, and a flow that reads it is
    /// approximate for the reason given.
    pub fn missing(note: &str) -> Out {
        let mut out = Out::constant("none");
        out.note = Some(note.to_owned());
        out
    }

    /// The value of the field `key` (an Okta Workflows name) inside this value.
    pub fn project(&self, key: &str) -> Out {
        match &self.shape {
            Shape::Record(record) => {
                if let Some(field) = record.fields.iter().find(|f| f.okta == key) {
                    let mut out = match &field.to {
                        FieldRef::Path(segs) => {
                            let mut out = self.clone();
                            out.path.extend(segs.iter().cloned());
                            out
                        }
                        FieldRef::Expr(template) => {
                            let mut out = Out::new(template.replace("{}", &self.strict()));
                            out.lenient = self.lenient;
                            out.approximate = self.approximate;
                            out
                        }
                        FieldRef::Const(expression) => Out::new(expression.clone()),
                    };
                    out.shape = field.shape.clone();
                    out.lenient = out.lenient || !field.required;
                    out.approximate = out.approximate || field.approximate;
                    out.json_text = false;
                    return out;
                }
                let mut out = self.clone();
                out.shape = Shape::Plain;
                out.json_text = false;
                out.lenient = true;
                match record.fallback {
                    Fallback::Same => out.path.push(Seg::parse(key)),
                    Fallback::Profile => {
                        out.path.push(Seg::Key("profile".into()));
                        out.path.push(Seg::Key(key.to_owned()));
                    }
                    Fallback::LowerFirst => {
                        out.path.push(Seg::parse(&lower_first(key)));
                        out.approximate = true;
                    }
                }
                out
            }
            Shape::List(inner) => {
                let mut out = self.clone();
                out.path.push(Seg::parse(key));
                out.shape = if matches!(Seg::parse(key), Seg::Index(_)) {
                    (**inner).clone()
                } else {
                    Shape::Plain
                };
                out.lenient = true;
                out.json_text = false;
                out
            }
            Shape::Plain => {
                let mut out = self.clone();
                out.path.push(Seg::parse(key));
                out.lenient = true;
                out.json_text = false;
                out
            }
        }
    }

    /// The value at an Okta Workflows dotted path (`profile.firstName`, `Target.0.id`).
    pub fn project_path(&self, dotted: &str) -> Out {
        let mut out = self.clone();
        if dotted.is_empty() {
            return out;
        }
        for part in dotted.split('.') {
            out = out.project(part);
        }
        out
    }

    /// The expression, without `default(none)`: for use as the base of further access.
    pub fn strict(&self) -> String {
        let mut text = self.base.clone();
        for seg in &self.path {
            push_seg(&mut text, seg);
        }
        text
    }

    /// The expression for the value as Okta Workflows holds it at this point (parsed or raw).
    /// Records used whole are rebuilt with their Okta Workflows field names; lists of records
    /// cannot be rebuilt in one expression and come back as [`Whole::NeedsList`].
    pub fn whole(&self) -> Whole {
        let base = self.read();
        if self.json_text {
            return Whole::Expr(format!("({base} | tojson)"));
        }
        match &self.shape {
            Shape::Plain => Whole::Expr(base),
            Shape::Record(record) => Whole::Expr(rebuild(record, &base)),
            Shape::List(inner) => match &**inner {
                Shape::Record(record) => Whole::NeedsList {
                    list: base,
                    item: rebuild(record, "item"),
                },
                _ => Whole::Expr(base),
            },
        }
    }

    /// The expression of the value itself (parsed), with `default(none)` when it may be absent.
    pub fn read(&self) -> String {
        let text = self.strict();
        if self.lenient && (!self.path.is_empty() || self.base.contains('|')) {
            format!("({text} | default(none))")
        } else {
            text
        }
    }

    /// Applies a pin's type conversion.
    pub fn convert(&self, kind: &str, force_wrap: bool) -> Out {
        let mut out = self.clone();
        match kind {
            "parse" => {
                if out.json_text {
                    out.json_text = false;
                } else {
                    out = Out::new(format!("({} | fromjson)", self.read()));
                }
                if force_wrap {
                    let value = out.read();
                    out = Out::new(format!(
                        "({value} if {value} is sequence and {value} is not string else [{value}])"
                    ));
                }
            }
            "stringify" => out = Out::new(format!("({} | tojson)", self.plain_whole())),
            "wrapArray" => out = Out::new(format!("[{}]", self.plain_whole())),
            "parseFloat" => out = Out::new(format!("({} | float)", self.read())),
            "toString" => out = Out::new(format!("({} | string)", self.read())),
            // Dates are RFC 3339 text on both sides.
            "dateTime" | "isoString" => {}
            _ => out.approximate = true,
        }
        out.approximate = out.approximate || self.approximate;
        out
    }

    /// [`Out::whole`] where a list of records is used as it is (an approximation).
    fn plain_whole(&self) -> String {
        match self.whole() {
            Whole::Expr(text) => text,
            Whole::NeedsList { list, .. } => list,
        }
    }
}

/// An expression for a whole value, or what a `list.map` step must build first.
#[derive(Debug, Clone, PartialEq)]
pub enum Whole {
    Expr(String),
    /// A list of records: `list.map` over `list` with expression `item` gives the Okta Workflows
    /// shape.
    NeedsList {
        list: String,
        item: String,
    },
}

/// Rebuilds a record with its Okta Workflows field names, as one expression.
fn rebuild(record: &Record, base: &str) -> String {
    let value = Out {
        base: base.to_owned(),
        path: Vec::new(),
        lenient: false,
        shape: Shape::Record(Rc::new(record.clone())),
        json_text: false,
        approximate: false,
        note: None,
    };
    let parts: Vec<String> = record
        .fields
        .iter()
        .map(|field| {
            let inner = value.project(&field.okta);
            let text = match inner.whole() {
                Whole::Expr(text) => text,
                Whole::NeedsList { list, .. } => list,
            };
            format!("{}: {}", string_literal(&field.okta), text)
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Words minijinja reads as keywords, so they cannot follow a `.`.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None",
    "loop", "self",
];

fn push_seg(text: &mut String, seg: &Seg) {
    match seg {
        Seg::Key(key) if is_identifier(key) && !KEYWORDS.contains(&key.as_str()) => {
            text.push('.');
            text.push_str(key);
        }
        Seg::Key(key) => {
            text.push('[');
            text.push_str(&string_literal(key));
            text.push(']');
        }
        Seg::Index(index) => {
            text.push('[');
            text.push_str(&index.to_string());
            text.push(']');
        }
    }
}

/// Whether `text` can be written after a `.` in an expression.
pub fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A minijinja string literal.
pub fn string_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A JSON value as a minijinja literal expression.
pub fn literal(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => string_literal(s),
        serde_json::Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(literal).collect();
            format!("[{}]", parts.join(", "))
        }
        serde_json::Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", string_literal(k), literal(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Builders of the records idflow's cards and triggers return.
pub mod records {
    use super::*;

    fn field(okta: &str, to: &str, required: bool, shape: Shape) -> Field {
        Field {
            okta: okta.to_owned(),
            to: FieldRef::Path(path(to)),
            required,
            shape,
            approximate: false,
        }
    }

    fn plain(okta: &str, to: &str) -> Field {
        field(okta, to, false, Shape::Plain)
    }

    fn required(okta: &str, to: &str) -> Field {
        field(okta, to, true, Shape::Plain)
    }

    fn expr(okta: &str, template: &str, shape: Shape) -> Field {
        Field {
            okta: okta.to_owned(),
            to: FieldRef::Expr(template.to_owned()),
            required: false,
            shape,
            approximate: false,
        }
    }

    /// A field idflow has no equivalent for.
    fn missing(okta: &str) -> Field {
        Field {
            okta: okta.to_owned(),
            to: FieldRef::Const("none".into()),
            required: false,
            shape: Shape::Plain,
            approximate: true,
        }
    }

    fn record(name: &'static str, fields: Vec<Field>, fallback: Fallback) -> Shape {
        Shape::Record(Rc::new(Record {
            name,
            fields,
            fallback,
        }))
    }

    /// An Okta user as Okta Workflows shows it (read, create and list cards, streamed records).
    pub fn user() -> Shape {
        record(
            "user",
            vec![
                required("ID", "id"),
                required("Status", "status"),
                plain("Created", "created"),
                plain("Activated", "activated"),
                plain("Status Changed", "statusChanged"),
                plain("Last Login", "lastLogin"),
                plain("Last Updated", "lastUpdated"),
                plain("Password Changed", "passwordChanged"),
                field("Credentials", "credentials", false, credentials()),
                plain("First Name", "profile.firstName"),
                plain("Last Name", "profile.lastName"),
                plain("Mobile Phone", "profile.mobilePhone"),
                plain("Second Email", "profile.secondEmail"),
                plain("Login", "profile.login"),
                plain("Email", "profile.email"),
                plain("Profile", "profile"),
                required("Raw Output", ""),
                required("Raw Body", ""),
            ],
            Fallback::Profile,
        )
    }

    /// A user's `credentials`.
    pub fn credentials() -> Shape {
        record(
            "credentials",
            vec![
                plain("Emails", "emails"),
                plain("Password", "password"),
                plain("Recovery Question", "recovery_question"),
                field(
                    "Provider",
                    "provider",
                    false,
                    record(
                        "provider",
                        vec![plain("Name", "name"), plain("Type", "type")],
                        Fallback::LowerFirst,
                    ),
                ),
            ],
            Fallback::LowerFirst,
        )
    }

    /// An Okta group.
    pub fn group() -> Shape {
        record(
            "group",
            vec![
                required("ID", "id"),
                plain("Created", "created"),
                plain("Last Updated", "lastUpdated"),
                plain("Last Membership Updated", "lastMembershipUpdated"),
                plain("Object Class", "objectClass"),
                plain("Type", "type"),
                field(
                    "Profile",
                    "profile",
                    false,
                    record(
                        "group profile",
                        vec![plain("Name", "name"), plain("Description", "description")],
                        Fallback::Same,
                    ),
                ),
                plain("Name", "profile.name"),
                plain("Description", "profile.description"),
                required("Raw Object", ""),
                required("Raw Output", ""),
            ],
            Fallback::LowerFirst,
        )
    }

    /// A System Log actor or target.
    pub fn actor() -> Shape {
        record(
            "actor",
            vec![
                plain("ID", "id"),
                plain("Alternate ID", "alternateId"),
                plain("Display Name", "displayName"),
                plain("Type", "type"),
                plain("Detail Entry", "detailEntry"),
            ],
            Fallback::LowerFirst,
        )
    }

    /// The first target of an event with this type.
    fn target(okta: &str, kind: &str) -> Field {
        expr(
            okta,
            &format!("({{}}.event.target | selectattr('type', 'eq', '{kind}') | first)"),
            actor(),
        )
    }

    /// What an Okta event card gives a flow (its `Output` object), read from an idflow event
    /// run's input (`input.event`, `input.delivery`).
    pub fn event() -> Shape {
        record(
            "event",
            vec![
                plain("Date and Time", "event.published"),
                plain("Message", "event.displayMessage"),
                plain("Event ID", "delivery.eventId"),
                plain("Event Type", "event.eventType"),
                plain("Event Time", "delivery.eventTime"),
                plain("Version", "event.version"),
                plain("UUID", "event.uuid"),
                field("Admin", "event.actor", false, actor()),
                field("Actor", "event.actor", false, actor()),
                target("Okta User", "User"),
                target("User", "User"),
                target("Group", "UserGroup"),
                target("App", "AppInstance"),
                target("Application", "AppInstance"),
                plain("Full Details", "event"),
                plain("Event Details", "event"),
                field(
                    "Debug Context",
                    "event.debugContext",
                    false,
                    record(
                        "debug context",
                        vec![plain("Debug Data", "debugData")],
                        Fallback::LowerFirst,
                    ),
                ),
                plain("Reason", "event.outcome.reason"),
                plain("Outcome", "event.outcome"),
                plain("Client", "event.client"),
                plain("Source", "delivery.source"),
                plain(
                    "Changed Attributes",
                    "event.debugContext.debugData.changedAttributes",
                ),
                plain("Authentication Context", "event.authenticationContext"),
                plain("Security Context", "event.securityContext"),
                plain("Legacy Event Type", "event.legacyEventType"),
                plain("Result", "event.outcome.result"),
                plain("Severity", "event.severity"),
                plain("Transaction", "event.transaction"),
                plain("User ID", "event.actor.id"),
                plain("Email", "event.actor.alternateId"),
                plain("Name", "event.actor.displayName"),
                Field {
                    approximate: true,
                    ..plain(
                        "Suspicious Activity Details",
                        "event.debugContext.debugData",
                    )
                },
                missing("Headers"),
            ],
            Fallback::LowerFirst,
        )
    }

    /// A System Log event as Okta Workflows streams it (`Target`, `Actor`, … capitalised).
    pub fn log_event() -> Shape {
        record(
            "System Log event",
            vec![
                plain("UUID", "uuid"),
                plain("Published", "published"),
                plain("Event Type", "eventType"),
                plain("Display Message", "displayMessage"),
                plain("Debug Context", "debugContext"),
            ],
            Fallback::LowerFirst,
        )
    }

    /// A table row from `table.search_rows` (`{ key, version, row }`), with the Okta column names
    /// mapped to idflow's column names.
    pub fn row(columns: &[(String, String)]) -> Shape {
        let mut fields = vec![required("Row ID", "key")];
        fields.push(missing("Created"));
        fields.push(missing("Updated"));
        for (okta, column) in columns {
            fields.push(Field {
                okta: okta.clone(),
                to: FieldRef::Path(vec![Seg::Key("row".into()), Seg::Key(column.clone())]),
                required: false,
                shape: Shape::Plain,
                approximate: false,
            });
        }
        record("table row", fields, Fallback::Same)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expression: &str, ctx: serde_json::Value) -> serde_json::Value {
        let ctx = domain::template::to_value(&ctx);
        domain::template::eval_expression(expression, &ctx)
            .unwrap_or_else(|e| panic!("{expression}: {e:?}"))
    }

    #[test]
    fn projects_okta_names_onto_api_fields() {
        let user = Out::step("read").shaped(records::user());
        assert_eq!(user.project("ID").read(), "steps.read.id");
        assert_eq!(
            user.project("Last Login").read(),
            "(steps.read.lastLogin | default(none))"
        );
        assert_eq!(
            user.project("costCenter").read(),
            "(steps.read.profile.costCenter | default(none))"
        );
        assert_eq!(
            user.project("Credentials")
                .project("Provider")
                .project("Type")
                .read(),
            "(steps.read.credentials.provider.type | default(none))"
        );
        let row =
            Out::new("item").shaped(records::row(&[("First Name".into(), "first_name".into())]));
        assert_eq!(row.project("Row ID").read(), "item.key");
        assert_eq!(
            row.project("First Name").read(),
            "(item.row.first_name | default(none))"
        );
        let plain = Out::step("x");
        assert_eq!(
            plain.project_path("Target.0.id").read(),
            "(steps.x.Target[0].id | default(none))"
        );
        assert_eq!(
            plain.project("Last Login").read(),
            "(steps.x['Last Login'] | default(none))"
        );
        assert_eq!(
            plain.project("in").read(),
            "(steps.x['in'] | default(none))"
        );
    }

    #[test]
    fn event_fields_read_what_an_idflow_event_run_holds() {
        let input = json!({
            "input": {
                "event": {
                    "uuid": "u1", "eventType": "group.user_membership.add", "published": "2024-01-01T00:00:00Z",
                    "actor": {"id": "00uA", "alternateId": "admin@example.com", "displayName": "Admin", "type": "User"},
                    "target": [
                        {"id": "00uB", "alternateId": "ada@example.com", "displayName": "Ada", "type": "User"},
                        {"id": "00gC", "alternateId": "unknown", "displayName": "Builders", "type": "UserGroup"}
                    ],
                    "outcome": {"result": "SUCCESS", "reason": null}
                },
                "delivery": {"eventId": "d1", "source": "https://example.okta.com/api/v1/eventHooks/x"}
            }
        });
        let event = Out::new("input").shaped(records::event());
        let check = |out: Out, expected: serde_json::Value| {
            assert_eq!(eval(&out.read(), input.clone()), expected, "{}", out.read());
        };
        check(event.project("Okta User").project("ID"), json!("00uB"));
        check(
            event.project("Group").project("Display Name"),
            json!("Builders"),
        );
        check(
            event.project("Admin").project("Alternate ID"),
            json!("admin@example.com"),
        );
        check(event.project("Event ID"), json!("d1"));
        check(
            event.project("Event Type"),
            json!("group.user_membership.add"),
        );
        check(event.project("App").project("ID"), json!(null));
        check(
            event
                .project("Event Details")
                .project_path("outcome.result"),
            json!("SUCCESS"),
        );
        let Whole::Expr(whole) = event.project("Okta User").whole() else {
            panic!("a record is one expression");
        };
        assert_eq!(
            eval(&whole, input.clone()),
            json!({"ID": "00uB", "Alternate ID": "ada@example.com", "Display Name": "Ada", "Type": "User", "Detail Entry": null})
        );
    }

    #[test]
    fn conversions_match_okta_workflows() {
        let ctx = json!({"input": {"body": {"a": 1}}, "steps": {"t": "{\"x\": [1]}", "n": "2.5", "s": "x"}});
        let raw = Out {
            json_text: true,
            ..Out::new("input.body")
        };
        let Whole::Expr(text) = raw.whole() else {
            panic!()
        };
        assert_eq!(eval(&text, ctx.clone()), json!("{\"a\":1}"));
        assert_eq!(
            eval(&raw.convert("parse", false).read(), ctx.clone()),
            json!({"a": 1})
        );
        assert_eq!(
            eval(&Out::step("t").convert("parse", false).read(), ctx.clone()),
            json!({"x": [1]})
        );
        assert_eq!(
            eval(
                &Out::step("n").convert("parseFloat", false).read(),
                ctx.clone()
            ),
            json!(2.5)
        );
        assert_eq!(
            eval(
                &Out::step("s").convert("wrapArray", false).read(),
                ctx.clone()
            ),
            json!(["x"])
        );
        assert_eq!(
            eval(
                &Out::step("s").convert("parse", true).read(),
                json!({"steps": {"s": "\"x\""}})
            ),
            json!(["x"])
        );
        assert_eq!(
            eval(
                &literal(&json!({"a b": [1, "it's", null, true]})),
                json!({})
            ),
            json!({"a b": [1, "it's", null, true]})
        );
    }
}
