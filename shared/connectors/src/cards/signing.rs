//! `crypto.hmac` and `jwt.sign`: signing with a key a flow passes in (usually `secret('…')`).
//!
//! They reach no service; they are I/O cards so that their key may be a secret (see
//! `domain::cards::crypto`). Errors never quote the key: a key that does not parse is reported by
//! its kind alone, and the engine scrubs the key's text from whatever a card answers anyway.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use domain::cards::fields::{Fields, invalid};
use domain::cards::{CardCall, CardError, CardExecutor};
use domain::ports::Clock;

/// The HMAC of `message` under `key` with the digest `$digest`. HMAC takes keys of any length, so
/// building it cannot fail; the `Err` arm is never taken.
macro_rules! mac {
    ($digest:ty, $key:expr, $message:expr) => {
        match <Hmac<$digest> as Mac>::new_from_slice($key) {
            Ok(mut mac) => {
                mac.update($message);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    };
}

/// Executes `crypto.hmac` and `jwt.sign` (registered for the `crypto` and `jwt` families).
pub struct SigningExecutor {
    clock: Arc<dyn Clock>,
}

impl SigningExecutor {
    /// An executor reading the time of signing (`iat`, `exp`, `nbf`) from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> SigningExecutor {
        SigningExecutor { clock }
    }

    fn hmac(&self, call: &CardCall) -> Result<Value, CardError> {
        let input = Fields::of_call(&call.input)?;
        let key = input.text("key")?;
        let key = match input.optional_text("key_encoding")?.as_deref() {
            None | Some("text") => key.as_bytes().to_vec(),
            Some("hex") => hex::decode(key.trim())
                .map_err(|_| invalid("key", "is not hexadecimal (`key_encoding: hex`)"))?,
            Some("base64") => STANDARD
                .decode(key.trim())
                .map_err(|_| invalid("key", "is not base64 (`key_encoding: base64`)"))?,
            Some(other) => {
                return Err(invalid(
                    "key_encoding",
                    format!("expected `text`, `hex` or `base64`, got `{other}`"),
                ));
            }
        };
        let message = input.text_or_empty("message")?;
        let algorithm = input.optional_text("algorithm")?;
        let mac = match algorithm.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("sha256") => mac!(sha2::Sha256, &key, message.as_bytes()),
            Some("sha384") => mac!(sha2::Sha384, &key, message.as_bytes()),
            Some("sha512") => mac!(sha2::Sha512, &key, message.as_bytes()),
            Some(other) => {
                return Err(invalid(
                    "algorithm",
                    format!("expected `sha256`, `sha384` or `sha512`, got `{other}`"),
                ));
            }
        };
        let text = match input.optional_text("encoding")?.as_deref() {
            None | Some("hex") => hex::encode(mac),
            Some("base64") => STANDARD.encode(mac),
            Some("base64url") => URL_SAFE_NO_PAD.encode(mac),
            Some(other) => {
                return Err(invalid(
                    "encoding",
                    format!("expected `hex`, `base64` or `base64url`, got `{other}`"),
                ));
            }
        };
        Ok(json!(text))
    }

    fn jwt(&self, call: &CardCall) -> Result<Value, CardError> {
        let input = Fields::of_call(&call.input)?;
        let name = input.optional_text("algorithm")?;
        let name = name.as_deref().unwrap_or("RS256");
        let algorithm: Algorithm = name.parse().map_err(|_| {
            invalid(
                "algorithm",
                format!("expected one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, HS256, HS384, HS512; got `{name}`"),
            )
        })?;
        let key = input.text("key")?;
        let key = encoding_key(algorithm, key.as_bytes())?;
        let mut claims: Map<String, Value> = input
            .optional_object("claims")?
            .cloned()
            .unwrap_or_default();
        let now = self.clock.now().timestamp();
        for (field, claim) in [
            ("issuer", "iss"),
            ("subject", "sub"),
            ("audience", "aud"),
            ("jwt_id", "jti"),
        ] {
            if let Some(value) = input.optional_text(field)? {
                claims.insert(claim.to_owned(), json!(value));
            }
        }
        if !input.boolean_or("no_timestamp", false)? {
            claims.insert("iat".to_owned(), json!(now));
        }
        for (field, claim) in [("expires_in", "exp"), ("not_before", "nbf")] {
            if let Some(seconds) = input.optional_integer(field)? {
                let at = now
                    .checked_add(seconds)
                    .ok_or_else(|| invalid(field, "is out of range"))?;
                claims.insert(claim.to_owned(), json!(at));
            }
        }
        let mut header = Header::new(algorithm);
        header.kid = input.optional_text("key_id")?.map(|kid| kid.into_owned());
        let token = jsonwebtoken::encode(&header, &claims, &key).map_err(|error| {
            // The library's message names the failure's kind (it never holds key material).
            invalid("key", format!("cannot sign with this key: {error}"))
        })?;
        Ok(json!(token))
    }
}

/// The key for `algorithm`, read from PEM for the asymmetric ones; the error names what was
/// expected, never the key.
fn encoding_key(algorithm: Algorithm, key: &[u8]) -> Result<EncodingKey, CardError> {
    let expected = |what: &str| invalid("key", format!("is not {what} (for {algorithm:?})"));
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(EncodingKey::from_secret(key)),
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => EncodingKey::from_rsa_pem(&unescape_newlines(key))
            .map_err(|_| expected("an RSA private key in PEM")),
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&unescape_newlines(key))
            .map_err(|_| expected("an EC private key in PEM (PKCS#8)")),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&unescape_newlines(key))
            .map_err(|_| expected("an Ed25519 private key in PEM")),
    }
}

