//! The bounds of `docs/architecture.md` ("Limits and defaults") that no
//! other test pins, each tried just inside and just outside, plus the
//! checks of the pure core that had no test proving they reject.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use senderbound_client::DpopKey;
use senderbound_core::Error;
use senderbound_core::jwk::{JwkError, JwkSet, KeyType, MAX_RSA_BITS, MIN_RSA_BITS, PublicJwk};
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_core::token::TokenRules;
use senderbound_suite::TestIssuer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NOW: u64 = 1_800_000_000;
const HTU: &str = "https://api.example.com/r";
const ISSUER: &str = "https://as.example.com";
const AUDIENCE: &str = "https://api.example.com/";

fn verify_proof(proof: &str) -> Result<(), Error> {
    let facts = RequestFacts {
        method: "GET",
        htu: HTU,
        access_token_hash: None,
        now: NOW,
    };
    ProofPolicy::new().verify(proof, &facts).map(|_| ())
}

#[test]
fn jti_up_to_256_bytes_is_accepted_and_longer_is_refused() {
    let key = DpopKey::generate();
    let proof = |jti: String| {
        key.proof("GET", HTU)
            .unwrap()
            .issued_at(NOW)
            .jti(jti)
            .sign()
    };
    verify_proof(&proof("j".repeat(256))).unwrap();
    assert_eq!(
        verify_proof(&proof("j".repeat(257))),
        Err(Error::ProofMissingClaim)
    );
    assert_eq!(
        verify_proof(&proof(String::new())),
        Err(Error::ProofMissingClaim)
    );
}

#[test]
fn a_signature_of_the_wrong_shape_is_refused() {
    let key = DpopKey::generate();
    let proof = key.proof("GET", HTU).unwrap().issued_at(NOW).sign();
    let (signing_input, signature) = proof.rsplit_once('.').unwrap();
    let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
    // The same r and s, DER-encoded (as OpenSSL writes them): not JOSE's
    // fixed-width r || s.
    let der_int = |b: &[u8]| {
        let b = match b.iter().position(|x| *x != 0) {
            Some(i) => &b[i..],
            None => &b[b.len() - 1..],
        };
        let mut v = vec![0x02];
        if b[0] & 0x80 != 0 {
            v.push(b.len() as u8 + 1);
            v.push(0);
        } else {
            v.push(b.len() as u8);
        }
        v.extend_from_slice(b);
        v
    };
    let (r, s) = (der_int(&raw[..32]), der_int(&raw[32..]));
    let mut der = vec![0x30, (r.len() + s.len()) as u8];
    der.extend(r);
    der.extend(s);
    for bad in [
        der,
        raw[..63].to_vec(),
        [&raw[..], &[0]].concat(),
        vec![0; 64],
    ] {
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&bad));
        assert_eq!(verify_proof(&forged), Err(Error::ProofSignature));
    }
    verify_proof(&proof).unwrap();
}

#[test]
fn a_key_whose_alg_member_disagrees_is_not_used() {
    let key = DpopKey::generate();
    let mut jwk = key.public_jwk().clone();
    jwk["alg"] = json!("ES384");
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let claims = json!({"jti": "a", "htm": "GET", "htu": HTU, "iat": NOW});
    assert_eq!(
        verify_proof(&key.sign_compact(&header, &claims)),
        Err(Error::ProofKeyAlgorithmMismatch)
    );
    jwk["alg"] = json!("ES256");
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    verify_proof(&key.sign_compact(&header, &claims)).unwrap();
}

fn rsa_jwk(bits: usize) -> Value {
    // An odd modulus of exactly `bits` bits; e = 65537.
    let mut n = vec![0xff_u8; bits.div_ceil(8)];
    let spare = n.len() * 8 - bits;
    n[0] >>= spare;
    json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
}

#[test]
fn rsa_keys_between_2048_and_4096_bits_only() {
    for bits in [MIN_RSA_BITS, MAX_RSA_BITS] {
        let jwk = PublicJwk::from_value(&rsa_jwk(bits)).unwrap();
        assert_eq!(jwk.key_type(), KeyType::Rsa { bits });
    }
    for bits in [MIN_RSA_BITS - 1, MAX_RSA_BITS + 1, 8192] {
        assert_eq!(
            PublicJwk::from_value(&rsa_jwk(bits)).unwrap_err(),
            JwkError::Invalid,
            "{bits}"
        );
    }
}

