//! Incident signals and clock-skew telemetry: suspicious refusals counted
//! per key and per client in a sliding window, one `finding="incident"`
//! event at the threshold, an optional cool-down (429 with `Retry-After`,
//! gRPC `UNAVAILABLE`), and the proof's `iat` offset in the audit event and
//! a histogram.

use std::time::Duration;

use axum::body::Body;
use http::Request;
use senderbound::Error;
use senderbound::incident::Incidents;
use senderbound_client::DpopKey;
use senderbound_suite::capture::Captured;
use senderbound_suite::harness::{HOST, Harness};
use senderbound_suite::recorded::Recorded;
use serde_json::{Value, json};
use tower::ServiceExt;

fn incidents(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["finding"] == "incident")
        .collect()
}

/// The client's proof for `token` with a signature that is not its key's.
fn forged(h: &Harness, token: &str) -> String {
    let proof = h.proof("GET", "/whoami", token);
    let (input, _) = proof.rsplit_once('.').unwrap();
    format!("{input}.{}", "A".repeat(86))
}

/// Sends the same (already used) proof again.
async fn replay(h: &Harness, token: &str, proof: &str) -> u16 {
    h.send(
        "GET",
        "/whoami",
        Some(&format!("DPoP {token}")),
        Some(proof),
    )
    .await
    .status
}

#[tokio::test]
async fn suspicious_refusals_at_the_threshold_are_one_incident_per_key_and_client() {
    let (captured, _guard) = Captured::install_json();
    let h = Harness::with(|b| b.incidents(Incidents::after(3).within(Duration::from_secs(60))));
    let token = h.token();
    let proof = h.proof("GET", "/whoami", &token);
    assert_eq!(replay(&h, &token, &proof).await, 200);
    for _ in 0..2 {
        assert_eq!(replay(&h, &token, &proof).await, 401);
    }
    assert!(
        incidents(&captured.json_lines()).is_empty(),
        "two are noise"
    );
    assert_eq!(replay(&h, &token, &proof).await, 401);
    let events = captured.json_lines();
    let found = incidents(&events);
    assert_eq!(found.len(), 2, "{found:#?}");
    let (key, client) = (found[0], found[1]);
    for e in [key, client] {
        assert_eq!(e["severity"], "incident");
        assert_eq!(e["level"], "ERROR");
        assert_eq!(e["incident_count"], 3);
        assert_eq!(e["incident_counts"], "replay=3");
        assert_eq!(e["incident_window"], 60);
        assert_eq!(e["cool_down"], 0);
        assert_eq!(e["client_id"], "test-client");
        // The request that completed it.
        assert_eq!(
            (e["decision"].as_str(), e["path"].as_str()),
            (Some("authenticate"), Some("/whoami"))
        );
        assert_eq!(e["error"], "invalid_dpop_proof");
        assert_eq!(e["schema"], 1);
    }
    assert_eq!(key["incident_subject"], "jkt");
    assert_eq!(key["jkt"], h.client.jkt());
    assert_eq!(client["incident_subject"], "client_id");
    assert_eq!(client["jkt"], "", "the client's incident names no one key");
    // The refusal's own event is there too, as suspicious.
    let last_refusals: Vec<&Value> = events
        .iter()
        .filter(|e| e["error"] == "invalid_dpop_proof" && e["finding"] == "")
        .collect();
    assert_eq!(last_refusals.len(), 3);
    assert!(last_refusals.iter().all(|e| e["severity"] == "suspicious"));

    // One incident per window: more replays now add none.
    for _ in 0..5 {
        replay(&h, &token, &proof).await;
    }
    assert_eq!(incidents(&captured.json_lines()).len(), 2);
    // A window later, the count starts again.
    h.clock.advance(60);
    let token = h.token();
    let proof = h.proof("GET", "/whoami", &token);
    assert_eq!(replay(&h, &token, &proof).await, 200);
    for _ in 0..3 {
        assert_eq!(replay(&h, &token, &proof).await, 401);
    }
    assert_eq!(incidents(&captured.json_lines()).len(), 4);
    // Routine refusals never count.
    let h = Harness::with(|b| b.incidents(Incidents::after(1)));
    for _ in 0..3 {
        assert_eq!(h.send("GET", "/whoami", None, None).await.status, 401);
    }
    assert_eq!(incidents(&captured.json_lines()).len(), 4);
}

