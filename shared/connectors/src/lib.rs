//! idflow's connectors: the executors of the cards that talk to outside services, on the ports the
//! `domain` crate defines.
//!
//! # Layout
//! - [`cards`]: `http.request` ([`cards::http::HttpExecutor`]), `slack.post_message`
//!   ([`cards::slack::SlackExecutor`]) and `email.send` ([`cards::email::EmailExecutor`]).
//! - [`okta`]: the Okta and OIG client behind the `OktaApi` port (SSWS, `private_key_jwt`, DPoP,
//!   `Link` paging, rate-limit buckets, the concurrency cap) and the `okta.*`/`oig.*` executor.
//! - [`smtp`]: [`smtp::SmtpSender`], the SMTP implementation of the `EmailSender` port.
//! - [`egress`]: the egress policy wired into reqwest (a resolver that checks the addresses it
//!   connects to, and every redirect).
//!
//! [`StandardExecutors::with_standard_executors`] registers them all on a runtime.

use std::sync::Arc;

use domain::runner::Runtime;

pub mod cards;
pub mod egress;
pub mod okta;
pub mod smtp;

/// Registers the executors every deployment that runs flows needs.
pub trait StandardExecutors: Sized {
    /// Registers, on the runtime's secrets and clock: `http`, `okta` and `oig` (one executor),
    /// `slack`, `email` (SMTP, configured in `idflow.yaml`), `crypto` and `jwt` (signing). The `table` cards need a table
    /// store, which each deployment adds itself.
    fn with_standard_executors(self) -> Result<Self, reqwest::Error>;
}

impl StandardExecutors for Runtime {
    fn with_standard_executors(self) -> Result<Runtime, reqwest::Error> {
        let http = cards::http::HttpExecutor::new()?;
        let ports = self.adapter_ports();
        let okta = Arc::new(okta::OktaExecutor::with_ports(
            ports.secrets.clone(),
            ports.clock.clone(),
        )?);
        let slack = cards::slack::SlackExecutor::new(ports.secrets.clone())?;
        let email = cards::email::EmailExecutor::new(ports.secrets);
        let signing = Arc::new(cards::signing::SigningExecutor::new(ports.clock));
        Ok(self
            .with_executor("http", Arc::new(http))
            .with_executor("okta", okta.clone())
            .with_executor("oig", okta)
            .with_executor("slack", Arc::new(slack))
            .with_executor("email", Arc::new(email))
            .with_executor("crypto", signing.clone())
            .with_executor("jwt", signing))
    }
}
