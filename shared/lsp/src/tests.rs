//! The server driven in memory as an editor drives it, and the property that no edit of a flow
//! makes it panic or answer outside the document.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain::fuzzing::{fuzz, hostile_text};
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use lsp_types::{Position, Url};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

use crate::text::lines;

/// A client on one end of an in-memory connection, the server on a thread at the other.
struct Client {
    connection: Connection,
    server: Option<std::thread::JoinHandle<Result<(), crate::LspError>>>,
    next_id: i32,
    /// Diagnostics published while the test waited for another document's.
    published: std::collections::HashMap<String, Vec<Value>>,
}

/// How long a test waits for a message: a hung server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

impl Client {
    fn start() -> Client {
        let (client, server) = Connection::memory();
        let server = std::thread::spawn(move || crate::serve(&server));
        let mut client = Client {
            connection: client,
            server: Some(server),
            next_id: 0,
            published: std::collections::HashMap::new(),
        };
        let result = client.request("initialize", json!({ "capabilities": {} }));
        assert_eq!(result["capabilities"]["hoverProvider"], true);
        client.notify("initialized", json!({}));
        client
    }

    fn notify(&self, method: &str, params: Value) {
        let message = Message::Notification(Notification::new(method.to_owned(), params));
        self.connection
            .sender
            .send(message)
            .expect("the server is up");
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let message = Message::Request(Request::new(id.clone(), method.to_owned(), params));
        self.connection
            .sender
            .send(message)
            .expect("the server is up");
        loop {
            match self.connection.receiver.recv_timeout(WAIT) {
                Ok(Message::Response(response)) if response.id == id => {
                    assert!(response.error.is_none(), "{:?}", response.error);
                    return response.result.unwrap_or(Value::Null);
                }
                Ok(_) => {}
                Err(error) => panic!("no answer to {method}: {error}"),
            }
        }
    }

    /// The next diagnostics published for `uri` (those published for other documents meanwhile
    /// are kept for later).
    fn diagnostics(&mut self, uri: &Url) -> Vec<Value> {
        if let Some(found) = self.published.remove(uri.as_str()) {
            return found;
        }
        loop {
            match self.connection.receiver.recv_timeout(WAIT) {
                Ok(Message::Notification(n)) if n.method == "textDocument/publishDiagnostics" => {
                    let diagnostics = n.params["diagnostics"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let Some(published) = n.params["uri"].as_str() else {
                        continue;
                    };
                    if published == uri.as_str() {
                        return diagnostics;
                    }
                    self.published.insert(published.to_owned(), diagnostics);
                }
                Ok(_) => {}
                Err(error) => panic!("no diagnostics for {uri}: {error}"),
            }
        }
    }

    fn open(&self, uri: &Url, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "yaml", "version": 1, "text": text } }),
        );
    }

    fn stop(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        let server = self.server.take().expect("started");
        server.join().expect("no panic").expect("a clean stop");
    }
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("idflow-lsp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn flows_are_checked_against_the_project_config_and_again_when_it_changes() {
    let dir = TempDir::new("project");
    std::fs::write(dir.path().join("idflow.yaml"), "vars:\n  org: acme\n").unwrap();
    let flow = Url::from_file_path(dir.path().join("greet.yaml")).unwrap();
    let config = Url::from_file_path(dir.path().join("idflow.yaml")).unwrap();
    let mut client = Client::start();
    client.open(
        &flow,
        "name: greet\nsteps:\n  - card: text.compose\n    with: { text: \"{{ vars.orgg }}\" }\n",
    );
    let found = client.diagnostics(&flow);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown var `orgg`") && m.contains("did you mean `org`?")),
        "{found:?}"
    );
    assert_eq!(
        found[0]["range"]["start"],
        json!({ "line": 3, "character": 22 })
    );
    assert_eq!(
        found[0]["range"]["end"],
        json!({ "line": 3, "character": 31 })
    );
    assert_eq!(found[0]["severity"], 1);

    // Declaring the var in the (unsaved) idflow.yaml buffer clears the flow's error.
    client.open(&config, "vars:\n  org: acme\n  orgg: typo-kept\n");
    assert!(client.diagnostics(&config).is_empty());
    assert!(client.diagnostics(&flow).is_empty());
    let vars = client.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": flow }, "position": { "line": 3, "character": 29 } }),
    );
    let labels: Vec<&str> = vars
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["label"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(labels, vec!["org", "orgg"]);

    // Closing the buffer goes back to the file on disk, and clears the closed file's diagnostics.
    client.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": config } }),
    );
    assert!(client.diagnostics(&config).is_empty());
    assert_eq!(client.diagnostics(&flow).len(), 1);
    client.stop();
}

