//! The DPoP Layer end to end (in process, through the real axum router):
//! every check of RFC 9449 §4.3 and of the access token, each proven to
//! reject with its exact status, error code and check.

use base64::Engine as _;
use senderbound::proof::ProofRules;
use senderbound::tokens::{TokenPolicy, TypPolicy};
use senderbound::{Error, Origin};
use senderbound_client::DpopKey;
use senderbound_core::Algorithm;
use senderbound_suite::TestIssuer;
use senderbound_suite::harness::{AUDIENCE, HOST, Harness, ISSUER, Reply};
use serde_json::{Value, json};

const PATH: &str = "/api/read";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The header and claims of a valid proof for `GET PATH` with `token`.
fn proof_parts(h: &Harness, token: &str) -> (Value, Value) {
    let builder = h
        .client
        .proof("GET", &format!("https://{HOST}{PATH}"))
        .unwrap()
        .access_token(token)
        .issued_at(h.now());
    (builder.header(), builder.claims())
}

/// Sets `key` to `value`, or removes it when `value` is null.
fn set_or_remove(object: &mut Value, key: &str, value: Value) {
    match object.as_object_mut() {
        Some(map) if value.is_null() => {
            map.remove(key);
        }
        Some(map) => {
            map.insert(key.to_owned(), value);
        }
        None => panic!("not a JSON object"),
    }
}

async fn send_proof(h: &Harness, token: &str, proof: &str) -> Reply {
    h.send("GET", PATH, Some(&format!("DPoP {token}")), Some(proof))
        .await
}

async fn send_signed(h: &Harness, token: &str, header: &Value, claims: &Value) -> Reply {
    send_proof(h, token, &h.client.sign_compact(header, claims)).await
}

// ---------------------------------------------------------------- accepted

#[tokio::test]
async fn valid_request_reaches_the_handler_with_the_sender() {
    let h = Harness::new();
    let token = h.token();
    let r = h.get_with(PATH, &token).await;
    assert_eq!(r.status, 200, "{r:?}");
    let sender = r.json();
    assert_eq!(sender["binding"], "dpop");
    assert_eq!(sender["jkt"], h.client.jkt());
    assert_eq!(sender["iss"], ISSUER);
    assert_eq!(sender["sub"], "user-42");
    assert_eq!(sender["client_id"], "test-client");
    assert_eq!(sender["aud"], json!([AUDIENCE]));
    assert_eq!(sender["scopes"], json!(["read"]));
    // Nothing secret in the Sender.
    assert!(!r.body.contains(&token));
}

