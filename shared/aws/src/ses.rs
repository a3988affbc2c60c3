//! [`SesEmail`]: the [`EmailSender`] of the AWS deployment, Amazon SES v2 `SendEmail` with raw
//! content.
//!
//! The MIME message is built exactly as over SMTP ([`domain::email::mime_message`]), so
//! bodies and attachments (a CSV export) are the same bytes whichever way a message leaves. Every
//! recipient (`to`, `cc` and `bcc`) goes in the request's destination: the message's own headers
//! carry no `Bcc`.
//!
//! Messages are sent as the SES identity the deployment was given (`IDFLOW_SES_IDENTITY`): an
//! identity ARN is sent as `FromEmailAddressIdentityArn` (sending authorization), an email address
//! as `FromEmailAddress`; a domain identity leaves the sender to the message's `From`, which must be
//! in that domain. SES refuses senders it has not verified (`MessageRejected`): that, like any
//! refusal, is a permanent [`EmailError::Rejected`] carrying SES's message; throttling and server
//! errors are retryable.

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};

use domain::email::mime_message;
use domain::email::{Email, EmailError, EmailSender, Sent};

/// Error codes after which SES may accept the same message later.
const RETRYABLE_CODES: &[&str] = &[
    "TooManyRequestsException",
    "LimitExceededException",
    "Throttling",
    "ThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
];

/// An [`EmailSender`] on Amazon SES v2.
#[derive(Clone)]
pub struct SesEmail {
    client: Client,
    identity: String,
}

impl std::fmt::Debug for SesEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesEmail")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl SesEmail {
    /// A sender that sends as `identity` (`IDFLOW_SES_IDENTITY`): a verified email address, a
    /// verified domain, or an identity ARN.
    pub fn new(client: Client, identity: impl Into<String>) -> Self {
        SesEmail {
            client,
            identity: identity.into(),
        }
    }
}

#[async_trait]
impl EmailSender for SesEmail {
    async fn send(&self, email: &Email) -> Result<Sent, EmailError> {
        let message = mime_message(email)?;
        let recipients: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        let raw = RawMessage::builder()
            .data(Blob::new(message.formatted()))
            .build()
            .map_err(|error| EmailError::Invalid {
                field: "message".into(),
                message: error.to_string(),
            })?;
        let request = self
            .client
            .send_email()
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(recipients))
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build());
        let request = if self.identity.starts_with("arn:") {
            request.from_email_address_identity_arn(&self.identity)
        } else if self.identity.contains('@') {
            request.from_email_address(&self.identity)
        } else {
            request
        };
        let output = request.send().await.map_err(classify)?;
        Ok(Sent {
            message_id: output.message_id,
        })
    }
}

/// An SDK error as an email error: a refusal by SES (permanent unless throttled or a server
/// error), or SES out of reach (retryable).
fn classify<E>(error: SdkError<E, aws_sdk_sesv2::config::http::HttpResponse>) -> EmailError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &error {
        SdkError::ServiceError(service) => rejection(
            service.raw().status().as_u16(),
            service.err().code(),
            service.err().message(),
        ),
        SdkError::ConstructionFailure(_) => EmailError::Invalid {
            field: "message".into(),
            message: describe(&error),
        },
        _ => EmailError::Unavailable(describe(&error)),
    }
}

/// SES's answer as an error: permanent unless throttled (HTTP 429 or a throttling code) or a
/// server error, with SES's code and message for the step's error.
fn rejection(status: u16, code: Option<&str>, message: Option<&str>) -> EmailError {
    let retryable =
        status == 429 || status >= 500 || code.is_some_and(|code| RETRYABLE_CODES.contains(&code));
    let message = match (code, message) {
        (Some(code), Some(message)) => format!("SES {code}: {message}"),
        (Some(code), None) => format!("SES {code} (HTTP {status})"),
        (None, Some(message)) => format!("SES: {message} (HTTP {status})"),
        (None, None) => format!("SES answered HTTP {status}"),
    };
    EmailError::Rejected {
        code: None,
        message,
        permanent: !retryable,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_permanent_and_throttling_is_retried() {
        let rejected = rejection(
            400,
            Some("MessageRejected"),
            Some("Email address is not verified."),
        );
        assert!(!rejected.is_retryable());
        assert_eq!(
            rejected.to_string(),
            "the mail server refused: SES MessageRejected: Email address is not verified."
        );
        assert!(!rejection(400, Some("MailFromDomainNotVerifiedException"), None).is_retryable());
        assert!(rejection(429, Some("TooManyRequestsException"), None).is_retryable());
        assert!(rejection(400, Some("LimitExceededException"), Some("rate")).is_retryable());
        assert!(rejection(400, Some("Throttling"), None).is_retryable());
        assert!(rejection(503, None, None).is_retryable());
    }
}