#[test]
fn a_client_that_watches_files_is_asked_to_watch_the_project_files() {
    let (client, server) = Connection::memory();
    let server = std::thread::spawn(move || crate::serve(&server));
    let initialize = Request::new(
        RequestId::from(1),
        "initialize".into(),
        json!({ "capabilities": { "workspace": { "didChangeWatchedFiles": { "dynamicRegistration": true } } } }),
    );
    client.sender.send(Message::Request(initialize)).unwrap();
    let answer = client
        .receiver
        .recv_timeout(WAIT)
        .expect("the initialize answer");
    assert!(matches!(answer, Message::Response(_)), "{answer:?}");
    client
        .sender
        .send(Message::Notification(Notification::new(
            "initialized".into(),
            json!({}),
        )))
        .unwrap();
    let Ok(Message::Request(request)) = client.receiver.recv_timeout(WAIT) else {
        panic!("no registration request");
    };
    assert_eq!(request.method, "client/registerCapability");
    let registration = &request.params["registrations"][0];
    assert_eq!(registration["method"], "workspace/didChangeWatchedFiles");
    assert_eq!(
        registration["registerOptions"]["watchers"][0]["globPattern"],
        "**/idflow.yaml"
    );
    // The client's answer is taken and ignored; the server goes on and stops cleanly.
    let ack = lsp_server::Response::new_ok(request.id, Value::Null);
    client.sender.send(Message::Response(ack)).unwrap();
    let shutdown = Request::new(RequestId::from(2), "shutdown".into(), Value::Null);
    client.sender.send(Message::Request(shutdown)).unwrap();
    assert!(matches!(
        client.receiver.recv_timeout(WAIT),
        Ok(Message::Response(_))
    ));
    client
        .sender
        .send(Message::Notification(Notification::new(
            "exit".into(),
            Value::Null,
        )))
        .unwrap();
    server.join().expect("no panic").expect("a clean stop");
}

#[test]
fn unknown_requests_are_refused_and_unopened_documents_have_no_answers() {
    let mut client = Client::start();
    let uri = Url::parse("file:///nowhere/flows/a.yaml").unwrap();
    let hover = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": uri }, "position": { "line": 0, "character": 0 } }),
    );
    assert_eq!(hover, Value::Null);
    client.next_id += 1;
    let id = RequestId::from(client.next_id);
    let message = Message::Request(Request::new(
        id.clone(),
        "textDocument/rename".into(),
        json!({}),
    ));
    client.connection.sender.send(message).unwrap();
    let refused = loop {
        match client.connection.receiver.recv_timeout(WAIT) {
            Ok(Message::Response(r)) if r.id == id => break r,
            Ok(_) => {}
            Err(error) => panic!("no answer: {error}"),
        }
    };
    assert_eq!(
        refused.error.map(|e| e.code),
        Some(lsp_server::ErrorCode::MethodNotFound as i32)
    );
    client.stop();
}

