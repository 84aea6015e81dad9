//! The bodies of senderbound's fuzz targets, one function per target.
//!
//! Each body feeds the input to one parser or check of `senderbound-core`
//! and asserts what must hold whenever it accepts: a fuzz "crash" is a
//! panic anywhere (a bug: library code must answer every input with an
//! error) or a broken property (a security bug). The same functions run on
//! stable in `tests/fuzz_corpus.rs` over every committed corpus file and
//! regression, so a fixed crash stays fixed without nightly.
//!
//! Signed inputs (proofs and access tokens) come in two forms, so that
//! mutations reach the JSON inside as well as the compact form:
//! - the compact JWS as is, or
//! - `header JSON \n payload JSON \n signature bytes`, base64url-encoded
//!   and joined here (an input starting with `{`).
//!
//! Fixed facts: the seeds in `fuzz/corpus/` were signed for [`NOW`],
//! [`METHOD`], [`HTU`], [`ACCESS_TOKEN`], [`ISSUER`] and [`AUDIENCE`], with
//! the keys published in `fuzz/seeds/jwks.json`; `tests/fuzz_corpus.rs`
//! regenerates them (`cargo test --test fuzz_corpus -- --ignored`).

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use senderbound_core::authorization;
use senderbound_core::cert::client_cert_header;
use senderbound_core::htu;
use senderbound_core::jwk::{JwkSet, MAX_JWKS_KEYS, PublicJwk};
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_core::token::{AccessToken, TokenRules};
use sha2::{Digest, Sha256};

/// The clock every signed seed was made for.
pub const NOW: u64 = 1_800_000_000;
/// The request method proofs are checked against.
pub const METHOD: &str = "POST";
/// The request URI proofs are checked against.
pub const HTU: &str = "https://api.example.com/resource";
/// The access token whose hash proofs must carry in `ath`.
pub const ACCESS_TOKEN: &str = "fuzz-access-token";
/// The issuer access tokens must come from.
pub const ISSUER: &str = "https://as.example.com";
/// The audience access tokens must name.
pub const AUDIENCE: &str = "https://api.example.com/";

/// The issuer's public keys, for the access-token target.
pub const JWKS: &str = include_str!("../seeds/jwks.json");

/// The input as a compact JWS: as is, or built from its JSON parts.
pub fn compact(data: &[u8]) -> Option<String> {
    if data.first() != Some(&b'{') {
        return std::str::from_utf8(data).ok().map(str::to_owned);
    }
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let header = parts.next()?;
    let payload = parts.next()?;
    let signature = parts.next()?;
    Some(format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

fn is_thumbprint(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// DPoP header → proof parser and every stateless check (RFC 9449 §4.3).
///
/// Properties: the header cache never changes an outcome (a policy with the
/// cache, asked twice so the second time meets the header it just checked,
/// and one without agree on every input), and an accepted proof has
/// the thumbprint of its own key, a `jti` within bounds and an `iat`
/// inside the window.
pub fn dpop_proof(data: &[u8]) {
    static CACHED: OnceLock<ProofPolicy> = OnceLock::new();
    let Some(proof) = compact(data) else { return };
    let hash: [u8; 32] = Sha256::digest(ACCESS_TOKEN).into();
    let facts = RequestFacts {
        method: METHOD,
        htu: HTU,
        access_token_hash: Some(&hash),
        now: NOW,
    };
    let policy = CACHED.get_or_init(|| ProofPolicy::new().key_cache_capacity(64));
    let fresh = ProofPolicy::new()
        .key_cache_capacity(0)
        .verify(&proof, &facts);
    for cached in [policy.verify(&proof, &facts), policy.verify(&proof, &facts)] {
        match (&cached, &fresh) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.jkt(), b.jkt(), "the header cache changed the thumbprint");
                assert_eq!(a.alg(), b.alg(), "the header cache changed the algorithm");
                assert_eq!(a.jti(), b.jti());
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "the header cache changed the error"),
            _ => panic!("the header cache changed the outcome: {cached:?} / {fresh:?}"),
        }
    }
    if let Ok(p) = fresh {
        assert!(is_thumbprint(p.jkt()));
        assert_eq!(p.jkt(), p.jwk().thumbprint());
        assert!(!p.jti().is_empty() && p.jti().len() <= 256);
        assert!(p.iat() + 60 >= NOW && p.iat() <= NOW + 15);
        assert!(p.jwk().fits(p.alg()));
    }
}

/// JWT access tokens (RFC 9068) against a fixed key set: an accepted token
/// comes from the trusted issuer, names the audience, and its `cnf` (if
/// any) is well-formed.
pub fn access_token(data: &[u8]) {
    static KEYS: OnceLock<JwkSet> = OnceLock::new();
    let Some(token) = compact(data) else { return };
    let keys = KEYS.get_or_init(|| JwkSet::from_json(JWKS).unwrap_or_default());
    let rules = TokenRules::new([ISSUER], [AUDIENCE]);
    let _ = senderbound_core::token::unverified_issuer(&token);
    if let Ok(t) = rules.verify_jwt(&token, keys) {
        assert_eq!(t.issuer, ISSUER);
        assert!(t.audience.values().iter().any(|a| a == AUDIENCE));
        let _ = t.check_time(NOW, rules.time_leeway());
    }
}

