//! The Layer against a live (mock) authorization server on loopback:
//! discovery, JWKS fetch and rotation, refresh limits, outages, introspection
//! and several issuers. Every fetch is counted by the mock, so the tests
//! prove what was asked, not only what was answered.

use std::time::Duration;

use senderbound::Error;
use senderbound::tokens::{ClientAuth, Fetching, Introspection, Issuer, TokenFormat};
use senderbound_suite::harness::Harness;
use senderbound_suite::mock_as::{MockAs, RS_CLIENT_ID, RS_CLIENT_SECRET};
use serde_json::json;

fn discovering(mock: &MockAs) -> Harness {
    let issuer = mock.issuer().to_owned();
    Harness::with_issuer(mock.signer(), |b| b.issuer(issuer))
}

/// Discovery with keys refreshed on every request and no minimum interval
/// (`configure` adds to these fetching settings: they are one value now).
fn eager(mock: &MockAs, configure: impl FnOnce(Fetching) -> Fetching) -> Harness {
    let issuer = mock.issuer().to_owned();
    Harness::with_issuer(mock.signer(), |b| {
        b.issuer(issuer).fetching(configure(
            Fetching::new()
                .key_refresh(Duration::ZERO)
                .min_key_refresh(Duration::ZERO),
        ))
    })
}

#[tokio::test]
async fn discovery_then_jwks_then_cached_keys() {
    let mock = MockAs::start().await;
    let h = discovering(&mock);
    assert_eq!(mock.metadata_fetches(), 0, "nothing is fetched before use");
    let token = h.token();
    let r = h.get_with("/whoami", &token).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["iss"], mock.issuer());
    assert_eq!((mock.metadata_fetches(), mock.jwks_fetches()), (1, 1));
    // Another token by the same key: no new fetch.
    let other = h.issuer.sign(&h.claims());
    assert_eq!(h.get_with("/whoami", &other).await.status, 200);
    assert_eq!((mock.metadata_fetches(), mock.jwks_fetches()), (1, 1));
}

#[tokio::test]
async fn openid_configuration_is_the_fallback_location() {
    let mock = MockAs::start().await;
    mock.only_openid_configuration();
    let h = discovering(&mock);
    let r = h.get_with("/whoami", &h.token()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(mock.jwks_fetches(), 1);
}

#[tokio::test]
async fn metadata_for_another_issuer_is_refused_with_503() {
    let mock = MockAs::start().await;
    // Configured issuer differs from the metadata's `issuer` by a slash.
    let issuer = format!("{}/", mock.issuer());
    let signer = senderbound_suite::TestIssuer::new(issuer.clone());
    let h = Harness::with_issuer(signer, |b| b.issuer(issuer));
    let r = h.get_with("/whoami", &h.token()).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.error(), None, "the client is not blamed");
    assert_eq!(
        mock.jwks_fetches(),
        0,
        "keys of a mismatched issuer are never fetched"
    );
}

#[tokio::test]
async fn a_rotated_in_key_is_accepted_after_one_refresh() {
    let mock = MockAs::start().await;
    let issuer = mock.issuer().to_owned();
    let h = Harness::with_issuer(mock.signer(), |b| {
        b.issuer(issuer)
            .fetching(Fetching::new().min_key_refresh(Duration::ZERO))
    });
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    assert_eq!(mock.jwks_fetches(), 1);

    let new_key = mock.rotate_in();
    let r = h.get_with("/whoami", &new_key.sign(&h.claims())).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(mock.jwks_fetches(), 2, "exactly one refresh");
}

#[tokio::test]
async fn a_removed_key_stops_working_after_refresh_even_for_cached_tokens() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f);
    let old_token = h.token();
    assert_eq!(h.get_with("/whoami", &old_token).await.status, 200);
    // The verified token is cached now; retire its key at the AS.
    mock.rotate_in();
    mock.retire(h.issuer.kid());
    // Stale keys are refreshed in the background, so the removal lands
    // within a request or two even though the token never leaves the cache.
    let mut r = h.get_with("/whoami", &old_token).await;
    for _ in 0..50 {
        if r.status != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = h.get_with("/whoami", &old_token).await;
    }
    r.assert_refused(401, "invalid_token", Error::TokenUnknownKey);
}

