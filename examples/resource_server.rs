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
//! others. `--cors-origin ORIGIN` (repeatable) lets browser pages on that
//! origin call it (`senderbound::cors::DpopCors`). `--profile fapi2|mcp` applies a profile (`senderbound::profile`). Opaque tokens are introspected with
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
//! `POST /admin/revocations` (scope `revoke` and a sender-constrained
//! token, even with `--allow-bearer`) takes `{"revoke":
//! "jti"|"sub"|"client"|"jkt"|"x5t", "value": "…", "for_secs": N}` and
//! answers 204 once the entry is in Redis: refused here at once, by every
//! server of the fleet within `--revocation-poll-ms`. `DELETE
//! /admin/revocations` with `{"revoke": …, "value": …}` restores. Each
//! change is logged with who made it (`senderbound::admin`). Audit events
//! and key-fetch logs go to stderr; the line `listening on http://ADDR` goes
//! to stdout once the socket is bound. Stops on Ctrl-C.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use clap::Parser;
use senderbound::tokens::Binding;
use senderbound::{RequireScopeLayer, Sender};
use senderbound_redis::{RedisRevocations, RevocationStoreError, Revoked};
use senderbound_suite::harness::routes;
use senderbound_suite::server_cli::{ServerArgs, announce, ctrl_c};

#[derive(Parser, Debug)]
#[command(about = "A resource server that accepts only sender-constrained access tokens")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Args { server } = Args::parse();
    server.init_logging()?;

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
                .delete(restore)
                .with_state(list)
                .route_layer(RequireScopeLayer::all(["revoke"])),
        );
    }
    let mut app = app.layer(auth.clone());
    // Browser pages on --cors-origin: CORS outside the Layer, so preflights
    // are answered before authentication (docs/deployment.md §8).
    if let Some(cors) = server.cors()? {
        app = app.layer(cors.layer());
    }
    let app = app.route("/healthz", axum::routing::get(|| async { "ok" }));
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

/// A change to the revocation list, as `/admin/revocations` takes it.
#[derive(serde::Deserialize)]
struct Change {
    /// What `value` is: `jti`, `sub`, `client`, `jkt` or `x5t`.
    revoke: String,
    value: String,
    /// How long the revocation holds (at least the longest a token lives);
    /// not used to restore.
    #[serde(default)]
    for_secs: u64,
}

/// Why a change is refused: the status and a short reason, nothing else.
type Refused = (StatusCode, &'static str);

impl Change {
    /// What it names, checked: a known kind, and a value of its form
    /// (thumbprints are 43 base64url characters, SHA-256).
    fn target(&self) -> Result<Revoked, Refused> {
        let unprocessable = |why| Err((StatusCode::UNPROCESSABLE_ENTITY, why));
        let what = match self.revoke.as_str() {
            "jti" => Revoked::TokenId,
            "sub" => Revoked::Subject,
            "client" => Revoked::Client,
            "jkt" => Revoked::Key,
            "x5t" => Revoked::Certificate,
            _ => return unprocessable("revoke is one of jti, sub, client, jkt, x5t"),
        };
        let thumbprint = matches!(what, Revoked::Key | Revoked::Certificate);
        let well_formed = if thumbprint {
            self.value.len() == 43
                && self
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        } else {
            !self.value.is_empty() && self.value.len() <= 1024
        };
        if !well_formed {
            return unprocessable("value is not of the form its kind needs");
        }
        Ok(what)
    }
}

/// Only a sender-constrained caller changes the list, whatever else the
/// server accepts (`--allow-bearer`): an unbound token is 403.
fn constrained(sender: &Sender) -> Result<(), Refused> {
    if matches!(sender.binding(), Binding::Unbound) {
        return Err((
            StatusCode::FORBIDDEN,
            "changing the revocation list needs a sender-constrained token",
        ));
    }
    Ok(())
}

/// The longest a revocation made here holds: ten years.
const MAX_FOR_SECS: u64 = 10 * 365 * 24 * 3600;

/// `POST /admin/revocations`: revoked on every server of the fleet.
async fn revoke(
    State(list): State<RedisRevocations>,
    sender: Sender,
    Json(change): Json<Change>,
) -> Result<StatusCode, Refused> {
    let checked = constrained(&sender)
        .and_then(|()| change.target())
        .and_then(|what| {
            if (1..=MAX_FOR_SECS).contains(&change.for_secs) {
                Ok(what)
            } else {
                Err((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "for_secs must be between 1 and ten years",
                ))
            }
        });
    let made = match checked {
        Ok(what) => Ok(list
            .revoke(what, &change.value, Duration::from_secs(change.for_secs))
            .await),
        Err(refused) => Err(refused),
    };
    answer(made, &sender, "revoke", &change)
}

/// `DELETE /admin/revocations`: accepted again on every server.
async fn restore(
    State(list): State<RedisRevocations>,
    sender: Sender,
    Json(change): Json<Change>,
) -> Result<StatusCode, Refused> {
    let made = match constrained(&sender).and_then(|()| change.target()) {
        Ok(what) => Ok(list.restore(what, &change.value).await),
        Err(refused) => Err(refused),
    };
    answer(made, &sender, "restore", &change)
}

/// 204 once Redis has the change. Every attempt goes to the log with who
/// made it and what it named (identifiers and thumbprints, no secrets; a
/// refused value is logged only by its length).
fn answer(
    made: Result<Result<(), RevocationStoreError>, Refused>,
    sender: &Sender,
    action: &'static str,
    change: &Change,
) -> Result<StatusCode, Refused> {
    let (by_sub, by_client) = (sender.subject(), sender.client_id());
    let (by_jkt, by_x5t) = (sender.binding().jkt(), sender.binding().x5t_s256());
    match made {
        Ok(Ok(())) => {
            tracing::warn!(
                target: "senderbound::admin",
                action, kind = change.revoke, value = change.value, for_secs = change.for_secs,
                by_sub, by_client, by_jkt, by_x5t,
                "revocation list changed"
            );
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(Err(e)) => {
            tracing::error!(
                target: "senderbound::admin",
                action, kind = change.revoke, value = change.value, error = %e,
                by_sub, by_client, by_jkt, by_x5t,
                "revocation list did not confirm the change"
            );
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the revocation list did not confirm the change; make it again",
            ))
        }
        Err((status, why)) => {
            tracing::warn!(
                target: "senderbound::admin",
                action, status = status.as_u16(), reason = why,
                value_len = change.value.len(),
                by_sub, by_client, by_jkt, by_x5t,
                "revocation list change refused"
            );
            Err((status, why))
        }
    }
}
