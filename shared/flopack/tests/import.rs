//! Imports small exports built for each behaviour and runs the written flows with idflow's flow
//! tests (stubbed I/O cards, real pure cards), so each test checks what the imported flow does, not
//! only what it looks like.

mod fixture;

use fixture::{
    body, chain, connector, flow, helper_start, import, kernel, pack, read, run_flow_test,
};
use serde_json::{Value, json};

#[test]
fn a_helper_called_with_call_flow_returns_its_value() {
    let helper = chain(
        vec![
            helper_start("h", &[("h-first", "First Name"), ("h-last", "Last Name")])
                .pin("h-first", "cat", "cat-1")
                .pin("h-last", "cat", "cat-3")
                .build(),
            kernel("cat", "string", "concat", "Concatenate")
                .input("cat-1", None, "string1", "string", json!(""))
                .input("cat-2", None, "string2", "string", json!("."))
                .input("cat-3", None, "last", "string", json!(""))
                .output("cat-out", None, "output", "string")
                .pin("cat-out", "low", "low-in")
                .build(),
            kernel("low", "string", "toLowerCase", "To Lower Case")
                .input("low-in", None, "string", "string", json!(""))
                .output("low-out", None, "output", "string")
                .pin("low-out", "ret", "ret-email")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-email", None, "email", "string", json!(""))
                .build(),
        ],
        &["h", "cat", "low", "ret"],
    );
    let main = chain(
        vec![
            helper_start("m", &[("m-given", "Given"), ("m-family", "Family")])
                .pin("m-given", "call", "call-first")
                .pin("m-family", "call", "call-last")
                .build(),
            kernel("call", "control", "spawn", "Call Flow")
                .input("call-flo", None, "flo", "flo", json!("helper-uuid"))
                .input("call-first", None, "First Name", "string", json!(""))
                .input("call-last", None, "Last Name", "string", json!(""))
                .output("call-email", None, "email", "string")
                .pin("call-email", "say", "say-email")
                .build(),
            kernel("say", "string", "compose", "Compose")
                .input(
                    "say-text",
                    None,
                    "_text_",
                    "string",
                    json!("Email: {{{say-email-key}}}"),
                )
                .input("say-email", None, "say-email-key", "string", json!(""))
                .output("say-out", None, "output", "string")
                .pin("say-out", "done", "done-message")
                .build(),
            kernel("done", "control", "return", "Return")
                .input("done-message", None, "message", "string", json!(""))
                .build(),
        ],
        &["m", "call", "say", "done"],
    );
    let text = pack()
        .flow(flow("helper-uuid", "Make Email", helper))
        .flow(flow("main-uuid", "Greet Someone", main))
        .text();
    let (import, dir) = import(text, "call-flow");
    let report = import.report();
    assert!(
        report
            .flows
            .iter()
            .all(|f| f.status == flopack::Status::Exact),
        "{report:#?}"
    );
    let helper = read(&dir, "make-email.yaml");
    assert!(
        helper.contains("helper:") && helper.contains("first_name: text"),
        "{helper}"
    );
    run_flow_test(
        &dir,
        "greet-someone",
        r#"
cases:
  - name: the helper's returned value reaches the caller
    input: { Given: "Ada", Family: "Lovelace" }
    expect:
      return: { body: { message: "Email: ada.lovelace" } }
      calls:
        - card: flow.call
          input: { flow: make-email, with: { first_name: Ada, last_name: Lovelace } }
"#,
    );
}

