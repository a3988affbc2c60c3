//! The Okta connector (actions and event cards), API endpoint and delegated flow triggers, and the
//! Tables (`stash`) cards.

use serde_json::Value;

use super::{Converted, Cx, Gap, Val};
use crate::expr::{Out, Shape, records};
use crate::flow::{ApiAuth, Step, Trigger, Tv};
use crate::pack::{Body, Card};
use crate::structure::{Linear, Node};

// ---------------------------------------------------------------------------------------------
// Event cards

/// Okta Workflows event cards and the System Log event types an idflow `event` trigger subscribes
/// to for each: (connector, action, card name, event types).
pub const EVENTS: &[(&str, &str, &str, &[&str])] = &[
    (
        "okta",
        "userAddedToGroupMembership",
        "User Added to Group",
        &["group.user_membership.add"],
    ),
    (
        "okta",
        "userRemovedFromGroupMembership",
        "User Removed from Group",
        &["group.user_membership.remove"],
    ),
    (
        "okta",
        "oktaUserProfileUpdated",
        "User Okta Profile Updated",
        &["user.account.update_profile"],
    ),
    (
        "okta",
        "oktaUserPasswordUpdated",
        "User Okta Password Updated",
        &["user.account.update_password"],
    ),
    (
        "okta",
        "userCreated",
        "User Created",
        &["user.lifecycle.create"],
    ),
    (
        "okta",
        "userActivated",
        "User Activated",
        &["user.lifecycle.activate"],
    ),
    (
        "okta",
        "userReactivated",
        "User Reactivated",
        &["user.lifecycle.reactivate"],
    ),
    (
        "okta",
        "userDeactivated",
        "User Deactivated",
        &["user.lifecycle.deactivate"],
    ),
    (
        "okta",
        "userSuspended",
        "User Suspended",
        &["user.lifecycle.suspend"],
    ),
    (
        "okta",
        "userUnsuspended",
        "User Unsuspended",
        &["user.lifecycle.unsuspend"],
    ),
    (
        "okta",
        "userDeleted",
        "User Deleted",
        &["user.lifecycle.delete.initiated"],
    ),
    (
        "okta",
        "userAccountLocked",
        "User Account Locked",
        &["user.account.lock"],
    ),
    (
        "okta",
        "userReportedSuspiciousActivityBeta",
        "Suspicious Activity Reported",
        &["user.account.report_suspicious_activity_by_enduser"],
    ),
    (
        "okta",
        "userAssignedToApplication",
        "User Assigned to Application",
        &["application.user_membership.add"],
    ),
    (
        "okta",
        "userUnassignedFromApplication",
        "User Unassigned from Application",
        &["application.user_membership.remove"],
    ),
    (
        "okta",
        "groupCreated",
        "Group Created",
        &["group.lifecycle.create"],
    ),
    (
        "okta",
        "groupDeleted",
        "Group Deleted",
        &["group.lifecycle.delete"],
    ),
    (
        "okta",
        "userSessionStart",
        "User Session Start",
        &["user.session.start"],
    ),
    (
        "oktadevices",
        "userMFAFactorActivated",
        "User MFA Factor Activated",
        &["user.mfa.factor.activate"],
    ),
    (
        "oktadevices",
        "userMFAFactorDeactivated",
        "User MFA Factor Deactivated",
        &["user.mfa.factor.deactivate"],
    ),
    (
        "oktadevices",
        "userMFA",
        "User MFA",
        &["user.authentication.auth_via_mfa"],
    ),
];

/// The System Log event types of an event card.
pub fn event_types(card: &Card) -> Option<&'static [&'static str]> {
    EVENTS
        .iter()
        .find(|(channel, action, _, _)| {
            *channel == card.address.channel && *action == card.address.action
        })
        .map(|(_, _, _, types)| *types)
}

