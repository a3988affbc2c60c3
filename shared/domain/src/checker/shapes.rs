//! The shapes of step outputs and event inputs the checker knows, so a misspelt field below them
//! (`steps.user.profile.emial`) is found before a run.
//!
//! Okta's objects are written here from Okta's published OpenAPI schemas (`User`, `UserProfile`,
//! `Group`, `OktaUserGroupProfile`, `LogEvent` and its parts, `AppUser`, and the governance API's
//! access requests, `request-full`, `request-full-2`, `request-sparse`, `request-sparse-2` and their
//! parts); `tests/checker.rs` compares them with the specs when those are present. A shape is
//! *closed* where the schema lists every property and *open* where Okta takes custom ones (user and
//! group profiles, `debugContext.debugData`): there a field outside the list is fine, and only one
//! a typo away from a listed field is suspicious.
//!
//! The other cards' outputs are written from their definitions (the `output` of each card spec and
//! the function or executor that builds it): text, numbers and booleans have no fields; fixed
//! objects (`http.request`'s `{ status, headers, body }`, `table.read_row`'s `{ key, version, row }`,
//! `text.regex_match`, Slack and email results) are closed; and where a card returns what the
//! caller gave it (`json.parse`, `object.merge`, `list.first`, an HTTP body, a table row whose table
//! is not known) the shape is [`Shape::Any`]. Everything the checker finds here is a warning: a
//! shape describes what is documented, and an org can hold more.

use serde_json::Value;

use crate::model::ProjectConfig;
use crate::tables::TableSchema;

/// What a value looks like.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Anything: nothing is checked below.
    Any,
    /// Text, a number or a boolean: it has no fields.
    Scalar(&'static str),
    /// A list of items of one shape.
    List(Box<Shape>),
    /// An object with these fields; `open` when it may have others.
    Object {
        /// How a message names it: "an Okta user".
        name: &'static str,
        fields: Vec<(String, Shape)>,
        open: bool,
    },
}

fn object(name: &'static str, open: bool, fields: &[(&str, Shape)]) -> Shape {
    Shape::Object {
        name,
        fields: fields
            .iter()
            .map(|(key, shape)| ((*key).to_owned(), shape.clone()))
            .collect(),
        open,
    }
}

fn any_fields(name: &'static str, open: bool, keys: &[&str]) -> Shape {
    let fields: Vec<(&str, Shape)> = keys.iter().map(|k| (*k, Shape::Any)).collect();
    object(name, open, &fields)
}

/// The properties of Okta's `UserProfile` (open: orgs add custom attributes).
pub const USER_PROFILE_FIELDS: &[&str] = &[
    "city",
    "costCenter",
    "countryCode",
    "department",
    "displayName",
    "division",
    "email",
    "employeeNumber",
    "firstName",
    "honorificPrefix",
    "honorificSuffix",
    "lastName",
    "locale",
    "login",
    "manager",
    "managerId",
    "middleName",
    "mobilePhone",
    "nickName",
    "organization",
    "postalAddress",
    "preferredLanguage",
    "primaryPhone",
    "profileUrl",
    "secondEmail",
    "state",
    "streetAddress",
    "timezone",
    "title",
    "userType",
    "zipCode",
];

/// The properties of Okta's `User` (closed).
pub const USER_FIELDS: &[&str] = &[
    "activated",
    "created",
    "credentials",
    "id",
    "lastLogin",
    "lastUpdated",
    "passwordChanged",
    "profile",
    "realmId",
    "status",
    "statusChanged",
    "transitioningToStatus",
    "type",
    "_embedded",
    "_links",
];

/// The properties of Okta's `Group` (closed).
pub const GROUP_FIELDS: &[&str] = &[
    "created",
    "id",
    "lastMembershipUpdated",
    "lastUpdated",
    "objectClass",
    "profile",
    "type",
    "_embedded",
    "_links",
];

/// The properties of Okta's `OktaUserGroupProfile` (open: groups take custom attributes too).
pub const GROUP_PROFILE_FIELDS: &[&str] = &["description", "name"];

