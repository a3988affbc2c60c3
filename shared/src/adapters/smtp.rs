//! [`SmtpSender`]: the [`EmailSender`] of `idflow serve`, over SMTP with `lettre` (tokio, rustls).
//!
//! One connection per message: flows send a few messages, not thousands, and a fresh connection
//! never trips over a server that dropped an idle one. STARTTLS is required (not opportunistic) when
//! the connection asks for it, so a downgrade cannot expose the credentials.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::email::{Email, EmailError, EmailSender, Sent, SmtpSettings, SmtpTls};

/// Sends through one SMTP server.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender").finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// A sender for `settings`, logging in with `credentials` (user name, password) when given.
    /// `timeout` bounds each exchange with the server.
    pub fn new(
        settings: &SmtpSettings,
        credentials: Option<(String, String)>,
        timeout: Duration,
    ) -> Result<SmtpSender, EmailError> {
        let builder = match settings.tls {
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(|e| unavailable(&e))?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|e| unavailable(&e))?,
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        };
        let mut builder = builder.port(settings.port).timeout(Some(timeout));
        if let Some((user, password)) = credentials {
            builder = builder.credentials(Credentials::new(user, password));
        }
        Ok(SmtpSender {
            transport: builder.build(),
        })
    }
}

#[async_trait]
impl EmailSender for SmtpSender {
    async fn send(&self, email: &Email) -> Result<Sent, EmailError> {
        let message = build_message(email)?;
        let message_id = message
            .headers()
            .get_raw("Message-ID")
            .map(|id| id.trim().to_owned());
        self.transport
            .send(message)
            .await
            .map_err(|error| classify(&error))?;
        Ok(Sent { message_id })
    }
}

fn mailbox(field: &str, address: &str) -> Result<Mailbox, EmailError> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|error| EmailError::Invalid {
            field: field.to_owned(),
            message: format!("`{address}` is not an email address ({error})"),
        })
}

/// The MIME message of an [`Email`]: text and/or HTML (as alternatives), then attachments.
pub fn build_message(email: &Email) -> Result<Message, EmailError> {
    let mut builder = Message::builder()
        .from(mailbox("from", &email.from)?)
        .subject(email.subject.clone())
        .message_id(None);
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(mailbox("reply_to", reply_to)?);
    }
    for to in &email.to {
        builder = builder.to(mailbox("to", to)?);
    }
    for cc in &email.cc {
        builder = builder.cc(mailbox("cc", cc)?);
    }
    for bcc in &email.bcc {
        builder = builder.bcc(mailbox("bcc", bcc)?);
    }
    enum Body {
        Single(SinglePart),
        Multi(MultiPart),
    }
    let body = match (&email.text, &email.html) {
        (Some(text), Some(html)) => Body::Multi(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (Some(text), None) => Body::Single(SinglePart::plain(text.clone())),
        (None, Some(html)) => Body::Single(SinglePart::html(html.clone())),
        (None, None) => Body::Single(SinglePart::plain(String::new())),
    };
    let built = if email.attachments.is_empty() {
        match body {
            Body::Single(part) => builder.singlepart(part),
            Body::Multi(part) => builder.multipart(part),
        }
    } else {
        let mut mixed = match body {
            Body::Single(part) => MultiPart::mixed().singlepart(part),
            Body::Multi(part) => MultiPart::mixed().multipart(part),
        };
        for (i, attachment) in email.attachments.iter().enumerate() {
            let content_type =
                ContentType::parse(&attachment.content_type).map_err(|_| EmailError::Invalid {
                    field: format!("attachments[{i}].content_type"),
                    message: format!("`{}` is not a MIME type", attachment.content_type),
                })?;
            mixed = mixed.singlepart(
                MimeAttachment::new(attachment.filename.clone())
                    .body(attachment.content.clone(), content_type),
            );
        }
        builder.multipart(mixed)
    };
    built.map_err(|error| EmailError::Invalid {
        field: "to".into(),
        message: error.to_string(),
    })
}

fn unavailable(error: &lettre::transport::smtp::Error) -> EmailError {
    EmailError::Unavailable(describe(error))
}

/// The error and its causes on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn classify(error: &lettre::transport::smtp::Error) -> EmailError {
    if error.is_permanent() || error.is_transient() {
        return EmailError::Rejected {
            code: error.status().map(u16::from),
            message: describe(error),
            permanent: error.is_permanent(),
        };
    }
    unavailable(error)
}

#[cfg(test)]
mod tests;
