//! A tonic gRPC API behind the Layer, called by tonic's client over HTTP/2
//! on a real socket: `htm` is POST and `htu` the public origin plus
//! `/package.Service/Method`; each method has its own scope; refusals are
//! what gRPC clients understand (a `grpc-status`, with the challenge and
//! the nonce still readable in the response metadata).

use std::future::Future;
use std::time::Duration;

use senderbound::authorize::{Denied, PolicyRequest};
use senderbound::proof::Nonces;
use senderbound::replay::{ReplayError, ReplayKey, ReplayStore};
use senderbound::{AuthorizeLayer, Error, SenderBoundBuilder, SenderBoundLayer};
use senderbound_client::DpopKey;
use senderbound_suite::TestIssuer;
use senderbound_suite::grpc::{
    HEALTH_CHECK, HEALTH_WATCH, WHOAMI_GET, WhoamiReply, WhoamiRequest, routes,
};
use senderbound_suite::pki::Identity;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const ISSUER: &str = "https://as.grpc.test";
const AUDIENCE: &str = "https://grpc.example.test";

struct Api {
    origin: String,
    issuer: TestIssuer,
    channel: Channel,
}

impl Api {
    /// The gRPC routes behind a Layer configured by `configure`, served
    /// (HTTP/1.1 and HTTP/2) on a loopback port, and a channel to them.
    async fn start(configure: impl FnOnce(SenderBoundBuilder) -> SenderBoundBuilder) -> Api {
        Self::start_with(None, configure).await
    }

    /// [`start`](Self::start) with `policy` on every method.
    async fn start_with_policy(policy: AuthorizeLayer) -> Api {
        Self::serve(None, |b| b, routes().route_layer(policy)).await
    }

    /// [`start`](Self::start), over TLS with `identity`'s certificate when
    /// given (ALPN h2).
    async fn start_with(
        identity: Option<Identity>,
        configure: impl FnOnce(SenderBoundBuilder) -> SenderBoundBuilder,
    ) -> Api {
        Self::serve(identity.map(|i| (i, None)), configure, routes()).await
    }

    /// Over TLS with the server's identity and, if given, the client's
    /// certificate presented.
    async fn serve(
        tls: Option<(Identity, Option<Identity>)>,
        configure: impl FnOnce(SenderBoundBuilder) -> SenderBoundBuilder,
        routes: axum::Router,
    ) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let origin = match tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let issuer = TestIssuer::new(ISSUER);
        let auth = configure(
            SenderBoundLayer::builder()
                .trust(issuer.trust())
                .audience(AUDIENCE)
                .origin(origin.as_str()),
        )
        .build()
        .unwrap();
        let app = routes.layer(auth);
        let mut endpoint = Channel::from_shared(origin.clone()).unwrap();
        match tls {
            Some((identity, client)) => {
                let config = senderbound::tls::server_config(
                    identity.cert_pem.as_bytes(),
                    identity.key_pem.as_bytes(),
                    senderbound::tls::AnyClientCert::optional,
                )
                .unwrap();
                tokio::spawn(async move {
                    let _ = senderbound::tls::serve(listener, config, app).await;
                });
                let mut trust = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&identity.cert_pem))
                    .domain_name("localhost");
                if let Some(client) = client {
                    trust = trust.identity(tonic::transport::Identity::from_pem(
                        &client.cert_pem,
                        &client.key_pem,
                    ));
                }
                endpoint = endpoint.tls_config(trust).unwrap();
            }
            None => {
                tokio::spawn(async move {
                    let _ = senderbound::serve::serve(listener, app).await;
                });
            }
        }
        let channel = endpoint.connect().await.unwrap();
        Api {
            origin,
            issuer,
            channel,
        }
    }

    fn token(&self, key: &DpopKey, scope: &str) -> String {
        self.issuer
            .token(AUDIENCE)
            .bound_to(key)
            .scopes([scope])
            .sign()
    }

    /// A proof for `method` (`/package.Service/Method`), POST.
    fn proof(&self, key: &DpopKey, method: &str, token: &str) -> String {
        key.proof("POST", &format!("{}{method}", self.origin))
            .unwrap()
            .access_token(token)
            .sign()
    }

    /// `demo.Whoami/Get` with these credentials.
    async fn whoami(&self, authorization: &str, dpop: Option<&str>) -> Result<WhoamiReply, Status> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.unwrap();
        let request = with_credentials(WhoamiRequest {}, authorization, dpop);
        grpc.unary(
            request,
            http::uri::PathAndQuery::from_static(WHOAMI_GET),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    /// `grpc.health.v1.Health/Check` with these credentials: the serving
    /// status.
    async fn check(&self, authorization: &str, dpop: Option<&str>) -> Result<i32, Status> {
        let request = with_credentials(HealthCheckRequest::default(), authorization, dpop);
        HealthClient::new(self.channel.clone())
            .check(request)
            .await
            .map(|r| r.into_inner().status)
    }
}

