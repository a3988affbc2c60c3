//! Where the signing keys of a JWT issuer come from: a JWKS document held by a secret reference, a
//! JWKS URL, or OpenID discovery. Parsed here so `idflow.yaml` is checked when it loads; the `web`
//! crate fetches and verifies.

use crate::model::SecretRef;

/// Where the keys of an issuer come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS document held by a secret reference (`file:./jwks.json`).
    Secret(SecretRef),
    /// A JWKS URL.
    Url(String),
    /// OpenID discovery from the issuer.
    Discovery { issuer: String },
}

impl JwksSource {
    /// Parses `https://…` / loopback `http://…` URLs and secret references.
    pub fn parse(text: &str) -> Result<JwksSource, String> {
        let text = text.trim();
        if text.starts_with("https://") || text.starts_with("http://") {
            check_url(text)?;
            return Ok(JwksSource::Url(text.to_owned()));
        }
        SecretRef::parse(text).map(JwksSource::Secret).map_err(|_| {
            let shown: String = text.chars().take(40).collect();
            format!(
                "expected a JWKS URL (https://…) or a secret reference holding the JWKS such as `file:./jwks.json`, got `{shown}`"
            )
        })
    }

    /// What the source is, for messages: the reference, the URL, or the discovery URL.
    /// Whether the keys are fetched over the network (a URL or discovery).
    pub fn is_remote(&self) -> bool {
        !matches!(self, JwksSource::Secret(_))
    }

    pub fn name(&self) -> String {
        match self {
            JwksSource::Secret(r) => r.to_string(),
            JwksSource::Url(u) => u.clone(),
            JwksSource::Discovery { issuer } => discovery_url(issuer),
        }
    }
}

/// `<issuer>/.well-known/openid-configuration`.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Keys are fetched over TLS, except from loopback addresses (local tests and simulators).
pub fn check_url(text: &str) -> Result<(), String> {
    let url = url_host(text).ok_or_else(|| format!("`{text}` is not a URL"))?;
    match url {
        ("https", _) => Ok(()),
        ("http", host) if host == "localhost" || host == "127.0.0.1" || host == "[::1]" => Ok(()),
        _ => Err(format!("`{text}` must use https (http only for localhost)")),
    }
}

fn url_host(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some((scheme, host))
}