/// The properties of Okta's `LogEvent` (closed).
pub const LOG_EVENT_FIELDS: &[&str] = &[
    "actor",
    "authenticationContext",
    "client",
    "debugContext",
    "displayMessage",
    "eventType",
    "legacyEventType",
    "outcome",
    "published",
    "request",
    "securityContext",
    "severity",
    "target",
    "transaction",
    "uuid",
    "version",
];

/// `LogActor` and `LogTarget` (closed).
pub const LOG_ACTOR_FIELDS: &[&str] = &["alternateId", "detailEntry", "displayName", "id", "type"];
pub const LOG_TARGET_FIELDS: &[&str] = &[
    "alternateId",
    "changeDetails",
    "detailEntry",
    "displayName",
    "id",
    "type",
];
/// `LogOutcome` and `LogClient` (closed).
pub const LOG_OUTCOME_FIELDS: &[&str] = &["reason", "result"];
pub const LOG_CLIENT_FIELDS: &[&str] = &[
    "device",
    "geographicalContext",
    "id",
    "ipAddress",
    "userAgent",
    "zone",
];

/// The properties of Okta's `AppUser`, what `okta.assign_user_to_app` returns (closed; its
/// `profile` takes the app's own attributes).
pub const APP_USER_FIELDS: &[&str] = &[
    "created",
    "credentials",
    "externalId",
    "id",
    "lastSync",
    "lastUpdated",
    "passwordChanged",
    "profile",
    "scope",
    "status",
    "statusChanged",
    "syncState",
    "_embedded",
    "_links",
];

/// The properties of a v1 access request as `oig.get_request` reads it (governance
/// `request-full`, the union of its `ACCESS_REQUEST` and `CUSTOM` variants; closed).
pub const ACCESS_REQUEST_V1_FIELDS: &[&str] = &[
    "actions",
    "approvals",
    "created",
    "createdBy",
    "id",
    "lastUpdated",
    "lastUpdatedBy",
    "permalinkId",
    "requestStatus",
    "requestTypeId",
    "requesterFieldValues",
    "requesterUserIds",
    "resolved",
    "subject",
    "type",
    "_links",
];

/// The properties of a v2 access request (request of a request condition) as `oig.get_request`
/// reads it (governance `request-full-2`; closed).
pub const ACCESS_REQUEST_V2_FIELDS: &[&str] = &[
    "accessDuration",
    "created",
    "createdBy",
    "grantStatus",
    "granted",
    "id",
    "lastUpdated",
    "lastUpdatedBy",
    "requestApproval",
    "requested",
    "requestedBy",
    "requestedFor",
    "requesterFieldValues",
    "resolved",
    "revocationScheduled",
    "revocationStatus",
    "revoked",
    "riskAssessment",
    "status",
    "_links",
];

/// The properties of a v1 access request in a listing, `oig.list_requests` (governance
/// `request-sparse`; closed).
pub const ACCESS_REQUEST_V1_LISTED_FIELDS: &[&str] = &[
    "created",
    "createdBy",
    "id",
    "lastUpdated",
    "lastUpdatedBy",
    "permalinkId",
    "requestStatus",
    "requestTypeId",
    "requesterUserIds",
    "resolved",
    "subject",
    "type",
    "_links",
];

/// The properties of a v2 access request in a listing, `oig.list_requests` with `version: v2`
/// (governance `request-sparse-2`; closed).
pub const ACCESS_REQUEST_V2_LISTED_FIELDS: &[&str] = &[
    "created",
    "createdBy",
    "grantStatus",
    "granted",
    "id",
    "lastUpdated",
    "lastUpdatedBy",
    "requested",
    "requestedBy",
    "requestedFor",
    "resolved",
    "revocationStatus",
    "revoked",
    "status",
    "_links",
];

/// Who a v2 request is by or for (governance `target-principal`; closed).
pub const REQUEST_PRINCIPAL_FIELDS: &[&str] = &["externalId", "type"];

/// What a v2 request asks for (governance `requested`; closed).
pub const REQUESTED_FIELDS: &[&str] = &[
    "accessScopeId",
    "accessScopeType",
    "entryId",
    "resourceId",
    "resourceType",
];

const TEXT: Shape = Shape::Scalar("text");
const NUMBER: Shape = Shape::Scalar("a number");
const BOOLEAN: Shape = Shape::Scalar("a boolean");

