//! A gRPC API behind the Layer, for `examples/grpc_server.rs` and
//! `tests/grpc.rs`: tonic's standard health service (`grpc.health.v1.Health`,
//! generated code from `tonic-health`) and a small hand-written service,
//! `demo.Whoami/Get`, that answers with the verified `Sender` (as JSON
//! text), to show a tonic handler reading it from the request's extensions.
//!
//! Each method has its own scope, put on its route: `whoami` for
//! `/demo.Whoami/Get`, `health` for `/grpc.health.v1.Health/Check`,
//! `health.watch` for `/grpc.health.v1.Health/Watch`. The gRPC methods are
//! served as an axum router (tonic's `Routes::into_axum_router`), so the
//! Layer and `RequireScopeLayer` wrap them exactly as they wrap REST routes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use senderbound::{RequireScopeLayer, Sender};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

/// `demo.Whoami/Get`'s request: nothing.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoamiRequest {}

/// `demo.Whoami/Get`'s answer: the verified sender, as JSON text.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WhoamiReply {
    /// `Sender` serialized as JSON.
    #[prost(string, tag = "1")]
    pub sender_json: String,
}

/// The full path of `demo.Whoami/Get`.
pub const WHOAMI_GET: &str = "/demo.Whoami/Get";
/// The full path of the health service's `Check`.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// The full path of the health service's `Watch`.
pub const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";

/// The `demo.Whoami` service, written as tonic's code generator would write
/// it (no `.proto` compiler needed here).
#[derive(Clone, Debug, Default)]
pub struct WhoamiServer;

impl NamedService for WhoamiServer {
    const NAME: &'static str = "demo.Whoami";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl tower::Service<http::Request<tonic::body::Body>> for WhoamiServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != WHOAMI_GET {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Get, request).await)
        })
    }
}

/// `Get`: the `Sender` the Layer put in the request's extensions.
struct Get;

impl UnaryService<WhoamiRequest> for Get {
    type Response = WhoamiReply;
    type Future = BoxFuture<Result<Response<WhoamiReply>, Status>>;

    fn call(&mut self, request: Request<WhoamiRequest>) -> Self::Future {
        let sender = request.extensions().get::<Sender>().cloned();
        Box::pin(async move {
            let sender = sender.ok_or_else(|| Status::unauthenticated("no verified sender"))?;
            let sender_json =
                serde_json::to_string(&sender).map_err(|_| Status::internal("sender"))?;
            Ok(Response::new(WhoamiReply { sender_json }))
        })
    }
}

/// The gRPC methods, each behind its scope; add the Layer around it.
pub fn routes() -> Router {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let grpc = tonic::service::Routes::new(WhoamiServer)
        .add_service(health)
        .into_axum_router();
    let method = |scope: &str| {
        tower::ServiceBuilder::new()
            .layer(RequireScopeLayer::all([scope]))
            .service(grpc.clone())
    };
    Router::new()
        .route_service(WHOAMI_GET, method("whoami"))
        .route_service(HEALTH_CHECK, method("health"))
        .route_service(HEALTH_WATCH, method("health.watch"))
}
