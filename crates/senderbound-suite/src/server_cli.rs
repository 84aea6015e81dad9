//! The command-line flags the example servers share (`resource_server`,
//! `mtls_server`, `mcp_server`), and the senderbound configuration they make.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use senderbound::cors::DpopCors;
use senderbound::incident::Incidents;
use senderbound::key_sharing::KeySharing;
use senderbound::mtls::{ConnectionCert, ForwardedClientCert, TrustedProxies};
use senderbound::profile::Profile;
use senderbound::proof::{Nonces, ProofRules};
use senderbound::tokens::{
    ClientAuth, Fetching, Introspection, Issuer, TokenFormat, TokenPolicy, TypPolicy,
};
use senderbound::{Algorithm, Origin, SenderBoundBuilder, SenderBoundLayer};
use senderbound_redis::{
    Deployment, Durability, RedisKeyHolders, RedisReplayStore, RedisRevocations,
};

/// Where to listen, which authorization server to trust, and how.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// The trusted issuer (exact `iss`); its metadata is discovered unless
    /// --jwks-uri or --jwks-file says where its keys are.
    #[arg(long)]
    pub issuer: Option<String>,
    /// This resource's identifier, required in `aud` (RFC 8707). Repeatable.
    #[arg(long)]
    pub audience: Vec<String>,
    /// Fetch keys from this JWKS URL instead of discovering it.
    #[arg(long, conflicts_with = "jwks_file")]
    pub jwks_uri: Option<String>,
    /// Verify tokens with the keys of this JWKS file (fixed keys: no
    /// discovery, no refresh).
    #[arg(long)]
    pub jwks_file: Option<PathBuf>,
    /// Introspect tokens here (RFC 7662); needs --client-id and --client-secret.
    #[arg(long, requires_all = ["client_id", "client_secret"])]
    pub introspection_url: Option<String>,
    /// Client id for introspection.
    #[arg(long, requires = "client_secret")]
    pub client_id: Option<String>,
    /// Client secret for introspection (or the SENDERBOUND_CLIENT_SECRET variable).
    #[arg(long, env = "SENDERBOUND_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// How to authenticate to the introspection endpoint.
    #[arg(long, value_enum, default_value_t = ClientAuthMethod::ClientSecretBasic)]
    pub client_auth: ClientAuthMethod,
    /// Introspect every token, JWTs included.
    #[arg(long)]
    pub introspect_all: bool,
    /// Also accept unbound Bearer tokens (DPoP-bound tokens as Bearer stay refused).
    #[arg(long)]
    pub allow_bearer: bool,
    /// Also accept certificate-bound (mTLS, RFC 8705) tokens, with the
    /// connection's client certificate (implied by --trusted-proxy).
    #[arg(long)]
    pub accept_mtls_bound: bool,
    /// Accept certificate-bound tokens with the certificate in the RFC 9440
    /// Client-Cert header of these proxies (IP or CIDR, repeatable); the
    /// header is removed from everyone else's requests.
    #[arg(long)]
    pub trusted_proxy: Vec<String>,
    /// Remember used proofs in this Redis (shared by a fleet of servers)
    /// instead of in memory.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Remember used proofs in a Redis Cluster reached through these seed
    /// nodes (repeatable), instead of `--redis-url`.
    #[arg(long)]
    pub redis_cluster: Vec<String>,
    /// Remember used proofs on the primary these sentinels name (repeatable;
    /// with `--redis-service`), instead of `--redis-url`.
    #[arg(long)]
    pub redis_sentinel: Vec<String>,
    /// The service name the sentinels monitor.
    #[arg(long, default_value = "senderbound")]
    pub redis_service: String,
    /// Wait for this many replicas to acknowledge each recorded proof
    /// and each change to the revocation list (Redis WAIT; 503 when they
    /// do not within 100 ms).
    #[arg(long)]
    pub redis_wait_replicas: Option<u32>,
    /// Longest one Redis operation may take before the request is refused
    /// with 503 (milliseconds; the WAIT above comes on top).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..))]
    pub redis_timeout_ms: u64,
    /// After Redis may have lost used proofs (a new or emptied Redis, a
    /// restart, a failover without --redis-wait-replicas), refuse requests
    /// with 503 for this many seconds (at least the replay window; 0 turns
    /// the guard off: for tests on a Redis just started).
    #[arg(long, default_value_t = 240)]
    pub redis_restart_guard_secs: u64,
    /// Keep a fleet-wide revocation list in the same Redis (`--redis-url`,
    /// `--redis-cluster` or `--redis-sentinel`); `resource_server` then
    /// serves `POST /admin/revocations` (scope `revoke`) to add to it.
    #[arg(long)]
    pub redis_revocations: bool,
    /// How often each server reads the revocation list's version (a change
    /// reaches every server within this, plus one round trip).
    #[arg(long, default_value_t = 1000, requires = "redis_revocations")]
    pub revocation_poll_ms: u64,
    /// Detect one DPoP key used by two clients or subjects across the fleet,
    /// the first holder of each key kept in the same Redis: `report` audits
    /// it, `reject` refuses the others (401 invalid_token).
    #[arg(long, value_enum)]
    pub redis_key_sharing: Option<SharingMode>,
    /// The revocation list, made once (`--redis-revocations`).
    #[arg(skip)]
    revocations: std::sync::OnceLock<RedisRevocations>,
    /// Require server nonces made with this secret (32+ bytes, the same on
    /// every server of the fleet; or the SENDERBOUND_NONCE_SECRET variable).
    #[arg(long, env = "SENDERBOUND_NONCE_SECRET", hide_env_values = true)]
    pub nonce_secret: Option<String>,
    /// Accept nonces made with this previous secret too (rotation).
    #[arg(
        long,
        env = "SENDERBOUND_PREVIOUS_NONCE_SECRET",
        hide_env_values = true,
        requires = "nonce_secret"
    )]
    pub previous_nonce_secret: Option<String>,
    /// The URL clients address this server by, and sign as `htu` (default
    /// SCHEME://LISTEN).
    #[arg(long, conflicts_with = "allowed_host")]
    pub public_base_url: Option<String>,
    /// Instead of a public base URL: serve requests addressed to this host
    /// (`name` or `name:port`, from `Host` or HTTP/2's `:authority`), the
    /// `htu` being SCHEME://HOST/path. Repeatable.
    #[arg(long)]
    pub allowed_host: Vec<String>,
    /// Let browser pages on this origin call the server (CORS for DPoP,
    /// `senderbound::cors::DpopCors`: `https://app.example.com`; `http` on
    /// loopback only). Repeatable.
    #[arg(long)]
    pub cors_origin: Vec<String>,
    /// Comply with a profile: `fapi2` (FAPI 2.0 Security Profile) or `mcp`
    /// (the MCP DPoP profile, SEP-1932).
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// DPoP proof algorithms accepted, comma-separated (default: every
    /// asymmetric JOSE algorithm, ES256 … PS512, EdDSA and Ed25519, or the
    /// profile's).
    #[arg(long, value_delimiter = ',')]
    pub algs: Vec<String>,
    /// Accept tokens with `typ` JWT or none (servers without RFC 9068).
    #[arg(long)]
    pub allow_jwt_typ: bool,
    /// Refresh keys once they are this many seconds old.
    #[arg(long, default_value_t = 300)]
    pub jwks_refresh_secs: u64,
    /// Fetch keys at most once per this many seconds.
    #[arg(long, default_value_t = 10)]
    pub jwks_min_refresh_secs: u64,
    /// Cache introspection answers at most this many seconds.
    #[arg(long, default_value_t = 60)]
    pub introspection_cache_secs: u64,
    /// Refuse tokens that live longer than this many seconds (exp - iat).
    #[arg(long)]
    pub max_token_lifetime_secs: Option<u64>,
    /// Leeway for token exp/nbf, in seconds.
    #[arg(long, default_value_t = 10)]
    pub token_leeway_secs: u64,
    /// Log level on stderr: `info` logs an audit event for every request;
    /// `warn` only suspicious refusals and failures.
    #[arg(long, default_value_t = tracing::Level::INFO)]
    pub log_level: tracing::Level,
    /// Also write every audit event to FILE as JSON lines (appended; the
    /// schema is docs/audit.md), whatever --log-level says.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Incident signals: this many suspicious refusals for one key or
    /// client within --incident-window-secs is one `finding="incident"`
    /// event.
    #[arg(long, value_name = "N")]
    pub incident_threshold: Option<u32>,
    /// The incident window, in seconds.
    #[arg(long, default_value_t = 60)]
    pub incident_window_secs: u64,
    /// After an incident, refuse the key (429) for this many seconds.
    #[arg(long, value_name = "SECS")]
    pub incident_cool_down_secs: Option<u64>,
    /// Give up on an authorization server fetch after this many seconds.
    #[arg(long, default_value_t = 5)]
    pub fetch_timeout_secs: u64,
}