/// An Okta event flow as Okta Workflows builds it: the event card hands a batch to For Each -
/// Ignore Errors, whose inline flow reads the event through expand cards.
fn event_flow() -> Value {
    let inline = body(
        vec![
            kernel("in", "control", "callable", "User Added to Group")
                .object_output(
                    "in-user",
                    Some("Output"),
                    "Okta User",
                    &["ID", "Alternate ID", "Display Name", "Type"],
                )
                .object_output(
                    "in-group",
                    Some("Output"),
                    "Group",
                    &["ID", "Alternate ID", "Display Name", "Type"],
                )
                .pin("in-user", "x-user", "x-user-in")
                .pin("in-group", "x-group", "x-group-in")
                .build(),
            kernel("x-user", "object", "expand", "in")
                .input("x-user-in", None, "object", "object", json!({}))
                .output("x-user-k", Some("g1"), "key", "string")
                .output("x-user-v", Some("g1"), "value", "string")
                .pin("x-user-v", "read", "read-id")
                .build()
                .pipe(|mut card| {
                    card["node"]["model"]["outputs"]["data"]["x-user-k"]["value"]["data"] =
                        json!(["ID"]);
                    card
                }),
            kernel("x-group", "object", "expand", "in")
                .input("x-group-in", None, "object", "object", json!({}))
                .output("x-group-k", Some("g2"), "key", "string")
                .output("x-group-v", Some("g2"), "value", "string")
                .pin("x-group-v", "only", "only-left")
                .build()
                .pipe(|mut card| {
                    card["node"]["model"]["outputs"]["data"]["x-group-k"]["value"]["data"] =
                        json!(["Display Name"]);
                    card
                }),
            kernel("only", "control", "continueIf", "Continue If")
                .input("only-left", None, "left-operand", "string", json!(""))
                .input("only-op", None, "operator", "string", json!("=="))
                .input(
                    "only-right",
                    None,
                    "right-operand",
                    "string",
                    json!("Engineering"),
                )
                .build(),
            connector("read", "okta", "readUser", "Read User")
                .input("read-id", Some("User"), "ID or Login", "string", json!(""))
                .output(
                    "read-first",
                    Some("Profile Properties"),
                    "firstName",
                    "string",
                )
                .output("read-login", Some("Profile Properties"), "login", "string")
                .pin("read-first", "hello", "hello-first")
                .build(),
            kernel("hello", "string", "compose", "Compose")
                .input(
                    "hello-text",
                    None,
                    "_text_",
                    "string",
                    json!("Welcome to engineering, {{{f}}}!"),
                )
                .input("hello-first", None, "f", "string", json!(""))
                .output("hello-out", None, "output", "string")
                .build(),
        ],
        &[
            ("in", "x-user"),
            ("x-user", "x-user"),
            ("in", "only"),
            ("only", "read"),
            ("read", "hello"),
        ],
    );
    chain(
        vec![
            connector(
                "event",
                "okta",
                "userAddedToGroupMembership",
                "User Added to Group",
            )
            .input("event-type", None, "type", "string", json!("invoke"))
            .input("event-data", None, "data", "object", json!({}))
            .list_output("event-batch", None, "collection")
            .pin("event-batch", "each", "each-list")
            .build(),
            kernel("each", "list", "asyncEach", "For Each - Ignore Errors")
                .list_input("each-list", "list", "object")
                .subflow("each-flo", None, inline)
                .input("each-n", None, "concurrency", "number", json!(1))
                .build(),
        ],
        &["event", "each"],
    )
}

trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}
impl Pipe for Value {}

#[test]
fn an_event_batch_becomes_one_run_per_event_with_okta_fields_read_from_the_event() {
    let text = pack()
        .flow(flow("event-uuid", "Welcome Engineers", event_flow()))
        .text();
    let (import, dir) = import(text, "event");
    let written = read(&dir, "welcome-engineers.yaml");
    assert!(written.contains("group.user_membership.add"), "{written}");
    assert!(
        !written.contains("for_each"),
        "the batch loop is gone: {written}"
    );
    assert_eq!(import.report().flows[0].trigger, "event");
    let config = read(&dir, "idflow.yaml");
    assert!(
        config.contains("OKTA_EVENT_HOOK_SECRET") && config.contains("OKTA_API_TOKEN"),
        "{config}"
    );
    run_flow_test(
        &dir,
        "welcome-engineers",
        r#"
cases:
  - name: reads the user the event names and welcomes them
    event:
      eventType: group.user_membership.add
      target:
        - { id: 00u1, type: User, alternateId: ada@example.com, displayName: Ada }
        - { id: 00g1, type: UserGroup, alternateId: unknown, displayName: Engineering }
    stubs:
      - card: okta.read_user
        output: { id: 00u1, status: ACTIVE, profile: { firstName: Ada, login: ada@example.com } }
    expect:
      calls:
        - { card: okta.read_user, input: { user: 00u1 }, count: 1 }
      steps:
        compose: { output: "Welcome to engineering, Ada!" }
  - name: stops quietly for another group
    event:
      eventType: group.user_membership.add
      target:
        - { id: 00u2, type: User, alternateId: bob@example.com, displayName: Bob }
        - { id: 00g2, type: UserGroup, alternateId: unknown, displayName: Sales }
    expect:
      status: succeeded
      not_called: [okta.read_user]
"#,
    );
}

