//! A named Okta connection of the project config:
//!
//! ```yaml
//! connections:
//!   okta:
//!     domain: https://example.okta.com   # any base URL (tests point it at okta-sim)
//!     auth: { type: private_key_jwt, client_id: 0oa…, key: "file:./secrets/okta.pem",
//!             scopes: [okta.users.manage], dpop: true, kid: optional-key-id }
//!     max_wait: 10s                       # longest rate-limit wait held in a worker
//!     concurrency: 50                     # requests in flight at once
//!   okta-legacy:
//!     domain: https://example.okta.com
//!     auth: { type: ssws, token: "env:OKTA_API_TOKEN" }
//! ```

use std::time::Duration;

use reqwest::Url;
use serde_json::Value;

use super::OktaError;
use domain::model::{ProjectConfig, SecretRef};

/// The connection cards use when they name none.
pub const DEFAULT_CONNECTION: &str = "okta";
/// Rate-limit waits up to this long are held in the worker; longer ones park the step.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);
/// Requests in flight per connection (Okta allows 75 concurrent requests per org by default).
pub const DEFAULT_CONCURRENCY: usize = 50;
/// The largest `concurrency` accepted.
pub const MAX_CONCURRENCY: usize = 1000;

/// A parsed connection. Two equal connections share tokens, nonces and the concurrency cap.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// The name in `connections:`.
    pub name: String,
    /// The org's base URL without a trailing slash, e.g. `https://example.okta.com`.
    pub domain: String,
    pub auth: ConnectionAuth,
    pub max_wait: Duration,
    pub concurrency: usize,
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionAuth {
    /// `Authorization: SSWS <token>`.
    Ssws { token: SecretRef },
    /// OAuth 2.0 client credentials with a `private_key_jwt` client assertion.
    PrivateKeyJwt(OAuthSettings),
}

/// `auth: { type: private_key_jwt, ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthSettings {
    pub client_id: String,
    /// The PEM private key (PKCS#8 RSA or P-256, or PKCS#1 RSA); RS256 or ES256 follows from it.
    pub key: SecretRef,
    /// `kid` of the assertion header, when the app has several keys.
    pub key_id: Option<String>,
    pub scopes: Vec<String>,
    /// Ask for DPoP-bound tokens and prove possession on every request.
    pub dpop: bool,
}

impl Connection {
    /// The connection `name` of the project config.
    pub fn from_project(project: &ProjectConfig, name: &str) -> Result<Connection, OktaError> {
        let value = project.connections.get(name).ok_or_else(|| {
            problem(
                name,
                "is not defined in the project config (`connections:`)",
            )
        })?;
        Connection::parse(name, value)
    }

