//! `trigger: { api: { auth, respond, timeout } }`: runs started by callers of
//! `GET|POST /api/flows/{name}/invoke`. The endpoint (`web::triggers::api`) authenticates the
//! caller by these settings and starts the run on the compiled version it authenticated against.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Kind, TriggerKind, TriggerSecret};
use crate::flowfile::check::{Ctx, choice, duration, fields, nonempty_text, secret, text};
use crate::flowfile::flow::{FlowDecoder, Reference};
use crate::flowfile::tree::{Node, preview};
use crate::model::{ProjectConfig, SecretRef};

/// `trigger: { api: {...} }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiTrigger {
    pub auth: ApiAuth,
    pub respond: Respond,
    /// For `respond: sync`: how long the caller waits for `flow.return` before a 504 (default 30 s).
    pub timeout: Duration,
}

/// How an API endpoint authenticates its callers.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiAuth {
    /// A client token in the `clientToken` query parameter or the `x-api-client-token` header. `None`
    /// means the token comes from `idflow.yaml` (`api.tokens.<flow>`).
    Token { token: Option<SecretRef> },
    /// An HMAC signature of the raw body, third-party webhook style.
    Hmac(HmacAuth),
    /// An OAuth 2.0 bearer JWT.
    Jwt { issuer: String, audience: String },
    /// No authentication.
    Public,
}

/// Settings of `auth: hmac`.
#[derive(Debug, Clone, PartialEq)]
pub struct HmacAuth {
    /// Header that carries the signature, compared case-insensitively.
    pub header: String,
    /// Text before the signature in the header, such as `sha256=`.
    pub prefix: String,
    pub encoding: SignatureEncoding,
    pub secret: SecretRef,
    /// When set, the header holding a Unix timestamp that is signed as `"{timestamp}.{body}"`
    /// and must be within `tolerance` of now.
    pub timestamp_header: Option<String>,
    pub tolerance: Duration,
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// `respond: async | sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Respond {
    /// 202 with the run id as soon as the run is durably queued.
    Async,
    /// Wait for `flow.return` (or the end of the run) up to the trigger timeout.
    Sync,
}

/// What an API run records about its start: the HTTP method it was invoked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiStart {
    pub method: String,
}

impl Kind for ApiTrigger {
    const KIND: TriggerKind = TriggerKind {
        name: "api",
        description: "started by callers of GET|POST /api/flows/{name}/invoke",
        example: "trigger: { api: { auth: public } }",
    };

