//! End to end against an independent, widely used authorization server:
//! node-oidc-provider (tests/real_as/as.mjs) issues DPoP-bound and
//! certificate-bound (mTLS) JWT and opaque access tokens; the
//! `resource_server` and `mtls_server` examples, run as their own
//! processes, verify them. Ignored by plain `cargo test` because they need
//! Node.js, `npm ci` in tests/real_as and the built examples;
//! `scripts/test.sh` prepares all three and runs them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use senderbound_client::DpopKey;
use senderbound_suite::answer::Answer;
use senderbound_suite::process::{self, Process, free_port, root, start};
use serde_json::Value;

const AUDIENCE: &str = "https://api.example.test/";

fn start_as(port: u16, scratch: &Path, extra: &[&str]) -> Process {
    let mut node = Command::new("node");
    node.current_dir(root().join("tests/real_as"))
        .arg("as.mjs")
        .args(["--port", &port.to_string()])
        .arg("--keys")
        .arg(scratch.join("as-keys.json"))
        .args(extra);
    start(node, "as ready", &scratch.join("as.log")).0
}

/// Starts the resource_server example; returns it and its base URL.
fn start_rs(scratch: &Path, name: &str, args: &[&str]) -> (Process, String) {
    start_example("resource_server", scratch, name, args)
}

/// Starts example `example` listening on a free port, for [`AUDIENCE`].
fn start_example(example: &str, scratch: &Path, name: &str, args: &[&str]) -> (Process, String) {
    let mut all = vec!["--listen", "127.0.0.1:0", "--audience", AUDIENCE];
    all.extend_from_slice(args);
    process::start_example(example, &all, scratch, name)
}

/// A client_credentials token from the AS, bound to `key` with DPoP.
async fn token(
    http: &reqwest::Client,
    issuer: &str,
    client: &str,
    key: &DpopKey,
    resource: &str,
) -> String {
    let endpoint = format!("{issuer}/token");
    let request = http
        .post(&endpoint)
        .header("dpop", key.proof("POST", &endpoint).unwrap().sign());
    client_credentials(request, client, "read write", resource, "DPoP").await
}

/// The access token of a client_credentials `request` by `client` (secret
/// `<client>-secret`), which must succeed with `token_type`.
async fn client_credentials(
    request: reqwest::RequestBuilder,
    client: &str,
    scope: &str,
    resource: &str,
    token_type: &str,
) -> String {
    let form = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    let answer = Answer::of(
        request
            .basic_auth(client, Some(format!("{client}-secret")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&scope={}&resource={}",
                form(scope),
                form(resource)
            )),
    )
    .await;
    assert_eq!(answer.status, 200, "token request failed: {answer:?}");
    assert_eq!(answer.body["token_type"], token_type, "{answer:?}");
    answer.body["access_token"].as_str().unwrap().to_owned()
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    authorization: &str,
    proof: Option<String>,
) -> Answer {
    let mut request = http
        .request(method.parse().unwrap(), url)
        .header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    Answer::of(request).await
}

/// A DPoP call with a fresh proof by `key`.
async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: &str,
    key: &DpopKey,
) -> Answer {
    let proof = key.proof(method, url).unwrap().access_token(token).sign();
    send(http, method, url, &format!("DPoP {token}"), Some(proof)).await
}

