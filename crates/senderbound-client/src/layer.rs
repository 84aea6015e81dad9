//! [`DpopLayer`]: DPoP for any tower HTTP client, and the body it sends.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::{Body, Frame, SizeHint};
use url::Url;

use crate::{DpopSession, InvalidUrl, asks_for_nonce, parse_target};

/// The most of a request body kept for a retry.
const MAX_REPLAYABLE: usize = 64 * 1024;

/// DPoP for any tower HTTP client — a tonic `Channel`, a
/// hyper client, an axum `Router` in tests. Every request to the
/// configured origin gets `Authorization: DPoP <token>` (the token the
/// [`DpopSession`] holds, if any) and a fresh proof for its method and URL;
/// a `DPoP-Nonce` in an answer is remembered; a refusal asking for a nonce
/// (`use_dpop_nonce`: HTTP 401, or gRPC's trailers-only `grpc-status` 16)
/// is retried once with it.
///
/// The proof's `htu` is the configured origin plus the request's path:
/// the URL the server is called by (a tonic channel's requests carry the
/// path alone). A request whose URI names another scheme, host or port (a
/// redirect followed by an outer layer, say) goes out with neither token
/// nor proof: a proof valid at the origin is never handed to anyone else.
///
/// To retry, the layer keeps a copy of a request body whose frames are all
/// ready at once (a unary gRPC call's message, a buffered HTTP body) up to
/// 64 KiB; a streaming body goes out as it comes, and its refusal is
/// returned as is (the nonce is remembered for the next call).
///
/// A tonic client (`tests/grpc.rs` runs this against a server that asks
/// for nonces):
///
/// ```ignore
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use senderbound_client::{DpopBody, DpopKey, DpopLayer, DpopSession};
///
/// let session = Arc::new(DpopSession::new(DpopKey::generate()));
/// session.hold_token("an access token bound to the key");
/// let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051")
///     .connect()
///     .await?;
/// // The channel's body type, made from the layer's.
/// let rebuild = |body: DpopBody<tonic::body::Body>| tonic::body::Body::new(body);
/// let channel = tower::ServiceBuilder::new()
///     .layer(DpopLayer::new(session, "http://127.0.0.1:50051", rebuild)?)
///     .service(channel);
/// // Use it as any tonic client's channel: `MyClient::new(channel)`.
/// # let _ = channel; Ok(()) }
/// ```
///
/// `rebuild` makes the inner service's body type from the layer's
/// [`DpopBody`] (`tonic::body::Body::new`, `axum::body::Body::new`, …).
#[derive(Clone)]
pub struct DpopLayer<F> {
    session: Arc<DpopSession>,
    origin: Url,
    rebuild: F,
}

impl<F> std::fmt::Debug for DpopLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopLayer")
            .field("session", &self.session)
            .field("origin", &self.origin.as_str())
            .finish_non_exhaustive()
    }
}

impl<F> DpopLayer<F> {
    /// Proofs by `session`'s key, with its token, for requests to `origin`
    /// (`http(s)://host[:port]`, the URL the server is called by; a path,
    /// query or fragment is refused).
    pub fn new(session: Arc<DpopSession>, origin: &str, rebuild: F) -> Result<Self, InvalidUrl> {
        let origin = parse_target(origin)?;
        if origin.path() != "/" || origin.query().is_some() || origin.fragment().is_some() {
            return Err(InvalidUrl);
        }
        Ok(DpopLayer {
            session,
            origin,
            rebuild,
        })
    }
}

impl<S, F: Clone> tower_layer::Layer<S> for DpopLayer<F> {
    type Service = Dpop<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        Dpop {
            inner,
            session: self.session.clone(),
            origin: self.origin.clone(),
            rebuild: self.rebuild.clone(),
        }
    }
}

/// The service [`DpopLayer`] makes.
#[derive(Clone)]
pub struct Dpop<S, F> {
    inner: S,
    session: Arc<DpopSession>,
    origin: Url,
    rebuild: F,
}

impl<S, F> std::fmt::Debug for Dpop<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("session", &self.session)
            .field("origin", &self.origin.as_str())
            .finish_non_exhaustive()
    }
}

impl<S, F> Dpop<S, F> {
    /// `true` if the request goes to the configured origin: a URI with the
    /// path alone, or naming the same scheme, host and port.
    fn to_origin<B>(&self, request: &Request<B>) -> bool {
        let uri = request.uri();
        match (uri.scheme_str(), uri.host()) {
            (None, None) => true,
            (Some(scheme), Some(host)) => {
                let port = uri.port_u16().or(match scheme {
                    "http" => Some(80),
                    "https" => Some(443),
                    _ => None,
                });
                scheme.eq_ignore_ascii_case(self.origin.scheme())
                    && self
                        .origin
                        .host_str()
                        .is_some_and(|h| h.eq_ignore_ascii_case(host.trim_matches(['[', ']'])))
                    && port.is_some()
                    && port == self.origin.port_or_known_default()
            }
            _ => false,
        }
    }

