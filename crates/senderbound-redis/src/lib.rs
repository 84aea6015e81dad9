//! # senderbound-redis
//!
//! The state a fleet of resource servers behind a load balancer must share,
//! in Redis:
//!
//! - [`RedisReplayStore`], a [`ReplayStore`]: a DPoP proof accepted by one
//!   server is refused by every other;
//! - [`RedisRevocations`], a `RevocationCheck`: a token, subject, client,
//!   key or certificate revoked through one server is refused by all within
//!   a poll interval, with no round trip on the request's path;
//! - [`RedisKeyHolders`], for `KeySharing::holders`: one key used by two
//!   clients is caught across servers as on one.
//!
//! **The replay store.** One round trip per accepted proof: a small script
//! that does `SET {namespace:tag}:key 1 NX PX ttl`, atomic in Redis, so of
//! any number of concurrent requests with the same proof exactly one wins,
//! whichever servers they reach. The key is the fixed-size SHA-256
//! [`ReplayKey`] (of the proof key's thumbprint and the `jti`),
//! base64url-encoded; the tag, one of 256, is its first byte. Keys expire
//! on their own when the proof's acceptance window ends, so Redis holds at
//! most requests/s × window entries.
//!
//! Runs on the deployments operators use ([`Deployment`]): one node, a
//! primary watched by Sentinel (the store follows failovers), or Redis
//! Cluster (keys spread over hash slots by the 256 tags, each with its
//! own marker in its slot). [`Durability`] says what a record must survive
//! before the request goes on: the primary alone, or `WAIT` for replicas,
//! which closes the window a failover opens.
//!
//! Fails closed: Redis unreachable, slow (past the operation timeout) or
//! answering an error makes the Layer refuse the request with 503 (audited
//! with severity `infrastructure`), never accept it. The connection is
//! re-established in the background; requests succeed again as soon as
//! Redis answers.
//!
//! **Data loss.** If Redis loses records (a restart, even with AOF's last
//! second; a failover to a replica that missed writes; an emptied Redis),
//! proofs accepted shortly before would be accepted again. So the same
//! script keeps, per tag, a marker without expiry naming the Redis process
//! (`run_id`) and replication history that hold the records: when it is
//! missing or names another process, the store refuses that tag's requests
//! (503) for the [`restart_guard`](RedisReplayStoreBuilder::restart_guard)
//! (default 4 minutes), until every proof accepted before has expired
//! (with [`Durability::Replicas`], a promoted replica starts no pause). A
//! Redis that may evict records (`maxmemory` with a policy other than
//! `noeviction`) is refused outright. A new, empty Redis pauses once too.
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

mod deployment;
mod key_holders;
mod revocation;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use senderbound_core::replay::{ReplayError, ReplayKey, ReplayStore};

pub use deployment::Deployment;
use deployment::{Connection, connect, invocation, kind, slot};
pub use key_holders::{RedisKeyHolders, RedisKeyHoldersBuilder};
pub use revocation::{RedisRevocations, RedisRevocationsBuilder, RevocationStoreError, Revoked};

/// Default bound on one replay check, connection included.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_millis(250);
/// Default key namespace.
pub const DEFAULT_NAMESPACE: &str = "senderbound:jti";
/// The replay window of the default proof rules: `max_age` (60 s) + 2 ×
/// `max_future_skew` (15 s) + 1 s.
const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(91);
/// Default pause after Redis lost its data: longer than the replay window
/// with default settings (91 s), and with `freshness_from_nonce` (211 s).
pub const DEFAULT_RESTART_GUARD: Duration = Duration::from_secs(240);

