//! Proofs and tokens made by an independent JOSE implementation (jwcrypto,
//! see tests/fixtures/generate_jose_interop.py) verify, for every supported
//! algorithm, with the clock pinned to when they were made.

use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;
use senderbound::clock::FixedClock;
use senderbound::tokens::Issuer;
use senderbound::{Origin, SenderBoundLayer};
use senderbound_core::jwk::PublicJwk;
use serde_json::Value;
use tower::ServiceExt;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/jose_interop.json")).unwrap()
}

async fn call(doc: &Value, f: &Value, token: &str, proof: &str) -> (u16, Value) {
    let now = doc["now"].as_u64().unwrap();
    let auth = SenderBoundLayer::builder()
        .trust(Issuer::new(doc["issuer"].as_str().unwrap()).keys(f["jwks"].to_string()))
        .audience(doc["audience"].as_str().unwrap())
        .origin(Origin::hosts(["api.example.test"]))
        .clock(Arc::new(FixedClock::new(now)))
        .build()
        .unwrap();
    let app = senderbound_suite::harness::routes().layer(auth.clone());
    let req = http::Request::get("/api/read")
        .header("host", "api.example.test")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn jwcrypto_tokens_and_proofs_verify_for_every_algorithm() {
    let doc = fixtures();
    let fixtures = doc["fixtures"].as_array().unwrap();
    let algs: Vec<&str> = fixtures
        .iter()
        .map(|f| f["alg"].as_str().unwrap())
        .collect();
    // Every asymmetric JOSE algorithm, RFC 9864's `Ed25519` included.
    let ours: Vec<&str> = senderbound::Algorithm::ALL
        .iter()
        .map(|a| a.as_str())
        .collect();
    assert_eq!(algs, ours);
    for f in fixtures {
        let alg = f["alg"].as_str().unwrap();
        // jwcrypto's RFC 7638 thumbprint equals ours.
        let jwk = PublicJwk::from_json(&f["client_jwk"].to_string()).unwrap();
        assert_eq!(jwk.thumbprint(), f["jkt"].as_str().unwrap(), "{alg}");

        let (token, proof) = (f["token"].as_str().unwrap(), f["proof"].as_str().unwrap());
        let (status, sender) = call(&doc, f, token, proof).await;
        assert_eq!(status, 200, "{alg}: {sender}");
        assert_eq!(sender["jkt"], f["jkt"], "{alg}");
        assert_eq!(sender["sub"], format!("interop-{alg}"));
    }
}

#[tokio::test]
async fn jwcrypto_artefacts_with_a_flipped_signature_bit_are_rejected() {
    let doc = fixtures();
    for f in doc["fixtures"].as_array().unwrap() {
        let alg = f["alg"].as_str().unwrap();
        let (token, proof) = (f["token"].as_str().unwrap(), f["proof"].as_str().unwrap());
        let flip = |jws: &str| {
            let (body, sig) = jws.rsplit_once('.').unwrap();
            let mut sig: Vec<char> = sig.chars().collect();
            sig[5] = if sig[5] == 'A' { 'B' } else { 'A' };
            format!("{body}.{}", sig.into_iter().collect::<String>())
        };
        let (status, body) = call(&doc, f, token, &flip(proof)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_dpop_proof")),
            "{alg} proof"
        );
        // Through the Layer a changed token would first fail the proof's
        // `ath`, so the token's own signature check is exercised directly.
        let rules = senderbound_core::token::TokenRules::new(
            [doc["issuer"].as_str().unwrap()],
            [doc["audience"].as_str().unwrap()],
        );
        let keys = senderbound_core::jwk::JwkSet::from_json(&f["jwks"].to_string()).unwrap();
        assert!(rules.verify_jwt(token, &keys).is_ok(), "{alg} token");
        assert_eq!(
            rules.verify_jwt(&flip(token), &keys).unwrap_err(),
            senderbound::Error::TokenSignature,
            "{alg} token"
        );
    }
}

/// An RSA signature value s is only meaningful below the modulus n: s + n
/// (same length) encrypts to the same message, and must still be refused,
/// on both backends (RFC 8017 §5.2.2: "signature representative out of
/// range").
#[test]
fn rsa_signatures_at_or_above_the_modulus_are_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rsa::BigUint;
    use senderbound_core::jwk::JwkSet;
    use senderbound_core::proof::{ProofPolicy, RequestFacts};
    use senderbound_core::token::TokenRules;
    use sha2::{Digest, Sha256};

    let doc = fixtures();
    let now = doc["now"].as_u64().unwrap();
    let rules = TokenRules::new(
        [doc["issuer"].as_str().unwrap()],
        [doc["audience"].as_str().unwrap()],
    );
    let mut tried = 0;
    for f in doc["fixtures"].as_array().unwrap() {
        if !f["alg"]
            .as_str()
            .is_some_and(|a| a.starts_with("RS") || a.starts_with("PS"))
        {
            continue;
        }
        let keys = JwkSet::from_json(&f["jwks"].to_string()).unwrap();
        let token = f["token"].as_str().unwrap();
        let hash: [u8; 32] = Sha256::digest(token).into();
        let facts = RequestFacts {
            method: "GET",
            htu: doc["htu"].as_str().unwrap(),
            access_token_hash: Some(&hash),
            now,
        };
        let token_ok = |t: &str| rules.verify_jwt(t, &keys).is_ok();
        let proof_ok = |p: &str| ProofPolicy::new().verify(p, &facts).is_ok();
        type Check<'a> = (&'a str, &'a Value, &'a dyn Fn(&str) -> bool);
        let checks: [Check<'_>; 2] = [
            (token, &f["jwks"]["keys"][0]["n"], &token_ok),
            (
                f["proof"].as_str().unwrap(),
                &f["client_jwk"]["n"],
                &proof_ok,
            ),
        ];
        for (jws, n, accepted) in checks {
            assert!(accepted(jws), "{}: the original verifies", f["alg"]);
            let n = BigUint::from_bytes_be(&B64.decode(n.as_str().unwrap()).unwrap());
            let (input, signature) = jws.rsplit_once('.').unwrap();
            let raw = B64.decode(signature).unwrap();
            let above = BigUint::from_bytes_be(&raw) + &n;
            let above = above.to_bytes_be();
            // Only when s + n still fits the modulus length.
            if above.len() == raw.len() {
                tried += 1;
                let forged = format!("{input}.{}", B64.encode(&above));
                assert!(!accepted(&forged), "{}: s + n accepted", f["alg"]);
            }
            let n_itself = format!("{input}.{}", B64.encode(n.to_bytes_be()));
            assert!(!accepted(&n_itself), "{}: s = n accepted", f["alg"]);
        }
    }
    assert!(
        tried >= 2,
        "the fixtures offer s + n of the same length: {tried}"
    );
}

