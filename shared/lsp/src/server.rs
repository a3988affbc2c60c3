//! The server loop: the `initialize` handshake, then one message at a time until `shutdown` and
//! `exit`. Documents are synchronised whole (`TextDocumentSyncKind::FULL`); every change of a
//! document publishes its diagnostics again, and a change of a project file (`idflow.yaml`,
//! `tables/*.yaml`, open or saved, or changed on disk where the client watches files for the
//! server) publishes them again for every open document.

use std::collections::HashMap;
use std::path::PathBuf;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, Notification as _, PublishDiagnostics,
};
use lsp_types::request::{Completion, HoverRequest, RegisterCapability, Request as _};
use lsp_types::{
    CompletionOptions, CompletionParams, CompletionResponse, DidChangeTextDocumentParams,
    DidChangeWatchedFilesRegistrationOptions, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, DidSaveTextDocumentParams, FileSystemWatcher, GlobPattern,
    HoverParams, HoverProviderCapability, InitializeParams, PublishDiagnosticsParams, Registration,
    RegistrationParams, SaveOptions, ServerCapabilities, ServerInfo, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions, Url,
};

use crate::LspError;
use crate::check::{self, FileKind, Projects};

/// An open document.
struct Document {
    text: String,
    version: Option<i32>,
}

/// Everything the server holds between messages.
#[derive(Default)]
struct State {
    documents: HashMap<Url, Document>,
    projects: Projects,
}

/// What the server can do, as `initialize` answers.
pub(crate) fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::FULL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(true),
                })),
                ..TextDocumentSyncOptions::default()
            },
        )),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(
                [".", "'", "\"", "|", " ", "{"]
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect(),
            ),
            ..CompletionOptions::default()
        }),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        ..ServerCapabilities::default()
    }
}

