//! `email.send`: a message with a text and/or HTML body and optional attachments (a CSV export, say),
//! delivered through the `email` connection: SMTP locally, Amazon SES in AWS.
//!
//! The connection in `idflow.yaml`:
//!
//! ```yaml
//! connections:
//!   email:
//!     from: "idflow <idflow@example.com>"
//!     smtp: { host: smtp.example.com, port: 587, tls: starttls, username: idflow@example.com, password: "env:SMTP_PASSWORD" }
//!     # in AWS: ses: { region: eu-west-1 }
//! ```
//!
//! Errors: a bad address or field is `invalid_input` naming the field; a refusal by the server is
//! `email_rejected` (retryable when the server said to try later, SMTP 4xx); an unreachable server
//! is a network error (retryable).

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::smtp::SmtpSender;
use domain::cards::fields::{Fields, invalid, wrong};
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::email::{
    Attachment, Email, EmailConnection, EmailError, EmailSender, Transport, UserName,
};
use domain::ports::Secrets;

/// The connection used when a step names none.
pub const DEFAULT_CONNECTION: &str = "email";
/// Recipients of one message, `to`, `cc` and `bcc` together (SES's limit).
pub const MAX_RECIPIENTS: usize = 50;
/// Attachments of one message together, in bytes (10 MiB).
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;

/// Executes `email.send`.
pub struct EmailExecutor {
    secrets: Arc<dyn Secrets>,
    /// The SES sender of the AWS deployment; `None` in `idflow serve`.
    ses: Option<Arc<dyn EmailSender>>,
}

impl EmailExecutor {
    /// An executor that sends through SMTP connections.
    pub fn new(secrets: Arc<dyn Secrets>) -> EmailExecutor {
        EmailExecutor { secrets, ses: None }
    }

    /// The same, also sending through `ses:` connections with `sender`.
    pub fn with_ses(mut self, sender: Arc<dyn EmailSender>) -> EmailExecutor {
        self.ses = Some(sender);
        self
    }

    async fn send(&self, call: &CardCall) -> Result<Value, CardError> {
        let input = Fields::of_call(&call.input)?;
        let name = input.optional_text("connection")?;
        let name = name.as_deref().unwrap_or(DEFAULT_CONNECTION);
        let config = call.project.connections.get(name).ok_or_else(|| {
            failed(
                "no_connection",
                format!(
                    "no connection `{name}` in idflow.yaml: add `connections: {{ {name}: {{ from: ..., smtp: {{ host, port, tls, username, password }} }} }}`"
                ),
            )
        })?;
        let connection = EmailConnection::from_config(name, config)
            .map_err(|message| failed("invalid_connection", message))?;
        let email = message(&input, &connection)?;
        let recipients = email.to.len() + email.cc.len() + email.bcc.len();
        let sent = match &connection.transport {
            Transport::Smtp(settings) => {
                let credentials = match (&settings.username, &settings.password) {
                    (Some(user), Some(password)) => {
                        let user = match user {
                            UserName::Literal(user) => user.clone(),
                            UserName::Secret(reference) => self.resolve(reference).await?,
                        };
                        Some((user, self.resolve(password).await?))
                    }
                    _ => None,
                };
                let sender =
                    SmtpSender::new(settings, credentials, call.timeout).map_err(card_error)?;
                sender.send(&email).await.map_err(card_error)?
            }
            Transport::Ses { .. } => {
                let sender = self.ses.as_ref().ok_or_else(|| {
                    failed(
                        "ses_unavailable",
                        format!(
                            "connection `{name}` sends through SES, which only the AWS deployment has; use `smtp:` with idflow serve"
                        ),
                    )
                })?;
                sender.send(&email).await.map_err(card_error)?
            }
        };
        Ok(json!({ "message_id": sent.message_id, "recipients": recipients }))
    }

    async fn resolve(&self, reference: &domain::model::SecretRef) -> Result<String, CardError> {
        self.secrets
            .resolve(reference)
            .await
            .map(|secret| secret.expose().to_owned())
            .map_err(|error| failed("secret_unavailable", error.to_string()))
    }
}

#[async_trait]
impl CardExecutor for EmailExecutor {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        if call.card != "email.send" {
            return Err(failed(
                "unknown_card",
                format!("the email executor does not run `{}`", call.card),
            ));
        }
        self.send(call).await
    }
}

