//! Heap allocations per admitted request: the Layer with a cached token
//! (ES256, default replay store), against the same router without the
//! Layer, counted by dhat's allocator (its own process: dhat's bookkeeping
//! would distort `benches/dpop.rs`'s timings).
//!
//! ```text
//! cargo bench --bench allocations
//! ```
//!
//! Requests (proofs included) are made before counting; each is sent with
//! `tower::ServiceExt::oneshot` and its response dropped. Prints, per
//! request, the allocations and bytes allocated.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use senderbound::{Sender, SenderBoundLayer};
use senderbound_client::DpopKey;
use senderbound_suite::TestIssuer;
use tower::ServiceExt;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const ISSUER: &str = "https://as.example.test";
const AUDIENCE: &str = "https://api.example.test";
const REQUESTS: u64 = 2_000;

fn now() -> u64 {
    senderbound::clock::Clock::now(&senderbound::clock::SystemClock)
}

fn request(key: &DpopKey, token: &str) -> Request<Body> {
    Request::get("/r")
        .header("host", "api.example.test")
        .header("authorization", format!("DPoP {token}"))
        .header(
            "dpop",
            key.proof("GET", "https://api.example.test/r")
                .unwrap()
                .access_token(token)
                .issued_at(now())
                .sign(),
        )
        .body(Body::empty())
        .unwrap()
}

/// Allocations and bytes per request for `app` over `requests`.
fn count(
    runtime: &tokio::runtime::Runtime,
    app: &Router,
    requests: Vec<Request<Body>>,
) -> (f64, f64) {
    let n = requests.len() as f64;
    let before = dhat::HeapStats::get();
    for req in requests {
        let response = runtime.block_on(app.clone().oneshot(req)).unwrap();
        assert_eq!(response.status(), 200);
    }
    let after = dhat::HeapStats::get();
    (
        (after.total_blocks - before.total_blocks) as f64 / n,
        (after.total_bytes - before.total_bytes) as f64 / n,
    )
}

fn main() {
    // DHAT_FILE=path writes dhat's profile (every allocation site, for
    // dh_view.html) when the process ends.
    let _profiler = match std::env::var("DHAT_FILE") {
        Ok(path) => dhat::Profiler::builder().file_name(path).build(),
        Err(_) => dhat::Profiler::builder().testing().build(),
    };
    // `cargo test --benches` runs this too: a few requests then.
    let requests = if std::env::args().any(|a| a == "--bench") {
        REQUESTS
    } else {
        20
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = TestIssuer::new(ISSUER);
    let key = DpopKey::generate();
    let token = issuer.sign(&issuer.claims(AUDIENCE, Some(key.jkt()), "read", now()));
    let auth = SenderBoundLayer::builder()
        .trust(issuer.trust())
        .audience(AUDIENCE)
        .origin("https://api.example.test")
        .build()
        .unwrap();
    // The handler reads the Sender, as real ones do.
    let routes =
        Router::new().route(
            "/r",
            get(|sender: Option<Sender>| async move {
                if sender.is_some() { "ok" } else { "anonymous" }
            }),
        );
    let protected = routes.clone().layer(auth);
    let warm = (0..3).map(|_| request(&key, &token)).collect();
    count(&runtime, &protected, warm);
    std::thread::sleep(Duration::from_millis(10));

    let made = |n| (0..n).map(|_| request(&key, &token)).collect::<Vec<_>>();
    let (layer_blocks, layer_bytes) = count(&runtime, &protected, made(requests));
    if std::env::var_os("DHAT_FILE").is_some() {
        // The profile: the Layer's requests only.
        return;
    }
    let (router_blocks, router_bytes) = count(&runtime, &routes, made(requests));
    println!("allocations per request ({requests} requests, ES256, cached token, default store):");
    println!("  layer_cached_token    {layer_blocks:6.1} allocations {layer_bytes:8.0} bytes");
    println!("  router_without_layer  {router_blocks:6.1} allocations {router_bytes:8.0} bytes");
    println!(
        "  the Layer's own       {:6.1} allocations {:8.0} bytes",
        layer_blocks - router_blocks,
        layer_bytes - router_bytes
    );
}
