//! Streaming end to end: `okta.find_users` with `stream:` hands every user okta-sim returns, page by
//! page, to a helper run through the real queue, never more than `concurrency` at once.

use okta_sim::Sim;
use serde_json::{Value, json};
use tests::TestServer;

const USERS: usize = 300;

const STREAM: &str = r#"
name: stream-users
steps:
  - id: each
    card: okta.find_users
    with:
      filter: 'status eq "ACTIVE"'
      stream: { flow: touch-user, state: { batch: nightly }, concurrency: 10 }
"#;

const TOUCH: &str = r#"
name: touch-user
trigger: { helper: { inputs: { record: object, state: object } } }
steps:
  - card: flow.return
    with: { body: "{{ input.state.batch }} {{ input.record.profile.login }}" }
"#;

#[tokio::test]
async fn every_user_gets_one_helper_run() {
    let sim = Sim::builder().seed_users(USERS).start().await.expect("sim");
    let config = format!(
        "connections:\n  okta:\n    domain: \"{}\"\n    auth: {{ type: ssws, token: \"file:./okta.token\" }}\n",
        sim.base_url()
    );
    let server = TestServer::start(&[
        ("idflow.yaml", &config),
        ("okta.token", sim.api_token()),
        ("stream.yaml", STREAM),
        ("touch.yaml", TOUCH),
    ])
    .await;
    let id = server.start_run("stream-users", &json!({})).await;
    let run = server.wait_run(&id).await;
    assert_eq!(run.status.as_str(), "succeeded", "{:?}", run.error);
    let detail = server.run_json(&id).await;
    let step = detail["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["step"] == "each"))
        .cloned()
        .expect("the stream step");
    assert_eq!(step["output"], json!({ "count": USERS, "failed": 0 }));

    // One helper run per user, all succeeded, each given its record and the state.
    let mut logins = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Value = server
            .get_json(&format!(
                "/api/runs?flow=touch-user&limit=500&cursor={cursor}"
            ))
            .await;
        for helper in page["runs"].as_array().expect("runs") {
            let helper = server.wait_run(helper["id"].as_str().expect("id")).await;
            assert_eq!(helper.status.as_str(), "succeeded", "{:?}", helper.error);
            logins.push(
                helper.output.expect("output")["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    logins.sort();
    let mut expected: Vec<String> = (1..=USERS)
        .map(|n| format!("nightly user{n}@example.com"))
        .collect();
    expected.sort();
    assert_eq!(logins, expected);
    // Paged by Link: more than one request to the users endpoint.
    let pages = sim
        .journal()
        .iter()
        .filter(|e| e.path.starts_with("/api/v1/users"))
        .count();
    assert!(pages > 1, "{pages} page(s)");
    server.stop().await;
    sim.shutdown().await;
}
