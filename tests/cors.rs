//! CORS for browser DPoP clients (`senderbound::cors`): preflights are
//! answered before authentication, refusals and answers carry the CORS
//! headers with `WWW-Authenticate` and `DPoP-Nonce` exposed, only listed
//! origins are allowed, and credentials never are. The browser itself is
//! in tests/browser.rs.

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use senderbound::cors::DpopCors;
use senderbound::proof::Nonces;
use senderbound_suite::harness::{HOST, Harness};
use tower::ServiceExt;

const APP: &str = "https://app.example.test";

/// The harness's protected app with the CORS layer outside it.
fn with_cors(h: &Harness) -> Router {
    let cors = DpopCors::allow_origins([APP]).unwrap();
    h.app.clone().layer(cors.layer())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap) {
    let response = match app.clone().oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    (response.status(), response.headers().clone())
}

fn preflight(origin: &str, method: &str, headers: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri("/whoami")
        .header("host", HOST)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .body(Body::empty())
        .unwrap()
}

/// `GET /whoami` from a page on `origin`, without credentials.
fn get_from(origin: &str) -> Request<Body> {
    Request::builder()
        .uri("/whoami")
        .header("host", HOST)
        .header("origin", origin)
        .body(Body::empty())
        .unwrap()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// Asserts that the list in `name` holds every one of `needed`.
fn assert_lists(headers: &HeaderMap, name: &str, needed: &[&str]) {
    let listed = list(headers, name);
    for needed in needed {
        assert!(
            listed.iter().any(|l| l == needed),
            "{name}: {listed:?} lacks {needed}"
        );
    }
}

/// The comma-separated list in `name`, lower-cased.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn a_preflight_from_a_listed_origin_is_answered_before_authentication() {
    let h = Harness::new();
    let app = with_cors(&h);
    let (status, headers) = send(
        &app,
        preflight(APP, "POST", "authorization, dpop, content-type"),
    )
    .await;
    // Answered by the CORS layer: no credentials were needed, no challenge.
    assert_eq!(status, 200, "{headers:?}");
    assert_eq!(headers.get("www-authenticate"), None);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));
    assert_lists(
        &headers,
        "access-control-allow-headers",
        &["authorization", "dpop", "content-type"],
    );
    assert_lists(
        &headers,
        "access-control-allow-methods",
        &["get", "post", "put", "patch", "delete"],
    );
    assert_eq!(header(&headers, "access-control-max-age"), Some("600"));
    assert_lists(&headers, "vary", &["origin"]);
    // Never credentials: the token rides in Authorization, set by script.
    assert_eq!(headers.get("access-control-allow-credentials"), None);
}

#[tokio::test]
async fn other_origins_get_no_cors_headers_and_are_never_reflected() {
    let h = Harness::new();
    let app = with_cors(&h);
    for origin in [
        "https://evil.example.test",
        "https://app.example.test.evil.test",
        "http://app.example.test",
        "https://app.example.test:8443",
        "null",
    ] {
        let (_, headers) = send(&app, preflight(origin, "GET", "authorization, dpop")).await;
        assert_eq!(headers.get("access-control-allow-origin"), None, "{origin}");
        // An actual request from there: refused by the Layer as usual, and
        // the browser is not allowed to read the answer.
        let (status, headers) = send(&app, get_from(origin)).await;
        assert_eq!(status, 401);
        // Without Access-Control-Allow-Origin the browser hands the page
        // nothing of the answer (tower-http lists the exposed headers on
        // every answer; they expose nothing without it).
        assert_eq!(headers.get("access-control-allow-origin"), None, "{origin}");
        assert_eq!(headers.get("access-control-allow-credentials"), None);
    }
}

#[tokio::test]
async fn a_refusal_is_readable_by_the_listed_origin() {
    let h = Harness::new();
    let app = with_cors(&h);
    let (status, headers) = send(&app, get_from(APP)).await;
    assert_eq!(status, 401);
    assert!(header(&headers, "www-authenticate").is_some_and(|c| c.starts_with("DPoP ")));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));
    assert_lists(
        &headers,
        "access-control-expose-headers",
        &["www-authenticate", "dpop-nonce", "retry-after"],
    );
    assert_eq!(headers.get("access-control-allow-credentials"), None);
    // Caches keep answers to different origins apart.
    assert_lists(&headers, "vary", &["origin"]);
}

#[tokio::test]
async fn every_options_request_is_answered_by_the_cors_layer_and_reaches_no_handler() {
    // Outside the Layer, an OPTIONS request with or without Origin never
    // meets authentication or a handler: the CORS layer answers it, with
    // nothing from the API in it.
    let h = Harness::new();
    let app = with_cors(&h);
    for origin in [Some(APP), Some("https://evil.example.test"), None] {
        let mut request = Request::builder()
            .method("OPTIONS")
            .uri("/whoami")
            .header("host", HOST);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = match app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
        {
            Ok(r) => r,
            Err(never) => match never {},
        };
        assert_eq!(response.status(), 200, "{origin:?}");
        assert_eq!(response.headers().get("www-authenticate"), None);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert!(body.is_empty(), "{origin:?}: {body:?}");
    }
}

#[tokio::test]
async fn the_nonce_challenge_and_the_answer_carry_what_the_browser_must_read() {
    let nonces = Nonces::new(b"cors test nonce secret, 32 bytes+ (test)").unwrap();
    let h = Harness::with(|b| b.nonces(nonces));
    let app = with_cors(&h);
    let token = h.token();
    let request = |proof: String| {
        Request::builder()
            .uri("/whoami")
            .header("host", HOST)
            .header("origin", APP)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers) = send(&app, request(h.proof("GET", "/whoami", &token))).await;
    assert_eq!(status, 401);
    assert!(
        header(&headers, "www-authenticate").is_some_and(|c| c.contains("use_dpop_nonce")),
        "{headers:?}"
    );
    let nonce = header(&headers, "dpop-nonce")
        .expect("a DPoP-Nonce")
        .to_owned();
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));
    assert_lists(&headers, "access-control-expose-headers", &["dpop-nonce"]);
    // The retry with the nonce is answered, readable by the app.
    let proof = h.proof_with_nonce("GET", "/whoami", &token, &nonce);
    let (status, headers) = send(&app, request(proof)).await;
    assert_eq!(status, 200, "{headers:?}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));
}

#[tokio::test]
async fn extra_headers_methods_and_max_age_are_configurable() {
    let h = Harness::new();
    let cors = DpopCors::allow_origins([APP])
        .unwrap()
        .methods([http::Method::GET])
        .request_headers([http::HeaderName::from_static("mcp-protocol-version")])
        .expose_headers([http::HeaderName::from_static("mcp-session-id")])
        .max_age(std::time::Duration::from_secs(60));
    let app = h.app.clone().layer(cors.layer());
    let (_, headers) = send(
        &app,
        preflight(APP, "GET", "authorization, dpop, mcp-protocol-version"),
    )
    .await;
    assert_lists(
        &headers,
        "access-control-allow-headers",
        &[
            "authorization",
            "dpop",
            "content-type",
            "mcp-protocol-version",
        ],
    );
    assert_eq!(list(&headers, "access-control-allow-methods"), ["get"]);
    assert_eq!(header(&headers, "access-control-max-age"), Some("60"));
    let (_, headers) = send(&app, get_from(APP)).await;
    assert_lists(
        &headers,
        "access-control-expose-headers",
        &[
            "www-authenticate",
            "dpop-nonce",
            "retry-after",
            "mcp-session-id",
        ],
    );
}