#[test]
fn if_else_runs_one_branch_and_its_join_carries_that_branch_value() {
    let flow_body = body(
        vec![
            helper_start("s", &[("s-color", "Color")])
                .pin("s-color", "if", "if-left")
                .pin("s-color", "say", "say-color")
                .build(),
            kernel("if", "control", "if", "If/Else")
                .input("if-left", None, "left-operand", "string", json!(""))
                .input("if-op", None, "operator", "string", json!("=="))
                .input("if-right", None, "right-operand", "string", json!("Red"))
                .output("if-result", None, "result", "boolean")
                .branches("yes", "no")
                .build(),
            kernel("yes", "control", "noop", "Noop").build(),
            kernel("no", "control", "noop", "Noop").build(),
            kernel("sith", "string", "compose", "Compose")
                .input("sith-text", None, "_text_", "string", json!("Sith"))
                .output("sith-out", None, "output", "string")
                .pin("sith-out", "join", "join-in")
                .build(),
            kernel("jedi", "string", "compose", "Compose")
                .input("jedi-text", None, "_text_", "string", json!("Jedi"))
                .output("jedi-out", None, "output", "string")
                .pin("jedi-out", "join", "join-in")
                .build(),
            kernel("join", "control", "join", "Join")
                .input("join-in", None, "Side", "string", json!(""))
                .output("join-out", None, "Side", "string")
                .join("join-in", "join-out")
                .pin("join-out", "say", "say-side")
                .build(),
            kernel("say", "string", "compose", "Compose")
                .input(
                    "say-text",
                    None,
                    "_text_",
                    "string",
                    json!("{{{a}}} because the saber is {{{b}}}"),
                )
                .input("say-side", None, "a", "string", json!(""))
                .input("say-color", None, "b", "string", json!(""))
                .output("say-out", None, "output", "string")
                .pin("say-out", "ret", "ret-in")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-in", None, "verdict", "string", json!(""))
                .build(),
        ],
        &[
            ("s", "if"),
            ("yes", "sith"),
            ("yes", "join"),
            ("sith", "join"),
            ("no", "jedi"),
            ("no", "join"),
            ("jedi", "join"),
            ("join", "say"),
            ("say", "ret"),
        ],
    );
    let (_, dir) = import(
        pack().flow(flow("f", "Sith or Jedi", flow_body)).text(),
        "if-else",
    );
    run_flow_test(
        &dir,
        "sith-or-jedi",
        r#"
cases:
  - name: red takes the true branch
    input: { Color: Red }
    expect:
      return: { body: { verdict: "Sith because the saber is Red" } }
  - name: blue takes the false branch
    input: { Color: Blue }
    expect:
      return: { body: { verdict: "Jedi because the saber is Blue" } }
"#,
    );
}

#[test]
fn an_api_endpoint_answers_with_return_raw_behind_a_client_token() {
    let flow_body = chain(
        vec![
            kernel("api", "http", "accept", "API Endpoint")
                .output("api-body", Some("raw"), "body", "string")
                .output("api-query", Some("raw"), "query", "string")
                .pin_convert("api-body", "pick", "pick-in", "parse")
                .build(),
            kernel("pick", "object", "pick", "Get Multiple")
                .input("pick-in", None, "object", "object", json!({}))
                .output("pick-email", None, "user.email", "string")
                .pin("pick-email", "split", "split-in")
                .build(),
            kernel("split", "string", "split", "Split")
                .input("split-in", None, "string", "string", json!(""))
                .input("split-by", None, "delimiter", "string", json!("@"))
                .output("split-out", None, "output", "string")
                .pin("split-out", "last", "last-in")
                .build(),
            kernel("last", "list", "pop", "Get Last Item")
                .list_input("last-in", "list", "string")
                .output("last-list", None, "list", "string")
                .output("last-item", None, "item", "string")
                .pin("last-item", "obj", "obj-domain")
                .build(),
            kernel("obj", "object", "construct", "Construct")
                .input("obj-domain", None, "result.domain", "string", json!(""))
                .output("obj-out", None, "output", "object")
                .pin_convert("obj-out", "raw", "raw-body", "stringify")
                .build(),
            kernel("raw", "control", "returnRaw", "Return Raw")
                .input("raw-status", None, "statusCode", "number", json!(201))
                .input("raw-headers", None, "headers", "object", json!({}))
                .input("raw-body", None, "body", "string", json!(""))
                .build(),
        ],
        &["api", "pick", "split", "last", "obj", "raw"],
    );
    let (_, dir) = import(
        pack()
            .flow(flow("f", "Domain Of", flow_body).security("medium"))
            .text(),
        "api",
    );
    let written = read(&dir, "domain-of.yaml");
    assert!(written.contains("auth: token"), "{written}");
    assert!(written.contains("env:DOMAIN_OF_CLIENT_TOKEN"), "{written}");
    assert!(written.contains("respond: sync"), "{written}");
    run_flow_test(
        &dir,
        "domain-of",
        r#"
cases:
  - name: answers with the domain of the posted address
    input: { body: { user: { email: ada@example.com } } }
    expect:
      return: { status: 201, body: { result: { domain: example.com } } }
"#,
    );
}

