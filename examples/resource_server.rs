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
//! JWKS; `--jwks-uri` skips discovery. Opaque tokens are introspected with
//! `--introspection-url URL --client-id ID --client-secret SECRET` (or
//! `--client-id/--client-secret` alone to use the endpoint in the metadata).
//!
//! Routes: `GET /api/read` (scope `read`), `POST /api/write` (scope
//! `write`), `GET /whoami` (the verified `Sender` as JSON). Audit events
//! and key-fetch logs go to stderr; the line `listening on http://ADDR` goes
//! to stdout once the socket is bound. Stops on Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use senderbound::{Algorithm, ClientAuth, SenderBound, TokenFormat, TypPolicy};
use senderbound_suite::harness::routes;

#[derive(Parser, Debug)]
#[command(about = "A resource server that accepts only sender-constrained access tokens")]
struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The trusted issuer (exact `iss`); its metadata is discovered.
    #[arg(long)]
    issuer: String,
    /// This resource's identifier, required in `aud` (RFC 8707). Repeatable.
    #[arg(long, required = true)]
    audience: Vec<String>,
    /// Fetch keys from this JWKS URL instead of discovering it.
    #[arg(long)]
    jwks_uri: Option<String>,
    /// Introspect tokens here (RFC 7662); needs --client-id and --client-secret.
    #[arg(long, requires_all = ["client_id", "client_secret"])]
    introspection_url: Option<String>,
    /// Client id for introspection.
    #[arg(long, requires = "client_secret")]
    client_id: Option<String>,
    /// Client secret for introspection (or the SENDERBOUND_CLIENT_SECRET variable).
    #[arg(long, env = "SENDERBOUND_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// How to authenticate to the introspection endpoint.
    #[arg(long, value_enum, default_value_t = ClientAuthMethod::ClientSecretBasic)]
    client_auth: ClientAuthMethod,
    /// Introspect every token, JWTs included.
    #[arg(long)]
    introspect_all: bool,
    /// Also accept unbound Bearer tokens (bound tokens as Bearer stay refused).
    #[arg(long)]
    allow_bearer: bool,
    /// The URL clients address this server by (default http://LISTEN).
    #[arg(long)]
    public_base_url: Option<String>,
    /// DPoP proof algorithms accepted, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ES256,ES384,EdDSA,PS256,RS256"
    )]
    algs: Vec<String>,
    /// Accept tokens with `typ` JWT or none (servers without RFC 9068).
    #[arg(long)]
    allow_jwt_typ: bool,
    /// Refresh keys once they are this many seconds old.
    #[arg(long, default_value_t = 300)]
    jwks_refresh_secs: u64,
    /// Fetch keys at most once per this many seconds.
    #[arg(long, default_value_t = 10)]
    jwks_min_refresh_secs: u64,
    /// Cache introspection answers at most this many seconds.
    #[arg(long, default_value_t = 60)]
    introspection_cache_secs: u64,
    /// Refuse tokens that live longer than this many seconds (exp - iat).
    #[arg(long)]
    max_token_lifetime_secs: Option<u64>,
    /// Leeway for token exp/nbf, in seconds.
    #[arg(long, default_value_t = 10)]
    token_leeway_secs: u64,
    /// Give up on an authorization server fetch after this many seconds.
    #[arg(long, default_value_t = 5)]
    fetch_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ClientAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .init();

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let public_base_url = args
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));

    let algs = args
        .algs
        .iter()
        .map(|name| {
            Algorithm::from_name(name.trim()).ok_or_else(|| format!("unsupported algorithm {name}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = SenderBound::builder()
        .issuer(&args.issuer)
        .public_base_url(&public_base_url)
        .dpop_algorithms(algs)
        .fetch_timeout(Duration::from_secs(args.fetch_timeout_secs))
        .jwks_refresh_interval(Duration::from_secs(args.jwks_refresh_secs))
        .jwks_min_refresh_interval(Duration::from_secs(args.jwks_min_refresh_secs))
        .introspection_cache_ttl(Duration::from_secs(args.introspection_cache_secs))
        .token_leeway(Duration::from_secs(args.token_leeway_secs));
    for audience in &args.audience {
        builder = builder.audience(audience);
    }
    if let Some(uri) = &args.jwks_uri {
        builder = builder.jwks_uri(uri);
    }
    if let (Some(id), Some(secret)) = (&args.client_id, &args.client_secret) {
        let auth = match args.client_auth {
            ClientAuthMethod::ClientSecretBasic => ClientAuth::client_secret_basic(id, secret),
            ClientAuthMethod::ClientSecretPost => ClientAuth::client_secret_post(id, secret),
        };
        builder = match &args.introspection_url {
            Some(url) => builder.introspection(url, auth),
            None => builder.introspect_with(auth),
        };
    }
    if args.introspect_all {
        builder = builder.token_format(TokenFormat::Introspect);
    }
    if args.allow_bearer {
        builder = builder.allow_bearer();
    }
    if args.allow_jwt_typ {
        builder = builder.token_typ(TypPolicy::AllowJwt);
    }
    if let Some(secs) = args.max_token_lifetime_secs {
        builder = builder.max_token_lifetime(Duration::from_secs(secs));
    }
    let auth = builder.build()?;

    let app = routes().layer(auth.layer());
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, issuer = %args.issuer, %public_base_url, "resource server ready");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
