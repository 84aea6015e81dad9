//! mTLS certificate-bound tokens (RFC 8705) through the Layer, in process:
//! the certificate arrives the way a server puts it there (a request
//! extension) or in a forwarded RFC 9440 header, with the TCP peer address
//! the server recorded. `tests/mtls.rs` does the same over real TLS.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::Request;
use senderbound::Error;
use senderbound::mtls::{ClientCertificate, ConnectionCert, ForwardedClientCert, TrustedProxies};
use senderbound::revocation::Revocations;
use senderbound::tokens::{ClientAuth, Introspection, Issuer};
use senderbound_suite::harness::{AUDIENCE, HOST, Harness, Reply};
use senderbound_suite::mock_as::{MockAs, RS_CLIENT_ID, RS_CLIENT_SECRET};
use serde_json::{Value, json};

/// Two distinct "certificates": the binding is to the exact DER bytes.
fn cert(n: u8) -> ClientCertificate {
    ClientCertificate::from_der(vec![0x30, 0x03, 0x02, 0x01, n])
}

fn forwarded(cert: &ClientCertificate) -> String {
    format!(":{}:", STANDARD.encode(cert.der()))
}

/// Token claims bound to `cert`, scope `read`.
fn mtls_claims(h: &Harness, cert: &ClientCertificate) -> Value {
    let mut claims = h.issuer.claims(AUDIENCE, None, "read", h.now());
    claims["cnf"] = json!({ "x5t#S256": cert.x5t_s256() });
    claims
}

fn mtls_token(h: &Harness, cert: &ClientCertificate) -> String {
    h.issuer.sign(&mtls_claims(h, cert))
}

/// How the test request reaches the Layer.
#[derive(Default)]
struct Via<'a> {
    /// The certificate of the TLS connection.
    connection: Option<&'a ClientCertificate>,
    /// The TCP peer (`ConnectInfo`).
    peer: Option<&'a str>,
    /// `Client-Cert` header values.
    client_cert: &'a [&'a str],
    /// `Authorization` scheme (default `Bearer`).
    scheme: Option<&'a str>,
    /// A DPoP proof header.
    dpop: Option<String>,
}

/// Over a TLS connection that presented `cert`, directly from the client.
fn direct(cert: &ClientCertificate) -> Via<'_> {
    Via {
        connection: Some(cert),
        ..Via::default()
    }
}

