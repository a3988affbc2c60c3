//! [`OktaExecutor`]: how the `okta.*` and `oig.*` cards (specified in `domain::cards::okta`) run.
//!
//! Each call is first read into an [`Action`] (so bad input fails before any request), then run
//! through the [`OktaApi`] port on the connection the card names (`connection`, default `okta`).
//!
//! Lists follow `Link: <…>; rel="next"` only. `okta.find_users` and `okta.search_system_log` take
//! `limit` (records at most) and `pages: first | all`. When the engine streams their records to a
//! helper flow (`stream:`), it calls the card once per page with an extra input field `__page`:
//! `null` for the first page, then the previous answer's `next`. In that mode the card answers one
//! page, `{ "records": [...], "next": <opaque JSON or null> }`, and follows no further link.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::SecondsFormat;
use http::Method;
use serde_json::{Map, Value, json};

use super::connection::{Connection, DEFAULT_CONNECTION};
use super::{OktaApi, OktaRequest, OktaResponse};
use domain::cards::fields::{Fields, invalid};
use domain::cards::okta::{DEFAULT_MAX_RECORDS, MAX_MESSAGE_CHARS};
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::ports::{Clock, Secrets};

/// Runs the `okta.*` and `oig.*` cards.
pub struct OktaExecutor {
    api: Arc<dyn OktaApi>,
}

impl OktaExecutor {
    /// An executor over any implementation of the port.
    pub fn new(api: Arc<dyn OktaApi>) -> OktaExecutor {
        OktaExecutor { api }
    }

    /// An executor over a new [`super::OktaClient`].
    pub fn with_ports(
        secrets: Arc<dyn Secrets>,
        clock: Arc<dyn Clock>,
    ) -> Result<OktaExecutor, reqwest::Error> {
        Ok(OktaExecutor::new(Arc::new(super::OktaClient::new(
            secrets, clock,
        )?)))
    }
}

#[async_trait]
impl CardExecutor for OktaExecutor {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        let input = Fields::of_call(&call.input)?;
        let action = Action::read(&call.card, &input)?;
        let name = input
            .optional_text("connection")?
            .map_or_else(|| DEFAULT_CONNECTION.to_owned(), Cow::into_owned);
        let connection = Connection::from_project(&call.project, &name)?;
        let run = Runner {
            api: self.api.as_ref(),
            connection: &connection,
        };
        match tokio::time::timeout(call.timeout, run.run(action)).await {
            Ok(result) => result,
            Err(_) => Err(CardError::Timeout(call.timeout)),
        }
    }
}

/// What a card call does, read from its input.
#[derive(Debug, PartialEq)]
enum Action {
    /// One request; the output is the body, or `{}` when `empty`.
    Call { request: OktaRequest, empty: bool },
    /// A request on a user id (`{user}` in `path` is replaced); logins are looked up first.
    OnUserId {
        user: String,
        method: Method,
        path: String,
        body: Option<Value>,
        empty: bool,
    },
    /// A paged list.
    List(Listing),
    /// `okta.api`: the output is `{ status, headers, body }`.
    Custom(OktaRequest),
}

/// A paged list read.
#[derive(Debug, PartialEq)]
struct Listing {
    first: OktaRequest,
    /// Where the records are: the body itself, or its `data` (OIG).
    in_data: bool,
    limit: Option<usize>,
    all_pages: bool,
    /// Stream mode: which page to answer.
    page: Option<Page>,
}

/// `__page` of a stream call.
#[derive(Debug, PartialEq)]
enum Page {
    First,
    Next { url: String, left: Option<usize> },
}

