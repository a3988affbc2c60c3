//! The egress policy end to end: an API flow whose `http.request` URL comes from the caller cannot be
//! pointed at the server itself or at anything else on loopback, and the flow's secret never leaves.

use std::io::ErrorKind;
use std::net::TcpListener;

use serde_json::{Value, json};
use tests::TestServer;

/// An API flow that fetches whatever URL the caller names, with the flow's secret as bearer token:
/// the shape of the SSRF the security review found.
const FETCH: &str = r#"
name: fetch
trigger:
  api: { auth: public }
steps:
  - id: call
    card: http.request
    with:
      url: "{{ input.body.url }}"
      auth: { type: bearer, token: "{{ secret('crm-token') }}" }
"#;

const SECRET: &str = "crm-s3cr3t-value";

/// A listener nobody serves: every connection made to it waits in its accept queue, so after a
/// request returns, an empty queue proves that no connection (and so no header) reached it.
struct Recorder {
    listener: TcpListener,
}

impl Recorder {
    fn new() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind recorder");
        listener.set_nonblocking(true).expect("nonblocking");
        Recorder { listener }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("addr").port()
    }

    /// Connections made so far.
    fn connections(&self) -> usize {
        let mut count = 0;
        loop {
            match self.listener.accept() {
                Ok(_) => count += 1,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return count,
                Err(error) => panic!("accept: {error}"),
            }
        }
    }
}

async fn fetch_server(config: &str) -> TestServer {
    TestServer::start(&[
        ("idflow.yaml", config),
        ("crm.token", SECRET),
        ("fetch.yaml", FETCH),
    ])
    .await
}

/// Starts `fetch` with `url` and returns the ended run as the admin API shows it.
async fn fetch(server: &TestServer, url: &str) -> Value {
    let response = server
        .post("/api/flows/fetch/invoke", &json!({ "url": url }))
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.expect("json")["runId"]
        .as_str()
        .expect("run id")
        .to_owned();
    server.wait_run(&id).await;
    server.run_json(&id).await
}

#[tokio::test]
async fn caller_chosen_urls_cannot_reach_the_local_admin_api_or_loopback() {
    let server = fetch_server("secrets: { crm-token: \"file:./crm.token\" }\n").await;
    let recorder = Recorder::new();
    let admin = server.url("/api/runs");
    let targets = [
        admin.clone(),
        format!("http://127.0.0.1:{}/", recorder.port()),
        format!("http://localhost:{}/", recorder.port()),
        format!("http://[::ffff:127.0.0.1]:{}/", recorder.port()),
        format!("http://2130706433:{}/", recorder.port()),
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        "http://10.0.0.1/".to_owned(),
    ];
    for url in targets {
        let run = fetch(&server, &url).await;
        assert_eq!(run["status"], "failed", "{url}: {run}");
        let step = &run["steps"][0];
        assert_eq!(step["error"]["code"], "egress_denied", "{url}: {step}");
        assert_eq!(step["attempts"], 1, "not retried: {url}");
        let message = step["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("egress.allow"), "{url}: {message}");
        assert!(!run.to_string().contains(SECRET), "{url}: {run}");
        // The admin API was not reached: the run's output is not its run list.
        assert!(step["output"].is_null(), "{url}: {step}");
    }
    assert_eq!(recorder.connections(), 0, "nothing was sent to loopback");
    server.stop().await;
}

#[tokio::test]
async fn an_egress_allow_entry_lets_a_flow_reach_a_local_service_with_its_secret() {
    let app = axum::Router::new().route(
        "/whoami",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            let authorization = headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            axum::Json(json!({ "authorized": authorization == format!("Bearer {SECRET}") }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = format!(
        "secrets: {{ crm-token: \"file:./crm.token\" }}\negress: {{ allow: [\"{addr}\"] }}\n"
    );
    let server = fetch_server(&config).await;

    let run = fetch(&server, &format!("http://{addr}/whoami")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["steps"][0]["output"]["body"],
        json!({ "authorized": true })
    );

    // The entry names one port: the server's own admin API on another port stays out of reach.
    let run = fetch(&server, &server.url("/api/runs")).await;
    assert_eq!(run["steps"][0]["error"]["code"], "egress_denied", "{run}");
    server.stop().await;
}
