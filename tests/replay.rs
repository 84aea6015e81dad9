//! Replay protection and fail-closed behaviour of the Layer.

use std::time::Duration;

use senderbound::Error;
use senderbound::replay::{
    CompactReplayStore, MemoryReplayStore, ReplayError, ReplayKey, ReplayStore,
};
use senderbound::tokens::{AccessToken, TokenVerifier};
use senderbound_suite::TestIssuer;
use senderbound_suite::harness::{HOST, Harness, ISSUER};
use serde_json::json;

const PATH: &str = "/api/read";

fn auth(token: &str) -> String {
    format!("DPoP {token}")
}

#[tokio::test]
async fn replay_of_the_same_proof_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let proof = h.proof("GET", PATH, &token);
    assert_eq!(
        h.send("GET", PATH, Some(&auth(&token)), Some(&proof))
            .await
            .status,
        200
    );
    h.send("GET", PATH, Some(&auth(&token)), Some(&proof))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
    // A fresh proof is fine.
    assert_eq!(h.get_with(PATH, &token).await.status, 200);
}

#[tokio::test]
async fn replay_one_second_before_the_window_closes_is_rejected() {
    let h = Harness::new();
    let token = h.token();
    let proof = h.proof("GET", PATH, &token); // iat = NOW; accepted until NOW + 60
    assert_eq!(
        h.send("GET", PATH, Some(&auth(&token)), Some(&proof))
            .await
            .status,
        200
    );
    let start = h.now();
    h.clock.set(start + 59);
    h.send("GET", PATH, Some(&auth(&token)), Some(&proof))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
    h.clock.set(start + 60);
    h.send("GET", PATH, Some(&auth(&token)), Some(&proof))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
    // Once the window has closed, the iat check refuses it instead.
    h.clock.set(start + 61);
    h.send("GET", PATH, Some(&auth(&token)), Some(&proof))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofExpired);
}

#[tokio::test]
async fn a_proof_that_failed_another_check_does_not_consume_its_jti() {
    let h = Harness::new();
    let token = h.token();
    let url = format!("https://{HOST}{PATH}");
    let with_jti = |jti: &str, htm: &str, token: &str| {
        h.client
            .proof(htm, &url)
            .unwrap()
            .access_token(token)
            .issued_at(h.now())
            .jti(jti)
            .sign()
    };

    // 1. A proof check fails (htm).
    let bad = with_jti("jti-1", "POST", &token);
    h.send("GET", PATH, Some(&auth(&token)), Some(&bad))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofMethodMismatch);
    let good = with_jti("jti-1", "GET", &token);
    assert_eq!(
        h.send("GET", PATH, Some(&auth(&token)), Some(&good))
            .await
            .status,
        200
    );

    // 2. The token fails (signed by an unknown key) after the proof passed.
    let rogue = TestIssuer::new(ISSUER).sign(&h.claims());
    let bad = with_jti("jti-2", "GET", &rogue);
    h.send("GET", PATH, Some(&auth(&rogue)), Some(&bad))
        .await
        .assert_refused(401, "invalid_token", Error::TokenUnknownKey);
    let good = with_jti("jti-2", "GET", &token);
    assert_eq!(
        h.send("GET", PATH, Some(&auth(&token)), Some(&good))
            .await
            .status,
        200
    );

    // 3. The binding fails: token bound to another key.
    let mut claims = h.claims();
    claims["cnf"] = json!({"jkt": senderbound_client::DpopKey::generate().jkt()});
    let foreign = h.issuer.sign(&claims);
    let bad = with_jti("jti-3", "GET", &foreign);
    h.send("GET", PATH, Some(&auth(&foreign)), Some(&bad))
        .await
        .assert_refused(401, "invalid_token", Error::TokenBindingMismatch);
    let good = with_jti("jti-3", "GET", &token);
    assert_eq!(
        h.send("GET", PATH, Some(&auth(&token)), Some(&good))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn full_replay_store_fails_closed() {
    full_store_fails_closed(MemoryReplayStore::new(2)).await;
    full_store_fails_closed(CompactReplayStore::new(2)).await;
}

/// Of many concurrent inserts of one key, on a multi-threaded runtime,
/// exactly one wins: for each in-process store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_many_concurrent_inserts_wins_in_every_store() {
    // ReplayStore's `impl Future` methods make it not dyn-compatible in
    // 0.2: each store is driven through a generic helper instead of an
    // array of `Arc<dyn ReplayStore>`.
    one_of_many_concurrent_inserts_wins(std::sync::Arc::new(MemoryReplayStore::new(1000))).await;
    one_of_many_concurrent_inserts_wins(std::sync::Arc::new(CompactReplayStore::new(1000))).await;
}

async fn one_of_many_concurrent_inserts_wins(store: std::sync::Arc<impl ReplayStore>) {
    for round in 0..20 {
        let key = ReplayKey::new("jkt", &format!("jti-{round}"));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.check_and_insert(key, Duration::from_secs(60)).await },
                )
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => wins += 1,
                Err(e) => assert_eq!(e, ReplayError::AlreadySeen),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

async fn full_store_fails_closed(store: impl ReplayStore) {
    let h = Harness::with(|b| b.replay_store(store));
    let token = h.token();
    let first = h.proof("GET", PATH, &token);
    assert_eq!(
        h.send("GET", PATH, Some(&auth(&token)), Some(&first))
            .await
            .status,
        200
    );
    assert_eq!(h.get_with(PATH, &token).await.status, 200);
    let r = h.get_with(PATH, &token).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.challenges.is_empty(), "no blame on the client: {r:?}");
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    // A replay of a remembered proof is still a replay, not forgotten.
    h.send("GET", PATH, Some(&auth(&token)), Some(&first))
        .await
        .assert_refused(401, "invalid_dpop_proof", Error::ProofReplayed);
}

struct DownStore;

impl ReplayStore for DownStore {
    async fn check_and_insert(&self, _: ReplayKey, _: Duration) -> Result<(), ReplayError> {
        Err(ReplayError::Unavailable)
    }
}

#[tokio::test]
async fn unreachable_replay_store_fails_closed() {
    let h = Harness::with(|b| b.replay_store(DownStore));
    let token = h.token();
    let r = h.get_with(PATH, &token).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.challenges.is_empty());
}

struct DownVerifier;

impl TokenVerifier for DownVerifier {
    async fn verify(&self, _: &str) -> Result<AccessToken, senderbound_core::Error> {
        Err(Error::TokenVerifierUnavailable)
    }
}

#[tokio::test]
async fn unavailable_token_verifier_fails_closed_without_blaming_the_token() {
    let h = Harness::with(|b| b.token_verifier(DownVerifier));
    let token = h.token();
    let r = h.get_with(PATH, &token).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.challenges.is_empty());
    assert_eq!(r.json()["error"], "temporarily_unavailable");
}
