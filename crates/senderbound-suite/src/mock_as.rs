//! A **test-only** authorization server on a loopback socket: RFC 8414
//! metadata, a JWKS whose keys tests rotate, and RFC 7662 introspection of
//! tokens tests register. It counts every fetch so tests can prove what the
//! resource server asked, can be switched to misbehaving ([`Fault`]), and
//! can be stopped and started again on the same port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};

use crate::TestIssuer;

/// The client id the mock's introspection endpoint accepts.
pub const RS_CLIENT_ID: &str = "resource-server";
/// The client secret the mock's introspection endpoint accepts.
pub const RS_CLIENT_SECRET: &str = "rs secret:with/odd&chars";

#[derive(Default)]
struct Counters {
    metadata: AtomicUsize,
    jwks: AtomicUsize,
    moved_jwks: AtomicUsize,
    introspection: AtomicUsize,
    introspecting_now: AtomicUsize,
    most_introspecting: AtomicUsize,
}

/// How every endpoint of the mock misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Answers correctly.
    #[default]
    None,
    /// `503 Service Unavailable`.
    Unavailable,
    /// Answers correctly, after this long.
    Slow(Duration),
    /// `200` with a body that is not JSON.
    Garbage,
    /// `200` with a 1 MiB JSON document (`Content-Length` given).
    Huge,
    /// `200` with a JSON body that never ends (chunked, no length).
    Endless,
}

struct AsState {
    issuer: String,
    /// Published keys; the first one signs new tokens.
    keys: Mutex<Vec<TestIssuer>>,
    opaque: Mutex<HashMap<String, Value>>,
    fault: Mutex<Fault>,
    rfc8414: AtomicBool,
    /// While `true`, both metadata locations answer 404.
    no_metadata: AtomicBool,
    /// Where the metadata says the keys are: `/jwks` (the default),
    /// `/jwks-moved` (after [`MockAs::move_jwks`]), or nowhere.
    jwks_location: Mutex<Option<&'static str>>,
    counters: Counters,
}

/// A running mock authorization server. Stops when dropped.
pub struct MockAs {
    addr: SocketAddr,
    state: Arc<AsState>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for MockAs {
    fn drop(&mut self) {
        self.stop();
    }
}

impl MockAs {
    /// Starts a mock AS on `127.0.0.1` with one signing key.
    pub async fn start() -> Self {
        let listener = listen("127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let state = Arc::new(AsState {
            keys: Mutex::new(vec![TestIssuer::new(issuer.clone())]),
            issuer,
            opaque: Mutex::new(HashMap::new()),
            fault: Mutex::new(Fault::None),
            rfc8414: AtomicBool::new(true),
            no_metadata: AtomicBool::new(false),
            jwks_location: Mutex::new(Some("/jwks")),
            counters: Counters::default(),
        });
        let mut mock = MockAs {
            addr,
            state,
            task: None,
        };
        mock.serve(listener);
        mock
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/.well-known/oauth-authorization-server", get(rfc8414))
            .route("/.well-known/openid-configuration", get(openid))
            .route("/jwks", get(jwks))
            .route("/jwks-moved", get(moved_jwks))
            .route("/introspect", post(introspect))
            // One request per connection: once stopped, the mock is
            // unreachable, with no kept-alive connection still answering.
            .layer(axum::middleware::map_response(
                |mut response: Response| async move {
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                    response
                },
            ))
            .with_state(self.state.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Stops listening: connections are refused until [`start_again`](Self::start_again).
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same address, with the same keys and tokens.
    pub async fn start_again(&mut self) {
        self.stop();
        tokio::task::yield_now().await;
        self.serve(listen(self.addr));
    }

    /// The issuer identifier (`http://127.0.0.1:port`).
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.state.issuer)
    }

