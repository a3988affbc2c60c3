//! The cryptography of OAuth connections: `private_key_jwt` client assertions (RFC 7523; RS256 or
//! ES256, whichever the PEM key is) and DPoP proofs (RFC 9449; ES256 with a P-256 key generated per
//! connection, so no DPoP key has to be configured or stored).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::OktaError;

/// `client_assertion_type` of `private_key_jwt`.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid; Okta refuses more than an hour.
const ASSERTION_LIFETIME_SECS: i64 = 300;

/// A `private_key_jwt` signing key.
pub(crate) struct AssertionKey {
    alg: Algorithm,
    key: EncodingKey,
}

impl AssertionKey {
    /// Reads a PEM private key: RSA (PKCS#8 or PKCS#1) signs RS256, P-256 (PKCS#8) signs ES256.
    pub(crate) fn from_pem(pem: &str) -> Result<AssertionKey, OktaError> {
        if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
            return Ok(AssertionKey {
                alg: Algorithm::RS256,
                key,
            });
        }
        if let Ok(key) = EncodingKey::from_ec_pem(pem.as_bytes()) {
            return Ok(AssertionKey {
                alg: Algorithm::ES256,
                key,
            });
        }
        Err(OktaError::Key(
            "expected a PEM private key: RSA (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`) or P-256 (`BEGIN PRIVATE KEY`)".into(),
        ))
    }

    /// The signing algorithm the key implies.
    #[cfg(test)]
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// A client assertion for the token endpoint at `token_url`: `iss` = `sub` = the client id,
    /// `aud` = the token URL, five minutes of validity, a fresh `jti` (Okta refuses replays).
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        key_id: Option<&str>,
        token_url: &str,
        now: DateTime<Utc>,
        jti: &str,
    ) -> Result<String, OktaError> {
        let mut header = Header::new(self.alg);
        header.kid = key_id.map(str::to_owned);
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "iat": now.timestamp(),
            "exp": now.timestamp() + ASSERTION_LIFETIME_SECS,
            "jti": jti,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|err| {
            OktaError::Key(format!(
                "cannot sign the client assertion ({err}); EC keys must be P-256 in PKCS#8 form"
            ))
        })
    }
}

/// A DPoP key pair; its public half travels in every proof.
pub(crate) struct DpopKey {
    pair: EcdsaKeyPair,
    jwk: Value,
}

impl DpopKey {
    /// A fresh P-256 key.
    pub(crate) fn generate(rng: &SystemRandom) -> Result<DpopKey, OktaError> {
        let unavailable = |_| OktaError::Key("cannot generate a DPoP key".into());
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
            .map_err(unavailable)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
            .map_err(|_| OktaError::Key("cannot load the generated DPoP key".into()))?;
        // The public key is the uncompressed point 0x04 || x || y.
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            return Err(OktaError::Key("unexpected DPoP public key shape".into()));
        }
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Ok(DpopKey { pair, jwk })
    }

    /// A proof for one request: `htm`, `htu` (the URL without query and fragment), `iat`, a fresh
    /// `jti`, the server's `nonce` when it asked for one, and `ath` (the access token's SHA-256)
    /// on resource requests.
    pub(crate) fn proof(
        &self,
        rng: &SystemRandom,
        method: &str,
        url: &Url,
        now: DateTime<Utc>,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, OktaError> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let mut claims = json!({
            "htm": method,
            "htu": htu.as_str(),
            "iat": now.timestamp(),
            "jti": random_id(rng)?,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(token) = access_token {
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .pair
            .sign(rng, signing_input.as_bytes())
            .map_err(|_| OktaError::Key("cannot sign a DPoP proof".into()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// 128 random bits, base64url: assertion and proof `jti`s.
pub(crate) fn random_id(rng: &SystemRandom) -> Result<String, OktaError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes)
        .map_err(|_| OktaError::Key("the system random source failed".into()))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    }

    #[test]
    fn the_pem_key_decides_the_algorithm() {
        let check = |pem: &str, expected: Option<Algorithm>| {
            assert_eq!(
                AssertionKey::from_pem(pem).ok().map(|key| key.algorithm()),
                expected
            );
        };
        check(
            include_str!("../../../../okta-sim/tests/fixtures/rsa-test-key.pem"),
            Some(Algorithm::RS256),
        );
        check(
            include_str!("../../../../okta-sim/tests/fixtures/ec-test-key.pem"),
            Some(Algorithm::ES256),
        );
        check(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None,
        );
        check("00abc-not-a-key", None);
    }

    #[test]
    fn dpop_proofs_carry_the_request_and_the_token_hash() {
        let rng = SystemRandom::new();
        let key = DpopKey::generate(&rng).expect("key");
        let url = Url::parse("https://o.okta.com/api/v1/users?limit=2#x").expect("url");
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let proof = key
            .proof(&rng, "GET", &url, now, Some("n1"), Some("at"))
            .expect("proof");
        let parts: Vec<&str> = proof.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"].get("d").is_none(), "no private part");
        let claims = decode(parts[1]);
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://o.okta.com/api/v1/users");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["nonce"], "n1");
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(Sha256::digest(b"at")));
        let other = key
            .proof(&rng, "GET", &url, now, None, None)
            .expect("proof");
        assert_ne!(
            decode(other.split('.').nth(1).unwrap_or_default())["jti"],
            claims["jti"]
        );
    }
}