    /// The request with `Authorization` and a fresh proof for its method
    /// and path at the configured origin.
    fn authorize<B>(&self, mut request: Request<B>) -> Request<B> {
        let mut url = self.origin.clone();
        url.set_path(request.uri().path());
        let token = self.session.access_token();
        let proof = self
            .session
            .proof_for_url(request.method().as_str(), &url, token.as_deref());
        let headers = request.headers_mut();
        if let Some(token) = token
            && let Ok(value) = HeaderValue::from_str(&format!("DPoP {token}"))
        {
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if let Ok(value) = HeaderValue::from_str(&proof) {
            headers.insert("dpop", value);
        }
        request
    }

    /// Remembers a `DPoP-Nonce`; `true` if the answer asks for a nonce.
    fn observe<R>(&self, response: &Response<R>) -> bool {
        let headers = response.headers();
        if let Some(nonce) = headers.get("dpop-nonce").and_then(|v| v.to_str().ok()) {
            self.session.remember_nonce_for_url(&self.origin, nonce);
        }
        // gRPC refuses with HTTP 200 and grpc-status 16 (UNAUTHENTICATED).
        let status = match headers.get("grpc-status").map(HeaderValue::as_bytes) {
            Some(b"16") => 401,
            _ => response.status().as_u16(),
        };
        asks_for_nonce(
            status,
            headers
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, F, B, IB, RB> tower_service::Service<Request<B>> for Dpop<S, F>
where
    S: tower_service::Service<Request<IB>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    F: Fn(DpopBody<B>) -> IB + Clone + Send + Sync + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Send,
    IB: Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The ready service answers this call; a clone serves the retry.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let this = Dpop {
            inner: self.inner.clone(),
            session: self.session.clone(),
            origin: self.origin.clone(),
            rebuild: self.rebuild.clone(),
        };
        if !self.to_origin(&request) {
            // Not ours to sign for: sent on bare.
            let (parts, body) = request.into_parts();
            let request = Request::from_parts(parts, (self.rebuild)(DpopBody::passing(body)));
            return Box::pin(inner.call(request));
        }
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let (body, copy) = buffer(body).await;
            let used = this.session.nonce_for_url(&this.origin);
            let first = this.authorize(Request::from_parts(parts.clone(), (this.rebuild)(body)));
            let response = inner.call(first).await?;
            let asked = this.observe(&response);
            let renewed = this.session.nonce_for_url(&this.origin) != used;
            match copy {
                Some(bytes) if asked && renewed => {
                    let mut retry_service = this.inner.clone();
                    std::future::poll_fn(|cx| retry_service.poll_ready(cx)).await?;
                    let body = (this.rebuild)(DpopBody::full(bytes));
                    let retry = this.authorize(Request::from_parts(parts, body));
                    let response = retry_service.call(retry).await?;
                    this.observe(&response);
                    Ok(response)
                }
                _ => Ok(response),
            }
        })
    }
}

/// Reads the frames of `body` that are ready at once: all of them (and
/// the end) for a body that is already complete, giving a copy to retry
/// with; for a streaming one, what was read goes out first and the rest
/// follows as it comes, with no copy.
async fn buffer<B>(mut body: B) -> (DpopBody<B>, Option<Bytes>)
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut size = 0;
    loop {
        if body.is_end_stream() {
            return complete(frames);
        }
        let next = std::future::poll_fn(|cx| match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(Some(frame)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        match next {
            Some(None) => return complete(frames),
            Some(Some(Ok(frame))) => {
                size += frame.data_ref().map_or(0, Bytes::len);
                let trailers = frame.is_trailers();
                frames.push_back(frame);
                if size > MAX_REPLAYABLE || trailers {
                    break;
                }
            }
            // An error: for the inner service to meet, after what was read.
            Some(Some(Err(e))) => {
                let body = DpopBody {
                    kind: Kind::Partial {
                        frames,
                        error: Some(e),
                        rest: None,
                    },
                };
                return (body, None);
            }
            // Not ready yet: a stream, sent on as it comes.
            None => break,
        }
    }
    (
        DpopBody {
            kind: Kind::Partial {
                frames,
                error: None,
                rest: Some(body),
            },
        },
        None,
    )
}

fn complete<B: Body>(frames: VecDeque<Frame<Bytes>>) -> (DpopBody<B>, Option<Bytes>) {
    let mut bytes = Vec::new();
    let mut data_only = true;
    for frame in &frames {
        match frame.data_ref() {
            Some(data) => bytes.extend_from_slice(data),
            None => data_only = false,
        }
    }
    let copy = data_only.then(|| Bytes::from(bytes));
    (
        DpopBody {
            kind: Kind::Partial {
                frames,
                error: None,
                rest: None,
            },
        },
        copy,
    )
}

/// The body [`DpopLayer`] sends: the request's own, or the copy kept to
/// retry with.
pub struct DpopBody<B: Body> {
    kind: Kind<B>,
}

// Nothing in it is pinned in place: the inner body is polled through
// `Pin::new`, which needs it `Unpin`; the error is only moved out.
impl<B: Body + Unpin> Unpin for DpopBody<B> {}

impl<B: Body> std::fmt::Debug for DpopBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopBody").finish_non_exhaustive()
    }
}

