//! Server nonces (RFC 9449 §8–9): stateless HMAC nonces that any server
//! sharing the secret accepts, the `use_dpop_nonce` challenge with a fresh
//! `DPoP-Nonce`, rotation, and the client's retry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use senderbound::Error;
use senderbound::Origin;
use senderbound::proof::{Nonces, ProofRules};
use senderbound::tokens::Issuer;
use senderbound_client::{DpopKey, DpopSession};
use senderbound_suite::TestIssuer;
use senderbound_suite::harness::{AUDIENCE, HOST, Harness, ISSUER, Reply, routes};
use serde_json::json;

const SECRET: &[u8] = b"fleet nonce secret, 32 bytes+ (test)";
const OTHER: &[u8] = b"another nonce secret, 32 bytes+ (test)";

fn with_nonces(secret: &[u8]) -> Harness {
    let nonces = Nonces::new(secret).unwrap();
    Harness::with(|b| b.nonces(nonces))
}

/// A DPoP request to `GET /whoami` whose proof carries `nonce`.
async fn call(h: &Harness, token: &str, nonce: Option<&str>) -> Reply {
    let mut proof = h
        .client
        .proof("GET", &format!("https://{HOST}/whoami"))
        .unwrap()
        .access_token(token)
        .issued_at(h.now());
    if let Some(nonce) = nonce {
        proof = proof.nonce(nonce);
    }
    let auth = format!("DPoP {token}");
    h.send("GET", "/whoami", Some(&auth), Some(&proof.sign()))
        .await
}

#[tokio::test]
async fn a_proof_without_a_nonce_gets_use_dpop_nonce_with_a_fresh_one() {
    let h = with_nonces(SECRET);
    let token = h.token();
    let r = call(&h, &token, None).await;
    r.assert_refused(401, "use_dpop_nonce", Error::NonceMissing);
    assert!(
        r.challenges[0].starts_with("DPoP error=\"use_dpop_nonce\""),
        "{r:?}"
    );
    let nonce = r.dpop_nonce.clone().expect("a DPoP-Nonce header");
    // The retry with that nonce passes, and needs no new nonce yet.
    let r = call(&h, &token, Some(&nonce)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.dpop_nonce, None);
    // Nonces do not replace replay protection.
    let proof = h.proof_with_nonce("GET", "/whoami", &token, &nonce);
    let auth = format!("DPoP {token}");
    assert_eq!(
        h.send("GET", "/whoami", Some(&auth), Some(&proof))
            .await
            .status,
        200
    );
    h.send("GET", "/whoami", Some(&auth), Some(&proof))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
}

#[tokio::test]
async fn forged_expired_and_non_string_nonces_are_refused() {
    let h = with_nonces(SECRET);
    let token = h.token();
    // Forged: made with another secret.
    let forged = Nonces::new(OTHER).unwrap().issue(h.now());
    let r = call(&h, &token, Some(&forged)).await;
    r.assert_refused(401, "use_dpop_nonce", Error::NonceInvalid);
    assert!(r.dpop_nonce.is_some());
    // Garbage.
    let r = call(&h, &token, Some("not-a-nonce")).await;
    r.assert_refused(401, "use_dpop_nonce", Error::NonceInvalid);
    // Expired: three 60 s steps later (the token lives 5 minutes).
    let nonce = Nonces::new(SECRET).unwrap().issue(h.now());
    h.clock.advance(180);
    let r = call(&h, &token, Some(&nonce)).await;
    r.assert_refused(401, "use_dpop_nonce", Error::NonceExpired);
    // Not a string: a malformed proof, not a nonce to replace.
    let mut claims = h
        .client
        .proof("GET", &format!("https://{HOST}/whoami"))
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .claims();
    claims["nonce"] = json!(12345);
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": h.client.public_jwk()});
    let proof = h.client.sign_compact(&header, &claims);
    let auth = format!("DPoP {token}");
    let r = h.send("GET", "/whoami", Some(&auth), Some(&proof)).await;
    r.assert_refused(401, "invalid_dpop_proof", Error::ProofMissingClaim);
    // Every refusal carries a fresh nonce while nonces are required (RFC
    // 9449 §8: "on any response"): a client that retries any DPoP 401 with
    // the nonce it got (requests-oauth2client does) finds one.
    assert!(r.dpop_nonce.is_some(), "{r:?}");
    for r in [
        h.send("GET", "/whoami", None, None).await,
        h.send("GET", "/whoami", Some("DPoP not.a.token"), Some(&proof))
            .await,
    ] {
        assert_eq!(r.status, 401, "{r:?}");
        assert!(r.dpop_nonce.is_some(), "{r:?}");
    }
    // Without nonces, none.
    let plain = Harness::new();
    assert_eq!(
        plain.send("GET", "/whoami", None, None).await.dpop_nonce,
        None
    );
}

