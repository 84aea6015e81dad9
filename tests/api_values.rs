//! The 0.2 configuration values and accessors that carry behaviour:
//! refusal bodies (RFC 9457 problem details, custom, none), the token's
//! other claims on `Sender`, and `Origin`.

use bytes::Bytes;
use senderbound::challenge::RefusalBody;
use senderbound::{Error, Origin, Sender};
use senderbound_suite::harness::{HOST, Harness};
use serde_json::{Value, json};

#[tokio::test]
async fn the_default_body_is_the_oauth_error_object() {
    let h = Harness::new();
    let reply = h.send("GET", "/api/read", None, None).await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.content_type.as_deref(),
        None,
        "no credentials: no body"
    );
    let token = h.token();
    let reply = h
        .send("GET", "/api/read", Some(&format!("DPoP {token}")), None)
        .await;
    reply.assert_refused(401, "invalid_dpop_proof", Error::ProofMissing);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        reply.json(),
        json!({"error": "invalid_dpop_proof", "error_description": Error::ProofMissing.description()})
    );
}

#[tokio::test]
async fn problem_details_keep_the_challenge() {
    let h = Harness::with(|b| b.refusal_body(RefusalBody::ProblemJson));
    let token = h.token();
    let reply = h
        .send("GET", "/api/read", Some(&format!("DPoP {token}")), None)
        .await;
    // Status and WWW-Authenticate are unchanged (RFC 9449 §7.1)...
    reply.assert_refused(401, "invalid_dpop_proof", Error::ProofMissing);
    // ...and the body is RFC 9457 problem details.
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(
        reply.json(),
        json!({
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": Error::ProofMissing.description(),
            "error": "invalid_dpop_proof",
        })
    );
    // A scope refusal is 403 problem details with the OAuth code.
    let mut claims = h.claims();
    claims["scope"] = json!("read");
    let token = h.issuer.sign(&claims);
    let reply = h.dpop("POST", "/api/write", &token).await;
    reply.assert_refused(403, "insufficient_scope", Error::InsufficientScope);
    assert_eq!(reply.json()["status"], 403);
    assert_eq!(reply.json()["title"], "Forbidden");
    assert_eq!(reply.json()["error"], "insufficient_scope");
}

#[tokio::test]
async fn custom_and_empty_bodies() {
    let h = Harness::with(|b| {
        b.refusal_body(RefusalBody::custom(|refusal| {
            let text = format!(
                "{}: {}",
                refusal.status().as_u16(),
                refusal.error().description()
            );
            Some((
                http::HeaderValue::from_static("text/plain"),
                Bytes::from(text),
            ))
        }))
    });
    let token = h.token();
    let reply = h
        .send("GET", "/api/read", Some(&format!("DPoP {token}")), None)
        .await;
    reply.assert_refused(401, "invalid_dpop_proof", Error::ProofMissing);
    assert_eq!(reply.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        reply.body,
        format!("401: {}", Error::ProofMissing.description())
    );

    let h = Harness::with(|b| b.refusal_body(RefusalBody::Empty));
    let token = h.token();
    let reply = h
        .send("GET", "/api/read", Some(&format!("DPoP {token}")), None)
        .await;
    reply.assert_refused(401, "invalid_dpop_proof", Error::ProofMissing);
    assert_eq!(reply.content_type, None);
    assert_eq!(reply.body, "");
}

#[tokio::test]
async fn the_sender_carries_the_tokens_other_claims() {
    use axum::{Json, Router, routing::get};
    async fn claims(sender: Sender) -> Json<Value> {
        Json(json!({
            "acr": sender.acr(),
            "amr": sender.amr(),
            "auth_time": sender.auth_time(),
            "tenant": sender.claim::<String>("tenant"),
            "tenant_as_number": sender.claim::<u64>("tenant"),
            "missing": sender.claim::<String>("missing"),
            "jkt": sender.binding().jkt(),
            "sender": sender,
        }))
    }
    let h = Harness::with_routes(Router::new().route("/claims", get(claims)), |b| b);
    let mut c = h.claims();
    c["acr"] = json!("urn:example:mfa");
    c["amr"] = json!(["pwd", "otp", 7]);
    c["auth_time"] = json!(h.now() - 30);
    c["tenant"] = json!("acme");
    let token = h.issuer.sign(&c);
    let reply = h.get_with("/claims", &token).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["acr"], "urn:example:mfa");
    assert_eq!(
        body["amr"],
        json!(["pwd", "otp"]),
        "non-strings are left out"
    );
    assert_eq!(body["auth_time"], h.now() - 30);
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["tenant_as_number"], Value::Null, "not a number");
    assert_eq!(body["missing"], Value::Null);
    assert_eq!(body["jkt"], h.client.jkt());
    // The JSON form names the claims it has.
    assert_eq!(body["sender"]["acr"], "urn:example:mfa");
    assert_eq!(body["sender"]["auth_time"], h.now() - 30);
    assert_eq!(body["sender"]["binding"], "dpop");
    assert_eq!(body["sender"]["jkt"], h.client.jkt());

    // Without them, the accessors are empty and the JSON leaves them out.
    let reply = h.get_with("/claims", &h.token()).await;
    let body = reply.json();
    assert_eq!(body["acr"], Value::Null);
    assert_eq!(body["amr"], json!([]));
    assert_eq!(body["auth_time"], Value::Null);
    assert!(body["sender"].get("acr").is_none());
    assert!(body["sender"].get("amr").is_none());
}

#[tokio::test]
async fn origins() {
    // Any host: the htu is built from the Host the request names.
    let h = Harness::with(|b| b.origin(Origin::any_host()));
    let token = h.token();
    assert_eq!(h.get_with("/api/read", &token).await.status, 200);
    // A public URL: proofs must name it, whatever the Host.
    let h = Harness::with(|b| b.origin("https://api.example.com/v1"));
    let token = h.token();
    let reply = h.get_with("/api/read", &token).await; // signed for https://HOST/api/read
    reply.assert_refused(401, "invalid_dpop_proof", Error::ProofUriMismatch);
    let proof = h
        .client
        .proof("GET", "https://api.example.com/v1/api/read")
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .sign();
    let reply = h
        .send(
            "GET",
            "/api/read",
            Some(&format!("DPoP {token}")),
            Some(&proof),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    // Plain HTTP hosts: an https htu is another URI.
    let h = Harness::with(|b| b.origin(Origin::hosts([HOST]).plain_http()));
    let token = h.token();
    let reply = h.get_with("/api/read", &token).await;
    reply.assert_refused(401, "invalid_dpop_proof", Error::ProofUriMismatch);
}

/// The backend the suite's features choose is the one that verifies: no
/// dev-dependency may switch the pure-Rust run to aws-lc-rs through feature
/// unification (one did, once).
#[test]
fn the_chosen_backend_verifies() {
    let expected = if cfg!(feature = "aws-lc-rs") {
        "aws-lc-rs"
    } else {
        "rust-crypto"
    };
    assert_eq!(senderbound_core::backend_name(), expected);
}