#[tokio::test]
async fn extra_unknown_claims_are_accepted() {
    let h = Harness::new();
    let mut claims = h.claims();
    claims["x-tenant"] = json!({"nested": [1, 2, 3]});
    let token = h.issuer.sign(&claims);
    let (mut header, mut proof_claims) = proof_parts(&h, &token);
    proof_claims["x-request"] = json!("anything");
    header["kid"] = json!("ignored");
    let r = send_signed(&h, &token, &header, &proof_claims).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn dpop_scheme_name_is_case_insensitive() {
    let h = Harness::new();
    let token = h.token();
    for scheme in ["dpop", "DPOP", "DpOp"] {
        let proof = h.proof("GET", PATH, &token);
        let r = h
            .send(
                "GET",
                PATH,
                Some(&format!("{scheme} {token}")),
                Some(&proof),
            )
            .await;
        assert_eq!(r.status, 200, "{scheme}: {r:?}");
    }
}

// ------------------------------------------------------------ no credentials

#[tokio::test]
async fn no_credentials_gets_a_challenge_without_error_code() {
    let h = Harness::new();
    let r = h.send("GET", PATH, None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.challenges.len(), 1);
    assert!(r.challenges[0].starts_with("DPoP "), "{r:?}");
    assert_eq!(r.error(), None);
    assert_eq!(
        r.param("algs").as_deref(),
        Some("ES256 ES384 ES512 EdDSA Ed25519 RS256 RS384 RS512 PS256 PS384 PS512")
    );
    assert!(r.body.is_empty());
}

#[tokio::test]
async fn both_challenges_when_bearer_is_accepted_too() {
    let h = Harness::with(|b| b.allow_bearer());
    let r = h.send("GET", PATH, None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.challenges.len(), 2, "{r:?}");
    assert!(r.challenges[0].starts_with("DPoP algs="));
    assert_eq!(r.challenges[1], "Bearer");
    assert_eq!(r.error(), None);
}

#[tokio::test]
async fn other_authorization_scheme_is_treated_as_no_credentials() {
    let h = Harness::new();
    let r = h.send("GET", PATH, Some("Basic dXNlcjpwYXNz"), None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error(), None);
    assert!(r.challenges[0].starts_with("DPoP "));
}

// --------------------------------------------------------- malformed request

/// RFC 9449 §4.3's first check is "one DPoP header": two fail it, so the
/// proof is invalid (401 invalid_dpop_proof on the DPoP challenge, §7.1),
/// whichever of the two would verify.
#[tokio::test]
async fn two_dpop_headers_are_an_invalid_proof() {
    let h = Harness::new();
    let token = h.token();
    let auth = format!("DPoP {token}");
    let (p1, p2) = (h.proof("GET", PATH, &token), h.proof("GET", PATH, &token));
    let headers = [
        ("host", HOST),
        ("authorization", &auth),
        ("dpop", &p1),
        ("dpop", &p2),
    ];
    let r = h.send_headers("GET", PATH, &headers).await;
    r.assert_refused(401, "invalid_dpop_proof", Error::MultipleDpopHeaders);
    assert!(r.challenges[0].starts_with("DPoP "), "{r:?}");
    // One good proof and one junk value, in either order.
    for (first, second) in [(p1.as_str(), "junk"), ("junk", p2.as_str())] {
        let headers = [
            ("host", HOST),
            ("authorization", &auth),
            ("dpop", first),
            ("dpop", second),
        ];
        h.send_headers("GET", PATH, &headers).await.assert_refused(
            401,
            "invalid_dpop_proof",
            Error::MultipleDpopHeaders,
        );
    }
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let h = Harness::new();
    let token = h.token();
    let auth = format!("DPoP {token}");
    let proof = h.proof("GET", PATH, &token);
    let headers = [
        ("host", HOST),
        ("authorization", &auth),
        ("authorization", &auth),
        ("dpop", &proof),
    ];
    h.send_headers("GET", PATH, &headers).await.assert_refused(
        400,
        "invalid_request",
        Error::MultipleAuthorizationHeaders,
    );
}

#[tokio::test]
async fn token_in_query_is_invalid_request() {
    let h = Harness::new();
    let token = h.token();
    let path = format!("{PATH}?access_token={token}");
    let proof = h.proof("GET", PATH, &token);
    h.send("GET", &path, Some(&format!("DPoP {token}")), Some(&proof))
        .await
        .assert_refused(400, "invalid_request", Error::TokenInQuery);
}

#[tokio::test]
async fn malformed_authorization_is_invalid_request() {
    let h = Harness::new();
    for value in ["DPoP", "DPoP a b", "DPoP {json}"] {
        h.send("GET", PATH, Some(value), None).await.assert_refused(
            400,
            "invalid_request",
            Error::MalformedAuthorization,
        );
    }
}

#[tokio::test]
/// A proof without an access token authenticates nothing: the request has
/// no credentials, so 401 with the bare challenge (RFC 6750 §3.1, RFC 9449
/// §7.1), as with no headers at all.
async fn proof_without_authorization_is_a_request_without_credentials() {
    let h = Harness::new();
    let proof = h.proof("GET", PATH, "whatever");
    let r = h.send("GET", PATH, None, Some(&proof)).await;
    assert_eq!((r.status, r.error()), (401, None), "{r:?}");
    assert!(r.challenges[0].starts_with("DPoP algs="), "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
}

// ------------------------------------------------------------- proof: shape

#[tokio::test]
async fn dpop_scheme_without_proof_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    h.send("GET", PATH, Some(&format!("DPoP {token}")), None)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofMissing);
}

#[tokio::test]
async fn proof_that_is_not_one_jws_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let good = h.proof("GET", PATH, &token);
    for bad in [
        "not-a-jws".to_owned(),
        "a.b".to_owned(),
        format!("{good}.{good}"),
        format!("{good}, {good}"),
        good.replacen('.', "..", 1),
        format!("{}=", good),
    ] {
        send_proof(&h, &token, &bad).await.assert_refused(
            401,
            "invalid_dpop_proof",
            Error::ProofMalformed,
        );
    }
}

#[tokio::test]
async fn oversized_proof_is_rejected_before_parsing() {
    let h = Harness::new();
    let token = h.token();
    let huge = "A".repeat(64 * 1024);
    send_proof(&h, &token, &huge).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofTooLarge,
    );
}

#[tokio::test]
async fn every_missing_claim_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    for claim in ["jti", "htm", "htu", "iat"] {
        let (header, mut claims) = proof_parts(&h, &token);
        claims.as_object_mut().unwrap().remove(claim);
        send_signed(&h, &token, &header, &claims)
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofMissingClaim);
    }
    // Present but of the wrong type, or empty.
    for (claim, value) in [
        ("iat", json!("1700000000")),
        ("jti", json!(7)),
        ("jti", json!("")),
        ("htm", json!(null)),
    ] {
        let (header, mut claims) = proof_parts(&h, &token);
        claims[claim] = value;
        send_signed(&h, &token, &header, &claims)
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofMissingClaim);
    }
}