/// An Okta app user: a user's assignment to an app.
pub fn app_user() -> Shape {
    let mut fields: Vec<(&str, Shape)> = APP_USER_FIELDS.iter().map(|k| (*k, Shape::Any)).collect();
    for (key, shape) in &mut fields {
        if matches!(*key, "id" | "status" | "scope" | "externalId") {
            *shape = TEXT;
        }
    }
    object("an Okta app user", false, &fields)
}

/// Which governance API an access request comes from, when the flow says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestVersion {
    V1,
    V2,
    /// The id or version is computed at run time: either.
    Either,
}

/// An access request as `oig.get_request` (`listed: false`) or `oig.list_requests` (`listed:
/// true`) returns it.
pub fn access_request(version: RequestVersion, listed: bool) -> Shape {
    let (v1, v2) = if listed {
        (
            ACCESS_REQUEST_V1_LISTED_FIELDS,
            ACCESS_REQUEST_V2_LISTED_FIELDS,
        )
    } else {
        (ACCESS_REQUEST_V1_FIELDS, ACCESS_REQUEST_V2_FIELDS)
    };
    let mut keys: Vec<&str> = match version {
        RequestVersion::V1 => v1.to_vec(),
        RequestVersion::V2 => v2.to_vec(),
        RequestVersion::Either => v1.iter().chain(v2).copied().collect(),
    };
    keys.sort_unstable();
    keys.dedup();
    let fields: Vec<(&str, Shape)> = keys
        .iter()
        .map(|key| {
            let shape = match *key {
                "id" | "subject" | "requestStatus" | "status" | "grantStatus" | "created"
                | "resolved" => TEXT,
                "requestedBy" | "requestedFor" => {
                    any_fields("a request principal", false, REQUEST_PRINCIPAL_FIELDS)
                }
                "requested" => any_fields("a requested resource", false, REQUESTED_FIELDS),
                _ => Shape::Any,
            };
            (*key, shape)
        })
        .collect();
    let name = match version {
        RequestVersion::V1 => "a v1 access request",
        RequestVersion::V2 => "a v2 access request",
        RequestVersion::Either => "an access request",
    };
    object(name, false, &fields)
}

/// The version of the access request `id` names: v1 ids are 24 hexadecimal characters, v2 ids
/// `req` and 17 letters or digits (as the `oig` executor tells them apart).
fn request_version_of_id(id: &str) -> RequestVersion {
    let id = id.trim();
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        RequestVersion::V1
    } else if id.len() == 20
        && id.starts_with("req")
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        RequestVersion::V2
    } else {
        RequestVersion::Either
    }
}

/// `{ status, headers, body }` of `http.request` and `okta.api`: the body is whatever the
/// server answered, the headers whatever it sent.
fn http_response(card: &'static str) -> Shape {
    object(
        card,
        false,
        &[
            ("status", NUMBER),
            ("headers", Shape::Any),
            ("body", Shape::Any),
        ],
    )
}

/// `{ key, version, row }` of a table row; `row` is closed over the table's columns when the
/// project declares the table, and open otherwise.
fn table_row(table: Option<TableSchema>) -> Shape {
    let row = match table {
        Some(table) => Shape::Object {
            name: "a table row",
            fields: table
                .columns
                .iter()
                .map(|column| (column.name.clone(), Shape::Any))
                .collect(),
            open: false,
        },
        None => Shape::Any,
    };
    object(
        "a table row's output",
        false,
        &[("key", Shape::Any), ("version", NUMBER), ("row", row)],
    )
}

/// An Okta user.
pub fn okta_user() -> Shape {
    let mut fields: Vec<(&str, Shape)> = USER_FIELDS.iter().map(|k| (*k, Shape::Any)).collect();
    for (key, shape) in &mut fields {
        match *key {
            "profile" => *shape = any_fields("an Okta user profile", true, USER_PROFILE_FIELDS),
            "id" | "status" => *shape = Shape::Scalar("text"),
            _ => {}
        }
    }
    object("an Okta user", false, &fields)
}