    fn decode(decoder: &mut FlowDecoder<'_>, node: &Node, path: &str) -> Option<Self> {
        const AUTH: &[&str] = &["token", "hmac", "jwt", "public"];
        let ctx = &mut *decoder.ctx;
        let api = fields(
            ctx,
            node,
            path,
            &["auth", "token", "hmac", "jwt", "respond", "timeout"],
        )?;
        let auth_node = api.required(ctx, "auth", "one of token, hmac, jwt, public");
        let auth_kind = auth_node.and_then(|node| choice(ctx, node, &api.path_of("auth"), AUTH));
        // Settings of one auth kind next to another kind are a mistake the user wants to hear about.
        for kind in ["token", "hmac", "jwt"] {
            if let (Some(entry), Some(auth)) = (api.entry(kind), auth_kind)
                && auth != kind
            {
                let message = format!(
                    "`{kind}` applies to `auth: {kind}`, and this endpoint has `auth: {auth}`"
                );
                ctx.error(entry.key_location, &api.path_of(kind), message);
            }
        }
        let auth = match auth_kind? {
            "token" => {
                let token = match api.get("token") {
                    None => {
                        if let Some(node) = auth_node {
                            decoder.facts.config_token =
                                Some(Reference { name: String::new(), location: node.location, path: api.path_of("auth") });
                        }
                        Some(None)
                    }
                    Some(node) => secret(ctx, node, &api.path_of("token")).map(Some),
                };
                token.map(|token| ApiAuth::Token { token })
            }
            "hmac" => api
                .required(ctx, "hmac", "the signature settings: header, secret, ...")
                .and_then(|node| hmac(ctx, node, &api.path_of("hmac")))
                .map(ApiAuth::Hmac),
            "jwt" => api.required(ctx, "jwt", "issuer and audience").and_then(|node| {
                let jwt = fields(ctx, node, &api.path_of("jwt"), &["issuer", "audience"])?;
                let issuer = jwt.required(ctx, "issuer", "the token issuer URL").and_then(|node| {
                    let issuer_path = jwt.path_of("issuer");
                    let issuer = nonempty_text(ctx, node, &issuer_path)?;
                    if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                        let message = format!("expected an issuer URL such as https://example.okta.com/oauth2/default, got `{}`", preview(&issuer));
                        ctx.error(node.location, &issuer_path, message);
                        return None;
                    }
                    Some(issuer)
                });
                let audience = jwt
                    .required(ctx, "audience", "the expected `aud` claim")
                    .and_then(|node| nonempty_text(ctx, node, &jwt.path_of("audience")));
                Some(ApiAuth::Jwt { issuer: issuer?, audience: audience? })
            }),
            _ => Some(ApiAuth::Public),
        };
        let respond = match api.get("respond") {
            None => Some(Respond::Async),
            Some(node) => choice(ctx, node, &api.path_of("respond"), &["async", "sync"]).map(|r| {
                if r == "sync" {
                    Respond::Sync
                } else {
                    Respond::Async
                }
            }),
        };
        let timeout = match api.get("timeout") {
            None => Some(Duration::from_secs(30)),
            Some(node) => duration(
                ctx,
                node,
                &api.path_of("timeout"),
                Duration::from_secs(1),
                Some(Duration::from_secs(900)),
            ),
        };
        Some(ApiTrigger {
            auth: auth?,
            respond: respond?,
            timeout: timeout?,
        })
    }

    fn schema() -> serde_json::Value {
        use crate::schema::{duration, object, props, text};
        use serde_json::json;
        object(
            props(vec![
                (
                    "auth",
                    json!({ "enum": ["token", "hmac", "jwt", "public"] }),
                ),
                ("token", text("a secret reference, with `auth: token`")),
                (
                    "hmac",
                    object(
                        props(vec![
                            ("header", text("the header carrying the signature")),
                            (
                                "prefix",
                                text("text before the signature, such as `sha256=`"),
                            ),
                            ("encoding", json!({ "enum": ["hex", "base64"] })),
                            ("secret", text("a secret reference")),
                            ("timestamp_header", json!({ "type": ["string", "null"] })),
                            ("tolerance", duration("how old a timestamp may be")),
                        ]),
                        &[],
                        true,
                    ),
                ),
                (
                    "jwt",
                    object(
                        props(vec![
                            ("issuer", text("the token issuer")),
                            ("audience", text("the expected audience")),
                        ]),
                        &[],
                        false,
                    ),
                ),
                ("respond", json!({ "enum": ["async", "sync"] })),
                (
                    "timeout",
                    duration("how long a sync call waits for `flow.return`"),
                ),
            ]),
            &[],
            false,
        )
    }

    fn summary(&self) -> String {
        format!(
            "/api/flows/…/invoke, {} response",
            match self.respond {
                Respond::Async => "async",
                Respond::Sync => "sync",
            }
        )
    }

    fn secrets(&self, flow: &str, config: &ProjectConfig) -> Vec<TriggerSecret> {
        let named =
            |name: String, reference: Option<SecretRef>| TriggerSecret::Named { name, reference };
        match &self.auth {
            ApiAuth::Token { token: Some(token) } => {
                vec![named("trigger.api.token".into(), Some(token.clone()))]
            }
            ApiAuth::Token { token: None } => config
                .api_tokens
                .get(flow)
                .map(|token| named(format!("api.tokens.{flow}"), Some(token.clone())))
                .into_iter()
                .collect(),
            ApiAuth::Hmac(hmac) => vec![named(
                "trigger.api.hmac.secret".into(),
                Some(hmac.secret.clone()),
            )],
            ApiAuth::Jwt { issuer, .. } => config
                .jwks
                .get(issuer)
                .and_then(|jwks| SecretRef::parse(jwks).ok())
                .map(|reference| named(format!("jwks.{issuer}"), Some(reference)))
                .into_iter()
                .collect(),
            ApiAuth::Public => Vec::new(),
        }
    }

    fn test_input_defaults(
        &self,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "method": "POST", "body": null, "query": {}, "headers": {} }))
    }
}

/// Reads `auth: hmac`'s `hmac: { header, prefix, encoding, secret, timestamp_header, tolerance }`.
fn hmac(ctx: &mut Ctx, node: &Node, path: &str) -> Option<HmacAuth> {
    let hmac = fields(
        ctx,
        node,
        path,
        &[
            "header",
            "prefix",
            "encoding",
            "secret",
            "timestamp_header",
            "tolerance",
        ],
    )?;
    let header = hmac
        .required(ctx, "header", "the header that carries the signature")
        .and_then(|node| header_name(ctx, node, &hmac.path_of("header")));
    let prefix = match hmac.get("prefix") {
        None => Some(String::new()),
        Some(node) => text(ctx, node, &hmac.path_of("prefix")),
    };
    let encoding = match hmac.get("encoding") {
        None => Some(SignatureEncoding::Hex),
        Some(node) => choice(ctx, node, &hmac.path_of("encoding"), &["hex", "base64"]).map(|e| {
            if e == "base64" {
                SignatureEncoding::Base64
            } else {
                SignatureEncoding::Hex
            }
        }),
    };
    let secret = hmac
        .required(
            ctx,
            "secret",
            "a secret reference such as `env:WEBHOOK_SECRET`",
        )
        .and_then(|node| secret(ctx, node, &hmac.path_of("secret")));
    let timestamp_header = match hmac.get("timestamp_header") {
        None => Some(None),
        Some(node) => header_name(ctx, node, &hmac.path_of("timestamp_header")).map(Some),
    };
    let tolerance = match hmac.get("tolerance") {
        None => Some(Duration::from_secs(300)),
        Some(node) => duration(
            ctx,
            node,
            &hmac.path_of("tolerance"),
            Duration::from_secs(1),
            Some(Duration::from_secs(86_400)),
        ),
    };
    Some(HmacAuth {
        header: header?,
        prefix: prefix?,
        encoding: encoding?,
        secret: secret?,
        timestamp_header: timestamp_header?,
        tolerance: tolerance?,
    })
}

/// An HTTP header name (letters, digits, `-`, `_`).
fn header_name(ctx: &mut Ctx, node: &Node, path: &str) -> Option<String> {
    let name = nonempty_text(ctx, node, path)?;
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Some(name)
    } else {
        ctx.error(
            node.location,
            path,
            format!(
                "`{}` is not a header name: use letters, digits and `-`",
                preview(&name)
            ),
        );
        None
    }
}