#[tokio::test]
async fn wrong_typ_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    for typ in [
        json!("JWT"),
        json!("jwt+dpop"),
        json!("at+jwt"),
        json!(null),
    ] {
        let (mut header, claims) = proof_parts(&h, &token);
        set_or_remove(&mut header, "typ", typ);
        send_signed(&h, &token, &header, &claims)
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofType);
    }
}

#[tokio::test]
async fn critical_header_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let (mut header, claims) = proof_parts(&h, &token);
    header["crit"] = json!(["exp"]);
    send_signed(&h, &token, &header, &claims)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofCriticalHeader);
}

// ---------------------------------------------------------- proof: algorithm

#[tokio::test]
async fn alg_none_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let (mut header, claims) = proof_parts(&h, &token);
    header["alg"] = json!("none");
    let body = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    // The classic unsecured JWS has an empty signature: not a compact JWS we accept.
    send_proof(&h, &token, &format!("{body}."))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofMalformed);
    // With some signature bytes, `none` is still refused by name.
    send_signed(&h, &token, &header, &claims)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofAlgorithm);
}

#[tokio::test]
async fn hs256_is_rejected_even_if_allowed_by_configuration() {
    // There is no way to put a MAC on the allow-list: HS256 is not an Algorithm.
    assert!("HS256".parse::<Algorithm>().is_err());
    let h = Harness::new();
    let token = h.token();
    let (mut header, claims) = proof_parts(&h, &token);
    header["alg"] = json!("HS256");
    send_signed(&h, &token, &header, &claims)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofAlgorithm);
}

#[tokio::test]
async fn alg_not_on_the_allow_list_is_rejected() {
    let h = Harness::with(|b| b.proofs(ProofRules::new().algorithms([Algorithm::EdDSA])));
    let token = h.token();
    let r = h.get_with(PATH, &token).await;
    r.assert_refused(401, "invalid_dpop_proof", Error::ProofAlgorithm);
    assert_eq!(r.param("algs").as_deref(), Some("EdDSA"));
}

#[tokio::test]
async fn alg_and_jwk_type_disagreeing_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    for alg in [
        "RS256", "PS256", "PS512", "EdDSA", "Ed25519", "ES384", "ES512",
    ] {
        let (mut header, claims) = proof_parts(&h, &token);
        header["alg"] = json!(alg);
        send_signed(&h, &token, &header, &claims)
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofKeyAlgorithmMismatch);
    }
}

// ---------------------------------------------------------------- proof: jwk

#[tokio::test]
async fn jwk_missing_or_not_an_object_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    for jwk in [
        Value::Null,
        json!("a string"),
        json!([1, 2]),
        json!({"kty": "EC"}),
    ] {
        let (mut header, claims) = proof_parts(&h, &token);
        set_or_remove(&mut header, "jwk", jwk);
        send_signed(&h, &token, &header, &claims)
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofKeyInvalid);
    }
}

#[tokio::test]
async fn jwk_with_private_or_symmetric_material_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let (header, claims) = proof_parts(&h, &token);
    let mut with_d = header.clone();
    with_d["jwk"]["d"] = json!(b64(&[7u8; 32]));
    send_signed(&h, &token, &with_d, &claims)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofKeyPrivate);
    let mut symmetric = header.clone();
    symmetric["jwk"] = json!({"kty": "oct", "k": b64(b"shared secret")});
    send_signed(&h, &token, &symmetric, &claims)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofKeyPrivate);
}

// ---------------------------------------------------------- proof: signature

#[tokio::test]
async fn bad_signature_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let proof = h.proof("GET", PATH, &token);
    let (body, sig) = proof.rsplit_once('.').unwrap();
    let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .unwrap();
    sig[10] ^= 0x01;
    send_proof(&h, &token, &format!("{body}.{}", b64(&sig)))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofSignature);
}

#[tokio::test]
async fn signature_by_another_key_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let (header, claims) = proof_parts(&h, &token); // header names the client's key
    let other = DpopKey::generate();
    send_proof(&h, &token, &other.sign_compact(&header, &claims))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofSignature);
}

#[tokio::test]
async fn tampered_claims_break_the_signature() {
    let h = Harness::new();
    let token = h.token();
    let proof = h.proof("GET", PATH, &token);
    let parts: Vec<&str> = proof.split('.').collect();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["jti"] = json!("tampered");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    send_proof(&h, &token, &forged).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofSignature,
    );
}

// ------------------------------------------------------------ proof: htm/htu

#[tokio::test]
async fn htm_mismatch_and_lower_case_htm_are_rejected() {
    let h = Harness::new();
    let token = h.token();
    for htm in ["POST", "get", "Get"] {
        let (header, mut claims) = proof_parts(&h, &token);
        claims["htm"] = json!(htm);
        send_signed(&h, &token, &header, &claims)
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofMethodMismatch);
    }
}