/// KEYS[1] the proof's key, KEYS[2] its group's marker (one hash tag: the
/// same cluster slot). ARGV[1] the TTL and ARGV[2] the restart guard, in
/// ms; ARGV[3] `1` when this write is acknowledged by replicas before the
/// request goes on (`Durability::Replicas`). 1: recorded; 2 or 3: recorded,
/// in a group written with both durabilities (2: this write, without
/// acknowledgement, found every earlier one acknowledged; 3: this write,
/// acknowledged, found one that was not); 0: already there; -1: this data
/// may have lost proofs less than the guard ago.
///
/// The marker (`since:run_id:replid:durable`) records when the guard
/// started, which process (`run_id`) with which replication history
/// (`master_replid`) served the data, and whether every write since was
/// acknowledged by replicas (`1`; a single write without, from a server
/// of the fleet configured otherwise, makes it `0` for good). No marker:
/// the data is new or lost. Another `run_id` or `master_replid`: a restart
/// (which may have lost the last writes, even with AOF) or a failover (a
/// promoted replica may lack the last writes its primary acknowledged; a
/// node demoted and promoted again keeps its `run_id`, not its replication
/// id): the guard starts again, unless every write was acknowledged by
/// replicas, this node was a replica of the recorded history
/// (`master_replid2`: a promotion) and has run for longer than the guard
/// (a node restarted from a snapshot also keeps the recorded history as
/// `master_replid2`, having lost the writes since the snapshot: they are
/// older than its start, so expired once it has run for the guard). -2: the node is not a primary (a demoted
/// one that still takes writes); -3: `INFO` does not say what the check
/// needs (a proxy or another server); -4: the node may evict records
/// (`maxmemory` with a policy other than `noeviction`, checked when a
/// marker is made): refused, never guessed.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local server = redis.call('INFO', 'server')
local run_id = string.match(server, 'run_id:(%w+)')
local uptime = tonumber(string.match(server, 'uptime_in_seconds:(%d+)'))
local repl = redis.call('INFO', 'replication')
local role = string.match(repl, 'role:(%w+)')
local replid = string.match(repl, 'master_replid:(%w+)')
local replid2 = string.match(repl, 'master_replid2:(%w+)')
if not run_id or not uptime or not replid or not replid2 then
  return -3
end
if role ~= 'master' then
  return -2
end
local marker = redis.call('GET', KEYS[2])
local since, seen_run, seen_repl, durable
if marker then
  since, seen_run, seen_repl, durable = string.match(marker, '^(%d+):(%w*):(%w*):?(%d?)$')
end
local mixed = 1
if not since or seen_run ~= run_id or seen_repl ~= replid then
  local memory = redis.call('INFO', 'memory')
  local limit = string.match(memory, 'maxmemory:(%d+)')
  local policy = string.match(memory, 'maxmemory_policy:([%w-]+)')
  if not limit or not policy then
    return -3
  end
  if tonumber(limit) > 0 and policy ~= 'noeviction' then
    return -4
  end
  local promoted = since and durable == '1' and seen_repl == replid2
  if not (promoted and ARGV[3] == '1' and uptime * 1000 >= tonumber(ARGV[2])) then
    since = now
    durable = ARGV[3]
  end
  redis.call('SET', KEYS[2], since .. ':' .. run_id .. ':' .. replid .. ':' .. durable)
elseif durable == '1' and ARGV[3] ~= '1' then
  redis.call('SET', KEYS[2], since .. ':' .. run_id .. ':' .. replid .. ':0')
  mixed = 2
elseif durable ~= '1' and ARGV[3] == '1' then
  mixed = 3
end
if now - tonumber(since) < tonumber(ARGV[2]) then
  return -1
end
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then
  return mixed
end
return 0
";

