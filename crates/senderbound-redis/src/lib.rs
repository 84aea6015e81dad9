//! # senderbound-redis
//!
//! A [`ReplayStore`] on Redis, for a fleet of resource servers behind a load
//! balancer: a DPoP proof accepted by one server is refused by every other.
//!
//! One round trip per accepted proof: `SET <namespace>:<key> 1 NX PX <ttl>`,
//! atomic in Redis, so of any number of concurrent requests with the same
//! proof exactly one wins, whichever servers they reach. Keys are the
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
//! ```no_run
//! use senderbound::SenderBound;
//! use senderbound_redis::RedisReplayStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let replay = RedisReplayStore::builder("redis://10.0.0.7:6379/")
//!     .namespace("api-prod")
//!     .build()?;
//! let auth = SenderBound::builder()
//!     .issuer("https://as.example.com")
//!     .audience("https://api.example.com")
//!     .public_base_url("https://api.example.com")
//!     .replay_store(replay)
//!     .build()?;
//! # let _ = auth; Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use senderbound::replay::{ReplayError, ReplayFuture, ReplayKey, ReplayStore};

/// Default bound on one replay check, connection included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_millis(250);
/// Default key namespace.
pub const DEFAULT_NAMESPACE: &str = "senderbound:jti";

/// Why a store could not be built.
#[derive(Debug)]
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

impl std::error::Error for RedisStoreError {}

/// Configures a [`RedisReplayStore`].
#[derive(Debug, Clone)]
pub struct RedisReplayStoreBuilder {
    url: String,
    namespace: String,
    operation_timeout: Duration,
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
            namespace: self.namespace,
            operation_timeout: self.operation_timeout,
            failing: AtomicBool::new(false),
        })
    }
}

/// A [`ReplayStore`] on Redis, shared by every server of a fleet. See the
/// [crate documentation](crate).
pub struct RedisReplayStore {
    connection: ConnectionManager,
    namespace: String,
    operation_timeout: Duration,
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
    /// (`redis://[:password@]host:port/db`, or `rediss://` for TLS).
    pub fn builder(url: impl Into<String>) -> RedisReplayStoreBuilder {
        RedisReplayStoreBuilder {
            url: url.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
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
        let command = redis::cmd("SET")
            .arg(self.redis_key(&key))
            .arg(1u8)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .to_owned();
        let answer = tokio::time::timeout(
            self.operation_timeout,
            command.query_async::<redis::Value>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(redis::Value::Okay)) => Ok(true),
            Ok(Ok(redis::Value::SimpleString(s))) if s == "OK" => Ok(true),
            Ok(Ok(redis::Value::Nil)) => Ok(false),
            Ok(Ok(_)) => {
                self.note_failure("unexpected answer to SET NX");
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
    fn check_and_insert<'a>(&'a self, key: ReplayKey, ttl: Duration) -> ReplayFuture<'a> {
        Box::pin(async move {
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
        })
    }
}