#[test]
fn table_cards_use_the_tables_the_export_declares() {
    let flow_body = chain(
        vec![
            helper_start("s", &[("s-domain", "Domain")])
                .pin("s-domain", "find", "find-expr")
                .build(),
            connector("find", "stash", "searchRows2", "Search Rows")
                .input("find-table", Some("parameters"), "stash", "string", json!("table-1"))
                .input("find-set", Some("parameters"), "resultSet", "string", json!("one"))
                .input(
                    "find-where",
                    Some("Filter"),
                    "Where Expression",
                    "object",
                    json!({ "expr": [{ "lhs": "Domain Name", "op": "=", "join": "AND", "rhd": { "methodId": "s", "outputId": "s-domain" } }] }),
                )
                .input("find-expr", Some("_expr"), "s-domain", "string", json!(""))
                .output("find-row", Some("Row"), "Row ID", "string")
                .output("find-owner", Some("Fields"), "Owner", "string")
                .pin("find-row", "ret", "ret-found")
                .pin("find-owner", "ret", "ret-owner")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-found", None, "row", "string", json!(""))
                .input("ret-owner", None, "owner", "string", json!(""))
                .build(),
        ],
        &["s", "find", "ret"],
    );
    let text = pack()
        .table(
            "table-1",
            "Allowed Domains",
            &[("Domain Name", "str"), ("Owner", "str"), ("Added", "dte")],
        )
        .flow(flow("f", "Who Owns", flow_body))
        .text();
    let (_, dir) = import(text, "tables");
    let table = read(&dir, "tables/allowed_domains.yaml");
    assert!(
        table.contains("domain_name: text") && table.contains("added: datetime"),
        "{table}"
    );
    run_flow_test(
        &dir,
        "who-owns",
        r#"
cases:
  - name: finds the row by its column
    input: { Domain: example.com }
    stubs:
      - card: table.search_rows
        output: { rows: [{ key: r1, version: 1, row: { domain_name: example.com, owner: Ada, added: null } }], cursor: null }
    expect:
      return: { body: { row: r1, owner: Ada } }
      calls:
        - card: table.search_rows
          input: { table: allowed_domains, where: { domain_name: example.com }, limit: 1 }
  - name: an absent row reads as empty, as in Okta Workflows
    input: { Domain: nowhere.example }
    stubs:
      - card: table.search_rows
        output: { rows: [], cursor: null }
    expect:
      return: { body: { row: null, owner: null } }
"#,
    );
}

