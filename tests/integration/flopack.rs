//! Okta's own templates, imported and run: each test imports a template of the dev set
//! (`../shared/flopack`, or `$FLOPACK_DEVSET_DIR`) with the importer, serves the written project
//! against okta-sim, and checks what the template's `workflow.json` description says it does. Without
//! the dev set a test fails under `CI=true` and is skipped, loudly, elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::routing::any;

use okta_sim::{Sim, SimHandle};
use serde_json::{Value, json};
use tests::{TempDir, TestServer};

/// The template's export, or `None` (after saying so) when the dev set is not there.
fn template(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("FLOPACK_DEVSET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/flopack"));
    let file = dir.join(name).join("workflow.flopack");
    if file.is_file() {
        return Some(file);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{} is missing; the template test cannot run (CI=true)",
            file.display()
        );
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: template test — {} not found (set FLOPACK_DEVSET_DIR) !!!!!!!!\n",
        file.display()
    );
    None
}

/// Imports the template and returns the written project's files (path under the flows directory,
/// content), with `idflow.yaml` pointed at okta-sim.
fn imported(
    name: &str,
    sim: Option<&SimHandle>,
) -> Option<(flopack::Report, BTreeMap<String, String>)> {
    let file = template(name)?;
    let import = flopack::import_paths(&[file]).expect("the template imports");
    let out = TempDir::new(&format!("template-{name}"));
    let dir = out.0.join("flows");
    import.write(&dir).expect("the project is written");
    let mut files = BTreeMap::new();
    collect(&dir, &dir, &mut files);
    if let Some(sim) = sim {
        let config = files.get("idflow.yaml").cloned().unwrap_or_default();
        let config = config
            .replace(
                "https://example.okta.com",
                sim.base_url().trim_end_matches('/'),
            )
            .replace("env:OKTA_API_TOKEN", "file:./okta.token");
        files.insert("idflow.yaml".into(), config);
        files.insert("okta.token".into(), sim.api_token().to_owned());
    }
    Some((import.report(), files))
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).expect("read the project").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            let name = path
                .strip_prefix(root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            files.insert(name, text);
        }
    }
}

async fn serve(files: &BTreeMap<String, String>) -> TestServer {
    let pairs: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    TestServer::start(&pairs).await
}

/// Starts `flow` through the admin API with `input`, waits for it, and returns the run.
async fn run(server: &TestServer, flow: &str, input: Value) -> domain::run::Run {
    let response = server
        .post(&format!("/api/flows/{flow}/runs"), &input)
        .await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    let id = body["runId"]
        .as_str()
        .unwrap_or_else(|| panic!("{flow} did not start ({status}): {body}"))
        .to_owned();
    server.wait_run(&id).await
}

/// "Validate Email Domains During Registration" (API endpoint, table): an Okta registration inline
/// hook calls the flow, which "checks the domain against a Workflows table that serves as an
/// allow-list" and "allows or denies registration".
#[tokio::test]
async fn registration_inline_hook_allows_listed_domains_and_denies_others() {
    let Some((report, mut files)) =
        imported("validate_email_domain_using_registration_inline_ho", None)
    else {
        return;
    };
    assert!(
        report.flows.iter().all(|f| f.unconverted.is_empty()),
        "{report:?}"
    );
    let flow = "validate-email-domains-during-registration";
    let yaml = files[&format!("{flow}.yaml")].replace(
        "env:VALIDATE_EMAIL_DOMAINS_DURING_REGISTRATION_CLIENT_TOKEN",
        "file:./client.token",
    );
    files.insert(format!("{flow}.yaml"), yaml);
    files.insert("client.token".into(), "hook-client-token".into());
    let server = serve(&files).await;
    server
        .table(
            "table.create_row",
            json!({ "table": "allowed_domain_list", "row": { "allowed_domains": "example.com" } }),
        )
        .await
        .expect("seed the allow-list");
    let hook = |login: &str| {
        json!({
            "eventType": "com.okta.user.pre-registration",
            "data": { "userProfile": { "login": login, "email": login } }
        })
    };
    let invoke = |body: Value| {
        server
            .http
            .post(server.url(&format!("/api/flows/{flow}/invoke")))
            .header("x-api-client-token", "hook-client-token")
            .json(&body)
            .send()
    };
    let allowed = invoke(hook("ada@example.com")).await.expect("invoke");
    assert_eq!(allowed.status(), 200);
    let allowed: Value = allowed.json().await.expect("json");
    assert_eq!(
        allowed,
        json!({ "commands": [{ "type": "com.okta.action.update", "value": { "registration": "ALLOW" } }] })
    );
    let denied: Value = invoke(hook("mallory@elsewhere.test"))
        .await
        .expect("invoke")
        .json()
        .await
        .expect("json");
    assert_eq!(
        denied["error"]["errorCauses"][0]["reason"], "INVALID_EMAIL_DOMAIN",
        "{denied}"
    );
    server.stop().await;
}

