//! The fuzz targets' bodies (`fuzz/src/lib.rs`) on stable: every committed
//! corpus file and every regression (a former crash, minimised) runs
//! through its target on each `scripts/test.sh`, so what fuzzing fixed
//! stays fixed without nightly or cargo-fuzz.
//!
//! `cargo test --test fuzz_corpus -- --ignored` regenerates the signed
//! seeds (new keys, same fixed clock) in `fuzz/corpus/*/seed-*` and the
//! issuer keys in `fuzz/seeds/jwks.json`.

#[path = "../fuzz/src/lib.rs"]
mod bodies;

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::Signer;
use senderbound_client::DpopKey;
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_core::token::TokenRules;
use senderbound_suite::TestIssuer;
use senderbound_suite::pki::Identity;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type Body = fn(&[u8]);

/// The RSA key of RFC 7638 §3.1.
const RFC7638_RSA_JWK: &str = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;

const TARGETS: &[(&str, Body)] = &[
    ("dpop_proof", bodies::dpop_proof),
    ("access_token", bodies::access_token),
    ("jwk", bodies::jwk),
    ("jwks", bodies::jwks),
    ("htu", bodies::htu),
    ("authorization", bodies::authorization),
    ("client_cert", bodies::client_cert),
    ("introspection", bodies::introspection),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_and_regression_runs_clean() {
    for (target, body) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(target));
        assert!(
            corpus.len() >= 3,
            "fuzz/corpus/{target} holds {} files",
            corpus.len()
        );
        for file in corpus
            .iter()
            .chain(&files(&fuzz_dir().join("regressions").join(target)))
        {
            let input = fs::read(file).unwrap();
            // A panic names the file: the unwinding test prints this first.
            eprintln!("{target}: {}", file.display());
            body(&input);
        }
    }
}

/// The signed seeds still pass their checks: the fuzzer starts from valid
/// inputs, so its mutations reach every check up to the signature.
#[test]
fn the_signed_seeds_are_accepted() {
    let hash: [u8; 32] = Sha256::digest(bodies::ACCESS_TOKEN).into();
    let facts = RequestFacts {
        method: bodies::METHOD,
        htu: bodies::HTU,
        access_token_hash: Some(&hash),
        now: bodies::NOW,
    };
    let seeds = |target: &str| {
        files(&fuzz_dir().join("corpus").join(target))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("seed-signed")
            })
            .map(|p| bodies::compact(&fs::read(p).unwrap()).unwrap())
            .collect::<Vec<_>>()
    };
    let proofs = seeds("dpop_proof");
    assert!(proofs.len() >= 4);
    for proof in &proofs {
        ProofPolicy::new().verify(proof, &facts).unwrap();
    }
    let keys = senderbound_core::jwk::JwkSet::from_json(bodies::JWKS).unwrap();
    let rules = TokenRules::new([bodies::ISSUER], [bodies::AUDIENCE]);
    let tokens = seeds("access_token");
    assert!(tokens.len() >= 2);
    for token in &tokens {
        rules.verify_jwt(token, &keys).unwrap();
    }
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

/// The compact JWS and its `header \n payload \n signature` form.
fn both_forms(target: &str, name: &str, compact: &str) {
    write(target, &format!("signed-{name}-compact"), compact);
    let parts: Vec<Vec<u8>> = compact
        .split('.')
        .map(|p| URL_SAFE_NO_PAD.decode(p).unwrap())
        .collect();
    write(target, &format!("signed-{name}-json"), parts.join(&b'\n'));
}

fn proof_claims(jti: &str) -> Value {
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(bodies::ACCESS_TOKEN));
    json!({"jti": jti, "htm": bodies::METHOD, "htu": bodies::HTU, "iat": bodies::NOW, "ath": ath})
}