#[test]
fn if_error_runs_the_handler_with_the_error_message() {
    let guarded = chain(
        vec![
            kernel("g", "control", "callable", "Helper Flow")
                .output("g-login", Some("context"), "k-login", "string")
                .pin("g-login", "create", "create-login")
                .build(),
            connector("create", "okta", "createUser", "Create User")
                .input(
                    "create-login",
                    Some("Profile"),
                    "login",
                    "string",
                    json!(""),
                )
                .output("create-id", Some("Results"), "ID", "string")
                .pin("create-id", "ok", "ok-in")
                .build(),
            kernel("ok", "control", "return", "Return")
                .input("ok-in", None, "Message", "string", json!(""))
                .build(),
        ],
        &["g", "create", "ok"],
    );
    let handler = chain(
        vec![
            kernel("e", "control", "callable", "Helper Flow")
                .object_output("e-error", Some("context"), "error", &["message"])
                .pin("e-error", "ex", "ex-in")
                .build(),
            kernel("ex", "object", "expand", "e")
                .input("ex-in", None, "object", "object", json!({}))
                .output("ex-k", Some("m"), "key", "string")
                .output("ex-v", Some("m"), "value", "string")
                .pin("ex-v", "say", "say-m")
                .build()
                .pipe(|mut card| {
                    card["node"]["model"]["outputs"]["data"]["ex-k"]["value"]["data"] =
                        json!(["message"]);
                    card
                }),
            kernel("say", "string", "compose", "Compose")
                .input(
                    "say-text",
                    None,
                    "_text_",
                    "string",
                    json!("failed: {{{m}}}"),
                )
                .input("say-m", None, "m", "string", json!(""))
                .output("say-out", None, "output", "string")
                .pin("say-out", "bad", "bad-in")
                .build(),
            kernel("bad", "control", "return", "Return")
                .input("bad-in", None, "Message", "string", json!(""))
                .build(),
        ],
        &["e", "say", "bad"],
    );
    let flow_body = chain(
        vec![
            helper_start("s", &[("s-login", "Login")])
                .pin("s-login", "try", "try-login")
                .build(),
            kernel("try", "control", "tryCatch", "If Error")
                .subflow("try-flo", None, guarded)
                .input(
                    "try-login",
                    Some("context"),
                    "k-login",
                    "string",
                    Value::Null,
                )
                .output("try-message", None, "Message", "string")
                .handler(handler)
                .pin("try-message", "ret", "ret-in")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-in", None, "outcome", "string", json!(""))
                .build(),
        ],
        &["s", "try", "ret"],
    );
    let (_, dir) = import(
        pack()
            .flow(flow("f", "Create Or Explain", flow_body))
            .text(),
        "if-error",
    );
    run_flow_test(
        &dir,
        "create-or-explain",
        r#"
cases:
  - name: the created user's id when Okta accepts
    input: { Login: ada@example.com }
    stubs:
      - card: okta.create_user
        output: { id: 00u1, status: ACTIVE, profile: { login: ada@example.com } }
    expect:
      return: { body: { outcome: 00u1 } }
      calls:
        - card: okta.create_user
          input: { profile: { login: ada@example.com } }
  - name: the handler's message when Okta refuses
    input: { Login: ada@example.com }
    stubs:
      - card: okta.create_user
        error: { status: 400, message: "login already exists" }
    expect:
      return: { body: { outcome: "failed: login already exists" } }
"#,
    );
}

#[test]
fn for_each_hands_each_user_to_the_helper_with_okta_field_names() {
    let helper = chain(
        vec![
            helper_start("h", &[("h-user", "User")])
                .pin("h-user", "pick", "pick-in")
                .build(),
            kernel("pick", "object", "pick", "Get Multiple")
                .input("pick-in", None, "object", "object", json!({}))
                .output("pick-id", None, "ID", "string")
                .output("pick-first", None, "First Name", "string")
                .pin("pick-id", "row", "row-id")
                .pin("pick-first", "row", "row-first")
                .build(),
            connector("row", "stash", "createRow", "Create Row")
                .input(
                    "row-table",
                    Some("parameters"),
                    "stash",
                    "string",
                    json!("t1"),
                )
                .input("row-id", Some("Fields"), "ID", "string", json!(""))
                .input(
                    "row-first",
                    Some("Fields"),
                    "First Name",
                    "string",
                    json!(""),
                )
                .build(),
        ],
        &["h", "pick", "row"],
    );
    let main = chain(
        vec![
            kernel("start", "control", "noop", "Noop").build(),
            connector(
                "users",
                "okta",
                "listUsersWithSearch",
                "List Users with Search",
            )
            .input(
                "users-set",
                Some("parameters"),
                "resultSet",
                "string",
                json!("First 200 Matching Records"),
            )
            .input(
                "users-status",
                Some("Inputs"),
                "status",
                "string",
                json!("ACTIVE"),
            )
            .list_output("users-out", Some("Result"), "Users")
            .pin("users-out", "each", "each-list")
            .build(),
            kernel("each", "list", "each", "For Each")
                .list_input("each-list", "list", "object")
                .input("each-flo", None, "flo", "flo", json!("helper-uuid"))
                .input("each-n", None, "concurrency", "number", json!(5))
                .item_input("each-user", "User", "")
                .build(),
        ],
        &["start", "users", "each"],
    );
    let text = pack()
        .table("t1", "Users", &[("ID", "str"), ("First Name", "str")])
        .flow(flow("helper-uuid", "Save User", helper))
        .flow(flow("main-uuid", "Save Active Users", main))
        .text();
    let (_, dir) = import(text, "for-each");
    run_flow_test(
        &dir,
        "save-active-users",
        r#"
cases:
  - name: each user's Okta fields reach the table
    stubs:
      - card: okta.find_users
        output: [{ id: 00u1, status: ACTIVE, profile: { firstName: Ada, login: ada@example.com } }]
      - card: table.create_row
        output: { key: r1, version: 1, row: {} }
    expect:
      calls:
        - card: okta.find_users
          input: { search: 'status eq "ACTIVE"', limit: 200 }
        - card: table.create_row
          input: { table: users, row: { id: 00u1, first_name: Ada } }
          count: 1
"#,
    );
}

