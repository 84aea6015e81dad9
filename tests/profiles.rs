//! Profiles (senderbound::profile): each setting of each profile's table,
//! proven through the Layer, and a configuration that stops complying is a
//! build error.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use senderbound::clock::FixedClock;
use senderbound::profile::Profile;
use senderbound::proof::ProofRules;
use senderbound::tokens::{Issuer, TokenPolicy};
use senderbound::{Algorithm, BuildError, Error, Origin, SenderBoundBuilder, SenderBoundLayer};
use senderbound_suite::harness::{AUDIENCE, HOST, Harness, ISSUER};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A proof for `GET /api/read` with `iat` moved by `offset` seconds and the
/// extra claims given.
fn proof_at(h: &Harness, token: &str, offset: i64, extra: Value) -> String {
    let builder = h
        .client
        .proof("GET", &format!("https://{HOST}/api/read"))
        .unwrap()
        .access_token(token);
    let mut claims = builder.claims();
    claims["iat"] = json!(h.now() as i64 + offset);
    for (k, v) in extra.as_object().into_iter().flatten() {
        claims[k] = v.clone();
    }
    h.client.sign_compact(&builder.header(), &claims)
}

async fn status_at(h: &Harness, offset: i64, extra: Value) -> (u16, Option<String>) {
    let token = h.token();
    let proof = proof_at(h, &token, offset, extra);
    let r = h
        .send(
            "GET",
            "/api/read",
            Some(&format!("DPoP {token}")),
            Some(&proof),
        )
        .await;
    (r.status, r.param("error_description"))
}

fn refused(e: Error) -> (u16, Option<String>) {
    (401, Some(e.description().to_owned()))
}

const OK: (u16, Option<String>) = (200, None);

#[tokio::test]
async fn fapi2_proof_time_window_accepts_10_s_ahead_and_no_more() {
    let h = Harness::with(|b| b.profile(Profile::Fapi2Security));
    assert_eq!(status_at(&h, 10, json!({})).await, OK);
    assert_eq!(
        status_at(&h, 11, json!({})).await,
        refused(Error::ProofIssuedInFuture)
    );
    assert_eq!(status_at(&h, -60, json!({})).await, OK);
    assert_eq!(
        status_at(&h, -61, json!({})).await,
        refused(Error::ProofExpired)
    );
    // exp/nbf use the same allowance.
    let nbf = h.now() + 11;
    assert_eq!(
        status_at(&h, 0, json!({ "nbf": nbf })).await,
        refused(Error::ProofNotYetValid)
    );
    assert_eq!(status_at(&h, 0, json!({ "nbf": nbf - 1 })).await, OK);
}