/// An event flow: the `event` trigger, and the flow's steps. Okta Workflows hands an event card a
/// batch of events that the flow walks with For Each; idflow starts one run per event, so that
/// loop's inline flow becomes the flow itself.
pub(crate) fn event_flow(
    cx: &mut Cx<'_>,
    body: &Body,
    start: &Card,
    linear: &Linear,
) -> (Trigger, Vec<Step>) {
    let types: Vec<String> = match event_types(start) {
        Some(types) => types.iter().map(|t| (*t).to_owned()).collect(),
        None => {
            // Subscribing to a guessed event type would run the flow on the wrong events: the flow
            // runs by hand until someone sets its trigger.
            cx.unconverted.push(super::Unconverted {
                card: start.name.clone(),
                address: start.address.raw.clone(),
                reason: "no System Log event type is known for this event card; add an `event` trigger by hand"
                    .into(),
            });
            Vec::new()
        }
    };
    let event = Out::new("input").shaped(records::event());
    for output in &start.outputs {
        let out = match output.key.as_str() {
            "collection" => Out::new("[input]").shaped(records::event().list()),
            "execution_id" => Out::new("run.id"),
            _ => Out::constant("none"),
        };
        cx.set_out(start, output, out);
    }
    let collection = start.output(None, "collection").map(|io| io.id.clone());
    let mut steps = Vec::new();
    for node in &linear.nodes {
        let loop_body = match node {
            Node::Card(i) => body.cards.get(*i).and_then(|card| {
                let is_loop = card.address.kernel
                    && card.address.channel == "list"
                    && matches!(card.address.action.as_str(), "each" | "asyncEach");
                let fed = start
                    .pins
                    .iter()
                    .any(|pin| Some(&pin.output) == collection.as_ref() && pin.target == card.uuid);
                let inline = card.inputs.iter().find_map(|io| io.subflow.as_ref());
                (is_loop && fed).then_some((card, inline?))
            }),
            Node::If { .. } => None,
        };
        match loop_body {
            Some((card, inline)) => {
                let context = cx.context_of(card);
                let id = cx.id(card);
                let return_id = cx.fresh(&format!("{id}_result"));
                let inner = cx.inline_body(inline, context, Some(event.clone()), &return_id);
                steps.extend(inner);
            }
            None => {
                let mut converted = cx.nodes(body, std::slice::from_ref(node));
                steps.append(&mut converted);
            }
        }
    }
    let trigger = if types.is_empty() {
        Trigger::Manual
    } else {
        Trigger::Event { types }
    };
    (trigger, steps)
}

// ---------------------------------------------------------------------------------------------
// API endpoint and delegated flows

/// The outputs of an API Endpoint card: the request idflow gives an `api` flow.
pub(crate) fn api_endpoint(cx: &mut Cx<'_>, start: &Card) {
    for output in &start.outputs {
        let out = match (output.group.as_deref(), output.key.as_str()) {
            (Some("raw"), "body") => Out {
                json_text: true,
                ..Out::new("input.body")
            },
            (Some("raw"), "query") => Out {
                json_text: true,
                ..Out::new("input.query")
            },
            (Some("raw"), "headers") => Out::new("input.headers"),
            (Some("body"), key) => Out::new("input.body").project(key),
            (Some("query"), key) => Out::new("input.query").project(key),
            (Some("headers"), key) => Out::new("input.headers").project(&key.to_ascii_lowercase()),
            (_, "execution_id") => Out::new("run.id"),
            _ => Out::constant("none"),
        };
        cx.set_out(start, output, out);
    }
}

/// How an API endpoint is secured, from the flow's security level.
pub(crate) fn api_auth(cx: &mut Cx<'_>, start: &Card) -> ApiAuth {
    let token = || {
        let env = format!(
            "{}_CLIENT_TOKEN",
            cx.plan.name.to_ascii_uppercase().replace('-', "_")
        );
        ApiAuth::Token(format!("env:{env}"))
    };
    match cx.plan.flo.security_level.as_deref() {
        Some("medium") => token(),
        Some("high") => {
            cx.notes.push(format!(
                "{}: secured with an Okta authorization server; set the issuer and audience of `auth: jwt`",
                start.name
            ));
            ApiAuth::Jwt {
                issuer: "https://example.okta.com/oauth2/default".into(),
                audience: "api://idflow".into(),
            }
        }
        Some("public" | "low" | "none") => ApiAuth::Public,
        other => {
            let token = token();
            cx.approx(
                start,
                format!(
                    "the export gives security level {}; the endpoint takes a client token",
                    other.unwrap_or("none")
                ),
            );
            token
        }
    }
}

