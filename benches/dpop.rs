//! What a DPoP request costs, against its floor: the one signature
//! verification of the proof, done directly with the compiled-in backend.
//!
//! ```text
//! cargo bench --bench dpop                                               # aws-lc-rs
//! cargo bench --bench dpop --no-default-features --features rust-crypto  # pure Rust
//! ```
//!
//! For each proof algorithm (ES256, EdDSA, RS256), in the same process and
//! on fresh proofs (each signed in criterion's untimed setup, so every
//! variant starts with the same cold caches):
//! - `floor`: the bare verification of the proof's signature with the
//!   build's backend, its public key parsed once;
//! - `core_proof_check`: `ProofPolicy::verify`, every stateless RFC 9449
//!   §4.3 check, signature included;
//! - `layer_cached_token`: the whole Layer around a trivial handler
//!   (`tower::ServiceExt::oneshot`), the token verified and cached by an
//!   earlier request, the default (compact) replay store.
//!
//! For ES256 also: the Layer with the moka store, with the Redis store
//! (when `redis-server` is installed: a private one is started), with a
//! store that remembers nothing (attribution only), with a new token on
//! every request (nothing cached: two verifications), and the router alone.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use senderbound::replay::{MemoryReplayStore, ReplayStore};
use senderbound::{SenderBoundBuilder, SenderBoundLayer};
use senderbound_core::htu;
use senderbound_core::proof::{ProofPolicy, RequestFacts};
use senderbound_suite::TestIssuer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const ISSUER: &str = "https://as.example.test";
const AUDIENCE: &str = "https://api.example.test";
const URL: &str = "https://api.example.test/r";

fn now() -> u64 {
    senderbound::clock::Clock::now(&senderbound::clock::SystemClock)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

type Verify = Box<dyn Fn(&[u8], &[u8]) -> bool>;
type Sign = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// A client key of one algorithm (signed with aws-lc-rs: signing is setup,
/// never timed), and the floor: its public key parsed once by the build's
/// backend.
struct ClientKey {
    alg: &'static str,
    jwk: Value,
    jkt: String,
    sign: Sign,
    floor: Verify,
}

impl ClientKey {
    fn es256() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256",
            "x": b64(&point[1..33]), "y": b64(&point[33..])});
        let rng = aws_lc_rs::rand::SystemRandom::new();
        Self::new(
            "ES256",
            jwk,
            Box::new(move |m| pair.sign(&rng, m).unwrap().as_ref().to_vec()),
            floor::es256(&point),
        )
    }

    fn eddsa() -> Self {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        let pair = Ed25519KeyPair::generate().unwrap();
        let public = pair.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&public)});
        Self::new(
            "EdDSA",
            jwk,
            Box::new(move |m| pair.sign(m).as_ref().to_vec()),
            floor::eddsa(&public),
        )
    }

    fn rs256() -> Self {
        use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
        use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let components: PublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let jwk = json!({"kty": "RSA", "n": b64(&components.n), "e": b64(&components.e)});
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let floor = floor::rs256(&components.n, &components.e);
        Self::new(
            "RS256",
            jwk,
            Box::new(move |m| {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, m, &mut signature)
                    .unwrap();
                signature
            }),
            floor,
        )
    }

    fn new(alg: &'static str, jwk: Value, sign: Sign, floor: Verify) -> Self {
        let jkt = senderbound_core::jwk::PublicJwk::from_json(&jwk.to_string())
            .unwrap()
            .thumbprint()
            .to_owned();
        ClientKey {
            alg,
            jwk,
            jkt,
            sign,
            floor,
        }
    }

    /// A fresh proof for `GET URL` with `token`.
    fn proof(&self, token: &str) -> String {
        self.proof_for("GET", URL, token)
    }

    /// A fresh proof for `htm` `htu` with `token`.
    fn proof_for(&self, htm: &str, htu: &str, token: &str) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk});
        let claims = json!({"jti": senderbound_client::random_jti(), "htm": htm,
            "htu": htu, "iat": now(), "ath": b64(Sha256::digest(token))});
        let mut jws = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = (self.sign)(jws.as_bytes());
        jws.push('.');
        jws.push_str(&b64(signature));
        jws
    }
}