#[test]
fn a_scheduled_flow_keeps_its_cron_and_time_zone() {
    let flow_body = chain(
        vec![
            kernel("s", "control", "callable", "Scheduled Flow")
                .output("s-time", Some("context"), "execution_time", "string")
                .pin("s-time", "ret", "ret-in")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-in", None, "ran", "string", json!(""))
                .build(),
        ],
        &["s", "ret"],
    );
    let cron = json!({ "seconds": "00", "minutes": "30", "hours": "2", "dayOfTheMonth": "*", "month": "*",
        "dayOfTheWeek": "0,4", "startDate": "", "endDate": "", "recurrence": 0, "timeZone": "America/Pacific" });
    let (_, dir) = import(
        pack()
            .flow(flow("f", "Twice a Week", flow_body).scheduled(cron))
            .text(),
        "schedule",
    );
    let written = read(&dir, "twice-a-week.yaml");
    assert!(
        written.contains("cron: \"30 2 ? * SUN,THU *\""),
        "{written}"
    );
    assert!(
        written.contains("timezone: America/Los_Angeles"),
        "{written}"
    );
    run_flow_test(
        &dir,
        "twice-a-week",
        r#"
now: 2026-01-08T10:30:00Z
cases:
  - name: the execution time is the schedule time
    expect:
      return: { body: { ran: "2026-01-08T10:30:00+00:00" } }
"#,
    );
}

/// Why a Reduce card is left for a person.
const REDUCE_GAP: &str = "Okta's Reduce runs a helper flow per item, which may call other cards; idflow's `list.reduce` folds with an expression (`memo`, `item`): rewrite the helper as one, or collect with `map` and fold the results";

#[test]
fn cards_idflow_lacks_become_failing_steps_named_in_the_report() {
    let flow_body = chain(
        vec![
            helper_start("s", &[("s-list", "Items")])
                .pin("s-list", "fold", "fold-list")
                .build(),
            kernel("fold", "list", "reduce", "Reduce")
                .list_input("fold-list", "list", "string")
                .input("fold-flo", None, "flo", "flo", json!("nowhere"))
                .output("fold-out", None, "item", "string")
                .pin("fold-out", "odd", "odd-in")
                .build(),
            connector("odd", "acme", "doThings", "Do Acme Things")
                .input("odd-in", None, "what", "string", json!(""))
                .build(),
        ],
        &["s", "fold", "odd"],
    );
    let (import, dir) = import(
        pack().flow(flow("f", "Needs Work", flow_body)).text(),
        "gaps",
    );
    let report: Value = serde_json::from_str(&import.report().to_json()).expect("JSON");
    assert_eq!(
        report,
        json!({ "flows": [{
            "flow": "needs-work",
            "file": "needs-work.yaml",
            "trigger": "helper",
            "status": "partial",
            "unconverted": [
                { "card": "Reduce", "address": "root:kernel:list:0.0.1:reduce", "reason": REDUCE_GAP },
                { "card": "Do Acme Things", "address": "root:channels:http:acme:1.0.0:doThings", "reason": "no idflow equivalent known for `acme:doThings` cards" },
            ],
        }]})
    );
    let written = read(&dir, "needs-work.yaml");
    assert!(
        written.contains("TODO: Reduce (Okta's Reduce runs a helper flow per item"),
        "{written}"
    );
    run_flow_test(
        &dir,
        "needs-work",
        r#"
cases:
  - name: stops loudly at the first card to finish by hand
    input: { Items: [a, b] }
    expect:
      error: { code: step_failed, step: reduce }
      steps:
        reduce: { error: { code: not_imported } }
"#,
    );
}