/// A PEM key pasted into an environment variable or JSON often carries `\n` as two characters
/// (Google's service-account files do); PEM needs real line breaks.
fn unescape_newlines(key: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(key)
        .replace("\\n", "\n")
        .into_bytes()
}

#[async_trait]
impl CardExecutor for SigningExecutor {
    async fn execute(&self, call: &CardCall) -> Result<Value, CardError> {
        match call.card.as_str() {
            "crypto.hmac" => self.hmac(call),
            "jwt.sign" => self.jwt(call),
            other => Err(CardError::Failed {
                code: "unknown_card".into(),
                message: format!("the signing executor does not run `{other}`"),
                retryable: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{DateTime, Utc};
    use domain::cards::{CardCall, CardError, CardExecutor};
    use domain::clock::ManualClock;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde_json::{Value, json};

    use super::SigningExecutor;

    const RSA_KEY: &str = include_str!("../../../../okta-sim/tests/fixtures/rsa-test-key.pem");
    const EC_KEY: &str = include_str!("../../../../okta-sim/tests/fixtures/ec-test-key.pem");

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-30T09:00:00Z")
            .expect("a date")
            .with_timezone(&Utc)
    }

    async fn run(card: &str, input: Value) -> Result<Value, CardError> {
        let executor = SigningExecutor::new(Arc::new(ManualClock::new(at())));
        let call = CardCall {
            card: card.into(),
            input,
            timeout: std::time::Duration::from_secs(5),
            run_id: domain::run::RunId::new_at(at()),
            step: "sign".into(),
            attempt: 1,
            project: Arc::default(),
        };
        executor.execute(&call).await
    }

    #[tokio::test]
    async fn hmac_matches_the_rfc_4231_vectors_in_every_encoding() {
        // RFC 4231, test case 2.
        let input = json!({ "key": "Jefe", "message": "what do ya want for nothing?" });
        assert_eq!(
            run("crypto.hmac", input.clone()).await,
            Ok(json!(
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ))
        );
        let mut sha512 = input.clone();
        sha512["algorithm"] = json!("SHA512");
        let mac = run("crypto.hmac", sha512).await.expect("a MAC");
        assert!(
            mac.as_str()
                .is_some_and(|m| m.starts_with("164b7a7bfcf819e2e395fbe73b56e0a387bd6422")),
            "{mac}"
        );
        let mut base64 = input.clone();
        base64["encoding"] = json!("base64");
        assert_eq!(
            run("crypto.hmac", base64).await,
            Ok(json!("W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="))
        );
        // The same key written in hex gives the same MAC.
        let hex_key = json!({ "key": "4a656665", "key_encoding": "hex", "message": "what do ya want for nothing?" });
        assert_eq!(
            run("crypto.hmac", hex_key).await,
            run("crypto.hmac", input).await
        );
    }

    #[tokio::test]
    async fn hmac_refuses_unknown_choices_without_quoting_the_key() {
        let error = run(
            "crypto.hmac",
            json!({ "key": "zz-not-hex-s3cret", "key_encoding": "hex", "message": "m" }),
        )
        .await
        .expect_err("not hex");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert_eq!(
            run(
                "crypto.hmac",
                json!({ "key": "k", "message": "m", "algorithm": "md5" })
            )
            .await
            .map_err(|e| e.to_string()),
            Err("field `algorithm`: expected `sha256`, `sha384` or `sha512`, got `md5`".into())
        );
        assert!(run("crypto.hmac", json!({ "message": "m" })).await.is_err());
    }

    #[tokio::test]
    async fn jwt_sign_with_a_shared_secret_verifies_and_carries_the_claims() {
        let token = run(
            "jwt.sign",
            json!({
                "key": "a-shared-secret-of-some-length",
                "algorithm": "HS256",
                "claims": { "scope": "admin.directory.user" },
                "issuer": "svc@example.iam",
                "audience": "https://oauth2.googleapis.com/token",
                "expires_in": 600,
                "key_id": "k1",
            }),
        )
        .await
        .expect("a token");
        let token = token.as_str().expect("text");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["https://oauth2.googleapis.com/token"]);
        // The token was made at the manual clock's time, long ago for the validator.
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_secret(b"a-shared-secret-of-some-length"),
            &validation,
        )
        .expect("verifies");
        let iat = at().timestamp();
        assert_eq!(
            decoded.claims,
            json!({
                "scope": "admin.directory.user",
                "iss": "svc@example.iam",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": iat,
                "exp": iat + 600,
            })
        );
        assert_eq!(decoded.header.kid.as_deref(), Some("k1"));
    }

    #[tokio::test]
    async fn jwt_sign_reads_pem_keys_with_escaped_line_breaks() {
        for (key, algorithm) in [(RSA_KEY, "RS256"), (EC_KEY, "ES256")] {
            let escaped = key.replace('\n', "\\n");
            let token = run(
                "jwt.sign",
                json!({ "key": escaped, "algorithm": algorithm, "subject": "u1", "no_timestamp": true }),
            )
            .await
            .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
            let header =
                jsonwebtoken::decode_header(token.as_str().expect("text")).expect("header");
            assert_eq!(format!("{:?}", header.alg), algorithm);
        }
    }

    #[tokio::test]
    async fn jwt_sign_refuses_a_key_of_the_wrong_kind_without_quoting_it() {
        let error = run(
            "jwt.sign",
            json!({ "key": "not-a-pem-s3cret-value", "algorithm": "RS256" }),
        )
        .await
        .expect_err("not PEM");
        assert_eq!(
            error.to_string(),
            "field `key`: is not an RSA private key in PEM (for RS256)"
        );
        let error = run("jwt.sign", json!({ "key": RSA_KEY, "algorithm": "none" }))
            .await
            .expect_err("no such algorithm");
        assert!(
            error.to_string().starts_with("field `algorithm`"),
            "{error}"
        );
    }
}
