//! Authentication helpers every route shares: constant-time comparison, bearer tokens, secret
//! references resolved for an auth check, and the admin API's access rule and request check (one
//! of each, for `idflow serve` and the `api` Lambda).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use domain::model::SecretRef;
use domain::ports::{SecretError, SecretValue, Secrets};
use domain::runner::Runtime;

use crate::error::ApiError;

/// Compares secrets without leaking their length-prefix match through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `ct_eq` on slices of different lengths returns false immediately, which leaks only the length;
    // hash both first so even the length is not observable.
    let ha = <Sha256 as sha2::Digest>::digest(a);
    let hb = <Sha256 as sha2::Digest>::digest(b);
    ha.as_slice().ct_eq(hb.as_slice()).into()
}

/// Whether `Authorization: Bearer <token>` carries `expected`, compared in constant time.
pub fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    constant_time_eq(presented.as_bytes(), expected.as_bytes())
}

/// Resolves a secret reference for an auth check: a store that cannot be read now is 503 (the
/// caller may retry), a reference that cannot resolve is the server's problem (500).
pub async fn resolve_secret(
    runtime: &Runtime,
    reference: &SecretRef,
) -> Result<SecretValue, ApiError> {
    match runtime.resolve_secret(reference).await {
        Ok(value) => Ok(value),
        Err(error @ SecretError::Unreadable { .. }) => Err(ApiError::Unavailable(Box::new(error))),
        Err(error) => Err(ApiError::Internal(Box::new(error))),
    }
}

/// The fewest characters an admin token the network can reach may have: 32 hex characters are 128
/// bits, beyond guessing through the API.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Who can reach the admin API, which decides how strong its token must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminExposure {
    /// Only this machine (`idflow serve` on a loopback address).
    Loopback,
    /// Any host that reaches the listener (`idflow serve` beyond loopback, the `api` Lambda).
    Network,
}

/// Who the admin routes admit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAccess {
    /// Anyone: no token is configured and only this machine reaches the API.
    Open,
    /// Requests bearing this token, and requests verified upstream ([`VerifiedAdmin`]).
    Token(Arc<str>),
    /// Only requests verified upstream: no token is configured and the network reaches the API.
    VerifiedOnly,
}

impl AdminAccess {
    /// The admin token, when one is configured.
    pub fn token(&self) -> Option<&str> {
        match self {
            AdminAccess::Token(token) => Some(token),
            AdminAccess::Open | AdminAccess::VerifiedOnly => None,
        }
    }
}

/// An admin request the deployment verified before it reached idflow (API Gateway's JWT authorizer
/// in front of the `api` Lambda), put in the request's extensions by the deployment's own layer.
/// A client cannot set request extensions; only server code can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAdmin {
    /// The verified subject, for the log.
    pub subject: String,
}

/// The admin token of `idflow.yaml` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// The secret reference does not resolve.
    #[error("the admin token cannot be read")]
    Unreadable(#[source] SecretError),
    /// The token is empty or whitespace, which would let a request without a token in.
    #[error(
        "the admin token is empty; set it to a random value of at least {MIN_ADMIN_TOKEN_CHARS} characters (generate one with `openssl rand -hex 32`)"
    )]
    Blank,
    /// The token is too short for an admin API the network can reach.
    #[error(
        "the admin token has {length} characters; one the network can reach needs at least {MIN_ADMIN_TOKEN_CHARS} characters (generate one with `openssl rand -hex 32`)"
    )]
    TooShort { length: usize },
}

/// Resolves the admin token (`admin.token` of `idflow.yaml`) into the admin API's access rule for
/// `exposure`: the token is never blank, and has at least [`MIN_ADMIN_TOKEN_CHARS`] characters when
/// the network can reach it; without a token the admin API is open on loopback only, and beyond it
/// admits only requests verified upstream. Surrounding whitespace (a file's final newline) is not
/// part of the token. `idflow serve` and the `api` Lambda both decide their access here.
pub async fn admin_access(
    secrets: &dyn Secrets,
    reference: Option<&SecretRef>,
    exposure: AdminExposure,
) -> Result<AdminAccess, AdminTokenError> {
    let Some(reference) = reference else {
        return Ok(match exposure {
            AdminExposure::Loopback => AdminAccess::Open,
            AdminExposure::Network => AdminAccess::VerifiedOnly,
        });
    };
    let value = secrets
        .resolve(reference)
        .await
        .map_err(AdminTokenError::Unreadable)?;
    let token = value.expose().trim();
    let length = token.chars().count();
    if exposure == AdminExposure::Network && length < MIN_ADMIN_TOKEN_CHARS {
        return Err(AdminTokenError::TooShort { length });
    }
    if token.is_empty() {
        return Err(AdminTokenError::Blank);
    }
    Ok(AdminAccess::Token(Arc::from(token)))
}