#[test]
fn a_delegated_flow_takes_typed_inputs_from_a_declared_caller() {
    let flow_body = chain(
        vec![
            kernel("d", "http", "delegated", "Delegated Flow")
                .output("d-email", Some("inputs"), "Email Address", "string")
                .output("d-user", Some("user context"), "okta-user-id", "string")
                .pin("d-email", "ret", "ret-in")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-in", None, "email", "string", json!(""))
                .build(),
        ],
        &["d", "ret"],
    );
    let (import, dir) = import(
        pack()
            .flow(flow("f", "Run By Admins", flow_body).security("high"))
            .text(),
        "delegated",
    );
    let written = read(&dir, "run-by-admins.yaml");
    assert!(
        written.contains("delegated:") && written.contains("email_address:"),
        "{written}"
    );
    let config = read(&dir, "idflow.yaml");
    assert!(config.contains("okta-delegated:"), "{config}");
    assert!(domain::flowfile::load_dir(&dir).is_valid());
    assert_eq!(import.report().flows[0].status, flopack::Status::Exact);
    run_flow_test(
        &dir,
        "run-by-admins",
        r#"
cases:
  - name: the typed input reaches the flow
    input: { email_address: ada@example.com }
    expect:
      return: { body: { email: ada@example.com } }
"#,
    );
}

#[test]
fn okta_custom_api_actions_and_connections_become_okta_api_calls() {
    let flow_body = chain(
        vec![
            kernel("start", "control", "noop", "Noop").build(),
            connector("api", "okta", "hTTPRequest", "Custom API Action")
                .config("conn-2")
                .retry(2, 3000)
                .input(
                    "api-method",
                    Some("parameters"),
                    "requestType",
                    "string",
                    json!("POST"),
                )
                .input(
                    "api-url",
                    Some("Request"),
                    "Relative URL",
                    "string",
                    json!("/api/v1/groups"),
                )
                .input(
                    "api-body",
                    Some("Request"),
                    "Body",
                    "object",
                    json!({ "profile": { "name": "Builders" } }),
                )
                .output("api-status", Some("Response"), "Status Code", "number")
                .output("api-out", Some("Response"), "Body", "object")
                .pin("api-out", "ret", "ret-in")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-in", None, "group", "object", json!({}))
                .build(),
        ],
        &["start", "api", "ret"],
    );
    let text = pack()
        .config("conn-1", "okta", "acme.okta.com")
        .config("conn-2", "okta", "Second Org")
        .flow(flow("f", "Make Group", flow_body))
        .text();
    let (_, dir) = import(text, "okta-api");
    let config = read(&dir, "idflow.yaml");
    assert!(
        config.contains("domain: \"https://acme.okta.com\""),
        "{config}"
    );
    assert!(
        config.contains("okta-2:") && config.contains("env:OKTA_2_API_TOKEN"),
        "{config}"
    );
    let written = read(&dir, "make-group.yaml");
    assert!(written.contains("connection: okta-2"), "{written}");
    assert!(
        written.contains("max: 3") && written.contains("backoff: \"3s\""),
        "{written}"
    );
    run_flow_test(
        &dir,
        "make-group",
        r#"
cases:
  - name: posts to the org through the connection the card used
    stubs:
      - card: okta.api
        output: { status: 200, headers: {}, body: { id: 00g1 } }
    expect:
      return: { body: { group: { id: 00g1 } } }
      calls:
        - card: okta.api
          input: { method: POST, path: /api/v1/groups, body: { profile: { name: Builders } }, connection: okta-2 }
"#,
    );
}

#[test]
fn not_a_flopack_is_refused_by_name_and_nothing_is_written() {
    for text in [
        "",
        "[1, 2]",
        "{\"type\": \"workflow\"}",
        "{\"data\": {}}",
        "not json",
    ] {
        let error = flopack::import_texts(&[("bad.json".into(), text.into())])
            .err()
            .unwrap_or_else(|| panic!("{text:?} imported"));
        let message = error.to_string();
        assert!(message.starts_with("not a flopack: bad.json"), "{message}");
        assert!(error.is_bad_input());
    }
}

