//! The console and the admin API it reads: static pages, the OpenAPI document, a flow's step tree,
//! flow statistics, and runs filtered by parent and by text in their step data.

use serde_json::{Value, json};
use tests::TestServer;

const PARENT: &str = r#"
name: fan-out
history: all
steps:
  - id: each
    for_each: "{{ input.teams }}"
    as: team
    flow: one-team
  - card: flow.return
    with: { body: done }
"#;

const CHILD: &str = r#"
name: one-team
trigger:
  helper:
    inputs: { team: text }
history: all
steps:
  - id: line
    card: text.compose
    with: { text: "Digest for {{ input.team }}" }
"#;

const HELLO: &str = r#"
name: hello
history: all
steps:
  - id: greeting
    card: text.compose
    with: { text: "Hello {{ input.name }}" }
"#;

async fn server() -> TestServer {
    TestServer::start(&[
        ("fan-out.yaml", PARENT),
        ("one-team.yaml", CHILD),
        ("hello.yaml", HELLO),
    ])
    .await
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let response = server.get(path).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn run(server: &TestServer, flow: &str, input: Value) -> String {
    let id = server.start_run(flow, &input).await;
    server.wait_run(&id).await;
    id
}

fn ids(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn console_pages_and_openapi_are_served_without_a_token() {
    let server = server().await;
    for (path, content_type, needle) in [
        ("/", "text/html", "/console/app.js"),
        ("/console/app.js", "text/javascript", "/api/runs"),
        ("/console/app.css", "text/css", ".badge"),
    ] {
        let response = server.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        assert!(response.text().await.unwrap().contains(needle), "{path}");
    }
    let (status, doc) = get(&server, "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/runs/{id}/rerun"]["post"].is_object());
    server.stop().await;
}

#[tokio::test]
async fn flow_detail_has_source_trigger_and_helper_links() {
    let server = server().await;
    let (status, flow) = get(&server, "/api/flows/fan-out").await;
    assert_eq!(status, 200);
    assert!(flow["source"].as_str().unwrap().contains("name: fan-out"));
    assert_eq!(flow["trigger"]["kind"], "manual");
    assert_eq!(flow["steps"][0]["kind"], "for_each");
    assert_eq!(flow["steps"][0]["helper"], "one-team");
    let (status, error) = get(&server, "/api/flows/nope").await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "not_found");
    server.stop().await;
}

#[tokio::test]
async fn runs_filter_by_parent_and_by_text_in_step_data() {
    let server = server().await;
    let parent = run(&server, "fan-out", json!({"teams": ["red", "blue"]})).await;
    let hello = run(&server, "hello", json!({"name": "Grace"})).await;

    let (status, children) = get(&server, &format!("/api/runs?parent={parent}")).await;
    assert_eq!(status, 200);
    let children_ids = ids(&children);
    assert_eq!(children_ids.len(), 2);
    assert!(
        children["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["flow"] == "one-team")
    );
    assert!(!children_ids.contains(&hello));

    // Text in a step's output, any case; the run's own input too.
    let (_, found) = get(&server, "/api/runs?q=DIGEST%20FOR%20BLUE").await;
    let found = ids(&found);
    assert_eq!(found.len(), 1);
    assert!(children_ids.contains(&found[0]));
    let (_, found) = get(&server, "/api/runs?q=grace").await;
    assert_eq!(ids(&found), vec![hello.clone()]);
    let (_, found) = get(&server, "/api/runs?q=grace&flow=fan-out").await;
    assert!(ids(&found).is_empty());

    let (status, error) = get(&server, "/api/runs?parent=not-a-run").await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], "bad_request");
    server.stop().await;
}

#[tokio::test]
async fn flow_list_filters_by_trigger_and_counts_recent_runs() {
    let server = server().await;
    run(&server, "hello", json!({"name": "Ada"})).await;
    run(&server, "hello", json!({"name": "Bob"})).await;
    let (_, all) = get(&server, "/api/flows?stats=1").await;
    let hello = all["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "hello")
        .expect("hello listed")
        .clone();
    assert_eq!(hello["runs24h"], 2);
    assert_eq!(hello["lastRun"]["status"], "succeeded");
    let (_, helpers) = get(&server, "/api/flows?trigger=helper").await;
    let names: Vec<&str> = helpers["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["one-team"]);
    assert!(
        helpers["flows"][0].get("runs24h").is_none(),
        "stats only on request"
    );
    server.stop().await;
}

const MAYBE: &str = r#"name: maybe
steps:
  - id: user
    card: flow.assign
    with: { login: "{{ input.login }}", team: "{{ input.team }}" }
  - card: text.compose
    with: { text: "Hello {{ steps.user.logn }}" }
"#;

#[tokio::test]
async fn flow_detail_carries_the_checkers_warnings_and_the_errors_a_reload_refused() {
    let server = TestServer::start(&[("maybe.yaml", MAYBE), ("hello.yaml", HELLO)]).await;
    let (status, flow) = get(&server, "/api/flows/maybe").await;
    assert_eq!(status, 200);
    // A flow with a warning loads and runs; its page says what is suspicious, where.
    assert_eq!(flow["trigger"]["kind"], "manual");
    assert_eq!(flow["checks"]["errors"], json!([]));
    assert_eq!(flow["checks"]["rejected"], json!([]));
    assert_eq!(
        flow["checks"]["warnings"],
        json!([{
            "file": "maybe.yaml",
            "line": 7,
            "column": 29,
            "path": "step `s1`: with.text",
            "message": "step `user`: the `flow.assign` output has no field `logn`; did you mean `login`?",
            "suggestion": "login",
        }])
    );
    let (_, hello) = get(&server, "/api/flows/hello").await;
    assert_eq!(
        hello["checks"],
        json!({ "errors": [], "warnings": [], "rejected": [] })
    );

    // The file breaks; a reload refuses it and keeps the version deployed before, and the page
    // says why, apart from the findings of the version it shows.
    let flows = server.dir.0.join("flows");
    std::fs::write(
        flows.join("maybe.yaml"),
        MAYBE.replace("{{ steps.user.logn }}", "{{ stpes.user.login }}"),
    )
    .unwrap();
    let report = server
        .runtime()
        .deploy(&domain::flowfile::load_dir(&flows))
        .await
        .unwrap();
    assert_eq!(report.diagnostics.len(), 1, "{:?}", report.diagnostics);
    let (_, kept) = get(&server, "/api/flows/maybe").await;
    assert_eq!(
        kept["version"], flow["version"],
        "the previous version stays"
    );
    assert_eq!(kept["checks"]["warnings"], flow["checks"]["warnings"]);
    let rejected = kept["checks"]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["line"], 7);
    assert_eq!(rejected[0]["suggestion"], "steps");
    assert!(
        rejected[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown name `stpes`"),
        "{rejected:?}"
    );

    // Fixed: the new version is deployed and nothing is refused any more.
    std::fs::write(
        flows.join("maybe.yaml"),
        MAYBE.replace("{{ steps.user.logn }}", "{{ steps.user.login }}"),
    )
    .unwrap();
    server
        .runtime()
        .deploy(&domain::flowfile::load_dir(&flows))
        .await
        .unwrap();
    let (_, fixed) = get(&server, "/api/flows/maybe").await;
    assert_ne!(fixed["version"], flow["version"]);
    assert_eq!(
        fixed["checks"],
        json!({ "errors": [], "warnings": [], "rejected": [] })
    );
    server.stop().await;
}
