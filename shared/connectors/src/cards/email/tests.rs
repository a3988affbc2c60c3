//! `email.send` against a real SMTP server (Python's `aiosmtpd`, started by the test) that parses
//! what it receives, so the checks are about the message a mail client would show.
//!
//! The server is [`SmtpServer`], requiring `idflow` / `s3cret`. Without `aiosmtpd`
//! (`pip install aiosmtpd`) the server tests print SKIPPED, except under `CI=true` where they fail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::EmailExecutor;
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::conformance::smtp::SmtpServer;
use domain::model::{ProjectConfig, SecretRef};
use domain::ports::{SecretError, SecretValue, Secrets};
use domain::run::RunId;

struct FixedSecrets(BTreeMap<String, String>);

#[async_trait]
impl Secrets for FixedSecrets {
    async fn resolve(&self, reference: &SecretRef) -> Result<SecretValue, SecretError> {
        self.0
            .get(&reference.to_string())
            .map(SecretValue::new)
            .ok_or_else(|| SecretError::Missing {
                reference: reference.to_string(),
            })
    }
}

async fn send(port: u16, password: &str, input: Value) -> Result<Value, CardError> {
    let mut project = ProjectConfig::default();
    project.connections.insert(
        "email".into(),
        json!({
            "from": "idflow <idflow@example.com>",
            "reply_to": "identity-team@example.com",
            "smtp": { "host": "127.0.0.1", "port": port, "tls": "none", "username": "idflow", "password": "env:SMTP_PASSWORD" }
        }),
    );
    let secrets = BTreeMap::from([("env:SMTP_PASSWORD".to_owned(), password.to_owned())]);
    let executor = EmailExecutor::new(Arc::new(FixedSecrets(secrets)));
    let call = CardCall {
        card: "email.send".into(),
        input,
        timeout: Duration::from_secs(20),
        run_id: RunId::parse("01JH0000000000000000000000").expect("run id"),
        step: "mail".into(),
        attempt: 1,
        project: Arc::new(project),
    };
    executor.execute(&call).await
}

#[tokio::test]
async fn delivers_text_html_and_a_csv_attachment_over_smtp() {
    let Some(server) = SmtpServer::start_with_auth("idflow", "s3cret").await else {
        return;
    };
    let csv = "id,user,count\r\ne1,\"ada, lovelace\",3\r\n";
    let output = send(
        server.port,
        "s3cret",
        json!({
            "to": "Security Team <security@example.com>, soc@example.com",
            "cc": ["manager@example.com"],
            "bcc": "audit@example.com",
            "subject": "Failed logins\n2026-01-05",
            "body": "3 failed logins in the last 24 hours.",
            "html": "<p><b>3</b> failed logins</p>",
            "attachments": { "filename": "failed-logins.csv", "content": csv },
        }),
    )
    .await
    .expect("sent");
    assert_eq!(output["recipients"], 4);
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "one message delivered");
    let message = &messages[0];
    assert_eq!(message["authenticated"], true);
    assert_eq!(message["mail_from"], "idflow@example.com");
    assert_eq!(
        message["rcpt_tos"],
        json!([
            "security@example.com",
            "soc@example.com",
            "manager@example.com",
            "audit@example.com"
        ])
    );
    let headers = &message["headers"];
    assert_eq!(headers["From"], "idflow <idflow@example.com>");
    assert_eq!(
        headers["To"],
        "Security Team <security@example.com>, soc@example.com"
    );
    assert_eq!(headers["Cc"], "manager@example.com");
    assert_eq!(headers.get("Bcc"), None, "bcc recipients stay hidden");
    assert_eq!(headers["Reply-To"], "identity-team@example.com");
    assert_eq!(headers["Subject"], "Failed logins 2026-01-05");
    assert_eq!(headers["Message-ID"], output["message_id"]);
    assert_eq!(
        message["text"].as_str().map(str::trim_end),
        Some("3 failed logins in the last 24 hours.")
    );
    assert_eq!(
        message["html"].as_str().map(str::trim_end),
        Some("<p><b>3</b> failed logins</p>")
    );
    assert_eq!(
        message["attachments"],
        json!([{ "filename": "failed-logins.csv", "content_type": "text/csv", "content": csv }])
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_permanent_rejection() {
    let Some(server) = SmtpServer::start_with_auth("idflow", "s3cret").await else {
        return;
    };
    let result = send(
        server.port,
        "wrong",
        json!({ "to": "a@example.com", "subject": "s", "body": "b" }),
    )
    .await;
    match result {
        Err(CardError::Failed {
            code, retryable, ..
        }) => {
            assert_eq!(code, "email_rejected");
            assert!(!retryable, "a 535 will not change by retrying");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_a_retryable_network_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("addr").port()
    };
    let result = send(
        port,
        "s3cret",
        json!({ "to": "a@example.com", "subject": "s", "body": "b" }),
    )
    .await;
    match result {
        Err(error @ CardError::Network(_)) => assert!(error.is_retryable()),
        other => panic!("expected a network error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_fields_are_reported_before_connecting() {
    // Port 9 (discard) is never contacted: every input below fails first.
    let check = |input: Value, field: &'static str, says: &'static str| async move {
        match send(9, "s3cret", input.clone()).await {
            Err(CardError::InvalidInput {
                field: named,
                message,
            }) => {
                assert_eq!(named, field, "{input}");
                assert!(message.contains(says), "{input}: {message}");
            }
            other => panic!("{input}: expected invalid input, got {other:?}"),
        }
    };
    check(
        json!({ "subject": "s", "body": "b" }),
        "to",
        "at least one recipient",
    )
    .await;
    check(
        json!({ "to": "not an address", "subject": "s", "body": "b" }),
        "to",
        "`not an address` is not an email address",
    )
    .await;
    check(
        json!({ "to": "a@example.com", "cc": [3], "subject": "s", "body": "b" }),
        "cc[0]",
        "expected an email address",
    )
    .await;
    check(
        json!({ "to": "a@example.com", "body": "b" }),
        "subject",
        "expected a subject",
    )
    .await;
    check(
        json!({ "to": "a@example.com", "subject": "s" }),
        "body",
        "`body` (plain text) and/or `html`",
    )
    .await;
    check(
        json!({ "to": "a@example.com", "subject": "s", "body": "b", "text": "t" }),
        "text",
        "another name for `body`",
    )
    .await;
    check(
        json!({ "to": "a@example.com", "subject": "s", "body": "b", "attachments": [{ "content": "x" }] }),
        "attachments[0].filename",
        "expected a file name",
    )
    .await;
    check(
        json!({ "to": "a@example.com", "subject": "s", "body": "b", "attachments": { "filename": "../x.csv", "content": "x" } }),
        "attachments.filename",
        "without folders",
    )
    .await;
    let many: Vec<String> = (0..51).map(|n| format!("u{n}@example.com")).collect();
    check(
        json!({ "to": many, "subject": "s", "body": "b" }),
        "to",
        "at most 50 recipients",
    )
    .await;
}

#[test]
fn address_lists_split_outside_quotes_and_brackets() {
    let check = |text: &str, expected: &[&str]| {
        assert_eq!(super::split_addresses(text), expected, "{text}");
    };
    check("a@x.com", &["a@x.com"]);
    check(
        "a@x.com, b@y.com;c@z.com",
        &["a@x.com", "b@y.com", "c@z.com"],
    );
    check(
        "\"Lovelace, Ada\" <ada@x.com>, bob@y.com",
        &["\"Lovelace, Ada\" <ada@x.com>", "bob@y.com"],
    );
    check(" , ", &[]);
}
