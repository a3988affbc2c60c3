//! Bearer JWTs: where the signing keys come from (JWKS), and what a valid token must say.
//!
//! Used by `auth: jwt` API flows and by `jwt` callers of delegated flows. A token is accepted when:
//! its algorithm is an asymmetric one (RS*, PS*, ES256/ES384; `none` and HMAC are never accepted, so
//! a public JWKS key can never be used as an HMAC secret), its signature verifies with the JWKS key of
//! its `kid` (or, without a `kid`, with one of the keys of the matching type), `iss` equals the
//! expected issuer, `aud` is or contains the expected audience, `exp` is present and not passed, `nbf`
//! (if any) is reached, and `sub` matches when one is configured. Times are checked against the clock
//! port, with [`LEEWAY`] for clock skew.
//!
//! # JWKS sources
//! - a secret reference (`file:./jwks.json`, `env:NAME`, `aws-secretsmanager:…`) holding the JWKS
//!   document, resolved through the [`Secrets`] port on each check and parsed once per distinct
//!   content, so a rotated file takes effect at once;
//! - an `https://` URL (or `http://` on a loopback address, for tests), fetched and cached for
//!   [`URL_TTL`], fetched again early (at most once per [`REFETCH_INTERVAL`]) when a token names an
//!   unknown `kid`, which is how key rotation shows up;
//! - when nothing is configured, OpenID discovery: `<issuer>/.well-known/openid-configuration` names
//!   the `jwks_uri`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

pub use domain::jwks::JwksSource;
use domain::jwks::{check_url, discovery_url};
use domain::model::ProjectConfig;
use domain::ports::{SecretError, Secrets};

use crate::error::ApiError;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// How long a JWKS fetched from a URL is used before it is fetched again.
pub const URL_TTL: Duration = Duration::from_secs(5 * 60);
/// The shortest time between two fetches of one URL caused by unknown `kid`s.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Longest wait for a JWKS or discovery document.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a bearer token was refused, or why it could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    MissingBearer,
    #[error("the bearer token is not a well-formed JWT")]
    Malformed,
    #[error("JWT algorithm `{0}` is not accepted; use RS256 or ES256")]
    Algorithm(String),
    #[error("no JWKS key matches the token's key id `{}`", .kid.as_deref().unwrap_or("none"))]
    UnknownKey { kid: Option<String> },
    #[error("the JWT signature is invalid")]
    Signature,
    #[error("the JWT has expired")]
    Expired,
    #[error("the JWT is not valid yet")]
    NotYetValid,
    #[error("the JWT has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("the JWT was issued by `{found}`, expected `{expected}`")]
    Issuer { expected: String, found: String },
    #[error("the JWT audience does not include `{expected}`")]
    Audience { expected: String },
    #[error("the JWT subject is not the one allowed")]
    Subject,
    #[error("JWKS source `{source_name}` is not valid: {message}")]
    Config {
        source_name: String,
        message: String,
    },
    #[error("JWKS from `{source_name}` cannot be loaded: {message}")]
    Jwks {
        source_name: String,
        message: String,
    },
}

impl JwtError {
    /// Whether the same token may be accepted later: the keys could not be loaded, which says
    /// nothing about the token.
    pub fn is_retryable(&self) -> bool {
        matches!(self, JwtError::Jwks { .. })
    }

    /// Whether the problem is the server's configuration rather than the presented token.
    pub fn is_config(&self) -> bool {
        matches!(self, JwtError::Config { .. })
    }
}