/// The inputs of a delegated flow, and the caller that may run it.
pub(crate) fn delegated(cx: &mut Cx<'_>, start: &Card) -> (Vec<(String, &'static str)>, String) {
    let mut inputs = Vec::new();
    let mut names = crate::names::Unique::default();
    for output in &start.outputs {
        let out = match (output.group.as_deref(), output.key.as_str()) {
            (Some("inputs"), key) => {
                let ident = names.take(&crate::names::input_name(key), '_', 60);
                let mut kind = super::input_kind(output);
                if !matches!(kind, "text" | "number" | "boolean" | "datetime") {
                    cx.approx(
                        start,
                        format!("input `{key}` is not a scalar; delegated flows take it as text"),
                    );
                    kind = "text";
                }
                inputs.push((ident.clone(), kind));
                Out::new("input").at(&ident).lenient()
            }
            (_, "execution_id") => Out::new("run.id"),
            (_, "okta-user-id") => {
                Out::missing("the Okta user who ran the delegated flow is not given to the run")
            }
            _ => Out::constant("none"),
        };
        cx.set_out(start, output, out);
    }
    (inputs, "okta-delegated".into())
}

// ---------------------------------------------------------------------------------------------
// Okta actions

/// `connection:` when the card uses another Okta connection than `okta`.
fn connection_field(cx: &mut Cx<'_>, card: &Card, with: &mut Vec<(String, Tv)>) {
    let connection = cx.use_connection(card);
    if connection.name != "okta" {
        with.push(("connection".into(), Tv::text(&connection.name)));
    }
}

/// An input of the card by key, in any group.
fn input(cx: &mut Cx<'_>, card: &Card, keys: &[&str]) -> Val {
    for key in keys {
        if let Some(io) = card.input(None, key) {
            return cx.val(card, io);
        }
    }
    Val::Lit(Value::Null)
}

/// Registers outputs read from a user object (`System Properties`, `Results`, `Profile Properties`).
fn user_outputs(cx: &mut Cx<'_>, card: &Card, user: Out) {
    cx.set_outs(card, |io| match io.group.as_deref() {
        Some("Profile Properties" | "Profile") => {
            let profile = user.clone().at("profile").shaped(Shape::Plain);
            let mut out = profile.project(&io.key);
            out.lenient = !matches!(
                io.key.as_str(),
                "login" | "email" | "firstName" | "lastName"
            );
            out
        }
        _ => user.project(&io.key),
    });
}