impl Action {
    fn read(card: &str, input: &Fields<'_>) -> Result<Action, CardError> {
        let user_path = |suffix: &str| -> Result<String, CardError> {
            Ok(format!(
                "/api/v1/users/{}{suffix}",
                segment(&input.text("user")?)
            ))
        };
        let lifecycle = |operation: &str, send_email: Option<bool>| -> Result<Action, CardError> {
            let mut request =
                OktaRequest::new(Method::POST, user_path(&format!("/lifecycle/{operation}"))?);
            if let Some(send) = send_email {
                request = request.query("sendEmail", send.to_string());
            }
            Ok(Action::Call {
                request,
                empty: true,
            })
        };
        Ok(match card {
            "okta.read_user" => Action::Call {
                request: OktaRequest::get(user_path("")?),
                empty: false,
            },
            "okta.find_users" => {
                let mut request = OktaRequest::get("/api/v1/users");
                let mut given = Vec::new();
                for name in ["search", "filter", "q"] {
                    if let Some(text) = input.optional_text(name)? {
                        request = request.query(name, text);
                        given.push(name);
                    }
                }
                if given.len() > 1 {
                    return Err(invalid(
                        given[1],
                        format!(
                            "use one of `search`, `filter` and `q`, not `{}` and `{}`",
                            given[0], given[1]
                        ),
                    ));
                }
                Action::List(Listing::read(input, request, 200, false, true)?)
            }
            "okta.create_user" => {
                let profile = input.object("profile")?;
                let mut body = json!({ "profile": profile });
                if let Some(password) = input.optional_text("password")? {
                    body["credentials"] = json!({ "password": { "value": password } });
                }
                if let Some(groups) = input.optional_list("groups")? {
                    let ids = groups
                        .iter()
                        .map(|id| id.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| invalid("groups", "expected a list of group ids"))?;
                    body["groupIds"] = json!(ids);
                }
                let activate = input.boolean_or("activate", true)?;
                Action::Call {
                    request: OktaRequest::post("/api/v1/users", body)
                        .query("activate", activate.to_string()),
                    empty: false,
                }
            }
            "okta.update_user" => {
                let profile = input.object("profile")?;
                Action::Call {
                    request: OktaRequest::post(user_path("")?, json!({ "profile": profile })),
                    empty: false,
                }
            }
            "okta.activate_user" => {
                let mut action = lifecycle("activate", input.optional_boolean("send_email")?)?;
                // Without the email, Okta hands back the activation link: keep it.
                if let Action::Call { empty, .. } = &mut action {
                    *empty = false;
                }
                action
            }
            "okta.deactivate_user" => {
                lifecycle("deactivate", input.optional_boolean("send_email")?)?
            }
            "okta.suspend_user" => lifecycle("suspend", None)?,
            "okta.unsuspend_user" => lifecycle("unsuspend", None)?,
            "okta.add_user_to_group" | "okta.remove_user_from_group" => Action::OnUserId {
                user: input.text("user")?.into_owned(),
                method: if card == "okta.add_user_to_group" {
                    Method::PUT
                } else {
                    Method::DELETE
                },
                path: format!(
                    "/api/v1/groups/{}/users/{{user}}",
                    segment(&input.text("group")?)
                ),
                body: None,
                empty: true,
            },
            "okta.list_group_members" => {
                let group = segment(&input.text("group")?);
                Action::List(Listing::read(
                    input,
                    OktaRequest::get(format!("/api/v1/groups/{group}/users")),
                    1000,
                    false,
                    false,
                )?)
            }
            "okta.list_user_groups" => {
                let path = user_path("/groups")?;
                let mut listing = Listing::read(input, OktaRequest::get(path), 200, false, false)?;
                // The endpoint takes no page size.
                listing.first.query.clear();
                Action::List(listing)
            }
            "okta.assign_user_to_app" => {
                let mut body = json!({ "scope": "USER" });
                if let Some(profile) = input.optional_object("profile")? {
                    body["profile"] = Value::Object(profile.clone());
                }
                if let Some(user_name) = input.optional_text("user_name")? {
                    body["credentials"] = json!({ "userName": user_name });
                }
                Action::OnUserId {
                    user: input.text("user")?.into_owned(),
                    method: Method::POST,
                    path: format!("/api/v1/apps/{}/users", segment(&input.text("app")?)),
                    body: Some(body),
                    empty: false,
                }
            }
            "okta.search_system_log" => {
                let mut request = OktaRequest::get("/api/v1/logs");
                for name in ["filter", "q"] {
                    if let Some(text) = input.optional_text(name)? {
                        request = request.query(name, text);
                    }
                }
                for name in ["since", "until"] {
                    if let Some(at) = input.optional_datetime(name)? {
                        request = request.query(
                            name,
                            at.to_utc().to_rfc3339_opts(SecondsFormat::Millis, true),
                        );
                    }
                }
                if let Some(order) = input.optional_text("sort_order")? {
                    let order = order.to_ascii_uppercase();
                    if order != "ASCENDING" && order != "DESCENDING" {
                        return Err(invalid(
                            "sort_order",
                            "expected `ASCENDING` or `DESCENDING`",
                        ));
                    }
                    request = request.query("sortOrder", order);
                }
                Action::List(Listing::read(input, request, 1000, false, true)?)
            }
            "okta.api" => {
                let method = match input.optional_text("method")? {
                    None => Method::GET,
                    Some(text) => match text.trim().to_ascii_uppercase().as_str() {
                        "GET" => Method::GET,
                        "POST" => Method::POST,
                        "PUT" => Method::PUT,
                        "PATCH" => Method::PATCH,
                        "DELETE" => Method::DELETE,
                        other => {
                            return Err(invalid(
                                "method",
                                format!(
                                    "unknown method `{other}`; expected GET, POST, PUT, PATCH or DELETE"
                                ),
                            ));
                        }
                    },
                };
                let path = input.text("path")?;
                if !path.starts_with('/') || path.starts_with("//") {
                    return Err(invalid(
                        "path",
                        "expected a path relative to the org, starting with `/` (e.g. `/api/v1/groups`)",
                    ));
                }
                let mut request = OktaRequest::new(method, path);
                for (name, value) in input.optional_pairs("query")?.unwrap_or_default() {
                    request = request.query(name, value);
                }
                if let Some(body) = input.value("body") {
                    request = request.body(body.clone());
                }
                Action::Custom(request)
            }
            "oig.get_request" => Action::Call {
                request: OktaRequest::get(request_path(&input.text("request")?)?),
                empty: false,
            },
            "oig.list_requests" => {
                let version = input
                    .optional_text("version")?
                    .unwrap_or(Cow::Borrowed("v1"));
                if version != "v1" && version != "v2" {
                    return Err(invalid("version", "expected `v1` or `v2`"));
                }
                let mut request = OktaRequest::get(format!("/governance/api/{version}/requests"));
                if let Some(filter) = input.optional_text("filter")? {
                    request = request.query("filter", filter);
                }
                Action::List(Listing::read(input, request, 200, true, false)?)
            }
            "oig.create_request_message" => {
                let path = request_path(&input.text("request")?)?;
                let message = input.text("message")?;
                if message.chars().count() > MAX_MESSAGE_CHARS {
                    return Err(invalid(
                        "message",
                        format!(
                            "is {} characters long; Okta accepts at most {MAX_MESSAGE_CHARS}",
                            message.chars().count()
                        ),
                    ));
                }
                Action::Call {
                    request: OktaRequest::post(
                        format!("{path}/messages"),
                        json!({ "message": message }),
                    ),
                    empty: true,
                }
            }
            other => {
                return Err(CardError::Failed {
                    code: "unknown_card".into(),
                    message: format!("the okta executor does not run `{other}`"),
                    retryable: false,
                });
            }
        })
    }
}