async fn with_htu(h: &Harness, token: &str, htu: &str, request_path: &str) -> Reply {
    let (header, mut claims) = proof_parts(h, token);
    claims["htu"] = json!(htu);
    let proof = h.client.sign_compact(&header, &claims);
    h.send(
        "GET",
        request_path,
        Some(&format!("DPoP {token}")),
        Some(&proof),
    )
    .await
}

#[tokio::test]
async fn htu_with_another_path_or_host_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    for htu in [
        format!("https://{HOST}/api/write"),
        format!("https://{HOST}/api/read/"),
        "https://evil.example.test/api/read".to_owned(),
        format!("http://{HOST}/api/read"),
        format!("https://{HOST}:8443/api/read"),
        "/api/read".to_owned(),
    ] {
        with_htu(&h, &token, &htu, PATH).await.assert_refused(
            401,
            "invalid_dpop_proof",
            Error::ProofUriMismatch,
        );
    }
}

#[tokio::test]
async fn htu_path_case_differing_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    with_htu(&h, &token, &format!("https://{HOST}/API/read"), PATH)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofUriMismatch);
}

#[tokio::test]
async fn query_and_fragment_are_ignored_on_both_sides() {
    let h = Harness::new();
    let token = h.token();
    let cases = [
        (
            format!("https://{HOST}/api/read?page=2#top"),
            PATH.to_owned(),
        ),
        (format!("https://{HOST}/api/read"), format!("{PATH}?page=2")),
        (
            format!("https://{HOST}/api/read?a=1"),
            format!("{PATH}?b=2"),
        ),
    ];
    for (htu, path) in cases {
        let r = with_htu(&h, &token, &htu, &path).await;
        assert_eq!(r.status, 200, "{htu} vs {path}: {r:?}");
    }
}

#[tokio::test]
async fn scheme_and_host_case_and_default_port_are_accepted() {
    let h = Harness::new();
    let token = h.token();
    for htu in [
        "HTTPS://API.EXAMPLE.TEST/api/read",
        "https://api.example.test:443/api/read",
        "https://Api.Example.Test:443/api/./read",
        "https://api.example.test/api/%72ead",
    ] {
        let r = with_htu(&h, &token, htu, PATH).await;
        assert_eq!(r.status, 200, "{htu}: {r:?}");
    }
}

#[tokio::test]
async fn public_base_url_behind_a_proxy() {
    let h = Harness::with(|b| b.origin("https://public.example.test/v1/"));
    let token = h.token();
    // The client signs the public URI; the server sees only the path.
    let ok = with_htu(&h, &token, "https://public.example.test/v1/api/read", PATH).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    // The internal URI is not what the client addresses.
    with_htu(&h, &token, &format!("https://{HOST}/api/read"), PATH)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofUriMismatch);
}

#[tokio::test]
async fn request_without_host_is_invalid_request() {
    let h = Harness::new();
    let token = h.token();
    let auth = format!("DPoP {token}");
    let proof = h.proof("GET", PATH, &token);
    h.send_headers("GET", PATH, &[("authorization", &auth), ("dpop", &proof)])
        .await
        .assert_refused(400, "invalid_request", Error::MissingHost);
}

// ------------------------------------------------------------------ proof: iat

#[tokio::test]
async fn iat_window() {
    let h = Harness::new();
    let token = h.token();
    let at = |offset: i64| {
        let (header, mut claims) = proof_parts(&h, &token);
        claims["iat"] = json!(h.now() as i64 + offset);
        h.client.sign_compact(&header, &claims)
    };
    send_proof(&h, &token, &at(-61)).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofExpired,
    );
    send_proof(&h, &token, &at(-300)).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofExpired,
    );
    send_proof(&h, &token, &at(16)).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofIssuedInFuture,
    );
    send_proof(&h, &token, &at(300)).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofIssuedInFuture,
    );
    for ok in [-60, -1, 0, 8, 10, 15] {
        let r = send_proof(&h, &token, &at(ok)).await;
        assert_eq!(r.status, 200, "iat offset {ok}: {r:?}");
    }
}

#[tokio::test]
async fn iat_window_is_configurable() {
    let h = Harness::with(|b| {
        b.proofs(
            ProofRules::new()
                .max_age(std::time::Duration::from_secs(5))
                .max_future_skew(std::time::Duration::from_secs(2)),
        )
    });
    let token = h.token();
    let at = |offset: i64| {
        let (header, mut claims) = proof_parts(&h, &token);
        claims["iat"] = json!(h.now() as i64 + offset);
        h.client.sign_compact(&header, &claims)
    };
    send_proof(&h, &token, &at(-6)).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofExpired,
    );
    send_proof(&h, &token, &at(3)).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofIssuedInFuture,
    );
    assert_eq!(send_proof(&h, &token, &at(-5)).await.status, 200);
}

