//! Faults at the authorization server, on a real (mock) server on loopback:
//! its JWKS, metadata and introspection endpoints down, refusing
//! connections, slow, answering garbage, huge or endless documents. Each
//! fault must fail closed (503, no `invalid_token` blamed on the client,
//! never a 200) and the server must recover by itself once the AS is well
//! again, without a restart. Redis faults are in `tests/redis.rs`.

use std::sync::Arc;
use std::time::Duration;

use senderbound::Error;
use senderbound::tokens::{ClientAuth, Fetching, Introspection, Issuer};
use senderbound_suite::harness::{Harness, Reply};
use senderbound_suite::mock_as::{Fault, MockAs, RS_CLIENT_ID, RS_CLIENT_SECRET};
use serde_json::json;

/// Every way the AS can misbehave while still accepting connections.
const FAULTS: [Fault; 5] = [
    Fault::Unavailable,
    Fault::Slow(Duration::from_secs(3)),
    Fault::Garbage,
    Fault::Huge,
    Fault::Endless,
];

/// The fetch timeout the tests configure: below `Fault::Slow`'s delay.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// A request that must not hang: the fetch timeout bounds every fault.
async fn bounded(reply: impl std::future::Future<Output = Reply>) -> Reply {
    tokio::time::timeout(Duration::from_secs(20), reply)
        .await
        .expect("the request hung: a fault was not bounded")
}

fn refused_as_unavailable(r: &Reply, fault: Fault) {
    assert_eq!(r.status, 503, "{fault:?}: {r:?}");
    assert_eq!(r.error(), None, "{fault:?}: the client is not to blame");
    assert_eq!(
        r.json()["error_description"],
        Error::TokenVerifierUnavailable.description(),
        "{fault:?}"
    );
}

/// Discovery, keys refreshed whenever a `kid` is unknown, 1 s fetches.
fn discovering(mock: &MockAs) -> Harness {
    let issuer = mock.issuer().to_owned();
    Harness::with_issuer(mock.signer(), |b| {
        b.issuer(issuer).fetching(
            Fetching::new()
                .min_key_refresh(Duration::ZERO)
                .timeout(FETCH_TIMEOUT),
        )
    })
}

#[tokio::test]
async fn a_misbehaving_as_at_startup_is_503_then_recovery_is_automatic() {
    for fault in FAULTS {
        let mock = MockAs::start().await;
        let h = discovering(&mock);
        mock.set_fault(fault);
        let token = h.token();
        for _ in 0..2 {
            refused_as_unavailable(&bounded(h.get_with("/whoami", &token)).await, fault);
        }
        mock.set_fault(Fault::None);
        let r = bounded(h.get_with("/whoami", &token)).await;
        assert_eq!(r.status, 200, "{fault:?}: no recovery: {r:?}");
    }
}

#[tokio::test]
async fn a_misbehaving_jwks_refuses_new_keys_keeps_known_ones_and_recovers() {
    for fault in FAULTS {
        let mock = MockAs::start().await;
        let h = discovering(&mock);
        assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
        mock.set_fault(fault);
        // A key rotated in while the JWKS cannot be read: no decision.
        let rotated = mock.rotate_in();
        let token = rotated.sign(&h.claims());
        refused_as_unavailable(&bounded(h.get_with("/whoami", &token)).await, fault);
        // Tokens under the keys already read are still served.
        let r = bounded(h.get_with("/whoami", &h.token())).await;
        assert_eq!(r.status, 200, "{fault:?}: {r:?}");
        mock.set_fault(Fault::None);
        let r = bounded(h.get_with("/whoami", &token)).await;
        assert_eq!(r.status, 200, "{fault:?}: no recovery: {r:?}");
    }
}

#[tokio::test]
async fn an_as_refusing_connections_is_503_and_is_used_again_when_back() {
    let mut mock = MockAs::start().await;
    let h = discovering(&mock);
    mock.stop();
    let token = h.token();
    refused_as_unavailable(&bounded(h.get_with("/whoami", &token)).await, Fault::None);
    mock.start_again().await;
    assert_eq!(bounded(h.get_with("/whoami", &token)).await.status, 200);
}