#[tokio::test]
async fn unknown_kids_cannot_make_the_server_hammer_the_as() {
    let mock = MockAs::start().await;
    let h = discovering(&mock); // default minimum refresh interval: 10 s
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    let before = mock.jwks_fetches();
    for i in 0..20 {
        let header = json!({"typ": "at+jwt", "alg": "ES256", "kid": format!("made-up-{i}")});
        let forged = h.issuer.sign_with_header(&header, &h.claims());
        let r = h.get_with("/whoami", &forged).await;
        r.assert_refused(401, "invalid_token", Error::TokenUnknownKey);
    }
    assert!(
        mock.jwks_fetches() - before <= 1,
        "20 unknown kids caused {} fetches",
        mock.jwks_fetches() - before
    );
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let mock = MockAs::start().await;
    let issuer = mock.issuer().to_owned();
    let h = std::sync::Arc::new(Harness::with_issuer(mock.signer(), |b| b.issuer(issuer)));
    let new_key = mock.rotate_in();
    let token = new_key.sign(&h.claims());
    let calls = (0..16).map(|_| {
        let h = h.clone();
        let token = token.clone();
        tokio::spawn(async move { h.get_with("/whoami", &token).await.status })
    });
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(mock.jwks_fetches(), 1, "single-flight: one fetch for all");
}

#[tokio::test]
async fn while_the_as_is_down_cached_keys_work_and_unknown_keys_get_503() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f);
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    mock.set_down(true);
    // Refresh fails (every request tries, interval 0): cached keys serve.
    let r = h.get_with("/whoami", &h.issuer.sign(&h.claims())).await;
    assert_eq!(r.status, 200, "{r:?}");
    // A key the server never saw: it cannot ask, so it cannot decide.
    let unseen = mock.rotate_in();
    let r = h.get_with("/whoami", &unseen.sign(&h.claims())).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.error(), None, "no invalid_token blame on the client");
    assert_eq!(
        r.json()["error_description"],
        Error::TokenVerifierUnavailable.description()
    );
    // Back up: the same token is accepted.
    mock.set_down(false);
    assert_eq!(
        h.get_with("/whoami", &unseen.sign(&h.claims()))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_unreachable_as_with_no_keys_is_503_never_an_accept() {
    let mock = MockAs::start().await;
    let signer = mock.signer();
    let issuer = mock.issuer().to_owned();
    drop(mock); // connection refused from now on
    tokio::task::yield_now().await;
    let h = Harness::with_issuer(signer, |b| {
        b.issuer(issuer)
            .fetching(Fetching::new().timeout(Duration::from_secs(2)))
    });
    for _ in 0..3 {
        let r = h.get_with("/whoami", &h.token()).await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.error(), None);
    }
}

#[tokio::test]
async fn a_fixed_jwks_uri_skips_discovery() {
    let mock = MockAs::start().await;
    let (issuer, jwks) = (mock.issuer().to_owned(), mock.jwks_uri());
    let h = Harness::with_issuer(mock.signer(), |b| {
        b.trust(Issuer::new(issuer).jwks_uri(jwks))
    });
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    assert_eq!((mock.metadata_fetches(), mock.jwks_fetches()), (0, 1));
}

/// Introspection at the mock's endpoint with `client_secret_basic` and
/// `secret`, adjusted by `configure`, accepting tokens in `format` (the
/// introspection settings and the format are the issuer's now).
fn introspecting(
    mock: &MockAs,
    secret: &str,
    configure: impl FnOnce(Introspection) -> Introspection,
    format: TokenFormat,
) -> Harness {
    let (issuer, endpoint) = (mock.issuer().to_owned(), mock.introspection_endpoint());
    let auth = ClientAuth::client_secret_basic(RS_CLIENT_ID, secret);
    Harness::with_issuer(mock.signer(), |b| {
        b.trust(
            Issuer::new(issuer)
                .introspection(configure(Introspection::new(auth).endpoint(endpoint)))
                .token_format(format),
        )
    })
}

fn opaque_answer(h: &Harness, active: bool) -> serde_json::Value {
    let mut claims = h.claims();
    claims["active"] = json!(active);
    claims["token_type"] = json!("DPoP");
    claims.as_object_mut().unwrap().remove("iss");
    claims
}

#[tokio::test]
async fn opaque_tokens_are_introspected_with_client_secret_basic() {
    let mock = MockAs::start().await;
    let h = introspecting(&mock, RS_CLIENT_SECRET, |i| i, TokenFormat::Auto);
    mock.register_opaque("opaque-1", opaque_answer(&h, true));
    let r = h.get_with("/api/read", "opaque-1").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["iss"], mock.issuer());
    assert_eq!(r.json()["jkt"], h.client.jkt());
    assert_eq!(mock.introspections(), 1);
    // Cached by hash: no second introspection.
    assert_eq!(h.get_with("/api/read", "opaque-1").await.status, 200);
    assert_eq!(mock.introspections(), 1);
    assert_eq!(mock.metadata_fetches(), 0, "endpoint given: no discovery");

    // Inactive and unknown tokens are invalid_token.
    mock.register_opaque("opaque-2", opaque_answer(&h, false));
    let r = h.get_with("/api/read", "opaque-2").await;
    r.assert_refused(401, "invalid_token", Error::TokenInactive);
    let r = h.get_with("/api/read", "never-issued").await;
    r.assert_refused(401, "invalid_token", Error::TokenInactive);
}