/// A proof is a JWT (RFC 9449 §4.2): an `exp` or `nbf` it carries must
/// hold (RFC 7519 §4.1.4–4.1.5), within the clock allowance of `iat`
/// (15 s by default), and must be a number.
#[tokio::test]
async fn proof_exp_and_nbf_must_hold_when_present() {
    let h = Harness::new();
    let token = h.token();
    let with = |name: &str, value: Value| {
        let (header, mut claims) = proof_parts(&h, &token);
        claims[name] = value;
        h.client.sign_compact(&header, &claims)
    };
    let now = h.now() as i64;
    for exp in [now - 16, now - 3600, 0] {
        send_proof(&h, &token, &with("exp", json!(exp)))
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofExpPassed);
    }
    for nbf in [now + 16, now + 3600] {
        send_proof(&h, &token, &with("nbf", json!(nbf)))
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofNotYetValid);
    }
    for (name, value) in [
        ("exp", json!("never")),
        ("exp", json!(null)),
        ("exp", json!(-5)),
        ("nbf", json!([now])),
        ("nbf", json!({"at": now})),
        ("exp", json!(true)),
    ] {
        send_proof(&h, &token, &with(name, value.clone()))
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofMissingClaim);
    }
    for (name, value) in [
        ("exp", json!(now + 60)),
        ("exp", json!(now - 14)),
        ("exp", json!(now as f64 + 30.5)),
        ("nbf", json!(now)),
        ("nbf", json!(now + 15)),
        ("nbf", json!(now - 3600)),
    ] {
        let r = send_proof(&h, &token, &with(name, value.clone())).await;
        assert_eq!(r.status, 200, "{name}={value}: {r:?}");
    }
    // A far `exp` does not stretch the `iat` window.
    let (header, mut claims) = proof_parts(&h, &token);
    claims["iat"] = json!(now - 61);
    claims["exp"] = json!(now + 3600);
    send_proof(&h, &token, &h.client.sign_compact(&header, &claims))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofExpired);
}

// ------------------------------------------------------------------ proof: ath

#[tokio::test]
async fn ath_missing_or_wrong_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let (header, mut claims) = proof_parts(&h, &token);
    claims.as_object_mut().unwrap().remove("ath");
    send_signed(&h, &token, &header, &claims)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofAthMissing);
    // ath of another token: the proof was made for a different token.
    let other = h.token();
    let proof = h.proof("GET", PATH, &other);
    send_proof(&h, &token, &proof).await.assert_refused(
        401,
        "invalid_dpop_proof",
        Error::ProofAthMismatch,
    );
    let (header, mut claims) = proof_parts(&h, &token);
    claims["ath"] = json!("not base64!");
    send_signed(&h, &token, &header, &claims)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofAthMismatch);
    // The right hash with more after it, padded, or cut short: refused
    // (it is decoded into a fixed buffer; nothing longer can match).
    let ath = senderbound_core::ath(&token);
    for wrong in [
        format!("{ath}AAAA"),
        format!("{ath}A"),
        format!("{ath}="),
        ath[..42].to_owned(),
        String::new(),
    ] {
        let (header, mut claims) = proof_parts(&h, &token);
        claims["ath"] = json!(wrong);
        send_signed(&h, &token, &header, &claims)
            .await
            .assert_refused(401, "invalid_dpop_proof", Error::ProofAthMismatch);
    }
    // And the right one is accepted, so the refusals above are the suffix's.
    let (header, mut claims) = proof_parts(&h, &token);
    claims["ath"] = json!(ath);
    assert_eq!(send_signed(&h, &token, &header, &claims).await.status, 200);
}

// ------------------------------------------------------------- token: binding

#[tokio::test]
async fn token_bound_to_another_key_is_rejected() {
    // A stolen token used with the thief's own key and a valid proof.
    let h = Harness::new();
    let victim_token = h.token();
    let thief = DpopKey::generate();
    let proof = thief
        .proof("GET", &format!("https://{HOST}{PATH}"))
        .unwrap()
        .access_token(&victim_token)
        .issued_at(h.now())
        .sign();
    send_proof(&h, &victim_token, &proof).await.assert_refused(
        401,
        "invalid_token",
        Error::TokenBindingMismatch,
    );
}

