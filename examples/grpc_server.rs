//! A gRPC API (tonic) that accepts only sender-constrained access tokens:
//! the same Layer as for REST, around tonic's routes.
//!
//! ```text
//! cargo run --example grpc_server -- \
//!     --listen 127.0.0.1:50051 \
//!     --issuer https://login.example.com \
//!     --audience https://grpc.example.com
//! ```
//!
//! It takes the flags of `resource_server` (issuer, keys, nonces, Redis,
//! profile, …). Methods and their scopes: `demo.Whoami/Get` (`whoami`;
//! answers with the verified `Sender` as JSON), `grpc.health.v1.Health/Check`
//! (`health`) and `/Watch` (`health.watch`). A DPoP proof for a call signs
//! `htm` POST and `htu` = the public origin + `/package.Service/Method`
//! (`http://LISTEN/demo.Whoami/Get` unless `--public-base-url` says
//! otherwise). Refusals are gRPC statuses (16 `UNAUTHENTICATED`, 7
//! `PERMISSION_DENIED`, 14 `UNAVAILABLE`, 3 `INVALID_ARGUMENT`) with the
//! `WWW-Authenticate` challenge and `DPoP-Nonce` in the response metadata.
//! Serves HTTP/2 cleartext (prior knowledge, as gRPC clients speak it) and
//! HTTP/1.1; the line `listening on http://ADDR` goes to stdout once bound.

use clap::Parser;
use senderbound_suite::grpc::routes;
use senderbound_suite::server_cli::{ServerArgs, announce, ctrl_c, log_to_stderr_at};

#[derive(Parser, Debug)]
#[command(about = "A gRPC API that accepts only sender-constrained access tokens")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { server } = Args::parse();
    log_to_stderr_at(server.log_level);

    let listener = tokio::net::TcpListener::bind(server.listen).await?;
    let addr = listener.local_addr()?;
    let auth = server.build("http", addr)?;
    let app = routes().layer(auth);
    announce(&format!("http://{addr}"))?;
    senderbound::serve::serve(listener, app)
        .with_graceful_shutdown(ctrl_c())
        .await?;
    Ok(())
}