/// A profile to comply with (see `senderbound::profile`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ProfileArg {
    /// The FAPI 2.0 Security Profile.
    Fapi2,
    /// The MCP DPoP profile (SEP-1932).
    Mcp,
}

/// What key-sharing detection does (`--redis-key-sharing`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SharingMode {
    /// Audit a shared key; the request goes on.
    Report,
    /// Refuse every holder but the first.
    Reject,
}

/// Client authentication at the introspection endpoint.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ClientAuthMethod {
    /// HTTP Basic.
    ClientSecretBasic,
    /// In the form body.
    ClientSecretPost,
}

type BoxError = Box<dyn std::error::Error>;

impl ServerArgs {
    /// The public base URL: `--public-base-url`, or `scheme://addr`
    /// (meaningless with `--allowed-host`).
    pub fn public_base_url(&self, scheme: &str, addr: SocketAddr) -> String {
        self.public_base_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{addr}"))
    }

    /// The senderbound configuration these flags describe, for a server
    /// reached over `scheme` (`http` or `https`) at `addr`.
    pub fn build(&self, scheme: &str, addr: SocketAddr) -> Result<SenderBoundLayer, BoxError> {
        let issuer = self.issuer.as_deref().ok_or("--issuer is required")?;
        if self.audience.is_empty() {
            return Err("--audience is required".into());
        }
        Ok(self
            .builder(scheme, addr)?
            .trust(self.trusted_issuer(issuer)?)
            .build()?)
    }