    /// The introspection endpoint URL.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/introspect", self.state.issuer)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> TestIssuer {
        self.state.keys.lock().unwrap()[0].clone()
    }

    /// Generates a new key, publishes it first (it signs from now on) and
    /// returns it.
    pub fn rotate_in(&self) -> TestIssuer {
        let key = TestIssuer::new(self.state.issuer.clone());
        self.state.keys.lock().unwrap().insert(0, key.clone());
        key
    }

    /// Stops publishing the key with this `kid`.
    pub fn retire(&self, kid: &str) {
        self.state.keys.lock().unwrap().retain(|k| k.kid() != kid);
    }

    /// While `true`, every endpoint answers 503.
    pub fn set_down(&self, down: bool) {
        self.set_fault(if down {
            Fault::Unavailable
        } else {
            Fault::None
        });
    }

    /// Every endpoint misbehaves this way from now on.
    pub fn set_fault(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Serve metadata only at the OpenID Connect location (RFC 8414's answers 404).
    pub fn only_openid_configuration(&self) {
        self.state.rfc8414.store(false, Ordering::SeqCst);
    }

    /// While `true`, no metadata is published (both locations answer 404);
    /// the other endpoints answer as usual.
    pub fn publish_no_metadata(&self, none: bool) {
        self.state.no_metadata.store(none, Ordering::SeqCst);
    }

    /// From now on the metadata names `/jwks-moved` as `jwks_uri`, and the
    /// old `/jwks` answers 404.
    pub fn move_jwks(&self) {
        *self.state.jwks_location.lock().unwrap() = Some("/jwks-moved");
    }

    /// From now on the metadata names no `jwks_uri` (an AS whose tokens
    /// can only be introspected).
    pub fn hide_jwks_uri(&self) {
        *self.state.jwks_location.lock().unwrap() = None;
    }

    /// Registers an opaque token: introspection answers `answer` for it.
    pub fn register_opaque(&self, token: &str, answer: Value) {
        self.state
            .opaque
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    /// Metadata requests received so far (answered or failed; both locations).
    pub fn metadata_fetches(&self) -> usize {
        self.state.counters.metadata.load(Ordering::SeqCst)
    }

    /// JWKS requests received so far at `/jwks` (answered or failed).
    pub fn jwks_fetches(&self) -> usize {
        self.state.counters.jwks.load(Ordering::SeqCst)
    }

    /// JWKS requests received so far at `/jwks-moved`.
    pub fn moved_jwks_fetches(&self) -> usize {
        self.state.counters.moved_jwks.load(Ordering::SeqCst)
    }

    /// Introspection requests received so far.
    pub fn introspections(&self) -> usize {
        self.state.counters.introspection.load(Ordering::SeqCst)
    }

    /// The most introspection requests that were in progress at once.
    pub fn most_concurrent_introspections(&self) -> usize {
        self.state
            .counters
            .most_introspecting
            .load(Ordering::SeqCst)
    }
}

/// A listener that may take over an address a stopped mock left (its
/// closed connections linger in `TIME_WAIT`).
fn listen(addr: SocketAddr) -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(128).unwrap()
}

/// The answer a misbehaving endpoint gives instead of its own, if any
/// (after waiting, for [`Fault::Slow`]).
async fn misbehave(state: &AsState) -> Option<Response> {
    let fault = *state.fault.lock().unwrap();
    match fault {
        Fault::None => None,
        Fault::Unavailable => Some(StatusCode::SERVICE_UNAVAILABLE.into_response()),
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            None
        }
        Fault::Garbage => Some(
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                "<html>502 Bad Gateway</html>",
            )
                .into_response(),
        ),
        Fault::Huge => {
            let padding = "x".repeat(1024 * 1024);
            Some(Json(json!({"keys": [], "active": true, "padding": padding})).into_response())
        }
        Fault::Endless => Some(
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                axum::body::Body::new(Endless { started: false }),
            )
                .into_response(),
        ),
    }
}

/// A body of `{"keys":[` and then spaces forever, 16 KiB at a time.
struct Endless {
    started: bool,
}

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let chunk = if self.started {
            bytes::Bytes::from(vec![b' '; 16 * 1024])
        } else {
            self.started = true;
            bytes::Bytes::from_static(b"{\"keys\":[")
        };
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }
}

fn metadata(state: &AsState) -> Json<Value> {
    let mut metadata = json!({
        "issuer": state.issuer,
        "introspection_endpoint": format!("{}/introspect", state.issuer),
        "dpop_signing_alg_values_supported": ["ES256"],
    });
    if let Some(path) = *state.jwks_location.lock().unwrap() {
        metadata["jwks_uri"] = json!(format!("{}{path}", state.issuer));
    }
    Json(metadata)
}

async fn rfc8414(State(state): State<Arc<AsState>>) -> Response {
    state.counters.metadata.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    if !state.rfc8414.load(Ordering::SeqCst) || state.no_metadata.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    metadata(&state).into_response()
}

async fn openid(State(state): State<Arc<AsState>>) -> Response {
    state.counters.metadata.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehave(&state).await {
        return response;
    }
    if state.no_metadata.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    metadata(&state).into_response()
}

async fn jwks(State(state): State<Arc<AsState>>) -> Response {
    state.counters.jwks.fetch_add(1, Ordering::SeqCst);
    if *state.jwks_location.lock().unwrap() != Some("/jwks") {
        return StatusCode::NOT_FOUND.into_response();
    }
    published_keys(&state).await
}

async fn moved_jwks(State(state): State<Arc<AsState>>) -> Response {
    state.counters.moved_jwks.fetch_add(1, Ordering::SeqCst);
    published_keys(&state).await
}

async fn published_keys(state: &AsState) -> Response {
    if let Some(response) = misbehave(state).await {
        return response;
    }
    let keys: Vec<Value> = state
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(TestIssuer::public_jwk)
        .collect();
    Json(json!({ "keys": keys })).into_response()
}

/// Accepts `client_secret_basic` or `client_secret_post` with the
/// [`RS_CLIENT_ID`] / [`RS_CLIENT_SECRET`] credentials.
async fn introspect(
    State(state): State<Arc<AsState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let counters = &state.counters;
    let now = counters.introspecting_now.fetch_add(1, Ordering::SeqCst) + 1;
    counters.most_introspecting.fetch_max(now, Ordering::SeqCst);
    let answer = introspect_answer(&state, &headers, &body).await;
    counters.introspecting_now.fetch_sub(1, Ordering::SeqCst);
    answer
}

async fn introspect_answer(state: &AsState, headers: &HeaderMap, body: &str) -> Response {
    if let Some(response) = misbehave(state).await {
        return response;
    }
    state.counters.introspection.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            let (id, secret) = s.split_once(':')?;
            Some((decode(id)?, decode(secret)?))
        });
    let post = form
        .get("client_id")
        .zip(form.get("client_secret"))
        .map(|(i, s)| (i.clone(), s.clone()));
    let authenticated = basic
        .or(post)
        .is_some_and(|(id, secret)| id == RS_CLIENT_ID && secret == RS_CLIENT_SECRET);
    if !authenticated {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let answer = form
        .get("token")
        .and_then(|t| state.opaque.lock().unwrap().get(t).cloned())
        .unwrap_or_else(|| json!({ "active": false }));
    Json(answer).into_response()
}
