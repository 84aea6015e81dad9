//! A DPoP-protected resource server configured from the command line: the
//! one to point at any authorization server, and to load-test.
//!
//! ```text
//! cargo run --example resource_server -- \
//!     --listen 127.0.0.1:3000 \
//!     --issuer https://login.example.com \
//!     --audience https://api.example.com
//! ```
//!
//! The issuer's metadata (RFC 8414, then OpenID Connect Discovery) names its
//! JWKS; `--jwks-uri` or `--jwks-file` skips discovery.
//!
//! Clients sign `http://LISTEN/path` as `htu` unless `--public-base-url`
//! says what they call; `--allowed-host HOST[:PORT]` (repeatable) instead
//! takes the host from each request's `Host` (or `:authority`), refusing
//! others. `--profile fapi2|mcp` applies a profile (`senderbound::profile`). Opaque tokens are introspected with
//! `--introspection-url URL --client-id ID --client-secret SECRET` (or
//! `--client-id/--client-secret` alone to use the endpoint in the metadata).
//!
//! Certificate-bound (mTLS) tokens are accepted when a TLS-terminating proxy
//! forwards the client certificate in the RFC 9440 `Client-Cert` header:
//! `--trusted-proxy 10.0.0.5` (IP or CIDR, repeatable). To terminate TLS
//! here, see `mtls_server`.
//!
//! A fleet shares used proofs through Redis (`--redis-url`,
//! `--redis-cluster SEED` or `--redis-sentinel URL --redis-service NAME`,
//! each repeatable where it lists nodes; `--redis-wait-replicas N` waits for
//! replicas), and can share a revocation list (`--redis-revocations`) and
//! key-sharing detection (`--redis-key-sharing report|reject`) in the same
//! Redis; docs/deployment.md §6.
//!
//! Routes: `GET /api/read` (scope `read`), `POST /api/write` (scope
//! `write`), `GET /whoami` (the verified `Sender` as JSON); `GET /healthz`
//! answers `ok` without any check (liveness). With `--redis-revocations`,
//! `POST /admin/revocations` (scope `revoke`, sender-constrained like every
//! route) takes `{"revoke": "jti"|"sub"|"client"|"jkt"|"x5t", "value": "…",
//! "for_secs": N}` and answers 204 once the entry is in Redis: refused here
//! at once, by every server of the fleet within `--revocation-poll-ms`. Audit events
//! and key-fetch logs go to stderr; the line `listening on http://ADDR` goes
//! to stdout once the socket is bound. Stops on Ctrl-C.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use senderbound::RequireScopeLayer;
use senderbound_redis::{RedisRevocations, Revoked};
use senderbound_suite::harness::routes;
use senderbound_suite::server_cli::{ServerArgs, announce, ctrl_c, log_to_stderr_at};

#[derive(Parser, Debug)]
#[command(about = "A resource server that accepts only sender-constrained access tokens")]
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

    // `/healthz` is outside the Layer: a liveness probe needs no token (and
    // it is the unprotected ceiling of the load comparison, benches/compare.sh).
    let mut app = routes();
    if let Some(list) = server.revocations()? {
        app = app.route(
            "/admin/revocations",
            post(revoke)
                .with_state(list)
                .route_layer(RequireScopeLayer::all(["revoke"])),
        );
    }
    let app = app
        .layer(auth.clone())
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    announce(&format!("http://{addr}"))?;
    tracing::info!(%addr, issuer = ?server.issuer, "resource server ready");
    // senderbound's server: HTTP/1.1 and HTTP/2, request targets with a
    // fragment marked for the Layer to refuse, and peer addresses recorded
    // so --trusted-proxy can be checked.
    senderbound::serve::serve(listener, app)
        .with_graceful_shutdown(ctrl_c())
        .await?;
    Ok(())
}

/// A revocation, as `POST /admin/revocations` takes it.
#[derive(serde::Deserialize)]
struct Revocation {
    /// What `value` is: `jti`, `sub`, `client`, `jkt` or `x5t`.
    revoke: String,
    value: String,
    /// How long the revocation holds (at least the longest a token lives).
    for_secs: u64,
}

async fn revoke(
    State(list): State<RedisRevocations>,
    Json(revocation): Json<Revocation>,
) -> Result<StatusCode, (StatusCode, &'static str)> {
    let what = match revocation.revoke.as_str() {
        "jti" => Revoked::TokenId,
        "sub" => Revoked::Subject,
        "client" => Revoked::Client,
        "jkt" => Revoked::Key,
        "x5t" => Revoked::Certificate,
        _ => {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                "revoke is one of jti, sub, client, jkt, x5t",
            ));
        }
    };
    let lifetime = Duration::from_secs(revocation.for_secs);
    match list.revoke(what, &revocation.value, lifetime).await {
        Ok(()) => {
            tracing::warn!(revoked = revocation.revoke, "revocation added");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e) => {
            tracing::error!(error = %e, "revocation not stored");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the revocation list is unreachable",
            ))
        }
    }
}