#[tokio::test]
async fn bound_token_sent_as_bearer_is_a_downgrade() {
    for allow_bearer in [false, true] {
        let h = if allow_bearer {
            Harness::with(|b| b.allow_bearer())
        } else {
            Harness::new()
        };
        let token = h.token();
        let r = h
            .send("GET", PATH, Some(&format!("Bearer {token}")), None)
            .await;
        r.assert_refused(401, "invalid_token", Error::TokenDowngrade);
        // Even with a (valid) proof alongside.
        let proof = h.proof("GET", PATH, &token);
        h.send("GET", PATH, Some(&format!("Bearer {token}")), Some(&proof))
            .await
            .assert_refused(401, "invalid_token", Error::TokenDowngrade);
    }
}

#[tokio::test]
async fn dpop_scheme_with_unbound_token_is_rejected() {
    let h = Harness::new();
    let token = h
        .issuer
        .sign(&h.issuer.claims(AUDIENCE, None, "read", h.now()));
    h.get_with(PATH, &token)
        .await
        .assert_refused(401, "invalid_token", Error::TokenNotBound);
}

#[tokio::test]
async fn unbound_bearer_token_only_when_allowed() {
    let h = Harness::new();
    let token = h
        .issuer
        .sign(&h.issuer.claims(AUDIENCE, None, "read", h.now()));
    // RFC 6750 §3.1: an authentication method the resource does not support
    // gets a challenge without an error code.
    let r = h
        .send("GET", PATH, Some(&format!("Bearer {token}")), None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error(), None, "{r:?}");
    assert_eq!(r.challenges.len(), 1);
    assert!(r.challenges[0].starts_with("DPoP algs="), "{r:?}");

    let h = Harness::with(|b| b.allow_bearer());
    let token = h
        .issuer
        .sign(&h.issuer.claims(AUDIENCE, None, "read", h.now()));
    let r = h
        .send("GET", PATH, Some(&format!("Bearer {token}")), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["binding"], "bearer");
    assert!(r.json().get("jkt").is_none());
}

#[tokio::test]
async fn malformed_cnf_is_rejected() {
    let h = Harness::new();
    for cnf in [
        json!({"jkt": "short"}),
        json!({"jwk": {"kty": "EC"}}),
        json!({}),
        json!({"jkt": h.client.jkt(), "x5t#S256": h.client.jkt()}),
    ] {
        let mut claims = h.claims();
        claims["cnf"] = cnf;
        let token = h.issuer.sign(&claims);
        h.get_with(PATH, &token).await.assert_refused(
            401,
            "invalid_token",
            Error::TokenConfirmationInvalid,
        );
    }
}

// ------------------------------------------------------- token: verification

async fn with_claims(h: &Harness, change: impl FnOnce(&mut Value)) -> Reply {
    let mut claims = h.claims();
    change(&mut claims);
    let token = h.issuer.sign(&claims);
    h.get_with(PATH, &token).await
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let h = Harness::new();
    let now = h.now();
    // exp + 10 s leeway already passed.
    with_claims(&h, |c| c["exp"] = json!(now - 11))
        .await
        .assert_refused(401, "invalid_token", Error::TokenExpired);
    // Within the leeway: still accepted.
    assert_eq!(
        with_claims(&h, |c| c["exp"] = json!(now - 5)).await.status,
        200
    );
}

#[tokio::test]
async fn cached_token_expires_with_the_clock() {
    let h = Harness::new();
    let token = h.token(); // exp = NOW + 300
    assert_eq!(h.get_with(PATH, &token).await.status, 200);
    h.clock.advance(311);
    h.get_with(PATH, &token)
        .await
        .assert_refused(401, "invalid_token", Error::TokenExpired);
}

