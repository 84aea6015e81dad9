//! HTTP framing through the Layer (RFC 9112 §3.2, RFC 9113 §8.3.1, RFC 9110
//! §4.2.4): a request that does not name exactly one well-formed authority
//! is 400 `invalid_request` before any other check, in every origin mode,
//! even with a valid token and proof.

use axum::body::Body;
use http::{Request, Version};
use senderbound::{Error, Origin, SenderBoundBuilder};
use senderbound_suite::harness::{HOST, Harness, Reply};

const PATH: &str = "/api/read";

type Configure = fn(SenderBoundBuilder) -> SenderBoundBuilder;

/// The three ways the public origin is configured.
fn origin_modes() -> Vec<(&'static str, Configure)> {
    vec![
        ("allowed hosts", |b| b),
        ("public base URL", |b| b.origin(format!("https://{HOST}"))),
        ("any host", |b| b.origin(Origin::any_host())),
    ]
}

/// A request with a valid token and proof for `https://HOST/api/read`,
/// sent with `version`, request target `target` and these `Host` values.
async fn send(h: &Harness, version: Version, target: &str, hosts: &[&str]) -> Reply {
    let token = h.token();
    let mut req = Request::get(target)
        .version(version)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", h.proof("GET", PATH, &token));
    for host in hosts {
        req = req.header("host", *host);
    }
    h.call(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn well_framed_requests_pass_in_every_origin_mode() {
    for (mode, configure) in origin_modes() {
        let h = Harness::with(configure);
        for (version, target, hosts) in [
            (Version::HTTP_11, PATH, &[HOST][..]),
            (Version::HTTP_11, PATH, &["API.example.test:443"][..]),
            (
                Version::HTTP_11,
                "https://api.example.test/api/read",
                &[HOST][..],
            ),
            (
                Version::HTTP_2,
                "https://api.example.test/api/read",
                &[][..],
            ),
            (
                Version::HTTP_2,
                "https://api.example.test/api/read",
                &[HOST][..],
            ),
        ] {
            let r = send(&h, version, target, hosts).await;
            assert_eq!(
                r.status, 200,
                "{mode} {version:?} {target} {hosts:?}: {r:?}"
            );
        }
    }
}

#[tokio::test]
async fn badly_framed_requests_are_invalid_requests_in_every_origin_mode() {
    let cases: &[(Version, &str, &[&str], Error)] = &[
        // HTTP/1.1 needs exactly one Host, a valid authority.
        (Version::HTTP_11, PATH, &[], Error::MissingHost),
        (Version::HTTP_11, PATH, &[""], Error::MissingHost),
        (
            Version::HTTP_11,
            PATH,
            &[HOST, HOST],
            Error::MultipleHostHeaders,
        ),
        (
            Version::HTTP_11,
            PATH,
            &[HOST, "other.example.test"],
            Error::MultipleHostHeaders,
        ),
        (
            Version::HTTP_11,
            PATH,
            &["user@api.example.test"],
            Error::UserinfoInTarget,
        ),
        (
            Version::HTTP_11,
            PATH,
            &["user:pw@api.example.test"],
            Error::UserinfoInTarget,
        ),
        (
            Version::HTTP_11,
            PATH,
            &["api.example.test x"],
            Error::InvalidHost,
        ),
        (
            Version::HTTP_11,
            PATH,
            &["api.example.test/x"],
            Error::InvalidHost,
        ),
        (
            Version::HTTP_11,
            PATH,
            &["api.example.test:x"],
            Error::InvalidHost,
        ),
        (
            Version::HTTP_11,
            PATH,
            &["api.example.test:99999"],
            Error::InvalidHost,
        ),
        // An absolute-form target names the authority; Host must agree.
        (
            Version::HTTP_11,
            "https://other.example.test/api/read",
            &[HOST],
            Error::HostMismatch,
        ),
        (
            Version::HTTP_11,
            "https://api.example.test:8443/api/read",
            &[HOST],
            Error::HostMismatch,
        ),
        (
            Version::HTTP_11,
            "https://user@api.example.test/api/read",
            &[HOST],
            Error::UserinfoInTarget,
        ),
        (
            Version::HTTP_11,
            "https://api.example.test/api/read",
            &[],
            Error::MissingHost,
        ),
        // HTTP/2: `:authority` is the authority; a Host naming another is
        // malformed, and so is no authority at all.
        (
            Version::HTTP_2,
            "https://api.example.test/api/read",
            &["other.example.test"],
            Error::HostMismatch,
        ),
        (
            Version::HTTP_2,
            "https://user@api.example.test/api/read",
            &[],
            Error::UserinfoInTarget,
        ),
        (
            Version::HTTP_2,
            "https://api.example.test/api/read",
            &[HOST, HOST],
            Error::MultipleHostHeaders,
        ),
        (Version::HTTP_2, PATH, &[], Error::MissingHost),
    ];
    for (mode, configure) in origin_modes() {
        let h = Harness::with(configure);
        for (version, target, hosts, error) in cases {
            let r = send(&h, *version, target, hosts).await;
            assert_eq!(
                (r.status, r.error().as_deref(), r.param("error_description")),
                (
                    400,
                    Some("invalid_request"),
                    Some(error.description().to_owned())
                ),
                "{mode}: {version:?} {target} {hosts:?}: {r:?}"
            );
        }
    }
}

/// Framing is checked before credentials: a bad Host with no credentials
/// at all is still 400, not the 401 challenge.
#[tokio::test]
async fn framing_comes_before_every_other_check() {
    let h = Harness::with(|b| b.resource_metadata(senderbound::metadata::ResourceMetadata::new()));
    for path in [PATH, "/.well-known/oauth-protected-resource"] {
        let req = Request::get(path)
            .header("host", HOST)
            .header("host", HOST)
            .body(Body::empty())
            .unwrap();
        h.call(req)
            .await
            .assert_refused(400, "invalid_request", Error::MultipleHostHeaders);
    }
    // HTTP/1.0 may leave Host out: framing passes, and the origin check
    // decides (here the allowed host cannot be checked; with a public base
    // URL the request goes through).
    send(&h, Version::HTTP_10, PATH, &[]).await.assert_refused(
        400,
        "invalid_request",
        Error::MissingHost,
    );
    let h = Harness::with(|b| b.origin(format!("https://{HOST}")));
    assert_eq!(send(&h, Version::HTTP_10, PATH, &[]).await.status, 200);
}

// ------------------------------------------------------------ real sockets

/// The harness app served by senderbound's server on loopback.
async fn serve(h: &Harness) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = h.app.clone();
    tokio::spawn(std::future::IntoFuture::into_future(
        senderbound::serve::serve(listener, app),
    ));
    addr
}

/// Sends `head` (the request line and header fields, CRLF-separated; the
/// credentials are added) on a fresh connection; the status line and
/// every `www-authenticate` line of the answer.
async fn raw(addr: std::net::SocketAddr, head: &str, h: &Harness) -> (String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let token = h.token();
    let proof = h.proof("GET", PATH, &token);
    let request = format!(
        "{head}\r\nAuthorization: DPoP {token}\r\nDPoP: {proof}\r\nConnection: close\r\n\r\n"
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let challenge = answer
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect::<Vec<_>>()
        .join(" | ");
    (status, challenge)
}

/// HTTP/1.1 over a socket: what hyper passes on (no Host, two of them, a
/// Host that is not an authority, an absolute-form target naming another
/// host, a fragment it silently drops) is refused by the Layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_framing_over_a_socket() {
    for (mode, configure) in origin_modes() {
        let h = Harness::with(configure);
        let addr = serve(&h).await;
        let (status, _) = raw(addr, &format!("GET {PATH} HTTP/1.1\r\nHost: {HOST}"), &h).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{mode}");
        for (head, error) in [
            (format!("GET {PATH} HTTP/1.1"), Error::MissingHost),
            (
                format!("GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nHost: {HOST}"),
                Error::MultipleHostHeaders,
            ),
            (
                format!("GET {PATH} HTTP/1.1\r\nHost: user@{HOST}"),
                Error::UserinfoInTarget,
            ),
            (
                format!("GET {PATH} HTTP/1.1\r\nHost: {HOST} x"),
                Error::InvalidHost,
            ),
            (
                format!("GET {PATH} HTTP/1.1\r\nHost: {HOST}/x"),
                Error::InvalidHost,
            ),
            (
                format!("GET https://other.example.test{PATH} HTTP/1.1\r\nHost: {HOST}"),
                Error::HostMismatch,
            ),
            (
                format!("GET https://user@{HOST}{PATH} HTTP/1.1\r\nHost: {HOST}"),
                Error::UserinfoInTarget,
            ),
            (
                format!("GET {PATH}#frag HTTP/1.1\r\nHost: {HOST}"),
                Error::FragmentInTarget,
            ),
            (
                format!("GET {PATH}?x=1#frag HTTP/1.1\r\nHost: {HOST}"),
                Error::FragmentInTarget,
            ),
        ] {
            let (status, challenge) = raw(addr, &head, &h).await;
            assert_eq!(status, "HTTP/1.1 400 Bad Request", "{mode}: {head:?}");
            assert!(
                challenge.contains("error=\"invalid_request\"")
                    && challenge.contains(error.description()),
                "{mode}: {head:?}: {challenge}"
            );
        }
    }
}

/// HTTP/2 (cleartext, prior knowledge) over a socket: the authority is
/// `:authority`, which the Layer uses and checks like `Host`; a `Host`
/// naming another one is malformed (RFC 9113 §8.3.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authority_over_a_socket() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    for (mode, configure) in origin_modes() {
        let h = Harness::with(configure);
        let addr = serve(&h).await;
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(connection);
        for (authority, host, expected) in [
            (HOST, None, Ok(())),
            (HOST, Some(HOST), Ok(())),
            ("API.example.test:443", None, Ok(())),
            (HOST, Some("other.example.test"), Err(Error::HostMismatch)),
            ("other.example.test", Some(HOST), Err(Error::HostMismatch)),
        ] {
            let token = h.token();
            let proof = h.proof("GET", PATH, &token);
            let mut req = http::Request::get(format!("https://{authority}{PATH}"))
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof);
            if let Some(host) = host {
                req = req.header("host", host);
            }
            let resp = sender
                .send_request(req.body(Empty::<Bytes>::new()).unwrap())
                .await
                .unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            let status = resp.status().as_u16();
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let _ = resp.into_body().collect().await;
            match expected {
                Ok(()) => assert_eq!(status, 200, "{mode} {authority} {host:?}: {challenge}"),
                Err(error) => {
                    assert_eq!(status, 400, "{mode} {authority} {host:?}");
                    assert!(
                        challenge.contains(error.description()),
                        "{mode} {authority} {host:?}: {challenge}"
                    );
                }
            }
        }
    }
}