/// An Okta group.
pub fn okta_group() -> Shape {
    let mut fields: Vec<(&str, Shape)> = GROUP_FIELDS.iter().map(|k| (*k, Shape::Any)).collect();
    for (key, shape) in &mut fields {
        match *key {
            "profile" => *shape = any_fields("an Okta group profile", true, GROUP_PROFILE_FIELDS),
            "id" => *shape = Shape::Scalar("text"),
            _ => {}
        }
    }
    object("an Okta group", false, &fields)
}

/// An Okta System Log event (also what an event hook delivers).
pub fn log_event() -> Shape {
    let mut fields: Vec<(&str, Shape)> =
        LOG_EVENT_FIELDS.iter().map(|k| (*k, Shape::Any)).collect();
    for (key, shape) in &mut fields {
        *shape = match *key {
            "actor" => any_fields("a System Log actor", false, LOG_ACTOR_FIELDS),
            "target" => Shape::List(Box::new(any_fields(
                "a System Log target",
                false,
                LOG_TARGET_FIELDS,
            ))),
            "outcome" => any_fields("a System Log outcome", false, LOG_OUTCOME_FIELDS),
            "client" => any_fields("a System Log client", false, LOG_CLIENT_FIELDS),
            "debugContext" => object(
                "a System Log debug context",
                false,
                &[("debugData", Shape::Any)],
            ),
            "eventType" | "uuid" | "published" | "displayMessage" | "severity" => {
                Shape::Scalar("text")
            }
            _ => Shape::Any,
        };
    }
    object("a System Log event", false, &fields)
}

/// The output shape of a card step, from its card and `with:`. `None` when unknown.
pub fn card_output(card: &str, with: &Value) -> Option<Shape> {
    card_output_in(card, with, None)
}