/// One JWK and its RFC 7638 thumbprint: an accepted key's thumbprint is
/// well-formed and does not change when the members are written in
/// another order or other members are added.
pub fn jwk(data: &[u8]) {
    let Ok(key) = PublicJwk::from_slice(data) else {
        return;
    };
    assert!(is_thumbprint(key.thumbprint()));
    // serde_json's `Value` is stricter about numbers (1e999) than skipping
    // an unknown member is: such input has nothing to rewrite.
    let Ok(serde_json::Value::Object(members)) = serde_json::from_slice(data) else {
        return;
    };
    if members.contains_key("x-extra") {
        return;
    }
    // Reversed order and an extra member: same key, same thumbprint.
    let mut rewritten = String::from("{\"x-extra\":[1,{\"kty\":\"oct\"}]");
    for (name, value) in members.iter().rev() {
        rewritten.push(',');
        rewritten.push_str(&serde_json::Value::from(name.as_str()).to_string());
        rewritten.push(':');
        rewritten.push_str(&value.to_string());
    }
    rewritten.push('}');
    let again = PublicJwk::from_json(&rewritten)
        .unwrap_or_else(|e| panic!("the same key written differently was refused: {e:?}"));
    assert_eq!(again.thumbprint(), key.thumbprint());
    assert_eq!(again.key_type(), key.key_type());
}

/// JWKS documents: never more than [`MAX_JWKS_KEYS`] usable keys, each a
/// signing key with a well-formed thumbprint.
pub fn jwks(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = JwkSet::from_json(text) {
        assert!(set.keys().len() <= MAX_JWKS_KEYS);
        for key in set.keys() {
            assert!(key.key_use().is_none_or(|u| u == "sig"));
            assert!(is_thumbprint(key.thumbprint()));
        }
    }
}

/// `htu` normalisation: a normal form is a fixed point, has no query or
/// fragment, a lowercase scheme, and a path already in normal form; the
/// scheme's case never matters.
pub fn htu(data: &[u8]) {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normal) = htu::normalize(uri) else {
        return;
    };
    assert_eq!(htu::normalize(&normal).as_deref(), Ok(normal.as_str()));
    assert!(!normal.contains(['?', '#']));
    let rest = normal
        .strip_prefix("https://")
        .or_else(|| normal.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("normal form without an http(s) scheme"));
    let path = &rest[rest.find('/').unwrap_or(rest.len())..];
    assert!(path.starts_with('/'), "normal form without a path");
    assert!(htu::is_normalized_path(path), "path not in normal form");
    let colon = uri.find(':').unwrap_or(0);
    let shouted = format!("{}{}", uri[..colon].to_ascii_uppercase(), &uri[colon..]);
    assert_eq!(htu::normalize(&shouted).as_deref(), Ok(normal.as_str()));
}

/// `Authorization` header values: an accepted token is non-empty token68
/// taken from the value itself.
pub fn authorization(data: &[u8]) {
    let Ok(credentials) = authorization::parse(data) else {
        return;
    };
    let token = credentials.token.as_bytes();
    assert!(!token.is_empty());
    assert!(token.iter().all(|b| b.is_ascii_graphic()));
    assert!(data.windows(token.len()).any(|w| w == token));
    assert!(data.len() > token.len(), "a token without its scheme");
}

/// RFC 9440 `Client-Cert` values: an accepted value holds a DER SEQUENCE,
/// and writing it back in canonical form reads the same bytes.
pub fn client_cert(data: &[u8]) {
    let Ok(der) = client_cert_header(data) else {
        return;
    };
    assert!(der.len() >= 2 && der[0] == 0x30);
    let canonical = format!(":{}:", STANDARD.encode(&der));
    assert_eq!(
        client_cert_header(canonical.as_bytes()).as_deref(),
        Ok(&der[..])
    );
}

/// RFC 7662 introspection answers: an accepted answer said `"active":
/// true`, is for this issuer, and a DPoP token carries a key thumbprint.
pub fn introspection(data: &[u8]) {
    let Ok(token) = AccessToken::from_introspection(data, ISSUER) else {
        return;
    };
    assert_eq!(token.issuer, ISSUER);
    let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(data) else {
        panic!("an answer that is not a JSON object was accepted");
    };
    assert_eq!(answer.get("active"), Some(&serde_json::Value::Bool(true)));
    if let senderbound_core::token::Binding::Dpop { jkt } = &token.binding {
        assert!(!jkt.is_empty());
    }
}