#[tokio::test]
async fn an_aging_nonce_is_accepted_and_replaced_in_the_response() {
    let h = with_nonces(SECRET);
    let token = h.token();
    let nonce = Nonces::new(SECRET).unwrap().issue(h.now());
    h.clock.advance(61);
    let r = call(&h, &token, Some(&nonce)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let next = r.dpop_nonce.expect("the next nonce in the response");
    assert_ne!(next, nonce);
    // The next one is current: no further nonce is handed out.
    let r = call(&h, &token, Some(&next)).await;
    assert_eq!((r.status, r.dpop_nonce), (200, None));
}

#[tokio::test]
async fn any_server_with_the_secret_accepts_another_servers_nonce() {
    let issuer = TestIssuer::new(ISSUER);
    let server = |secret: &[u8], previous: Option<&[u8]>| {
        let mut nonces = Nonces::new(secret).unwrap();
        if let Some(previous) = previous {
            nonces = nonces.previous_secret(previous).unwrap();
        }
        let jwks = issuer.jwks_json();
        Harness::with_issuer(issuer.clone(), |b| {
            b.trust(Issuer::new(ISSUER).keys(jwks)).nonces(nonces)
        })
    };
    let (a, b) = (server(SECRET, None), server(SECRET, None));
    // Same client key on both, so one token works on both.
    let b = Harness {
        client: a.client.clone(),
        ..b
    };
    let token = a.token();
    let nonce = call(&a, &token, None).await.dpop_nonce.unwrap();
    assert_eq!(call(&b, &token, Some(&nonce)).await.status, 200);

    // Rotation: the new secret is current, the old one previous: nonces
    // from servers not yet rotated still pass; once the old secret is
    // dropped they do not.
    let rotated = Harness {
        client: a.client.clone(),
        ..server(OTHER, Some(SECRET))
    };
    assert_eq!(call(&rotated, &token, Some(&nonce)).await.status, 200);
    let new_nonce = call(&rotated, &token, None).await.dpop_nonce.unwrap();
    let dropped = Harness {
        client: a.client.clone(),
        ..server(OTHER, None)
    };
    call(&dropped, &token, Some(&nonce)).await.assert_refused(
        401,
        "use_dpop_nonce",
        Error::NonceInvalid,
    );
    assert_eq!(call(&dropped, &token, Some(&new_nonce)).await.status, 200);
    // A server still on the old secret alone refuses the new nonces.
    call(&a, &token, Some(&new_nonce)).await.assert_refused(
        401,
        "use_dpop_nonce",
        Error::NonceInvalid,
    );
}

#[tokio::test]
async fn freshness_can_rest_on_the_nonce() {
    let nonces = || Nonces::new(SECRET).unwrap();
    let strict = with_nonces(SECRET);
    let relaxed = {
        let n = nonces();
        Harness::with(|b| b.nonces(n).proofs(ProofRules::new().freshness_from_nonce()))
    };
    for (h, expected) in [(&strict, 401), (&relaxed, 200)] {
        let token = h.token();
        // A proof made 120 s ago with a nonce from then: past the 60 s iat
        // window, inside the nonce's 180 s.
        let nonce = nonces().issue(h.now());
        let made = h.now();
        h.clock.advance(120);
        let proof = h
            .client
            .proof("GET", &format!("https://{HOST}/whoami"))
            .unwrap()
            .access_token(&token)
            .issued_at(made)
            .nonce(&nonce)
            .sign();
        let auth = format!("DPoP {token}");
        let r = h.send("GET", "/whoami", Some(&auth), Some(&proof)).await;
        assert_eq!(r.status, expected, "{r:?}");
        if expected == 401 {
            r.assert_refused(401, "invalid_dpop_proof", Error::ProofExpired);
        }
    }
    let e = senderbound::SenderBoundLayer::builder()
        .trust(Issuer::new(ISSUER).keys(TestIssuer::new(ISSUER).jwks_json()))
        .audience(AUDIENCE)
        .origin(Origin::hosts([HOST]))
        .proofs(ProofRules::new().freshness_from_nonce())
        .build()
        .unwrap_err();
    assert_eq!(e, senderbound::BuildError::FreshnessWithoutNonce);
}

#[tokio::test]
async fn the_client_session_does_the_nonce_dance_over_http() {
    let issuer = TestIssuer::new(ISSUER);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let auth = senderbound::SenderBoundLayer::builder()
        .trust(Issuer::new(ISSUER).keys(issuer.jwks_json()))
        .audience(AUDIENCE)
        .origin(format!("http://{addr}"))
        .nonces(Nonces::new(SECRET).unwrap())
        .build()
        .unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let app = routes()
        .layer(auth.clone())
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let session = DpopSession::new(DpopKey::generate());
    let now = senderbound::clock::Clock::now(&senderbound::clock::SystemClock);
    let token = issuer.sign(&issuer.claims(AUDIENCE, Some(session.key().jkt()), "read", now));
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/whoami");

    // First call: 401 use_dpop_nonce, then the retry with the nonce.
    let r = session.send(http.get(&url), &token).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert!(session.nonce_for(&url).is_some());
    // Second call: the remembered nonce works at once.
    let r = session.send(http.get(&url), &token).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(requests.load(Ordering::SeqCst), 3);
    // A server that refuses for another reason is not retried.
    let r = session.send(http.get(&url), "not-a-token").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(requests.load(Ordering::SeqCst), 4);
}