#[tokio::test]
async fn introspection_with_client_secret_post_at_the_discovered_endpoint() {
    let mock = MockAs::start().await;
    let issuer = mock.issuer().to_owned();
    let h = Harness::with_issuer(mock.signer(), |b| {
        b.trust(Issuer::new(issuer).introspection(Introspection::new(
            ClientAuth::client_secret_post(RS_CLIENT_ID, RS_CLIENT_SECRET),
        )))
    });
    mock.register_opaque("opaque-post", opaque_answer(&h, true));
    assert_eq!(h.get_with("/whoami", "opaque-post").await.status, 200);
    assert_eq!((mock.metadata_fetches(), mock.introspections()), (1, 1));
    // JWTs of the same issuer are still verified locally.
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    assert_eq!(mock.introspections(), 1);
}

#[tokio::test]
async fn wrong_introspection_credentials_are_the_servers_problem_503() {
    let mock = MockAs::start().await;
    let h = introspecting(&mock, "wrong", |i| i, TokenFormat::Auto);
    mock.register_opaque("opaque-1", opaque_answer(&h, true));
    let r = h.get_with("/whoami", "opaque-1").await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.error(), None);
}

#[tokio::test]
async fn introspection_answers_are_cached_no_longer_than_configured() {
    let mock = MockAs::start().await;
    let h = introspecting(
        &mock,
        RS_CLIENT_SECRET,
        |i| i.cache_ttl(Duration::ZERO),
        TokenFormat::Auto,
    );
    mock.register_opaque("opaque-1", opaque_answer(&h, true));
    assert_eq!(h.get_with("/whoami", "opaque-1").await.status, 200);
    // The AS revokes it: with no caching the next request sees that.
    mock.register_opaque("opaque-1", opaque_answer(&h, false));
    let r = h.get_with("/whoami", "opaque-1").await;
    r.assert_refused(401, "invalid_token", Error::TokenInactive);
    assert_eq!(mock.introspections(), 2);
}

#[tokio::test]
async fn introspect_format_sends_jwts_to_the_as_too() {
    let mock = MockAs::start().await;
    let h = introspecting(&mock, RS_CLIENT_SECRET, |i| i, TokenFormat::Introspect);
    let jwt = h.token();
    // The AS does not know this JWT: inactive, although its signature is good.
    let r = h.get_with("/whoami", &jwt).await;
    r.assert_refused(401, "invalid_token", Error::TokenInactive);
    assert_eq!((mock.introspections(), mock.jwks_fetches()), (1, 0));
}

#[tokio::test]
async fn several_issuers_each_key_vouches_only_for_its_own_issuer() {
    let (a, b) = (MockAs::start().await, MockAs::start().await);
    let (ia, ib) = (a.issuer().to_owned(), b.issuer().to_owned());
    let h = Harness::with_issuer(a.signer(), |builder| {
        builder.trust(Issuer::new(ia)).trust(Issuer::new(ib))
    });
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    assert_eq!(
        (a.jwks_fetches(), b.jwks_fetches()),
        (1, 0),
        "only A was asked"
    );

    let mut claims_b = h.claims();
    claims_b["iss"] = json!(b.issuer());
    let r = h.get_with("/whoami", &b.signer().sign(&claims_b)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["iss"], b.issuer());
    assert_eq!((a.jwks_fetches(), b.jwks_fetches()), (1, 1));

    // B's key signing a token that claims to be A's: A's keys do not know it.
    let forged = b.signer().sign(&h.claims());
    let r = h.get_with("/whoami", &forged).await;
    r.assert_refused(401, "invalid_token", Error::TokenUnknownKey);

    // An issuer nobody trusts: refused before any fetch.
    let mut claims_x = h.claims();
    claims_x["iss"] = json!("https://untrusted.example");
    let before = (a.jwks_fetches(), b.jwks_fetches());
    let r = h.get_with("/whoami", &a.signer().sign(&claims_x)).await;
    r.assert_refused(401, "invalid_token", Error::TokenIssuer);
    assert_eq!((a.jwks_fetches(), b.jwks_fetches()), before);
}

