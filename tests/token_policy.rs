//! Token policy beyond validity: maximum lifetime and run-time revocation.

use std::time::Duration;

use senderbound::Error;
use senderbound::revocation::Revocations;
use senderbound::tokens::TokenPolicy;
use senderbound_suite::harness::Harness;
use serde_json::json;

#[tokio::test]
async fn tokens_living_longer_than_the_maximum_are_refused() {
    let h = Harness::with(|b| b.tokens(TokenPolicy::new().max_lifetime(Duration::from_secs(600))));
    let mut claims = h.claims();
    claims["exp"] = json!(h.now() + 600);
    assert_eq!(
        h.get_with("/whoami", &h.issuer.sign(&claims)).await.status,
        200
    );
    claims["exp"] = json!(h.now() + 601);
    let r = h.get_with("/whoami", &h.issuer.sign(&claims)).await;
    r.assert_refused(401, "invalid_token", Error::TokenLifetime);
    // Without iat (or nbf) the lifetime is unknown: refused too.
    claims["exp"] = json!(h.now() + 60);
    claims.as_object_mut().unwrap().remove("iat");
    let r = h.get_with("/whoami", &h.issuer.sign(&claims)).await;
    r.assert_refused(401, "invalid_token", Error::TokenLifetime);
}

#[tokio::test]
async fn revocation_applies_to_cached_tokens_on_the_next_request() {
    let revocations = Revocations::new();
    let list = revocations.clone();
    let h = Harness::with(move |b| b.revocations(list));
    let claims = h.claims();
    let token = h.issuer.sign(&claims);
    let jti = claims["jti"].as_str().unwrap().to_owned();
    let jkt = h.client.jkt().to_owned();
    type Toggle = Box<dyn Fn(&Revocations, bool)>;
    let cases: Vec<(&str, Toggle)> = vec![
        (
            "jti",
            Box::new(move |r, on| {
                if on {
                    r.revoke_token_id(jti.clone())
                } else {
                    r.restore_token_id(&jti)
                }
            }),
        ),
        (
            "sub",
            Box::new(|r, on| {
                if on {
                    r.revoke_subject("user-42")
                } else {
                    r.restore_subject("user-42")
                }
            }),
        ),
        (
            "client_id",
            Box::new(|r, on| {
                if on {
                    r.revoke_client("test-client")
                } else {
                    r.restore_client("test-client")
                }
            }),
        ),
        (
            "jkt",
            Box::new(move |r, on| {
                if on {
                    r.revoke_key(jkt.clone())
                } else {
                    r.restore_key(&jkt)
                }
            }),
        ),
    ];
    // Warm the verified-token cache first.
    assert_eq!(h.get_with("/whoami", &token).await.status, 200);
    for (what, toggle) in cases {
        toggle(&revocations, true);
        let r = h.get_with("/whoami", &token).await;
        assert_eq!(r.status, 401, "revoked by {what}: {r:?}");
        r.assert_refused(401, "invalid_token", Error::TokenRevoked);
        toggle(&revocations, false);
        let r = h.get_with("/whoami", &token).await;
        assert_eq!(r.status, 200, "restored {what}: {r:?}");
    }
}

#[tokio::test]
async fn revocation_covers_bearer_tokens_too() {
    let revocations = Revocations::new();
    let list = revocations.clone();
    let h = Harness::with(move |b| b.allow_bearer().revocations(list));
    let mut claims = h.claims();
    claims.as_object_mut().unwrap().remove("cnf");
    let token = h.issuer.sign(&claims);
    let bearer = format!("Bearer {token}");
    assert_eq!(
        h.send("GET", "/whoami", Some(&bearer), None).await.status,
        200
    );
    revocations.revoke_subject("user-42");
    let r = h.send("GET", "/whoami", Some(&bearer), None).await;
    r.assert_refused(401, "invalid_token", Error::TokenRevoked);
}