#[tokio::test]
async fn token_not_yet_valid_is_rejected() {
    let h = Harness::new();
    let now = h.now();
    with_claims(&h, |c| c["nbf"] = json!(now + 60))
        .await
        .assert_refused(401, "invalid_token", Error::TokenNotYetValid);
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let h = Harness::new();
    with_claims(&h, |c| c["iss"] = json!("https://evil.example.test"))
        .await
        .assert_refused(401, "invalid_token", Error::TokenIssuer);
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let h = Harness::new();
    with_claims(&h, |c| c["aud"] = json!("https://other-api.example.test"))
        .await
        .assert_refused(401, "invalid_token", Error::TokenAudience);
    with_claims(&h, |c| {
        c["aud"] = json!(["https://a.example.test", "https://b.example.test"])
    })
    .await
    .assert_refused(401, "invalid_token", Error::TokenAudience);
    // One of several audiences is enough.
    let ok = with_claims(&h, |c| {
        c["aud"] = json!(["https://a.example.test", AUDIENCE])
    })
    .await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn missing_token_claims_are_rejected() {
    let h = Harness::new();
    for claim in ["iss", "aud", "exp"] {
        with_claims(&h, |c| {
            c.as_object_mut().unwrap().remove(claim);
        })
        .await
        .assert_refused(401, "invalid_token", Error::TokenMissingClaim);
    }
}

#[tokio::test]
async fn tampered_token_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = h.claims();
    claims["scope"] = json!("read write admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    h.get_with(PATH, &forged)
        .await
        .assert_refused(401, "invalid_token", Error::TokenSignature);
}

#[tokio::test]
async fn token_signed_by_unknown_key_is_rejected() {
    let h = Harness::new();
    let rogue = TestIssuer::new(ISSUER);
    let claims = h.claims();
    // Same kid as the trusted key, other key: the signature fails.
    let same_kid = rogue.sign_with_header(
        &json!({"typ": "at+jwt", "alg": "ES256", "kid": h.issuer.kid()}),
        &claims,
    );
    h.get_with(PATH, &same_kid)
        .await
        .assert_refused(401, "invalid_token", Error::TokenSignature);
    // A kid the server does not know.
    let unknown_kid = rogue.sign(&claims);
    h.get_with(PATH, &unknown_kid).await.assert_refused(
        401,
        "invalid_token",
        Error::TokenUnknownKey,
    );
}

#[tokio::test]
async fn token_typ_and_alg_are_checked() {
    let h = Harness::new();
    let claims = h.claims();
    let kid = h.issuer.kid();
    for typ in [json!("JWT"), json!("dpop+jwt"), json!(null)] {
        let mut header = json!({"alg": "ES256", "kid": kid});
        if !typ.is_null() {
            header["typ"] = typ;
        }
        let token = h.issuer.sign_with_header(&header, &claims);
        h.get_with(PATH, &token)
            .await
            .assert_refused(401, "invalid_token", Error::TokenType);
    }
    for alg in ["none", "HS256"] {
        let token = h
            .issuer
            .sign_with_header(&json!({"typ": "at+jwt", "alg": alg, "kid": kid}), &claims);
        h.get_with(PATH, &token)
            .await
            .assert_refused(401, "invalid_token", Error::TokenAlgorithm);
    }
    // `application/at+jwt` is the same media type.
    let token = h.issuer.sign_with_header(
        &json!({"typ": "application/at+jwt", "alg": "ES256", "kid": kid}),
        &claims,
    );
    assert_eq!(h.get_with(PATH, &token).await.status, 200);
}

#[tokio::test]
async fn lenient_typ_accepts_plain_jwt_but_never_a_proof_type() {
    let h = Harness::with(|b| b.tokens(TokenPolicy::new().typ(TypPolicy::AllowJwt)));
    let claims = h.claims();
    let kid = h.issuer.kid();
    for header in [
        json!({"typ": "JWT", "alg": "ES256", "kid": kid}),
        json!({"alg": "ES256", "kid": kid}),
    ] {
        let token = h.issuer.sign_with_header(&header, &claims);
        assert_eq!(h.get_with(PATH, &token).await.status, 200, "{header}");
    }
    let token = h.issuer.sign_with_header(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "kid": kid}),
        &claims,
    );
    h.get_with(PATH, &token)
        .await
        .assert_refused(401, "invalid_token", Error::TokenType);
}

#[tokio::test]
async fn malformed_or_oversized_tokens_are_rejected() {
    let h = Harness::new();
    h.get_with(PATH, "abc.def")
        .await
        .assert_refused(401, "invalid_token", Error::TokenMalformed);
    let big = "a".repeat(17 * 1024);
    h.get_with(PATH, &big)
        .await
        .assert_refused(401, "invalid_token", Error::TokenTooLarge);
}

// -------------------------------------------------------------------- scope

