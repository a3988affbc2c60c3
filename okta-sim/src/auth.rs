//! Authentication: SSWS API tokens, the OAuth 2.0 token endpoint (client credentials with a
//! `private_key_jwt` client assertion), DPoP-bound access tokens (RFC 9449), and scopes.
//!
//! The simulator checks what Okta checks and answers what Okta answers, so a client that works
//! here handles the real dance: `invalid_dpop_proof` when the proof is missing, `use_dpop_nonce`
//! with a `DPoP-Nonce` header until the proof carries the nonce, `ath` on resource requests.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, OAuthError, SimError};
use crate::ids::IdGen;
use crate::limits::Family;
use crate::state::Principal;

/// The SSWS token every simulator accepts unless told otherwise.
pub const DEFAULT_API_TOKEN: &str = "00sim-default-api-token";

/// `client_assertion_type` for `private_key_jwt` (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Every scope the simulator knows; a client configured with no scopes may ask for any of them.
pub const KNOWN_SCOPES: [&str; 11] = [
    "okta.users.read",
    "okta.users.manage",
    "okta.groups.read",
    "okta.groups.manage",
    "okta.apps.read",
    "okta.apps.manage",
    "okta.logs.read",
    "okta.governance.accessRequests.read",
    "okta.governance.accessRequests.manage",
    "okta.accessRequests.request.read",
    "okta.accessRequests.request.manage",
];

/// A client's public key, as configured in Okta (the JWKS of the service app).
#[derive(Debug, Clone)]
pub enum ClientKey {
    /// A public JWK (`{"kty": "RSA", "n", "e"}` or `{"kty": "EC", "crv": "P-256", "x", "y"}`).
    Jwk(Value),
    /// A PEM public key (SPKI `BEGIN PUBLIC KEY`, or PKCS#1 `BEGIN RSA PUBLIC KEY`).
    Pem(String),
}

/// An OAuth 2.0 service app that may call the token endpoint with a client assertion.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// The app's client id (`0oa…`); also the assertion's `iss` and `sub`.
    pub client_id: String,
    /// The public key the assertion must be signed with.
    pub key: ClientKey,
    /// Scopes the app was granted; empty means every scope in [`KNOWN_SCOPES`].
    pub scopes: Vec<String>,
    /// Whether the app requires DPoP-bound tokens.
    pub require_dpop: bool,
    /// Access token lifetime (`expires_in`).
    pub token_lifetime: Duration,
}

impl OAuthClient {
    /// A client with all scopes, no DPoP, one-hour tokens.
    pub fn new(client_id: impl Into<String>, key: ClientKey) -> Self {
        Self {
            client_id: client_id.into(),
            key,
            scopes: Vec::new(),
            require_dpop: false,
            token_lifetime: Duration::from_secs(3600),
        }
    }

    /// Requires DPoP proofs at the token endpoint and DPoP-bound tokens at resources.
    pub fn require_dpop(mut self, required: bool) -> Self {
        self.require_dpop = required;
        self
    }

    /// Limits the scopes the client may be granted.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

struct ClientState {
    keys: Vec<(Algorithm, DecodingKey)>,
    scopes: Vec<String>,
    require_dpop: bool,
    token_lifetime: Duration,
}

/// An issued access token.
#[derive(Debug, Clone)]
struct TokenRec {
    client_id: String,
    scopes: Vec<String>,
    expires: DateTime<Utc>,
    /// JWK thumbprint of the DPoP key the token is bound to.
    jkt: Option<String>,
}

/// Credentials, issued tokens and replay caches.
pub(crate) struct AuthState {
    pub(crate) api_tokens: HashSet<String>,
    clients: HashMap<String, ClientState>,
    tokens: HashMap<String, TokenRec>,
    assertion_jtis: HashSet<String>,
    dpop_jtis: HashSet<String>,
    pub(crate) nonce: String,
    previous_nonce: Option<String>,
}

impl AuthState {
    pub(crate) fn new(ids: &mut IdGen) -> Self {
        Self {
            api_tokens: HashSet::new(),
            clients: HashMap::new(),
            tokens: HashMap::new(),
            assertion_jtis: HashSet::new(),
            dpop_jtis: HashSet::new(),
            nonce: ids.token(32),
            previous_nonce: None,
        }
    }