/// What an accepted proof's record must survive before the request goes
/// on. See [`RedisReplayStoreBuilder::durability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledged by the primary alone (the default, one round trip).
    /// Redis replicates asynchronously, so a failover can lose the last
    /// records: the promoted replica is noticed (another `run_id`) and the
    /// store refuses requests (503) for the restart guard, as after a
    /// restart. Safe, at the price of that pause after every failover.
    #[default]
    Primary,
    /// Acknowledged by at least `count` replicas within `timeout` (`WAIT`,
    /// pipelined with the insert on one connection), else the request is
    /// refused with 503. A failover to a replica that acknowledged keeps
    /// every accepted proof, so a promotion (a node that was a replica of
    /// the recorded history) starts no pause; a restart still does (it may
    /// lose the last writes, and its replicas resync from it). Set `count`
    /// to the replicas a failover may promote; at least 1. The store
    /// notices a fleet configured two ways: once a server writes with
    /// [`Durability::Primary`] in a group, a promotion starts that group's
    /// guard again, as for `Primary`.
    Replicas {
        /// Replicas that must acknowledge.
        count: u32,
        /// How long to wait for them.
        timeout: Duration,
    },
}

/// Why a store could not be built. Neither `Display` nor `Debug` shows the
/// URL (it may hold a password): only what kind of error it was.
#[non_exhaustive]
pub enum RedisStoreError {
    /// A Redis URL is invalid.
    Url(redis::RedisError),
    /// The connection could not be set up (outside a tokio runtime?).
    Connection(redis::RedisError),
    /// The namespace holds `{` or `}` (it is part of a hash tag).
    Namespace,
    /// `Durability::Replicas` with a count of zero (it would check nothing).
    Durability,
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisStoreError::Url(e) => write!(f, "Redis URL: {:?}", e.kind()),
            RedisStoreError::Connection(e) => write!(f, "Redis connection: {:?}", e.kind()),
            RedisStoreError::Namespace => f.write_str("the namespace may not hold { or }"),
            RedisStoreError::Durability => {
                f.write_str("Durability::Replicas needs a count of at least 1")
            }
        }
    }
}

impl fmt::Debug for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (variant, e) = match self {
            RedisStoreError::Url(e) => ("Url", e),
            RedisStoreError::Connection(e) => ("Connection", e),
            RedisStoreError::Namespace => return f.write_str("Namespace"),
            RedisStoreError::Durability => return f.write_str("Durability"),
        };
        f.debug_tuple(variant).field(&e.kind()).finish()
    }
}

impl std::error::Error for RedisStoreError {}

impl From<&str> for Deployment {
    /// One node at this URL.
    fn from(url: &str) -> Self {
        Deployment::single(url)
    }
}

impl From<String> for Deployment {
    /// One node at this URL.
    fn from(url: String) -> Self {
        Deployment::single(url)
    }
}

impl From<&String> for Deployment {
    /// One node at this URL.
    fn from(url: &String) -> Self {
        Deployment::single(url.as_str())
    }
}

/// Configures a [`RedisReplayStore`]. Its `Debug` output shows the Redis
/// URLs without user name and password.
#[derive(Clone)]
pub struct RedisReplayStoreBuilder {
    deployment: Deployment,
    namespace: String,
    operation_timeout: Duration,
    restart_guard: Duration,
    durability: Durability,
}