/// ECDSA's r and s are only meaningful below the group order n; for P-521
/// r + n and s + n still fit the 66 bytes of each half (n < 2^521), so
/// ES512 has the twin of the RSA test. n - s is ECDSA's own malleability,
/// which JOSE does not forbid: accepted, like the original.
#[test]
fn es512_scalars_at_or_above_the_group_order_are_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use rsa::BigUint;
    use senderbound_core::jwk::JwkSet;
    use senderbound_core::token::TokenRules;

    let doc = fixtures();
    let f = doc["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["alg"] == "ES512")
        .unwrap();
    let rules = TokenRules::new(
        [doc["issuer"].as_str().unwrap()],
        [doc["audience"].as_str().unwrap()],
    );
    let keys = JwkSet::from_json(&f["jwks"].to_string()).unwrap();
    let token = f["token"].as_str().unwrap();
    assert!(rules.verify_jwt(token, &keys).is_ok());
    let n = BigUint::parse_bytes(
        b"01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        16,
    )
    .unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let raw = B64.decode(signature).unwrap();
    assert_eq!(raw.len(), 132);
    let half = |v: &BigUint| {
        let bytes = v.to_bytes_be();
        let mut out = vec![0u8; 66 - bytes.len()];
        out.extend(bytes);
        out
    };
    let (r, s) = (
        BigUint::from_bytes_be(&raw[..66]),
        BigUint::from_bytes_be(&raw[66..]),
    );
    let with = |r: &BigUint, s: &BigUint| {
        let mut sig = half(r);
        sig.extend(half(s));
        format!("{input}.{}", B64.encode(sig))
    };
    for (what, forged) in [
        ("r + n", with(&(&r + &n), &s)),
        ("s + n", with(&r, &(&s + &n))),
        ("s = n", with(&r, &n)),
        ("r = 0", with(&BigUint::from(0u8), &s)),
    ] {
        assert_eq!(
            rules.verify_jwt(&forged, &keys).unwrap_err(),
            senderbound::Error::TokenSignature,
            "{what}"
        );
    }
    assert!(
        rules.verify_jwt(&with(&r, &(&n - &s)), &keys).is_ok(),
        "n - s"
    );
}