#[tokio::test]
async fn opaque_tokens_without_introspection_are_malformed() {
    let mock = MockAs::start().await;
    let h = discovering(&mock);
    let r = h.get_with("/whoami", "2YotnFZFEjr1zCsicMWpAA").await;
    r.assert_refused(401, "invalid_token", Error::TokenMalformed);
    assert_eq!(mock.metadata_fetches(), 0);
}

/// Sends `token` until the answer is not 200 (background refreshes land
/// within a request or two), then returns that answer.
async fn until_refused(h: &Harness, token: &str) -> senderbound_suite::harness::Reply {
    until(h, || token.to_owned(), |status| status != 200).await
}

/// Sends the tokens `token` makes until the answer is 200 (the AS came back
/// or keys refreshed in the background), then returns that answer.
async fn until_accepted(
    h: &Harness,
    token: impl Fn() -> String,
) -> senderbound_suite::harness::Reply {
    until(h, token, |status| status == 200).await
}

async fn until(
    h: &Harness,
    token: impl Fn() -> String,
    done: impl Fn(u16) -> bool,
) -> senderbound_suite::harness::Reply {
    let mut r = h.get_with("/whoami", &token()).await;
    for _ in 0..50 {
        if done(r.status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        r = h.get_with("/whoami", &token()).await;
    }
    r
}

/// A JWT-shaped token the mock vouches for only by introspection, at the
/// endpoint given: accepted, introspected once, no keys fetched.
async fn introspected_not_verified(mock: &MockAs) {
    let h = introspecting(mock, RS_CLIENT_SECRET, |i| i, TokenFormat::Auto);
    let token = h.token();
    mock.register_opaque(&token, opaque_answer(&h, true));
    let r = h.get_with("/whoami", &token).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((mock.jwks_fetches(), mock.introspections()), (0, 1));
}

#[tokio::test]
async fn an_empty_key_set_the_as_publishes_withdraws_every_key_cached_tokens_included() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f);
    let cached = h.token();
    assert_eq!(h.get_with("/whoami", &cached).await.status, 200);
    mock.retire(h.issuer.kid()); // the AS now publishes {"keys": []}
    // The token verified before is in the cache: it stops working too.
    until_refused(&h, &cached)
        .await
        .assert_refused(401, "invalid_token", Error::TokenUnknownKey);
    h.get_with("/whoami", &h.issuer.sign(&h.claims()))
        .await
        .assert_refused(401, "invalid_token", Error::TokenUnknownKey);
}

#[tokio::test]
async fn a_key_set_that_cannot_be_read_does_not_replace_the_cached_one() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f);
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    mock.set_fault(senderbound_suite::mock_as::Fault::Garbage);
    for _ in 0..5 {
        let r = h.get_with("/whoami", &h.issuer.sign(&h.claims())).await;
        assert_eq!(r.status, 200, "{r:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(mock.jwks_fetches() > 1, "refreshes were attempted");
}

#[tokio::test]
async fn cached_tokens_get_503_once_the_keys_are_too_stale() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f.max_key_staleness(Duration::from_millis(200)));
    let cached = h.token();
    assert_eq!(h.get_with("/whoami", &cached).await.status, 200);
    mock.set_down(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Verified (and cached) while the keys were fresh; not any more.
    let r = h.get_with("/whoami", &cached).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.error(), None);
    mock.set_down(false);
    let r = until_accepted(&h, || cached.clone()).await;
    assert_eq!(
        r.status, 200,
        "the same token again once keys are fresh: {r:?}"
    );
}

#[tokio::test]
async fn a_moved_jwks_uri_is_followed_without_a_restart() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f);
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    assert_eq!(mock.moved_jwks_fetches(), 0);
    // The AS moves its keys and rotates in a new one, published only there.
    mock.move_jwks();
    let new_key = mock.rotate_in();
    let r = h.get_with("/whoami", &new_key.sign(&h.claims())).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(mock.moved_jwks_fetches() >= 1);
    assert!(
        mock.metadata_fetches() >= 2,
        "the metadata was fetched again"
    );
}

#[tokio::test]
async fn metadata_is_refreshed_no_more_than_the_keys_are() {
    // Default intervals: refresh after 5 minutes, at most once per 10 s.
    let mock = MockAs::start().await;
    let h = discovering(&mock);
    for _ in 0..10 {
        assert_eq!(
            h.get_with("/whoami", &h.issuer.sign(&h.claims()))
                .await
                .status,
            200
        );
    }
    assert_eq!((mock.metadata_fetches(), mock.jwks_fetches()), (1, 1));
}