impl fmt::Debug for RedisReplayStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStoreBuilder")
            .field("deployment", &self.deployment)
            .field("namespace", &self.namespace)
            .field("operation_timeout", &self.operation_timeout)
            .field("restart_guard", &self.restart_guard)
            .field("durability", &self.durability)
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
    /// 503 (default 250 ms; with [`Durability::Replicas`], add its timeout).
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// How long to refuse requests after Redis may have lost records: no
    /// marker (a new or emptied Redis), a restart, or a failover with
    /// [`Durability::Primary`]. At least the replay window,
    /// `max_age + 2 × max_future_skew + 1 s` of the proof rules (91 s by
    /// default, 211 s with `freshness_from_nonce`). Default 4 minutes. Zero
    /// turns the guard off and accepts replays of proofs used just before a
    /// data loss.
    pub fn restart_guard(mut self, guard: Duration) -> Self {
        self.restart_guard = guard;
        self
    }

    /// What a record must survive before the request goes on (default
    /// [`Durability::Primary`]); see [`Durability`] for what each closes
    /// and costs.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Creates the store. Connects lazily, in the background: the server can
    /// start while Redis is down (and answers 503 until it is up). Must be
    /// called inside a tokio runtime.
    pub fn build(self) -> Result<RedisReplayStore, RedisStoreError> {
        let extra = match self.durability {
            Durability::Replicas { count: 0, .. } => return Err(RedisStoreError::Durability),
            Durability::Replicas { timeout, .. } => timeout,
            Durability::Primary => Duration::ZERO,
        };
        if !self.restart_guard.is_zero() && self.restart_guard < DEFAULT_REPLAY_WINDOW {
            // Allowed (proof rules may be stricter than the default), but
            // the usual mistake: said once, where the store is made.
            tracing::warn!(
                target: "senderbound::replay",
                guard_secs = self.restart_guard.as_secs(),
                "the Redis restart guard is shorter than the default replay window (91 s): \
                 proofs used just before a data loss could be accepted again"
            );
        }
        // The connection's own response timeout covers WAIT too.
        let timeout = self.operation_timeout.saturating_add(extra);
        let connection = connect(&self.deployment, &self.namespace, timeout)?;
        Ok(RedisReplayStore {
            connection,
            deployment: self.deployment.redacted(),
            namespace: self.namespace,
            operation_timeout: self.operation_timeout.saturating_add(extra),
            restart_guard_ms: u64::try_from(self.restart_guard.as_millis()).unwrap_or(u64::MAX),
            durability: self.durability,
            script: redis::Script::new(SCRIPT),
            failing: AtomicBool::new(false),
            mixed_said: AtomicBool::new(false),
        })
    }
}