impl Listing {
    /// Reads `limit`, `pages` and (for streamable cards) `__page`; `page_size` is the endpoint's
    /// largest page.
    fn read(
        input: &Fields<'_>,
        mut first: OktaRequest,
        page_size: usize,
        in_data: bool,
        streamable: bool,
    ) -> Result<Listing, CardError> {
        let limit = match input.optional_integer("limit")? {
            Some(n) if n < 1 => return Err(invalid("limit", "must be at least 1")),
            Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => None,
        };
        let all_pages = match input.optional_text("pages")?.as_deref() {
            None | Some("all") => true,
            Some("first") => false,
            Some(other) => {
                return Err(invalid(
                    "pages",
                    format!("expected `first` or `all`, got `{other}`"),
                ));
            }
        };
        let page = match (streamable, input.map().get("__page")) {
            (false, _) | (true, None) => None,
            (true, Some(Value::Null)) => Some(Page::First),
            (true, Some(Value::Object(next))) => match next.get("url").and_then(Value::as_str) {
                Some(url) => Some(Page::Next {
                    url: url.to_owned(),
                    left: next
                        .get("left")
                        .and_then(Value::as_u64)
                        .and_then(|n| usize::try_from(n).ok()),
                }),
                None => {
                    return Err(invalid(
                        "__page",
                        "expected the `next` of the previous page",
                    ));
                }
            },
            (true, Some(_)) => {
                return Err(invalid(
                    "__page",
                    "expected the `next` of the previous page",
                ));
            }
        };
        first = first.query(
            "limit",
            limit.unwrap_or(page_size).min(page_size).to_string(),
        );
        Ok(Listing {
            first,
            in_data,
            limit,
            all_pages,
            page,
        })
    }
}

