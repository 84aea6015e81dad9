//! # senderbound-redis
//!
//! A [`ReplayStore`] on Redis, for a fleet of resource servers behind a load
//! balancer: a DPoP proof accepted by one server is refused by every other.
//!
//! One round trip per accepted proof: a small script that does
//! `SET <namespace>:<key> 1 NX PX <ttl>`, atomic in Redis, so of any number
//! of concurrent requests with the same proof exactly one wins, whichever
//! servers they reach. Keys are the
//! fixed-size SHA-256 [`ReplayKey`] (of the proof key's thumbprint and the
//! `jti`), base64url-encoded under a namespace; they expire on their own when
//! the proof's acceptance window ends, so Redis holds at most
//! requests/s × window entries.
//!
//! Fails closed: Redis unreachable, slow (past the operation timeout) or
//! answering an error makes the Layer refuse the request with 503 (audited
//! with severity `infrastructure`), never accept it. The connection is
//! re-established in the background; requests succeed again as soon as
//! Redis answers.
//!
//! **Data loss.** If Redis loses its data (a restart without persistence, a
//! failover to a replica that missed writes), proofs accepted shortly before
//! would be accepted again. So the same script keeps a marker key without
//! expiry: when it is missing, Redis has lost (or never had) this store's
//! data, and the store refuses requests (503) for the
//! [`restart_guard`](RedisReplayStoreBuilder::restart_guard) (default 4
//! minutes), until every proof accepted before has expired. Run Redis with
//! AOF persistence to avoid that pause after restarts; a new, empty Redis
//! pauses once too.
//!
//! ```no_run
//! use senderbound::SenderBoundLayer;
//! use senderbound_redis::RedisReplayStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let replay = RedisReplayStore::builder("redis://10.0.0.7:6379/")
//!     .namespace("api-prod")
//!     .build()?;
//! let auth = SenderBoundLayer::builder()
//!     .issuer("https://as.example.com")
//!     .audience("https://api.example.com")
//!     .origin("https://api.example.com")
//!     .replay_store(replay)
//!     .build()?;
//! # let _ = auth; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use senderbound_core::replay::{ReplayError, ReplayKey, ReplayStore};

/// Default bound on one replay check, connection included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_millis(250);
/// Default key namespace.
pub const DEFAULT_NAMESPACE: &str = "senderbound:jti";
/// Default pause after Redis lost its data: longer than the replay window
/// with default settings (91 s), and with `freshness_from_nonce` (211 s).
pub const DEFAULT_RESTART_GUARD: Duration = Duration::from_secs(240);

/// KEYS[1] the proof's key, KEYS[2] the namespace's marker; ARGV[1] the TTL
/// and ARGV[2] the restart guard, in ms. 1: recorded; 0: already there; -1:
/// Redis lost its data less than the guard ago.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = redis.call('GET', KEYS[2])
if not since then
  redis.call('SET', KEYS[2], now)
  since = now
end
if now - tonumber(since) < tonumber(ARGV[2]) then
  return -1
end
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then
  return 1
end
return 0
";

/// Why a store could not be built. Neither `Display` nor `Debug` shows the
/// URL (it may hold a password): only what kind of error it was.
#[non_exhaustive]
pub enum RedisStoreError {
    /// The Redis URL is invalid.
    Url(redis::RedisError),
    /// The connection manager could not be created (outside a tokio runtime?).
    Connection(redis::RedisError),
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisStoreError::Url(e) => write!(f, "Redis URL: {:?}", e.kind()),
            RedisStoreError::Connection(e) => write!(f, "Redis connection: {:?}", e.kind()),
        }
    }
}

impl fmt::Debug for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (variant, e) = match self {
            RedisStoreError::Url(e) => ("Url", e),
            RedisStoreError::Connection(e) => ("Connection", e),
        };
        f.debug_tuple(variant).field(&e.kind()).finish()
    }
}

impl std::error::Error for RedisStoreError {}

/// Configures a [`RedisReplayStore`]. Its `Debug` output shows the Redis
/// URL without user name and password.
#[derive(Clone)]
pub struct RedisReplayStoreBuilder {
    url: String,
    namespace: String,
    operation_timeout: Duration,
    restart_guard: Duration,
}

impl fmt::Debug for RedisReplayStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStoreBuilder")
            .field("url", &redacted(&self.url))
            .field("namespace", &self.namespace)
            .field("operation_timeout", &self.operation_timeout)
            .field("restart_guard", &self.restart_guard)
            .finish()
    }
}

/// `url` without its user information or query (`redis://:secret@host/0`
/// → `redis://<redacted>@host/0`; a Unix socket URL may carry `?pass=`); an
/// unparsable URL is not shown at all.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let had_userinfo = !parsed.username().is_empty() || parsed.password().is_some();
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            if parsed.query().is_some() {
                parsed.set_query(Some("<redacted>"));
            }
            let shown = parsed.to_string();
            match shown.split_once("://") {
                Some((scheme, rest)) if had_userinfo => format!("{scheme}://<redacted>@{rest}"),
                _ => shown,
            }
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