    /// Parses one entry of `connections:`.
    pub fn parse(name: &str, value: &Value) -> Result<Connection, OktaError> {
        let Value::Object(map) = value else {
            return Err(problem(name, "expected a mapping with `domain` and `auth`"));
        };
        let domain = match map.get("domain") {
            Some(Value::String(text)) if !text.trim().is_empty() => parse_domain(name, text)?,
            _ => {
                return Err(problem(
                    name,
                    "`domain` is required (e.g. https://example.okta.com)",
                ));
            }
        };
        let auth = match map.get("auth") {
            Some(Value::Object(auth)) => parse_auth(name, auth)?,
            _ => {
                return Err(problem(
                    name,
                    "`auth` is required: `{ type: ssws, token }` or `{ type: private_key_jwt, client_id, key, scopes }`",
                ));
            }
        };
        let max_wait = match map.get("max_wait") {
            None | Some(Value::Null) => DEFAULT_MAX_WAIT,
            Some(Value::String(text)) => domain::duration::parse(text)
                .map_err(|message| problem(name, &format!("`max_wait`: {message}")))?,
            Some(Value::Number(seconds)) => {
                seconds.as_u64().map(Duration::from_secs).ok_or_else(|| {
                    problem(
                        name,
                        "`max_wait` must be whole seconds or a duration such as `10s`",
                    )
                })?
            }
            Some(_) => return Err(problem(name, "`max_wait` must be a duration such as `10s`")),
        };
        let concurrency = match map.get("concurrency") {
            None | Some(Value::Null) => DEFAULT_CONCURRENCY,
            Some(value) => value
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=MAX_CONCURRENCY).contains(n))
                .ok_or_else(|| {
                    problem(
                        name,
                        &format!(
                            "`concurrency` must be a whole number from 1 to {MAX_CONCURRENCY}"
                        ),
                    )
                })?,
        };
        Ok(Connection {
            name: name.to_owned(),
            domain,
            auth,
            max_wait,
            concurrency,
        })
    }

    /// The org authorization server's token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/token", self.domain)
    }

    /// The absolute URL of `path` (relative to the org, or an absolute URL on the org's origin)
    /// with `query` appended.
    pub fn url(&self, path: &str, query: &[(String, String)]) -> Result<Url, OktaError> {
        let base = Url::parse(&self.domain)
            .map_err(|err| problem(&self.name, &format!("invalid `domain`: {err}")))?;
        let mut url = if path.starts_with("http://") || path.starts_with("https://") {
            Url::parse(path)
                .map_err(|err| OktaError::Response(format!("invalid URL `{path}`: {err}")))?
        } else if path.starts_with('/') {
            Url::parse(&format!("{}{path}", self.domain))
                .map_err(|err| OktaError::Response(format!("invalid path `{path}`: {err}")))?
        } else {
            return Err(OktaError::Response(format!(
                "path `{path}` must start with `/`"
            )));
        };
        // Credentials go only to the org: a Link pointing elsewhere is not followed, and no path a
        // template builds (`okta.api`'s `path`, ids in card paths) may leave the org either. The
        // egress policy trusts the org's origin and nothing else this client could be sent to.
        if url.origin() != base.origin() || url.username() != "" || url.password().is_some() {
            return Err(OktaError::Response(format!(
                "`{}` is not on the org {}",
                url.origin().ascii_serialization(),
                self.domain
            )));
        }
        if !query.is_empty() {
            // Percent-encoded (`%20`, not `+`): Okta's docs ask for it on `search` and `filter`.
            let added = query
                .iter()
                .map(|(name, value)| {
                    format!(
                        "{}={}",
                        domain::template::percent_encode(name),
                        domain::template::percent_encode(value)
                    )
                })
                .collect::<Vec<_>>()
                .join("&");
            let joined = match url.query() {
                Some(existing) if !existing.is_empty() => format!("{existing}&{added}"),
                _ => added,
            };
            url.set_query(Some(&joined));
        }
        Ok(url)
    }
}

fn problem(name: &str, message: &str) -> OktaError {
    OktaError::Connection {
        name: name.to_owned(),
        message: message.to_owned(),
    }
}

