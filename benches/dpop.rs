//! What a DPoP request costs, against its floor: the one ES256 signature
//! verification of the proof, done directly with the compiled-in backend.
//!
//! ```text
//! cargo bench --bench dpop                                               # aws-lc-rs
//! cargo bench --bench dpop --no-default-features --features rust-crypto  # pure Rust
//! ```
//!
//! Each group runs, in the same process and on the same input:
//! - `floor`: the bare signature verification (key parsed once, as the
//!   backend allows);
//! - `core_proof_check`: `ProofPolicy::verify`, every stateless RFC 9449
//!   §4.3 check of the same proof, signature included;
//! - `layer_cached_token`: the whole Layer around a trivial handler
//!   (`tower::ServiceExt::oneshot`), the access token already verified and
//!   cached, the in-memory replay store; a fresh proof per request (signed
//!   in criterion's untimed setup);
//! - `router_without_layer`: the same router and request, unprotected (what
//!   axum itself costs, for attribution).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use senderbound::SenderBound;
use senderbound::core::htu;
use senderbound::core::proof::{ProofPolicy, RequestFacts};
use senderbound::replay::{CompactReplayStore, MemoryReplayStore, ReplayStore};
use senderbound_client::DpopKey;
use senderbound_suite::DemoIssuer;
use tower::ServiceExt;

const ISSUER: &str = "https://as.example.test";
const AUDIENCE: &str = "https://api.example.test";
const URL: &str = "https://api.example.test/r";

fn now() -> u64 {
    senderbound::Clock::now(&senderbound::SystemClock)
}

/// The signing input and raw signature of a compact JWS.
fn split(jws: &str) -> (Vec<u8>, Vec<u8>) {
    use base64::Engine as _;
    let dot = jws.rfind('.').unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&jws[dot + 1..])
        .unwrap();
    (jws.as_bytes()[..dot].to_vec(), signature)
}

/// The key's public point, uncompressed (`04 ‖ x ‖ y`).
fn public_point(key: &DpopKey) -> Vec<u8> {
    use base64::Engine as _;
    let jwk = key.public_jwk();
    let coordinate = |name: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().unwrap())
            .unwrap()
    };
    let mut point = vec![0x04];
    point.extend(coordinate("x"));
    point.extend(coordinate("y"));
    point
}

/// The floor: one ES256 verification with the backend the build uses.
#[cfg(feature = "aws-lc-rs")]
fn floor_verifier(point: Vec<u8>) -> impl Fn(&[u8], &[u8]) -> bool {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
    let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).unwrap();
    move |message: &[u8], signature: &[u8]| key.verify_sig(message, signature).is_ok()
}

#[cfg(not(feature = "aws-lc-rs"))]
fn floor_verifier(point: Vec<u8>) -> impl Fn(&[u8], &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::{Signature, VerifyingKey};
    let key = VerifyingKey::from_sec1_bytes(&point).unwrap();
    move |message: &[u8], signature: &[u8]| {
        Signature::from_slice(signature).is_ok_and(|s| key.verify(message, &s).is_ok())
    }
}

/// A replay store that remembers nothing: for attributing cost only.
struct Forgetful;

impl ReplayStore for Forgetful {
    fn check_and_insert<'a>(
        &'a self,
        _: senderbound::replay::ReplayKey,
        _: std::time::Duration,
    ) -> senderbound::replay::ReplayFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
}

fn es256(c: &mut Criterion) {
    let backend = senderbound::core::backend_name();
    let key = DpopKey::generate();
    let issuer = DemoIssuer::new(ISSUER);
    let claims = issuer.claims(AUDIENCE, Some(key.jkt()), "read", now());
    let token = issuer.sign(&claims);
    let hash = senderbound::core::token_hash(&token);

    let mut group = c.benchmark_group(format!("es256/{backend}"));

    // Floor and core on one proof (neither remembers it).
    let proof = key.proof("GET", URL).access_token(&token).sign();
    let (message, signature) = split(&proof);
    let floor = floor_verifier(public_point(&key));
    assert!(floor(&message, &signature));
    group.bench_function("floor", |b| {
        b.iter(|| std::hint::black_box(floor(&message, &signature)))
    });

    // The same on a fresh proof each time, signed in the untimed setup as
    // the Layer's are: signing between runs leaves caches cold, which costs
    // every variant alike, so ratios are taken between the fresh variants.
    group.bench_function("floor_fresh_proofs", |b| {
        b.iter_batched(
            || split(&key.proof("GET", URL).access_token(&token).sign()),
            |(message, signature)| floor(&message, &signature),
            BatchSize::SmallInput,
        )
    });

    let policy = ProofPolicy::new();
    let target = htu::normalize(URL).unwrap();
    group.bench_function("core_proof_check", |b| {
        b.iter(|| {
            let facts = RequestFacts {
                method: "GET",
                htu: &target,
                access_token_hash: Some(&hash),
                now: now(),
            };
            std::hint::black_box(policy.verify(&proof, &facts).unwrap())
        })
    });

    // The same check on a fresh proof each time (signed in the untimed
    // setup, like the Layer's): the fair comparison for the Layer.
    let fresh = || key.proof("GET", URL).access_token(&token).sign();
    group.bench_function("core_proof_check_fresh_proofs", |b| {
        b.iter_batched(
            fresh,
            |proof| {
                let facts = RequestFacts {
                    method: "GET",
                    htu: &target,
                    access_token_hash: Some(&hash),
                    now: now(),
                };
                policy.verify(&proof, &facts).unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    // The whole Layer, the token cached after the first request: with the
    // moka store, the compact store (the default), and, for attribution
    // only, a store that remembers nothing (never for production).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = Arc::new(key);
    let request = || {
        let proof = key.proof("GET", URL).access_token(&token).sign();
        Request::get("/r")
            .header("host", "api.example.test")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap()
    };
    let stores: [(&str, Arc<dyn ReplayStore>); 3] = [
        (
            "layer_cached_token",
            Arc::new(MemoryReplayStore::new(20_000_000)),
        ),
        (
            "layer_cached_token_compact_store",
            Arc::new(CompactReplayStore::new(20_000_000)),
        ),
        (
            "layer_cached_token_store_remembering_nothing",
            Arc::new(Forgetful),
        ),
    ];
    for (name, store) in stores {
        let auth = SenderBound::builder()
            .issuer(ISSUER)
            .jwks_json(issuer.jwks_json())
            .audience(AUDIENCE)
            .public_base_url("https://api.example.test")
            .replay_store(store)
            .build()
            .unwrap();
        let app: Router = Router::new()
            .route("/r", get(|| async { "ok" }))
            .layer(auth.layer());
        // The first request verifies and caches the token.
        let warm = runtime.block_on(app.clone().oneshot(request())).unwrap();
        assert_eq!(warm.status(), 200);
        group.bench_function(name, |b| {
            b.iter_batched(
                request,
                |req| {
                    let response = runtime.block_on(app.clone().oneshot(req)).unwrap();
                    assert_eq!(response.status(), 200);
                    response
                },
                BatchSize::SmallInput,
            )
        });
    }

    // For attribution: the same router and request without the Layer.
    let bare: Router = Router::new().route("/r", get(|| async { "ok" }));
    group.bench_function("router_without_layer", |b| {
        b.iter_batched(
            request,
            |req| runtime.block_on(bare.clone().oneshot(req)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, es256);
criterion_main!(benches);