/// Runs actions on one connection.
struct Runner<'a> {
    api: &'a dyn OktaApi,
    connection: &'a Connection,
}

impl Runner<'_> {
    async fn send(&self, request: OktaRequest) -> Result<OktaResponse, CardError> {
        Ok(self.api.send(self.connection, request).await?)
    }

    async fn run(&self, action: Action) -> Result<Value, CardError> {
        match action {
            Action::Call { request, empty } => {
                let response = self.send(request).await?;
                Ok(output(response.body, empty))
            }
            Action::OnUserId {
                user,
                method,
                path,
                body,
                empty,
            } => {
                let id = self.user_id(&user).await?;
                let mut request = OktaRequest::new(method, path.replace("{user}", &segment(&id)));
                if let Some(mut body) = body {
                    // App assignments name the user in the body.
                    if let Value::Object(map) = &mut body {
                        map.insert("id".into(), json!(id));
                    }
                    request = request.body(body);
                }
                let response = self.send(request).await?;
                Ok(output(response.body, empty))
            }
            Action::List(listing) => self.list(listing).await,
            Action::Custom(request) => {
                let response = self.send(request).await?;
                Ok(json!({
                    "status": response.status,
                    "headers": response.headers_json(),
                    "body": response.body,
                }))
            }
        }
    }

    /// The user's id: as given when it is one, else looked up by login (group and app endpoints
    /// take ids only).
    async fn user_id(&self, user: &str) -> Result<String, CardError> {
        if is_user_id(user) {
            return Ok(user.to_owned());
        }
        let response = self
            .send(OktaRequest::get(format!("/api/v1/users/{}", segment(user))))
            .await?;
        response
            .body
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| CardError::Failed {
                code: "okta_response".into(),
                message: format!("Okta answered user `{user}` without an id"),
                retryable: true,
            })
    }

    async fn list(&self, listing: Listing) -> Result<Value, CardError> {
        let Listing {
            first,
            in_data,
            limit,
            all_pages,
            page,
        } = listing;
        let streaming = page.is_some();
        let (mut request, mut left) = match page {
            None | Some(Page::First) => (first, limit),
            Some(Page::Next { url, left }) => (OktaRequest::get(url), left),
        };
        // Without a limit, a list held in one step output stays bounded.
        let implicit_cap = (!streaming && limit.is_none()).then_some(DEFAULT_MAX_RECORDS);
        if implicit_cap.is_some() {
            left = implicit_cap;
        }
        let mut collected = Vec::new();
        loop {
            let response = self.send(request).await?;
            let next = response.next_link();
            let mut records = records_of(response.body, in_data)?;
            let empty = records.is_empty();
            let overflow = left.is_some_and(|left| records.len() > left);
            if let Some(remaining) = left.as_mut() {
                records.truncate(*remaining);
                *remaining -= records.len();
            }
            collected.extend(records);
            // An empty page ends the list: the System Log's polling answers always link a next page.
            let more = next.filter(|_| all_pages && !empty && left != Some(0));
            let capped = implicit_cap.is_some() && left == Some(0) && (overflow || more.is_some());
            if capped {
                return Err(invalid(
                    "limit",
                    format!(
                        "more than {DEFAULT_MAX_RECORDS} records; set `limit`, or `stream` them to a helper flow"
                    ),
                ));
            }
            if streaming {
                let next = match more {
                    Some(url) => json!({ "url": url, "left": left }),
                    None => Value::Null,
                };
                return Ok(json!({ "records": collected, "next": next }));
            }
            match more {
                Some(url) => request = OktaRequest::get(url),
                None => return Ok(Value::Array(collected)),
            }
        }
    }
}

