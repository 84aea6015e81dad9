//! The tower plumbing: [`SenderBound`], the service the Layer makes, and
//! its [`ResponseFuture`]. What is checked, in which order, is told in
//! [`pipeline`](crate::pipeline).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::framing;
use crate::header::DPOP_NONCE;
use crate::pipeline::{Admitted, Pipeline};
use crate::target_uri::original_uri;

/// The middleware [`Service`] made by [`SenderBoundLayer`](crate::SenderBoundLayer).
///
/// Requests that pass every check reach the inner service with a
/// [`Sender`](crate::Sender) in their extensions; all others are answered
/// here.
pub struct SenderBound<S> {
    inner: S,
    pipeline: Arc<Pipeline>,
}

impl<S> SenderBound<S> {
    pub(crate) fn new(inner: S, pipeline: Arc<Pipeline>) -> Self {
        SenderBound { inner, pipeline }
    }
}

impl<S: Clone> Clone for SenderBound<S> {
    fn clone(&self) -> Self {
        SenderBound {
            inner: self.inner.clone(),
            pipeline: self.pipeline.clone(),
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for SenderBound<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderBound")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Decision = Pin<Box<dyn Future<Output = Result<Admitted, Response>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SenderBound<S>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>> + Clone,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // Framing first: a request that does not name one well-formed
        // authority is refused whatever it asks for.
        let framing = framing::check(req.version(), req.uri(), req.headers(), req.extensions());
        // RFC 9728 metadata is public: answered here, before any check.
        if framing.is_ok()
            && let Some(metadata) = &self.pipeline.metadata
            && let Some(response) = metadata.answer(
                req.method(),
                original_uri(req.extensions(), req.uri()).path(),
            )
        {
            return ResponseFuture {
                state: State::Answered {
                    response: Some(response),
                },
            };
        }
        // Use the service that was polled ready, leave a fresh clone behind.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        let pipeline = self.pipeline.clone();
        ResponseFuture {
            state: State::Deciding {
                decision: Box::pin(async move { pipeline.decide(parts, framing).await }),
                body: Some(body),
                inner: Some(inner),
            },
        }
    }
}

pin_project! {
    /// Response future of [`SenderBound`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Deciding {
            decision: Decision,
            body: Option<ReqBody>,
            inner: Option<S>,
        },
        Calling {
            #[pin]
            future: S::Future,
            nonce: Option<http::HeaderValue>,
        },
        Answered {
            response: Option<Response>,
        },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Deciding {
                    decision,
                    body,
                    inner,
                } => {
                    let Admitted {
                        parts,
                        fresh_nonce: nonce,
                    } = match ready!(decision.as_mut().poll(cx)) {
                        Ok(admitted) => admitted,
                        Err(refusal) => return Poll::Ready(Ok(refusal)),
                    };
                    let (Some(body), Some(mut inner)) = (body.take(), inner.take()) else {
                        // Only reachable if polled again after completion.
                        return Poll::Ready(Ok(
                            http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        ));
                    };
                    let future = inner.call(Request::from_parts(parts, body));
                    this.state.set(State::Calling { future, nonce });
                }
                StateProj::Calling { future, nonce } => {
                    let mut response = ready!(future.poll(cx))?;
                    // The client's nonce is aging: hand it the next one.
                    if let Some(nonce) = nonce.take() {
                        response.headers_mut().insert(DPOP_NONCE, nonce);
                    }
                    return Poll::Ready(Ok(response.map(Body::new)));
                }
                StateProj::Answered { response } => {
                    return Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                        http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                    })));
                }
            }
        }
    }
}