#[tokio::test]
async fn jwts_are_verified_locally_when_an_introspection_endpoint_is_given() {
    // An AS that does not introspect JWTs (node-oidc-provider refuses to):
    // the JWT must never reach its introspection endpoint.
    let mock = MockAs::start().await;
    let (issuer, endpoint) = (mock.issuer().to_owned(), mock.introspection_endpoint());
    let h = Harness::with_issuer(mock.signer(), |b| {
        b.trust(
            Issuer::new(issuer).introspection(
                Introspection::new(ClientAuth::client_secret_basic(
                    RS_CLIENT_ID,
                    RS_CLIENT_SECRET,
                ))
                .endpoint(endpoint),
            ),
        )
    });
    let r = h.get_with("/whoami", &h.token()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!((mock.jwks_fetches(), mock.introspections()), (1, 0));
    // Opaque tokens still go to the endpoint given.
    mock.register_opaque("opaque-1", opaque_answer(&h, true));
    let r = h.get_with("/whoami", "opaque-1").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(mock.introspections(), 1);
}

/// An AS that publishes no metadata at all, with its introspection
/// endpoint given: its JWT-shaped tokens are introspected (discovery cannot
/// name keys), never refused with 503.
#[tokio::test]
async fn jwt_shaped_tokens_of_an_as_without_metadata_are_introspected_at_the_given_endpoint() {
    let mock = MockAs::start().await;
    mock.publish_no_metadata(true);
    introspected_not_verified(&mock).await;
}

/// Metadata only says where the keys are: while the metadata endpoint is
/// broken for longer than the keys may be stale, keys are still refreshed
/// from the last known `jwks_uri`, and tokens go on being accepted.
#[tokio::test]
async fn keys_are_refreshed_from_the_last_known_jwks_uri_while_metadata_is_unavailable() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f.max_key_staleness(Duration::from_millis(200)));
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    mock.publish_no_metadata(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = mock.jwks_fetches();
    let r = until_accepted(&h, || h.issuer.sign(&h.claims())).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(mock.jwks_fetches() > before);
}

#[tokio::test]
async fn jwt_shaped_tokens_of_an_as_without_keys_are_introspected() {
    let mock = MockAs::start().await;
    mock.hide_jwks_uri();
    introspected_not_verified(&mock).await;
}

#[tokio::test]
async fn cached_keys_are_not_used_forever_while_the_as_is_unreachable() {
    let mock = MockAs::start().await;
    let h = eager(&mock, |f| f.max_key_staleness(Duration::from_millis(200)));
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
    mock.set_down(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = h.get_with("/whoami", &h.issuer.sign(&h.claims())).await;
    assert_eq!(r.status, 503, "{r:?}");
    mock.set_down(false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = until_accepted(&h, || h.issuer.sign(&h.claims())).await;
    assert_eq!(r.status, 200, "recovers once the AS answers: {r:?}");
}

#[tokio::test]
async fn opaque_bearer_tokens_are_not_introspected_when_bearer_is_not_accepted() {
    let mock = MockAs::start().await;
    let h = introspecting(&mock, RS_CLIENT_SECRET, |i| i, TokenFormat::Auto);
    mock.register_opaque("opaque-1", opaque_answer(&h, true));
    for _ in 0..5 {
        let r = h
            .send("GET", "/whoami", Some("Bearer opaque-1"), None)
            .await;
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(r.error(), None, "unsupported scheme: a bare challenge");
    }
    assert_eq!(mock.introspections(), 0, "the AS was never asked");
}

#[tokio::test]
async fn a_failing_discovery_is_retried_at_most_once_per_interval_even_under_concurrency() {
    let mock = MockAs::start().await;
    mock.set_down(true);
    // Opaque tokens at the discovered introspection endpoint: no JWKS
    // single-flight in front of discovery here. Default minimum interval: 10 s.
    let issuer = mock.issuer().to_owned();
    let h = std::sync::Arc::new(Harness::with_issuer(mock.signer(), |b| {
        b.trust(Issuer::new(issuer).introspection(Introspection::new(
            ClientAuth::client_secret_basic(RS_CLIENT_ID, RS_CLIENT_SECRET),
        )))
    }));
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.get_with("/whoami", &format!("opaque-{i}")).await })
        })
        .collect();
    for call in calls {
        let r = call.await.unwrap();
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.error(), None);
    }
    for i in 0..5 {
        let r = h.get_with("/whoami", &format!("later-{i}")).await;
        assert_eq!(r.status, 503, "{r:?}");
    }
    // One discovery attempt: the RFC 8414 location, then the OpenID one.
    assert_eq!(mock.metadata_fetches(), 2, "13 requests, one attempt");
    assert_eq!((mock.jwks_fetches(), mock.introspections()), (0, 0));
}
