//! Authentication: SSWS, client assertions at the token endpoint, scopes, the DPoP dance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use okta_sim::{ClientKey, OAuthClient, SimHandle};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Answer, Api, builder, start, t0};

const RSA_CLIENT: &str = "0oarsaclient00000001";
const EC_CLIENT: &str = "0oaecclient000000001";
const DPOP_CLIENT: &str = "0oadpopclient0000001";
const READ_ONLY_CLIENT: &str = "0oareadonly000000001";

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(include_bytes!("../fixtures/rsa-test-key.pem")).expect("rsa test key")
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(include_bytes!("../fixtures/ec-test-key.pem")).expect("ec test key")
}

fn dpop_key() -> EncodingKey {
    EncodingKey::from_ec_pem(include_bytes!("../fixtures/ec-dpop-key.pem")).expect("dpop test key")
}

fn jwk(text: &str) -> Value {
    serde_json::from_str(text).expect("jwk fixture")
}

fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn now() -> i64 {
    t0().timestamp()
}

/// A client assertion for `client_id`, with `change` applied to the claims.
fn assertion(
    sim: &SimHandle,
    client_id: &str,
    alg: Algorithm,
    key: &EncodingKey,
    change: impl FnOnce(&mut Value),
) -> String {
    let mut claims = json!({
        "iss": client_id, "sub": client_id, "aud": sim.token_url(),
        "iat": now(), "exp": now() + 300, "jti": unique("assertion"),
    });
    change(&mut claims);
    jsonwebtoken::encode(&Header::new(alg), &claims, key).expect("sign assertion")
}

/// A DPoP proof signed with the DPoP test key (or `key`/`public` when given).
fn proof(
    method: &str,
    url: &str,
    nonce: Option<&str>,
    token: Option<&str>,
    change: impl FnOnce(&mut Value),
) -> String {
    proof_with(
        method,
        url,
        nonce,
        token,
        &dpop_key(),
        include_str!("../fixtures/ec-dpop-key.pub.jwk.json"),
        change,
    )
}

fn proof_with(
    method: &str,
    url: &str,
    nonce: Option<&str>,
    token: Option<&str>,
    key: &EncodingKey,
    public: &str,
    change: impl FnOnce(&mut Value),
) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(serde_json::from_str(public).expect("jwk"));
    let mut claims = json!({ "htm": method, "htu": url, "iat": now(), "jti": unique("dpop") });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    if let Some(token) = token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
    }
    change(&mut claims);
    jsonwebtoken::encode(&header, &claims, key).expect("sign proof")
}

async fn token_request(sim: &SimHandle, form: &[(&str, &str)], dpop: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().post(sim.token_url()).form(form);
    if let Some(dpop) = dpop {
        request = request.header("DPoP", dpop);
    }
    let response = request.send().await.expect("token endpoint");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

async fn client_credentials(
    sim: &SimHandle,
    assertion: &str,
    scope: &str,
    dpop: Option<&str>,
) -> Answer {
    let form = [
        ("grant_type", "client_credentials"),
        ("scope", scope),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ];
    token_request(sim, &form, dpop).await
}

async fn sim_with_clients() -> (SimHandle, okta_sim::ManualClock) {
    let (builder, clock) = builder();
    let sim = builder
        .seed_users(2)
        .oauth_client(OAuthClient::new(
            RSA_CLIENT,
            ClientKey::Pem(include_str!("../fixtures/rsa-test-key.pub.pem").into()),
        ))
        .oauth_client(OAuthClient::new(
            EC_CLIENT,
            ClientKey::Jwk(jwk(include_str!("../fixtures/ec-test-key.pub.jwk.json"))),
        ))
        .oauth_client(
            OAuthClient::new(
                DPOP_CLIENT,
                ClientKey::Jwk(jwk(include_str!("../fixtures/rsa-test-key.pub.jwk.json"))),
            )
            .require_dpop(true),
        )
        .oauth_client(
            OAuthClient::new(
                READ_ONLY_CLIENT,
                ClientKey::Pem(include_str!("../fixtures/ec-test-key.pub.pem").into()),
            )
            .scopes(["okta.users.read"]),
        )
        .start()
        .await
        .expect("sim");
    (sim, clock)
}

#[tokio::test]
async fn ssws_tokens_are_checked() {
    let (builder, _) = builder();
    let sim = builder
        .api_token("second-token")
        .start()
        .await
        .expect("sim");
    let check = |authorization: Option<&'static str>, expected: u16| {
        let sim = &sim;
        async move {
            let api = match authorization {
                Some(value) => Api::with_authorization(sim, value),
                None => Api::anonymous(sim),
            };
            let answer = api.get("/api/v1/users").await;
            assert_eq!(
                answer.status, expected,
                "{authorization:?}: {}",
                answer.body
            );
            if expected == 401 {
                assert_eq!(answer.error_code(), "E0000011");
                assert_eq!(answer.body["errorSummary"], "Invalid token provided");
            }
        }
    };
    check(None, 401).await;
    check(Some("SSWS wrong"), 401).await;
    check(Some("SSWS"), 401).await;
    check(Some("Bearer not-a-token"), 401).await;
    check(Some("Basic dXNlcjpwYXNz"), 401).await;
    check(Some("SSWS 00sim-default-api-token"), 200).await;
    check(Some("SSWS second-token"), 200).await;
    sim.add_api_token("third-token");
    check(Some("SSWS third-token"), 200).await;
}