/// "[1.2] Group Addition or Removal" (helper, Okta): "adds or removes a specific user from a
/// specific Okta Group", found by name.
#[tokio::test]
async fn group_helper_adds_and_removes_a_user_by_group_name() {
    let sim = Sim::builder()
        .seed_users(1)
        .group("Engineering")
        .start()
        .await
        .expect("okta-sim starts");
    let Some((_, files)) = imported("manage_group_members_using_profile_attributes", Some(&sim))
    else {
        return;
    };
    let server = serve(&files).await;
    let user = sim.user("user1@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let group = sim.group_id("Engineering").expect("group");
    let flow = "1-2-group-addition-or-removal";
    let added = run(
        &server,
        flow,
        json!({ "userId": user, "groupName": "Engineering", "action": "ADD" }),
    )
    .await;
    assert_eq!(added.status.as_str(), "succeeded", "{:?}", added.error);
    assert!(sim.group_members(&group).contains(&user));
    let removed = run(
        &server,
        flow,
        json!({ "userId": user, "groupName": "Engineering", "action": "REMOVE" }),
    )
    .await;
    assert_eq!(removed.status.as_str(), "succeeded", "{:?}", removed.error);
    assert!(!sim.group_members(&group).contains(&user));
    // "Everyone" is never touched: the flow stops at its Continue If.
    let everyone = run(
        &server,
        flow,
        json!({ "userId": user, "groupName": "Everyone", "action": "ADD" }),
    )
    .await;
    assert_eq!(everyone.status.as_str(), "succeeded");
    server.stop().await;
}

/// Requests a stand-in vendor API received: method, path, body.
type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A stand-in for a vendor's API on loopback: answers `{}` to everything and records what it got.
async fn vendor() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(any(
        move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
            let record = record.clone();
            async move {
                let body = serde_json::from_str(&body).unwrap_or(Value::Null);
                record.lock().expect("lock").push((
                    method.to_string(),
                    uri.path().to_owned(),
                    body,
                ));
                axum::Json(json!({}))
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr.to_string(), seen)
}

/// An Okta event hook delivery of one System Log event about `user`.
fn okta_event(uuid: &str, event_type: &str, user: &str, debug: Value) -> Value {
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/template",
        "eventId": format!("delivery-{uuid}"),
        "eventTime": "2025-03-26T21:05:33.000Z",
        "contentType": "application/json",
        "data": { "events": [{
            "uuid": uuid,
            "published": "2025-03-26T21:05:32.159Z",
            "eventType": event_type,
            "version": "0",
            "displayMessage": "template test",
            "severity": "INFO",
            "actor": { "id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin", "detailEntry": null },
            "outcome": { "result": "SUCCESS", "reason": null },
            "target": [{ "id": user, "type": "User", "alternateId": "someone@example.com", "displayName": "Someone", "detailEntry": null }],
            "client": { "ipAddress": "203.0.113.9" },
            "debugContext": { "debugData": debug },
            "transaction": { "type": "WEB", "id": format!("tx-{uuid}"), "detail": {} },
        }] },
    })
}