impl RedisReplayStoreBuilder {
    /// Prefix of every key (default `senderbound:jti`), so several APIs can
    /// share one Redis without sharing replay state.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Longest a replay check may take before the request is refused with
    /// 503 (default 250 ms).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How long to refuse requests after Redis lost its data (or on a new,
    /// empty Redis): at least the replay window, `proof_max_age + 2 ×
    /// proof_max_future_skew + 1 s` (91 s by default, 211 s with
    /// `freshness_from_nonce`). Default 4 minutes. Zero turns the guard off
    /// and accepts replays of proofs used just before a data loss.
    pub fn restart_guard(mut self, guard: Duration) -> Self {
        self.restart_guard = guard;
        self
    }

    /// Creates the store. Connects lazily, in the background: the server can
    /// start while Redis is down (and answers 503 until it is up). Must be
    /// called inside a tokio runtime.
    pub fn build(self) -> Result<RedisReplayStore, RedisStoreError> {
        let client = redis::Client::open(self.url.as_str()).map_err(RedisStoreError::Url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.operation_timeout))
            .set_response_timeout(Some(self.operation_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(RedisStoreError::Connection)?;
        Ok(RedisReplayStore {
            connection,
            marker: format!("{}:since", self.namespace),
            namespace: self.namespace,
            operation_timeout: self.operation_timeout,
            restart_guard_ms: u64::try_from(self.restart_guard.as_millis()).unwrap_or(u64::MAX),
            script: redis::Script::new(SCRIPT),
            failing: AtomicBool::new(false),
        })
    }
}

/// A [`ReplayStore`] on Redis, shared by every server of a fleet. See the
/// [crate documentation](crate).
pub struct RedisReplayStore {
    connection: ConnectionManager,
    namespace: String,
    marker: String,
    operation_timeout: Duration,
    restart_guard_ms: u64,
    script: redis::Script,
    /// Whether the last check failed: failures are logged when they start
    /// and when they end, not once per request.
    failing: AtomicBool,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("namespace", &self.namespace)
            .field("operation_timeout", &self.operation_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// Starts a configuration for the Redis at `url`
    /// (`redis://[:password@]host:port/db`; TLS to Redis is not built in).
    pub fn builder(url: impl Into<String>) -> RedisReplayStoreBuilder {
        RedisReplayStoreBuilder {
            url: url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            restart_guard: DEFAULT_RESTART_GUARD,
        }
    }

    /// The Redis key a proof is remembered under.
    pub fn redis_key(&self, key: &ReplayKey) -> String {
        format!(
            "{}:{}",
            self.namespace,
            URL_SAFE_NO_PAD.encode(key.as_bytes())
        )
    }

    async fn set_nx(&self, key: ReplayKey, ttl: Duration) -> Result<bool, ()> {
        // PX takes whole milliseconds and must be positive.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(self.redis_key(&key));
        invocation
            .key(&self.marker)
            .arg(ttl_ms)
            .arg(self.restart_guard_ms);
        let answer = tokio::time::timeout(
            self.operation_timeout,
            invocation.invoke_async::<i64>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(1)) => Ok(true),
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(-1)) => {
                self.note_failure("Redis lost its data recently (restart guard)");
                Err(())
            }
            Ok(Ok(_)) => {
                self.note_failure("unexpected answer from the replay script");
                Err(())
            }
            Ok(Err(e)) => {
                self.note_failure(&format!("{:?}", e.kind()));
                Err(())
            }
            Err(_) => {
                self.note_failure("timed out");
                Err(())
            }
        }
    }

    fn note_failure(&self, why: &str) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                target: "senderbound::replay",
                reason = why,
                "Redis replay store unavailable: refusing DPoP requests (503) until it answers"
            );
        }
    }

    fn note_success(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::warn!(target: "senderbound::replay", "Redis replay store answering again");
        }
    }
}

impl ReplayStore for RedisReplayStore {
    async fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> Result<(), ReplayError> {
        {
            let inserted = self
                .set_nx(key, ttl)
                .await
                .map_err(|()| ReplayError::Unavailable)?;
            self.note_success();
            if inserted {
                Ok(())
            } else {
                Err(ReplayError::AlreadySeen)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        for url in [
            "redis://:s3cret-pw@10.0.0.7:6379/0",
            "redis://admin:s3cret-pw@cache.internal/2",
            "rediss://admin:s3cret-pw@cache.internal:6380",
            "redis+unix:///run/redis.sock?db=1&pass=s3cret-pw",
            "not a url s3cret-pw",
        ] {
            let builder = RedisReplayStore::builder(url);
            let shown = format!("{builder:?}");
            assert!(!shown.contains("s3cret-pw"), "{shown}");
            assert!(!shown.contains("admin"), "{shown}");
        }
        let shown = format!(
            "{:?}",
            RedisReplayStore::builder("redis://:pw@10.0.0.7:6379/0")
        );
        assert!(
            shown.contains("redis://<redacted>@10.0.0.7:6379/0"),
            "{shown}"
        );
        let error = redis::Client::open("redis://:s3cret-pw@[::1").map(|_| ());
        if let Err(e) = error {
            let shown = format!(
                "{:?} {}",
                RedisStoreError::Url(e.clone()),
                RedisStoreError::Url(e)
            );
            assert!(!shown.contains("s3cret-pw"), "{shown}");
        }
    }
}