#[test]
fn numeric_dates_that_are_not_non_negative_numbers_are_refused() {
    let key = DpopKey::generate();
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    for iat in [
        json!(-1),
        json!("1800000000"),
        json!(1e300),
        json!(null),
        json!([NOW]),
    ] {
        let claims = json!({"jti": "a", "htm": "GET", "htu": HTU, "iat": iat});
        assert_eq!(
            verify_proof(&key.sign_compact(&header, &claims)),
            Err(Error::ProofMissingClaim),
            "{iat}"
        );
    }
    let issuer = TestIssuer::new(ISSUER);
    let keys = JwkSet::from_json(&issuer.jwks_json()).unwrap();
    let rules = TokenRules::new([ISSUER], [AUDIENCE]);
    for exp in [json!(-1), json!("2000000000"), json!(f64::MAX)] {
        let mut claims = issuer.claims(AUDIENCE, None, "read", NOW);
        claims["exp"] = exp.clone();
        assert!(
            rules.verify_jwt(&issuer.sign(&claims), &keys).is_err(),
            "{exp}"
        );
    }
}

/// Without a `kid`, a token is tried against at most 4 fitting keys of the
/// issuer's set, never the whole set.
#[test]
fn a_token_without_kid_is_tried_against_four_keys_at_most() {
    let issuers: Vec<TestIssuer> = (0..6).map(|_| TestIssuer::new(ISSUER)).collect();
    let keys = JwkSet::from_keys(issuers.iter().map(|i| {
        let mut jwk = i.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        PublicJwk::from_value(&jwk).unwrap()
    }));
    let rules = TokenRules::new([ISSUER], [AUDIENCE]);
    for (i, issuer) in issuers.iter().enumerate() {
        let claims = issuer.claims(AUDIENCE, None, "read", NOW);
        let token = issuer.sign_with_header(&json!({"typ": "at+jwt", "alg": "ES256"}), &claims);
        let result = rules.verify_jwt(&token, &keys);
        if i < 4 {
            result.unwrap();
        } else {
            assert_eq!(result.unwrap_err(), Error::TokenSignature, "key {i}");
        }
    }
}

#[test]
fn access_tokens_with_crit_are_refused() {
    let issuer = TestIssuer::new(ISSUER);
    let keys = JwkSet::from_json(&issuer.jwks_json()).unwrap();
    let rules = TokenRules::new([ISSUER], [AUDIENCE]);
    let claims = issuer.claims(AUDIENCE, None, "read", NOW);
    let header = json!({"typ": "at+jwt", "alg": "ES256", "kid": issuer.kid(), "crit": ["exp"]});
    assert_eq!(
        rules
            .verify_jwt(&issuer.sign_with_header(&header, &claims), &keys)
            .unwrap_err(),
        Error::TokenMalformed
    );
    rules.verify_jwt(&issuer.sign(&claims), &keys).unwrap();
}

#[test]
fn a_proof_with_crit_or_over_the_size_limit_is_refused() {
    let key = DpopKey::generate();
    let claims = json!({"jti": "a", "htm": "GET", "htu": HTU, "iat": NOW});
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk(), "crit": ["x"]});
    assert_eq!(
        verify_proof(&key.sign_compact(&header, &claims)),
        Err(Error::ProofCriticalHeader)
    );
    // 8 KiB: the default maximum, checked before any parsing.
    let mut big = claims.clone();
    big["pad"] = json!("p".repeat(8 * 1024));
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    assert_eq!(
        verify_proof(&key.sign_compact(&header, &big)),
        Err(Error::ProofTooLarge)
    );
    let hash: [u8; 32] = Sha256::digest(b"t").into();
    let facts = RequestFacts {
        method: "GET",
        htu: HTU,
        access_token_hash: Some(&hash),
        now: NOW,
    };
    assert_eq!(
        ProofPolicy::new()
            .verify(&key.sign_compact(&header, &claims), &facts)
            .unwrap_err(),
        Error::ProofAthMissing
    );
}