/// Whether an admin request may pass: verified upstream, bearing the admin token, or any request
/// when the admin API is open.
pub fn check_admin(access: &AdminAccess, request: &Request) -> Result<(), ApiError> {
    if let Some(verified) = request.extensions().get::<VerifiedAdmin>() {
        tracing::info!(subject = %verified.subject, path = %request.uri().path(), "admin request verified upstream");
        return Ok(());
    }
    match access {
        AdminAccess::Open => Ok(()),
        AdminAccess::Token(expected) if bearer_matches(request.headers(), expected) => Ok(()),
        AdminAccess::Token(_) => Err(ApiError::Unauthorized(
            "a valid admin bearer token is required".into(),
        )),
        AdminAccess::VerifiedOnly => Err(ApiError::Unauthorized(
            "the admin API needs a caller verified by API Gateway's JWT authorizer (template.yaml) or `admin.token` in idflow.yaml"
                .into(),
        )),
    }
}

/// The admin routes' middleware: [`check_admin`].
pub async fn require_admin(
    State(access): State<AdminAccess>,
    request: Request,
    next: Next,
) -> Response {
    match check_admin(&access, &request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::ports::SecretValue;

    /// Secrets that hold one value for every reference.
    struct OneSecret(String);

    #[async_trait::async_trait]
    impl Secrets for OneSecret {
        async fn resolve(&self, _: &SecretRef) -> Result<SecretValue, SecretError> {
            Ok(SecretValue::new(self.0.clone()))
        }
    }

    #[tokio::test]
    async fn admin_tokens_must_be_long_where_the_network_reaches_them() {
        let strong = "0123456789abcdef0123456789abcdef";
        use AdminExposure::{Loopback, Network};
        check("x", Network, Err("has 1 characters")).await;
        check(" \t\n", Network, Err("has 0 characters")).await;
        check(&strong[1..], Network, Err("has 31 characters")).await;
        check(strong, Network, Ok(Some(strong))).await;
        // The trimmed token is the token: a client cannot send header whitespace anyway.
        check(
            "  0123456789abcdef0123456789abcdef\n",
            Network,
            Ok(Some(strong)),
        )
        .await;
        check("x", Loopback, Ok(Some("x"))).await;
        check("   ", Loopback, Err("the admin token is empty")).await;
        // Without a token, only this machine gets in unverified.
        assert_eq!(
            admin_access(&OneSecret("x".into()), None, Network)
                .await
                .unwrap(),
            AdminAccess::VerifiedOnly
        );
        assert_eq!(
            admin_access(&OneSecret("x".into()), None, Loopback)
                .await
                .unwrap(),
            AdminAccess::Open
        );
    }

    async fn check(token: &str, exposure: AdminExposure, expected: Result<Option<&str>, &str>) {
        let reference = SecretRef::Env("IDFLOW_ADMIN_TOKEN".into());
        let got = admin_access(&OneSecret(token.into()), Some(&reference), exposure).await;
        match (got, expected) {
            (Ok(got), Ok(want)) => assert_eq!(got.token(), want, "{token:?}"),
            (Err(error), Err(message)) => {
                assert!(error.to_string().contains(message), "{token:?}: {error}")
            }
            (got, want) => panic!("{token:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn one_admin_check_for_every_deployment() {
        let token = "0123456789abcdef0123456789abcdef";
        let request = |bearer: Option<&str>, verified: bool| {
            let mut builder = http::Request::get("/api/runs");
            if let Some(bearer) = bearer {
                builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {bearer}"));
            }
            let mut request = builder
                .body(axum::body::Body::empty())
                .unwrap_or_else(|e| panic!("{e}"));
            if verified {
                request.extensions_mut().insert(VerifiedAdmin {
                    subject: "ops@example.com".into(),
                });
            }
            request
        };
        let with_token = AdminAccess::Token(Arc::from(token));
        let cases = [
            (&with_token, request(Some(token), false), true),
            (&with_token, request(Some("guess"), false), false),
            (&with_token, request(None, false), false),
            // Verified upstream (API Gateway's JWT authorizer): no token needed.
            (&with_token, request(None, true), true),
            (&AdminAccess::VerifiedOnly, request(None, true), true),
            (
                &AdminAccess::VerifiedOnly,
                request(Some(token), false),
                false,
            ),
            (&AdminAccess::Open, request(None, false), true),
        ];
        for (index, (access, request, admitted)) in cases.into_iter().enumerate() {
            assert_eq!(
                check_admin(access, &request).is_ok(),
                admitted,
                "case {index}"
            );
        }
    }
}