    /// The issuer `name` with the keys, JWKS URI and introspection the
    /// flags give.
    pub fn trusted_issuer(&self, name: &str) -> Result<Issuer, BoxError> {
        let mut issuer = Issuer::new(name);
        if let Some(uri) = &self.jwks_uri {
            issuer = issuer.jwks_uri(uri);
        }
        if let Some(path) = &self.jwks_file {
            issuer = issuer.keys(std::fs::read_to_string(path)?);
        }
        if let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) {
            let auth = match self.client_auth {
                ClientAuthMethod::ClientSecretBasic => ClientAuth::client_secret_basic(id, secret),
                ClientAuthMethod::ClientSecretPost => ClientAuth::client_secret_post(id, secret),
            };
            let mut introspection = Introspection::new(auth)
                .cache_ttl(Duration::from_secs(self.introspection_cache_secs));
            if let Some(url) = &self.introspection_url {
                introspection = introspection.endpoint(url);
            }
            issuer = issuer.introspection(introspection);
        }
        if self.introspect_all {
            issuer = issuer.token_format(TokenFormat::Introspect);
        }
        Ok(issuer)
    }

    /// Every setting but the issuer (the MCP example may trust its demo
    /// authorization server instead): origin, algorithms, nonces, replay
    /// store, profile.
    pub fn builder(&self, scheme: &str, addr: SocketAddr) -> Result<SenderBoundBuilder, BoxError> {
        let algs = self
            .algs
            .iter()
            .map(|name| {
                Algorithm::from_name(name.trim())
                    .ok_or_else(|| format!("unsupported algorithm {name}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let origin = if self.allowed_host.is_empty() {
            Origin::public_url(self.public_base_url(scheme, addr))
        } else if scheme == "http" {
            Origin::hosts(&self.allowed_host).plain_http()
        } else {
            Origin::hosts(&self.allowed_host)
        };
        let mut tokens = TokenPolicy::new().leeway(Duration::from_secs(self.token_leeway_secs));
        if self.allow_jwt_typ {
            tokens = tokens.typ(TypPolicy::AllowJwt);
        }
        if let Some(secs) = self.max_token_lifetime_secs {
            tokens = tokens.max_lifetime(Duration::from_secs(secs));
        }
        let mut builder = SenderBoundLayer::builder()
            .origin(origin)
            .tokens(tokens)
            .fetching(
                Fetching::new()
                    .timeout(Duration::from_secs(self.fetch_timeout_secs))
                    .key_refresh(Duration::from_secs(self.jwks_refresh_secs))
                    .min_key_refresh(Duration::from_secs(self.jwks_min_refresh_secs)),
            );
        if let Some(profile) = self.profile {
            builder = builder.profile(match profile {
                ProfileArg::Fapi2 => Profile::Fapi2Security,
                ProfileArg::Mcp => Profile::McpDpop,
            });
        }
        if !algs.is_empty() {
            builder = builder.proofs(ProofRules::new().algorithms(algs));
        }
        if !self.trusted_proxy.is_empty() {
            builder = builder.mtls(ForwardedClientCert::new(TrustedProxies::parse(
                &self.trusted_proxy,
            )?));
        } else if self.accept_mtls_bound {
            builder = builder.mtls(ConnectionCert);
        }
        for audience in &self.audience {
            builder = builder.audience(audience);
        }
        if self.allow_bearer {
            builder = builder.allow_bearer();
        }
        if let Some(deployment) = self.redis_deployment()? {
            let store = RedisReplayStore::builder(deployment.clone())
                .restart_guard(Duration::from_secs(self.redis_restart_guard_secs))
                .operation_timeout(self.redis_timeout())
                .durability(self.redis_durability());
            builder = builder.replay_store(store.build()?);
            if let Some(mode) = self.redis_key_sharing {
                let holders = RedisKeyHolders::builder(deployment)
                    .operation_timeout(self.redis_timeout())
                    .build()?;
                let sharing = KeySharing::new().holders(holders);
                builder = builder.key_sharing(match mode {
                    SharingMode::Report => sharing,
                    SharingMode::Reject => sharing.reject(),
                });
            }
        }
        if let Some(revocations) = self.revocations()? {
            builder = builder.revocations(revocations);
        }
        if let Some(threshold) = self.incident_threshold {
            let mut rule =
                Incidents::after(threshold).within(Duration::from_secs(self.incident_window_secs));
            if let Some(secs) = self.incident_cool_down_secs {
                rule = rule.cool_down(Duration::from_secs(secs));
            }
            builder = builder.incidents(rule);
        }
        if let Some(secret) = &self.nonce_secret {
            let mut nonces = Nonces::new(secret.as_bytes())?;
            if let Some(previous) = &self.previous_nonce_secret {
                nonces = nonces.previous_secret(previous.as_bytes())?;
            }
            builder = builder.nonces(nonces);
        }
        Ok(builder)
    }

    /// The Redis deployment the flags name, if any.
    pub fn redis_deployment(&self) -> Result<Option<Deployment>, BoxError> {
        let deployment = match (
            &self.redis_url,
            &self.redis_cluster[..],
            &self.redis_sentinel[..],
        ) {
            (Some(url), [], []) => Some(Deployment::single(url.as_str())),
            (None, [_, ..], []) => Some(Deployment::cluster(self.redis_cluster.iter())),
            (None, [], [_, ..]) => Some(Deployment::sentinel(
                self.redis_sentinel.iter(),
                self.redis_service.as_str(),
            )),
            (None, [], []) => None,
            _ => return Err("give one of --redis-url, --redis-cluster, --redis-sentinel".into()),
        };
        if deployment.is_none() && (self.redis_revocations || self.redis_key_sharing.is_some()) {
            return Err("--redis-revocations and --redis-key-sharing need a Redis \
                        (--redis-url, --redis-cluster or --redis-sentinel)"
                .into());
        }
        Ok(deployment)
    }

    fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    fn redis_durability(&self) -> Durability {
        match self.redis_wait_replicas {
            Some(count) => Durability::Replicas {
                count,
                timeout: Duration::from_millis(100),
            },
            None => Durability::Primary,
        }
    }

    /// CORS for browser DPoP clients on the `--cors-origin` origins, if
    /// any: add its `layer()` outside the `SenderBoundLayer`.
    pub fn cors(&self) -> Result<Option<DpopCors>, BoxError> {
        if self.cors_origin.is_empty() {
            return Ok(None);
        }
        Ok(Some(DpopCors::allow_origins(&self.cors_origin)?))
    }

    /// The fleet-wide revocation list (`--redis-revocations`): the same
    /// list, and the same local copy, on every call. Needs a Tokio runtime
    /// (it polls Redis in the background).
    pub fn revocations(&self) -> Result<Option<RedisRevocations>, BoxError> {
        if !self.redis_revocations {
            return Ok(None);
        }
        if let Some(list) = self.revocations.get() {
            return Ok(Some(list.clone()));
        }
        let Some(deployment) = self.redis_deployment()? else {
            return Ok(None);
        };
        let list = RedisRevocations::builder(deployment)
            .poll_interval(Duration::from_millis(self.revocation_poll_ms))
            .operation_timeout(self.redis_timeout())
            .durability(self.redis_durability())
            .build()?;
        Ok(Some(self.revocations.get_or_init(|| list).clone()))
    }

    /// Logs to stderr up to `--log-level`, and the audit events to
    /// `--audit-log` as JSON lines.
    pub fn init_logging(&self) -> std::io::Result<()> {
        use std::io::IsTerminal;
        use tracing_subscriber::prelude::*;
        let stderr = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(tracing_subscriber::filter::LevelFilter::from_level(
                self.log_level,
            ));
        let audit = match &self.audit_log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                Some(crate::capture::json_audit_layer(std::sync::Mutex::new(
                    file,
                )))
            }
            None => None,
        };
        tracing_subscriber::registry()
            .with(stderr)
            .with(audit)
            .init();
        Ok(())
    }

    /// `true` if the flags say where the issuer's keys are, or how its
    /// tokens are introspected.
    pub fn names_token_keys(&self) -> bool {
        self.jwks_uri.is_some() || self.jwks_file.is_some() || self.client_id.is_some()
    }
}