/// The records of a list page.
fn records_of(body: Value, in_data: bool) -> Result<Vec<Value>, CardError> {
    let records = if in_data {
        match body {
            Value::Object(mut map) => map.remove("data").unwrap_or(Value::Array(Vec::new())),
            other => other,
        }
    } else {
        body
    };
    match records {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        _ => Err(CardError::Failed {
            code: "okta_response".into(),
            message: "Okta answered a list request with something other than a list".into(),
            retryable: true,
        }),
    }
}

/// The body, or `{}` for calls whose answer carries nothing (204s, lifecycle operations).
fn output(body: Value, empty: bool) -> Value {
    match body {
        Value::Object(map) if !empty => Value::Object(map),
        Value::Array(items) if !empty => Value::Array(items),
        _ => Value::Object(Map::new()),
    }
}

/// An Okta user id: `00u` and 17 more letters or digits.
fn is_user_id(text: &str) -> bool {
    text.len() == 20 && text.starts_with("00u") && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The path of an access request: v1 ids are 24 hexadecimal characters, v2 ids `req` and 17
/// letters or digits (the governance spec's `request-id` and `rcar-request-id`).
fn request_path(id: &str) -> Result<String, CardError> {
    let id = id.trim();
    if id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(format!("/governance/api/v1/requests/{id}"))
    } else if id.len() == 20
        && id.starts_with("req")
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Ok(format!("/governance/api/v2/requests/{id}"))
    } else {
        Err(invalid(
            "request",
            format!(
                "`{}` is not an access request id: expected 24 hexadecimal characters (v1) or `req` and 17 letters or digits (v2)",
                id.chars().take(40).collect::<String>()
            ),
        ))
    }
}

