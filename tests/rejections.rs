//! Checks that the docs/security.md review found without a test proving
//! they reject: duplicate JSON members, a `DPoP` header that is not text,
//! hosts that only look like the served one, and the caching headers of a
//! refusal.

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request};
use senderbound::Error;
use senderbound::replay::{ReplayError, ReplayKey, ReplayStore};
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_suite::harness::{HOST, Harness};
use tower::ServiceExt;

const NOW: u64 = 1_800_000_000;
const HTU: &str = "https://api.example.com/r";

/// A P-256 key that signs JOSE text exactly as given, so members can repeat.
struct TextSigner(p256::ecdsa::SigningKey);

impl TextSigner {
    fn new() -> Self {
        let secret: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"duplicate members").into();
        TextSigner(p256::ecdsa::SigningKey::from_bytes(&secret.into()).unwrap())
    }

    fn jwk(&self) -> String {
        let point = self.0.verifying_key().to_encoded_point(false);
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            b64(point.x().unwrap()),
            b64(point.y().unwrap())
        )
    }

    fn sign(&self, header: &str, claims: &str) -> String {
        use p256::ecdsa::signature::Signer;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature: p256::ecdsa::Signature = self.0.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

#[test]
fn duplicate_members_in_a_proof_are_refused() {
    let key = TextSigner::new();
    let jwk = key.jwk();
    let facts = RequestFacts {
        method: "GET",
        htu: HTU,
        access_token_hash: None,
        now: NOW,
    };
    let claims = format!(r#"{{"jti":"a","htm":"GET","htu":"{HTU}","iat":{NOW}}}"#);
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
    ProofPolicy::new()
        .verify(&key.sign(&header, &claims), &facts)
        .unwrap();
    // Which `alg` or `htu` would another parser have read? Neither: refused.
    let twice_alg = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":{jwk}}}"#);
    assert_eq!(
        ProofPolicy::new()
            .verify(&key.sign(&twice_alg, &claims), &facts)
            .unwrap_err(),
        Error::ProofMalformed
    );
    let twice_htu = format!(
        r#"{{"jti":"a","htm":"GET","htu":"https://evil.example/","htu":"{HTU}","iat":{NOW}}}"#
    );
    assert!(
        ProofPolicy::new()
            .verify(&key.sign(&header, &twice_htu), &facts)
            .is_err()
    );
}

#[tokio::test]
async fn a_dpop_header_that_is_not_text_is_malformed() {
    let h = Harness::new();
    let token = h.token();
    let req = Request::get("/api/read")
        .header("host", HOST)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", HeaderValue::from_bytes(b"ey\xff.a.b").unwrap())
        .body(Body::empty())
        .unwrap();
    h.call(req)
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofMalformed);
}

#[tokio::test]
async fn hosts_that_only_look_like_the_served_one_are_refused() {
    let h = Harness::new();
    let token = h.token();
    let auth = format!("DPoP {token}");
    let proof_for = |uri: &str| {
        h.client
            .proof("GET", uri)
            .unwrap()
            .access_token(&token)
            .issued_at(h.now())
            .sign()
    };
    for host in [
        "api.example.test.evil.example",
        "evil-api.example.test",
        "api.example.test:8443",
        "api.example.test@evil.example",
        "",
    ] {
        let proof = proof_for(&format!("https://{host}/api/read"));
        let r = h
            .send_headers(
                "GET",
                "/api/read",
                &[("host", host), ("authorization", &auth), ("dpop", &proof)],
            )
            .await;
        assert_eq!(r.status, 400, "{host}: {r:?}");
        assert_eq!(
            r.error().as_deref(),
            Some("invalid_request"),
            "{host}: {r:?}"
        );
    }
    // Two Host fields: which one did the proof name? Refused.
    let proof = h.proof("GET", "/api/read", &token);
    let r = h
        .send_headers(
            "GET",
            "/api/read",
            &[
                ("host", HOST),
                ("host", HOST),
                ("authorization", &auth),
                ("dpop", &proof),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.error().as_deref(), Some("invalid_request"), "{r:?}");
    // Forwarding headers do not change the URI the proof is checked against.
    let proof = proof_for("https://evil.example/api/read");
    let r = h
        .send_headers(
            "GET",
            "/api/read",
            &[
                ("host", HOST),
                ("x-forwarded-host", "evil.example"),
                ("forwarded", "host=evil.example;proto=https"),
                ("authorization", &auth),
                ("dpop", &proof),
            ],
        )
        .await;
    r.assert_refused(401, "invalid_dpop_proof", Error::ProofUriMismatch);
}

struct DownStore;

impl ReplayStore for DownStore {
    async fn check_and_insert(
        &self,
        _: ReplayKey,
        _: std::time::Duration,
    ) -> Result<(), ReplayError> {
        Err(ReplayError::Unavailable)
    }
}

#[tokio::test]
async fn refusals_are_never_cached_and_503_says_when_to_retry() {
    let h = Harness::new();
    let response = h
        .app
        .clone()
        .oneshot(
            Request::get("/api/read")
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["cache-control"], "no-store");

    let h = Harness::with(|b| b.replay_store(DownStore));
    let token = h.token();
    let response = h
        .app
        .clone()
        .oneshot(
            Request::get("/api/read")
                .header("host", HOST)
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", h.proof("GET", "/api/read", &token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(response.headers().contains_key("retry-after"));
}

/// Token-side twins of proof checks: duplicate members, an algorithm the
/// configuration narrowed away, and a header `alg` that does not fit the
/// `kid`'s key.
#[test]
fn access_tokens_with_duplicate_members_narrowed_algs_or_misfitting_kids_are_refused() {
    use senderbound_core::alg::Algorithm;
    use senderbound_core::jwk::{JwkSet, PublicJwk};
    use senderbound_core::token::TokenRules;

    let signer = TextSigner::new();
    let mut jwk: serde_json::Value = serde_json::from_str(&signer.jwk()).unwrap();
    jwk["kid"] = "k1".into();
    let keys = JwkSet::from_keys([PublicJwk::from_value(&jwk).unwrap()]);
    let rules = TokenRules::new(["https://as.example"], ["https://api.example"]);
    let header = r#"{"typ":"at+jwt","alg":"ES256","kid":"k1"}"#;
    let claims = r#"{"iss":"https://as.example","aud":"https://api.example","exp":1900000000}"#;
    rules
        .verify_jwt(&signer.sign(header, claims), &keys)
        .unwrap();
    let twice_aud = r#"{"iss":"https://as.example","aud":"https://api.example","aud":"https://evil.example","exp":1900000000}"#;
    assert!(
        rules
            .verify_jwt(&signer.sign(header, twice_aud), &keys)
            .is_err()
    );
    let twice_kid = r#"{"typ":"at+jwt","alg":"ES256","kid":"k1","kid":"k2"}"#;
    assert_eq!(
        rules
            .verify_jwt(&signer.sign(twice_kid, claims), &keys)
            .unwrap_err(),
        Error::TokenMalformed
    );
    let eddsa_only = TokenRules::new(["https://as.example"], ["https://api.example"])
        .algorithms([Algorithm::EdDSA]);
    assert_eq!(
        eddsa_only
            .verify_jwt(&signer.sign(header, claims), &keys)
            .unwrap_err(),
        Error::TokenAlgorithm
    );
    let es384 = r#"{"typ":"at+jwt","alg":"ES384","kid":"k1"}"#;
    assert_eq!(
        rules
            .verify_jwt(&signer.sign(es384, claims), &keys)
            .unwrap_err(),
        Error::TokenUnknownKey
    );
}

#[tokio::test]
async fn require_scope_any_refuses_a_token_with_none_of_the_scopes() {
    use axum::routing::get;
    use senderbound::RequireScopeLayer;

    let routes = axum::Router::new().route(
        "/any",
        get(|| async { "ok" }).route_layer(RequireScopeLayer::any(["admin", "write"])),
    );
    let h = Harness::with_routes(routes, |b| b);
    h.get_with("/any", &h.token()).await.assert_refused(
        403,
        "insufficient_scope",
        Error::InsufficientScope,
    );
    let mut claims = h.claims();
    claims["scope"] = "read write".into();
    let r = h.get_with("/any", &h.issuer.sign(&claims)).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// Through the Layer: a proof whose header is a JSON array (serde would fill
/// the header from it by position) and a token whose `cnf` is one.
#[tokio::test]
async fn json_arrays_in_place_of_objects_are_refused_through_the_layer() {
    let h = Harness::new();
    let token = h.token();
    let claims = serde_json::json!({"jti": "a", "htm": "GET",
        "htu": format!("https://{HOST}/api/read"), "iat": h.now(),
        "ath": URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(&token))});
    let array_header = serde_json::json!(["dpop+jwt", "ES256", h.client.public_jwk(), false]);
    let proof = h.client.sign_compact(&array_header, &claims);
    h.send(
        "GET",
        "/api/read",
        Some(&format!("DPoP {token}")),
        Some(&proof),
    )
    .await
    .assert_refused(401, "invalid_dpop_proof", Error::ProofMalformed);

    let mut token_claims = h.claims();
    token_claims["cnf"] = serde_json::json!([h.client.jkt()]);
    let array_cnf = h.issuer.sign(&token_claims);
    h.get_with("/api/read", &array_cnf).await.assert_refused(
        401,
        "invalid_token",
        Error::TokenMissingClaim,
    );
}
