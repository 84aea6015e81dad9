//! The client signs for the host it contacts. reqwest parses URLs with the
//! WHATWG rules of the `url` crate, which read `\` as `/`: a request to
//! `http://127.0.0.1:PORT\@api.example/x` goes to 127.0.0.1:PORT. Every
//! proof the client crate makes must name that host (never `api.example`,
//! where a relayed copy would be valid), and a nonce it receives belongs to
//! the origin that answered. A recording server on loopback sees what each
//! client entry point really sends.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use senderbound_client::mcp::DpopMcpClient;
use senderbound_client::{DpopKey, DpopSession, TokenRequest};
use senderbound_suite::unverified_claims;

/// What the recording server saw: the `htu` of each proof it received.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn htus(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Records the proof's `htu`, then asks for a nonce (as a resource server
/// or an authorization server would).
async fn record(State(seen): State<Seen>, headers: HeaderMap) -> axum::response::Response {
    let proof = headers
        .get("dpop")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let htu = unverified_claims(proof)["htu"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned();
    seen.0.lock().unwrap().push(htu);
    (
        StatusCode::UNAUTHORIZED,
        [
            ("www-authenticate", "DPoP error=\"use_dpop_nonce\""),
            ("dpop-nonce", "recorder-nonce"),
        ],
        axum::Json(serde_json::json!({"error": "use_dpop_nonce"})),
    )
        .into_response()
}

/// A recording server on loopback; its `host:port`.
async fn recorder() -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let seen = Seen::default();
    let app = Router::new().fallback(record).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (host, seen)
}

#[tokio::test]
async fn dpop_session_signs_for_the_host_reqwest_contacts() {
    let (host, seen) = recorder().await;
    let session = DpopSession::new(DpopKey::generate());
    let url = format!(r"http://{host}\@api.example/items");
    let response = session
        .send(reqwest::Client::new().get(&url), "token")
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let expected = format!("http://{host}/@api.example/items");
    // The first attempt, and the one retry with the nonce: both for `host`.
    assert_eq!(seen.htus(), [expected.clone(), expected]);
    // The nonce is the origin's that answered, not api.example's.
    assert_eq!(
        session.nonce_for(&format!("http://{host}/")).as_deref(),
        Some("recorder-nonce")
    );
    assert_eq!(session.nonce_for("http://api.example/items"), None);
}

#[tokio::test]
async fn request_token_signs_for_the_host_reqwest_contacts() {
    let (host, seen) = recorder().await;
    let session = DpopSession::new(DpopKey::generate());
    let endpoint = format!(r"http://{host}\@as.example/token");
    let result = session
        .request_token(
            &reqwest::Client::new(),
            &endpoint,
            &TokenRequest::client_credentials("c", "s"),
        )
        .await;
    assert!(result.is_err());
    let htus = seen.htus();
    assert!(!htus.is_empty());
    for htu in htus {
        assert_eq!(htu, format!("http://{host}/@as.example/token"));
    }
    assert_eq!(
        session.nonce_for(&format!("http://{host}/")).as_deref(),
        Some("recorder-nonce")
    );
    assert_eq!(session.nonce_for("http://as.example/token"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rmcp_client_signs_for_the_host_reqwest_contacts() {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    #[derive(Clone, Default)]
    struct Agent;
    impl rmcp::ClientHandler for Agent {}

    let (host, seen) = recorder().await;
    let session = Arc::new(DpopSession::new(DpopKey::generate()));
    session.hold_token("token");
    let uri = format!(r"http://{host}\@api.example/mcp");
    let transport = StreamableHttpClientTransport::with_client(
        DpopMcpClient::new(reqwest::Client::new(), session),
        StreamableHttpClientTransportConfig::with_uri(uri),
    );
    assert!(
        Agent.serve(transport).await.is_err(),
        "the recorder refuses"
    );
    let htus = seen.htus();
    assert!(!htus.is_empty());
    for htu in htus {
        assert_eq!(htu, format!("http://{host}/@api.example/mcp"));
    }
}

#[test]
fn urls_reqwest_cannot_send_to_get_no_proof() {
    let key = DpopKey::generate();
    for bad in ["/relative", "ftp://a.example/x", "http://", "not a url"] {
        assert!(key.proof("GET", bad).is_err(), "{bad}");
    }
}
