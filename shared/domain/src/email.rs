//! Email: the message the `email.send` card builds and the [`EmailSender`] port that delivers it
//! (SMTP locally, Amazon SES in AWS).
//!
//! The card reads the `email` connection of `idflow.yaml` into an [`EmailConnection`]: the sender
//! address and how to deliver, `smtp: { host, port, tls, username, password }` or `ses: { region }`.
//! Credentials are secret references, resolved at send time.

use async_trait::async_trait;
use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use serde_json::Value;

use crate::model::SecretRef;

/// A message ready to send. Addresses are `ada@example.com` or `Ada Lovelace <ada@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub from: String,
    pub reply_to: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    /// The plain-text body.
    pub text: Option<String>,
    /// The HTML body; with `text`, the message offers both.
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// MIME type, such as `text/csv`.
    pub content_type: String,
    pub content: Vec<u8>,
}

/// What a sender reports once the message is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The message's id (`Message-ID` over SMTP, SES's `MessageId`).
    pub message_id: Option<String>,
}

/// Errors of sending email.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The message cannot be built (a bad address, an empty subject); never retried.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The server refused the message or the login. `permanent` is SMTP's 5xx (or SES's rejection).
    #[error("the mail server refused: {message}")]
    Rejected {
        code: Option<u16>,
        message: String,
        permanent: bool,
    },
    /// The server could not be reached, or the connection (or TLS) failed.
    #[error("cannot reach the mail server: {0}")]
    Unavailable(String),
}

impl EmailError {
    /// Whether sending the same message later may work.
    pub fn is_retryable(&self) -> bool {
        match self {
            EmailError::Invalid { .. } => false,
            EmailError::Rejected { permanent, .. } => !permanent,
            EmailError::Unavailable(_) => true,
        }
    }
}

/// Delivers messages: SMTP locally ([`crate::adapters::smtp::SmtpSender`]), SES in AWS.
#[async_trait]
pub trait EmailSender: Send + Sync {
    /// Sends one message; returns once the server accepted it.
    async fn send(&self, email: &Email) -> Result<Sent, EmailError>;
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

impl SmtpTls {
    /// The port used when the connection names none.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// `smtp:` of an email connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// A literal user name, or a secret reference (`env:SMTP_USER`).
    pub username: Option<UserName>,
    pub password: Option<SecretRef>,
}

/// An SMTP user name: often not secret (an address), sometimes a key id kept with the password.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UserName {
    Literal(String),
    Secret(SecretRef),
}

/// How an email connection delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Smtp(SmtpSettings),
    /// Amazon SES v2 (the AWS deployment); `region` defaults to the function's.
    Ses {
        region: Option<String>,
    },
}

/// An `email` connection: the sender and how to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConnection {
    /// The `From` address of every message sent through this connection.
    pub from: String,
    pub reply_to: Option<String>,
    pub transport: Transport,
}

impl EmailConnection {
    /// Reads a connection as kept in [`crate::model::ProjectConfig::connections`]. The error says
    /// what is wrong, for the step's error message.
    pub fn from_config(name: &str, config: &Value) -> Result<EmailConnection, String> {
        let text = |value: Option<&Value>, what: &str| -> Result<Option<String>, String> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) if !text.trim().is_empty() => Ok(Some(text.clone())),
                Some(_) => Err(format!("connection `{name}`: `{what}` must be text")),
            }
        };
        let from = text(config.get("from"), "from")?.ok_or_else(|| {
            format!("connection `{name}` needs `from`, the sender address of every message")
        })?;
        let reply_to = text(config.get("reply_to"), "reply_to")?;
        let transport = match (config.get("smtp"), config.get("ses")) {
            (Some(smtp), None) => {
                let host = text(smtp.get("host"), "smtp.host")?
                    .ok_or_else(|| format!("connection `{name}`: `smtp` needs `host`"))?;
                let tls = match text(smtp.get("tls"), "smtp.tls")?.as_deref() {
                    None | Some("starttls") => SmtpTls::Starttls,
                    Some("tls") => SmtpTls::Tls,
                    Some("none") => SmtpTls::None,
                    Some(other) => {
                        return Err(format!(
                            "connection `{name}`: `smtp.tls` is `{other}`, expected starttls, tls or none"
                        ));
                    }
                };
                let port = match smtp.get("port") {
                    None | Some(Value::Null) => tls.default_port(),
                    Some(value) => value
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .ok_or_else(|| {
                            format!("connection `{name}`: `smtp.port` must be a port number")
                        })?,
                };
                let username =
                    text(smtp.get("username"), "smtp.username")?.map(
                        |user| match SecretRef::parse(&user) {
                            Ok(reference)
                                if user.starts_with("env:")
                                    || user.starts_with("file:")
                                    || user.starts_with("aws-secretsmanager:") =>
                            {
                                UserName::Secret(reference)
                            }
                            _ => UserName::Literal(user),
                        },
                    );
                let password = match text(smtp.get("password"), "smtp.password")? {
                    None => None,
                    Some(reference) => Some(SecretRef::parse(&reference).map_err(|_| {
                        format!(
                            "connection `{name}`: `smtp.password` must be a secret reference such as `env:SMTP_PASSWORD`"
                        )
                    })?),
                };
                if username.is_some() != password.is_some() {
                    return Err(format!(
                        "connection `{name}`: give both `smtp.username` and `smtp.password`, or neither"
                    ));
                }
                Transport::Smtp(SmtpSettings {
                    host,
                    port,
                    tls,
                    username,
                    password,
                })
            }
            (None, Some(ses)) => Transport::Ses {
                region: text(ses.get("region"), "ses.region")?,
            },
            _ => {
                return Err(format!(
                    "connection `{name}` needs either `smtp: {{ host, port, tls, username, password }}` or `ses: {{ region }}`"
                ));
            }
        };
        Ok(EmailConnection {
            from,
            reply_to,
            transport,
        })
    }
}