#[tokio::test]
async fn forged_signatures_and_stolen_tokens_count_against_the_keys_they_name() {
    let (captured, _guard) = Captured::install_json();
    let h = Harness::with(|b| b.incidents(Incidents::after(2)));
    let token = h.token();
    // A proof whose signature is not the key's: counted for the key it names.
    let forged = forged(&h, &token);
    for _ in 0..2 {
        let r = h
            .send(
                "GET",
                "/whoami",
                Some(&format!("DPoP {token}")),
                Some(&forged),
            )
            .await;
        r.assert_refused(401, "invalid_dpop_proof", Error::ProofSignature);
    }
    let events = captured.json_lines();
    let found = incidents(&events);
    assert_eq!(
        found.len(),
        1,
        "the token was never verified: no client: {found:#?}"
    );
    assert_eq!(found[0]["jkt"], h.client.jkt());
    assert_eq!(found[0]["incident_counts"], "bad_signature=2");
    // Each refusal names the key its proof claimed.
    let refusals: Vec<&Value> = events
        .iter()
        .filter(|e| e["error"] == "invalid_dpop_proof")
        .collect();
    assert!(
        refusals.iter().all(|e| e["jkt"] == h.client.jkt()),
        "{refusals:#?}"
    );

    // A stolen token with the thief's key, then a downgrade: the client's
    // count has both kinds.
    let thief = DpopKey::generate();
    let stolen = h.proof_by(&thief, "GET", "/whoami", &token);
    let r = h
        .send(
            "GET",
            "/whoami",
            Some(&format!("DPoP {token}")),
            Some(&stolen),
        )
        .await;
    r.assert_refused(401, "invalid_token", Error::TokenBindingMismatch);
    let r = h
        .send("GET", "/whoami", Some(&format!("Bearer {token}")), None)
        .await;
    r.assert_refused(401, "invalid_token", Error::TokenDowngrade);
    let events = captured.json_lines();
    let found = incidents(&events);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[1]["incident_subject"], "client_id");
    assert_eq!(found[1]["incident_counts"], "downgrade=1 wrong_key=1");
}

#[tokio::test]
async fn a_cool_down_refuses_the_key_with_429_until_it_ends() {
    let (captured, _guard) = Captured::install_json();
    let h = Harness::with(|b| b.incidents(Incidents::after(2).cool_down(Duration::from_secs(30))));
    let token = h.token();
    let proof = h.proof("GET", "/whoami", &token);
    assert_eq!(replay(&h, &token, &proof).await, 200);
    for _ in 0..2 {
        assert_eq!(replay(&h, &token, &proof).await, 401);
    }
    let found = incidents(&captured.json_lines()).len();
    assert_eq!(found, 2);
    assert_eq!(incidents(&captured.json_lines())[0]["cool_down"], 30);
    assert_eq!(
        incidents(&captured.json_lines())[1]["cool_down"],
        0,
        "clients are not paused"
    );

    // A fresh, valid proof by the key: refused for the cool-down.
    let fresh = |h: &Harness| {
        Request::get("/whoami")
            .header("host", HOST)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", h.proof("GET", "/whoami", &token))
    };
    h.clock.advance(10);
    let response = h
        .app
        .clone()
        .oneshot(fresh(&h).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "20");
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "access_denied");
    // A gRPC call gets UNAVAILABLE, with the same Retry-After.
    let grpc = || {
        Request::post("/whoami")
            .header("host", HOST)
            .header("content-type", "application/grpc")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", h.proof("POST", "/whoami", &token))
            .body(Body::empty())
            .unwrap()
    };
    let response = h.app.clone().oneshot(grpc()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "14");
    // Twenty seconds is longer than a call should wait: do not retry.
    assert_eq!(response.headers()["grpc-retry-pushback-ms"], "-1");
    assert_eq!(response.headers()["retry-after"], "20");
    // Five seconds left: a gRPC client is told to retry after them.
    h.clock.advance(15);
    let response = h.app.clone().oneshot(grpc()).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "14");
    assert_eq!(response.headers()["grpc-retry-pushback-ms"], "5000");
    assert_eq!(response.headers()["retry-after"], "5");
    let events = captured.json_lines();
    let cooling: Vec<&Value> = events.iter().filter(|e| e["status"] == 429).collect();
    assert_eq!(cooling.len(), 3);
    assert!(
        cooling
            .iter()
            .all(|e| e["severity"] == "suspicious" && e["jkt"] == h.client.jkt())
    );
    // The refusals of a cool-down do not count towards another incident.
    assert_eq!(incidents(&events).len(), 2);

    // Another key goes on; this one is back when the cool-down ends.
    let other = DpopKey::generate();
    let mut claims = h.claims();
    claims["cnf"] = json!({"jkt": other.jkt()});
    claims["client_id"] = json!("another-client");
    let other_token = h.issuer.sign(&claims);
    let other_proof = h.proof_by(&other, "GET", "/whoami", &other_token);
    assert_eq!(replay(&h, &other_token, &other_proof).await, 200);
    h.clock.advance(20);
    assert_eq!(h.get_with("/whoami", &token).await.status, 200);
}

