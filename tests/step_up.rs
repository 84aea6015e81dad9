//! Step-up authentication (RFC 9470): routes that need an authentication
//! context class (`acr`) or a recent authentication (`auth_time`), from a
//! JWT or an introspection answer; a token that falls short gets 401
//! `insufficient_user_authentication` with `acr_values` / `max_age` in the
//! challenge.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use senderbound::authorize::{Denied, PolicyRequest};
use senderbound::step_up::StepUp;
use senderbound::{AuthorizeLayer, Error, Sender};
use senderbound_suite::harness::Harness;
use senderbound_suite::mock_as::MockAs;
use serde_json::json;

async fn whoami(sender: Sender) -> Json<Sender> {
    Json(sender)
}

/// `/mfa` needs `acr` mfa or hw; `/recent` an authentication at most 300 s
/// old; `/payment` both, through a policy of its own that also names a
/// scope (step-up comes first).
fn stepped() -> Router {
    let mfa = StepUp::new().acr_values(["urn:example:mfa", "urn:example:hw"]);
    let recent = StepUp::new().max_age(Duration::from_secs(300));
    let both = StepUp::new()
        .acr_values(["urn:example:mfa"])
        .max_age(Duration::from_secs(60));
    let payment = AuthorizeLayer::new(move |req: &PolicyRequest| {
        if both.is_met_by(req) {
            return Ok(());
        }
        Err(Denied::new("payments need a fresh MFA")
            .needs_scopes(["payments"])
            .needs_authentication(both.clone()))
    });
    Router::new()
        .route("/mfa", get(whoami).route_layer(AuthorizeLayer::new(mfa)))
        .route(
            "/recent",
            get(whoami).route_layer(AuthorizeLayer::new(recent)),
        )
        .route("/payment", get(whoami).route_layer(payment))
}

fn token(h: &Harness, claims: serde_json::Value) -> String {
    let mut all = h.claims();
    for (name, value) in claims.as_object().unwrap() {
        all[name] = value.clone();
    }
    h.issuer.sign(&all)
}

#[tokio::test]
async fn an_authentication_context_class_is_required() {
    let h = Harness::with_routes(stepped(), |b| b);
    for claims in [json!({}), json!({"acr": "urn:example:password"})] {
        let r = h.get_with("/mfa", &token(&h, claims.clone())).await;
        r.assert_refused(
            401,
            "insufficient_user_authentication",
            Error::InsufficientUserAuthentication,
        );
        assert_eq!(
            r.param("acr_values").as_deref(),
            Some("urn:example:mfa urn:example:hw"),
            "{claims}"
        );
        assert_eq!(r.param("max_age"), None);
    }
    for acr in ["urn:example:mfa", "urn:example:hw"] {
        let r = h.get_with("/mfa", &token(&h, json!({"acr": acr}))).await;
        assert_eq!(r.status, 200, "{acr}: {r:?}");
        assert_eq!(r.json()["acr"], acr);
    }
}

#[tokio::test]
async fn a_recent_authentication_is_required() {
    let h = Harness::with_routes(stepped(), |b| b);
    let now = h.now();
    for claims in [json!({}), json!({"auth_time": now - 301})] {
        let r = h.get_with("/recent", &token(&h, claims.clone())).await;
        r.assert_refused(
            401,
            "insufficient_user_authentication",
            Error::InsufficientUserAuthentication,
        );
        assert_eq!(r.param("max_age").as_deref(), Some("300"), "{claims}");
        assert_eq!(r.param("acr_values"), None);
    }
    for auth_time in [now - 300, now - 5, now] {
        let r = h
            .get_with("/recent", &token(&h, json!({"auth_time": auth_time})))
            .await;
        assert_eq!(r.status, 200, "{auth_time}: {r:?}");
    }
}

