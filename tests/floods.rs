//! Floods against the Layer, with both in-process replay stores:
//! - unique valid proofs beyond the store's capacity: memory stays at the
//!   configured capacity (the rest is refused with 503, never accepted
//!   unchecked) and no live `jti` is forgotten: every proof of the flood is
//!   still refused as a replay at its end;
//! - junk proofs of every kind never reach the replay store;
//! - the same proof from many connections at once: `tests/real_server.rs`
//!   (`the_same_proof_sent_50_times_concurrently_succeeds_exactly_once`),
//!   and `tests/redis.rs` for a fleet.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use senderbound::Error;
use senderbound::replay::{
    CompactReplayStore, MemoryReplayStore, ReplayError, ReplayKey, ReplayStore,
};
use senderbound_client::DpopKey;
use senderbound_suite::harness::{HOST, Harness, Reply};
use serde_json::json;

const PATH: &str = "/api/read";
const CAPACITY: u64 = 100;
const FLOOD: usize = 300;

/// A replay store that counts every call before passing it on.
struct Counting<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S: ReplayStore> ReplayStore for Counting<S> {
    fn check_and_insert(
        &self,
        key: ReplayKey,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.check_and_insert(key, ttl)
    }
}

async fn send(h: &Harness, token: &str, proof: &str) -> Reply {
    h.send("GET", PATH, Some(&format!("DPoP {token}")), Some(proof))
        .await
}

/// Floods a store of [`CAPACITY`] with [`FLOOD`] unique valid proofs.
async fn flood_of_unique_valid_proofs(store: Arc<impl ReplayStore>, len: impl Fn() -> u64) {
    let h = Harness::with(|b| b.replay_store(store));
    let token = h.token();
    let proofs: Vec<String> = (0..FLOOD).map(|_| h.proof("GET", PATH, &token)).collect();
    let mut accepted = 0;
    for proof in &proofs {
        let r = send(&h, &token, proof).await;
        match r.status {
            200 => accepted += 1,
            503 => assert_eq!(r.json()["error"], "temporarily_unavailable", "{r:?}"),
            _ => panic!("{r:?}"),
        }
        assert!(len() <= CAPACITY, "the store grew past its capacity");
    }
    assert_eq!(
        accepted, CAPACITY as usize,
        "every remembered proof, no more"
    );
    // Every proof accepted during the flood is still remembered at its end.
    for proof in &proofs[..CAPACITY as usize] {
        send(&h, &token, proof).await.assert_refused(
            401,
            "invalid_dpop_proof",
            Error::ProofReplayed,
        );
    }
    // The refused ones were never accepted, and still are not.
    let r = send(&h, &token, &proofs[FLOOD - 1]).await;
    assert_eq!(r.status, 503, "{r:?}");
}

#[tokio::test]
async fn a_flood_of_unique_valid_proofs_stays_within_capacity_and_forgets_no_jti() {
    let compact = Arc::new(CompactReplayStore::new(CAPACITY));
    let probe = compact.clone();
    flood_of_unique_valid_proofs(compact, move || probe.len()).await;

    let memory = Arc::new(MemoryReplayStore::new(CAPACITY));
    let probe = memory.clone();
    flood_of_unique_valid_proofs(memory, move || probe.len()).await;
}

/// Proofs that fail some check, each with a valid token: none may reach the
/// replay store (only a proof that passed every other check spends a `jti`).
fn junk(h: &Harness, token: &str) -> Vec<(&'static str, String, String)> {
    let uri = |path: &str| format!("https://{HOST}{path}");
    let now = h.now();
    let other_key = DpopKey::generate();
    let valid = h.proof("GET", PATH, token);
    let mut forged = valid.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": h.client.public_jwk()});
    let claims = json!({"jti": "j", "htm": "GET", "htu": uri(PATH), "iat": now});
    let expired_token = {
        let mut c = h.claims();
        c["exp"] = json!(now - 3600);
        h.issuer.sign(&c)
    };
    let unsigned = |alg: &str| {
        let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": h.client.public_jwk()});
        format!("{}.{}.AA", b64(header), b64(claims.clone()))
    };
    let t = token.to_owned();
    vec![
        ("not a JWT", t.clone(), "not.a.jwt".to_owned()),
        ("bad signature", t.clone(), forged),
        (
            "another URI",
            t.clone(),
            h.client
                .proof("GET", &uri("/api/other"))
                .unwrap()
                .access_token(token)
                .issued_at(now)
                .sign(),
        ),
        (
            "another method",
            t.clone(),
            h.client
                .proof("POST", &uri(PATH))
                .unwrap()
                .access_token(token)
                .issued_at(now)
                .sign(),
        ),
        (
            "expired",
            t.clone(),
            h.client
                .proof("GET", &uri(PATH))
                .unwrap()
                .access_token(token)
                .issued_at(now - 3600)
                .sign(),
        ),
        (
            "for another token",
            t.clone(),
            h.client
                .proof("GET", &uri(PATH))
                .unwrap()
                .access_token("another token")
                .issued_at(now)
                .sign(),
        ),
        (
            "without ath",
            t.clone(),
            h.client.sign_compact(&header, &claims),
        ),
        ("alg none", t.clone(), unsigned("none")),
        ("alg HS256", t.clone(), unsigned("HS256")),
        (
            "another key than the token's",
            t.clone(),
            other_key
                .proof("GET", &uri(PATH))
                .unwrap()
                .access_token(token)
                .issued_at(now)
                .sign(),
        ),
        (
            "an expired token",
            expired_token.clone(),
            h.client
                .proof("GET", &uri(PATH))
                .unwrap()
                .access_token(&expired_token)
                .issued_at(now)
                .sign(),
        ),
    ]
}

async fn junk_never_reaches(store: impl ReplayStore) {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Counting {
        inner: store,
        calls: calls.clone(),
    };
    let h = Harness::with(|b| b.replay_store(store));
    let token = h.token();
    let junk = junk(&h, &token);
    for round in 0..30 {
        for (what, token, proof) in &junk {
            let r = send(&h, token, proof).await;
            assert!(
                r.status == 400 || r.status == 401,
                "{what} (round {round}): {r:?}"
            );
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0, "junk reached the store");
    // The counter does count: one valid proof is one call.
    let r = send(&h, &token, &h.proof("GET", PATH, &token)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_flood_of_junk_proofs_never_touches_the_replay_store() {
    junk_never_reaches(CompactReplayStore::new(CAPACITY)).await;
    junk_never_reaches(MemoryReplayStore::new(CAPACITY)).await;
}
