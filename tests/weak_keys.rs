//! Keys that prove nothing (RFC 8032 §5.1.7 verification accepts them): an
//! Ed25519 key of small order lets anyone forge signatures, so a token bound
//! to one would be a bearer token in disguise. Forgeries made without any
//! secret (tests/fixtures/generate_ed25519_weak_keys.py) are refused on both
//! backends, as proof keys and as authorization-server keys, and Ed25519
//! signatures are checked strictly (S < L, R not of small order).

use senderbound::Error;
use senderbound::Origin;
use senderbound::tokens::Issuer;
use senderbound_core::jwk::{JwkSet, PublicJwk};
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_suite::harness::{AUDIENCE, HOST, Harness, ISSUER};
use serde_json::{Value, json};

fn vectors() -> Value {
    serde_json::from_str(include_str!("fixtures/ed25519_weak_keys.json")).unwrap()
}

fn verify(doc: &Value, proof: &str) -> Result<(), Error> {
    let facts = RequestFacts {
        method: "GET",
        htu: doc["htu"].as_str().unwrap(),
        access_token_hash: None,
        now: doc["now"].as_u64().unwrap(),
    };
    ProofPolicy::new().verify(proof, &facts).map(|_| ())
}

#[test]
fn proofs_forged_with_keys_of_small_order_are_refused_as_invalid_keys() {
    let doc = vectors();
    let mut forged = vec![doc["identity_universal_signature"]["proof_any_jti"].clone()];
    for section in ["small_order_canonical", "small_order_non_canonical"] {
        forged.extend(
            doc[section]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["proof"].clone()),
        );
    }
    assert_eq!(forged.len(), 15);
    for proof in forged {
        assert_eq!(
            verify(&doc, proof.as_str().unwrap()),
            Err(Error::ProofKeyInvalid),
            "{proof}"
        );
    }
}

#[test]
fn non_canonical_encodings_are_refused_even_where_no_signature_exists() {
    let doc = vectors();
    let keys = doc["non_canonical_mixed_order_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 20);
    for key in keys {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": key["x"]});
        assert!(PublicJwk::from_json(&jwk.to_string()).is_err(), "{jwk}");
    }
}

#[test]
fn ed25519_signatures_are_verified_strictly() {
    let doc = vectors();
    let vectors = doc["signature_vectors"].as_array().unwrap();
    // S + L: the group equation still holds; only the range check refuses.
    let malleated = &vectors[1];
    assert_eq!(
        verify(&doc, malleated["proof_original"].as_str().unwrap()),
        Ok(())
    );
    assert_eq!(
        verify(&doc, malleated["proof_malleated"].as_str().unwrap()),
        Err(Error::ProofSignature)
    );
    // An R of small order (the signer's nonce was 0): refused by both
    // backends, although RFC 8032's equation holds.
    assert_eq!(
        verify(&doc, vectors[2]["proof"].as_str().unwrap()),
        Err(Error::ProofSignature)
    );
}

/// The same forgery through the Layer: a token bound to the identity key
/// (its thumbprint is a valid `cnf.jkt`) with a proof anyone can make.
#[tokio::test]
async fn a_token_bound_to_a_key_of_small_order_is_refused_through_the_layer() {
    let doc = vectors();
    let h = Harness::with(|b| b.origin(Origin::hosts([HOST])));
    let identity = json!({"kty": "OKP", "crv": "Ed25519",
        "x": doc["small_order_canonical"][0]["x"]});
    // Its thumbprint, computed as a client would (RFC 7638).
    let thumbprint = {
        use base64::Engine as _;
        use sha2::Digest as _;
        let input = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            identity["x"].as_str().unwrap()
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(input))
    };
    let mut claims = h.claims();
    claims["cnf"] = json!({ "jkt": thumbprint });
    let token = h.issuer.sign(&claims);
    // header.claims.signature with R = identity, S = 0: "valid" for any message.
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": identity});
    let claims = json!({"jti": "forged", "htm": "GET", "htu": format!("https://{HOST}/api/read"),
        "iat": h.now(), "ath": senderbound_core::ath(&token)});
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let proof = format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims),
        doc["identity_universal_signature"]["sig"].as_str().unwrap()
    );
    h.send(
        "GET",
        "/api/read",
        Some(&format!("DPoP {token}")),
        Some(&proof),
    )
    .await
    .assert_refused(401, "invalid_dpop_proof", Error::ProofKeyInvalid);
}

/// An authorization server publishing a key of small order publishes a key
/// anyone can sign tokens with: it is skipped like any unusable key.
#[test]
fn authorization_server_keys_of_small_order_are_not_used() {
    let doc = vectors();
    for section in ["small_order_canonical", "small_order_non_canonical"] {
        for v in doc[section].as_array().unwrap() {
            let jwks =
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": v["x"]}]});
            let set = JwkSet::from_json(&jwks.to_string()).unwrap();
            assert!(set.is_empty(), "{jwks}");
            let built = senderbound::SenderBoundLayer::builder()
                .trust(Issuer::new(ISSUER).keys(jwks.to_string()))
                .audience(AUDIENCE)
                .origin(Origin::any_host())
                .build();
            assert_eq!(
                built.unwrap_err(),
                senderbound::BuildError::NoUsableKey,
                "{jwks}"
            );
        }
    }
}