/// The source for `issuer`: `explicit` when given, else `jwks.<issuer>` of the project config,
/// else OpenID discovery.
pub fn jwks_for_issuer(
    project: &ProjectConfig,
    issuer: &str,
    explicit: Option<&str>,
) -> Result<JwksSource, JwtError> {
    let text = explicit.or_else(|| {
        project
            .jwks
            .get(issuer)
            .or_else(|| project.jwks.get(issuer.trim_end_matches('/')))
            .map(String::as_str)
    });
    match text {
        Some(text) => JwksSource::parse(text).map_err(|message| JwtError::Config {
            source_name: text.to_owned(),
            message,
        }),
        None => {
            let url = discovery_url(issuer);
            check_url(&url).map_err(|message| JwtError::Config {
                source_name: url,
                message,
            })?;
            Ok(JwksSource::Discovery {
                issuer: issuer.to_owned(),
            })
        }
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Required `sub`, when configured.
    pub subject: Option<&'a str>,
}

/// The token of an `Authorization: Bearer <token>` header (scheme compared case-insensitively).
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether a bearer token has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().take(2).all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The `iss` claim of a token, read without verifying anything: only to pick which configured
/// issuer's keys to verify with.
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// Maps a JWT problem to the HTTP edge: an unloadable JWKS is the server's (503, retry), a bad
/// JWKS configuration is the server's (500), everything else is the token's (401).
impl From<JwtError> for ApiError {
    fn from(error: JwtError) -> ApiError {
        if error.is_retryable() {
            ApiError::Unavailable(Box::new(error))
        } else if error.is_config() {
            ApiError::Internal(Box::new(error))
        } else {
            ApiError::Unauthorized(error.to_string())
        }
    }
}

/// Verifies a bearer JWT and returns its claims.
pub async fn verify(
    secrets: &dyn Secrets,
    source: &JwksSource,
    token: &str,
    expected: &Expected<'_>,
    now: DateTime<Utc>,
) -> Result<Value, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    let algorithm = header.alg;
    let family =
        family_of(algorithm).ok_or_else(|| JwtError::Algorithm(format!("{algorithm:?}")))?;
    let kid = header.kid.as_deref();
    let mut keys = load(secrets, source, false).await?;
    let mut candidates = keys.matching(kid, family, algorithm);
    if candidates.is_empty() && kid.is_some() && source.is_remote() {
        // A key id we have not seen: the issuer may have rotated its keys.
        keys = load(secrets, source, true).await?;
        candidates = keys.matching(kid, family, algorithm);
    }
    if candidates.is_empty() {
        return Err(JwtError::UnknownKey {
            kid: kid.map(str::to_owned),
        });
    }
    let mut validation = Validation::new(algorithm);
    // Times and audience are checked below against the clock port, with precise errors.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let mut claims = None;
    for key in candidates {
        if let Ok(data) = jsonwebtoken::decode::<Value>(token, key, &validation) {
            claims = Some(data.claims);
            break;
        }
    }
    let claims = claims.ok_or(JwtError::Signature)?;
    check_claims(&claims, expected, now)?;
    Ok(claims)
}

/// The claim checks after the signature: issuer, audience, times, subject.
fn check_claims(
    claims: &Value,
    expected: &Expected<'_>,
    now: DateTime<Utc>,
) -> Result<(), JwtError> {
    let issuer = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(JwtError::MissingClaim("iss"))?;
    if issuer.trim_end_matches('/') != expected.issuer.trim_end_matches('/') {
        return Err(JwtError::Issuer {
            expected: expected.issuer.to_owned(),
            found: issuer.to_owned(),
        });
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected.audience)),
        Some(_) => false,
        None => return Err(JwtError::MissingClaim("aud")),
    };
    if !audience_ok {
        return Err(JwtError::Audience {
            expected: expected.audience.to_owned(),
        });
    }
    let leeway = i64::try_from(LEEWAY.as_secs()).unwrap_or(60);
    let now = now.timestamp();
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or(JwtError::MissingClaim("exp"))?;
    if exp + (leeway as f64) <= now as f64 {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_f64)
        && nbf - (leeway as f64) > now as f64
    {
        return Err(JwtError::NotYetValid);
    }
    if let Some(subject) = expected.subject
        && claims.get("sub").and_then(Value::as_str) != Some(subject)
    {
        return Err(JwtError::Subject);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
}

fn family_of(algorithm: Algorithm) -> Option<Family> {
    match algorithm {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        // HMAC would turn a public key into a shared secret; EdDSA keys are not issued by Okta.
        _ => None,
    }
}

