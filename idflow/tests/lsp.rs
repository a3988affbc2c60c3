//! `idflow lsp` as an editor runs it: the built binary as a child process, spoken to in JSON-RPC
//! over its standard input and output (LSP's `Content-Length` framing), through a whole session:
//! initialize, diagnostics of a broken flow and of its fix, completion, hover, shutdown and exit.
//! Every read is bounded, so a server that hangs fails the test instead of hanging it.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::{Value, json};

mod common;

/// How long any one answer may take.
const WAIT: Duration = Duration::from_secs(30);

/// The server process and the messages it wrote, read on a thread.
struct Server {
    child: Option<Child>,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    next_id: i64,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test leaves no server behind.
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads LSP-framed messages until the stream ends.
fn read_messages(stdout: impl Read, sender: std::sync::mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut length: Option<usize> = None;
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some(value) = header.strip_prefix("Content-Length:") {
                length = value.trim().parse().ok();
            }
        }
        let Some(length) = length else { return };
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            return;
        };
        if sender.send(message).is_err() {
            return;
        }
    }
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idflow"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("idflow lsp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, messages) = channel();
        std::thread::spawn(move || read_messages(stdout, sender));
        Server {
            child: Some(child),
            stdin,
            messages,
            next_id: 0,
        }
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write");
        self.stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its result (skipping notifications meanwhile).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self
                .messages
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("no answer to {method}: {e}"));
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{message}");
                return message["result"].clone();
            }
        }
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let message = self
                .messages
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("no diagnostics for {uri}: {e}"));
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return message["params"]["diagnostics"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }

    fn labels(&mut self, uri: &str, line: u32, character: u32) -> Vec<String> {
        let result = self.request(
            "textDocument/completion",
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } }),
        );
        // A completion answer is a list of items or `{ items: [...] }`.
        let items = result
            .as_array()
            .or_else(|| result["items"].as_array())
            .cloned()
            .unwrap_or_default();
        items
            .iter()
            .filter_map(|item| item["label"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits for the process to end, on a thread, for at most [`WAIT`].
    fn exit_status(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let (sender, receiver) = channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait());
        });
        receiver
            .recv_timeout(WAIT)
            .expect("idflow lsp exits after `exit`")
            .expect("the exit status")
    }
}

/// Line 8 reads a step that does not exist, after characters that are one and two UTF-16 units.
const BROKEN: &str = "name: greet
steps:
  - id: user
    card: okta.read_user
    with:
      user: \"{{ input.login }}\"
  - card: text.compose
    with:
      text: \"Hé 😀 {{ steps.usr.profile.firstName }}\"
";

#[test]
fn an_editor_session_gets_diagnostics_completion_and_hover() {
    let dir = common::temp_dir("lsp");
    std::fs::write(dir.join("idflow.yaml"), "vars:\n  org: acme\n").unwrap();
    let path = dir.join("greet.yaml");
    let uri = format!("file://{}", path.display());
    let mut server = Server::start();

    let init = server.request(
        "initialize",
        json!({ "processId": null, "rootUri": null, "capabilities": {} }),
    );
    assert_eq!(init["capabilities"]["hoverProvider"], true, "{init}");
    assert_eq!(
        init["capabilities"]["textDocumentSync"]["change"], 1,
        "full sync"
    );
    assert_eq!(init["serverInfo"]["name"], "idflow");
    server.notify("initialized", json!({}));

    // A broken flow: the unknown step is reported where it is, with a suggestion.
    server.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "yaml", "version": 1, "text": BROKEN } }),
    );
    let found = server.diagnostics(&uri);
    assert_eq!(found.len(), 1, "{found:?}");
    let diagnostic = &found[0];
    assert_eq!(diagnostic["severity"], 1, "an error");
    assert_eq!(
        diagnostic["message"],
        "step `s1`: with.text: unknown step `usr`; did you mean `user`?"
    );
    // `Hé 😀 ` is 6 UTF-16 units (the emoji takes two): `steps` starts at unit 22, and the
    // dotted name `steps.usr.profile.firstName` is underlined whole.
    assert_eq!(
        diagnostic["range"],
        json!({ "start": { "line": 8, "character": 22 }, "end": { "line": 8, "character": 49 } })
    );

    // Fixing it clears the diagnostics.
    let fixed = BROKEN.replace("steps.usr.", "steps.user.");
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 2 }, "contentChanges": [{ "text": fixed }] }),
    );
    assert_eq!(server.diagnostics(&uri), Vec::<Value>::new());

    // Card names after `card: `.
    let cards = server.labels(&uri, 3, 10);
    assert!(
        cards.iter().any(|c| c == "okta.read_user") && cards.iter().any(|c| c == "text.compose"),
        "{cards:?}"
    );

    // While typing, the YAML does not parse: completion still reads the line.
    let typing = fixed.replace(
        "      text: \"Hé 😀 {{ steps.user.profile.firstName }}\"\n",
        "      text: \"{{ steps.\n",
    );
    let typing = typing.replace(
        "      user: \"{{ input.login }}\"\n",
        "      user: \"{{ input.login }}\"\n      \n",
    );
    server.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": uri, "version": 3 }, "contentChanges": [{ "text": typing }] }),
    );
    assert!(
        !server.diagnostics(&uri).is_empty(),
        "the unfinished template is an error"
    );
    assert_eq!(
        server.labels(&uri, 9, 22),
        vec!["user"],
        "step ids after `steps.`"
    );
    let fields = server.labels(&uri, 6, 6);
    assert_eq!(
        fields,
        vec!["connection"],
        "okta.read_user's fields less `user`"
    );

    // Hover on the card: its reference.
    let hover = server.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 3, "character": 14 } }),
    );
    let text = hover["contents"]["value"].as_str().unwrap_or_default();
    assert!(text.contains("#### `okta.read_user`"), "{hover}");
    assert!(text.contains("| `user` | text | yes |"), "{hover}");
    assert!(text.contains("Output shape: an Okta user"), "{hover}");

    // Closing the document clears its diagnostics.
    server.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": uri } }),
    );
    assert_eq!(server.diagnostics(&uri), Vec::<Value>::new());

    assert_eq!(server.request("shutdown", Value::Null), Value::Null);
    server.notify("exit", Value::Null);
    assert_eq!(server.exit_status().code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
