//! A real SMTP server for tests: Python's `aiosmtpd`, started as a child process, that parses every
//! message it receives with Python's email parser and keeps what a mail client would show (envelope,
//! headers, bodies, attachments), so the email tests check delivered mail, not the bytes idflow sent.
//!
//! Without `aiosmtpd` (`pip install aiosmtpd`) [`SmtpServer::start`] prints SKIPPED and gives `None`,
//! except under `CI=true` where it panics: CI must run the SMTP tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The server. Arguments: port, output directory, then optionally the login and password that
/// AUTH PLAIN or LOGIN must give (and then must be given). Each message is written as `<n>.json`.
const SERVER: &str = r#"
import json, os, sys
from email import message_from_bytes, policy
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out = int(sys.argv[1]), sys.argv[2]
credentials = (sys.argv[3].encode(), sys.argv[4].encode()) if len(sys.argv) > 4 else None

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
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == credentials
    return AuthResult(success=ok, handled=False)

if credentials:
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_required=True, auth_require_tls=False)
else:
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// A running `aiosmtpd` on 127.0.0.1, stopped (and its mail removed) when dropped.
pub struct SmtpServer {
    /// The port it listens on.
    pub port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl SmtpServer {
    /// Starts a server that accepts mail from anyone, or `None` (after saying so) when `aiosmtpd` is
    /// not installed outside CI.
    pub async fn start() -> Option<SmtpServer> {
        Self::launch(None).await
    }

    /// Starts a server that requires AUTH PLAIN or LOGIN with `login` and `password`.
    pub async fn start_with_auth(login: &str, password: &str) -> Option<SmtpServer> {
        Self::launch(Some((login, password))).await
    }

    async fn launch(credentials: Option<(&str, &str)>) -> Option<SmtpServer> {
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
        let mut command = tokio::process::Command::new("python3");
        command
            .arg("-c")
            .arg(SERVER)
            .arg(port.to_string())
            .arg(&dir);
        if let Some((login, password)) = credentials {
            command.arg(login).arg(password);
        }
        let mut child = command
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

    /// The messages received so far, in order: `{ mail_from, rcpt_tos, authenticated, headers: { From,
    /// To, Cc, Reply-To, Subject, Message-ID }, text, html, attachments: [{ filename, content_type,
    /// content }] }`.
    pub fn messages(&self) -> Vec<Value> {
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