/// Introspection at the mock (`configure` adjusts it: the limits are
/// introspection settings now), fetches bounded by `fetch_timeout`.
fn introspecting(
    mock: &MockAs,
    configure: impl FnOnce(Introspection) -> Introspection,
    fetch_timeout: Duration,
) -> Harness {
    let (issuer, endpoint) = (mock.issuer().to_owned(), mock.introspection_endpoint());
    let auth = ClientAuth::client_secret_basic(RS_CLIENT_ID, RS_CLIENT_SECRET);
    Harness::with_issuer(mock.signer(), |b| {
        b.trust(
            Issuer::new(issuer)
                .introspection(configure(Introspection::new(auth).endpoint(endpoint))),
        )
        .fetching(Fetching::new().timeout(fetch_timeout))
    })
}

fn active_answer(h: &Harness) -> serde_json::Value {
    let mut claims = h.claims();
    claims["active"] = json!(true);
    claims["token_type"] = json!("DPoP");
    claims
}

#[tokio::test]
async fn a_misbehaving_introspection_endpoint_is_503_then_recovery_is_automatic() {
    for fault in FAULTS {
        let mock = MockAs::start().await;
        let h = introspecting(&mock, |i| i, FETCH_TIMEOUT);
        mock.register_opaque("opaque-1", active_answer(&h));
        mock.set_fault(fault);
        for _ in 0..2 {
            refused_as_unavailable(&bounded(h.get_with("/whoami", "opaque-1")).await, fault);
        }
        mock.set_fault(Fault::None);
        let r = bounded(h.get_with("/whoami", "opaque-1")).await;
        assert_eq!(r.status, 200, "{fault:?}: no recovery: {r:?}");
    }
}

#[tokio::test]
async fn introspection_answers_that_say_nothing_usable_are_never_an_accept() {
    let mock = MockAs::start().await;
    let h = introspecting(&mock, |i| i, FETCH_TIMEOUT);
    let good = active_answer(&h);
    for (name, answer, code) in [
        ("active as a string", json!({"active": "true"}), 401),
        (
            "no active",
            json!({"aud": good["aud"], "exp": good["exp"]}),
            401,
        ),
        // serde would read `{active, token_type}` from an array by position.
        ("not an object", json!([true, "DPoP"]), 503),
        ("no aud", json!({"active": true, "exp": good["exp"]}), 401),
        ("no exp", json!({"active": true, "aud": good["aud"]}), 401),
        (
            "another issuer",
            json!({"active": true, "iss": "https://evil.example", "aud": good["aud"], "exp": good["exp"], "cnf": good["cnf"]}),
            401,
        ),
        (
            "DPoP without cnf",
            json!({"active": true, "token_type": "DPoP", "aud": good["aud"], "exp": good["exp"]}),
            401,
        ),
        (
            "cnf not an object",
            json!({"active": true, "aud": good["aud"], "exp": good["exp"], "cnf": "x"}),
            401,
        ),
    ] {
        let token = name.replace(' ', "-");
        mock.register_opaque(&token, answer);
        let r = bounded(h.get_with("/whoami", &token)).await;
        assert_eq!(r.status, code, "{name}: {r:?}");
        // 401 blames the token; 503 blames nobody (the AS is broken).
        let expected = (code == 401).then_some("invalid_token");
        assert_eq!(r.error().as_deref(), expected, "{name}: {r:?}");
    }
}

#[tokio::test]
async fn introspections_in_flight_are_bounded_per_issuer() {
    let mock = MockAs::start().await;
    // The fetch timeout also bounds the wait for a turn: long enough here.
    let h = Arc::new(introspecting(
        &mock,
        |i| i.max_concurrent(2),
        Duration::from_secs(10),
    ));
    let tokens: Vec<String> = (0..8).map(|i| format!("opaque-{i}")).collect();
    for token in &tokens {
        mock.register_opaque(token, active_answer(&h));
    }
    mock.set_fault(Fault::Slow(Duration::from_millis(200)));
    let replies = futures_join_all(&h, &tokens).await;
    assert!(replies.iter().all(|r| r.status == 200), "{replies:?}");
    assert_eq!(mock.introspections(), 8);
    assert_eq!(mock.most_concurrent_introspections(), 2);
}

async fn futures_join_all(h: &Arc<Harness>, tokens: &[String]) -> Vec<Reply> {
    let mut set = tokio::task::JoinSet::new();
    for token in tokens {
        let (h, token) = (h.clone(), token.clone());
        set.spawn(async move { h.get_with("/whoami", &token).await });
    }
    let mut replies = Vec::new();
    while let Some(reply) = set.join_next().await {
        replies.push(reply.unwrap());
    }
    replies
}