/// A [`ReplayStore`] on Redis, shared by every server of a fleet. See the
/// [crate documentation](crate).
pub struct RedisReplayStore {
    connection: Connection,
    deployment: String,
    namespace: String,
    operation_timeout: Duration,
    restart_guard_ms: u64,
    durability: Durability,
    script: redis::Script,
    /// Whether the last check failed: failures are logged when they start
    /// and when they end, not once per request.
    failing: AtomicBool,
    /// The fleet's mixed durabilities were said (once).
    mixed_said: AtomicBool,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("deployment", &self.deployment)
            .field("namespace", &self.namespace)
            .field("operation_timeout", &self.operation_timeout)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// Starts a configuration for Redis deployed as `deployment`: a URL
    /// (`redis://[:password@]host:port/db`, one node) or a [`Deployment`]
    /// (Sentinel, Cluster). TLS to Redis is not built in.
    pub fn builder(deployment: impl Into<Deployment>) -> RedisReplayStoreBuilder {
        RedisReplayStoreBuilder {
            deployment: deployment.into(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            restart_guard: DEFAULT_RESTART_GUARD,
            durability: Durability::default(),
        }
    }

    /// The hash tag of `key`'s group: one of 256, by the key's first byte.
    /// A group's keys and its marker share the tag, so on a cluster they
    /// share a slot (one script touches both), and the groups spread over
    /// the shards.
    fn tag(&self, key: &ReplayKey) -> String {
        format!("{}:{:02x}", self.namespace, key.as_bytes()[0])
    }

    /// The Redis key a proof is remembered under: `{namespace:tag}:<key>`.
    pub fn redis_key(&self, key: &ReplayKey) -> String {
        format!(
            "{{{}}}:{}",
            self.tag(key),
            URL_SAFE_NO_PAD.encode(key.as_bytes())
        )
    }

    async fn set_nx(&self, key: ReplayKey, ttl: Duration) -> Result<bool, ()> {
        // PX takes whole milliseconds and must be positive.
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let tag = self.tag(&key);
        let mut script = invocation(&self.script);
        script
            .key(self.redis_key(&key))
            .key(format!("{{{tag}}}:since"))
            .arg(ttl_ms)
            .arg(self.restart_guard_ms)
            .arg(0);
        let check = async {
            let answer = match self.durability {
                Durability::Primary => self.connection.invoke(&script).await,
                // One pipeline, one connection: WAIT counts its own writes.
                Durability::Replicas { count, timeout } => {
                    let mut eval = redis::Cmd::new();
                    eval.arg("EVAL")
                        .arg(SCRIPT)
                        .arg(2)
                        .arg(self.redis_key(&key))
                        .arg(format!("{{{tag}}}:since"))
                        .arg(ttl_ms)
                        .arg(self.restart_guard_ms)
                        .arg(1);
                    match self
                        .connection
                        .eval_then_wait(eval, slot(&tag), count, timeout)
                        .await
                    {
                        Ok((1..=3, acknowledged)) if acknowledged < i64::from(count) => {
                            return Err("too few replicas acknowledged (WAIT)".to_owned());
                        }
                        Ok((answer, _)) => Ok(answer),
                        Err(e) => Err(e),
                    }
                }
            };
            match answer {
                Ok(1) => Ok(true),
                Ok(mixed @ (2 | 3)) => {
                    self.note_mixed(mixed);
                    Ok(true)
                }
                Ok(0) => Ok(false),
                Ok(-1) => Err("Redis may have lost records recently (restart guard)".into()),
                Ok(-2) => {
                    // Demoted, yet taking writes: ask the sentinels again.
                    self.connection.forget();
                    Err("the node is not a primary".to_owned())
                }
                Ok(-3) => Err("INFO lacks run_id, the replication ids or maxmemory".to_owned()),
                Ok(-4) => Err(
                    "Redis may evict records (maxmemory with a policy other than noeviction)"
                        .to_owned(),
                ),
                Ok(_) => Err("unexpected answer from the replay script".to_owned()),
                Err(e) => Err(kind(&e)),
            }
        };
        match self.connection.within(self.operation_timeout, check).await {
            Ok(Ok(inserted)) => Ok(inserted),
            Ok(Err(why)) => {
                self.note_failure(&why);
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
                deployment = %self.deployment,
                "Redis replay store unavailable: refusing DPoP requests (503) until it answers"
            );
        }
    }

    /// A group written with and without replica acknowledgement: promotions
    /// there start the guard (the marker remembers). Said once.
    fn note_mixed(&self, answer: i64) {
        if !self.mixed_said.swap(true, Ordering::Relaxed) {
            let this = if answer == 2 {
                "without replica acknowledgement (Durability::Primary), where others wait for replicas"
            } else {
                "with replica acknowledgement, where others do not"
            };
            tracing::warn!(
                target: "senderbound::replay",
                deployment = %self.deployment,
                "servers sharing this namespace use different durabilities: this one writes {this}; \
                 failovers pause DPoP for the restart guard, as with Durability::Primary"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn braces_in_the_namespace_and_a_zero_count_are_refused() {
        let err = RedisReplayStore::builder("redis://127.0.0.1:1/")
            .namespace("api}x")
            .build()
            .unwrap_err();
        assert!(matches!(err, RedisStoreError::Namespace), "{err:?}");
        let err = RedisReplayStore::builder("redis://127.0.0.1:1/")
            .durability(Durability::Replicas {
                count: 0,
                timeout: Duration::from_millis(10),
            })
            .build()
            .unwrap_err();
        assert!(matches!(err, RedisStoreError::Durability), "{err:?}");
        let mixed =
            Deployment::sentinel(["rediss://10.0.0.1:26379", "redis://10.0.0.2:26379"], "s");
        let err = RedisReplayStore::builder(mixed).build().unwrap_err();
        assert!(matches!(err, RedisStoreError::Url(_)), "{err:?}");
        let err = RedisRevocations::builder("redis://127.0.0.1:1/")
            .durability(Durability::Replicas {
                count: 0,
                timeout: Duration::from_millis(10),
            })
            .build()
            .unwrap_err();
        assert!(matches!(err, RedisStoreError::Durability), "{err:?}");
        assert!(
            RedisReplayStore::builder("redis://127.0.0.1:1/")
                .build()
                .is_ok()
        );
    }

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
