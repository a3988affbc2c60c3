//! [`SmtpSender`]: the [`EmailSender`] of `idflow serve`, over SMTP with `lettre` (tokio, rustls).
//!
//! One connection per message: flows send a few messages, not thousands, and a fresh connection
//! never trips over a server that dropped an idle one. STARTTLS is required (not opportunistic) when
//! the connection asks for it, so a downgrade cannot expose the credentials.

use std::time::Duration;

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use domain::email::{Email, EmailError, EmailSender, Sent, SmtpSettings, SmtpTls};

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
        let message = domain::email::mime_message(email)?;
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