    pub(crate) fn register(&mut self, client: OAuthClient) -> Result<(), SimError> {
        let invalid = |source| SimError::InvalidClientKey {
            client_id: client.client_id.clone(),
            source,
        };
        let keys = match &client.key {
            ClientKey::Jwk(jwk) => {
                let (alg, key) = key_from_jwk(jwk).map_err(invalid)?;
                vec![(alg, key)]
            }
            ClientKey::Pem(pem) => match DecodingKey::from_rsa_pem(pem.as_bytes()) {
                Ok(key) => vec![(Algorithm::RS256, key)],
                Err(_) => vec![(
                    Algorithm::ES256,
                    DecodingKey::from_ec_pem(pem.as_bytes()).map_err(invalid)?,
                )],
            },
        };
        self.clients.insert(
            client.client_id.clone(),
            ClientState {
                keys,
                scopes: client.scopes,
                require_dpop: client.require_dpop,
                token_lifetime: client.token_lifetime,
            },
        );
        Ok(())
    }

    /// Starts a new nonce; the previous one stays valid so in-flight clients are not failed.
    pub(crate) fn rotate_nonce(&mut self, ids: &mut IdGen) -> String {
        let next = ids.token(32);
        self.previous_nonce = Some(std::mem::replace(&mut self.nonce, next.clone()));
        next
    }

    fn nonce_ok(&self, nonce: Option<&str>) -> bool {
        nonce.is_some_and(|n| n == self.nonce || self.previous_nonce.as_deref() == Some(n))
    }
}

fn key_from_jwk(jwk: &Value) -> Result<(Algorithm, DecodingKey), jsonwebtoken::errors::Error> {
    let alg = match jwk.get("kty").and_then(Value::as_str) {
        Some("EC") => Algorithm::ES256,
        _ => Algorithm::RS256,
    };
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).map_err(|e| {
        jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::Json(
            std::sync::Arc::new(e),
        ))
    })?;
    Ok((alg, DecodingKey::from_jwk(&parsed)?))
}

/// The JOSE header and claims of a compact JWS, without checking the signature.
fn peek(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    let claims = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
    parts.next()?;
    Some((
        serde_json::from_slice(&header).ok()?,
        serde_json::from_slice(&claims).ok()?,
    ))
}

fn lenient_validation(alg: Algorithm) -> Validation {
    // Expiry, audience and issuer are checked by hand against the simulator's clock and URLs.
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation
}