#[test]
fn the_examples_have_no_diagnostics_and_answer_everywhere() {
    let flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/flows");
    let dir = crate::check::Projects::dir_of(&flows.join("hello.yaml"))
        .expect("the examples' idflow.yaml");
    let mut projects = crate::check::Projects::default();
    let buffers = std::collections::HashMap::new();
    let project = projects.config(&dir, &buffers).cloned();
    assert!(project.is_some(), "the examples' idflow.yaml loads");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&flows)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    names.sort();
    let mut checked = 0;
    for path in names {
        let kind = crate::check::FileKind::of(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let label = crate::check::label_of(&path, Some(&dir));
        let found = crate::check::diagnostics(kind, &label, &text, project.as_ref());
        assert!(found.is_empty(), "{label}: {found:?}");
        checked += 1;
        if kind != crate::check::FileKind::Flow {
            continue;
        }
        for (number, line) in lines(&text).iter().enumerate() {
            let width = u32::try_from(line.encode_utf16().count()).unwrap();
            for character in [0, width / 2, width] {
                let position = Position::new(u32::try_from(number).unwrap(), character);
                let _ = crate::complete::complete(&text, position, project.as_ref());
                let _ = crate::hover::hover(&text, position);
            }
        }
    }
    assert!(checked > 10, "only {checked} example files");
}

/// A flow with every construct completion and hover look at.
const SEED: &str = "name: seed
trigger:
  helper:
    inputs: { user: text }
steps:
  - id: first
    card: okta.read_user
    with:
      user: \"{{ input.user }}\"
  - id: each
    for_each: \"{{ [steps.first] }}\"
    as: member
    steps:
      - card: list.filter
        with:
          list: \"{{ member.x }}\"
          where: item.ok
  - try:
      - card: text.compose
        with:
          text: |
            Hi {{ steps.first.profile.firstName | upper }} {{ secret('x') }}
    catch:
      - card: flow.fail
        with: { message: \"{{ error }}\" }
";

/// An edit: replace the bytes between two fractions of the text by a fragment.
fn edited(text: &str, from: f64, to: f64, fragment: &str) -> String {
    let at = |fraction: f64| {
        // Truncating a fraction of the length is the intent here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut index = ((text.len() as f64) * fraction) as usize;
        index = index.min(text.len());
        while !text.is_char_boundary(index) {
            index -= 1;
        }
        index
    };
    let (start, end) = (at(from.min(to)), at(from.max(to)));
    format!("{}{fragment}{}", &text[..start], &text[end..])
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile_text(4),
        Just("{{ steps.".to_owned()),
        Just("\n  - card: ".to_owned()),
        Just("\n    with:\n      ".to_owned()),
        Just("secret('".to_owned()),
        Just("é😀\t\r\n".to_owned()),
        Just("- - -: : |".to_owned()),
        any::<String>(),
    ]
}

#[test]
fn fuzz_edits_never_panic_and_stay_inside_the_document() {
    fuzz(
        "language server, edited flows",
        160,
        (0.0..=1.0f64, 0.0..=1.0f64, fragment()),
        |(from, to, fragment)| {
            let text = edited(SEED, from, to, &fragment);
            let lines = lines(&text);
            let inside = |position: &Position| {
                lines
                    .get(position.line as usize)
                    .is_some_and(|line| position.character as usize <= line.encode_utf16().count())
            };
            for diagnostic in
                crate::check::diagnostics(crate::check::FileKind::Flow, "f.yaml", &text, None)
            {
                prop_assert!(inside(&diagnostic.range.start) && inside(&diagnostic.range.end));
            }
            for (number, line) in lines.iter().enumerate() {
                let number =
                    u32::try_from(number).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let width = u32::try_from(line.encode_utf16().count()).unwrap_or(u32::MAX);
                for character in [0, width / 2, width, width + 3] {
                    let position = Position::new(number, character);
                    for item in crate::complete::complete(&text, position, None) {
                        if let Some(lsp_types::CompletionTextEdit::Edit(edit)) = item.text_edit {
                            prop_assert!(inside(&edit.range.start) && inside(&edit.range.end));
                        }
                    }
                    if let Some(range) = crate::hover::hover(&text, position).and_then(|h| h.range)
                    {
                        prop_assert!(inside(&range.start) && inside(&range.end));
                    }
                }
            }
            // Positions past the end are answered with nothing.
            let past = Position::new(u32::try_from(lines.len()).unwrap_or(u32::MAX), 0);
            prop_assert!(crate::complete::complete(&text, past, None).is_empty());
            Ok(())
        },
    );
}