/// The output shape of a card step, from its card, `with:` and, when it loaded, the project config
/// (a `table.*` row is closed over the columns of a table the project declares).
pub fn card_output_in(card: &str, with: &Value, project: Option<&ProjectConfig>) -> Option<Shape> {
    let streaming = with.get("stream").is_some_and(|s| !s.is_null());
    let literal = |field: &str| {
        with.get(field)
            .and_then(Value::as_str)
            .filter(|text| !["{{", "{%", "{#"].iter().any(|tag| text.contains(tag)))
    };
    let empty = |name: &'static str| object(name, false, &[]);
    let shape = match card {
        "okta.read_user" | "okta.create_user" | "okta.update_user" => okta_user(),
        "okta.find_users" | "okta.list_group_members" if !streaming => {
            Shape::List(Box::new(okta_user()))
        }
        "okta.list_user_groups" => Shape::List(Box::new(okta_group())),
        "okta.search_system_log" if !streaming => Shape::List(Box::new(log_event())),
        "okta.assign_user_to_app" => app_user(),
        "okta.api" => http_response("the `okta.api` output"),
        "okta.activate_user" => object(
            "the `okta.activate_user` output",
            false,
            &[("activationUrl", TEXT), ("activationToken", TEXT)],
        ),
        "okta.deactivate_user" => empty("the `okta.deactivate_user` output"),
        "okta.suspend_user" => empty("the `okta.suspend_user` output"),
        "okta.unsuspend_user" => empty("the `okta.unsuspend_user` output"),
        "okta.add_user_to_group" => empty("the `okta.add_user_to_group` output"),
        "okta.remove_user_from_group" => empty("the `okta.remove_user_from_group` output"),
        "oig.get_request" => access_request(
            literal("request").map_or(RequestVersion::Either, request_version_of_id),
            false,
        ),
        "oig.list_requests" => {
            let version = match with.get("version") {
                None | Some(Value::Null) => RequestVersion::V1,
                Some(_) => match literal("version").map(str::trim) {
                    Some("v1") => RequestVersion::V1,
                    Some("v2") => RequestVersion::V2,
                    _ => RequestVersion::Either,
                },
            };
            Shape::List(Box::new(access_request(version, true)))
        }
        "oig.create_request_message" => empty("the `oig.create_request_message` output"),
        "http.request" => http_response("the `http.request` output"),
        "slack.post_message" => object(
            "the `slack.post_message` output",
            false,
            &[("ok", BOOLEAN), ("channel", TEXT), ("ts", TEXT)],
        ),
        "email.send" => object(
            "the `email.send` output",
            false,
            &[("message_id", TEXT), ("recipients", NUMBER)],
        ),
        "table.create_row" | "table.read_row" | "table.update_row" => {
            table_row(table_of(project, literal("table")))
        }
        "table.search_rows" => object(
            "the `table.search_rows` output",
            false,
            &[
                (
                    "rows",
                    Shape::List(Box::new(table_row(table_of(project, literal("table"))))),
                ),
                ("cursor", TEXT),
            ],
        ),
        "table.clear" => object("the `table.clear` output", false, &[("deleted", NUMBER)]),
        "table.delete_row" => object(
            "the `table.delete_row` output",
            false,
            &[("deleted", BOOLEAN)],
        ),
        "table.export_csv" => TEXT,
        "flow.start" => object("the `flow.start` output", false, &[("run_id", TEXT)]),
        "text.regex_match" => object(
            "the `text.regex_match` output",
            false,
            &[
                ("matched", BOOLEAN),
                ("match", TEXT),
                ("groups", Shape::List(Box::new(TEXT))),
                // Named after the pattern's groups, which the checker does not read.
                ("named", Shape::Any),
                ("matches", Shape::List(Box::new(TEXT))),
            ],
        ),
        "text.compose" | "text.join" | "text.lower" | "text.upper" | "text.trim"
        | "text.replace" | "text.regex_replace" | "crypto.hmac" | "jwt.sign" | "json.stringify"
        | "date.add" | "date.format" | "date.now" | "date.parse" => TEXT,
        "text.index_of" | "text.last_index_of" | "text.length" | "list.length" | "date.diff"
        | "number.add" | "number.divide" | "number.multiply" | "number.parse" | "number.random"
        | "number.round" | "number.subtract" => NUMBER,
        "text.contains" | "list.contains" | "boolean.and" | "boolean.or" | "boolean.not" => BOOLEAN,
        "text.split" | "object.keys" => Shape::List(Box::new(TEXT)),
        // Lists of the caller's items: what an item holds is the caller's.
        "list.chunk" | "list.concat" | "list.filter" | "list.map" | "list.slice" | "list.sort"
        | "list.unique" | "object.values" => Shape::List(Box::new(Shape::Any)),
        // `flow.assign` outputs its rendered `with`: exactly the keys written.
        "flow.assign" => match with {
            Value::Object(map) => Shape::Object {
                name: "the `flow.assign` output",
                fields: map.keys().map(|k| (k.clone(), Shape::Any)).collect(),
                open: false,
            },
            _ => return None,
        },
        // The rest return the caller's data (`json.parse`, `object.*`, `list.first`,
        // `list.reduce`, `flow.call`) or a streamed listing: nothing to check below them.
        _ => return None,
    };
    Some(shape)
}

/// The declaration of table `name` in the project, when both are known.
fn table_of(project: Option<&ProjectConfig>, name: Option<&str>) -> Option<TableSchema> {
    crate::tables::schema(project?, name?.trim()).ok()
}