/// RFC 7638 JWK thumbprint (base64url SHA-256 of the canonical required members), the `jkt` a
/// DPoP-bound token is bound to.
pub fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let text = |k: &str| jwk.get(k).and_then(Value::as_str);
    let canonical = match text("kty")? {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            text("crv")?,
            text("x")?,
            text("y")?
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            text("e")?,
            text("n")?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// A verified DPoP proof.
struct DpopProof {
    jkt: String,
    nonce: Option<String>,
}

/// Checks a DPoP proof JWT: header (`typ`, `alg`, public `jwk`), signature, `htm`, `htu`, `iat`
/// freshness, `jti` replay and, for resource requests, `ath`.
fn verify_dpop(
    proof: &str,
    method: &str,
    htu: &str,
    now: DateTime<Utc>,
    access_token: Option<&str>,
    seen: &mut HashSet<String>,
) -> Result<DpopProof, String> {
    let (header, _) = peek(proof).ok_or("DPoP proof is not a JWT")?;
    if !header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err("DPoP proof header 'typ' must be 'dpop+jwt'".into());
    }
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        other => {
            return Err(format!(
                "DPoP proof 'alg' {other:?} is not supported (RS256, ES256)"
            ));
        }
    };
    let jwk = header.get("jwk").ok_or("DPoP proof header has no 'jwk'")?;
    if jwk.get("d").is_some() {
        return Err("DPoP proof 'jwk' must not contain a private key".into());
    }
    let (_, key) = key_from_jwk(jwk).map_err(|e| format!("DPoP proof 'jwk' is invalid: {e}"))?;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &lenient_validation(alg))
        .map_err(|e| format!("DPoP proof signature is invalid: {e}"))?
        .claims;
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    if text("htm") != Some(method) {
        return Err(format!("DPoP proof 'htm' must be {method}"));
    }
    let claimed_htu = text("htu").unwrap_or_default();
    let claimed_htu = claimed_htu.split(['?', '#']).next().unwrap_or_default();
    if claimed_htu != htu {
        return Err(format!("DPoP proof 'htu' must be {htu}"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("DPoP proof has no 'iat'")?;
    let age = now.timestamp() - iat;
    if !(-60..=300).contains(&age) {
        return Err("DPoP proof 'iat' is too old or in the future".into());
    }
    let jti = text("jti").ok_or("DPoP proof has no 'jti'")?.to_string();
    if let Some(token) = access_token {
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if text("ath") != Some(expected.as_str()) {
            return Err("DPoP proof 'ath' does not match the access token".into());
        }
    }
    let jkt = jwk_thumbprint(jwk).ok_or("DPoP proof 'jwk' has no thumbprint")?;
    let nonce = text("nonce").map(str::to_string);
    if !seen.insert(jti) {
        return Err("DPoP proof 'jti' was already used".into());
    }
    Ok(DpopProof { jkt, nonce })
}

/// A parsed `POST /oauth2/v1/token` form.
pub(crate) struct TokenRequest<'a> {
    pub(crate) form: &'a HashMap<String, String>,
    pub(crate) dpop: Option<&'a str>,
    pub(crate) token_url: &'a str,
    pub(crate) now: DateTime<Utc>,
}

/// The token endpoint: verifies the client assertion and DPoP proof, issues an opaque token.
pub(crate) fn issue_token(
    auth: &mut AuthState,
    ids: &mut IdGen,
    request: TokenRequest<'_>,
) -> Result<Value, OAuthError> {
    let form = request.form;
    let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!(
                    "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials]. Got {other}."
                ),
            ));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "The 'grant_type' parameter is required.",
            ));
        }
    }
    if field("client_assertion_type") != Some(JWT_BEARER) {
        return Err(OAuthError::invalid_client(
            "The 'client_assertion_type' must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
        ));
    }
    let assertion = field("client_assertion").ok_or_else(|| {
        OAuthError::invalid_client("The 'client_assertion' parameter is required.")
    })?;
    let (header, unverified) = peek(assertion)
        .ok_or_else(|| OAuthError::invalid_client("The client_assertion is not a valid JWT."))?;
    let client_id = field("client_id")
        .map(str::to_string)
        .or_else(|| {
            unverified
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or_else(|| OAuthError::invalid_client("The client_assertion has no 'sub' claim."))?;
    let client = auth.clients.get(&client_id).ok_or_else(|| {
        OAuthError::invalid_client(format!("The client_id {client_id} is not registered."))
    })?;
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        other => {
            return Err(OAuthError::invalid_client(format!(
                "The client_assertion 'alg' {other:?} is not supported (RS256, ES256)."
            )));
        }
    };
    let key = client
        .keys
        .iter()
        .find(|(key_alg, _)| *key_alg == alg)
        .map(|(_, key)| key)
        .ok_or_else(|| {
            OAuthError::invalid_client(
                "The client_assertion 'alg' does not match the client's key.",
            )
        })?;
    let claims = jsonwebtoken::decode::<Value>(assertion, key, &lenient_validation(alg))
        .map_err(|_| OAuthError::invalid_client("The client_assertion signature is invalid."))?
        .claims;
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    if text("iss") != Some(client_id.as_str()) || text("sub") != Some(client_id.as_str()) {
        return Err(OAuthError::invalid_client(
            "The client_assertion 'iss' and 'sub' must both be the client_id.",
        ));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == request.token_url,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(request.token_url)),
        _ => false,
    };
    if !audience_ok {
        return Err(OAuthError::invalid_client(format!(
            "The client_assertion 'aud' must be {}.",
            request.token_url
        )));
    }
    let now = request.now.timestamp();
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| OAuthError::invalid_client("The client_assertion has no 'exp' claim."))?;
    if exp <= now {
        return Err(OAuthError::invalid_client(
            "The client_assertion token is expired.",
        ));
    }
    if exp > now + 3600 {
        return Err(OAuthError::invalid_client(
            "The client_assertion 'exp' is more than one hour in the future.",
        ));
    }
    let jti = text("jti")
        .ok_or_else(|| OAuthError::invalid_client("The client_assertion has no 'jti' claim."))?
        .to_string();
    if auth.assertion_jtis.contains(&jti) {
        return Err(OAuthError::invalid_client(
            "The client_assertion token has already been used ('jti' replay).",
        ));
    }

    let requested: Vec<String> = field("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if requested.is_empty() {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        ));
    }
    let granted = |scope: &str| {
        if client.scopes.is_empty() {
            KNOWN_SCOPES.contains(&scope)
        } else {
            client.scopes.iter().any(|s| s == scope)
        }
    };
    if let Some(bad) = requested.iter().find(|s| !granted(s)) {
        return Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            format!(
                "One or more scopes are not configured for the authorization server resource: {bad}."
            ),
        ));
    }

    let (require_dpop, lifetime) = (client.require_dpop, client.token_lifetime);
    let jkt = if require_dpop {
        let proof = request.dpop.ok_or_else(|| {
            OAuthError::invalid_dpop_proof("The DPoP proof JWT header is missing.")
        })?;
        let proof = verify_dpop(
            proof,
            "POST",
            request.token_url,
            request.now,
            None,
            &mut auth.dpop_jtis,
        )
        .map_err(OAuthError::invalid_dpop_proof)?;
        if !auth.nonce_ok(proof.nonce.as_deref()) {
            let mut error = OAuthError::new(
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof.",
            );
            error.dpop_nonce = Some(auth.nonce.clone());
            return Err(error);
        }
        Some(proof.jkt)
    } else {
        None
    };
    // The assertion is spent only once everything else passed, so a client retrying after
    // `use_dpop_nonce` may not reuse it, but one refused for a bad scope may.
    auth.assertion_jtis.insert(jti);
    let access_token = format!("simat.{}", ids.token(40));
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    let lifetime_secs = lifetime.as_secs();
    auth.tokens.insert(
        access_token.clone(),
        TokenRec {
            client_id,
            scopes: requested.clone(),
            expires: request.now + chrono::Duration::seconds(lifetime_secs as i64),
            jkt,
        },
    );
    Ok(serde_json::json!({
        "token_type": token_type,
        "expires_in": lifetime_secs,
        "access_token": access_token,
        "scope": requested.join(" "),
    }))
}