/// The signing input and raw signature of a compact JWS.
fn split(jws: &str) -> (Vec<u8>, Vec<u8>) {
    let dot = jws.rfind('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(&jws[dot + 1..]).unwrap();
    (jws.as_bytes()[..dot].to_vec(), signature)
}

/// The floors: one verification with the build's backend, key parsed once.
#[cfg(feature = "aws-lc-rs")]
mod floor {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
        RsaPublicKeyComponents,
    };

    use super::Verify;

    fn parsed(key: ParsedPublicKey) -> Verify {
        Box::new(move |m, s| key.verify_sig(m, s).is_ok())
    }

    pub fn es256(point: &[u8]) -> Verify {
        parsed(ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).unwrap())
    }

    pub fn eddsa(public: &[u8]) -> Verify {
        parsed(ParsedPublicKey::new(&ED25519, public).unwrap())
    }

    pub fn rs256(n: &[u8], e: &[u8]) -> Verify {
        let components = RsaPublicKeyComponents { n, e };
        parsed(
            components
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .unwrap(),
        )
    }
}

#[cfg(not(feature = "aws-lc-rs"))]
mod floor {
    use ed25519_dalek::Verifier as _;
    use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
    use sha2::{Digest as _, Sha256};

    use super::Verify;

    pub fn es256(point: &[u8]) -> Verify {
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap();
        Box::new(move |m, s| {
            p256::ecdsa::Signature::from_slice(s).is_ok_and(|s| key.verify(m, &s).is_ok())
        })
    }

    /// Strict, as the Layer verifies Ed25519 on this backend
    /// (`verify_strict`: no small-order points): the verification it
    /// cannot avoid.
    pub fn eddsa(public: &[u8]) -> Verify {
        let key = ed25519_dalek::VerifyingKey::from_bytes(public.try_into().unwrap()).unwrap();
        Box::new(move |m, s| {
            ed25519_dalek::Signature::from_slice(s).is_ok_and(|s| key.verify_strict(m, &s).is_ok())
        })
    }

    pub fn rs256(n: &[u8], e: &[u8]) -> Verify {
        let key = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).unwrap();
        Box::new(move |m, s| {
            key.verify(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(m), s)
                .is_ok()
        })
    }
}

/// A replay store that remembers nothing: for attributing cost only.
struct Forgetful;

impl ReplayStore for Forgetful {
    async fn check_and_insert(
        &self,
        _: senderbound::replay::ReplayKey,
        _: std::time::Duration,
    ) -> Result<(), senderbound::replay::ReplayError> {
        Ok(())
    }
}

/// Puts a replay store into a configuration (the default when `None`).
type WithStore = Box<dyn Fn(SenderBoundBuilder) -> SenderBoundBuilder>;

fn with_store(store: impl ReplayStore) -> Option<WithStore> {
    let store = Arc::new(store);
    Some(Box::new(move |b| b.replay_store(store.clone())))
}

fn layer(issuer: &TestIssuer, store: Option<WithStore>) -> Router {
    let mut builder = SenderBoundLayer::builder()
        .trust(issuer.trust())
        .audience(AUDIENCE)
        .origin("https://api.example.test");
    if let Some(store) = store {
        builder = store(builder);
    }
    Router::new()
        .route("/r", get(|| async { "ok" }))
        .layer(builder.build().unwrap())
}

fn request(token: &str, proof: String) -> Request<Body> {
    Request::get("/r")
        .header("host", "api.example.test")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap()
}