/// The profile attributes given to a card (`Profile` group), as an object.
fn profile(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Vec<(String, Tv)> {
    let mut fields = Vec::new();
    for io in card.inputs_in("Profile") {
        let val = cx.val(card, io);
        if val.is_unset() {
            continue;
        }
        fields.push((io.key.clone(), cx.tv(&val, steps)));
    }
    fields
}

pub(crate) fn read_user(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let user = input(cx, card, &["ID or Login", "ID", "id"]);
    let mut with = vec![("user".into(), cx.tv(&user, steps))];
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.read_user", with));
    user_outputs(cx, card, Out::step(&id).shaped(records::user()));
    Ok(())
}

pub(crate) fn create_user(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut with = vec![("profile".into(), Tv::Map(profile(cx, card, steps)))];
    let password = cx.val_in(card, "Credentials", "Password");
    if !password.is_unset() {
        with.push(("password".into(), cx.tv(&password, steps)));
    }
    let activate = input(cx, card, &["Activate"]);
    if !activate.is_unset() {
        with.push(("activate".into(), cx.tv(&activate, steps)));
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.create_user", with));
    user_outputs(cx, card, Out::step(&id).shaped(records::user()));
    Ok(())
}

pub(crate) fn update_user(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let user = input(cx, card, &["ID", "id", "ID or Login"]);
    let mut with = vec![
        ("user".into(), cx.tv(&user, steps)),
        ("profile".into(), Tv::Map(profile(cx, card, steps))),
    ];
    if let Some(semantics) = cx.val_key(card, "updateSemantics").text()
        && !matches!(semantics, "POST" | "partial" | "Partial")
    {
        cx.approx(card, "a full profile replacement becomes a partial update");
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.update_user", with));
    user_outputs(cx, card, Out::step(&id).shaped(records::user()));
    Ok(())
}

/// Add User to Group / Remove User from Group.
pub(crate) fn group_membership(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let group = cx.val_in(card, "Group", "id");
    let user = cx.val_in(card, "User", "id");
    let mut with = vec![
        ("user".into(), cx.tv(&user, steps)),
        ("group".into(), cx.tv(&group, steps)),
    ];
    connection_field(cx, card, &mut with);
    let idflow = if card.address.action == "removeUserFromGroup" {
        "okta.remove_user_from_group"
    } else {
        "okta.add_user_to_group"
    };
    let id = cx.id(card);
    steps.push(Step::card(Some(id), idflow, with));
    // Okta answers 204 when the call succeeds; a failure stops the step.
    cx.set_outs(card, |_| Out::new("204"));
    Ok(())
}

pub(crate) fn users_groups(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let user = input(cx, card, &["ID", "id"]);
    let mut with = vec![("user".into(), cx.tv(&user, steps))];
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.list_user_groups", with));
    cx.set_outs(card, |_| Out::step(&id).shaped(records::group().list()));
    Ok(())
}

/// List Users with Search: `okta.find_users` with a search built from the card's fields, or a
/// stream into a helper flow.
pub(crate) fn list_users(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut clauses = Vec::new();
    for io in card.inputs_in("Inputs") {
        let val = cx.val(card, io);
        if val.is_unset() {
            continue;
        }
        if io.key == "Custom Search Criteria" {
            clauses.push(cx.inline(&val, steps));
            continue;
        }
        let attribute = match io.key.as_str() {
            "id" | "status" | "created" | "activated" | "statusChanged" | "lastUpdated"
            | "lastLogin" | "passwordChanged" | "type.id" => io.key.clone(),
            other => format!("profile.{other}"),
        };
        let value = cx.inline(&val, steps);
        clauses.push(format!("{attribute} eq \"{value}\""));
    }
    let mut with = Vec::new();
    if !clauses.is_empty() {
        with.push(("search".into(), Tv::Str(clauses.join(" and "))));
    }
    let result_set = cx
        .val_key(card, "resultSet")
        .text()
        .unwrap_or("")
        .to_owned();
    let limit = cx.val_in(card, "Search Criteria", "Limit");
    if result_set.starts_with("First 200") {
        with.push(("limit".into(), Tv::int(200)));
    } else if let Val::Lit(Value::Number(n)) = &limit
        && n.as_u64().is_some_and(|n| n > 0)
    {
        with.push(("limit".into(), Tv::Num(n.clone())));
    }
    let stream = result_set.starts_with("Stream");
    if stream {
        with.push(("stream".into(), stream_field(cx, card, steps)?));
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.find_users", with));
    if stream {
        cx.set_outs(card, |_| {
            Out::missing("`Records Streamed` is not counted; it reads as empty")
        });
    } else {
        cx.set_outs(card, |_| Out::step(&id).shaped(records::user().list()));
    }
    Ok(())
}

/// `stream: { flow, state }` of a streaming card: its `Streaming` fields other than the flow go
/// to the helper as `state`.
fn stream_field(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Result<Tv, Gap> {
    let flow = card
        .inputs
        .iter()
        .find(|io| io.ty == crate::pack::IoType::Flo)
        .and_then(|io| io.data.as_str())
        .and_then(|uuid| cx.index.flows.get(uuid))
        .ok_or_else(|| Gap::new("the helper flow it streams to is not in the export"))?;
    let mut state = Vec::new();
    for io in card.inputs_in("Streaming") {
        if io.ty == crate::pack::IoType::Flo {
            continue;
        }
        let val = cx.val(card, io);
        state.push((io.key.clone(), cx.tv(&val, steps)));
    }
    Ok(Tv::Map(vec![
        ("flow".into(), Tv::Str(flow.name.clone())),
        ("state".into(), Tv::Map(state)),
    ]))
}

/// The helper flow a streaming card sends its records to.
pub(crate) fn stream_target(card: &Card) -> Option<String> {
    let result_set = card
        .inputs
        .iter()
        .find(|io| io.base_key() == "resultSet" || io.base_key() == "result_set")
        .and_then(|io| io.text())
        .unwrap_or("");
    if !result_set.to_ascii_lowercase().starts_with("stream") {
        return None;
    }
    card.inputs
        .iter()
        .find(|io| io.ty == crate::pack::IoType::Flo)
        .and_then(|io| io.data.as_str())
        .map(str::to_owned)
}

/// What the records of a streaming card look like.
pub(crate) fn stream_record_shape(card: &Card) -> Shape {
    match (card.address.channel.as_str(), card.address.action.as_str()) {
        ("okta", "listUsersWithSearch" | "listUsers" | "searchUsers") => records::user(),
        ("okta", "searchSystemLogs") => records::log_event(),
        _ => Shape::Plain,
    }
}

/// Find Users: `okta.find_users` with `q`.
pub(crate) fn find_users(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let query = input(cx, card, &["Query"]);
    let mut with = vec![("q".into(), cx.tv(&query, steps))];
    let first = cx
        .val_key(card, "resultSet")
        .text()
        .is_some_and(|r| r.starts_with("First"));
    if first {
        with.push(("limit".into(), Tv::int(1)));
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.find_users", with));
    let users = Out::step(&id).shaped(records::user().list());
    cx.set_outs(card, |io| {
        if first {
            users.project("0").project(&io.key)
        } else {
            users.clone()
        }
    });
    Ok(())
}

/// Search Groups: `okta.api` on `/api/v1/groups`.
pub(crate) fn search_groups(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let query = input(cx, card, &["Query"]);
    let first = cx
        .val_key(card, "resultSet")
        .text()
        .is_some_and(|r| r.starts_with("First"));
    let mut query_fields = vec![("q".into(), cx.tv(&query, steps))];
    if first {
        query_fields.push(("limit".into(), Tv::int(1)));
    }
    let mut with = vec![
        ("method".into(), Tv::text("GET")),
        ("path".into(), Tv::text("/api/v1/groups")),
        ("query".into(), Tv::Map(query_fields)),
    ];
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.api", with));
    let groups = Out::step(&id).at("body").shaped(records::group().list());
    cx.set_outs(card, |io| {
        if first && io.key != "Groups" {
            groups.project("0").project(&io.key)
        } else {
            groups.clone()
        }
    });
    Ok(())
}

/// Search System Logs: `okta.search_system_log`, streamed to a helper flow or returned.
pub(crate) fn search_system_log(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let mut with = Vec::new();
    let filter = cx.val_in(card, "Search By", "Custom Filter");
    if !filter.is_unset() {
        with.push(("filter".into(), cx.tv(&filter, steps)));
    }
    for (key, field) in [("since", "since"), ("until", "until")] {
        let val = cx.val_in(card, "Date", key);
        if !val.is_unset() {
            with.push((field.into(), cx.tv(&val, steps)));
        }
    }
    let stream = stream_target(card).is_some();
    if stream {
        with.push(("stream".into(), stream_field(cx, card, steps)?));
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.search_system_log", with));
    if stream {
        cx.set_outs(card, |_| Out::constant("none"));
    } else {
        cx.set_outs(card, |_| Out::step(&id).shaped(records::log_event().list()));
    }
    Ok(())
}

/// Custom API Action: `okta.api`.
pub(crate) fn custom_api(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let method = input(cx, card, &["requestType", "request_type"]);
    let method = method.text().unwrap_or("GET").to_ascii_uppercase();
    let path = input(cx, card, &["Relative URL", "relative_url"]);
    let mut with = vec![
        ("method".into(), Tv::text(&method)),
        ("path".into(), cx.tv(&path, steps)),
    ];
    for (key, field) in [("Query", "query"), ("Body", "body")] {
        let val = input(cx, card, &[key]);
        if !val.is_unset() {
            with.push((field.into(), cx.tv(&val, steps)));
        }
    }
    let headers = input(cx, card, &["Headers"]);
    if !headers.is_unset() {
        cx.approx(card, "extra request headers are not sent by okta.api");
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.api", with));
    response_outputs(cx, card, &id);
    Ok(())
}

/// Outputs of a card that returns an HTTP response (`Status Code`, `Headers`, `Body`).
pub(crate) fn response_outputs(cx: &mut Cx<'_>, card: &Card, id: &str) {
    cx.set_outs(card, |io| {
        let key = io.base_key().to_ascii_lowercase().replace(['_', ' '], "");
        match key.as_str() {
            "statuscode" | "status" => Out::step(id).at("status"),
            "headers" => Out::step(id).at("headers"),
            _ => Out::step(id).at("body"),
        }
    });
}

/// Assign User to Application for SSO: `okta.assign_user_to_app`.
pub(crate) fn assign_app(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let user = cx.val_in(card, "User", "id");
    let app = input(cx, card, &["application"]);
    let mut with = vec![
        ("user".into(), cx.tv(&user, steps)),
        ("app".into(), cx.tv(&app, steps)),
    ];
    let user_name = cx.val_in(card, "Credentials", "Username");
    if !user_name.is_unset() {
        with.push(("user_name".into(), cx.tv(&user_name, steps)));
    }
    let password = cx.val_in(card, "Credentials", "Password");
    if !password.is_unset() {
        cx.approx(
            card,
            "the app password is not set by okta.assign_user_to_app",
        );
    }
    let mut profile = Vec::new();
    for io in card.inputs_in("Profile") {
        let val = cx.val(card, io);
        if !val.is_unset() {
            profile.push((io.key.clone(), cx.tv(&val, steps)));
        }
    }
    if !profile.is_empty() {
        with.push(("profile".into(), Tv::Map(profile)));
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "okta.assign_user_to_app",
        with,
    ));
    let app_user = Out::step(&id);
    cx.set_outs(card, |io| match (io.group.as_deref(), io.key.as_str()) {
        (Some("Profile Properties"), key) => app_user.clone().at("profile").project(key),
        (_, "User ID") => app_user.clone().at("id"),
        (_, "External ID") => app_user.clone().at("externalId").lenient(),
        (_, "Sync State") => app_user.clone().at("syncState").lenient(),
        (_, "Last Sync") => app_user.clone().at("lastSync").lenient(),
        (_, "Credentials") => app_user.clone().at("credentials").lenient(),
        (_, key) => app_user.clone().shaped(records::user()).project(key),
    });
    Ok(())
}

/// Remove User from Application: `okta.api` DELETE on the app user.
pub(crate) fn unassign_app(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let user = cx.val_in(card, "User", "id");
    let app = input(cx, card, &["application"]);
    let user = cx.inline(&user, steps);
    let app = cx.inline(&app, steps);
    let send_email = input(cx, card, &["Send Email?"]);
    let mut with = vec![
        ("method".into(), Tv::text("DELETE")),
        (
            "path".into(),
            Tv::Str(format!("/api/v1/apps/{app}/users/{user}")),
        ),
    ];
    if !send_email.is_unset() {
        with.push((
            "query".into(),
            Tv::Map(vec![("sendEmail".into(), cx.tv(&send_email, steps))]),
        ));
    }
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "okta.api", with));
    cx.set_outs(card, |_| Out::step(&id).at("status"));
    Ok(())
}

/// Okta lifecycle actions with a matching idflow card (`Activate User`, `Suspend User`, …).
pub(crate) fn lifecycle(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let idflow = match card.address.action.as_str() {
        "activateUser" => "okta.activate_user",
        "deactivateUser" => "okta.deactivate_user",
        "suspendUser" => "okta.suspend_user",
        "unsuspendUser" => "okta.unsuspend_user",
        other => return Err(Gap::new(format!("no idflow card for Okta `{other}`"))),
    };
    let user = input(cx, card, &["ID or Login", "ID", "id", "User ID"]);
    let mut with = vec![("user".into(), cx.tv(&user, steps))];
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), idflow, with));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// List Group Members: `okta.list_group_members`.
pub(crate) fn group_members(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let group = input(cx, card, &["ID", "id", "Group ID"]);
    let mut with = vec![("group".into(), cx.tv(&group, steps))];
    connection_field(cx, card, &mut with);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "okta.list_group_members",
        with,
    ));
    cx.set_outs(card, |_| Out::step(&id).shaped(records::user().list()));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tables

struct TableRef {
    name: String,
    columns: Vec<(String, String, &'static str)>,
}

fn table(cx: &mut Cx<'_>, card: &Card) -> Result<TableRef, Gap> {
    let id = card
        .inputs
        .iter()
        .find(|io| io.key == "stash")
        .and_then(|io| io.data.as_str())
        .ok_or_else(|| Gap::new("the card names no table"))?;
    let plan = cx
        .index
        .tables
        .get(id)
        .ok_or_else(|| Gap::new("the table it uses is not in the export"))?;
    Ok(TableRef {
        name: plan.name.clone(),
        columns: plan.columns.clone(),
    })
}

fn column(table: &TableRef, okta: &str) -> Option<String> {
    table
        .columns
        .iter()
        .find(|(name, _, _)| name == okta)
        .map(|(_, ident, _)| ident.clone())
}

fn row_shape(table: &TableRef) -> Shape {
    let columns: Vec<(String, String)> = table
        .columns
        .iter()
        .map(|(okta, ident, _)| (okta.clone(), ident.clone()))
        .collect();
    records::row(&columns)
}

/// The `Fields` of a row card as idflow columns.
fn row_fields(
    cx: &mut Cx<'_>,
    card: &Card,
    table: &TableRef,
    skip_empty: bool,
    steps: &mut Vec<Step>,
) -> Vec<(String, Tv)> {
    let mut row = Vec::new();
    for io in card.inputs_in("Fields") {
        let val = cx.val(card, io);
        if skip_empty && val.is_unset() {
            continue;
        }
        let Some(column) = column(table, &io.key) else {
            cx.approx(
                card,
                format!("column `{}` is not in the table's schema; left out", io.key),
            );
            continue;
        };
        row.push((column, cx.tv(&val, steps)));
    }
    row
}

pub(crate) fn create_row(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let table = table(cx, card)?;
    let row = row_fields(cx, card, &table, true, steps);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "table.create_row",
        vec![
            ("table".into(), Tv::text(&table.name)),
            ("row".into(), Tv::Map(row)),
        ],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("key"));
    Ok(())
}

pub(crate) fn update_row(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let table = table(cx, card)?;
    let key = cx.val_in(card, "Update By", "Row ID");
    let key = cx.tv(&key, steps);
    let skip_empty = cx
        .val_key(card, "updateEmptyInputs")
        .text()
        .is_none_or(|t| t == "No");
    let row = row_fields(cx, card, &table, skip_empty, steps);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "table.update_row",
        vec![
            ("table".into(), Tv::text(&table.name)),
            ("key".into(), key),
            ("row".into(), Tv::Map(row)),
        ],
    ));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

pub(crate) fn delete_row(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let table = table(cx, card)?;
    let key = input(cx, card, &["Row ID"]);
    let key = cx.tv(&key, steps);
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "table.delete_row",
        vec![("table".into(), Tv::text(&table.name)), ("key".into(), key)],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("deleted"));
    Ok(())
}

