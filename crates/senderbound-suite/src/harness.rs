//! An in-process test harness: a protected axum app, a demo issuer, a client
//! key and a pinned clock.

use std::sync::Arc;

use axum::body::Body;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::{HeaderMap, Method, Request};
use http_body_util::BodyExt;
use senderbound::clock::{Clock as _, FixedClock};
use senderbound::mtls::ClientCertificate;
use senderbound::tokens::{ClientAuth, Introspection, Issuer, TokenFormat};
use senderbound::{Origin, RequireScopeLayer, Sender, SenderBoundBuilder, SenderBoundLayer};
use senderbound_client::DpopKey;
use serde_json::Value;
use tower::ServiceExt;

use crate::TestIssuer;
use crate::mock_as::{MockAs, RS_CLIENT_ID, RS_CLIENT_SECRET};

/// The issuer identifier the harness trusts.
pub const ISSUER: &str = "https://as.example.test";
/// The resource identifier (audience) of the harness app.
pub const AUDIENCE: &str = "https://api.example.test";
/// The host clients address.
pub const HOST: &str = "api.example.test";
/// The pinned time the harness starts at.
pub const NOW: u64 = 1_700_000_000;

/// The protected routes: `GET /api/read` (scope `read`), `POST /api/write`
/// (scope `write`), `GET /whoami` (the `Sender` as JSON) and `GET /headers`
/// (which credential headers, and which client certificate, reached the
/// handler).
pub fn routes() -> Router {
    Router::new()
        .route(
            "/api/read",
            get(whoami).route_layer(RequireScopeLayer::all(["read"])),
        )
        .route(
            "/api/write",
            post(write).route_layer(RequireScopeLayer::all(["write"])),
        )
        .route("/whoami", get(whoami))
        .route("/headers", get(seen_headers))
}

async fn whoami(sender: Sender) -> Json<Sender> {
    Json(sender)
}

/// [`whoami`] for a write: the body is read to the end, so the connection
/// can carry the client's next request (a server that answers without
/// reading the body closes the connection, and a client that reuses it
/// races that close: a flaky `RemoteDisconnected` in the third-party
/// client tests).
async fn write(sender: Sender, _body: axum::body::Bytes) -> Json<Sender> {
    Json(sender)
}

/// What reached the handler: which credential headers, and the thumbprint
/// of the client certificate in the extensions (if any).
async fn seen_headers(
    headers: HeaderMap,
    certificate: Option<Extension<ClientCertificate>>,
) -> Json<Value> {
    Json(serde_json::json!({
        "authorization": headers.contains_key("authorization"),
        "dpop": headers.contains_key("dpop"),
        "client_cert": headers.contains_key("client-cert"),
        "client_cert_chain": headers.contains_key("client-cert-chain"),
        "certificate": certificate.map(|Extension(c)| c.x5t_s256().to_owned()),
    }))
}

/// A protected app with everything needed to call it.
pub struct Harness {
    /// The demo token issuer the app trusts.
    pub issuer: TestIssuer,
    /// The client's DPoP key.
    pub client: DpopKey,
    /// The app's clock, pinned at [`NOW`].
    pub clock: Arc<FixedClock>,
    /// The protected app.
    pub app: Router,
    /// The configuration the app is protected with.
    pub auth: SenderBoundLayer,
}

/// A response, reduced to what tests look at.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Every `WWW-Authenticate` field value.
    pub challenges: Vec<String>,
    /// The body as text.
    pub body: String,
    /// The `DPoP-Nonce` response header, if any.
    pub dpop_nonce: Option<String>,
    /// The `Content-Type` response header, if any.
    pub content_type: Option<String>,
}

impl Reply {
    /// The `error=` code of the first challenge that has one.
    pub fn error(&self) -> Option<String> {
        self.param("error")
    }

    /// The value of challenge parameter `name` (first challenge that has it).
    pub fn param(&self, name: &str) -> Option<String> {
        let needle = format!("{name}=\"");
        self.challenges.iter().find_map(|c| {
            let start = c
                .find(&needle)
                .filter(|i| *i == 0 || matches!(c.as_bytes()[i - 1], b' ' | b','))?
                + needle.len();
            c[start..].split('"').next().map(str::to_owned)
        })
    }