struct Key {
    kid: Option<String>,
    family: Family,
    /// The JWK's `alg`, when it names one.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

/// The signature keys of one JWKS document.
struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    fn parse(text: &str) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let family = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Family::Rsa,
                AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                // Symmetric and Ed25519 keys are never used for bearer tokens here.
                _ => continue,
            };
            // A key bound to an algorithm is used with that algorithm only; one bound to an
            // encryption algorithm is not a signature key.
            let algorithm = match jwk.common.key_algorithm {
                None => None,
                Some(a) => match a.to_string().parse::<Algorithm>() {
                    Ok(alg) => Some(alg),
                    Err(_) => continue,
                },
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                family,
                algorithm,
                key,
            });
        }
        Ok(KeySet { keys })
    }

    fn matching(
        &self,
        kid: Option<&str>,
        family: Family,
        algorithm: Algorithm,
    ) -> Vec<&DecodingKey> {
        self.keys
            .iter()
            .filter(|k| k.family == family)
            .filter(|k| k.algorithm.is_none_or(|a| a == algorithm))
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
            .map(|k| &k.key)
            .collect()
    }
}

struct Cached {
    keys: Arc<KeySet>,
    fetched: Instant,
}

/// Parsed key sets: by content hash for secret-held documents, by URL (or discovery URL) for
/// fetched ones. Process-wide, like the HTTP connection pools it sits beside; bounded.
static CACHE: LazyLock<Mutex<HashMap<String, Cached>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const CACHE_ENTRIES: usize = 64;

fn cached(key: &str) -> Option<(Arc<KeySet>, Instant)> {
    let cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    cache.get(key).map(|c| (c.keys.clone(), c.fetched))
}

fn remember(key: String, keys: Arc<KeySet>) {
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= CACHE_ENTRIES && !cache.contains_key(&key) {
        cache.clear();
    }
    cache.insert(
        key,
        Cached {
            keys,
            fetched: Instant::now(),
        },
    );
}

async fn load(
    secrets: &dyn Secrets,
    source: &JwksSource,
    refresh: bool,
) -> Result<Arc<KeySet>, JwtError> {
    let jwks_error = |message: String| JwtError::Jwks {
        source_name: source.name(),
        message,
    };
    match source {
        JwksSource::Secret(reference) => {
            let text = match secrets.resolve(reference).await {
                Ok(v) => v.expose().to_owned(),
                Err(error @ SecretError::Unreadable { .. }) => {
                    return Err(jwks_error(error.to_string()));
                }
                Err(error) => {
                    return Err(JwtError::Config {
                        source_name: reference.to_string(),
                        message: error.to_string(),
                    });
                }
            };
            let key = format!(
                "doc:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
            );
            if let Some((keys, _)) = cached(&key) {
                return Ok(keys);
            }
            let keys = Arc::new(KeySet::parse(&text).map_err(|message| JwtError::Config {
                source_name: reference.to_string(),
                message,
            })?);
            remember(key, keys.clone());
            Ok(keys)
        }
        JwksSource::Url(_) | JwksSource::Discovery { .. } => {
            let key = format!("url:{}", source.name());
            if let Some((keys, fetched)) = cached(&key) {
                let age = fetched.elapsed();
                if age < URL_TTL && (!refresh || age < REFETCH_INTERVAL) {
                    return Ok(keys);
                }
            }
            let url = match source {
                JwksSource::Discovery { issuer } => discover(issuer).await.map_err(jwks_error)?,
                JwksSource::Url(url) => url.clone(),
                JwksSource::Secret(reference) => {
                    return Err(jwks_error(format!("`{reference}` is not a URL")));
                }
            };
            let text = fetch(&url).await.map_err(jwks_error)?;
            let keys = Arc::new(KeySet::parse(&text).map_err(jwks_error)?);
            remember(key, keys.clone());
            Ok(keys)
        }
    }
}

async fn fetch(url: &str) -> Result<String, String> {
    check_url(url)?;
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    response.text().await.map_err(|e| format!("GET {url}: {e}"))
}