/// What reading `path` below a value of `shape` finds wrong: the problem and whether the field is
/// a likely typo. `None` when the path fits or cannot be judged.
pub fn check_path(shape: &Shape, path: &[String]) -> Option<String> {
    let mut current = shape;
    let mut walked: Vec<&str> = Vec::new();
    for key in path {
        match current {
            Shape::Any | Shape::List(_) => return None,
            Shape::Scalar(kind) => {
                let at = if walked.is_empty() {
                    "the output".to_owned()
                } else {
                    format!("`{}`", walked.join("."))
                };
                return Some(format!("{at} is {kind}, which has no field `{key}`"));
            }
            Shape::Object { name, fields, open } => {
                match fields.iter().find(|(k, _)| k == key) {
                    Some((_, next)) => {
                        walked.push(key);
                        current = next;
                    }
                    None => {
                        let close =
                            crate::flowfile::suggest(key, fields.iter().map(|(k, _)| k.as_str()));
                        if *open {
                            // Custom attributes are allowed; only a near miss of a listed one is
                            // suspicious.
                            return close.map(|close| {
                                format!(
                                    "`{key}` is not a standard field of {name} (custom ones are allowed); did you mean `{close}`?"
                                )
                            });
                        }
                        if fields.is_empty() {
                            return Some(format!(
                                "{name} is always empty (`{{}}`), so it has no field `{key}`"
                            ));
                        }
                        let mut message = format!("{name} has no field `{key}`");
                        match close {
                            Some(close) => message.push_str(&format!("; did you mean `{close}`?")),
                            None => message.push_str(&format!(
                                "; its fields are {}",
                                fields
                                    .iter()
                                    .map(|(k, _)| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                        }
                        return Some(message);
                    }
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn closed_shapes_refuse_unknown_fields_and_open_ones_only_near_misses() {
        let user = okta_user();
        assert_eq!(check_path(&user, &path("profile.email")), None);
        assert!(check_path(&user, &path("profile.costCentre")).is_some());
        assert_eq!(check_path(&user, &path("profile.badgeNumber")), None);
        assert_eq!(
            check_path(&user, &path("statuss")).as_deref(),
            Some("an Okta user has no field `statuss`; did you mean `status`?")
        );
        assert_eq!(
            check_path(&user, &path("id.value")).as_deref(),
            Some("`id` is text, which has no field `value`")
        );
        assert_eq!(
            check_path(&log_event(), &path("debugContext.debugData.anything")),
            None
        );
    }

    fn output(card: &str, with: serde_json::Value, read: &str) -> Option<String> {
        let shape = card_output(card, &with).expect("a known output");
        check_path(&shape, &path(read))
    }

    #[test]
    fn an_access_requests_fields_follow_the_version_its_id_or_listing_names() {
        let v1 = serde_json::json!({ "request": "0123456789abcdef01234567" });
        let v2 = serde_json::json!({ "request": "reqp1pmpjhVdGEcVK1d5" });
        let computed = serde_json::json!({ "request": "{{ input.accessRequestId }}" });
        assert_eq!(output("oig.get_request", v1.clone(), "subject"), None);
        assert_eq!(
            output("oig.get_request", v1, "requestedFor").as_deref(),
            Some(
                "a v1 access request has no field `requestedFor`; its fields are _links, actions, approvals, created, createdBy, id, lastUpdated, lastUpdatedBy, permalinkId, requestStatus, requestTypeId, requesterFieldValues, requesterUserIds, resolved, subject, type"
            )
        );
        assert_eq!(
            output("oig.get_request", v2.clone(), "requestedFor.type"),
            None
        );
        assert!(output("oig.get_request", v2, "subject").is_some());
        assert_eq!(output("oig.get_request", computed.clone(), "subject"), None);
        assert_eq!(output("oig.get_request", computed, "requestedFor"), None);
        // A listing is a list: what an item holds is not read through the list.
        let listed = card_output("oig.list_requests", &serde_json::json!({ "version": "v2" }));
        assert_eq!(
            listed,
            Some(Shape::List(Box::new(access_request(
                RequestVersion::V2,
                true
            ))))
        );
    }

    #[test]
    fn fixed_outputs_refuse_other_fields_and_caller_data_is_not_checked() {
        let none = serde_json::json!({});
        assert_eq!(
            output("okta.suspend_user", none.clone(), "status").as_deref(),
            Some(
                "the `okta.suspend_user` output is always empty (`{}`), so it has no field `status`"
            )
        );
        assert_eq!(
            output("number.add", none.clone(), "value").as_deref(),
            Some("the output is a number, which has no field `value`")
        );
        assert_eq!(output("http.request", none.clone(), "body.any.depth"), None);
        assert_eq!(
            output("http.request", none.clone(), "statusCode").as_deref(),
            Some(
                "the `http.request` output has no field `statusCode`; its fields are status, headers, body"
            )
        );
        // Without the project the table's columns are unknown: the row is open.
        assert_eq!(
            output(
                "table.read_row",
                serde_json::json!({ "table": "t" }),
                "row.anything"
            ),
            None
        );
        for caller_data in ["json.parse", "object.merge", "list.first", "flow.call"] {
            assert_eq!(card_output(caller_data, &none), None, "{caller_data}");
        }
    }
}
