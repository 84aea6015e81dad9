//! [`RequireScopeLayer`]: a route layer that admits only senders whose token
//! carries the scopes the route needs (403 `insufficient_scope` otherwise).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use pin_project_lite::pin_project;
use senderbound_core::Error;
use tower_layer::Layer;
use tower_service::Service;

use crate::audit::{self, AuditRecord};
use crate::challenge::Rejection;
use crate::sender::{MissingSender, Sender};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// Requires scopes of the verified [`Sender`]. Put it on routes *inside*
/// [`SenderBoundLayer`](crate::SenderBoundLayer), typically with axum's
/// `route_layer`.
///
/// ```
/// use axum::{Router, routing::{get, post}};
/// use senderbound::RequireScopeLayer;
///
/// let app: Router = Router::new()
///     .route("/read", get(|| async { "ok" }).route_layer(RequireScopeLayer::all(["read"])))
///     .route("/write", post(|| async { "ok" }).route_layer(RequireScopeLayer::any(["write", "admin"])));
/// ```
///
/// Different scopes for different methods of one path: layer each handler
/// (or each method router) on its own. `route_layer` on a method router
/// wraps every method routed *so far*, so
/// `get(read).route_layer(a).post(write).route_layer(b)` would ask a GET
/// for both `a` and `b`.
///
/// ```
/// use axum::{Router, handler::Handler, routing::{get, post}};
/// use senderbound::RequireScopeLayer;
///
/// async fn list() -> &'static str { "items" }
/// async fn create() -> &'static str { "created" }
///
/// let app: Router = Router::new().route(
///     "/items",
///     get(list.layer(RequireScopeLayer::all(["items:read"])))
///         .post(create.layer(RequireScopeLayer::all(["items:write"]))),
/// );
/// ```
///
/// A request without a `Sender` (the route is not behind the Layer) is a
/// server misconfiguration: it is refused with 500, never let through.
#[derive(Debug, Clone)]
pub struct RequireScopeLayer {
    scopes: Arc<[String]>,
    mode: Mode,
}

impl RequireScopeLayer {
    /// The token must carry every one of `scopes`.
    pub fn all<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        RequireScopeLayer {
            scopes: scopes.into_iter().map(Into::into).collect(),
            mode: Mode::All,
        }
    }

    /// The token must carry at least one of `scopes`.
    pub fn any<I: IntoIterator<Item = S>, S: Into<String>>(scopes: I) -> Self {
        RequireScopeLayer {
            scopes: scopes.into_iter().map(Into::into).collect(),
            mode: Mode::Any,
        }
    }

    fn admits(&self, sender: &Sender) -> bool {
        match self.mode {
            Mode::All => self.scopes.iter().all(|s| sender.has_scope(s)),
            Mode::Any => self.scopes.iter().any(|s| sender.has_scope(s)),
        }
    }

    fn refuse(&self, parts: &http::request::Parts) -> Response {
        let (Some(sender), Some(ctx)) = (
            parts.extensions.get::<Sender>(),
            parts.extensions.get::<Sender>().and_then(Sender::context),
        ) else {
            return MissingSender.into_response();
        };
        let record = AuditRecord::admitted(sender);
        audit::emit(
            "authorize",
            parts.method.as_str(),
            crate::target_uri::request_path(parts),
            &record,
            Some(Error::InsufficientScope),
            &ctx.route,
        );
        let mut response = Rejection::new(
            Error::InsufficientScope,
            Some(sender.scheme()),
            ctx.route.challenges.clone(),
        )
        .with_scopes(self.scopes.iter().map(String::as_str))
        .answering(&parts.headers)
        .into_response();
        // While nonces are required, every refusal carries one, as the
        // Layer's do (docs/security.md 8.21).
        if let Some(nonce) = ctx.route.fresh_nonce() {
            response
                .headers_mut()
                .insert(crate::header::DPOP_NONCE, nonce);
        }
        response
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            require: self.clone(),
        }
    }
}

/// The service made by [`RequireScopeLayer`].
#[derive(Debug, Clone)]
pub struct RequireScope<S> {
    inner: S,
    require: RequireScopeLayer,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let admitted = req
            .extensions()
            .get::<Sender>()
            .is_some_and(|s| self.require.admits(s));
        if admitted {
            ResponseFuture {
                state: ScopeState::Calling {
                    future: self.inner.call(req),
                },
            }
        } else {
            let (parts, _) = req.into_parts();
            ResponseFuture {
                state: ScopeState::Refused {
                    response: Some(self.require.refuse(&parts)),
                },
            }
        }
    }
}

pin_project! {
    /// Response future of [`RequireScope`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: ScopeState<F>,
    }
}

pin_project! {
    #[project = ScopeStateProj]
    enum ScopeState<F> {
        Calling { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            ScopeStateProj::Calling { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(Body::new)))
            }
            ScopeStateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| http::StatusCode::INTERNAL_SERVER_ERROR.into_response()))),
        }
    }
}