/// A resource request's credentials.
pub(crate) struct ResourceRequest<'a> {
    pub(crate) authorization: Option<&'a str>,
    pub(crate) dpop: Option<&'a str>,
    pub(crate) method: &'a str,
    pub(crate) url_without_query: &'a str,
    pub(crate) path: &'a str,
    pub(crate) now: DateTime<Utc>,
}

fn dpop_error(description: String) -> ApiError {
    ApiError::invalid_token().with_header(
        axum::http::header::WWW_AUTHENTICATE,
        format!(r#"DPoP algs="RS256 ES256", error="invalid_dpop_proof", error_description="{description}""#),
    )
}

/// The scope a request needs: read scopes for GET, manage scopes otherwise.
pub(crate) fn required_scope(family: Family, path: &str, method: &str) -> Option<&'static str> {
    let read = method == "GET" || method == "HEAD";
    let pick = |r: &'static str, m: &'static str| Some(if read { r } else { m });
    match family {
        Family::Users => pick("okta.users.read", "okta.users.manage"),
        Family::Groups => pick("okta.groups.read", "okta.groups.manage"),
        Family::Apps => pick("okta.apps.read", "okta.apps.manage"),
        Family::Logs => Some("okta.logs.read"),
        Family::Governance if path.starts_with("/governance/api/v2/") => pick(
            "okta.accessRequests.request.read",
            "okta.accessRequests.request.manage",
        ),
        Family::Governance => pick(
            "okta.governance.accessRequests.read",
            "okta.governance.accessRequests.manage",
        ),
        Family::Token | Family::Other => None,
    }
}