#[tokio::test]
async fn a_policy_asks_for_step_up_before_scopes() {
    let h = Harness::with_routes(stepped(), |b| b);
    let now = h.now();
    let r = h
        .get_with(
            "/payment",
            &token(&h, json!({"acr": "urn:example:mfa", "auth_time": now - 61})),
        )
        .await;
    r.assert_refused(
        401,
        "insufficient_user_authentication",
        Error::InsufficientUserAuthentication,
    );
    assert_eq!(r.param("acr_values").as_deref(), Some("urn:example:mfa"));
    assert_eq!(r.param("max_age").as_deref(), Some("60"));
    assert_eq!(r.param("scope"), None);
    let fresh = token(&h, json!({"acr": "urn:example:mfa", "auth_time": now - 10}));
    assert_eq!(h.get_with("/payment", &fresh).await.status, 200);
}

#[tokio::test]
async fn an_introspection_answer_counts_as_a_jwt_does() {
    let mock = MockAs::start().await;
    let h = Harness::introspected_by(&mock, stepped());
    let answer = |extra: serde_json::Value| h.introspection_answer(extra);
    mock.register_opaque("weak", answer(json!({"acr": "urn:example:password"})));
    mock.register_opaque(
        "strong",
        answer(json!({"acr": "urn:example:hw", "auth_time": h.now() - 10})),
    );
    let weak = h.get_with("/mfa", "weak").await;
    weak.assert_refused(
        401,
        "insufficient_user_authentication",
        Error::InsufficientUserAuthentication,
    );
    assert_eq!(
        weak.param("acr_values").as_deref(),
        Some("urn:example:mfa urn:example:hw")
    );
    // An answer without auth_time falls short of a max_age.
    assert_eq!(h.get_with("/recent", "weak").await.status, 401);
    assert_eq!(h.get_with("/mfa", "strong").await.status, 200);
    assert_eq!(h.get_with("/recent", "strong").await.status, 200);
}

#[tokio::test]
async fn a_future_authentication_an_empty_requirement_and_another_case_fall_short() {
    let empty = StepUp::new();
    let routes = stepped().route(
        "/misconfigured",
        get(whoami).route_layer(AuthorizeLayer::new(empty)),
    );
    let h = Harness::with_routes(routes, |b| b);
    let now = h.now();
    // An authentication "in the future" (beyond the leeway) is not recent.
    let r = h
        .get_with("/recent", &token(&h, json!({"auth_time": now + 3600})))
        .await;
    r.assert_refused(
        401,
        "insufficient_user_authentication",
        Error::InsufficientUserAuthentication,
    );
    // acr values compare exactly.
    let r = h
        .get_with("/mfa", &token(&h, json!({"acr": "URN:EXAMPLE:MFA"})))
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    // A requirement naming nothing refuses (a configuration mistake never
    // admits).
    let strong = token(&h, json!({"acr": "urn:example:mfa", "auth_time": now}));
    let r = h.get_with("/misconfigured", &strong).await;
    r.assert_refused(
        401,
        "insufficient_user_authentication",
        Error::InsufficientUserAuthentication,
    );
}

#[tokio::test]
async fn the_refusal_carries_a_nonce_while_nonces_are_required() {
    use senderbound::proof::Nonces;
    let h = Harness::with_routes(stepped(), |b| {
        b.nonces(Nonces::new(b"step-up nonce secret, 32 bytes or more".as_slice()).unwrap())
    });
    let token = token(&h, json!({"acr": "urn:example:password"}));
    // The Layer asks for a nonce first.
    let first = h.get_with("/mfa", &token).await;
    let nonce = first.dpop_nonce.clone().expect("a nonce");
    let proof = h
        .client
        .proof(
            "GET",
            &format!("https://{}/mfa", senderbound_suite::harness::HOST),
        )
        .unwrap()
        .access_token(&token)
        .issued_at(h.now())
        .nonce(nonce)
        .sign();
    let r = h
        .send("GET", "/mfa", Some(&format!("DPoP {token}")), Some(&proof))
        .await;
    r.assert_refused(
        401,
        "insufficient_user_authentication",
        Error::InsufficientUserAuthentication,
    );
    // A DPoP client that reads every 401 for a nonce finds one.
    assert!(r.dpop_nonce.is_some(), "{r:?}");
}
