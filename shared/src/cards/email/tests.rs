//! `email.send` against a real SMTP server (Python's `aiosmtpd`, started by the test) that parses
//! what it receives, so the checks are about the message a mail client would show.
//!
//! Without `aiosmtpd` (`pip install aiosmtpd`) the server tests print SKIPPED, except under `CI=true`
//! where they fail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::EmailExecutor;
use crate::cards::{CardCall, CardError, CardExecutor};
use crate::model::{ProjectConfig, SecretRef};
use crate::ports::{SecretError, SecretValue, Secrets};
use crate::run::RunId;

/// The SMTP server: accepts `idflow` / `s3cret` (AUTH PLAIN or LOGIN, required), and writes each
/// message as `<n>.json`: envelope, headers, bodies and attachments as Python's email parser sees them.
const SERVER: &str = r#"
import json, os, sys
from email import message_from_bytes, policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out = int(sys.argv[1]), sys.argv[2]

class Handler:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Handler.count += 1
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        def body(kind):
            part = msg.get_body((kind,))
            return part.get_content() if part is not None else None
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "authenticated": bool(session.authenticated),
            "headers": {k: str(msg[k]) for k in ["From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Message-ID"] if msg[k] is not None},
            "text": body("plain"),
            "html": body("html"),
            "attachments": [
                {"filename": p.get_filename(), "content_type": p.get_content_type(), "content": p.get_content()}
                for p in msg.iter_attachments()
            ],
        }
        path = os.path.join(out, "%03d.json" % Handler.count)
        with open(path + ".tmp", "w") as f:
            json.dump(summary, f)
        os.rename(path + ".tmp", path)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"idflow" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)

controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                        auth_required=True, auth_require_tls=False)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// A running `aiosmtpd`, stopped when dropped.
struct SmtpServer {
    port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl SmtpServer {
    /// Starts the server, or `None` (after saying so) when `aiosmtpd` is not installed outside CI.
    async fn start() -> Option<SmtpServer> {
        let available = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "aiosmtpd is missing: `pip install aiosmtpd` (CI must run the SMTP tests)"
            );
            eprintln!(
                "\n*** SKIPPED: SMTP test needs python3 with aiosmtpd (`pip install aiosmtpd`) ***\n"
            );
            return None;
        }
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let dir = std::env::temp_dir().join(format!("idflow-smtp-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).expect("mail dir");
        let mut child = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(SERVER)
            .arg(port.to_string())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        assert!(
            matches!(ready, Ok(Ok(Some(ref line))) if line == "ready"),
            "the SMTP server did not start: {ready:?}"
        );
        Some(SmtpServer {
            port,
            dir,
            _child: child,
        })
    }

    /// The messages received so far, in order.
    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("mail dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
            })
            .collect()
    }
}

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
    let Some(server) = SmtpServer::start().await else {
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
    let Some(server) = SmtpServer::start().await else {
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