/// Audit events and key-fetch logs to stderr, INFO and above (colours
/// only on a terminal).
pub fn log_to_stderr() {
    log_to_stderr_at(tracing::Level::INFO);
}

/// Logs to stderr up to `level`: `WARN` keeps only suspicious and failed
/// decisions (and warnings), `INFO` adds an audit event per request.
pub fn log_to_stderr_at(level: tracing::Level) {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_max_level(level)
        .init();
}

/// Says `listening on URL` on stdout (what scripts and tests wait for).
pub fn announce(url: &str) -> std::io::Result<()> {
    use std::io::Write;
    println!("listening on {url}");
    std::io::stdout().flush()
}

/// Completes on Ctrl-C.
pub async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn args(flags: &[&str]) -> ServerArgs {
        Cli::parse_from(std::iter::once("server").chain(flags.iter().copied())).server
    }

    #[test]
    fn cors_origins_from_the_command_line() {
        assert!(args(&[]).cors().unwrap().is_none());
        let cors = args(&[
            "--cors-origin",
            "https://App.example.com",
            "--cors-origin",
            "http://127.0.0.1:5173",
        ])
        .cors()
        .unwrap()
        .unwrap();
        assert_eq!(
            cors.origins().collect::<Vec<_>>(),
            ["https://app.example.com", "http://127.0.0.1:5173"]
        );
        for refused in ["*", "http://app.example.com", "https://app.example.com/"] {
            assert!(
                args(&["--cors-origin", refused]).cors().is_err(),
                "{refused}"
            );
        }
    }
}
