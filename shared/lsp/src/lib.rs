//! `idflow lsp`: a language server for flow files, flow tests and the project files, over stdio.
//!
//! Editors start `idflow lsp` and speak JSON-RPC with it on its standard input and output. It
//! publishes diagnostics as you type, from the same parsers and checker as `idflow validate`
//! (errors as errors, the checker's warnings as warnings, at the line and column the checker
//! reports); completes card names, a card's `with:` fields, and inside templates the names a field
//! reads, step ids, known output fields, `vars.` keys and `secret('` names; and shows a card's
//! reference on hover. Completion and hover read the text line by line, so they work while the
//! buffer does not parse.
//!
//! # Layout
//! - `server`: the handshake and the message loop (documents, requests, notifications).
//! - `check`: diagnostics of a buffer against its project's `idflow.yaml`.
//! - `complete` and `hover`: completion and hover in flow files.
//! - `context`: what a position means (the field's context, visible steps, a step's card and
//!   output shape), over `outline`: the line-by-line structure of a YAML buffer.
//! - `text`: positions between the checker's (1-based, characters) and LSP's (0-based, UTF-16).

mod check;
mod complete;
mod context;
mod hover;
mod outline;
mod server;
mod text;

#[cfg(test)]
mod tests;

use lsp_server::{Connection, ProtocolError};

/// Why the server stopped before the client shut it down.
#[derive(Debug, thiserror::Error)]
pub enum LspError {
    /// The client broke the protocol (no `initialize` first, a malformed message) or the
    /// connection's I/O failed.
    #[error("language server protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The client went away while the server was answering.
    #[error("the client closed the connection")]
    Disconnected,
    /// Standard input or output failed.
    #[error("standard input or output: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves one client on standard input and output until it sends `shutdown` and `exit`.
pub fn run_stdio() -> Result<(), LspError> {
    let (connection, threads) = Connection::stdio();
    let served = server::run(&connection);
    // The writer thread ends once every sender is gone.
    drop(connection);
    served?;
    threads.join()?;
    Ok(())
}

/// Serves one client on `connection` (an in-memory one in tests) until it shuts the server down.
pub fn serve(connection: &Connection) -> Result<(), LspError> {
    server::run(connection)
}