pub(crate) fn clear_table(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let table = table(cx, card)?;
    let id = cx.id(card);
    steps.push(Step::card(
        Some(id.clone()),
        "table.clear",
        vec![("table".into(), Tv::text(&table.name))],
    ));
    cx.set_outs(card, |_| Out::step(&id).at("deleted"));
    Ok(())
}

/// A Where Expression (`{"expr": [{"lhs", "op", "rhs" | "rhd"}]}`) as idflow's `where`.
fn where_clause(
    cx: &mut Cx<'_>,
    card: &Card,
    table: &TableRef,
    steps: &mut Vec<Step>,
) -> Result<Vec<(String, Tv)>, Gap> {
    let Some(io) = card.input(None, "Where Expression") else {
        return Ok(Vec::new());
    };
    let conditions = io
        .data
        .get("expr")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut fields: Vec<(String, Tv)> = Vec::new();
    for condition in conditions {
        let lhs = condition.get("lhs").and_then(Value::as_str).unwrap_or("");
        let column = match lhs {
            "Row ID" => return Err(Gap::new("a search by Row ID needs table.read_row")),
            _ => column(table, lhs)
                .ok_or_else(|| Gap::new(format!("column `{lhs}` is not in the table's schema")))?,
        };
        if condition
            .get("join")
            .and_then(Value::as_str)
            .is_some_and(|j| j != "AND")
        {
            return Err(Gap::new("idflow searches rows with AND conditions only"));
        }
        let value = match condition.get("rhd") {
            Some(reference) => {
                let output = reference
                    .get("outputId")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                // The value arrives through an `_expr` input keyed by the output's id.
                let val = match card
                    .inputs
                    .iter()
                    .find(|i| i.group.as_deref() == Some("_expr") && i.key == output)
                {
                    Some(io) => cx.val(card, io),
                    None => Val::Lit(Value::Null),
                };
                cx.tv(&val, steps)
            }
            None => Tv::json(condition.get("rhs").unwrap_or(&Value::Null)),
        };
        let operator = match condition.get("op").and_then(Value::as_str).unwrap_or("=") {
            "=" | "==" => None,
            "!=" => Some("ne"),
            ">" => Some("gt"),
            ">=" => Some("gte"),
            "<" => Some("lt"),
            "<=" => Some("lte"),
            other => {
                return Err(Gap::new(format!(
                    "row search operator `{other}` has no idflow equivalent"
                )));
            }
        };
        let entry = match operator {
            None => value,
            Some(op) => Tv::Map(vec![(op.into(), value)]),
        };
        match fields.iter_mut().find(|(c, _)| *c == column) {
            Some((_, Tv::Map(existing))) => {
                if let Tv::Map(more) = entry {
                    existing.extend(more);
                }
            }
            Some(_) => return Err(Gap::new(format!("column `{lhs}` is compared twice"))),
            None => fields.push((column, entry)),
        }
    }
    Ok(fields)
}

