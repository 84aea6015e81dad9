//! A gRPC client with DPoP-bound tokens: asks an authorization server for a
//! token bound to a fresh key (client credentials, RFC 9449 §5), then calls
//! `grpc_server` through tonic with `senderbound_client::DpopLayer` on its
//! channel, which signs a proof for every call and retries once when the
//! server asks for a nonce.
//!
//! ```text
//! cargo run --example grpc_server      # gRPC on 127.0.0.1:50051, demo AS on :50052
//! cargo run --example grpc_client -- --server http://127.0.0.1:50051 \
//!     --token-endpoint http://127.0.0.1:50052/dev-as/token
//! ```
//!
//! It prints what it does, and what the server answered: the `Sender` of a
//! call, the health status, and the refusal of a proof sent twice (gRPC
//! status 16 with its `WWW-Authenticate` challenge). Exits non-zero if any
//! answer is not the expected one.

use std::sync::Arc;

use clap::Parser;
use senderbound_client::{DpopBody, DpopKey, DpopLayer, DpopSession, TokenRequest};
use senderbound_suite::grpc::{WHOAMI_GET, WhoamiReply, WhoamiRequest};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser, Debug)]
#[command(about = "Calls grpc_server with a DPoP-bound token")]
struct Args {
    /// The gRPC server's origin (what proofs sign as `htu`, with the method's path).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// The authorization server's token endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50052/dev-as/token")]
    token_endpoint: String,
    /// Client id at the authorization server.
    #[arg(long, default_value = "grpc-client")]
    client_id: String,
    /// Client secret (or the SENDERBOUND_CLIENT_SECRET variable).
    #[arg(
        long,
        env = "SENDERBOUND_CLIENT_SECRET",
        default_value = "grpc-client-secret",
        hide_env_values = true
    )]
    client_secret: String,
    /// The resource the token is for (RFC 8707; default: --server).
    #[arg(long)]
    resource: Option<String>,
}

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = Args::parse();
    let resource = args.resource.clone().unwrap_or_else(|| args.server.clone());

    // A key of its own, and a token bound to it.
    let session = Arc::new(DpopSession::new(DpopKey::generate()));
    let http = reqwest::Client::new();
    let token = session
        .request_token(
            &http,
            &args.token_endpoint,
            &TokenRequest::client_credentials(&args.client_id, &args.client_secret)
                .scope("whoami health")
                .resource(&resource),
        )
        .await?;
    println!(
        "token bound to key {} (scope {:?})",
        session.key().jkt(),
        token.scope
    );

    // tonic's channel, with DPoP on every call.
    let channel = tonic::transport::Channel::from_shared(args.server.clone())?
        .connect()
        .await?;
    let rebuild = |body: DpopBody<tonic::body::Body>| tonic::body::Body::new(body);
    let dpop = tower::ServiceBuilder::new()
        .layer(DpopLayer::new(session.clone(), &args.server, rebuild)?)
        .service(channel.clone());

    let mut grpc = tonic::client::Grpc::new(dpop.clone());
    grpc.ready().await?;
    let reply: WhoamiReply = grpc
        .unary(
            tonic::Request::new(WhoamiRequest {}),
            http::uri::PathAndQuery::from_static(WHOAMI_GET),
            tonic_prost::ProstCodec::default(),
        )
        .await?
        .into_inner();
    println!("demo.Whoami/Get: {}", reply.sender_json);

    let health = HealthClient::new(dpop)
        .check(HealthCheckRequest::default())
        .await?
        .into_inner();
    println!("grpc.health.v1.Health/Check: status {}", health.status);

    // Without the layer: one proof, sent twice. The second is a replay.
    let url = format!("{}{WHOAMI_GET}", args.server);
    let proof = session.proof("POST", &url, Some(&token.access_token))?;
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        let mut request = tonic::Request::new(WhoamiRequest {});
        request.metadata_mut().insert(
            "authorization",
            format!("DPoP {}", token.access_token).parse()?,
        );
        request.metadata_mut().insert("dpop", proof.parse()?);
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await?;
        let answer: Result<tonic::Response<WhoamiReply>, tonic::Status> = grpc
            .unary(
                request,
                http::uri::PathAndQuery::from_static(WHOAMI_GET),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        outcomes.push(answer.map(|_| ()));
    }
    match &outcomes[..] {
        [Ok(()), Err(replayed)] if replayed.code() == tonic::Code::Unauthenticated => {
            let challenge = replayed
                .metadata()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            println!(
                "the same proof again: {:?} {:?}; challenge: {challenge}",
                replayed.code(),
                replayed.message()
            );
            println!("all answers as expected");
            Ok(())
        }
        other => Err(format!("unexpected answers to a proof sent twice: {other:?}").into()),
    }
}
