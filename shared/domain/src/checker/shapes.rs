//! The shapes of step outputs and event inputs the checker knows, so a misspelt field below them
//! (`steps.user.profile.emial`) is found before a run.
//!
//! Okta's objects are written here from Okta's published OpenAPI schemas (`User`, `UserProfile`,
//! `Group`, `OktaUserGroupProfile`, `LogEvent` and its parts); `tests/checker.rs` compares them with
//! the specs when those are present. A shape is *closed* where the schema lists every property and
//! *open* where Okta takes custom ones (user and group profiles, `debugContext.debugData`): there a
//! field outside the list is fine, and only one a typo away from a listed field is suspicious.
//! Everything the checker finds here is a warning: a shape describes what Okta documents, and an
//! org can hold more.

use serde_json::Value;

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
    let streaming = with.get("stream").is_some_and(|s| !s.is_null());
    let shape = match card {
        "okta.read_user" | "okta.create_user" | "okta.update_user" => okta_user(),
        "okta.find_users" | "okta.list_group_members" if !streaming => {
            Shape::List(Box::new(okta_user()))
        }
        "okta.list_user_groups" => Shape::List(Box::new(okta_group())),
        "okta.search_system_log" if !streaming => Shape::List(Box::new(log_event())),
        "text.compose" => Shape::Scalar("text"),
        // `flow.assign` outputs its rendered `with`: exactly the keys written.
        "flow.assign" => match with {
            Value::Object(map) => Shape::Object {
                name: "the `flow.assign` output",
                fields: map.keys().map(|k| (k.clone(), Shape::Any)).collect(),
                open: false,
            },
            _ => return None,
        },
        _ => return None,
    };
    Some(shape)
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
}