#[test]
fn proof_clock_offsets_are_in_the_audit_event_and_the_histogram() {
    let histograms = Recorded::default();
    let (captured, _guard) = Captured::install_json();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    metrics::with_local_recorder(&histograms, || {
        runtime.block_on(async {
            let h = Harness::with(|b| b.incidents(Incidents::after(3)));
            let token = h.token();
            let at = |offset: i64| {
                h.client
                    .proof("GET", &format!("https://{HOST}/whoami"))
                    .unwrap()
                    .access_token(&token)
                    .issued_at(h.now().checked_add_signed(offset).unwrap())
                    .sign()
            };
            let auth = format!("DPoP {token}");
            assert_eq!(
                h.send("GET", "/whoami", Some(&auth), Some(&at(-2)))
                    .await
                    .status,
                200
            );
            let r = h.send("GET", "/whoami", Some(&auth), Some(&at(-400))).await;
            r.assert_refused(401, "invalid_dpop_proof", Error::ProofExpired);
            for _ in 0..3 {
                let r = h.send("GET", "/whoami", Some(&auth), Some(&at(120))).await;
                r.assert_refused(401, "invalid_dpop_proof", Error::ProofIssuedInFuture);
            }
            // An absurd iat: the event has it, the histogram clamps it.
            let r = h
                .send("GET", "/whoami", Some(&auth), Some(&at(1 << 40)))
                .await;
            r.assert_refused(401, "invalid_dpop_proof", Error::ProofIssuedInFuture);
            // Refused before its time is read: no offset.
            let r = h.send("GET", "/whoami", Some(&auth), Some("junk")).await;
            r.assert_refused(401, "invalid_dpop_proof", Error::ProofMalformed);
        })
    });
    let events = captured.json_lines();
    let decisions: Vec<&Value> = events.iter().filter(|e| e["finding"] == "").collect();
    let offsets: Vec<Option<i64>> = decisions.iter().map(|e| e["iat_offset"].as_i64()).collect();
    assert_eq!(
        offsets,
        [
            Some(-2),
            Some(-400),
            Some(120),
            Some(120),
            Some(120),
            Some(1 << 40),
            None
        ]
    );
    // The future ones name their key, and a run of them is an incident
    // (proofs made ahead of time, RFC 9449 §11.2), though each is routine.
    assert!(decisions[0]["jkt"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(
        decisions[2..5]
            .iter()
            .all(|e| e["jkt"] == decisions[0]["jkt"] && e["severity"] == "routine")
    );
    let found = incidents(&events);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["incident_counts"], "future_proof=3");
    let recorded = histograms.histograms();
    assert_eq!(
        recorded.get("senderbound_proof_iat_offset_seconds{proof=verified}"),
        Some(&vec![-2.0])
    );
    // Refused for their time: unverified, labelled so, and clamped to a year.
    assert_eq!(
        recorded.get("senderbound_proof_iat_offset_seconds{proof=refused}"),
        Some(&vec![-400.0, 120.0, 120.0, 120.0, 31_536_000.0])
    );
}

#[tokio::test]
async fn refusals_that_only_name_a_key_or_were_allowed_never_pause_it() {
    let (captured, _guard) = Captured::install_json();
    let h = Harness::with(|b| {
        b.incidents(Incidents::after(2).cool_down(Duration::from_secs(300)))
            .key_sharing(senderbound::key_sharing::KeySharing::new())
    });
    let token = h.token();
    // Anyone can name the client's public key in a forged proof.
    let forged = forged(&h, &token);
    for _ in 0..2 {
        let auth = format!("DPoP {token}");
        let r = h.send("GET", "/whoami", Some(&auth), Some(&forged)).await;
        r.assert_refused(401, "invalid_dpop_proof", Error::ProofSignature);
    }
    let found = incidents(&captured.json_lines()).len();
    assert_eq!(found, 1, "an incident on record");
    assert_eq!(incidents(&captured.json_lines())[0]["cool_down"], 0);
    // The key's holder goes on.
    assert_eq!(h.get_with("/whoami", &token).await.status, 200);
    // A key shared in report mode is allowed and on record, never counted.
    let mut claims = h.claims();
    claims["client_id"] = json!("another-client");
    let other = h.issuer.sign(&claims);
    for _ in 0..3 {
        assert_eq!(h.get_with("/whoami", &other).await.status, 200);
    }
    let events = captured.json_lines();
    assert!(events.iter().any(|e| e["finding"] == "key_shared"));
    assert_eq!(incidents(&events).len(), 1);
    assert_eq!(h.get_with("/whoami", &token).await.status, 200);
}
