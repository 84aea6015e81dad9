//! A gRPC API (tonic) that accepts only sender-constrained access tokens:
//! the same Layer as for REST, around tonic's routes.
//!
//! ```text
//! cargo run --example grpc_server      # gRPC on 127.0.0.1:50051, demo AS on :50052
//! cargo run --example grpc_client      # calls it (examples/grpc_client.rs)
//! cargo run --example grpc_server -- --listen 127.0.0.1:50051 \
//!     --issuer https://login.example.com --audience https://grpc.example.com
//! ```
//!
//! It takes the flags of `resource_server` (issuer, keys, nonces, Redis,
//! profile, …). Without `--issuer`, a **demo-only** authorization server
//! runs on `--dev-as-listen` and issues DPoP-bound tokens to the client
//! `grpc-client` (secret `grpc-client-secret`, scopes `whoami health`) with
//! client credentials; its token endpoint is printed on stderr.
//!
//! Methods and their scopes: `demo.Whoami/Get` (`whoami`; answers with the
//! verified `Sender` as JSON), `grpc.health.v1.Health/Check` (`health`)
//! and `/Watch` (`health.watch`). A DPoP proof for a call signs `htm` POST
//! and `htu` = the public origin + `/package.Service/Method`
//! (`http://LISTEN/demo.Whoami/Get` unless `--public-base-url` says
//! otherwise). Refusals are gRPC statuses (16 `UNAUTHENTICATED`, 7
//! `PERMISSION_DENIED`, 14 `UNAVAILABLE`, 3 `INVALID_ARGUMENT`) with the
//! `WWW-Authenticate` challenge and `DPoP-Nonce` in the response metadata.
//! Serves HTTP/2 cleartext (prior knowledge, as gRPC clients speak it) and
//! HTTP/1.1; the line `listening on http://ADDR` goes to stdout once bound.

use std::net::SocketAddr;

use clap::Parser;
use senderbound::tokens::Issuer;
use senderbound_suite::dev_as::DevAs;
use senderbound_suite::grpc::routes;
use senderbound_suite::server_cli::{ServerArgs, announce, ctrl_c};

#[derive(Parser, Debug)]
#[command(about = "A gRPC API that accepts only sender-constrained access tokens")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Address of the demo-only authorization server (without --issuer).
    #[arg(long, default_value = "127.0.0.1:50052")]
    dev_as_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        mut server,
        dev_as_listen,
    } = Args::parse();
    server.init_logging()?;
    if !server.cors_origin.is_empty() {
        // gRPC over HTTP/2 is not callable from a browser page (that would
        // be gRPC-Web, which the Layer does not speak).
        return Err("--cors-origin: gRPC is not called from browsers here".into());
    }

    let listener = tokio::net::TcpListener::bind(server.listen).await?;
    let addr = listener.local_addr()?;
    let origin = server.public_base_url("http", addr);
    if server.audience.is_empty() {
        server.audience.push(origin.clone());
    }
    let auth = match &server.issuer {
        Some(_) => server.build("http", addr)?,
        None if server.names_token_keys() => {
            return Err("--jwks-uri, --jwks-file and introspection need --issuer".into());
        }
        None => {
            let as_listener = tokio::net::TcpListener::bind(dev_as_listen).await?;
            let issuer = format!("http://{}/dev-as", as_listener.local_addr()?);
            let dev = DevAs::new(&issuer, &[&server.audience[0]]).client(
                "grpc-client",
                "grpc-client-secret",
                &["whoami", "health"],
            );
            let auth = server
                .builder("http", addr)?
                .trust(Issuer::new(&issuer).keys(dev.jwks_json()))
                .build()?;
            eprintln!(
                "demo-only authorization server: {} (token endpoint {})",
                dev.issuer(),
                dev.token_endpoint()
            );
            tokio::spawn(async move { axum::serve(as_listener, dev.router()).await });
            auth
        }
    };
    let app = routes().layer(auth);
    announce(&origin)?;
    senderbound::serve::serve(listener, app)
        .with_graceful_shutdown(ctrl_c())
        .await?;
    Ok(())
}
