//! MCP over real HTTP: an rmcp Streamable HTTP server behind the Layer and
//! `Authorize`, called by rmcp's client through `DpopMcpClient`; and the
//! agent-side token request (`DpopSession::request_token`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Json;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{
    StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
};
use rmcp::{ClientHandler, ErrorData, ServiceExt, tool, tool_router};
use senderbound::authorize::{Denied, PolicyRequest};
use senderbound::clock::{Clock as _, SystemClock};
use senderbound::proof::Nonces;
use senderbound::tokens::Issuer;
use senderbound::{AuthorizeLayer, Sender, SenderBoundLayer};
use senderbound_client::mcp::DpopMcpClient;
use senderbound_client::{DpopKey, DpopSession, TokenError, TokenRequest};
use senderbound_suite::dev_as::DevAs;
use senderbound_suite::{TestIssuer, unverified_claims};
use serde_json::{Value, json};

#[derive(Clone)]
struct Tools;

#[tool_router(server_handler)]
impl Tools {
    #[tool(description = "The verified sender")]
    async fn whoami(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<Json<Value>, ErrorData> {
        let sender = parts
            .extensions
            .get::<Sender>()
            .ok_or_else(|| ErrorData::internal_error("no sender", None))?;
        Ok(Json(serde_json::to_value(sender).unwrap_or_default()))
    }

    #[tool(description = "Needs scope admin")]
    async fn rotate_keys(&self) -> String {
        "rotated".to_owned()
    }
}

fn admin_tools(req: &PolicyRequest) -> Result<(), Denied> {
    match req.tool() {
        Some("rotate_keys") if !req.sender().has_scope("admin") => {
            Err(Denied::new("rotate_keys needs admin").needs_scopes(["admin"]))
        }
        _ => Ok(()),
    }
}

#[derive(Clone, Default)]
struct Agent;
impl ClientHandler for Agent {}

/// Serves the tools behind the Layer (nonces required) on a loopback port.
async fn serve(issuer: &TestIssuer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let auth = SenderBoundLayer::builder()
        .trust(Issuer::new(issuer.issuer()).keys(issuer.jwks_json()))
        .audience(format!("{origin}/mcp"))
        .origin(&origin)
        .nonces(Nonces::new(&[7u8; 32]).unwrap())
        .build()
        .unwrap();
    let mcp = StreamableHttpService::new(
        || Ok(Tools),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default(),
    );
    let app = Router::new()
        .route_service("/mcp", mcp)
        .route_layer(AuthorizeLayer::new(admin_tools).inspect_mcp_calls())
        .layer(auth);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("{origin}/mcp")
}

fn session_with_token(issuer: &TestIssuer, server: &str, scope: &str) -> Arc<DpopSession> {
    let session = Arc::new(DpopSession::new(DpopKey::generate()));
    let now = SystemClock.now();
    let claims = issuer.claims(server, Some(session.key().jkt()), scope, now);
    session.hold_token(issuer.sign(&claims));
    session
}

async fn connect(
    server: &str,
    session: Arc<DpopSession>,
) -> Result<
    rmcp::service::RunningService<rmcp::RoleClient, Agent>,
    rmcp::service::ClientInitializeError,
> {
    let transport = StreamableHttpClientTransport::with_client(
        DpopMcpClient::new(reqwest::Client::new(), session),
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            server.to_owned(),
        ),
    );
    Agent.serve(transport).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_with_dpop_reaches_tools_that_see_the_sender() {
    let issuer = TestIssuer::new("https://as.example.test");
    let server = serve(&issuer).await;
    let session = session_with_token(&issuer, &server, "read");
    // The server requires nonces: the first request is refused with
    // use_dpop_nonce, and the client learns one and retries.
    let mcp = connect(&server, session.clone()).await.expect("initialize");
    assert!(session.nonce_for(&server).is_some());
    let me = mcp
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap()
        .structured_content
        .unwrap();
    assert_eq!(me["jkt"], session.key().jkt());
    assert_eq!(me["binding"], "dpop");
    assert_eq!(me["scopes"], json!(["read"]));

    // The policy refuses the admin tool: 403 with the scope to ask for.
    let denied = mcp
        .call_tool(CallToolRequestParams::new("rotate_keys"))
        .await
        .unwrap_err();
    let text = format!("{denied:?}");
    assert!(
        text.contains("InsufficientScope")
            && text.contains("error=\\\"insufficient_scope\\\"")
            && text.contains("scope=\\\"admin\\\""),
        "{text}"
    );
    let _ = mcp.cancel().await;

    let admin = session_with_token(&issuer, &server, "read admin");
    let mcp = connect(&server, admin).await.expect("initialize");
    let rotated = mcp
        .call_tool(CallToolRequestParams::new("rotate_keys"))
        .await
        .unwrap();
    assert!(format!("{rotated:?}").contains("rotated"));
    let _ = mcp.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_with_a_token_bound_to_another_key_is_refused() {
    let issuer = TestIssuer::new("https://as.example.test");
    let server = serve(&issuer).await;
    let owner = session_with_token(&issuer, &server, "read");
    let thief = Arc::new(DpopSession::new(DpopKey::generate()));
    thief.hold_token(owner.access_token().unwrap());
    let error = connect(&server, thief).await.err().expect("refused");
    let text = format!("{error:?}");
    assert!(
        text.contains("AuthRequired") && text.contains("access token is bound to another key"),
        "{text}"
    );
}

/// The payload of a compact JWS.

#[tokio::test]
async fn request_token_gets_a_token_bound_to_the_session_key() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/as", listener.local_addr().unwrap());
    let dev = DevAs::new(&issuer, &["https://api.example.test"]).client(
        "agent",
        "s3cret:&=",
        &["read", "write"],
    );
    let endpoint = dev.token_endpoint().to_owned();
    let router = dev.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();

    let session = DpopSession::new(DpopKey::generate());
    let token = session
        .request_token(
            &http,
            &endpoint,
            &TokenRequest::client_credentials("agent", "s3cret:&=").scope("read"),
        )
        .await
        .unwrap();
    assert_eq!(token.token_type, "DPoP");
    let claims = unverified_claims(&token.access_token);
    assert_eq!(claims["cnf"]["jkt"], session.key().jkt());
    assert_eq!(claims["scope"], "read");
    assert_eq!(session.access_token(), Some(token.access_token.clone()));
    // Neither the session's nor the response's Debug shows the token.
    for debug in [format!("{session:?}"), format!("{token:?}")] {
        assert!(!debug.contains(&token.access_token), "{debug}");
    }

    let refused = |r: Result<_, TokenError>| match r {
        Err(TokenError::Refused { status, error }) => (status, error.unwrap_or_default()),
        other => panic!("{other:?}"),
    };
    let wrong_secret = session
        .request_token(
            &http,
            &endpoint,
            &TokenRequest::client_credentials("agent", "nope"),
        )
        .await;
    assert_eq!(refused(wrong_secret), (401, "invalid_client".into()));
    let too_much = session
        .request_token(
            &http,
            &endpoint,
            &TokenRequest::client_credentials("agent", "s3cret:&=").scope("admin"),
        )
        .await;
    assert_eq!(refused(too_much), (400, "invalid_scope".into()));
}

/// A fake AS: asks for a nonce first (RFC 9449 §8), then answers with
/// `token_type` as configured.
#[derive(Clone)]
struct FakeAs {
    calls: Arc<AtomicUsize>,
    token_type: &'static str,
}

async fn fake_token(State(fake): State<FakeAs>, headers: HeaderMap) -> axum::response::Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let proof = headers
        .get("dpop")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if unverified_claims(proof)["nonce"] != "as-nonce-1" {
        return (
            StatusCode::BAD_REQUEST,
            [("dpop-nonce", "as-nonce-1")],
            axum::Json(json!({"error": "use_dpop_nonce"})),
        )
            .into_response();
    }
    axum::Json(
        json!({"access_token": "opaque-token", "token_type": fake.token_type, "expires_in": 60}),
    )
    .into_response()
}

async fn fake_as(token_type: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/token", listener.local_addr().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/token", post(fake_token))
        .with_state(FakeAs {
            calls: calls.clone(),
            token_type,
        });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, calls)
}

#[tokio::test]
async fn request_token_retries_once_with_the_nonce_the_as_asks_for() {
    let (endpoint, calls) = fake_as("DPoP").await;
    let session = DpopSession::new(DpopKey::generate());
    let request = TokenRequest::client_credentials("c", "s");
    let token = session
        .request_token(&reqwest::Client::new(), &endpoint, &request)
        .await
        .unwrap();
    assert_eq!(token.access_token, "opaque-token");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The nonce is remembered: the next request needs no retry.
    session
        .request_token(&reqwest::Client::new(), &endpoint, &request)
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_unbound_token_from_the_as_is_refused() {
    let (endpoint, _) = fake_as("Bearer").await;
    let session = DpopSession::new(DpopKey::generate());
    let result = session
        .request_token(
            &reqwest::Client::new(),
            &endpoint,
            &TokenRequest::client_credentials("c", "s"),
        )
        .await;
    assert!(matches!(result, Err(TokenError::NotBound)), "{result:?}");
    assert_eq!(session.access_token(), None);
}