enum Kind<B: Body> {
    /// Frames read ahead, then an error met reading, or the rest of the
    /// body, if any.
    Partial {
        frames: VecDeque<Frame<Bytes>>,
        error: Option<B::Error>,
        rest: Option<B>,
    },
}

impl<B: Body> DpopBody<B> {
    /// `body` as it is.
    fn passing(body: B) -> Self {
        DpopBody {
            kind: Kind::Partial {
                frames: VecDeque::new(),
                error: None,
                rest: Some(body),
            },
        }
    }

    fn full(bytes: Bytes) -> Self {
        DpopBody {
            kind: Kind::Partial {
                frames: VecDeque::from([Frame::data(bytes)]),
                error: None,
                rest: None,
            },
        }
    }
}

impl<B> Body for DpopBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let Kind::Partial {
            frames,
            error,
            rest,
        } = &mut self.get_mut().kind;
        if let Some(frame) = frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(e) = error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        match rest {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        let Kind::Partial {
            frames,
            error,
            rest,
        } = &self.kind;
        frames.is_empty() && error.is_none() && rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let Kind::Partial { frames, rest, .. } = &self.kind;
        let read: u64 = frames
            .iter()
            .filter_map(Frame::data_ref)
            .map(|d| d.len() as u64)
            .sum();
        match rest {
            None => SizeHint::with_exact(read),
            Some(body) => {
                let hint = body.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(hint.lower() + read);
                if let Some(upper) = hint.upper() {
                    out.set_upper(upper + read);
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body answering from a script: a frame, or "not ready yet" once.
    struct Script(VecDeque<Option<Bytes>>);

    impl Body for Script {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.pop_front() {
                Some(Some(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    async fn drain<B: Body<Data = Bytes> + Unpin>(mut body: DpopBody<B>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            out.extend_from_slice(frame.data_ref().map_or(&[][..], |d| d.as_ref()));
        }
        out
    }

    fn script(parts: &[Option<&'static str>]) -> Script {
        Script(
            parts
                .iter()
                .map(|p| p.map(|s| Bytes::from_static(s.as_bytes())))
                .collect(),
        )
    }

    use std::sync::Mutex;

    /// A scripted answer: the status and the headers.
    type Answer = (u16, Vec<(&'static str, &'static str)>);

    /// An inner service answering from a script of (status, headers), and
    /// recording the headers of every request it gets.
    #[derive(Clone)]
    struct Server {
        answers: Arc<Mutex<VecDeque<Answer>>>,
        seen: Arc<Mutex<Vec<http::HeaderMap>>>,
    }

    impl Server {
        fn new(answers: &[(u16, &[(&'static str, &'static str)])]) -> Self {
            Server {
                answers: Arc::new(Mutex::new(
                    answers.iter().map(|(s, h)| (*s, h.to_vec())).collect(),
                )),
                seen: Arc::default(),
            }
        }

        fn seen(&self) -> Vec<http::HeaderMap> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl tower_service::Service<Request<DpopBody<Script>>> for Server {
        type Response = Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Response<()>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<DpopBody<Script>>) -> Self::Future {
            self.seen.lock().unwrap().push(request.headers().clone());
            let (status, headers) = self
                .answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or((200, vec![]));
            let mut response = Response::new(());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            for (name, value) in headers {
                response
                    .headers_mut()
                    .append(name, HeaderValue::from_static(value));
            }
            std::future::ready(Ok(response))
        }
    }

    const ASK: (&str, &str) = ("www-authenticate", "DPoP error=\"use_dpop_nonce\"");

    async fn send(server: &Server, uri: &str) -> u16 {
        use tower_layer::Layer as _;
        let session = Arc::new(DpopSession::new(crate::DpopKey::generate()));
        session.hold_token("the-token");
        let layer = DpopLayer::new(session, "https://api.example", |b| b).unwrap();
        let mut service = layer.layer(server.clone());
        let request = Request::post(uri).body(script(&[Some("message")])).unwrap();
        let response = tower_service::Service::call(&mut service, request)
            .await
            .unwrap();
        response.status().as_u16()
    }

    fn nonce_of(headers: &http::HeaderMap) -> Option<String> {
        let proof = headers.get("dpop")?.to_str().ok()?;
        let claims = proof.split('.').nth(1)?;
        let json =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .ok()?;
        let claims: serde_json::Value = serde_json::from_slice(&json).ok()?;
        claims["nonce"].as_str().map(str::to_owned)
    }

    #[tokio::test]
    async fn a_request_to_another_origin_carries_neither_token_nor_proof() {
        for uri in [
            "https://evil.example/x",
            "http://api.example/x",
            "https://api.example:8443/x",
        ] {
            let server = Server::new(&[]);
            assert_eq!(send(&server, uri).await, 200);
            let seen = server.seen();
            assert!(!seen[0].contains_key("authorization"), "{uri}");
            assert!(!seen[0].contains_key("dpop"), "{uri}");
        }
        for uri in [
            "/demo.Whoami/Get",
            "https://api.example/x",
            "https://API.example:443/x",
        ] {
            let server = Server::new(&[]);
            send(&server, uri).await;
            let seen = server.seen();
            assert_eq!(seen[0]["authorization"], "DPoP the-token", "{uri}");
            assert!(seen[0].contains_key("dpop"), "{uri}");
        }
    }

    #[tokio::test]
    async fn a_nonce_asked_for_is_used_in_one_retry_only() {
        // Asked, with a nonce: one retry, carrying it.
        let server = Server::new(&[(401, &[ASK, ("dpop-nonce", "n-1")]), (200, &[])]);
        assert_eq!(send(&server, "/m").await, 200);
        let seen = server.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(nonce_of(&seen[0]), None);
        assert_eq!(nonce_of(&seen[1]).as_deref(), Some("n-1"));
        // gRPC's way of asking (HTTP 200, grpc-status 16): the same.
        let server = Server::new(&[
            (200, &[ASK, ("grpc-status", "16"), ("dpop-nonce", "n-2")]),
            (200, &[]),
        ]);
        send(&server, "/m").await;
        assert_eq!(server.seen().len(), 2);
        // Asked again on the retry: no third attempt.
        let server = Server::new(&[
            (401, &[ASK, ("dpop-nonce", "n-1")]),
            (401, &[ASK, ("dpop-nonce", "n-2")]),
        ]);
        assert_eq!(send(&server, "/m").await, 401);
        assert_eq!(server.seen().len(), 2);
        // Asked without a new nonce: nothing to retry with.
        let server = Server::new(&[(401, &[ASK])]);
        assert_eq!(send(&server, "/m").await, 401);
        assert_eq!(server.seen().len(), 1);
    }

    #[test]
    fn an_origin_with_a_path_is_refused() {
        let session = Arc::new(DpopSession::new(crate::DpopKey::generate()));
        for origin in [
            "https://api.example/prefix",
            "https://api.example/?q",
            "https://api.example/#f",
        ] {
            assert!(
                DpopLayer::new(session.clone(), origin, ()).is_err(),
                "{origin}"
            );
        }
        assert!(DpopLayer::new(session, "https://api.example", ()).is_ok());
    }

    #[tokio::test]
    async fn a_complete_body_is_kept_for_a_retry_and_sent_whole() {
        let (body, copy) = buffer(script(&[Some("ab"), Some("cd")])).await;
        assert_eq!(copy.as_deref(), Some(&b"abcd"[..]));
        assert_eq!(drain(body).await, b"abcd");
    }

    #[tokio::test]
    async fn a_streaming_body_goes_on_as_it_comes_with_no_copy() {
        let (body, copy) = buffer(script(&[Some("ab"), None, Some("cd")])).await;
        assert_eq!(copy, None);
        assert_eq!(drain(body).await, b"abcd");
    }

    #[tokio::test]
    async fn a_large_body_is_sent_whole_with_no_copy() {
        let big: &'static str = Box::leak("x".repeat(MAX_REPLAYABLE + 1).into_boxed_str());
        let (body, copy) = buffer(script(&[Some(big), Some("y")])).await;
        assert_eq!(copy, None);
        assert_eq!(drain(body).await.len(), MAX_REPLAYABLE + 2);
    }
}