async fn discover(issuer: &str) -> Result<String, String> {
    let url = discovery_url(issuer);
    let text = fetch(&url).await?;
    let document: Value =
        serde_json::from_str(&text).map_err(|e| format!("{url} is not JSON: {e}"))?;
    document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{url} names no `jwks_uri`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::model::SecretRef;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default()
    }

    const EXPECTED: Expected<'static> = Expected {
        issuer: "https://example.okta.com",
        audience: "api://idflow",
        subject: Some("0oa1"),
    };

    fn check(claims: Value, expected: Result<(), &str>) {
        let got = check_claims(&claims, &EXPECTED, now()).map_err(|e| e.to_string());
        assert_eq!(
            got.as_ref().map_err(String::as_str),
            expected.as_ref().map_err(|e| *e),
            "claims {claims}"
        );
    }

    #[test]
    fn claims_are_checked_against_issuer_audience_times_and_subject() {
        let t = now().timestamp();
        let ok = json!({"iss": "https://example.okta.com", "aud": "api://idflow", "exp": t + 300, "sub": "0oa1"});
        check(ok.clone(), Ok(()));
        check(
            json!({"iss": "https://example.okta.com/", "aud": ["x", "api://idflow"], "exp": t + 1, "sub": "0oa1"}),
            Ok(()),
        );
        check(
            json!({"iss": "https://evil.example", "aud": "api://idflow", "exp": t + 300, "sub": "0oa1"}),
            Err(
                "the JWT was issued by `https://evil.example`, expected `https://example.okta.com`",
            ),
        );
        check(
            json!({"iss": "https://example.okta.com", "aud": "api://other", "exp": t + 300, "sub": "0oa1"}),
            Err("the JWT audience does not include `api://idflow`"),
        );
        check(
            json!({"iss": "https://example.okta.com", "aud": "api://idflow", "sub": "0oa1"}),
            Err("the JWT has no `exp` claim"),
        );
        check(
            json!({"iss": "https://example.okta.com", "aud": "api://idflow", "exp": t - 61, "sub": "0oa1"}),
            Err("the JWT has expired"),
        );
        // Within the leeway for clock skew.
        check(
            json!({"iss": "https://example.okta.com", "aud": "api://idflow", "exp": t - 30, "sub": "0oa1"}),
            Ok(()),
        );
        check(
            json!({"iss": "https://example.okta.com", "aud": "api://idflow", "exp": t + 300, "nbf": t + 120, "sub": "0oa1"}),
            Err("the JWT is not valid yet"),
        );
        check(
            json!({"iss": "https://example.okta.com", "aud": "api://idflow", "exp": t + 300, "sub": "0oa2"}),
            Err("the JWT subject is not the one allowed"),
        );
    }

    #[test]
    fn sources_are_urls_or_secret_references() {
        assert_eq!(
            JwksSource::parse("file:./jwks.json"),
            Ok(JwksSource::Secret(SecretRef::File("./jwks.json".into())))
        );
        assert_eq!(
            JwksSource::parse("https://example.okta.com/oauth2/v1/keys"),
            Ok(JwksSource::Url(
                "https://example.okta.com/oauth2/v1/keys".into()
            ))
        );
        assert!(JwksSource::parse("http://127.0.0.1:8080/keys").is_ok());
        assert!(JwksSource::parse("http://example.com/keys").is_err());
        assert!(JwksSource::parse("jwks.json").is_err());
        let project = ProjectConfig::default();
        assert_eq!(
            jwks_for_issuer(&project, "https://example.okta.com/oauth2/default", None).ok(),
            Some(JwksSource::Discovery {
                issuer: "https://example.okta.com/oauth2/default".into()
            })
        );
    }

    #[test]
    fn bearer_tokens_and_jwt_shapes() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            "authorization",
            "bearer abc".parse().unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        assert!(looks_like_jwt("eyJh.eyJi.c2ln"));
        assert!(!looks_like_jwt("plain-token"));
        assert!(!looks_like_jwt("a.b"));
    }

    #[test]
    fn symmetric_and_encryption_keys_are_ignored() {
        let keys = KeySet::parse(
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"},{"kty":"EC","crv":"P-256","use":"enc","kid":"e","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(keys.keys.is_empty());
    }
}