#[tokio::test]
async fn fapi2_allows_ps256_es256_and_ed25519_only() {
    let doc: Value = serde_json::from_str(include_str!("fixtures/jose_interop.json")).unwrap();
    let now = doc["now"].as_u64().unwrap();
    for f in doc["fixtures"].as_array().unwrap() {
        let alg = f["alg"].as_str().unwrap();
        let auth = SenderBoundLayer::builder()
            .trust(Issuer::new(doc["issuer"].as_str().unwrap()).keys(f["jwks"].to_string()))
            .audience(doc["audience"].as_str().unwrap())
            .origin(Origin::hosts(["api.example.test"]))
            .clock(Arc::new(FixedClock::new(now)))
            .profile(Profile::Fapi2Security)
            .build()
            .unwrap();
        let app = senderbound_suite::harness::routes().layer(auth.clone());
        let req = http::Request::get("/api/read")
            .header("host", "api.example.test")
            .header(
                "authorization",
                format!("DPoP {}", f["token"].as_str().unwrap()),
            )
            .header("dpop", f["proof"].as_str().unwrap())
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(req).await.unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let fapi = matches!(alg, "PS256" | "ES256" | "EdDSA" | "Ed25519");
        if fapi {
            assert_eq!(response.status(), 200, "{alg}: {challenge}");
        } else {
            assert_eq!(response.status(), 401, "{alg}");
            assert!(
                challenge.contains(Error::ProofAlgorithm.description()),
                "{alg}: {challenge}"
            );
            assert!(
                challenge.contains(r#"algs="ES256 EdDSA Ed25519 PS256""#),
                "{challenge}"
            );
        }
    }
}

#[tokio::test]
async fn fapi2_tokens_only_in_the_authorization_header() {
    let h = Harness::with(|b| b.profile(Profile::Fapi2Security));
    let token = h.token();
    let proof = h.proof("GET", "/api/read", &token);
    h.send(
        "GET",
        &format!("/api/read?access_token={token}"),
        Some(&format!("DPoP {token}")),
        Some(&proof),
    )
    .await
    .assert_refused(400, "invalid_request", Error::TokenInQuery);
    // And only sender-constrained ones: an unbound token is no credential.
    let mut claims = h.claims();
    claims.as_object_mut().unwrap().remove("cnf");
    let bearer = h.issuer.sign(&claims);
    let r = h
        .send("GET", "/api/read", Some(&format!("Bearer {bearer}")), None)
        .await;
    assert_eq!((r.status, r.error()), (401, None));
}

fn builder() -> SenderBoundBuilder {
    let h = Harness::new();
    SenderBoundLayer::builder()
        .trust(Issuer::new(ISSUER).keys(h.issuer.jwks_json()))
        .audience(AUDIENCE)
        .origin(Origin::hosts([HOST]))
}

#[test]
fn leaving_a_profile_is_a_build_error() {
    let violation = |b: SenderBoundBuilder| match b.build() {
        Err(BuildError::Profile(v)) => v.to_string(),
        other => panic!("{other:?}"),
    };
    let fapi = || builder().profile(Profile::Fapi2Security);
    for (what, b) in [
        ("bearer", fapi().allow_bearer()),
        (
            "dpop alg",
            fapi().proofs(ProofRules::new().algorithms([Algorithm::RS256])),
        ),
        (
            "token alg",
            fapi().tokens(TokenPolicy::new().algorithms([Algorithm::ES384])),
        ),
        (
            "skew 61 s",
            fapi().proofs(ProofRules::new().max_future_skew(Duration::from_secs(61))),
        ),
        (
            "skew 5 s",
            fapi().proofs(ProofRules::new().max_future_skew(Duration::from_secs(5))),
        ),
    ] {
        assert!(violation(b).starts_with("FAPI 2.0"), "{what}");
    }
    // Inside the profile's bounds, narrowing is fine.
    assert!(
        fapi()
            .proofs(
                ProofRules::new()
                    .algorithms([Algorithm::ES256])
                    .max_future_skew(Duration::from_secs(30))
            )
            .build()
            .is_ok()
    );
    let mcp = || builder().profile(Profile::McpDpop);
    for (what, b) in [
        ("bearer", mcp().allow_bearer()),
        (
            "age",
            mcp().proofs(ProofRules::new().max_age(Duration::from_secs(301))),
        ),
        (
            "skew",
            mcp().proofs(ProofRules::new().max_future_skew(Duration::from_secs(301))),
        ),
    ] {
        assert!(violation(b).starts_with("MCP DPoP"), "{what}");
    }
    assert!(
        mcp()
            .proofs(ProofRules::new().max_age(Duration::from_secs(60)))
            .build()
            .is_ok()
    );
}

#[tokio::test]
async fn mcp_profile_accepts_iat_within_five_minutes_and_serves_metadata() {
    let h = Harness::with(|b| b.profile(Profile::McpDpop));
    for offset in [-300, -61, 0, 16, 300] {
        assert_eq!(status_at(&h, offset, json!({})).await, OK, "{offset}");
    }
    assert_eq!(
        status_at(&h, -301, json!({})).await,
        refused(Error::ProofExpired)
    );
    assert_eq!(
        status_at(&h, 301, json!({})).await,
        refused(Error::ProofIssuedInFuture)
    );
    let req = http::Request::get("/.well-known/oauth-protected-resource")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    let r = h.call(req).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["dpop_bound_access_tokens_required"], true);
}

#[tokio::test]
async fn without_a_profile_the_defaults_stay() {
    let h = Harness::new();
    assert_eq!(status_at(&h, 15, json!({})).await, OK);
    assert_eq!(
        status_at(&h, 16, json!({})).await,
        refused(Error::ProofIssuedInFuture)
    );
    assert_eq!(
        status_at(&h, -61, json!({})).await,
        refused(Error::ProofExpired)
    );
    let req = http::Request::get("/.well-known/oauth-protected-resource")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.call(req).await.status, 401, "no metadata by default");
    // Every algorithm is accepted, so every one is advertised: in the
    // challenge and in the RFC 9728 metadata.
    let all: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
    let r = h.send("GET", "/api/read", None, None).await;
    assert_eq!(r.param("algs"), Some(all.join(" ")));
    let h = Harness::with(|b| b.resource_metadata(senderbound::metadata::ResourceMetadata::new()));
    let req = http::Request::get("/.well-known/oauth-protected-resource")
        .header("host", HOST)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        h.call(req).await.json()["dpop_signing_alg_values_supported"],
        json!(all)
    );
}

/// A profile fills in what was not set, whether set before or after it: it
/// never loosens an explicit setting (which it checks instead).
#[tokio::test]
async fn a_profile_never_loosens_what_was_set_explicitly() {
    for h in [
        Harness::with(|b| {
            b.proofs(
                ProofRules::new()
                    .algorithms([Algorithm::ES256])
                    .max_age(Duration::from_secs(30)),
            )
            .profile(Profile::McpDpop)
        }),
        Harness::with(|b| {
            b.profile(Profile::McpDpop).proofs(
                ProofRules::new()
                    .algorithms([Algorithm::ES256])
                    .max_age(Duration::from_secs(30)),
            )
        }),
    ] {
        assert_eq!(
            status_at(&h, -31, json!({})).await,
            refused(Error::ProofExpired)
        );
        assert_eq!(status_at(&h, -30, json!({})).await, OK);
        // What was not set comes from the profile: 300 s ahead.
        assert_eq!(status_at(&h, 300, json!({})).await, OK);
        let r = h.send("GET", "/api/read", None, None).await;
        assert_eq!(r.param("algs").as_deref(), Some("ES256"));
    }
}