fn parse_domain(name: &str, text: &str) -> Result<String, OktaError> {
    let text = text.trim();
    // A bare host (`example.okta.com`, as Okta's admin console shows it) means HTTPS.
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("https://{text}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|err| problem(name, &format!("`domain` is not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(problem(name, "`domain` must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(problem(name, "`domain` must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn secret(name: &str, field: &str, value: Option<&Value>) -> Result<SecretRef, OktaError> {
    match value {
        Some(Value::String(text)) => SecretRef::parse(text)
            .map_err(|message| problem(name, &format!("`auth.{field}`: {message}"))),
        _ => Err(problem(
            name,
            &format!("`auth.{field}` is required: a secret reference such as `env:NAME`"),
        )),
    }
}

fn parse_auth(
    name: &str,
    auth: &serde_json::Map<String, Value>,
) -> Result<ConnectionAuth, OktaError> {
    match auth.get("type").and_then(Value::as_str) {
        Some("ssws") => Ok(ConnectionAuth::Ssws {
            token: secret(name, "token", auth.get("token"))?,
        }),
        Some("private_key_jwt") => {
            let client_id = match auth.get("client_id") {
                Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
                _ => return Err(problem(name, "`auth.client_id` is required")),
            };
            let scopes = match auth.get("scopes") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| problem(name, "`auth.scopes` must be a list of texts"))?,
                Some(Value::String(text)) => text.split_whitespace().map(str::to_owned).collect(),
                _ => Vec::new(),
            };
            if scopes.is_empty() {
                return Err(problem(
                    name,
                    "`auth.scopes` is required, e.g. [okta.users.read, okta.users.manage]",
                ));
            }
            let dpop = match auth.get("dpop") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(dpop)) => *dpop,
                Some(_) => return Err(problem(name, "`auth.dpop` must be true or false")),
            };
            let key_id = match auth.get("kid") {
                None | Some(Value::Null) => None,
                Some(Value::String(kid)) => Some(kid.clone()),
                Some(_) => return Err(problem(name, "`auth.kid` must be text")),
            };
            Ok(ConnectionAuth::PrivateKeyJwt(OAuthSettings {
                client_id,
                key: secret(name, "key", auth.get("key"))?,
                key_id,
                scopes,
                dpop,
            }))
        }
        Some(other) => Err(problem(
            name,
            &format!("unknown `auth.type` `{other}`; expected `ssws` or `private_key_jwt`"),
        )),
        None => Err(problem(
            name,
            "`auth.type` is required: `ssws` or `private_key_jwt`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(value: Value, expected: Result<(&str, Duration, usize), &str>) {
        let got = Connection::parse("okta", &value);
        match (got, expected) {
            (Ok(connection), Ok((domain, max_wait, concurrency))) => {
                assert_eq!(
                    (
                        connection.domain.as_str(),
                        connection.max_wait,
                        connection.concurrency
                    ),
                    (domain, max_wait, concurrency),
                    "{value}"
                );
            }
            (Err(error), Err(fragment)) => {
                assert!(error.to_string().contains(fragment), "{value}: {error}");
            }
            (got, expected) => panic!("{value}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn connections_parse_with_defaults_and_name_the_bad_field() {
        let ssws = json!({ "type": "ssws", "token": "env:OKTA_API_TOKEN" });
        check(
            json!({ "domain": "https://example.okta.com/", "auth": ssws }),
            Ok((
                "https://example.okta.com",
                DEFAULT_MAX_WAIT,
                DEFAULT_CONCURRENCY,
            )),
        );
        check(
            json!({ "domain": "example.okta.com", "auth": ssws, "max_wait": "1m", "concurrency": 5 }),
            Ok(("https://example.okta.com", Duration::from_secs(60), 5)),
        );
        check(
            json!({ "domain": "http://127.0.0.1:8080", "auth": ssws, "max_wait": 3 }),
            Ok((
                "http://127.0.0.1:8080",
                Duration::from_secs(3),
                DEFAULT_CONCURRENCY,
            )),
        );
        check(json!({ "auth": ssws }), Err("`domain` is required"));
        check(
            json!({ "domain": "https://o", "auth": { "type": "ssws", "token": "00abc" } }),
            Err("`auth.token`"),
        );
        check(
            json!({ "domain": "https://o", "auth": ssws, "concurrency": 0 }),
            Err("`concurrency`"),
        );
        check(
            json!({ "domain": "https://o", "auth": { "type": "oauth" } }),
            Err("unknown `auth.type` `oauth`"),
        );
        check(
            json!({ "domain": "https://o", "auth": { "type": "private_key_jwt", "client_id": "0oa1", "key": "file:k.pem" } }),
            Err("`auth.scopes` is required"),
        );
        check(
            json!({ "domain": "https://o", "auth": { "type": "private_key_jwt", "client_id": "0oa1", "key": "file:k.pem", "scopes": ["okta.users.read"], "dpop": true } }),
            Ok(("https://o", DEFAULT_MAX_WAIT, DEFAULT_CONCURRENCY)),
        );
    }

    #[test]
    fn urls_stay_on_the_org() {
        let connection = Connection::parse(
            "okta",
            &json!({ "domain": "https://example.okta.com", "auth": { "type": "ssws", "token": "env:T" } }),
        )
        .expect("valid");
        let url = connection
            .url(
                "/api/v1/users",
                &[("search".into(), "profile.department eq \"IT\"".into())],
            )
            .expect("relative");
        assert_eq!(
            url.as_str(),
            "https://example.okta.com/api/v1/users?search=profile.department%20eq%20%22IT%22"
        );
        assert!(
            connection
                .url("https://example.okta.com/api/v1/users?after=x", &[])
                .is_ok()
        );
        assert!(
            connection
                .url("https://evil.example.com/api/v1/users", &[])
                .is_err()
        );
        assert!(connection.url("api/v1/users", &[]).is_err());
        assert!(
            connection
                .url("https://example.okta.com.evil.example/api/v1/users", &[])
                .is_err()
        );
        assert!(
            connection
                .url("http://example.okta.com/api/v1/users", &[])
                .is_err(),
            "another scheme is another origin"
        );
        // Paths that a URL parser could read as another authority stay on the org.
        for path in [
            "//evil.example/x",
            "/\\evil.example/x",
            "/@evil.example/x",
            "/..//evil.example/x",
            "/%2F%2Fevil.example/x",
            "/x?next=https://evil.example/",
        ] {
            let url = connection.url(path, &[]).expect(path);
            assert_eq!(
                url.origin().ascii_serialization(),
                "https://example.okta.com",
                "{path}"
            );
        }
    }
}