/// Authenticates a resource request and checks its scope.
pub(crate) fn authenticate(
    auth: &mut AuthState,
    request: ResourceRequest<'_>,
) -> Result<Principal, ApiError> {
    let header = request.authorization.ok_or_else(ApiError::invalid_token)?;
    let (scheme, credential) = header.split_once(' ').ok_or_else(ApiError::invalid_token)?;
    let credential = credential.trim();
    let token = match scheme.to_ascii_lowercase().as_str() {
        "ssws" => {
            return if auth.api_tokens.contains(credential) {
                Ok(Principal::ApiToken)
            } else {
                Err(ApiError::invalid_token())
            };
        }
        "bearer" | "dpop" => auth
            .tokens
            .get(credential)
            .cloned()
            .ok_or_else(ApiError::invalid_token)?,
        _ => return Err(ApiError::invalid_token()),
    };
    if token.expires <= request.now {
        return Err(ApiError::invalid_token());
    }
    match (&token.jkt, scheme.eq_ignore_ascii_case("dpop")) {
        (Some(jkt), true) => {
            let proof = request
                .dpop
                .ok_or_else(|| dpop_error("The DPoP proof JWT header is missing.".into()))?;
            let proof = verify_dpop(
                proof,
                request.method,
                request.url_without_query,
                request.now,
                Some(credential),
                &mut auth.dpop_jtis,
            )
            .map_err(dpop_error)?;
            if &proof.jkt != jkt {
                return Err(dpop_error(
                    "The DPoP proof key does not match the access token's key.".into(),
                ));
            }
        }
        (Some(_), false) => {
            return Err(dpop_error(
                "A DPoP-bound access token must be sent with the DPoP scheme.".into(),
            ));
        }
        (None, true) => return Err(ApiError::invalid_token()),
        (None, false) => {}
    }
    let family = Family::of_path(request.path);
    if let Some(needed) = required_scope(family, request.path, request.method) {
        // A manage scope implies its read scope.
        let manage = needed.replace(".read", ".manage");
        if !token.scopes.iter().any(|s| s == needed || *s == manage) {
            return Err(ApiError::forbidden().with_header(
                axum::http::header::WWW_AUTHENTICATE,
                format!(r#"Bearer authorization_uri="", realm="IdP", scope="{needed}", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="{}""#, request.path),
            ));
        }
    }
    Ok(Principal::Client(token.client_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        // The RSA key from RFC 7638 §3.1 and its published thumbprint.
        let jwk = json!({
            "kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn scopes_follow_family_and_method() {
        let check = |path: &str, method: &str, expected: Option<&str>| {
            assert_eq!(
                required_scope(Family::of_path(path), path, method),
                expected,
                "{method} {path}"
            );
        };
        check("/api/v1/users/00u1", "GET", Some("okta.users.read"));
        check(
            "/api/v1/users/00u1/lifecycle/suspend",
            "POST",
            Some("okta.users.manage"),
        );
        check(
            "/api/v1/groups/00g1/users/00u1",
            "PUT",
            Some("okta.groups.manage"),
        );
        check("/api/v1/logs", "GET", Some("okta.logs.read"));
        check(
            "/governance/api/v1/requests/abc/messages",
            "POST",
            Some("okta.governance.accessRequests.manage"),
        );
        check(
            "/governance/api/v2/requests",
            "GET",
            Some("okta.accessRequests.request.read"),
        );
        check("/oauth2/v1/token", "POST", None);
    }
}