/// Every run of `flow`, each once it has ended (there must be `count`). Runs exist once their
/// trigger was acknowledged (a hook's 200, a starter's `flow.start` step), so no waiting for them
/// to appear.
async fn ended_runs(server: &TestServer, flow: &str, count: usize) -> Vec<domain::run::Run> {
    let page: Value = server
        .get_json(&format!("/api/runs?flow={flow}&limit=50"))
        .await;
    let ids: Vec<String> = page["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids.len(), count, "runs of {flow}");
    let mut runs = Vec::new();
    for id in ids {
        runs.push(server.wait_run(&id).await);
    }
    runs
}

/// "Automatically sync Shopify customer identity" (event flow, tables, Call Flow Async): when the
/// profile of a user in the Shopify group changes in an attribute the table monitors, the customer
/// is updated in Shopify — "create, update and delete Shopify customers based on group membership".
#[tokio::test]
async fn profile_update_event_updates_the_shopify_customer_of_a_member() {
    let sim = Sim::builder()
        .seed_users(2)
        .group("Shopify")
        .start()
        .await
        .expect("okta-sim starts");
    let Some((report, mut files)) =
        imported("automatically_sync_shopify_customer_identity", Some(&sim))
    else {
        return;
    };
    assert!(
        report.flows.iter().all(|f| f.unconverted.is_empty()),
        "{report:?}"
    );
    let (shop, seen) = vendor().await;
    let config = files["idflow.yaml"]
        .replace(
            "https://YOUR-SHOP.myshopify.com/admin/api/2024-01",
            &format!("http://{shop}/admin"),
        )
        .replace("env:SHOPIFY_ACCESS_TOKEN", "file:./shopify.token")
        .replace("env:OKTA_EVENT_HOOK_SECRET", "file:./hook.secret")
        + &format!("egress:\n  allow: [\"{shop}\"]\n");
    files.insert("idflow.yaml".into(), config);
    files.insert("shopify.token".into(), "shpat-template-test".into());
    files.insert("hook.secret".into(), "template-hook-secret".into());
    let server = serve(&files).await;
    for attribute in ["firstName", "lastName"] {
        server
            .table(
                "table.create_row",
                json!({ "table": "customer_account_attributes", "row": { "attributes": attribute } }),
            )
            .await
            .expect("seed the monitored attributes");
    }
    let member = sim.user("user1@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let outsider = sim.user("user2@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(sim.add_to_group(&sim.group_id("Shopify").expect("group"), &member));
    let deliver = |body: Value| {
        server
            .http
            .post(server.url("/hooks/okta"))
            .header("authorization", "template-hook-secret")
            .json(&body)
            .send()
    };
    let changed = json!({ "changedAttributes": "firstName,title" });
    for (uuid, user) in [("e-member", &member), ("e-outsider", &outsider)] {
        let response = deliver(okta_event(
            uuid,
            "user.account.update_profile",
            user,
            changed.clone(),
        ))
        .await
        .expect("deliver");
        assert_eq!(response.status(), 200);
    }
    let runs = ended_runs(&server, "2-update-customer-in-shopify", 2).await;
    assert!(
        runs.iter().all(|r| r.status.as_str() == "succeeded"),
        "{runs:?}"
    );
    // Only the member's run starts the profile helper, without waiting for it.
    let helpers = ended_runs(&server, "2-1-update-customer-profile-in-shopify", 1).await;
    assert_eq!(
        helpers[0].status.as_str(),
        "succeeded",
        "{:?}",
        helpers[0].error
    );
    assert_eq!(helpers[0].input, json!({ "ID": member }));
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (method, path, body) = &seen[0];
    assert_eq!(method, "PUT");
    assert!(path.starts_with("/admin/customers/"), "{path}");
    let profile = &sim.user(&member).expect("user")["profile"];
    assert_eq!(body["customer"]["first_name"], profile["firstName"]);
    assert_eq!(body["customer"]["email"], profile["email"]);
    server.stop().await;
}

/// "Automate account creation from Jira" (scheduled flow, table, helper fan-out): on its schedule
/// the flow finds the new employees of the table whose start date has come and whose account is
/// not created, and a helper run per employee creates and activates the Okta account and marks the
/// row — "automating account creation and activation in Okta".
#[tokio::test]
async fn schedule_creates_the_accounts_of_employees_whose_start_date_has_come() {
    use chrono::{DateTime, Utc};
    use domain::clock::ManualClock;

    let sim = Sim::builder().start().await.expect("okta-sim starts");
    let Some((_, files)) = imported("automate_account_creation_from_jira", Some(&sim)) else {
        return;
    };
    // The cron is 09:00 on the 3rd of each month in Los Angeles: 17:00 UTC on 2026-03-03 (PST).
    let start: DateTime<Utc> = "2026-03-03T16:59:00Z".parse().expect("time");
    let clock = ManualClock::new(start);
    let pairs: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let server = TestServer::start_with_clock(&pairs, Arc::new(clock.clone())).await;
    let mut keys = BTreeMap::new();
    for (first, last, start_date, created) in [
        ("Ada", "Lovelace", "2026-03-01T08:00:00Z", false),
        ("Bob", "Later", "2026-03-20T08:00:00Z", false),
        ("Cy", "Done", "2026-02-01T08:00:00Z", true),
    ] {
        let row = server
            .table(
                "table.create_row",
                json!({ "table": "new_employees", "row": {
                    "first_name": first, "last_name": last,
                    "start_date": start_date, "account_created": created,
                } }),
            )
            .await
            .expect("seed an employee");
        keys.insert(first, row["key"].as_str().expect("key").to_owned());
    }
    let mut ended = server.runtime().subscribe();
    clock.advance(std::time::Duration::from_secs(60));
    let scheduled = loop {
        let done = tokio::time::timeout(std::time::Duration::from_secs(20), ended.recv())
            .await
            .expect("a run ends")
            .expect("event");
        let run = server
            .runtime()
            .run(done.run_id)
            .await
            .expect("store")
            .expect("run");
        if run.flow == "find-employees-starting-now" {
            break run;
        }
    };
    assert_eq!(
        scheduled.status.as_str(),
        "succeeded",
        "{:?}",
        scheduled.error
    );
    let ada = sim
        .user("Ada.Lovelace@justatestcompany.com")
        .expect("Ada's account is created");
    // Activated without a password, as the card does: Okta leaves the user PROVISIONED until they
    // set one from the activation email.
    assert_eq!(ada["status"], "PROVISIONED");
    assert_eq!(ada["profile"]["firstName"], "Ada");
    assert!(
        sim.user("Bob.Later@justatestcompany.com").is_none(),
        "Bob starts later"
    );
    assert!(
        sim.user("Cy.Done@justatestcompany.com").is_none(),
        "Cy's account exists already"
    );
    let rows = server
        .table(
            "table.search_rows",
            json!({ "table": "new_employees", "limit": 10 }),
        )
        .await
        .expect("read the table");
    let created: BTreeMap<String, bool> = rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["row"]["first_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["row"]["account_created"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        created,
        BTreeMap::from([
            ("Ada".into(), true),
            ("Bob".into(), false),
            ("Cy".into(), true)
        ])
    );
    server.stop().await;
}

/// "How To: Catch an error within a Workflow" (If Error): the flow creates a user; when Okta
/// refuses, the If Error card "traps" the error and the flow goes on with a message saying so.
#[tokio::test]
async fn if_error_traps_a_refused_user_creation_and_the_flow_goes_on() {
    let sim = Sim::builder().start().await.expect("okta-sim starts");
    let Some((_, files)) = imported("workflows_tutorials", Some(&sim)) else {
        return;
    };
    let server = serve(&files).await;
    let flow = "how-to-catch-an-error-within-a-workflow";
    let input =
        json!({ "first_name": "Grace", "last_name": "Hopper", "Email": "grace@example.com" });
    let first = run(&server, flow, input.clone()).await;
    assert_eq!(first.status.as_str(), "succeeded", "{:?}", first.error);
    assert_eq!(
        first.output.expect("output")["body"]["Message"],
        "No errors creating user Grace Hopper (grace@example.com)."
    );
    assert_eq!(
        sim.user("grace@example.com").expect("created")["status"],
        "STAGED"
    );
    // The same login again: Okta refuses it, the handler runs, and the run still succeeds.
    let second = run(&server, flow, input).await;
    assert_eq!(second.status.as_str(), "succeeded", "{:?}", second.error);
    let message = second.output.expect("output")["body"]["Message"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(
        message.starts_with(
            "Uh-oh, there was an error trying to create user Grace Hopper (grace@example.com):"
        ) && message.contains("the flow continues"),
        "{message}"
    );
    server.stop().await;
}

/// "REPT30d - Find a secret" (delegated flow, table, helper fan-out through Filter Custom): run
/// from the Admin Console with a search text, it "finds a secret by name (or part of name) across
/// all folders and returns the found secrets with breadcrumbs in an email".
#[tokio::test]
async fn delegated_search_mails_and_returns_the_breadcrumbs_of_matching_secrets() {
    use domain::conformance::smtp::SmtpServer;

    let Some(smtp) = SmtpServer::start().await else {
        return;
    };
    let Some((_, mut files)) = imported("okta_privileged_access_secrets_utilities", None) else {
        return;
    };
    let config = files["idflow.yaml"]
        .replace(
            "    smtp:\n      host: smtp.example.com\n      port: 587\n      tls: starttls\n      username: \"idflow@example.com\"\n      password: \"env:SMTP_PASSWORD\"\n",
            &format!("    smtp: {{ host: 127.0.0.1, port: {}, tls: none }}\n", smtp.port),
        )
        .replace(
            "  okta-delegated:\n    jwt:\n      issuer: \"https://example.okta.com/oauth2/default\"\n      audience: \"api://idflow\"\n",
            "  okta-delegated:\n    token: \"file:./caller.token\"\n",
        );
    assert!(
        config.contains("caller.token") && config.contains("tls: none"),
        "{config}"
    );
    files.insert("idflow.yaml".into(), config);
    files.insert("caller.token".into(), "admin-console-caller".into());
    let server = serve(&files).await;
    for (name, breadcrumb, kind) in [
        (
            "prod-db-password",
            "Infra / Databases / prod-db-password",
            "Secret",
        ),
        (
            "staging-db-password",
            "Infra / Staging / staging-db-password",
            "Secret",
        ),
        ("api-key", "Apps / api-key", "Secret"),
        (
            "prod-db-password-folder",
            "Infra / prod-db-password-folder",
            "Folder",
        ),
    ] {
        server
            .table(
                "table.create_row",
                json!({ "table": "policy_rule_attach", "row": {
                    "item_type": kind, "item_name": name, "item_breadcrumb": breadcrumb,
                } }),
            )
            .await
            .expect("seed a secret");
    }
    let response = server
        .http
        .post(server.url("/api/delegated/flows/rept30d-find-a-secret/run"))
        .bearer_auth("admin-console-caller")
        .json(&json!({ "searchArgument": "db-password", "emailRecipient": "secops@example.com" }))
        .send()
        .await
        .expect("run");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    let id = body["runId"]
        .as_str()
        .unwrap_or_else(|| panic!("not started ({status}): {body}"))
        .to_owned();
    let ended = server.wait_run(&id).await;
    assert_eq!(ended.status.as_str(), "succeeded", "{:?}", ended.error);
    let result = ended.output.expect("output")["body"]["Result"]
        .as_str()
        .expect("text")
        .to_owned();
    assert!(
        result.starts_with(
            "The search string \"db-password\" was found in the following folders/secrets:"
        ),
        "{result}"
    );
    assert!(
        result.contains("Infra / Databases / prod-db-password"),
        "{result}"
    );
    assert!(
        result.contains("Infra / Staging / staging-db-password"),
        "{result}"
    );
    assert!(
        !result.contains("api-key") && !result.contains("-folder"),
        "{result}"
    );
    let mail = smtp.messages();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0]["rcpt_tos"], json!(["secops@example.com"]));
    assert_eq!(
        mail[0]["headers"]["Subject"],
        "REPT30 - Search for \"db-password\" in Secret names"
    );
    assert!(
        mail[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Infra / Staging / staging-db-password")),
        "{mail:?}"
    );
    server.stop().await;
}