/// One percent-encoded path segment.
fn segment(text: &str) -> String {
    domain::template::percent_encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Method, path, query and body of the first request.
    type Expected<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Option<Value>);

    /// Reads `input` for `card` and compares the first request (method, path, query, body) or the
    /// field of the input error.
    fn check(card: &str, input: Value, expected: Result<Expected<'_>, &str>) {
        let Value::Object(map) = &input else {
            panic!("input must be an object");
        };
        let got = Action::read(card, &Fields::lenient(map));
        let request = match &got {
            Ok(Action::Call { request, .. }) | Ok(Action::Custom(request)) => Some(request.clone()),
            Ok(Action::List(listing)) => Some(listing.first.clone()),
            Ok(Action::OnUserId {
                method, path, body, ..
            }) => Some(OktaRequest {
                method: method.clone(),
                path: path.clone(),
                query: Vec::new(),
                body: body.clone(),
            }),
            Err(_) => None,
        };
        match (got, expected) {
            (Ok(_), Ok((method, path, query, body))) => {
                let request = request.unwrap_or_else(|| OktaRequest::get(""));
                let query: Vec<(String, String)> = query
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                assert_eq!(
                    (
                        request.method.as_str(),
                        request.path.as_str(),
                        request.query,
                        request.body
                    ),
                    (method, path, query, body),
                    "{card} {input}"
                );
            }
            (Err(CardError::InvalidInput { field, .. }), Err(expected)) => {
                assert_eq!(field, expected, "{card} {input}");
            }
            (got, expected) => panic!("{card} {input}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn card_inputs_become_okta_requests() {
        check(
            "okta.read_user",
            json!({ "user": "a@example.com" }),
            Ok(("GET", "/api/v1/users/a%40example.com", &[], None)),
        );
        check("okta.read_user", json!({ "user": "" }), Err("user"));
        check("okta.read_user", json!({}), Err("user"));
        check(
            "okta.find_users",
            json!({ "search": "profile.department eq \"Sales\"", "limit": 5 }),
            Ok((
                "GET",
                "/api/v1/users",
                &[
                    ("search", "profile.department eq \"Sales\""),
                    ("limit", "5"),
                ],
                None,
            )),
        );
        check(
            "okta.find_users",
            json!({}),
            Ok(("GET", "/api/v1/users", &[("limit", "200")], None)),
        );
        check(
            "okta.find_users",
            json!({ "search": "x", "q": "y" }),
            Err("q"),
        );
        check("okta.find_users", json!({ "limit": 0 }), Err("limit"));
        check("okta.find_users", json!({ "pages": "some" }), Err("pages"));
        check("okta.find_users", json!({ "__page": 3 }), Err("__page"));
        check(
            "okta.create_user",
            json!({ "profile": { "login": "n@example.com" }, "password": "pw", "activate": false, "groups": ["00g1"] }),
            Ok((
                "POST",
                "/api/v1/users",
                &[("activate", "false")],
                Some(
                    json!({ "profile": { "login": "n@example.com" }, "credentials": { "password": { "value": "pw" } }, "groupIds": ["00g1"] }),
                ),
            )),
        );
        check(
            "okta.create_user",
            json!({ "profile": "x" }),
            Err("profile"),
        );
        check(
            "okta.create_user",
            json!({ "profile": {}, "groups": [1] }),
            Err("groups"),
        );
        check(
            "okta.update_user",
            json!({ "user": "00u1", "profile": { "isMemberOfGroup": true } }),
            Ok((
                "POST",
                "/api/v1/users/00u1",
                &[],
                Some(json!({ "profile": { "isMemberOfGroup": true } })),
            )),
        );
        check(
            "okta.activate_user",
            json!({ "user": "00u1", "send_email": false }),
            Ok((
                "POST",
                "/api/v1/users/00u1/lifecycle/activate",
                &[("sendEmail", "false")],
                None,
            )),
        );
        check(
            "okta.suspend_user",
            json!({ "user": "00u1" }),
            Ok(("POST", "/api/v1/users/00u1/lifecycle/suspend", &[], None)),
        );
        check(
            "okta.deactivate_user",
            json!({ "user": "00u1", "send_email": "maybe" }),
            Err("send_email"),
        );
        check(
            "okta.add_user_to_group",
            json!({ "user": "a@example.com", "group": "00g1" }),
            Ok(("PUT", "/api/v1/groups/00g1/users/{user}", &[], None)),
        );
        check(
            "okta.remove_user_from_group",
            json!({ "user": "00u1" }),
            Err("group"),
        );
        check(
            "okta.search_system_log",
            json!({ "filter": "eventType eq \"user.session.start\"", "since": "2025-01-01T00:00:00+01:00", "until": 1735693200, "sort_order": "descending", "limit": 50 }),
            Ok((
                "GET",
                "/api/v1/logs",
                &[
                    ("filter", "eventType eq \"user.session.start\""),
                    ("since", "2024-12-31T23:00:00.000Z"),
                    ("until", "2025-01-01T01:00:00.000Z"),
                    ("sortOrder", "DESCENDING"),
                    ("limit", "50"),
                ],
                None,
            )),
        );
        check(
            "okta.search_system_log",
            json!({ "since": "yesterday" }),
            Err("since"),
        );
        check(
            "okta.search_system_log",
            json!({ "sort_order": "up" }),
            Err("sort_order"),
        );
        check(
            "okta.api",
            json!({ "method": "post", "path": "/api/v1/groups", "query": { "a": [1, 2], "b": null }, "body": { "profile": { "name": "G" } } }),
            Ok((
                "POST",
                "/api/v1/groups",
                &[("a", "1"), ("a", "2")],
                Some(json!({ "profile": { "name": "G" } })),
            )),
        );
        check(
            "okta.api",
            json!({ "path": "https://evil.example.com/x" }),
            Err("path"),
        );
        check(
            "okta.api",
            json!({ "path": "/x", "method": "TRACE" }),
            Err("method"),
        );
        check(
            "oig.get_request",
            json!({ "request": "0123456789abcdef01234567" }),
            Ok((
                "GET",
                "/governance/api/v1/requests/0123456789abcdef01234567",
                &[],
                None,
            )),
        );
        check(
            "oig.get_request",
            json!({ "request": "reqp1pmpjhVdGEcVK1d5" }),
            Ok((
                "GET",
                "/governance/api/v2/requests/reqp1pmpjhVdGEcVK1d5",
                &[],
                None,
            )),
        );
        check(
            "oig.get_request",
            json!({ "request": "00u1" }),
            Err("request"),
        );
        check(
            "oig.list_requests",
            json!({ "version": "v2", "filter": "status eq \"PENDING\"" }),
            Ok((
                "GET",
                "/governance/api/v2/requests",
                &[("filter", "status eq \"PENDING\""), ("limit", "200")],
                None,
            )),
        );
        check(
            "oig.list_requests",
            json!({ "version": "v3" }),
            Err("version"),
        );
        check(
            "oig.create_request_message",
            json!({ "request": "reqp1pmpjhVdGEcVK1d5", "message": "hello" }),
            Ok((
                "POST",
                "/governance/api/v2/requests/reqp1pmpjhVdGEcVK1d5/messages",
                &[],
                Some(json!({ "message": "hello" })),
            )),
        );
        check(
            "oig.create_request_message",
            json!({ "request": "reqp1pmpjhVdGEcVK1d5", "message": "" }),
            Err("message"),
        );
        check(
            "oig.create_request_message",
            json!({ "request": "0123456789abcdef01234567", "message": "é".repeat(5001) }),
            Err("message"),
        );
    }

    #[test]
    fn every_card_of_the_contract_is_registered() {
        let names: Vec<&str> = domain::cards::okta::CARDS
            .iter()
            .chain(domain::cards::okta::OIG_CARDS)
            .map(|card| card.name)
            .collect();
        for name in [
            "okta.read_user",
            "okta.find_users",
            "okta.create_user",
            "okta.update_user",
            "okta.activate_user",
            "okta.deactivate_user",
            "okta.suspend_user",
            "okta.unsuspend_user",
            "okta.add_user_to_group",
            "okta.remove_user_from_group",
            "okta.list_group_members",
            "okta.list_user_groups",
            "okta.assign_user_to_app",
            "okta.search_system_log",
            "okta.api",
            "oig.get_request",
            "oig.list_requests",
            "oig.create_request_message",
        ] {
            assert!(names.contains(&name), "{name} missing");
            assert!(
                domain::cards::lookup(name).is_some(),
                "{name} not in the registry"
            );
        }
    }
}
