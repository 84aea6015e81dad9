//! mTLS certificate-bound tokens over real TLS connections on loopback:
//! `senderbound::tls::serve` with client certificates made in the test
//! (rcgen), clients that present them (rustls via reqwest), and a trusted
//! proxy that forwards certificates in the RFC 9440 `Client-Cert` header.
//!
//! Addresses: direct clients connect from 127.0.0.2, the trusted proxy is
//! 127.0.0.1, an untrusted peer 127.0.0.3 (all of 127.0.0.0/8 is loopback).

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use senderbound::mtls::{ForwardedClientCert, TrustedProxies};
use senderbound::tls::{self, AnyClientCert};
use senderbound::tokens::Issuer;
use senderbound::{Error, SenderBoundLayer};
use senderbound_client::DpopKey;
use senderbound_suite::TestIssuer;
use senderbound_suite::answer::Answer;
use senderbound_suite::harness::routes;
use senderbound_suite::pki::{Identity, Present, https_client, https_client_tls12};
use serde_json::json;
use tokio::sync::oneshot;

const AUDIENCE: &str = "https://api.example.test";
const DIRECT: &str = "127.0.0.2";
const PROXY: &str = "127.0.0.1";
const STRANGER: &str = "127.0.0.3";

struct Server {
    addr: SocketAddr,
    identity: Identity,
    issuer: TestIssuer,
    _stop: oneshot::Sender<()>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The harness routes behind senderbound, served over TLS on 127.0.0.1.
async fn start(require_cert: bool) -> Server {
    let identity = Identity::localhost();
    let issuer = TestIssuer::new("https://as.example.test");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let auth = SenderBoundLayer::builder()
        .trust(Issuer::new(issuer.issuer()).keys(issuer.jwks_json()))
        .audience(AUDIENCE)
        .origin(format!("https://{addr}"))
        .mtls(ForwardedClientCert::new(
            TrustedProxies::parse([PROXY]).unwrap(),
        ))
        .build()
        .unwrap();
    let client_auth = if require_cert {
        AnyClientCert::required
    } else {
        AnyClientCert::optional
    };
    let config = tls::server_config(
        identity.cert_pem.as_bytes(),
        identity.key_pem.as_bytes(),
        client_auth,
    )
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let app = routes().layer(auth);
    tokio::spawn(async move {
        tls::serve(listener, config, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Server {
        addr,
        identity,
        issuer,
        _stop: stop,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// A token bound to `cert`.
    fn token_for(&self, cert: &Identity) -> String {
        let mut claims = self.issuer.claims(AUDIENCE, None, "read", now());
        claims["cnf"] = json!({ "x5t#S256": cert.x5t_s256() });
        self.issuer.sign(&claims)
    }

    /// A client connecting from `from` and presenting `present`.
    fn client(&self, from: &str, present: Present<'_>) -> reqwest::Client {
        https_client(&self.identity.der, present)
            .local_address(from.parse::<IpAddr>().unwrap())
            .build()
            .unwrap()
    }
}

async fn get(request: reqwest::RequestBuilder) -> Answer {
    Answer::of(request).await
}

/// `GET path` as Bearer `token` from a direct client presenting `present`.
async fn bearer_get(server: &Server, present: Present<'_>, path: &str, token: &str) -> Answer {
    let client = server.client(DIRECT, present);
    get(client.get(server.url(path)).bearer_auth(token)).await
}

#[track_caller]
fn assert_invalid_token(a: &Answer, which: Error) {
    a.refused(401, Some("invalid_token"), which);
}

fn forwarded(cert: &Identity) -> String {
    format!(":{}:", STANDARD.encode(&cert.der))
}

#[tokio::test]
async fn the_bound_certificate_gets_200() {
    let server = start(false).await;
    let alice = Identity::self_signed(&["alice"]);
    let a = bearer_get(
        &server,
        Present::Cert(&alice),
        "/api/read",
        &server.token_for(&alice),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.www_authenticate);
    assert_eq!(a.body["binding"], "mtls");
    assert_eq!(a.body["x5t#S256"], alice.x5t_s256());
    assert_eq!(a.body["scopes"], json!(["read"]));
}

#[tokio::test]
async fn another_certificate_gets_401() {
    let server = start(false).await;
    let (alice, mallory) = (
        Identity::self_signed(&["alice"]),
        Identity::self_signed(&["mallory"]),
    );
    let token = server.token_for(&alice);
    let a = bearer_get(&server, Present::Cert(&mallory), "/api/read", &token).await;
    assert_invalid_token(&a, Error::TokenCertificateMismatch);
}

#[tokio::test]
async fn no_certificate_gets_401() {
    let server = start(false).await;
    let alice = Identity::self_signed(&["alice"]);
    let token = server.token_for(&alice);
    let a = bearer_get(&server, Present::Nothing, "/api/read", &token).await;
    assert_invalid_token(&a, Error::CertificateMissing);
}

#[tokio::test]
async fn a_certificate_without_its_private_key_cannot_connect() {
    let server = start(false).await;
    let (alice, mallory) = (
        Identity::self_signed(&["alice"]),
        Identity::self_signed(&["mallory"]),
    );
    let token = server.token_for(&alice);
    let mismatched = Present::CertWithKeyOf {
        cert: &alice,
        key: &mallory,
    };
    // TLS 1.3 and TLS 1.2 (each verifies the handshake signature its own way).
    for tls12 in [false, true] {
        let client = |present| {
            let builder = if tls12 {
                https_client_tls12(&server.identity.der, present)
            } else {
                https_client(&server.identity.der, present)
            };
            builder
                .local_address(DIRECT.parse::<IpAddr>().unwrap())
                .build()
                .unwrap()
        };
        // Control: the same client with Alice's own key gets through.
        let a = get(client(Present::Cert(&alice))
            .get(server.url("/whoami"))
            .bearer_auth(&token))
        .await;
        assert_eq!(a.status, 200, "tls12={tls12}: {a:?}");
        // Mallory knows Alice's (public) certificate and signs with her own
        // key: the server ends the handshake.
        let error = client(mismatched)
            .get(server.url("/whoami"))
            .bearer_auth(&token)
            .send()
            .await
            .expect_err("the handshake must fail");
        // The server's alert for a bad CertificateVerify signature (in TLS
        // 1.3 the client learns of it on its first read), not another failure.
        let chain = format!("{error:?}");
        assert!(
            chain.contains("AlertReceived(DecryptError)"),
            "tls12={tls12}: {chain}"
        );
    }
}

#[tokio::test]
async fn a_trusted_proxy_forwards_the_certificate_and_gets_200() {
    let server = start(false).await;
    let alice = Identity::self_signed(&["alice"]);
    let proxy = server.client(PROXY, Present::Nothing);
    let a = get(proxy
        .get(server.url("/api/read"))
        .bearer_auth(server.token_for(&alice))
        .header("client-cert", forwarded(&alice)))
    .await;
    assert_eq!(a.status, 200, "{}", a.www_authenticate);
    assert_eq!(a.body["x5t#S256"], alice.x5t_s256());
}

#[tokio::test]
async fn the_same_header_from_an_untrusted_peer_is_ignored_and_gets_401() {
    let server = start(false).await;
    let alice = Identity::self_signed(&["alice"]);
    let stranger = server.client(STRANGER, Present::Nothing);
    let a = get(stranger
        .get(server.url("/api/read"))
        .bearer_auth(server.token_for(&alice))
        .header("client-cert", forwarded(&alice)))
    .await;
    assert_invalid_token(&a, Error::CertificateMissing);
    // And the handler of an otherwise accepted request never sees it.
    let key = DpopKey::generate();
    let token = server.issuer.sign(
        &server
            .issuer
            .claims(AUDIENCE, Some(key.jkt()), "read", now()),
    );
    let proof = key
        .proof("GET", &server.url("/headers"))
        .unwrap()
        .access_token(&token)
        .sign();
    let a = get(stranger
        .get(server.url("/headers"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .header("client-cert", forwarded(&alice))
        .header("client-cert-chain", forwarded(&alice)))
    .await;
    assert_eq!(a.status, 200, "{}", a.www_authenticate);
    assert_eq!(a.body["client_cert"], false);
    assert_eq!(a.body["client_cert_chain"], false);
}

#[tokio::test]
async fn a_garbage_header_from_the_trusted_proxy_gets_401() {
    let server = start(false).await;
    let alice = Identity::self_signed(&["alice"]);
    let proxy = server.client(PROXY, Present::Nothing);
    for garbage in [
        "garbage".to_owned(),
        format!(":{}:", STANDARD.encode(b"not DER")),
        alice.cert_pem.replace('\n', ""),
    ] {
        let a = get(proxy
            .get(server.url("/api/read"))
            .bearer_auth(server.token_for(&alice))
            .header("client-cert", garbage))
        .await;
        assert_invalid_token(&a, Error::CertificateMalformed);
    }
}

#[tokio::test]
async fn dpop_and_mtls_clients_side_by_side() {
    let server = start(false).await;
    let alice = Identity::self_signed(&["alice"]);
    let mtls = server.client(DIRECT, Present::Cert(&alice));
    let mtls_token = server.token_for(&alice);
    let dpop = server.client(DIRECT, Present::Nothing);
    let key = DpopKey::generate();
    let dpop_token = server.issuer.sign(&server.issuer.claims(
        AUDIENCE,
        Some(key.jkt()),
        "read",
        now(),
    ));
    for _ in 0..3 {
        let proof = key
            .proof("GET", &server.url("/api/read"))
            .unwrap()
            .access_token(&dpop_token)
            .sign();
        let (by_key, by_cert) = tokio::join!(
            get(dpop
                .get(server.url("/api/read"))
                .header("authorization", format!("DPoP {dpop_token}"))
                .header("dpop", proof)),
            get(mtls.get(server.url("/api/read")).bearer_auth(&mtls_token)),
        );
        assert_eq!(by_key.status, 200, "{}", by_key.www_authenticate);
        assert_eq!(by_key.body["binding"], "dpop");
        assert_eq!(by_key.body["jkt"], key.jkt());
        assert_eq!(by_cert.status, 200, "{}", by_cert.www_authenticate);
        assert_eq!(by_cert.body["binding"], "mtls");
    }
    // Each binding is its own: the DPoP token as Bearer over the mTLS
    // connection is a downgrade, the certificate-bound token with DPoP is
    // refused.
    let a = get(mtls.get(server.url("/api/read")).bearer_auth(&dpop_token)).await;
    assert_invalid_token(&a, Error::TokenDowngrade);
    let proof = key
        .proof("GET", &server.url("/api/read"))
        .unwrap()
        .access_token(&mtls_token)
        .sign();
    let a = get(mtls
        .get(server.url("/api/read"))
        .header("authorization", format!("DPoP {mtls_token}"))
        .header("dpop", proof))
    .await;
    assert_invalid_token(&a, Error::TokenBindingMismatch);
}

#[tokio::test]
async fn a_server_that_requires_certificates_refuses_handshakes_without_one() {
    let server = start(true).await;
    let alice = Identity::self_signed(&["alice"]);
    let none = server.client(DIRECT, Present::Nothing);
    assert!(none.get(server.url("/whoami")).send().await.is_err());
    let with = server.client(DIRECT, Present::Cert(&alice));
    let a = get(with
        .get(server.url("/whoami"))
        .bearer_auth(server.token_for(&alice)))
    .await;
    assert_eq!(a.status, 200, "{}", a.www_authenticate);
}

/// The usual deployment of the header: plain HTTP from the proxy, served
/// by `axum::serve` with connection info.
#[tokio::test]
async fn behind_a_proxy_over_plain_http() {
    let issuer = TestIssuer::new("https://as.example.test");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let auth = SenderBoundLayer::builder()
        .trust(Issuer::new(issuer.issuer()).keys(issuer.jwks_json()))
        .audience(AUDIENCE)
        .origin("https://api.example.test")
        .mtls(ForwardedClientCert::new(
            TrustedProxies::parse([PROXY]).unwrap(),
        ))
        .build()
        .unwrap();
    let app = routes().layer(auth);
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let alice = Identity::self_signed(&["alice"]);
    let mut claims = issuer.claims(AUDIENCE, None, "read", now());
    claims["cnf"] = json!({ "x5t#S256": alice.x5t_s256() });
    let token = issuer.sign(&claims);
    for (from, status) in [(PROXY, 200), (STRANGER, 401)] {
        let client = reqwest::Client::builder()
            .local_address(from.parse::<IpAddr>().unwrap())
            .build()
            .unwrap();
        let a = get(client
            .get(format!("http://{addr}/whoami"))
            .bearer_auth(&token)
            .header("client-cert", forwarded(&alice)))
        .await;
        assert_eq!(a.status, status, "from {from}: {}", a.www_authenticate);
    }
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server() {
    let identity = Identity::localhost();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tls::server_config(
        identity.cert_pem.as_bytes(),
        identity.key_pem.as_bytes(),
        AnyClientCert::optional,
    )
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tls::serve(listener, config, axum::Router::new())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    let client = https_client(&identity.der, Present::Nothing)
        .build()
        .unwrap();
    let before = client.get(format!("https://{addr}/")).send().await.unwrap();
    assert_eq!(before.status(), 404);
    stop.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("server stops within 5 s");
    assert!(result.unwrap().is_ok());
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn server_config_rejects_unusable_pem() {
    let identity = Identity::localhost();
    let other = Identity::localhost();
    let config = |cert: &str, key: &str| {
        tls::server_config(cert.as_bytes(), key.as_bytes(), AnyClientCert::optional)
    };
    assert!(matches!(
        config("", &identity.key_pem),
        Err(tls::TlsConfigError::Certificates)
    ));
    assert!(matches!(
        config(&identity.cert_pem, "not a key"),
        Err(tls::TlsConfigError::PrivateKey)
    ));
    assert!(matches!(
        config(&identity.cert_pem, &other.key_pem),
        Err(tls::TlsConfigError::Rustls(_))
    ));
    assert!(config(&identity.cert_pem, &identity.key_pem).is_ok());
}