/// From the trusted proxy (192.0.2.10), with these `Client-Cert` values.
fn proxied<'a>(client_cert: &'a [&'a str]) -> Via<'a> {
    Via {
        peer: Some("192.0.2.10"),
        client_cert,
        ..Via::default()
    }
}

async fn send(h: &Harness, path: &str, token: &str, via: Via<'_>) -> Reply {
    let scheme = via.scheme.unwrap_or("Bearer");
    let mut req = Request::builder()
        .method("GET")
        .uri(path)
        .header("host", HOST)
        .header("authorization", format!("{scheme} {token}"));
    for value in via.client_cert {
        req = req.header("client-cert", *value);
    }
    if let Some(proof) = &via.dpop {
        req = req.header("dpop", proof);
    }
    let mut req = req.body(Body::empty()).unwrap();
    if let Some(cert) = via.connection {
        req.extensions_mut().insert(cert.clone());
    }
    if let Some(peer) = via.peer {
        let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    h.call(req).await
}

/// Certificate-bound tokens accepted, certificates from the connection.
fn mtls() -> Harness {
    Harness::with(|b| b.mtls(ConnectionCert))
}

fn from_proxy() -> Harness {
    Harness::with(|b| {
        b.mtls(ForwardedClientCert::new(
            TrustedProxies::parse(["192.0.2.0/24"]).unwrap(),
        ))
    })
}

#[tokio::test]
async fn the_bound_certificate_is_accepted_with_the_bearer_scheme() {
    let h = mtls();
    let (a, token) = (cert(1), mtls_token(&h, &cert(1)));
    let via = || direct(&a);
    let r = send(&h, "/whoami", &token, via()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let sender = r.json();
    assert_eq!(sender["binding"], "mtls");
    assert_eq!(sender["x5t#S256"], a.x5t_s256());
    assert!(sender.get("jkt").is_none(), "{sender}");
    // Not a one-time proof: the same token and certificate work again
    // (cached token, certificate checked every time), scope routes too.
    assert_eq!(send(&h, "/whoami", &token, via()).await.status, 200);
    assert_eq!(send(&h, "/api/read", &token, via()).await.status, 200);
}

#[tokio::test]
async fn another_certificate_or_none_is_refused() {
    let h = mtls();
    let token = mtls_token(&h, &cert(1));
    let other = cert(2);
    let r = send(&h, "/whoami", &token, direct(&other)).await;
    r.assert_refused(401, "invalid_token", Error::TokenCertificateMismatch);
    // RFC 8705 tokens are Bearer tokens: the error is on a Bearer challenge.
    assert!(
        r.challenges.iter().any(|c| c.starts_with("Bearer error=")),
        "{r:?}"
    );

    let r = send(&h, "/whoami", &token, Via::default()).await;
    r.assert_refused(401, "invalid_token", Error::CertificateMissing);
}

#[tokio::test]
async fn cnf_of_the_wrong_shape_or_bound_both_ways_is_refused() {
    let h = mtls();
    let a = cert(1);
    let via = || direct(&a);
    for cnf in [
        json!({ "x5t#S256": a.x5t_s256(), "jkt": h.client.jkt() }),
        json!({ "x5t#S256": &a.x5t_s256()[..42] }),
        json!({ "x5t": a.x5t_s256() }),
        json!({ "x5t#S256": STANDARD.encode([0u8; 32]) }),
    ] {
        let mut claims = mtls_claims(&h, &a);
        claims["cnf"] = cnf.clone();
        let r = send(&h, "/whoami", &h.issuer.sign(&claims), via()).await;
        r.assert_refused(401, "invalid_token", Error::TokenConfirmationInvalid);
    }
    // Not even a string: the claim does not parse.
    let mut claims = mtls_claims(&h, &a);
    claims["cnf"] = json!({ "x5t#S256": [a.x5t_s256()] });
    let r = send(&h, "/whoami", &h.issuer.sign(&claims), via()).await;
    r.assert_refused(401, "invalid_token", Error::TokenMissingClaim);
}

#[tokio::test]
async fn a_certificate_bound_token_with_a_dpop_proof_is_refused() {
    let h = mtls();
    let a = cert(1);
    let token = mtls_token(&h, &a);
    let r = send(
        &h,
        "/whoami",
        &token,
        Via {
            connection: Some(&a),
            scheme: Some("DPoP"),
            dpop: Some(h.proof("GET", "/whoami", &token)),
            ..Via::default()
        },
    )
    .await;
    r.assert_refused(401, "invalid_token", Error::TokenBindingMismatch);
}

#[tokio::test]
async fn a_certificate_does_not_stand_in_for_a_dpop_proof_or_a_bearer_policy() {
    let h = mtls();
    let a = cert(1);
    let via = || direct(&a);
    // A DPoP-bound token as Bearer is a downgrade, certificate or not.
    let r = send(&h, "/whoami", &h.token(), via()).await;
    r.assert_refused(401, "invalid_token", Error::TokenDowngrade);
    // An unbound token is a bearer token, certificate or not.
    let unbound = h
        .issuer
        .sign(&h.issuer.claims(AUDIENCE, None, "read", h.now()));
    let r = send(&h, "/whoami", &unbound, via()).await;
    assert_eq!(r.status, 401, "{r:?}");
    // Bearer not accepted (RFC 6750 §3.1): no error code. Both schemes are
    // offered, Bearer for certificate-bound tokens.
    assert_eq!(r.error(), None, "{r:?}");
    assert_eq!(r.challenges.len(), 2, "{r:?}");
    assert!(r.challenges[0].starts_with("DPoP algs="), "{r:?}");
    assert_eq!(r.challenges[1], "Bearer", "{r:?}");
}

#[tokio::test]
async fn certificate_bound_tokens_are_refused_unless_accepted() {
    let h = Harness::new(); // the default: DPoP only
    let a = cert(1);
    let r = send(&h, "/whoami", &mtls_token(&h, &a), direct(&a)).await;
    r.assert_refused(401, "invalid_token", Error::CertificateBoundNotAccepted);
    // DPoP is unaffected.
    assert_eq!(h.get_with("/whoami", &h.token()).await.status, 200);
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_certificate() {
    let h = from_proxy();
    let a = cert(1);
    let token = mtls_token(&h, &a);
    let header = forwarded(&a);
    let r = send(&h, "/whoami", &token, proxied(&[&header])).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["x5t#S256"], a.x5t_s256());
    // RFC 8941 §4.2.7: missing padding is accepted.
    let unpadded = header.trim_end_matches([':', '=']).to_owned() + ":";
    assert_ne!(unpadded, header);
    assert_eq!(
        send(&h, "/whoami", &token, proxied(&[&unpadded]))
            .await
            .status,
        200
    );
    // IPv4-mapped IPv6 peer (dual-stack listener) is the same proxy.
    let r = send(
        &h,
        "/whoami",
        &token,
        Via {
            peer: Some("[::ffff:192.0.2.10]"),
            client_cert: &[&header],
            ..Via::default()
        },
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Another certificate forwarded: refused like a direct one.
    let other = forwarded(&cert(2));
    let r = send(&h, "/whoami", &token, proxied(&[&other])).await;
    r.assert_refused(401, "invalid_token", Error::TokenCertificateMismatch);
}

#[tokio::test]
async fn the_header_from_anyone_else_is_ignored_and_removed() {
    let h = from_proxy();
    let a = cert(1);
    let token = mtls_token(&h, &a);
    let header = forwarded(&a);
    for peer in [Some("198.51.100.7"), None] {
        let r = send(
            &h,
            "/whoami",
            &token,
            Via {
                peer,
                client_cert: &[&header],
                ..Via::default()
            },
        )
        .await;
        r.assert_refused(401, "invalid_token", Error::CertificateMissing);
    }
    // On a request that is accepted anyway (DPoP), the handler never sees
    // the spoofed header; from the trusted proxy it does.
    let dpop = h.token();
    for (peer, seen) in [("198.51.100.7", false), ("192.0.2.10", true)] {
        let r = send(
            &h,
            "/headers",
            &dpop,
            Via {
                peer: Some(peer),
                client_cert: &[&header],
                scheme: Some("DPoP"),
                dpop: Some(h.proof("GET", "/headers", &dpop)),
                ..Via::default()
            },
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json()["client_cert"], seen, "peer {peer}");
    }
}

#[tokio::test]
async fn garbage_or_repeated_forwarded_headers_are_refused() {
    let h = from_proxy();
    let a = cert(1);
    let token = mtls_token(&h, &a);
    let good = forwarded(&a);
    let huge = format!(":{}:", "A".repeat(20_000));
    let not_der = format!(":{}:", STANDARD.encode(b"not a certificate"));
    let cases: [&[&str]; 6] = [
        &["garbage"],
        &[a.x5t_s256()],
        &[&not_der],
        &[&huge],
        &[&good, &good],
        &[&format!("{good}, {good}")],
    ];
    for values in cases {
        let r = send(&h, "/whoami", &token, proxied(values)).await;
        r.assert_refused(401, "invalid_token", Error::CertificateMalformed);
    }
}

#[tokio::test]
async fn a_trusted_proxys_own_connection_certificate_is_not_the_clients() {
    let h = from_proxy();
    let proxy_cert = cert(9);
    let token = mtls_token(&h, &proxy_cert);
    // The proxy talks TLS with its own certificate and forwards nothing:
    // the client presented no certificate.
    let r = send(
        &h,
        "/whoami",
        &token,
        Via {
            connection: Some(&proxy_cert),
            peer: Some("192.0.2.10"),
            ..Via::default()
        },
    )
    .await;
    r.assert_refused(401, "invalid_token", Error::CertificateMissing);
    // A direct (untrusted) peer's own TLS certificate does count.
    let r = send(
        &h,
        "/whoami",
        &token,
        Via {
            connection: Some(&proxy_cert),
            peer: Some("198.51.100.7"),
            ..Via::default()
        },
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn scope_refusals_and_revocation_apply_to_certificate_bound_tokens() {
    let revocations = Revocations::new();
    let h = Harness::with({
        let r = revocations.clone();
        |b| b.revocations(r).mtls(ConnectionCert)
    });
    let a = cert(1);
    let token = mtls_token(&h, &a);
    let via = || direct(&a);
    // `/api/write` is POST-only with scope `write`; use a GET route that
    // requires `read` on a token without it.
    let mut claims = mtls_claims(&h, &a);
    claims["scope"] = json!("other");
    let r = send(&h, "/api/read", &h.issuer.sign(&claims), via()).await;
    r.assert_refused(403, "insufficient_scope", Error::InsufficientScope);
    assert!(
        r.challenges.iter().any(|c| c.starts_with("Bearer error=")),
        "{r:?}"
    );

    assert_eq!(send(&h, "/whoami", &token, via()).await.status, 200);
    revocations.revoke_certificate(a.x5t_s256());
    let r = send(&h, "/whoami", &token, via()).await;
    r.assert_refused(401, "invalid_token", Error::TokenRevoked);
}

#[tokio::test]
async fn opaque_certificate_bound_tokens_are_introspected_only_with_a_certificate() {
    let mock = MockAs::start().await;
    let h = introspecting(&mock, |b| b.mtls(ConnectionCert));
    let a = cert(1);
    let mut answer = mtls_claims(&h, &a);
    answer["active"] = json!(true);
    answer.as_object_mut().unwrap().remove("iss");
    mock.register_opaque("opaque-mtls", answer);

    // No certificate: refused before the AS is asked.
    let r = send(&h, "/whoami", "opaque-mtls", Via::default()).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(mock.introspections(), 0);

    let r = send(&h, "/whoami", "opaque-mtls", direct(&a)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["binding"], "mtls");
    assert_eq!(mock.introspections(), 1);
    let r = send(&h, "/whoami", "opaque-mtls", direct(&cert(2))).await;
    r.assert_refused(401, "invalid_token", Error::TokenCertificateMismatch);
}

#[tokio::test]
async fn allowing_bearer_tokens_does_not_unbind_certificate_bound_ones() {
    let h = Harness::with(|b| b.allow_bearer().mtls(ConnectionCert));
    let a = cert(1);
    let token = mtls_token(&h, &a);
    let r = send(&h, "/whoami", &token, Via::default()).await;
    r.assert_refused(401, "invalid_token", Error::CertificateMissing);
    let r = send(&h, "/whoami", &token, direct(&cert(2))).await;
    r.assert_refused(401, "invalid_token", Error::TokenCertificateMismatch);
    let r = send(&h, "/whoami", &token, direct(&a)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["binding"], "mtls");
}

#[tokio::test]
async fn refusals_of_certificate_bound_tokens_go_on_the_bearer_challenge() {
    let h = mtls();
    let a = cert(1);
    let mut expired = mtls_claims(&h, &a);
    expired["exp"] = json!(h.now() - 3600);
    expired["iat"] = json!(h.now() - 7200);
    let mut elsewhere = mtls_claims(&h, &a);
    elsewhere["aud"] = json!("https://other.example.test");
    for (claims, which) in [
        (expired, Error::TokenExpired),
        (elsewhere, Error::TokenAudience),
    ] {
        let r = send(&h, "/whoami", &h.issuer.sign(&claims), direct(&a)).await;
        r.assert_refused(401, "invalid_token", which);
        assert!(r.challenges[0].starts_with("DPoP algs="), "{r:?}");
        assert!(
            r.challenges[1].starts_with("Bearer error=\"invalid_token\""),
            "{r:?}"
        );
    }
    // No credentials: both schemes offered, no error code (RFC 6750 §3.1).
    let r = h.send("GET", "/whoami", None, None).await;
    assert_eq!(r.error(), None, "{r:?}");
    assert_eq!(r.challenges.len(), 2, "{r:?}");
    assert_eq!(r.challenges[1], "Bearer");
    // Without mTLS, Bearer is not offered.
    let r = Harness::new().send("GET", "/whoami", None, None).await;
    assert_eq!(r.challenges.len(), 1, "{r:?}");
}

/// An introspecting harness (the mock AS) with `configure` on top.
fn introspecting(
    mock: &MockAs,
    configure: impl FnOnce(senderbound::SenderBoundBuilder) -> senderbound::SenderBoundBuilder,
) -> Harness {
    let (issuer, endpoint) = (mock.issuer().to_owned(), mock.introspection_endpoint());
    let auth = ClientAuth::client_secret_basic(RS_CLIENT_ID, RS_CLIENT_SECRET);
    Harness::with_issuer(mock.signer(), |b| {
        configure(
            b.trust(Issuer::new(issuer).introspection(Introspection::new(auth).endpoint(endpoint))),
        )
    })
}

#[tokio::test]
async fn opaque_tokens_are_not_introspected_when_no_certificate_can_count() {
    let mock = MockAs::start().await;
    // Certificate-bound tokens not accepted: a certificate changes nothing.
    let h = introspecting(&mock, |b| b);
    let r = send(&h, "/whoami", "opaque-x", direct(&cert(1))).await;
    assert_eq!((r.status, r.error()), (401, None), "{r:?}");
    // A trusted proxy forwarding garbage: refused before the AS is asked.
    let h = introspecting(&mock, |b| {
        b.mtls(ForwardedClientCert::new(
            TrustedProxies::parse(["192.0.2.0/24"]).unwrap(),
        ))
    });
    let r = send(&h, "/whoami", "opaque-x", proxied(&["garbage"])).await;
    r.assert_refused(401, "invalid_token", Error::CertificateMalformed);
    assert_eq!(mock.introspections(), 0);
}

#[tokio::test]
async fn the_forwarded_certificate_wins_over_the_proxys_own_and_reaches_the_handler() {
    let h = from_proxy();
    let (proxy_cert, client_cert) = (cert(9), cert(1));
    let header = forwarded(&client_cert);
    let headers = [header.as_str()];
    let via = || Via {
        connection: Some(&proxy_cert),
        ..proxied(&headers)
    };
    let token = mtls_token(&h, &client_cert);
    let r = send(&h, "/whoami", &token, via()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["x5t#S256"], client_cert.x5t_s256());
    // The handler gets the certificate the token is bound to, never the
    // proxy's.
    let r = send(&h, "/headers", &mtls_token(&h, &client_cert), via()).await;
    assert_eq!(r.json()["certificate"], client_cert.x5t_s256(), "{r:?}");
    let dpop = h.token();
    let r = send(
        &h,
        "/headers",
        &dpop,
        Via {
            scheme: Some("DPoP"),
            dpop: Some(h.proof("GET", "/headers", &dpop)),
            ..via()
        },
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["certificate"], Value::Null, "{r:?}");
}