#[test]
fn an_existing_project_is_never_overwritten() {
    let text = pack()
        .flow(flow(
            "f",
            "Only One",
            chain(vec![kernel("n", "control", "noop", "Noop").build()], &["n"]),
        ))
        .text();
    let (import, dir) = import(text, "no-overwrite");
    let before = read(&dir, "only-one.yaml");
    let error = import.write(&dir).expect_err("the files exist");
    assert!(error.to_string().contains("already holds"), "{error}");
    assert_eq!(read(&dir, "only-one.yaml"), before);
}

#[test]
fn find_find_last_random_and_jwt_sign_become_idflow_cards() {
    let flow_body = chain(
        vec![
            helper_start("s", &[("s-path", "Path")])
                .pin("s-path", "first", "first-in")
                .pin("s-path", "last", "last-in")
                .pin("s-path", "sign", "sign-sub")
                .build(),
            kernel("first", "string", "find", "Find")
                .input("first-in", None, "string", "string", json!(""))
                .input("first-for", None, "substr", "string", json!("/"))
                .output("first-out", None, "output", "number")
                .pin("first-out", "ret", "ret-first")
                .build(),
            kernel("last", "string", "lastIndexOf", "Find Last")
                .input("last-in", None, "string", "string", json!(""))
                .input("last-for", None, "substr", "string", json!("/"))
                .input("last-at", None, "index", "number", Value::Null)
                .output("last-out", None, "output", "number")
                .pin("last-out", "ret", "ret-last")
                .build(),
            kernel("dice", "math", "random", "Random Integer")
                .input("dice-a", None, "a", "number", json!(3))
                .input("dice-b", None, "b", "number", json!(4))
                .output("dice-out", None, "output", "number")
                .pin("dice-out", "ret", "ret-dice")
                .build(),
            kernel("sign", "jwt", "sign", "Sign")
                .input(
                    "sign-key",
                    None,
                    "key",
                    "string",
                    json!("-----BEGIN PRIVATE KEY----- pasted"),
                )
                .input(
                    "sign-alg",
                    Some("options"),
                    "algorithm",
                    "string",
                    json!("HS256"),
                )
                .input(
                    "sign-exp",
                    Some("options"),
                    "expiresIn",
                    "number",
                    json!("10 minutes"),
                )
                .input("sign-sub", Some("options"), "subject", "string", json!(""))
                .input(
                    "sign-scope",
                    Some("payload"),
                    "scope",
                    "string",
                    json!("read"),
                )
                .output("sign-out", None, "token", "string")
                .pin("sign-out", "ret", "ret-token")
                .build(),
            kernel("ret", "control", "return", "Return")
                .input("ret-first", None, "first", "number", json!(""))
                .input("ret-last", None, "last", "number", json!(""))
                .input("ret-dice", None, "dice", "number", json!(""))
                .input("ret-token", None, "token", "string", json!(""))
                .build(),
        ],
        &["s", "first", "last", "dice", "sign", "ret"],
    );
    let (import, dir) = import(
        pack().flow(flow("f", "Positions", flow_body)).text(),
        "positions",
    );
    let report = import.report();
    assert!(
        report.flows.iter().all(|f| f.unconverted.is_empty()),
        "{report:#?}"
    );
    let written = read(&dir, "positions.yaml");
    // The key typed into the card is not copied: the step reads a secret instead.
    assert!(!written.contains("pasted"), "{written}");
    assert!(
        written.contains("key: \"{{ secret('jwt-signing-key') }}\"")
            && written.contains("expires_in: 600"),
        "{written}"
    );
    let config = read(&dir, "idflow.yaml");
    assert!(
        config.contains("jwt-signing-key: \"env:JWT_SIGNING_KEY\""),
        "{config}"
    );
    run_flow_test(
        &dir,
        "positions",
        r#"
cases:
  - name: positions count from 0 and the signed token comes from jwt.sign
    input: { Path: "a/b/c" }
    stubs:
      - card: jwt.sign
        output: "header.payload.signature"
    expect:
      return: { body: { first: 1, last: 3, dice: 3, token: "header.payload.signature" } }
      calls:
        - card: jwt.sign
          input: { algorithm: HS256, subject: "a/b/c", expires_in: 600, claims: { scope: read } }
"#,
    );
}