/// The message a step asks for, from the connection's sender.
fn message(input: &Fields<'_>, connection: &EmailConnection) -> Result<Email, CardError> {
    let to = addresses(input, "to")?;
    if to.is_empty() {
        return Err(invalid("to", "expected at least one recipient"));
    }
    let cc = addresses(input, "cc")?;
    let bcc = addresses(input, "bcc")?;
    if to.len() + cc.len() + bcc.len() > MAX_RECIPIENTS {
        return Err(invalid(
            "to",
            format!("at most {MAX_RECIPIENTS} recipients in all (to, cc and bcc)"),
        ));
    }
    let subject = input
        .optional_text("subject")?
        .map(|s| s.replace(['\r', '\n'], " ").trim().to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("subject", "expected a subject"))?;
    let body = text(input, "body")?;
    let plain = text(input, "text")?;
    if body.is_some() && plain.is_some() {
        return Err(invalid(
            "text",
            "`text` is another name for `body`: give one of them",
        ));
    }
    let text_body = body.or(plain);
    let html = text(input, "html")?;
    if text_body.is_none() && html.is_none() {
        return Err(invalid(
            "body",
            "expected `body` (plain text) and/or `html`",
        ));
    }
    let reply_to = text(input, "reply_to")?.or_else(|| connection.reply_to.clone());
    Ok(Email {
        from: connection.from.clone(),
        reply_to,
        to,
        cc,
        bcc,
        subject,
        text: text_body,
        html,
        attachments: attachments(input)?,
    })
}

/// A text field; blank counts as absent.
fn text(input: &Fields<'_>, field: &str) -> Result<Option<String>, CardError> {
    Ok(input.optional_text(field)?.map(Cow::into_owned))
}

/// Addresses as a list, or text with several separated by `,` or `;` (outside quotes and `<>`).
fn addresses(input: &Fields<'_>, field: &str) -> Result<Vec<String>, CardError> {
    let mut out = Vec::new();
    match input.value(field) {
        None => {}
        Some(Value::String(text)) => out.extend(split_addresses(text)),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(text) => out.extend(split_addresses(text)),
                    other => {
                        return Err(wrong(&format!("{field}[{i}]"), "an email address", other));
                    }
                }
            }
        }
        Some(other) => {
            return Err(wrong(
                field,
                "an email address, several separated by commas, or a list",
                other,
            ));
        }
    }
    Ok(out)
}

fn split_addresses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut angle = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                out.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current);
    out.into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

/// `attachments`: one `{ filename, content, content_type }` or a list of them.
fn attachments(input: &Fields<'_>) -> Result<Vec<Attachment>, CardError> {
    let items: Vec<(String, &Value)> = match input.value("attachments") {
        None => return Ok(Vec::new()),
        Some(object @ Value::Object(_)) => vec![("attachments".to_owned(), object)],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("attachments[{i}]"), item))
            .collect(),
        Some(other) => {
            return Err(wrong(
                "attachments",
                "`{ filename, content }` or a list of them",
                other,
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    let mut total = 0usize;
    for (path, item) in items {
        let Value::Object(item) = item else {
            return Err(wrong(&path, "`{ filename, content }`", item));
        };
        let item = input.within(item, &path);
        let filename = item
            .optional_text("filename")?
            .map(|name| name.trim().to_owned())
            .ok_or_else(|| item.invalid("filename", "expected a file name"))?;
        if filename.contains(['/', '\\', '\r', '\n']) {
            return Err(item.invalid("filename", "a file name, without folders or line breaks"));
        }
        let content = match item.value("content") {
            Some(Value::String(text)) => text.clone().into_bytes(),
            None => return Err(item.invalid("content", "expected the file's content (text)")),
            Some(other) => other.to_string().into_bytes(),
        };
        let content_type = item
            .optional_text("content_type")?
            .map_or_else(|| content_type_of(&filename).to_owned(), Cow::into_owned);
        total += content.len();
        if total > MAX_ATTACHMENT_BYTES {
            return Err(invalid(
                "attachments",
                format!(
                    "attachments are larger than {} MiB in all",
                    MAX_ATTACHMENT_BYTES >> 20
                ),
            ));
        }
        out.push(Attachment {
            filename,
            content_type,
            content,
        });
    }
    Ok(out)
}

fn content_type_of(filename: &str) -> &'static str {
    let extension = filename
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" => "text/csv; charset=utf-8",
        "txt" | "log" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "html" | "htm" => "text/html; charset=utf-8",
        "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

fn failed(code: &str, message: impl Into<String>) -> CardError {
    CardError::Failed {
        code: code.to_owned(),
        message: message.into(),
        retryable: false,
    }
}

fn card_error(error: EmailError) -> CardError {
    match error {
        EmailError::Invalid { field, message } => CardError::InvalidInput { field, message },
        EmailError::Rejected { permanent, .. } => CardError::Failed {
            code: "email_rejected".into(),
            message: error.to_string(),
            retryable: !permanent,
        },
        EmailError::Unavailable(message) => CardError::Network(message),
    }
}

#[cfg(test)]
mod tests;