#[tokio::test]
async fn client_assertions_are_verified_like_okta() {
    let (sim, _) = sim_with_clients().await;
    let scope = "okta.users.read okta.groups.manage";

    let good = client_credentials(
        &sim,
        &assertion(&sim, RSA_CLIENT, Algorithm::RS256, &rsa_key(), |_| {}),
        scope,
        None,
    )
    .await;
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(good.body["token_type"], "Bearer");
    assert_eq!(good.body["expires_in"], 3600);
    assert_eq!(good.body["scope"], scope);
    assert_eq!(good.header("cache-control"), Some("no-store"));
    let token = good.body["access_token"].as_str().expect("token");
    let api = Api::with_authorization(&sim, &format!("Bearer {token}"));
    assert_eq!(api.get("/api/v1/users").await.status, 200);
    let es = client_credentials(
        &sim,
        &assertion(&sim, EC_CLIENT, Algorithm::ES256, &ec_key(), |_| {}),
        scope,
        None,
    )
    .await;
    assert_eq!(es.status, 200, "ES256 client with a JWK: {}", es.body);

    // (what is wrong, client, alg, key, claim change, expected status, expected error)
    type Change = fn(&mut Value);
    let cases: Vec<(&str, &str, Algorithm, EncodingKey, Change, u16, &str)> = vec![
        (
            "wrong audience",
            RSA_CLIENT,
            Algorithm::RS256,
            rsa_key(),
            |c| c["aud"] = json!("https://example.okta.com/oauth2/v1/token"),
            401,
            "invalid_client",
        ),
        (
            "expired",
            RSA_CLIENT,
            Algorithm::RS256,
            rsa_key(),
            |c| c["exp"] = json!(now() - 1),
            401,
            "invalid_client",
        ),
        (
            "no exp",
            RSA_CLIENT,
            Algorithm::RS256,
            rsa_key(),
            |c| {
                if let Some(m) = c.as_object_mut() {
                    m.remove("exp");
                }
            },
            401,
            "invalid_client",
        ),
        (
            "exp beyond an hour",
            RSA_CLIENT,
            Algorithm::RS256,
            rsa_key(),
            |c| c["exp"] = json!(now() + 7200),
            401,
            "invalid_client",
        ),
        (
            "iss differs from sub",
            RSA_CLIENT,
            Algorithm::RS256,
            rsa_key(),
            |c| c["iss"] = json!(EC_CLIENT),
            401,
            "invalid_client",
        ),
        (
            "no jti",
            RSA_CLIENT,
            Algorithm::RS256,
            rsa_key(),
            |c| {
                if let Some(m) = c.as_object_mut() {
                    m.remove("jti");
                }
            },
            401,
            "invalid_client",
        ),
        (
            "signed by another key",
            RSA_CLIENT,
            Algorithm::ES256,
            ec_key(),
            |_| {},
            401,
            "invalid_client",
        ),
        (
            "unknown client",
            "0oaunknown0000000001",
            Algorithm::RS256,
            rsa_key(),
            |_| {},
            401,
            "invalid_client",
        ),
    ];
    for (what, client, alg, key, change, status, error) in cases {
        let answer = client_credentials(
            &sim,
            &assertion(&sim, client, alg, &key, change),
            scope,
            None,
        )
        .await;
        assert_eq!(
            (answer.status, answer.body["error"].as_str()),
            (status, Some(error)),
            "{what}: {}",
            answer.body
        );
        assert!(answer.body["error_description"].is_string(), "{what}");
    }

    let replayed = assertion(&sim, RSA_CLIENT, Algorithm::RS256, &rsa_key(), |_| {});
    assert_eq!(
        client_credentials(&sim, &replayed, scope, None)
            .await
            .status,
        200
    );
    let again = client_credentials(&sim, &replayed, scope, None).await;
    assert_eq!(
        (again.status, again.body["error"].as_str()),
        (401, Some("invalid_client")),
        "jti replay"
    );

    let no_scope = client_credentials(
        &sim,
        &assertion(&sim, RSA_CLIENT, Algorithm::RS256, &rsa_key(), |_| {}),
        "",
        None,
    )
    .await;
    assert_eq!(
        (no_scope.status, no_scope.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let ungranted = client_credentials(
        &sim,
        &assertion(&sim, READ_ONLY_CLIENT, Algorithm::ES256, &ec_key(), |_| {}),
        "okta.users.manage",
        None,
    )
    .await;
    assert_eq!(
        (ungranted.status, ungranted.body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let wrong_grant = token_request(&sim, &[("grant_type", "password")], None).await;
    assert_eq!(wrong_grant.body["error"], "unsupported_grant_type");
    let no_assertion = token_request(
        &sim,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "okta.users.read"),
        ],
        None,
    )
    .await;
    assert_eq!(
        (no_assertion.status, no_assertion.body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn tokens_carry_scopes_and_expire() {
    let (sim, clock) = sim_with_clients().await;
    let granted = client_credentials(
        &sim,
        &assertion(&sim, READ_ONLY_CLIENT, Algorithm::ES256, &ec_key(), |_| {}),
        "okta.users.read",
        None,
    )
    .await;
    let token = granted.body["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let api = Api::with_authorization(&sim, &format!("Bearer {token}"));
    assert_eq!(api.get("/api/v1/users/user1@example.com").await.status, 200);
    let write = api.post("/api/v1/users", json!({ "profile": {} })).await;
    assert_eq!((write.status, write.error_code()), (403, "E0000006"));
    assert!(
        write
            .header("www-authenticate")
            .is_some_and(|h| h.contains("insufficient_scope"))
    );
    assert_eq!(api.get("/api/v1/logs").await.status, 403);
    assert_eq!(api.get("/api/v1/groups").await.status, 403);

    // The actor of what a service app does is the app.
    let manage = client_credentials(
        &sim,
        &assertion(&sim, RSA_CLIENT, Algorithm::RS256, &rsa_key(), |_| {}),
        "okta.groups.manage",
        None,
    )
    .await;
    let manager = Api::with_authorization(
        &sim,
        &format!(
            "Bearer {}",
            manage.body["access_token"].as_str().expect("token")
        ),
    );
    let group = sim.create_group("Service-made", "");
    let user = sim.user("user1@example.com").expect("user")["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        manager
            .call("PUT", &format!("/api/v1/groups/{group}/users/{user}"), None)
            .await
            .status,
        204
    );
    let event = sim
        .events()
        .into_iter()
        .find(|e| e["eventType"] == "group.user_membership.add")
        .expect("event");
    assert_eq!(event["actor"]["id"], RSA_CLIENT);

    clock.advance(Duration::from_secs(3601));
    assert_eq!(
        api.get("/api/v1/users/user1@example.com").await.status,
        401,
        "expired token"
    );
}

#[tokio::test]
async fn dpop_nonce_dance_and_bound_resource_requests() {
    let (sim, _) = sim_with_clients().await;
    let token_url = sim.token_url();
    let new_assertion = || assertion(&sim, DPOP_CLIENT, Algorithm::RS256, &rsa_key(), |_| {});

    let no_proof = client_credentials(&sim, &new_assertion(), "okta.users.read", None).await;
    assert_eq!(
        (no_proof.status, no_proof.body["error"].as_str()),
        (400, Some("invalid_dpop_proof"))
    );

    let without_nonce = client_credentials(
        &sim,
        &new_assertion(),
        "okta.users.read",
        Some(&proof("POST", &token_url, None, None, |_| {})),
    )
    .await;
    assert_eq!(
        (without_nonce.status, without_nonce.body["error"].as_str()),
        (400, Some("use_dpop_nonce"))
    );
    let nonce = without_nonce
        .header("dpop-nonce")
        .expect("DPoP-Nonce header")
        .to_string();
    assert_eq!(nonce, sim.dpop_nonce());

    let wrong_nonce = client_credentials(
        &sim,
        &new_assertion(),
        "okta.users.read",
        Some(&proof("POST", &token_url, Some("stale"), None, |_| {})),
    )
    .await;
    assert_eq!(wrong_nonce.body["error"], "use_dpop_nonce");
    let wrong_htu = client_credentials(
        &sim,
        &new_assertion(),
        "okta.users.read",
        Some(&proof(
            "POST",
            "https://elsewhere/token",
            Some(&nonce),
            None,
            |_| {},
        )),
    )
    .await;
    assert_eq!(wrong_htu.body["error"], "invalid_dpop_proof");

    let granted = client_credentials(
        &sim,
        &new_assertion(),
        "okta.users.read",
        Some(&proof("POST", &token_url, Some(&nonce), None, |_| {})),
    )
    .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    assert_eq!(granted.body["token_type"], "DPoP");
    let token = granted.body["access_token"]
        .as_str()
        .expect("token")
        .to_string();

    let url = format!("{}/api/v1/users", sim.base_url());
    let call = |authorization: String, dpop: Option<String>| {
        let url = url.clone();
        async move {
            let mut request = reqwest::Client::new()
                .get(format!("{url}?limit=1"))
                .header("authorization", authorization);
            if let Some(dpop) = dpop {
                request = request.header("DPoP", dpop);
            }
            let response = request.send().await.expect("resource");
            (
                response.status().as_u16(),
                response
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            )
        }
    };
    let good = proof("GET", &url, None, Some(&token), |_| {});
    assert_eq!(
        call(format!("DPoP {token}"), Some(good.clone())).await.0,
        200
    );
    let (status, challenge) = call(format!("DPoP {token}"), Some(good)).await;
    assert_eq!(status, 401, "a proof cannot be replayed");
    assert!(challenge.is_some_and(|c| c.contains("invalid_dpop_proof")));

    // (what is wrong, proof) → 401
    let wrong = [
        ("no proof", None),
        ("no ath", Some(proof("GET", &url, None, None, |_| {}))),
        (
            "wrong ath",
            Some(proof("GET", &url, None, Some("another token"), |_| {})),
        ),
        (
            "wrong method",
            Some(proof("POST", &url, None, Some(&token), |_| {})),
        ),
        (
            "wrong url",
            Some(proof(
                "GET",
                &format!("{url}/other"),
                None,
                Some(&token),
                |_| {},
            )),
        ),
        (
            "stale iat",
            Some(proof("GET", &url, None, Some(&token), |c| {
                c["iat"] = json!(now() - 3600)
            })),
        ),
        (
            "another key",
            Some(proof_with(
                "GET",
                &url,
                None,
                Some(&token),
                &ec_key(),
                include_str!("../fixtures/ec-test-key.pub.jwk.json"),
                |_| {},
            )),
        ),
    ];
    for (what, dpop) in wrong {
        assert_eq!(call(format!("DPoP {token}"), dpop).await.0, 401, "{what}");
    }
    let good = proof("GET", &url, None, Some(&token), |_| {});
    assert_eq!(
        call(format!("Bearer {token}"), Some(good)).await.0,
        401,
        "a DPoP-bound token is not a bearer token"
    );

    // After a rotation the previous nonce is still accepted.
    let rotated = sim.rotate_dpop_nonce();
    assert_ne!(rotated, nonce);
    let still = client_credentials(
        &sim,
        &new_assertion(),
        "okta.users.read",
        Some(&proof("POST", &token_url, Some(&nonce), None, |_| {})),
    )
    .await;
    assert_eq!(still.status, 200);
    let dpop_journal = sim
        .journal()
        .into_iter()
        .filter(|e| e.path == "/api/v1/users" && e.header("dpop").is_some())
        .count();
    assert!(dpop_journal >= 2, "the journal keeps DPoP headers");
}

#[tokio::test]
async fn sample_start_helper_works_without_clients() {
    let (sim, _) = start(0).await;
    let answer = client_credentials(&sim, "not.a.jwt", "okta.users.read", None).await;
    assert_eq!(answer.body["error"], "invalid_client");
}