/// The MIME message of an [`Email`]: text and/or HTML (as alternatives), then attachments. The SMTP
/// sender and SES send exactly this.
pub fn mime_message(email: &Email) -> Result<Message, EmailError> {
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

fn mailbox(field: &str, address: &str) -> Result<Mailbox, EmailError> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|error| EmailError::Invalid {
            field: field.to_owned(),
            message: format!("`{address}` is not an email address ({error})"),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn connections_are_read_with_defaults_or_say_what_is_missing() {
        let check = |config: Value, expected: Result<EmailConnection, &str>| {
            assert_eq!(
                EmailConnection::from_config("email", &config),
                expected.map_err(str::to_owned),
                "{config}"
            );
        };
        check(
            json!({ "from": "idflow <idflow@example.com>", "smtp": { "host": "smtp.example.com", "username": "idflow@example.com", "password": "env:SMTP_PASSWORD" } }),
            Ok(EmailConnection {
                from: "idflow <idflow@example.com>".into(),
                reply_to: None,
                transport: Transport::Smtp(SmtpSettings {
                    host: "smtp.example.com".into(),
                    port: 587,
                    tls: SmtpTls::Starttls,
                    username: Some(UserName::Literal("idflow@example.com".into())),
                    password: Some(SecretRef::Env("SMTP_PASSWORD".into())),
                }),
            }),
        );
        check(
            json!({ "from": "a@example.com", "smtp": { "host": "relay", "tls": "tls", "username": "env:SMTP_USER", "password": "file:./smtp.txt" } }),
            Ok(EmailConnection {
                from: "a@example.com".into(),
                reply_to: None,
                transport: Transport::Smtp(SmtpSettings {
                    host: "relay".into(),
                    port: 465,
                    tls: SmtpTls::Tls,
                    username: Some(UserName::Secret(SecretRef::Env("SMTP_USER".into()))),
                    password: Some(SecretRef::File("./smtp.txt".into())),
                }),
            }),
        );
        check(
            json!({ "from": "a@example.com", "reply_to": "b@example.com", "ses": {} }),
            Ok(EmailConnection {
                from: "a@example.com".into(),
                reply_to: Some("b@example.com".into()),
                transport: Transport::Ses { region: None },
            }),
        );
        check(
            json!({ "smtp": { "host": "h" } }),
            Err("connection `email` needs `from`, the sender address of every message"),
        );
        check(
            json!({ "from": "a@example.com" }),
            Err(
                "connection `email` needs either `smtp: { host, port, tls, username, password }` or `ses: { region }`",
            ),
        );
        check(
            json!({ "from": "a@example.com", "smtp": { "host": "h", "tls": "ssl" } }),
            Err("connection `email`: `smtp.tls` is `ssl`, expected starttls, tls or none"),
        );
        check(
            json!({ "from": "a@example.com", "smtp": { "host": "h", "username": "u", "password": "hunter2" } }),
            Err(
                "connection `email`: `smtp.password` must be a secret reference such as `env:SMTP_PASSWORD`",
            ),
        );
        check(
            json!({ "from": "a@example.com", "smtp": { "host": "h", "username": "u" } }),
            Err("connection `email`: give both `smtp.username` and `smtp.password`, or neither"),
        );
        check(
            json!({ "from": "a@example.com", "smtp": { "host": "h", "port": 70000 } }),
            Err("connection `email`: `smtp.port` must be a port number"),
        );
    }
}