/// Search Rows: `table.search_rows` (the first row, or the rows).
pub(crate) fn search_rows(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let table = table(cx, card)?;
    let conditions = where_clause(cx, card, &table, steps)?;
    let one = cx.val_key(card, "resultSet").text() == Some("one");
    let mut with = vec![("table".into(), Tv::text(&table.name))];
    if !conditions.is_empty() {
        with.push(("where".into(), Tv::Map(conditions)));
    }
    let limit = match cx.val_in(card, "Sort", "Limit") {
        Val::Lit(Value::Number(n)) => n.as_u64().filter(|n| *n > 0),
        _ => None,
    };
    let limit = if one { Some(1) } else { limit };
    with.push((
        "limit".into(),
        Tv::int(limit.unwrap_or(1000).min(1000) as i64),
    ));
    if !one && limit.is_none_or(|l| l > 1000) {
        cx.approx(card, "reads the first 1000 matching rows (one page)");
    }
    if cx
        .val_in(card, "Sort", "Column")
        .text()
        .is_some_and(|c| !c.is_empty())
    {
        cx.approx(
            card,
            "rows come in key order, not sorted by the card's column",
        );
    }
    if matches!(cx.val_in(card, "Sort", "Offset"), Val::Lit(Value::Number(n)) if n.as_u64().is_some_and(|o| o > 0))
    {
        cx.approx(card, "the offset is not applied");
    }
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "table.search_rows", with));
    let rows = Out::step(&id).at("rows").shaped(row_shape(&table).list());
    let first = rows.project("0");
    cx.set_outs(card, |io| match (one, io.group.as_deref()) {
        (true, Some("Row")) => first.project(&io.key),
        (true, Some("Fields")) => first.project(&io.key),
        (true, _) => first.clone(),
        (false, _) => rows.clone(),
    });
    Ok(())
}