fn with_credentials<T>(message: T, authorization: &str, dpop: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    metadata.insert("authorization", authorization.parse().unwrap());
    if let Some(proof) = dpop {
        metadata.insert("dpop", proof.parse().unwrap());
    }
    request
}

/// Asserts a refusal in gRPC's terms: the code, the message (the error's
/// description) and, on a 401/403, the challenge's `error=` in the metadata.
#[track_caller]
fn assert_refused(result: Result<impl std::fmt::Debug, Status>, code: Code, error: Error) {
    let status = match result {
        Err(status) => status,
        Ok(answer) => panic!("accepted: {answer:?}"),
    };
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), error.description(), "{status:?}");
    let challenges: Vec<&str> = status
        .metadata()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    match error.code() {
        Some(oauth) if !error.is_unavailable() => assert!(
            challenges
                .iter()
                .any(|c| c.contains(&format!("error=\"{}\"", oauth.as_str()))),
            "challenges {challenges:?}"
        ),
        // A 503 or a policy refusal: no challenge (RFC 9110 §15.6.4).
        _ if error.is_unavailable() || error == Error::PolicyDenied => {
            assert!(challenges.is_empty(), "{challenges:?}")
        }
        _ => {}
    }
    let cache = status.metadata().get("cache-control");
    assert_eq!(cache.and_then(|v| v.to_str().ok()), Some("no-store"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_call_reaches_the_handler_with_its_sender() {
    let api = Api::start(|b| b).await;
    let key = DpopKey::generate();
    let token = api.token(&key, "whoami");
    let proof = api.proof(&key, WHOAMI_GET, &token);
    let reply = api
        .whoami(&format!("DPoP {token}"), Some(&proof))
        .await
        .unwrap();
    let sender: serde_json::Value = serde_json::from_str(&reply.sender_json).unwrap();
    assert_eq!(sender["jkt"], key.jkt());
    assert_eq!(sender["binding"], "dpop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_stolen_downgraded_and_misdirected_calls_are_unauthenticated() {
    let api = Api::start(|b| b).await;
    let key = DpopKey::generate();
    let token = api.token(&key, "whoami");
    let dpop = format!("DPoP {token}");

    // The same proof twice.
    let proof = api.proof(&key, WHOAMI_GET, &token);
    assert!(api.whoami(&dpop, Some(&proof)).await.is_ok());
    assert_refused(
        api.whoami(&dpop, Some(&proof)).await,
        Code::Unauthenticated,
        Error::ProofReplayed,
    );
    // The token with a proof by another key (a stolen token).
    let thief = DpopKey::generate();
    let proof = api.proof(&thief, WHOAMI_GET, &token);
    assert_refused(
        api.whoami(&dpop, Some(&proof)).await,
        Code::Unauthenticated,
        Error::TokenBindingMismatch,
    );
    // The bound token as a bearer token.
    assert_refused(
        api.whoami(&format!("Bearer {token}"), None).await,
        Code::Unauthenticated,
        Error::TokenDowngrade,
    );
    // A proof made for another method.
    let proof = api.proof(&key, HEALTH_CHECK, &token);
    assert_refused(
        api.whoami(&dpop, Some(&proof)).await,
        Code::Unauthenticated,
        Error::ProofUriMismatch,
    );
    // A proof for GET (gRPC calls are POSTs).
    let proof = key
        .proof("GET", &format!("{}{WHOAMI_GET}", api.origin))
        .unwrap()
        .access_token(&token)
        .sign();
    assert_refused(
        api.whoami(&dpop, Some(&proof)).await,
        Code::Unauthenticated,
        Error::ProofMethodMismatch,
    );
    // No credentials at all: UNAUTHENTICATED, and the DPoP challenge.
    let mut health = HealthClient::new(api.channel.clone());
    let bare = health
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(bare.code(), Code::Unauthenticated, "{bare:?}");
    let challenge = bare.metadata().get("www-authenticate").unwrap();
    assert!(
        challenge.to_str().unwrap().starts_with("DPoP "),
        "{challenge:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_method_needs_its_own_scope() {
    let api = Api::start(|b| b).await;
    let key = DpopKey::generate();
    // Scope `whoami`: Get answers, Check is PERMISSION_DENIED with the
    // scope it needs in the challenge.
    let token = api.token(&key, "whoami");
    let dpop = format!("DPoP {token}");
    assert!(
        api.whoami(&dpop, Some(&api.proof(&key, WHOAMI_GET, &token)))
            .await
            .is_ok()
    );
    let refused = api
        .check(&dpop, Some(&api.proof(&key, HEALTH_CHECK, &token)))
        .await;
    let status = refused.as_ref().unwrap_err().clone();
    assert_refused(refused, Code::PermissionDenied, Error::InsufficientScope);
    let challenge = status.metadata().get("www-authenticate").unwrap();
    assert!(
        challenge.to_str().unwrap().contains("scope=\"health\""),
        "{challenge:?}"
    );
    // Scope `health`: Check answers SERVING (1); Watch needs its own.
    let token = api.token(&key, "health");
    let dpop = format!("DPoP {token}");
    assert_eq!(
        api.check(&dpop, Some(&api.proof(&key, HEALTH_CHECK, &token)))
            .await
            .unwrap(),
        1
    );
    let mut watch = with_credentials(
        HealthCheckRequest::default(),
        &dpop,
        Some(&api.proof(&key, HEALTH_WATCH, &token)),
    );
    watch.set_timeout(Duration::from_secs(5));
    assert_refused(
        HealthClient::new(api.channel.clone())
            .watch(watch)
            .await
            .map(|_| ()),
        Code::PermissionDenied,
        Error::InsufficientScope,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_is_asked_for_in_the_metadata_and_a_retry_with_it_succeeds() {
    let api = Api::start(|b| {
        b.nonces(Nonces::new(b"grpc nonce secret, 32 bytes or more".as_slice()).unwrap())
    })
    .await;
    let key = DpopKey::generate();
    let token = api.token(&key, "whoami");
    let dpop = format!("DPoP {token}");
    let first = api
        .whoami(&dpop, Some(&api.proof(&key, WHOAMI_GET, &token)))
        .await;
    let status = first.as_ref().unwrap_err().clone();
    assert_refused(first, Code::Unauthenticated, Error::NonceMissing);
    let nonce = status
        .metadata()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .expect("a DPoP-Nonce in the metadata")
        .to_owned();
    let proof = key
        .proof("POST", &format!("{}{WHOAMI_GET}", api.origin))
        .unwrap()
        .access_token(&token)
        .nonce(nonce)
        .sign();
    assert!(api.whoami(&dpop, Some(&proof)).await.is_ok());
}

/// A replay store that cannot be reached.
struct Down;

impl ReplayStore for Down {
    fn check_and_insert(
        &self,
        _key: ReplayKey,
        _ttl: Duration,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send {
        std::future::ready(Err(ReplayError::Unavailable))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_dependency_is_unavailable() {
    let api = Api::start(|b| b.replay_store(Down)).await;
    let key = DpopKey::generate();
    let token = api.token(&key, "whoami");
    assert_refused(
        api.whoami(
            &format!("DPoP {token}"),
            Some(&api.proof(&key, WHOAMI_GET, &token)),
        )
        .await,
        Code::Unavailable,
        Error::ReplayStoreUnavailable,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_is_an_invalid_argument() {
    let api = Api::start(|b| b).await;
    assert_refused(
        api.whoami("DPoP a b c", None).await,
        Code::InvalidArgument,
        Error::MalformedAuthorization,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_client_with_the_dpop_layer_signs_every_call_and_retries_for_a_nonce() {
    use senderbound_client::{DpopBody, DpopLayer, DpopSession};
    use std::sync::Arc;
    let api = Api::start(|b| {
        b.nonces(Nonces::new(b"grpc nonce secret, 32 bytes or more".as_slice()).unwrap())
    })
    .await;
    let key = DpopKey::generate();
    let session = Arc::new(DpopSession::new(key.clone()));
    session.hold_token(
        api.issuer
            .token(AUDIENCE)
            .bound_to(&key)
            .scopes(["health", "whoami"])
            .sign(),
    );
    let rebuild = |body: DpopBody<tonic::body::Body>| tonic::body::Body::new(body);
    let channel = tower::ServiceBuilder::new()
        .layer(DpopLayer::new(session.clone(), &api.origin, rebuild).unwrap())
        .service(api.channel.clone());
    // The generated client, on the layered channel: no credentials in the
    // call. The server asks for a nonce first; the layer retries with it.
    let mut health = HealthClient::new(channel.clone());
    for _ in 0..3 {
        let answer = health.check(HealthCheckRequest::default()).await.unwrap();
        assert_eq!(answer.into_inner().status, 1);
    }
    assert!(session.nonce_for(&api.origin).is_some());
    // The hand-written method too, through tonic's generic client.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let reply: WhoamiReply = grpc
        .unary(
            tonic::Request::new(WhoamiRequest {}),
            http::uri::PathAndQuery::from_static(WHOAMI_GET),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(reply.sender_json.contains(key.jkt()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_http2_is_negotiated_and_the_same_checks_hold() {
    let api = Api::start_with(Some(Identity::localhost()), |b| b).await;
    let key = DpopKey::generate();
    let token = api.token(&key, "whoami");
    let dpop = format!("DPoP {token}");
    let proof = api.proof(&key, WHOAMI_GET, &token);
    let reply = api.whoami(&dpop, Some(&proof)).await.unwrap();
    assert!(reply.sender_json.contains(key.jkt()));
    assert_refused(
        api.whoami(&dpop, Some(&proof)).await,
        Code::Unauthenticated,
        Error::ProofReplayed,
    );
    // The htu is the https origin the client calls: a proof for http is
    // for another resource.
    let plain_http = api.origin.replacen("https://", "http://", 1);
    let proof = key
        .proof("POST", &format!("{plain_http}{WHOAMI_GET}"))
        .unwrap()
        .access_token(&token)
        .sign();
    assert_refused(
        api.whoami(&dpop, Some(&proof)).await,
        Code::Unauthenticated,
        Error::ProofUriMismatch,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_on_tonic_routes_is_permission_denied_without_a_challenge() {
    // Only the key `allowed` may call Get; anyone with the scope may check
    // health.
    let allowed = DpopKey::generate();
    let jkt = allowed.jkt().to_owned();
    let api = Api::start_with_policy(AuthorizeLayer::new(move |req: &PolicyRequest| {
        if req.path() == WHOAMI_GET && req.sender().binding().jkt() != Some(jkt.as_str()) {
            return Err(Denied::new("Get is for the allowed key only"));
        }
        Ok(())
    }))
    .await;
    let other = DpopKey::generate();
    let token = api.token(&other, "whoami");
    assert_refused(
        api.whoami(
            &format!("DPoP {token}"),
            Some(&api.proof(&other, WHOAMI_GET, &token)),
        )
        .await,
        Code::PermissionDenied,
        Error::PolicyDenied,
    );
    let token = api.token(&allowed, "whoami");
    let reply = api
        .whoami(
            &format!("DPoP {token}"),
            Some(&api.proof(&allowed, WHOAMI_GET, &token)),
        )
        .await
        .unwrap();
    assert!(reply.sender_json.contains(allowed.jkt()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_bound_token_over_http2_needs_its_certificate() {
    use senderbound::mtls::ConnectionCert;
    let client = Identity::self_signed(&["grpc-client"]);
    let api = Api::serve(
        Some((Identity::localhost(), Some(client.clone()))),
        |b| b.mtls(ConnectionCert),
        routes(),
    )
    .await;
    let bound = |x5t: &str| {
        api.issuer
            .token(AUDIENCE)
            .bound_to_certificate(x5t)
            .scopes(["whoami"])
            .sign()
    };
    // Bound to the certificate this HTTP/2 connection presented: served.
    let reply = api
        .whoami(&format!("Bearer {}", bound(&client.x5t_s256())), None)
        .await
        .unwrap();
    let sender: serde_json::Value = serde_json::from_str(&reply.sender_json).unwrap();
    assert_eq!(sender["binding"], "mtls");
    // Bound to another certificate: refused.
    let other = Identity::self_signed(&["someone-else"]);
    assert_refused(
        api.whoami(&format!("Bearer {}", bound(&other.x5t_s256())), None)
            .await,
        Code::Unauthenticated,
        Error::TokenCertificateMismatch,
    );
}