#[test]
#[ignore = "rewrites the signed fuzz seeds; run by hand"]
fn regenerate_seeds() {
    // DPoP proofs: ES256 (with and without a nonce) and EdDSA.
    let es256 = DpopKey::generate();
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": es256.public_jwk()});
    both_forms(
        "dpop_proof",
        "es256",
        &es256.sign_compact(&header, &proof_claims("seed-1")),
    );
    let mut with_nonce = proof_claims("seed-2");
    with_nonce["nonce"] = json!("eyJ7S_zG.eyJH0-Z.HX4w-7v");
    both_forms(
        "dpop_proof",
        "es256-nonce",
        &es256.sign_compact(&header, &with_nonce),
    );
    let ed = ed25519_dalek::SigningKey::from_bytes(&Sha256::digest(b"fuzz seed key").into());
    let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(ed.verifying_key().as_bytes())});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk}).to_string()),
        URL_SAFE_NO_PAD.encode(proof_claims("seed-3").to_string())
    );
    let signature = ed.sign(signing_input.as_bytes());
    both_forms(
        "dpop_proof",
        "eddsa",
        &format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ),
    );

    // Access tokens from one issuer, DPoP- and certificate-bound.
    let issuer = TestIssuer::new(bodies::ISSUER);
    fs::write(
        fuzz_dir().join("seeds/jwks.json"),
        issuer.jwks_json() + "\n",
    )
    .unwrap();
    let dpop = issuer.claims(
        bodies::AUDIENCE,
        Some(es256.jkt()),
        "read write",
        bodies::NOW,
    );
    both_forms("access_token", "dpop", &issuer.sign(&dpop));
    let mut mtls = issuer.claims(bodies::AUDIENCE, None, "read", bodies::NOW);
    mtls["cnf"] = json!({"x5t#S256": Identity::localhost().x5t_s256()});
    both_forms("access_token", "mtls", &issuer.sign(&mtls));

    // Keys and key sets.
    write("jwk", "es256", es256.public_jwk().to_string());
    write("jwk", "ed25519", ed_jwk.to_string());
    write("jwk", "rsa", RFC7638_RSA_JWK);
    write("jwks", "issuer", issuer.jwks_json());
    write("jwks", "rsa", format!(r#"{{"keys":[{RFC7638_RSA_JWK}]}}"#));
    write(
        "jwks",
        "mixed",
        json!({"keys": [es256.public_jwk(), ed_jwk, {"kty": "oct", "use": "enc"}]}).to_string(),
    );

    // Header values and URIs.
    for (i, uri) in [
        "https://api.example.com/resource",
        "HTTPS://API.Example.COM:443/a/./b/../c%7e?x=1#frag",
        "http://[::1]:8080/%2F%41",
    ]
    .iter()
    .enumerate()
    {
        write("htu", &i.to_string(), uri);
    }
    write(
        "authorization",
        "dpop",
        format!("DPoP {}", issuer.sign(&dpop)),
    );
    write("authorization", "bearer", "Bearer mF_9.B5f-4.1JqM==");
    write("authorization", "other", "Basic dXNlcjpwYXNz");
    let der = Identity::localhost().der;
    write(
        "client_cert",
        "cert",
        format!(":{}:", STANDARD.encode(&der)),
    );
    write("client_cert", "short", ":MAMCAQE:");
    write("client_cert", "spaces", "  :MAMCAQE=:  ");
    write(
        "introspection",
        "dpop",
        json!({"active": true, "iss": bodies::ISSUER, "aud": bodies::AUDIENCE, "exp": bodies::NOW + 300,
            "scope": "read", "token_type": "DPoP", "cnf": {"jkt": es256.jkt()}})
        .to_string(),
    );
    write("introspection", "inactive", r#"{"active":false}"#);
    write(
        "introspection",
        "mtls",
        json!({"active": true, "aud": [bodies::AUDIENCE, "x"], "exp": bodies::NOW, "scp": ["a", "b"],
            "client_id": "c", "cnf": {"x5t#S256": Identity::localhost().x5t_s256()}})
        .to_string(),
    );
}