#[tokio::test]
#[ignore = "needs Node.js, `npm ci` in tests/real_as and the resource_server example; scripts/test.sh runs it"]
async fn resource_server_against_node_oidc_provider() {
    let scratch = std::env::temp_dir().join(format!("senderbound-real-as-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut authorization_server = start_as(port, &scratch, &[]);
    let (_rs, rs) = start_rs(
        &scratch,
        "rs",
        &[
            "--issuer",
            &issuer,
            "--allow-bearer",
            "--jwks-refresh-secs",
            "1",
            "--jwks-min-refresh-secs",
            "0",
            "--token-leeway-secs",
            "0",
        ],
    );
    // No pooled connections: the AS restarts under the same address.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let key = DpopKey::generate();

    // Valid call: discovery, JWKS, proof, binding, audience, scope.
    let first = token(&http, &issuer, "agent", &key, AUDIENCE).await;
    let a = call(&http, "GET", &format!("{rs}/whoami"), &first, &key).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["binding"], "dpop");
    assert_eq!(a.body["jkt"], key.jkt());
    assert_eq!(a.body["iss"], issuer.as_str());
    assert_eq!(a.body["client_id"], "agent");
    assert_eq!(a.body["aud"], serde_json::json!([AUDIENCE]));
    assert!(
        a.body["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "read")
    );
    assert_eq!(
        call(&http, "GET", &format!("{rs}/api/read"), &first, &key)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&http, "POST", &format!("{rs}/api/write"), &first, &key)
            .await
            .status,
        200
    );

    // Replay: the same proof twice.
    let url = format!("{rs}/api/read");
    let proof = key.proof("GET", &url).unwrap().access_token(&first).sign();
    let auth = format!("DPoP {first}");
    assert_eq!(
        send(&http, "GET", &url, &auth, Some(proof.clone()))
            .await
            .status,
        200
    );
    send(&http, "GET", &url, &auth, Some(proof)).await.refused(
        401,
        Some("invalid_dpop_proof"),
        senderbound::Error::ProofReplayed,
    );

    // Another key: the token is stolen, the thief signs with its own key.
    let thief = DpopKey::generate();
    call(&http, "GET", &url, &first, &thief).await.refused(
        401,
        Some("invalid_token"),
        senderbound::Error::TokenBindingMismatch,
    );

    // Downgrade: the DPoP-bound token as a Bearer token.
    send(&http, "GET", &url, &format!("Bearer {first}"), None)
        .await
        .refused(
            401,
            Some("invalid_token"),
            senderbound::Error::TokenDowngrade,
        );

    // Wrong audience: a token for another resource.
    let other = token(&http, &issuer, "agent", &key, "https://other.example.test/").await;
    call(&http, "GET", &url, &other, &key).await.refused(
        401,
        Some("invalid_token"),
        senderbound::Error::TokenAudience,
    );

    // Expired: a 1-second token, used 2.5 seconds later (leeway 0).
    let short = token(&http, &issuer, "agent-short", &key, AUDIENCE).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    call(&http, "GET", &url, &short, &key).await.refused(
        401,
        Some("invalid_token"),
        senderbound::Error::TokenExpired,
    );

    // Opaque token: introspected by a resource server configured for it;
    // the JWT-only one cannot read it.
    let (_rs_introspecting, rs2) = start_rs(
        &scratch,
        "rs-introspecting",
        &[
            "--issuer",
            &issuer,
            "--client-id",
            "resource-server",
            "--client-secret",
            "resource-server-secret",
        ],
    );
    let opaque = token(&http, &issuer, "agent-opaque", &key, AUDIENCE).await;
    assert!(!opaque.contains('.'), "the AS should issue an opaque token");
    let a = call(&http, "GET", &format!("{rs2}/whoami"), &opaque, &key).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["jkt"], key.jkt());
    assert_eq!(a.body["client_id"], "agent-opaque");
    call(&http, "GET", &format!("{rs2}/whoami"), &opaque, &thief)
        .await
        .refused(
            401,
            Some("invalid_token"),
            senderbound::Error::TokenBindingMismatch,
        );
    call(
        &http,
        "GET",
        &format!("{rs2}/whoami"),
        "made-up-opaque-token",
        &key,
    )
    .await
    .refused(
        401,
        Some("invalid_token"),
        senderbound::Error::TokenInactive,
    );
    call(&http, "GET", &url, &opaque, &key).await.refused(
        401,
        Some("invalid_token"),
        senderbound::Error::TokenMalformed,
    );

    // Introspection endpoint given explicitly, next to discovery: JWTs are
    // still verified with the discovered keys (node-oidc-provider refuses
    // to introspect its JWTs), opaque tokens are introspected there.
    let (_rs_explicit, rs3) = start_rs(
        &scratch,
        "rs-introspection-url",
        &[
            "--issuer",
            &issuer,
            "--introspection-url",
            &format!("{issuer}/token/introspection"),
            "--client-id",
            "resource-server",
            "--client-secret",
            "resource-server-secret",
        ],
    );
    let a = call(&http, "GET", &format!("{rs3}/whoami"), &first, &key).await;
    assert_eq!(a.status, 200, "a JWT next to introspection: {}", a.body);
    assert_eq!(a.body["client_id"], "agent");
    let a = call(&http, "GET", &format!("{rs3}/whoami"), &opaque, &key).await;
    assert_eq!(
        a.status, 200,
        "an opaque token at the given endpoint: {}",
        a.body
    );
    assert_eq!(a.body["client_id"], "agent-opaque");

    // Key rotation: the AS restarts with a new signing key in front.
    drop(authorization_server);
    authorization_server = start_as(port, &scratch, &["--rotate"]);
    let rotated = token(&http, &issuer, "agent", &key, AUDIENCE).await;
    let a = call(&http, "GET", &url, &rotated, &key).await;
    assert_eq!(
        a.status, 200,
        "a token from the new key after one refresh: {}",
        a.body
    );

    // The AS drops the old key: the first token (still unexpired, and in
    // the verified-token cache) stops working after a refresh.
    drop(authorization_server);
    authorization_server = start_as(port, &scratch, &["--drop-old"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut a = call(&http, "GET", &url, &first, &key).await;
    while a.status == 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        a = call(&http, "GET", &url, &first, &key).await;
    }
    a.refused(
        401,
        Some("invalid_token"),
        senderbound::Error::TokenUnknownKey,
    );

    // The AS goes away. A token by a key the server already has keeps
    // working; a token by a key it never saw cannot be decided: 503.
    let known = token(&http, &issuer, "agent", &key, AUDIENCE).await;
    drop(authorization_server);
    authorization_server = start_as(port, &scratch, &["--rotate"]);
    let unseen = token(&http, &issuer, "agent", &key, AUDIENCE).await;
    drop(authorization_server);
    let a = call(&http, "GET", &url, &known, &key).await;
    assert_eq!(
        a.status, 200,
        "cached keys keep working while the AS is down: {}",
        a.body
    );
    call(&http, "GET", &url, &unseen, &key).await.refused(
        503,
        None,
        senderbound::Error::TokenVerifierUnavailable,
    );

    let _ = std::fs::remove_dir_all(&scratch);
}

/// A client_credentials token for the certificate-bound `client`, asked
/// over the AS's mTLS listener by `http` (which presents the certificate).
/// RFC 8705 tokens are Bearer tokens: the binding is in `cnf`.
async fn certificate_bound_token(
    http: &reqwest::Client,
    mtls_issuer: &str,
    client: &str,
    resource: &str,
) -> String {
    let request = http.post(format!("{mtls_issuer}/token"));
    client_credentials(request, client, "read", resource, "Bearer").await
}

#[tokio::test]
#[ignore = "needs Node.js, `npm ci` in tests/real_as and the mtls_server example; scripts/test.sh runs it"]
async fn mtls_server_against_node_oidc_provider() {
    use base64::Engine as _;
    use senderbound_suite::pki::{Identity, Present, der_from_pem, https_client};

    let scratch =
        std::env::temp_dir().join(format!("senderbound-real-as-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    // The AS's TLS certificate: made here, written to the scratch directory.
    let as_identity = Identity::localhost();
    std::fs::write(scratch.join("as.pem"), &as_identity.cert_pem).unwrap();
    std::fs::write(scratch.join("as-key.pem"), &as_identity.key_pem).unwrap();
    let (port, mtls_port) = (free_port(), free_port());
    let issuer = format!("http://127.0.0.1:{port}");
    let mtls_issuer = format!("https://127.0.0.1:{mtls_port}");
    let _authorization_server = start_as(
        port,
        &scratch,
        &[
            "--mtls-port",
            &mtls_port.to_string(),
            "--tls-cert",
            scratch.join("as.pem").to_str().unwrap(),
            "--tls-key",
            scratch.join("as-key.pem").to_str().unwrap(),
        ],
    );
    let (alice, mallory) = (
        Identity::self_signed(&["alice"]),
        Identity::self_signed(&["mallory"]),
    );
    let to_as = https_client(&as_identity.der, Present::Cert(&alice))
        .build()
        .unwrap();

    // The AS binds the token to Alice's certificate: the thumbprint it
    // computed (Node) is the one we compute (RFC 8705 §3.1).
    let jwt = certificate_bound_token(&to_as, &mtls_issuer, "mtls-agent", AUDIENCE).await;
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], alice.x5t_s256(), "{claims}");

    let rs_cert = scratch.join("rs.pem");
    let (_rs, rs) = start_example(
        "mtls_server",
        &scratch,
        "mtls-rs",
        &[
            "--issuer",
            &issuer,
            "--self-signed-cert-out",
            rs_cert.to_str().unwrap(),
            "--client-id",
            "resource-server",
            "--client-secret",
            "resource-server-secret",
        ],
    );
    assert!(rs.starts_with("https://"), "{rs}");
    let rs_der = der_from_pem(&std::fs::read_to_string(&rs_cert).unwrap());
    let as_alice = https_client(&rs_der, Present::Cert(&alice))
        .build()
        .unwrap();
    let as_mallory = https_client(&rs_der, Present::Cert(&mallory))
        .build()
        .unwrap();
    let without_cert = https_client(&rs_der, Present::Nothing).build().unwrap();
    let whoami = format!("{rs}/whoami");
    let bearer = format!("Bearer {jwt}");

    // Alice, with her certificate: accepted as mTLS-bound.
    let a = send(&as_alice, "GET", &whoami, &bearer, None).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["binding"], "mtls");
    assert_eq!(a.body["x5t#S256"], alice.x5t_s256());
    assert_eq!(a.body["client_id"], "mtls-agent");
    assert_eq!(a.body["iss"], issuer.as_str());
    assert_eq!(
        send(&as_alice, "GET", &format!("{rs}/api/read"), &bearer, None)
            .await
            .status,
        200
    );
    // The token leaked to Mallory, or to someone without a certificate.
    send(&as_mallory, "GET", &whoami, &bearer, None)
        .await
        .refused(
            401,
            Some("invalid_token"),
            senderbound::Error::TokenCertificateMismatch,
        );
    send(&without_cert, "GET", &whoami, &bearer, None)
        .await
        .refused(
            401,
            Some("invalid_token"),
            senderbound::Error::CertificateMissing,
        );

    // An opaque certificate-bound token: introspection says `cnf.x5t#S256`.
    let opaque = certificate_bound_token(&to_as, &mtls_issuer, "mtls-opaque", AUDIENCE).await;
    assert!(!opaque.contains('.'), "the AS should issue an opaque token");
    let opaque_bearer = format!("Bearer {opaque}");
    let a = send(&as_alice, "GET", &whoami, &opaque_bearer, None).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["binding"], "mtls");
    assert_eq!(a.body["client_id"], "mtls-opaque");
    send(&as_mallory, "GET", &whoami, &opaque_bearer, None)
        .await
        .refused(
            401,
            Some("invalid_token"),
            senderbound::Error::TokenCertificateMismatch,
        );

    // DPoP clients use the same server, without a certificate.
    let key = DpopKey::generate();
    let plain = reqwest::Client::new();
    let dpop_token = token(&plain, &issuer, "agent", &key, AUDIENCE).await;
    let a = call(&without_cert, "GET", &whoami, &dpop_token, &key).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["binding"], "dpop");

    let _ = std::fs::remove_dir_all(&scratch);
}