#[tokio::test]
async fn insufficient_scope_is_403_with_the_scope() {
    let h = Harness::new();
    let token = h.token(); // scope "read" only
    let proof = h.proof("POST", "/api/write", &token);
    let r = h
        .send(
            "POST",
            "/api/write",
            Some(&format!("DPoP {token}")),
            Some(&proof),
        )
        .await;
    r.assert_refused(403, "insufficient_scope", Error::InsufficientScope);
    assert_eq!(r.param("scope").as_deref(), Some("write"));
    assert!(r.challenges[0].starts_with("DPoP "));

    let mut claims = h.claims();
    claims["scope"] = json!("read write");
    let token = h.issuer.sign(&claims);
    let proof = h.proof("POST", "/api/write", &token);
    let r = h
        .send(
            "POST",
            "/api/write",
            Some(&format!("DPoP {token}")),
            Some(&proof),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

// ------------------------------------------------------------- credentials

#[tokio::test]
async fn credential_headers_are_removed_before_the_handler() {
    let h = Harness::new();
    let token = h.token();
    let r = h.get_with("/headers", &token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["authorization"], false, "{r:?}");
    assert_eq!(r.json()["dpop"], false, "{r:?}");

    let h = Harness::with(|b| b.keep_credential_headers());
    let token = h.token();
    let r = h.get_with("/headers", &token).await;
    assert_eq!(r.json()["authorization"], true, "{r:?}");
    assert_eq!(r.json()["dpop"], true, "{r:?}");
}

#[tokio::test]
async fn refusal_bodies_carry_no_internals() {
    let h = Harness::new();
    let token = h.token();
    let thief = DpopKey::generate();
    let proof = thief
        .proof("GET", &format!("https://{HOST}{PATH}"))
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .sign();
    let r = send_proof(&h, &token, &proof).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json(),
        json!({"error": "invalid_token", "error_description": "access token is bound to another key"})
    );
    for secret in [token.as_str(), proof.as_str(), thief.jkt(), h.client.jkt()] {
        assert!(!r.body.contains(secret));
        assert!(!r.challenges.iter().any(|c| c.contains(secret)));
    }
}

#[tokio::test]
async fn layer_inside_a_nested_router_checks_the_full_path() {
    use senderbound::SenderBoundLayer;
    use senderbound::tokens::Issuer;
    use tower::ServiceExt;
    let h = Harness::new();
    let auth = SenderBoundLayer::builder()
        .trust(Issuer::new(ISSUER).keys(h.issuer.jwks_json()))
        .audience(AUDIENCE)
        .origin(Origin::hosts([HOST]))
        .clock(h.clock.clone())
        .build()
        .unwrap();
    let app = axum::Router::new().nest(
        "/v1",
        senderbound_suite::harness::routes().layer(auth.clone()),
    );
    let token = h.token();
    let call = |htu_path: &str| {
        let proof = h
            .client
            .proof("GET", &format!("https://{HOST}{htu_path}"))
            .unwrap()
            .access_token(&token)
            .issued_at(h.now())
            .sign();
        http::Request::get("/v1/api/read")
            .header("host", HOST)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    // The client signs the full path it called, prefix included.
    let ok = app.clone().oneshot(call("/v1/api/read")).await.unwrap();
    assert_eq!(ok.status(), 200);
    // A proof for the path without the prefix is for another URI.
    let bad = app.oneshot(call("/api/read")).await.unwrap();
    assert_eq!(bad.status(), 401);
    let challenge = bad.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("error=\"invalid_dpop_proof\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(Error::ProofUriMismatch.description()),
        "{challenge}"
    );
}

#[tokio::test]
async fn request_to_a_host_not_served_is_refused() {
    // A proof made for another server that accepts the same token, replayed
    // here with that server's Host, must not pass.
    let h = Harness::new();
    let token = h.token();
    let auth = format!("DPoP {token}");
    let proof = h
        .client
        .proof("GET", "https://other-api.example.test/api/read")
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .sign();
    let headers = [
        ("host", "other-api.example.test"),
        ("authorization", &auth),
        ("dpop", &proof),
    ];
    h.send_headers("GET", PATH, &headers).await.assert_refused(
        400,
        "invalid_request",
        Error::HostNotAllowed,
    );
    // Host case and an explicit default port are the same host.
    let proof = h.proof("GET", PATH, &token);
    let headers = [
        ("host", "API.example.test:443"),
        ("authorization", &auth),
        ("dpop", &proof),
    ];
    assert_eq!(h.send_headers("GET", PATH, &headers).await.status, 200);
}

#[tokio::test]
async fn any_host_only_when_explicitly_allowed() {
    let h = Harness::with(|b| b.origin(Origin::any_host()));
    let token = h.token();
    let auth = format!("DPoP {token}");
    let proof = h
        .client
        .proof("GET", "https://anything.example.test/api/read")
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .sign();
    let headers = [
        ("host", "anything.example.test"),
        ("authorization", &auth),
        ("dpop", &proof),
    ];
    assert_eq!(h.send_headers("GET", PATH, &headers).await.status, 200);
}

#[tokio::test]
async fn request_paths_not_in_normal_form_are_refused() {
    // Routers match the raw path: a proof for /api/read must not be usable at
    // /x/../api/read, which a wildcard route could serve as something else.
    let h = Harness::new();
    let token = h.token();
    for path in [
        "/x/../api/read",
        "/api/./read",
        "/api/%72ead",
        "/x/%2E%2E/api/read",
    ] {
        let proof = h.proof("GET", PATH, &token);
        h.send("GET", path, Some(&format!("DPoP {token}")), Some(&proof))
            .await
            .assert_refused(400, "invalid_request", Error::PathNotNormalized);
    }
}

#[tokio::test]
async fn null_cnf_is_not_unbound() {
    let h = Harness::with(|b| b.allow_bearer());
    let mut claims = h.issuer.claims(AUDIENCE, None, "read", h.now());
    claims["cnf"] = Value::Null;
    let token = h.issuer.sign(&claims);
    h.send("GET", PATH, Some(&format!("Bearer {token}")), None)
        .await
        .assert_refused(401, "invalid_token", Error::TokenConfirmationInvalid);
}