    /// Asserts the exact refusal: status, `error=` code, and the precise
    /// check (by its `error_description`).
    #[track_caller]
    pub fn assert_refused(&self, status: u16, code: &str, which: senderbound::Error) {
        assert_eq!(self.status, status, "status; reply: {self:?}");
        assert_eq!(
            self.error().as_deref(),
            Some(code),
            "error code; reply: {self:?}"
        );
        assert_eq!(
            self.param("error_description").as_deref(),
            Some(which.description()),
            "which check; reply: {self:?}"
        );
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// The default configuration: DPoP only, memory replay store.
    pub fn new() -> Self {
        Self::with(|b| b)
    }

    /// The default configuration changed by `configure`.
    pub fn with(configure: impl FnOnce(SenderBoundBuilder) -> SenderBoundBuilder) -> Self {
        let issuer = TestIssuer::new(ISSUER);
        let trusted = issuer.trust();
        Self::with_issuer(issuer, |b| configure(b.trust(trusted)))
    }

    /// `routes` behind the Layer, configured as [`with`](Self::with) does.
    pub fn with_routes(
        routes: Router,
        configure: impl FnOnce(SenderBoundBuilder) -> SenderBoundBuilder,
    ) -> Self {
        let mut harness = Self::with(configure);
        let auth = harness.auth.clone();
        harness.app = routes.layer(auth);
        harness
    }

    /// An app whose tokens `issuer` signs, trusting what `configure` says
    /// (the builder comes with audience, host and clock only: no issuer).
    pub fn with_issuer(
        issuer: TestIssuer,
        configure: impl FnOnce(SenderBoundBuilder) -> SenderBoundBuilder,
    ) -> Self {
        let clock = Arc::new(FixedClock::new(NOW));
        let builder = SenderBoundLayer::builder()
            .audience(AUDIENCE)
            .origin(Origin::hosts([HOST]))
            .clock(clock.clone());
        let auth = configure(builder)
            .build()
            .unwrap_or_else(|e| panic!("harness config: {e}"));
        Harness {
            issuer,
            client: DpopKey::generate(),
            clock,
            app: routes().layer(auth.clone()),
            auth,
        }
    }

    /// `routes` behind a Layer that introspects opaque tokens at `mock`
    /// (RFC 7662; register them with [`MockAs::register_opaque`]) and
    /// verifies JWTs by its keys.
    pub fn introspected_by(mock: &MockAs, routes: Router) -> Self {
        let auth = ClientAuth::client_secret_basic(RS_CLIENT_ID, RS_CLIENT_SECRET);
        let issuer = Issuer::new(mock.issuer())
            .introspection(Introspection::new(auth).endpoint(mock.introspection_endpoint()))
            .token_format(TokenFormat::Auto);
        let mut harness = Self::with_issuer(mock.signer(), |b| b.trust(issuer));
        harness.app = routes.layer(harness.auth.clone());
        harness
    }

    /// An active introspection answer for a DPoP token with the default
    /// claims (no `iss`: the introspecting issuer's), `extra` merged in.
    pub fn introspection_answer(&self, extra: Value) -> Value {
        let mut answer = self.claims();
        answer["active"] = Value::Bool(true);
        answer["token_type"] = Value::from("DPoP");
        if let Some(answer) = answer.as_object_mut() {
            answer.remove("iss");
            if let Value::Object(extra) = extra {
                answer.extend(extra);
            }
        }
        answer
    }

    /// Current harness time.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Default token claims: bound to the client's key, scope `read`.
    pub fn claims(&self) -> Value {
        self.issuer
            .claims(AUDIENCE, Some(self.client.jkt()), "read", self.now())
    }

    /// A valid token bound to the client's key, scope `read`.
    pub fn token(&self) -> String {
        self.issuer.sign(&self.claims())
    }

    /// A valid proof by the client for `method` `https://HOST{path}` with `token`.
    pub fn proof(&self, method: &str, path: &str, token: &str) -> String {
        self.proof_by(&self.client, method, path, token)
    }

    /// A valid proof by `key` (another client's, a thief's) for `method`
    /// `https://HOST{path}` with `token`.
    pub fn proof_by(&self, key: &DpopKey, method: &str, path: &str, token: &str) -> String {
        key.proof(method, &format!("https://{HOST}{path}"))
            .unwrap()
            .access_token(token)
            .issued_at(self.now())
            .sign()
    }

    /// A valid proof by the client for `method` `https://HOST{path}` with
    /// `token`, carrying the server's `nonce`.
    pub fn proof_with_nonce(&self, method: &str, path: &str, token: &str, nonce: &str) -> String {
        self.client
            .proof(method, &format!("https://{HOST}{path}"))
            .unwrap()
            .access_token(token)
            .issued_at(self.now())
            .nonce(nonce)
            .sign()
    }

    /// Sends a request with the given `Authorization` and `DPoP` values.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        dpop: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST);
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        if let Some(p) = dpop {
            req = req.header("dpop", p);
        }
        self.call(req.body(Body::empty()).unwrap_or_default()).await
    }

    /// Sends a request with exactly these headers (repeats allowed, no
    /// `Host` unless given).
    pub async fn send_headers(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        self.call(req.body(Body::empty()).unwrap_or_default()).await
    }

    /// A DPoP request to `GET path` with a fresh valid proof for `token`.
    pub async fn get_with(&self, path: &str, token: &str) -> Reply {
        self.dpop(Method::GET.as_str(), path, token).await
    }

    /// A DPoP request to `method path` with a fresh valid proof for `token`.
    pub async fn dpop(&self, method: &str, path: &str, token: &str) -> Reply {
        let proof = self.proof(method, path, token);
        self.send(method, path, Some(&format!("DPoP {token}")), Some(&proof))
            .await
    }

    /// Sends any request through the protected app.
    pub async fn call(&self, req: Request<Body>) -> Reply {
        let response = match self.app.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let challenges = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned())
            .collect();
        // Read in a block, before the body is awaited: the future stays `Send`.
        let (dpop_nonce, content_type) = {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap_or("<non-ascii>").to_owned())
            };
            (header("dpop-nonce"), header("content-type"))
        };
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        Reply {
            status,
            challenges,
            body,
            dpop_nonce,
            content_type,
        }
    }
}
