//! The executors of the I/O cards whose specs are in `domain::cards`.
//!
//! # Layout
//! - [`http`]: `http.request` (reqwest with rustls, behind the egress policy).
//! - [`email`]: `email.send` over the `EmailSender` port (SMTP here, SES in the `aws` crate).
//! - [`signing`]: `crypto.hmac` and `jwt.sign` (keys from the flow, usually secrets).
//! - [`slack`]: `slack.post_message` (Web API bot token or incoming webhook).

pub mod email;
pub mod http;
pub mod signing;
pub mod slack;