/// Export to CSV: `table.export_csv`.
pub(crate) fn export_csv(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let table = table(cx, card)?;
    let mut with = vec![("table".into(), Tv::text(&table.name))];
    let conditions = where_clause(cx, card, &table, steps)?;
    if !conditions.is_empty() {
        with.push(("where".into(), Tv::Map(conditions)));
    }
    let columns = cx.val_in(card, "Options", "Columns");
    match &columns {
        Val::Lit(Value::Array(list)) if !list.is_empty() => {
            let idents: Vec<Tv> = list
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|c| column(&table, c))
                .map(|c| Tv::text(&c))
                .collect();
            with.push(("columns".into(), Tv::List(idents)));
        }
        Val::Out(_) => {
            let value = cx.tv(&columns, steps);
            with.push(("columns".into(), value));
            cx.approx(card, "the column list must use idflow's column names");
        }
        _ => {}
    }
    let id = cx.id(card);
    steps.push(Step::card(Some(id.clone()), "table.export_csv", with));
    cx.set_outs(card, |_| Out::step(&id));
    Ok(())
}

/// Read Table: the table's columns, known when the flow is imported.
pub(crate) fn read_table(cx: &mut Cx<'_>, card: &Card, steps: &mut Vec<Step>) -> Converted {
    let table = table(cx, card)?;
    let columns: Vec<Tv> = table
        .columns
        .iter()
        .map(|(_, ident, kind)| {
            Tv::Map(vec![
                ("name".into(), Tv::text(ident)),
                ("type".into(), Tv::text(kind)),
            ])
        })
        .collect();
    let id = cx.id(card);
    steps.push(
        Step::card(
            Some(id.clone()),
            "flow.assign",
            vec![("columns".into(), Tv::List(columns))],
        )
        .with_comment(format!("The columns of table `{}`", table.name)),
    );
    cx.set_outs(card, |_| Out::step(&id).at("columns"));
    Ok(())
}