fn dpop(c: &mut Criterion) {
    let backend = senderbound_core::backend_name();
    let issuer = TestIssuer::new(ISSUER);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let policy = ProofPolicy::new();
    let target = htu::normalize(URL).unwrap();

    for key in [ClientKey::es256(), ClientKey::eddsa(), ClientKey::rs256()] {
        let token = issuer.sign(&issuer.claims(AUDIENCE, Some(&key.jkt), "read", now()));
        let hash = senderbound_core::token_hash(&token);
        let mut group = c.benchmark_group(format!("{}/{backend}", key.alg));

        let (message, signature) = split(&key.proof(&token));
        assert!((key.floor)(&message, &signature));
        group.bench_function("floor", |b| {
            b.iter_batched(
                || split(&key.proof(&token)),
                |(message, signature)| (key.floor)(&message, &signature),
                BatchSize::SmallInput,
            )
        });

        group.bench_function("core_proof_check", |b| {
            b.iter_batched(
                || key.proof(&token),
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

        // The Layer, the token cached by a first request: with the default
        // store; for ES256 also with the others.
        let mut stores: Vec<(&str, Option<WithStore>)> = vec![("layer_cached_token", None)];
        let _redis = if key.alg == "ES256" {
            stores.push((
                "layer_cached_token_moka_store",
                with_store(MemoryReplayStore::new(20_000_000)),
            ));
            stores.push((
                "layer_cached_token_store_remembering_nothing",
                with_store(Forgetful),
            ));
            let (servers, redis) = redis_stores(&runtime);
            for (name, store) in redis {
                stores.push((name, with_store(store)));
            }
            Some(servers)
        } else {
            None
        };
        for (name, store) in stores {
            let app = layer(&issuer, store);
            let warm = runtime
                .block_on(app.clone().oneshot(request(&token, key.proof(&token))))
                .unwrap();
            assert_eq!(warm.status(), 200);
            group.bench_function(name, |b| {
                b.iter_batched(
                    || request(&token, key.proof(&token)),
                    |req| {
                        let response = runtime.block_on(app.clone().oneshot(req)).unwrap();
                        assert_eq!(response.status(), 200);
                        response
                    },
                    BatchSize::SmallInput,
                )
            });
        }

        if key.alg == "ES256" {
            // Nothing cached: a token never seen before on every request,
            // so its signature is verified too (two verifications).
            let app = layer(&issuer, None);
            group.bench_function("layer_new_token_each_request", |b| {
                b.iter_batched(
                    || {
                        let mut claims = issuer.claims(AUDIENCE, Some(&key.jkt), "read", now());
                        claims["jti"] = json!(senderbound_client::random_jti());
                        let token = issuer.sign(&claims);
                        request(&token, key.proof(&token))
                    },
                    |req| {
                        let response = runtime.block_on(app.clone().oneshot(req)).unwrap();
                        assert_eq!(response.status(), 200);
                        response
                    },
                    BatchSize::SmallInput,
                )
            });

            // For attribution: the same router and request without the Layer.
            let bare: Router = Router::new().route("/r", get(|| async { "ok" }));
            group.bench_function("router_without_layer", |b| {
                b.iter_batched(
                    || request(&token, key.proof(&token)),
                    |req| runtime.block_on(bare.clone().oneshot(req)).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

/// Where a cached-token request's time goes, stage by stage, each timed
/// alone on the same inputs as `layer_cached_token` (ES256): the public
/// pieces the Layer is made of. What is not here (the token cache lookup,
/// the `Sender`, the audit record, the extensions, axum's routing) is the
/// Layer's total minus these, in docs/benchmarks.md.
fn stages(c: &mut Criterion) {
    use senderbound_core::jws::CompactJws;
    use senderbound_core::replay::ReplayKey;
    use senderbound_core::token::Binding;

    let backend = senderbound_core::backend_name();
    let issuer = TestIssuer::new(ISSUER);
    let key = ClientKey::es256();
    let token = issuer.sign(&issuer.claims(AUDIENCE, Some(&key.jkt), "read", now()));
    let proof = key.proof(&token);
    let authorization = format!("DPoP {token}");
    let binding = Binding::Dpop {
        jkt: key.jkt.clone(),
    };
    let store = senderbound::replay::CompactReplayStore::new(2_000_000);
    let mut group = c.benchmark_group(format!("stages/{backend}"));
    group.bench_function("credentials", |b| {
        b.iter(|| {
            senderbound_core::authorization::parse(std::hint::black_box(authorization.as_bytes()))
                .is_ok()
        })
    });
    group.bench_function("htu", |b| {
        b.iter(|| {
            let path = std::hint::black_box("/r");
            assert!(htu::is_normalized_path(path) && htu::is_plain_path(path));
            let mut uri = String::with_capacity(32);
            uri.push_str("https://api.example.test");
            uri.push_str(path);
            uri
        })
    });
    group.bench_function("jws_parse", |b| {
        b.iter(|| CompactJws::parse(std::hint::black_box(&proof)).is_ok())
    });
    group.bench_function("token_hash", |b| {
        b.iter(|| senderbound_core::token_hash(std::hint::black_box(&token)))
    });
    group.bench_function("binding", |b| {
        b.iter(|| binding.check_dpop(std::hint::black_box(&key.jkt)).is_ok())
    });
    let ttl = std::time::Duration::from_secs(61);
    group.bench_function("replay_key_and_insert", |b| {
        b.iter_batched(
            senderbound_client::random_jti,
            |jti| {
                let replay = ReplayKey::new(&key.jkt, &jti);
                store.check_and_insert_at_once(replay, ttl)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Named replay stores, one per Redis deployment.
type RedisStores = Vec<(&'static str, senderbound_redis::RedisReplayStore)>;

/// Private Redis deployments and a store on each, if `redis-server` (and,
/// for the cluster, `redis-cli`) is installed: one node, a cluster of
/// three primaries and three replicas, a Sentinel group (one primary, one
/// replica), and that group with each record acknowledged by the replica
/// (`WAIT`). The servers live as long as the first value.
fn redis_stores(runtime: &tokio::runtime::Runtime) -> (Vec<Box<dyn std::any::Any>>, RedisStores) {
    use senderbound_redis::{Deployment, Durability, RedisReplayStore};
    use senderbound_suite::redis_server::{
        RedisCluster, RedisServer, SENTINEL_SERVICE, SentinelGroup,
    };
    let installed = |program: &str| {
        std::process::Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !installed("redis-server") {
        eprintln!("redis-server is not installed: skipping the Redis stores");
        return (Vec::new(), Vec::new());
    }
    let _enter = runtime.enter();
    // New, empty deployments: no pause for the data-loss guard.
    let store = |deployment: Deployment, durability: Durability| {
        RedisReplayStore::builder(deployment)
            .restart_guard(std::time::Duration::ZERO)
            .durability(durability)
            .build()
            .unwrap()
    };
    let single = RedisServer::start();
    let group = SentinelGroup::start();
    let sentinel = || Deployment::sentinel(group.sentinel_urls(), SENTINEL_SERVICE);
    let mut stores = vec![
        (
            "layer_cached_token_redis_store",
            store(single.url().into(), Durability::Primary),
        ),
        (
            "layer_cached_token_redis_sentinel",
            store(sentinel(), Durability::Primary),
        ),
        (
            "layer_cached_token_redis_sentinel_wait_1_replica",
            store(
                sentinel(),
                Durability::Replicas {
                    count: 1,
                    timeout: std::time::Duration::from_millis(100),
                },
            ),
        ),
    ];
    let mut servers: Vec<Box<dyn std::any::Any>> = vec![Box::new(single), Box::new(group)];
    if installed("redis-cli") {
        let cluster = RedisCluster::start();
        stores.push((
            "layer_cached_token_redis_cluster",
            store(Deployment::cluster(cluster.urls()), Durability::Primary),
        ));
        servers.push(Box::new(cluster));
    } else {
        eprintln!("redis-cli is not installed: skipping the Redis Cluster store");
    }
    (servers, stores)
}

/// The comparisons of secrets and bindings take the same time whether the
/// values differ in their first byte, their last, or not at all
/// (`subtle::ConstantTimeEq`): `cnf.jkt` against the proof key's
/// thumbprint, and a server nonce's HMAC tag. docs/security.md reports the
/// figures.
fn constant_time(c: &mut Criterion) {
    use senderbound_core::nonce::Nonces;
    use senderbound_core::token::Binding;

    let mut group = c.benchmark_group("constant_time");
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let binding = Binding::Dpop {
        jkt: jkt.to_owned(),
    };
    let first = format!("X{}", &jkt[1..]);
    let last = format!("{}X", &jkt[..42]);
    for (name, candidate) in [
        ("equal", jkt),
        ("first_differs", &first),
        ("last_differs", &last),
    ] {
        group.bench_function(format!("jkt/{name}"), |b| {
            b.iter(|| binding.check_dpop(std::hint::black_box(candidate)).is_ok())
        });
    }
    let nonces = Nonces::new(&[7; 32]).unwrap();
    let nonce = nonces.issue(1_800_000_000);
    let flip = |at: usize| {
        let mut bytes = nonce.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    // The tag follows the 8-byte step: characters 11.. of the nonce.
    let (tag_first, tag_last) = (flip(11), flip(nonce.len() - 2));
    for (name, candidate) in [
        ("equal", &nonce),
        ("tag_first_differs", &tag_first),
        ("tag_last_differs", &tag_last),
    ] {
        group.bench_function(format!("nonce/{name}"), |b| {
            b.iter(|| {
                nonces
                    .check(Some(std::hint::black_box(candidate)), 1_800_000_000)
                    .is_ok()
            })
        });
    }
    group.finish();
}

/// A gRPC call (tonic's health `Check`, in process) through the Layer and
/// the per-method scope, against the same call to tonic's router alone.
fn grpc(c: &mut Criterion) {
    use http_body_util::BodyExt;
    const CHECK: &str = "https://api.example.test/grpc.health.v1.Health/Check";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = TestIssuer::new(ISSUER);
    let key = ClientKey::es256();
    let token = issuer.sign(&issuer.claims(AUDIENCE, Some(&key.jkt), "health", now()));
    let protected = senderbound_suite::grpc::routes().layer(
        SenderBoundLayer::builder()
            .trust(issuer.trust())
            .audience(AUDIENCE)
            .origin("https://api.example.test")
            .build()
            .unwrap(),
    );
    let (_reporter, health) = tonic_health::server::health_reporter();
    let bare = tonic::service::Routes::new(health).into_axum_router();
    // An empty HealthCheckRequest, gRPC-framed: not compressed, length 0.
    let call = |credentials: Option<(&str, String)>| {
        let mut request = Request::post("/grpc.health.v1.Health/Check")
            .header("host", "api.example.test")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some((token, proof)) = credentials {
            request = request
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof);
        }
        request.body(Body::from(vec![0u8; 5])).unwrap()
    };
    // Served, to the last trailer (grpc-status 0).
    let serve = |app: &Router, request: Request<Body>| {
        runtime.block_on(async {
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers().get("grpc-status").is_none(), "refused");
            let collected = response.into_body().collect().await.unwrap();
            let trailers = collected.trailers().cloned().unwrap_or_default();
            assert_eq!(
                trailers.get("grpc-status").map(|v| v.as_bytes()),
                Some(&b"0"[..])
            );
        })
    };
    let backend = senderbound_core::backend_name();
    let mut group = c.benchmark_group(format!("grpc/{backend}"));
    serve(
        &protected,
        call(Some((&token, key.proof_for("POST", CHECK, &token)))),
    );
    group.bench_function("health_check_through_layer", |b| {
        b.iter_batched(
            || call(Some((&token, key.proof_for("POST", CHECK, &token)))),
            |request| serve(&protected, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("health_check_without_layer", |b| {
        b.iter_batched(
            || call(None),
            |request| serve(&bare, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("floor", |b| {
        b.iter_batched(
            || split(&key.proof_for("POST", CHECK, &token)),
            |(message, signature)| (key.floor)(&message, &signature),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, dpop, stages, grpc, constant_time);
criterion_main!(benches);