/// Runs the server on `connection` until the client shuts it down.
pub(crate) fn run(connection: &Connection) -> Result<(), LspError> {
    let (id, params) = connection.initialize_start()?;
    // A client that cannot be parsed is served with the defaults: nothing below depends on it but
    // the file watch.
    let client: InitializeParams = serde_json::from_value(params).unwrap_or_default();
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": ServerInfo {
            name: "idflow".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
        },
    });
    connection.initialize_finish(id, result)?;
    if watches_files(&client) {
        send(connection, watch_project_files())?;
    }
    let mut state = State::default();
    for message in &connection.receiver {
        match message {
            Message::Request(request) => {
                if connection.handle_shutdown(&request)? {
                    return Ok(());
                }
                let response = guarded(|| state.request(&request)).unwrap_or_else(|| {
                    Response::new_err(
                        request.id.clone(),
                        ErrorCode::InternalError as i32,
                        "the request failed inside the server".into(),
                    )
                });
                send(connection, Message::Response(response))?;
            }
            Message::Notification(notification) => {
                let out = guarded(|| state.notification(notification)).unwrap_or_default();
                for message in out {
                    send(connection, message)?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

/// Whether the client can be asked to watch files for the server.
fn watches_files(client: &InitializeParams) -> bool {
    client
        .capabilities
        .workspace
        .as_ref()
        .and_then(|w| w.did_change_watched_files.as_ref())
        .and_then(|w| w.dynamic_registration)
        .unwrap_or(false)
}

/// Asks the client to report changes of project files on disk (a `git checkout`, another editor),
/// so open flows are checked again against the config they now have.
fn watch_project_files() -> Message {
    let watchers = [
        "**/idflow.yaml",
        "**/idflow.yml",
        "**/tables/*.yaml",
        "**/tables/*.yml",
    ]
    .iter()
    .map(|glob| FileSystemWatcher {
        glob_pattern: GlobPattern::String((*glob).to_owned()),
        kind: None,
    })
    .collect();
    let registration = Registration {
        id: "idflow-project-files".into(),
        method: DidChangeWatchedFiles::METHOD.into(),
        register_options: serde_json::to_value(DidChangeWatchedFilesRegistrationOptions {
            watchers,
        })
        .ok(),
    };
    Message::Request(Request::new(
        RequestId::from(WATCH_REQUEST.to_owned()),
        RegisterCapability::METHOD.to_owned(),
        RegistrationParams {
            registrations: vec![registration],
        },
    ))
}

/// The id of the server's one request to the client.
const WATCH_REQUEST: &str = "idflow/watch-project-files";

fn send(connection: &Connection, message: Message) -> Result<(), LspError> {
    connection
        .sender
        .send(message)
        .map_err(|_| LspError::Disconnected)
}

/// Runs `work`, containing a panic so one bad buffer never ends the editor's session (the parsers
/// and the template engine are fuzzed not to, and this is the last line of defence).
fn guarded<T>(work: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).ok()
}

impl State {
    fn request(&mut self, request: &Request) -> Response {
        let id: RequestId = request.id.clone();
        match request.method.as_str() {
            Completion::METHOD => {
                match serde_json::from_value::<CompletionParams>(request.params.clone()) {
                    Ok(params) => {
                        let place = params.text_document_position;
                        let items = self.with_flow(&place.text_document.uri, |text, project| {
                            crate::complete::complete(text, place.position, project)
                        });
                        let result = items.map(CompletionResponse::Array);
                        Response::new_ok(id, result)
                    }
                    Err(error) => invalid_params(id, &error),
                }
            }
            HoverRequest::METHOD => {
                match serde_json::from_value::<HoverParams>(request.params.clone()) {
                    Ok(params) => {
                        let place = params.text_document_position_params;
                        let hover = self
                            .with_flow(&place.text_document.uri, |text, _| {
                                crate::hover::hover(text, place.position)
                            })
                            .flatten();
                        Response::new_ok(id, hover)
                    }
                    Err(error) => invalid_params(id, &error),
                }
            }
            method => Response::new_err(
                id,
                ErrorCode::MethodNotFound as i32,
                format!("unsupported request `{method}`"),
            ),
        }
    }

    /// Runs `work` on an open flow document's text and its project's config; `None` for a
    /// document that is not open or not a flow.
    fn with_flow<T>(
        &mut self,
        uri: &Url,
        work: impl FnOnce(&str, Option<&domain::model::ProjectConfig>) -> T,
    ) -> Option<T> {
        let path = check::path_of(uri);
        if path
            .as_deref()
            .is_some_and(|p| FileKind::of(p) != FileKind::Flow)
        {
            return None;
        }
        let buffers = self.buffers();
        let document = self.documents.get(uri)?;
        let dir = path.as_deref().and_then(Projects::dir_of);
        let project = dir
            .as_deref()
            .and_then(|dir| self.projects.config(dir, &buffers));
        Some(work(&document.text, project))
    }

    fn notification(&mut self, notification: Notification) -> Vec<Message> {
        // A notification whose parameters do not parse is dropped: there is no one to answer.
        let method = notification.method.clone();
        let n = notification;
        match method.as_str() {
            DidOpenTextDocument::METHOD => n.extract(&method).ok().map(|p| self.opened(p)),
            DidChangeTextDocument::METHOD => n.extract(&method).ok().and_then(|p| self.edited(p)),
            DidSaveTextDocument::METHOD => n.extract(&method).ok().map(|p| self.saved(p)),
            DidCloseTextDocument::METHOD => n.extract(&method).ok().map(|p| self.closed(p)),
            // A project file changed on disk (for clients that watch files).
            DidChangeWatchedFiles::METHOD => Some(self.all()),
            _ => None,
        }
        .unwrap_or_default()
    }

    fn opened(&mut self, params: DidOpenTextDocumentParams) -> Vec<Message> {
        let document = params.text_document;
        self.documents.insert(
            document.uri.clone(),
            Document {
                text: document.text,
                version: Some(document.version),
            },
        );
        self.changed(&document.uri)
    }

    fn edited(&mut self, params: DidChangeTextDocumentParams) -> Option<Vec<Message>> {
        let uri = params.text_document.uri;
        // Full sync: the last change holds the whole text.
        let change = params.content_changes.into_iter().last()?;
        self.documents.insert(
            uri.clone(),
            Document {
                text: change.text,
                version: Some(params.text_document.version),
            },
        );
        Some(self.changed(&uri))
    }

    fn saved(&mut self, params: DidSaveTextDocumentParams) -> Vec<Message> {
        let uri = params.text_document.uri;
        if let (Some(text), Some(document)) = (params.text, self.documents.get_mut(&uri)) {
            document.text = text;
        }
        self.changed(&uri)
    }

    fn closed(&mut self, params: DidCloseTextDocumentParams) -> Vec<Message> {
        let uri = params.text_document.uri;
        self.documents.remove(&uri);
        let mut out = vec![publish(uri.clone(), Vec::new(), None)];
        // A closed project file is read from disk again: its unsaved edits are gone.
        if check::path_of(&uri).is_some_and(|p| is_project_file(&p)) {
            out.extend(self.all());
        }
        out
    }

    /// The text of every open project file (`idflow.yaml`, table files), by path: what the
    /// projects' configs are read from in place of the disk.
    fn buffers(&self) -> HashMap<PathBuf, String> {
        self.documents
            .iter()
            .filter_map(|(uri, d)| check::path_of(uri).map(|p| (p, d)))
            .filter(|(path, _)| is_project_file(path))
            .map(|(path, d)| (path, d.text.clone()))
            .collect()
    }

    /// After `uri` changed: its diagnostics, and every open document's when it is a project file.
    fn changed(&mut self, uri: &Url) -> Vec<Message> {
        if check::path_of(uri).is_some_and(|p| is_project_file(&p)) {
            return self.all();
        }
        self.publish(uri).into_iter().collect()
    }

    /// The diagnostics of every open document.
    fn all(&mut self) -> Vec<Message> {
        let mut uris: Vec<Url> = self.documents.keys().cloned().collect();
        uris.sort();
        uris.iter().filter_map(|uri| self.publish(uri)).collect()
    }

    /// The diagnostics of one open document, as a notification.
    fn publish(&mut self, uri: &Url) -> Option<Message> {
        let path = check::path_of(uri);
        let kind = match &path {
            Some(path) => FileKind::of(path),
            // An unsaved buffer is read as a flow, its most likely content.
            None => FileKind::Flow,
        };
        let buffers = self.buffers();
        let document = self.documents.get(uri)?;
        let dir = path.as_deref().and_then(Projects::dir_of);
        let label = match &path {
            Some(path) => check::label_of(path, dir.as_deref()),
            None => "untitled.yaml".into(),
        };
        let project = match (kind, dir.as_deref()) {
            (FileKind::Flow, Some(dir)) => self.projects.config(dir, &buffers),
            _ => None,
        };
        let diagnostics = check::diagnostics(kind, &label, &document.text, project);
        Some(publish(uri.clone(), diagnostics, document.version))
    }
}

/// Whether a change of `path` can change how other files are checked.
fn is_project_file(path: &std::path::Path) -> bool {
    matches!(FileKind::of(path), FileKind::Project | FileKind::Table)
}

fn publish(uri: Url, diagnostics: Vec<lsp_types::Diagnostic>, version: Option<i32>) -> Message {
    let params = PublishDiagnosticsParams {
        uri,
        diagnostics,
        version,
    };
    Message::Notification(Notification::new(
        PublishDiagnostics::METHOD.to_owned(),
        params,
    ))
}

fn invalid_params(id: RequestId, error: &serde_json::Error) -> Response {
    Response::new_err(
        id,
        ErrorCode::InvalidParams as i32,
        format!("invalid parameters: {error}"),
    )
}
